-- Browser sessions (the session cookie points at a row) and how their user authenticated.
CREATE TABLE user_sessions (
    user_session_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    created_at BIGINT NOT NULL,
    finished_at BIGINT NULL,
    user_agent TEXT NULL,
    last_active_at BIGINT NULL,
    last_active_ip TEXT NULL
);

-- A user's sessions, and the active ones (finish all on logout everywhere / deactivation).
CREATE INDEX user_sessions_user_id_idx ON user_sessions (user_id);
CREATE INDEX user_sessions_active_user_id_idx ON user_sessions (user_id)
    WHERE finished_at IS NULL;

-- One row per successful authentication in a browser session; the newest gives `auth_time`.
-- Exactly one of the two methods is set. The upstream-OIDC table does not exist yet, so that
-- column has no foreign key.
CREATE TABLE user_session_authentications (
    user_session_authentication_id TEXT NOT NULL PRIMARY KEY,
    user_session_id TEXT NOT NULL REFERENCES user_sessions (user_session_id),
    created_at BIGINT NOT NULL,
    user_password_id TEXT NULL REFERENCES user_passwords (user_password_id),
    upstream_oauth_authorization_session_id TEXT NULL,
    CONSTRAINT user_session_authentications_one_method CHECK (
        (user_password_id IS NULL) <> (upstream_oauth_authorization_session_id IS NULL)
    )
);

CREATE INDEX user_session_authentications_session_idx
    ON user_session_authentications (user_session_id, created_at);
