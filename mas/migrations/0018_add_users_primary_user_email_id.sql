-- The user's primary email address (the one the account page marks, and the one mail goes to
-- when one address is needed). NULL: none chosen yet, or the user has no verified address.
-- Deleting the address clears it (ON DELETE SET NULL); the code then makes the oldest
-- remaining verified address primary in the same transaction. Both PostgreSQL and SQLite
-- accept a REFERENCES clause on ADD COLUMN when the column's default is NULL.
ALTER TABLE users
    ADD COLUMN primary_user_email_id TEXT NULL
    REFERENCES user_emails (user_email_id) ON DELETE SET NULL;
