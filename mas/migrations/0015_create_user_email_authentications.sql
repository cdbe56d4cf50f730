-- Proofs that someone reads an email address (docs/protocol.md#email-verification): a 6-digit
-- code is mailed to the address and typed back on a page. A proof belongs either to a
-- registration in progress (`user_registration_id`, no user yet) or to a signed-in user adding
-- an address (`user_id` and the browser session that asked). `attempts` counts every code
-- tried, so that no more than a fixed number are ever compared; `completed_at` is set once,
-- by the first right code.
CREATE TABLE user_email_authentications (
    user_email_authentication_id TEXT NOT NULL PRIMARY KEY,
    user_registration_id TEXT NULL,
    user_id TEXT NULL REFERENCES users (user_id),
    user_session_id TEXT NULL REFERENCES user_sessions (user_session_id),
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    code TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    completed_at BIGINT NULL,
    CONSTRAINT user_email_authentications_one_owner
        CHECK ((user_registration_id IS NULL) <> (user_id IS NULL))
);

CREATE INDEX user_email_authentications_user_registration_id_idx
    ON user_email_authentications (user_registration_id);
CREATE INDEX user_email_authentications_user_id_idx ON user_email_authentications (user_id);
