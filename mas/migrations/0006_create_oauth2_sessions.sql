-- OAuth 2.0 sessions, created at token exchange (one per device for Matrix clients).
-- `user_id` is NULL for client_credentials sessions; `scope` is the space-separated wire form.
CREATE TABLE oauth2_sessions (
    oauth2_session_id TEXT NOT NULL PRIMARY KEY,
    oauth2_client_id TEXT NOT NULL REFERENCES oauth2_clients (oauth2_client_id),
    user_id TEXT NULL REFERENCES users (user_id),
    user_session_id TEXT NULL REFERENCES user_sessions (user_session_id),
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT NULL,
    user_agent TEXT NULL,
    last_active_at BIGINT NULL,
    last_active_ip TEXT NULL,
    human_name TEXT NULL
);

-- A user's sessions, and the active ones (device sync, "finish all", session limits).
CREATE INDEX oauth2_sessions_user_id_idx ON oauth2_sessions (user_id);
CREATE INDEX oauth2_sessions_active_user_id_idx ON oauth2_sessions (user_id)
    WHERE finished_at IS NULL;
CREATE INDEX oauth2_sessions_client_id_idx ON oauth2_sessions (oauth2_client_id);
CREATE INDEX oauth2_sessions_user_session_id_idx ON oauth2_sessions (user_session_id);
