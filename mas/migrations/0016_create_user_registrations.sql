-- Self-service registration (docs/protocol.md#registration).
--
-- Registration tokens, as upstream MAS's and Synapse's (MSC3231): issued by the operator
-- (`mas-cli manage issue-user-registration-token`), optionally limited in uses and time, and
-- revocable. `times_used` only grows, by one conditional UPDATE per completed registration
-- (not revoked, not expired, under the limit), so two racing uses of a one-use token cannot
-- both win.
CREATE TABLE user_registration_tokens (
    user_registration_token_id TEXT NOT NULL PRIMARY KEY,
    token TEXT NOT NULL,
    -- NULL: no limit.
    usage_limit BIGINT NULL,
    times_used BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NULL,
    -- NULL: never expires.
    expires_at BIGINT NULL,
    revoked_at BIGINT NULL,
    CONSTRAINT user_registration_tokens_token_unique UNIQUE (token)
);

-- A registration in progress: what the registration form gave, until the account exists
-- (`completed_at`, `user_id`). The password is stored only hashed, with the version of the
-- scheme that hashed it. `post_auth_action` is the JSON of where the browser continues
-- afterwards (an authorization grant, ...). `email_verified_at` is set once the address was
-- proven with the mailed code; the code itself lives in the email authentications table.
CREATE TABLE user_registrations (
    user_registration_id TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL,
    display_name TEXT NULL,
    email TEXT NULL,
    hashed_password TEXT NOT NULL,
    hashed_password_version INTEGER NOT NULL,
    -- The terms of service URL the person accepted (`branding.tos_uri` at the time).
    terms_url TEXT NULL,
    user_registration_token_id TEXT NULL
        REFERENCES user_registration_tokens (user_registration_token_id),
    post_auth_action TEXT NULL,
    ip_address TEXT NULL,
    user_agent TEXT NULL,
    created_at BIGINT NOT NULL,
    email_verified_at BIGINT NULL,
    completed_at BIGINT NULL,
    user_id TEXT NULL REFERENCES users (user_id)
);

CREATE INDEX user_registrations_user_registration_token_id_idx
    ON user_registrations (user_registration_token_id);
CREATE INDEX user_registrations_user_id_idx ON user_registrations (user_id);
