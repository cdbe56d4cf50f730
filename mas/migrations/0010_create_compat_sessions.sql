-- Compat (legacy Matrix `/login`) sessions: one per device. `user_session_id` is the browser
-- session of an SSO login (NULL for password logins and CLI-issued tokens).
CREATE TABLE compat_sessions (
    compat_session_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    device_id TEXT NOT NULL,
    user_session_id TEXT NULL REFERENCES user_sessions (user_session_id),
    is_synapse_admin BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT NULL,
    user_agent TEXT NULL,
    last_active_at BIGINT NULL,
    last_active_ip TEXT NULL,
    human_name TEXT NULL
);

-- A user's active sessions (device sync, logout/all) and the holder of a device (replace).
CREATE INDEX compat_sessions_user_id_idx ON compat_sessions (user_id);
CREATE INDEX compat_sessions_active_device_idx ON compat_sessions (user_id, device_id)
    WHERE finished_at IS NULL;
CREATE INDEX compat_sessions_user_session_id_idx ON compat_sessions (user_session_id);

-- Compat access tokens (`mct_`, imported `syt_`), stored only as lower-case hex SHA-256.
-- Introspection reads: access_token_sha256 (unique index) → token → session → user.
CREATE TABLE compat_access_tokens (
    compat_access_token_id TEXT NOT NULL PRIMARY KEY,
    compat_session_id TEXT NOT NULL REFERENCES compat_sessions (compat_session_id),
    access_token_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- NULL: never expires (a login without `refresh_token: true`).
    expires_at BIGINT NULL,
    revoked_at BIGINT NULL,
    first_used_at BIGINT NULL,
    CONSTRAINT compat_access_tokens_sha256_unique UNIQUE (access_token_sha256)
);

CREATE INDEX compat_access_tokens_session_idx ON compat_access_tokens (compat_session_id);

-- Compat refresh tokens (`mcr_`, imported `syr_`): consumed on `/refresh`.
CREATE TABLE compat_refresh_tokens (
    compat_refresh_token_id TEXT NOT NULL PRIMARY KEY,
    compat_session_id TEXT NOT NULL REFERENCES compat_sessions (compat_session_id),
    compat_access_token_id TEXT NOT NULL
        REFERENCES compat_access_tokens (compat_access_token_id),
    refresh_token_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    consumed_at BIGINT NULL,
    revoked_at BIGINT NULL,
    CONSTRAINT compat_refresh_tokens_sha256_unique UNIQUE (refresh_token_sha256)
);

CREATE INDEX compat_refresh_tokens_session_idx ON compat_refresh_tokens (compat_session_id);
CREATE INDEX compat_refresh_tokens_access_token_idx
    ON compat_refresh_tokens (compat_access_token_id);
