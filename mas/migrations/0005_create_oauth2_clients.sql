-- OAuth 2.0 clients: registered dynamically (RFC 7591 / MSC2966) or declared in the config
-- (`is_static`). Lists (`redirect_uris`, `contacts`) and `jwks` are JSON text.
CREATE TABLE oauth2_clients (
    oauth2_client_id TEXT NOT NULL PRIMARY KEY,
    -- The client secret encrypted with secrets.encryption; NULL for public clients.
    encrypted_client_secret TEXT NULL,
    redirect_uris TEXT NOT NULL,
    grant_type_authorization_code BOOLEAN NOT NULL,
    grant_type_refresh_token BOOLEAN NOT NULL,
    grant_type_client_credentials BOOLEAN NOT NULL,
    grant_type_device_code BOOLEAN NOT NULL,
    client_name TEXT NULL,
    logo_uri TEXT NULL,
    client_uri TEXT NULL,
    policy_uri TEXT NULL,
    tos_uri TEXT NULL,
    jwks_uri TEXT NULL,
    jwks TEXT NULL,
    id_token_signed_response_alg TEXT NULL,
    userinfo_signed_response_alg TEXT NULL,
    token_endpoint_auth_method TEXT NOT NULL CHECK (token_endpoint_auth_method IN (
        'none', 'client_secret_basic', 'client_secret_post', 'client_secret_jwt',
        'private_key_jwt'
    )),
    token_endpoint_auth_signing_alg TEXT NULL,
    initiate_login_uri TEXT NULL,
    application_type TEXT NULL CHECK (application_type IN ('web', 'native')),
    contacts TEXT NOT NULL,
    -- SHA-256 (hex) of the normalized registration JSON: identical public registrations get
    -- the same client. NULL for clients that are not deduplicated.
    metadata_digest TEXT NULL,
    is_static BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT oauth2_clients_metadata_digest_unique UNIQUE (metadata_digest)
);
