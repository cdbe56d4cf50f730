-- Access and refresh tokens, stored only as lower-case hex SHA-256 of the token text.
-- Introspection (every Synapse request) reads: access_token_sha256 (unique index) → the token
-- row → its session (primary key) → the user (primary key).
CREATE TABLE oauth2_access_tokens (
    oauth2_access_token_id TEXT NOT NULL PRIMARY KEY,
    oauth2_session_id TEXT NOT NULL REFERENCES oauth2_sessions (oauth2_session_id),
    access_token_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NULL,
    revoked_at BIGINT NULL,
    -- Set once, on the first successful introspection (the refresh replay rule needs it).
    first_used_at BIGINT NULL,
    CONSTRAINT oauth2_access_tokens_sha256_unique UNIQUE (access_token_sha256)
);

CREATE INDEX oauth2_access_tokens_session_idx ON oauth2_access_tokens (oauth2_session_id);

-- Refresh tokens rotate: a used one is consumed and points at its successor.
CREATE TABLE oauth2_refresh_tokens (
    oauth2_refresh_token_id TEXT NOT NULL PRIMARY KEY,
    oauth2_session_id TEXT NOT NULL REFERENCES oauth2_sessions (oauth2_session_id),
    -- The access token issued together with this refresh token.
    oauth2_access_token_id TEXT NULL REFERENCES oauth2_access_tokens (oauth2_access_token_id),
    refresh_token_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    consumed_at BIGINT NULL,
    revoked_at BIGINT NULL,
    next_oauth2_refresh_token_id TEXT NULL
        REFERENCES oauth2_refresh_tokens (oauth2_refresh_token_id),
    CONSTRAINT oauth2_refresh_tokens_sha256_unique UNIQUE (refresh_token_sha256)
);

CREATE INDEX oauth2_refresh_tokens_session_idx ON oauth2_refresh_tokens (oauth2_session_id);
CREATE INDEX oauth2_refresh_tokens_access_token_idx
    ON oauth2_refresh_tokens (oauth2_access_token_id);
CREATE INDEX oauth2_refresh_tokens_next_idx
    ON oauth2_refresh_tokens (next_oauth2_refresh_token_id);
