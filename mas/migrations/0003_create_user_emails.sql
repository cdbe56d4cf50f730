-- Email addresses of users. `email` is kept as given; `email_normalized` (lower case) is what
-- lookups and the uniqueness per user compare. The same address may belong to several users.
CREATE TABLE user_emails (
    user_email_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- When the address was proven (or declared verified by an operator); NULL = unverified.
    confirmed_at BIGINT NULL,
    CONSTRAINT user_emails_user_id_email_unique UNIQUE (user_id, email_normalized)
);

-- Lookup by address (login by email, "who has this address").
CREATE INDEX user_emails_email_normalized_idx ON user_emails (email_normalized);
