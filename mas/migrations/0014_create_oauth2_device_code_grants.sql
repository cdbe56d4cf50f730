-- Device authorization grants (RFC 8628; docs/protocol.md#device-authorization-grant): from the
-- device's request through the person's approval or denial to the token exchange. The device
-- code is stored only as SHA-256 hex; the user code (8 characters, no hyphen) is stored as is:
-- it is short-lived and works only together with a signed-in person's approval.
CREATE TABLE oauth2_device_code_grants (
    oauth2_device_code_grant_id TEXT NOT NULL PRIMARY KEY,
    oauth2_client_id TEXT NOT NULL REFERENCES oauth2_clients (oauth2_client_id),
    scope TEXT NOT NULL,
    device_code_sha256 TEXT NOT NULL,
    user_code TEXT NOT NULL,
    ip_address TEXT NULL,
    user_agent TEXT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    fulfilled_at BIGINT NULL,
    rejected_at BIGINT NULL,
    exchanged_at BIGINT NULL,
    -- The device's last poll of the token endpoint (`slow_down`, RFC 8628 §3.5).
    last_polled_at BIGINT NULL,
    user_session_id TEXT NULL REFERENCES user_sessions (user_session_id),
    oauth2_session_id TEXT NULL REFERENCES oauth2_sessions (oauth2_session_id),
    CONSTRAINT oauth2_device_code_grants_device_code_unique UNIQUE (device_code_sha256),
    CONSTRAINT oauth2_device_code_grants_user_code_unique UNIQUE (user_code)
);

CREATE INDEX oauth2_device_code_grants_oauth2_session_id_idx
    ON oauth2_device_code_grants (oauth2_session_id);
CREATE INDEX oauth2_device_code_grants_user_session_id_idx
    ON oauth2_device_code_grants (user_session_id);
