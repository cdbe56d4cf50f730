-- Password recovery (docs/protocol.md#pages): a request for an address ("recovery session"),
-- whatever account has it, and the single-use tickets mailed for it, one per account with that
-- verified address. A ticket is stored only as SHA-256 hex; the ticket itself is only in the
-- mail. Each is valid for one hour and used at most once (a conditional update on used_at).
CREATE TABLE user_recovery_sessions (
    user_recovery_session_id TEXT NOT NULL PRIMARY KEY,
    -- The address as typed, normalized (lower case, trimmed): what user_emails.email_normalized
    -- is compared with.
    email TEXT NOT NULL,
    ip_address TEXT NULL,
    user_agent TEXT NULL,
    created_at BIGINT NOT NULL,
    -- When a ticket of the session set a password.
    consumed_at BIGINT NULL
);

CREATE TABLE user_recovery_tickets (
    user_recovery_ticket_id TEXT NOT NULL PRIMARY KEY,
    user_recovery_session_id TEXT NOT NULL
        REFERENCES user_recovery_sessions (user_recovery_session_id),
    user_email_id TEXT NOT NULL REFERENCES user_emails (user_email_id),
    user_id TEXT NOT NULL REFERENCES users (user_id),
    ticket_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL,
    CONSTRAINT user_recovery_tickets_ticket_unique UNIQUE (ticket_sha256)
);

CREATE INDEX user_recovery_tickets_session_idx
    ON user_recovery_tickets (user_recovery_session_id);
CREATE INDEX user_recovery_tickets_user_id_idx ON user_recovery_tickets (user_id);
