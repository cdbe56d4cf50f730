-- Password hashes, append-only: setting or upgrading a password adds a row; the newest row of
-- a user is the active one. `version` names the hashing scheme (passwords.schemes[].version).
CREATE TABLE user_passwords (
    user_password_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    hashed_password TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- The row this one re-hashed with a newer scheme at login, if any.
    upgraded_from_id TEXT NULL REFERENCES user_passwords (user_password_id),
    created_at BIGINT NOT NULL
);

-- "The active password of a user": the newest row.
CREATE INDEX user_passwords_user_id_created_at_idx ON user_passwords (user_id, created_at);
