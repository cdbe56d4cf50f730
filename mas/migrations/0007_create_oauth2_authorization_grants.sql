-- Authorization requests (`/authorize`), from creation through consent (fulfilled) to the
-- code exchange or cancellation. The code is set at fulfilment and stored only as SHA-256 hex.
CREATE TABLE oauth2_authorization_grants (
    oauth2_authorization_grant_id TEXT NOT NULL PRIMARY KEY,
    oauth2_client_id TEXT NOT NULL REFERENCES oauth2_clients (oauth2_client_id),
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    state TEXT NULL,
    nonce TEXT NULL,
    response_mode TEXT NOT NULL CHECK (response_mode IN ('query', 'fragment', 'form_post')),
    response_type_code BOOLEAN NOT NULL,
    response_type_id_token BOOLEAN NOT NULL,
    code_challenge TEXT NULL,
    code_challenge_method TEXT NULL CHECK (code_challenge_method IN ('plain', 'S256')),
    login_hint TEXT NULL,
    -- The request's `prompt` values, space-separated (`login`, `none`, `create`).
    prompt TEXT NULL,
    authorization_code_sha256 TEXT NULL,
    user_session_id TEXT NULL REFERENCES user_sessions (user_session_id),
    oauth2_session_id TEXT NULL REFERENCES oauth2_sessions (oauth2_session_id),
    created_at BIGINT NOT NULL,
    fulfilled_at BIGINT NULL,
    cancelled_at BIGINT NULL,
    exchanged_at BIGINT NULL,
    CONSTRAINT oauth2_authorization_grants_code_unique UNIQUE (authorization_code_sha256)
);

CREATE INDEX oauth2_authorization_grants_oauth2_session_id_idx
    ON oauth2_authorization_grants (oauth2_session_id);
CREATE INDEX oauth2_authorization_grants_user_session_id_idx
    ON oauth2_authorization_grants (user_session_id);
