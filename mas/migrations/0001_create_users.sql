-- Local Matrix accounts. Portable to PostgreSQL and SQLite (docs/architecture.md#storage):
-- ids are ULID text, times are Unix milliseconds from the injected clock, never NOW().
CREATE TABLE users (
    user_id TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    locked_at BIGINT NULL,
    deactivated_at BIGINT NULL,
    can_request_admin BOOLEAN NOT NULL DEFAULT FALSE,
    is_guest BOOLEAN NOT NULL DEFAULT FALSE,
    -- Named, so a duplicate can be reported as "username taken" rather than a 500.
    CONSTRAINT users_username_unique UNIQUE (username)
);
