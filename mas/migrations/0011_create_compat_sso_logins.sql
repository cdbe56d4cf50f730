-- Legacy Matrix SSO logins (docs/protocol.md#compat-layer): created by `/login/sso/redirect`, fulfilled on the
-- "continue to the application" page in a browser session, exchanged once through
-- `m.login.token` within 30 s of fulfilment. The login token is generated at fulfilment and
-- stored only as SHA-256 hex. `compat_session_id` is the compat session the exchange created
-- (no foreign key: compat_sessions belongs to migration 0010, which may land after this one).
CREATE TABLE compat_sso_logins (
    compat_sso_login_id TEXT NOT NULL PRIMARY KEY,
    redirect_uri TEXT NOT NULL,
    login_token_sha256 TEXT NULL,
    user_session_id TEXT NULL REFERENCES user_sessions (user_session_id),
    compat_session_id TEXT NULL,
    created_at BIGINT NOT NULL,
    fulfilled_at BIGINT NULL,
    exchanged_at BIGINT NULL,
    CONSTRAINT compat_sso_logins_login_token_unique UNIQUE (login_token_sha256)
);

CREATE INDEX compat_sso_logins_user_session_id_idx ON compat_sso_logins (user_session_id);
