//! `user_emails`: users' email addresses (migration 0003), compared in lower case, and which one
//! is the user's primary address (`users.primary_user_email_id`, migration 0018): always a
//! verified address of the user, or none. Deleting the primary address clears the column (the
//! foreign key's `ON DELETE SET NULL`); [`ensure_primary_email`] then picks the oldest verified
//! address left, in the caller's transaction.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::{UserEmail, normalize_email};
use crate::rng::new_ulid;

const USER_EMAIL_UNIQUE: Unique = Unique {
    name: "user_emails_user_id_email_unique",
    sqlite_columns: "user_emails.user_id, user_emails.email_normalized",
};

macro_rules! email_columns {
    () => {
        "user_email_id, user_id, email, created_at, confirmed_at"
    };
}

#[derive(sqlx::FromRow)]
struct EmailRow {
    user_email_id: String,
    user_id: String,
    email: String,
    created_at: i64,
    confirmed_at: Option<i64>,
}

impl TryFrom<EmailRow> for UserEmail {
    type Error = StorageError;

    fn try_from(row: EmailRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid("user_emails.user_email_id", &row.user_email_id)?,
            user_id: rows::ulid("user_emails.user_id", &row.user_id)?,
            email: row.email,
            created_at: row.created_at,
            confirmed_at: row.confirmed_at,
        })
    }
}

/// Adds an address to the user, unverified unless `confirmed`. Fails with
/// [`StorageError::EmailAlreadyAdded`] if the user has it already (in any letter case).
#[tracing::instrument(name = "db.user_emails.add", skip_all, fields(user.id = %user_id), err)]
pub async fn add_email(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    user_id: Ulid,
    email: &str,
    confirmed: bool,
) -> Result<UserEmail, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    let confirmed_at = confirmed.then_some(now);
    sqlx::query(
        "INSERT INTO user_emails \
         (user_email_id, user_id, email, email_normalized, created_at, confirmed_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(user_id.to_string())
    .bind(email)
    .bind(normalize_email(email))
    .bind(now)
    .bind(confirmed_at)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &USER_EMAIL_UNIQUE, StorageError::EmailAlreadyAdded))?;
    Ok(UserEmail {
        id,
        user_id,
        email: email.to_owned(),
        created_at: now,
        confirmed_at,
    })
}

/// The user's addresses, oldest first.
#[tracing::instrument(name = "db.user_emails.list", skip_all, fields(user.id = %user_id), err)]
pub async fn list_emails(
    conn: &mut AnyConnection,
    user_id: Ulid,
) -> Result<Vec<UserEmail>, StorageError> {
    let rows: Vec<EmailRow> = sqlx::query_as(concat!(
        "SELECT ",
        email_columns!(),
        " FROM user_emails WHERE user_id = $1 ORDER BY created_at, user_email_id"
    ))
    .bind(user_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(UserEmail::try_from).collect()
}

/// Every user's rows for this address (compared in lower case), oldest first.
#[tracing::instrument(name = "db.user_emails.find_by_address", skip_all, err)]
pub async fn find_emails_by_address(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<Vec<UserEmail>, StorageError> {
    let rows: Vec<EmailRow> = sqlx::query_as(concat!(
        "SELECT ",
        email_columns!(),
        " FROM user_emails WHERE email_normalized = $1 ORDER BY created_at, user_email_id"
    ))
    .bind(normalize_email(email))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(UserEmail::try_from).collect()
}

/// Marks the address verified (keeping the first time). `false` if there is no such row.
#[tracing::instrument(name = "db.user_emails.mark_confirmed", skip_all, fields(user_email.id = %id), err)]
pub async fn mark_email_confirmed(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE user_emails SET confirmed_at = COALESCE(confirmed_at, $2) \
         WHERE user_email_id = $1",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

/// One address by id.
#[tracing::instrument(name = "db.user_emails.find", skip_all, fields(user_email.id = %id), err)]
pub async fn find_email(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<UserEmail>, StorageError> {
    let row: Option<EmailRow> = sqlx::query_as(concat!(
        "SELECT ",
        email_columns!(),
        " FROM user_emails WHERE user_email_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(UserEmail::try_from).transpose()
}

/// The id of the user's primary address, if one is set.
#[tracing::instrument(name = "db.users.primary_email", skip_all, fields(user.id = %user_id), err)]
pub async fn primary_email_id(
    conn: &mut AnyConnection,
    user_id: Ulid,
) -> Result<Option<Ulid>, StorageError> {
    let id: Option<Option<String>> =
        sqlx::query_scalar("SELECT primary_user_email_id FROM users WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    rows::opt_ulid("users.primary_user_email_id", id.flatten().as_deref())
}

/// Makes `email_id` the user's primary address. `false` (nothing changed) unless it is a
/// verified address of this user.
#[tracing::instrument(
    name = "db.users.set_primary_email",
    skip_all,
    fields(user.id = %user_id, user_email.id = %email_id),
    err
)]
pub async fn set_primary_email(
    conn: &mut AnyConnection,
    user_id: Ulid,
    email_id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE users SET primary_user_email_id = $2 WHERE user_id = $1 AND EXISTS \
         (SELECT 1 FROM user_emails WHERE user_email_id = $2 AND user_id = $1 \
         AND confirmed_at IS NOT NULL)",
    )
    .bind(user_id.to_string())
    .bind(email_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// When the user has no primary address, makes the oldest verified one primary (the first
/// verified address, or the next one after the primary was removed). Returns the primary
/// address's id afterwards, `None` when the user has no verified address.
#[tracing::instrument(name = "db.users.ensure_primary_email", skip_all, fields(user.id = %user_id), err)]
pub async fn ensure_primary_email(
    conn: &mut AnyConnection,
    user_id: Ulid,
) -> Result<Option<Ulid>, StorageError> {
    sqlx::query(
        "UPDATE users SET primary_user_email_id = \
         (SELECT user_email_id FROM user_emails WHERE user_id = $1 \
         AND confirmed_at IS NOT NULL ORDER BY created_at, user_email_id LIMIT 1) \
         WHERE user_id = $1 AND primary_user_email_id IS NULL",
    )
    .bind(user_id.to_string())
    .execute(&mut *conn)
    .await?;
    primary_email_id(conn, user_id).await
}

/// Removes one address. `false` if there is no such row.
#[tracing::instrument(name = "db.user_emails.remove", skip_all, fields(user_email.id = %id), err)]
pub async fn remove_email(conn: &mut AnyConnection, id: Ulid) -> Result<bool, StorageError> {
    let result = sqlx::query("DELETE FROM user_emails WHERE user_email_id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Removes every address of the user (deactivation); returns how many.
#[tracing::instrument(name = "db.user_emails.remove_all", skip_all, fields(user.id = %user_id), err)]
pub async fn remove_all_emails(
    conn: &mut AnyConnection,
    user_id: Ulid,
) -> Result<u64, StorageError> {
    let result = sqlx::query("DELETE FROM user_emails WHERE user_id = $1")
        .bind(user_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::Database;
    use crate::storage::testing::{TestDb, migrated, test_on_both_backends};

    async fn emails_are_added_listed_and_found_case_insensitively(db: Database) {
        let mut t = migrated(db).await;
        let alice = t.user("alice").await;
        let bob = t.user("bob").await;

        let first = add_email(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            alice.id,
            "Alice@Example.org",
            false,
        )
        .await
        .unwrap();
        assert_eq!(first.confirmed_at, None);
        t.clock.advance(Duration::from_millis(1));
        let second = add_email(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            alice.id,
            "a@example.com",
            true,
        )
        .await
        .unwrap();
        assert_eq!(second.confirmed_at, Some(second.created_at));
        add_email(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            bob.id,
            "ALICE@example.ORG",
            false,
        )
        .await
        .unwrap();

        let listed = list_emails(&mut t.conn, alice.id).await.unwrap();
        assert_eq!(listed, [first.clone(), second]);

        let found = find_emails_by_address(&mut t.conn, "alice@EXAMPLE.org")
            .await
            .unwrap();
        let owners: Vec<_> = found.iter().map(|email| email.user_id).collect();
        assert_eq!(owners, [alice.id, bob.id]);
        assert_eq!(found[0].email, "Alice@Example.org");
    }

    async fn same_address_twice_for_one_user_is_email_already_added(db: Database) {
        let mut t = migrated(db).await;
        let alice = t.user("alice").await;
        add_email(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            alice.id,
            "a@example.org",
            false,
        )
        .await
        .unwrap();
        let error = add_email(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            alice.id,
            "A@EXAMPLE.org",
            false,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, StorageError::EmailAlreadyAdded),
            "{error:?}"
        );
    }

    async fn marking_confirmed_keeps_the_first_time_and_removal_deletes(db: Database) {
        let mut t = migrated(db).await;
        let alice = t.user("alice").await;
        let email = add_email(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            alice.id,
            "a@example.org",
            false,
        )
        .await
        .unwrap();
        t.clock.advance(Duration::from_secs(5));
        assert!(
            mark_email_confirmed(&mut t.conn, &t.clock, email.id)
                .await
                .unwrap()
        );
        let confirmed_at = t.clock.now_unix_ms();
        t.clock.advance(Duration::from_secs(5));
        assert!(
            mark_email_confirmed(&mut t.conn, &t.clock, email.id)
                .await
                .unwrap()
        );
        let listed = list_emails(&mut t.conn, alice.id).await.unwrap();
        assert_eq!(listed[0].confirmed_at, Some(confirmed_at));
        assert!(
            !mark_email_confirmed(&mut t.conn, &t.clock, Ulid::nil())
                .await
                .unwrap()
        );

        assert!(remove_email(&mut t.conn, email.id).await.unwrap());
        assert!(!remove_email(&mut t.conn, email.id).await.unwrap());
        for address in ["x@example.org", "y@example.org"] {
            add_email(&mut t.conn, &t.clock, &mut t.rng, alice.id, address, true)
                .await
                .unwrap();
        }
        assert_eq!(remove_all_emails(&mut t.conn, alice.id).await.unwrap(), 2);
        assert_eq!(list_emails(&mut t.conn, alice.id).await.unwrap(), []);
    }

    async fn add(t: &mut TestDb, user: Ulid, address: &str, verified: bool) -> UserEmail {
        t.clock.advance(Duration::from_millis(1));
        add_email(&mut t.conn, &t.clock, &mut t.rng, user, address, verified)
            .await
            .unwrap()
    }

    async fn the_oldest_verified_address_becomes_primary_and_follows_removal(db: Database) {
        let mut t = migrated(db).await;
        let alice = t.user("alice").await;
        let bob = t.user("bob").await;
        assert_eq!(
            ensure_primary_email(&mut t.conn, alice.id).await.unwrap(),
            None
        );
        let unverified = add(&mut t, alice.id, "u@example.org", false).await;
        let first = add(&mut t, alice.id, "a@example.org", true).await;
        let second = add(&mut t, alice.id, "b@example.org", true).await;
        let bobs = add(&mut t, bob.id, "bob@example.org", true).await;
        assert_eq!(primary_email_id(&mut t.conn, alice.id).await.unwrap(), None);
        let primary = ensure_primary_email(&mut t.conn, alice.id).await.unwrap();
        assert_eq!(primary, Some(first.id));

        // Only a verified address of the user may be chosen.
        for refused in [unverified.id, bobs.id, Ulid::nil()] {
            assert!(
                !set_primary_email(&mut t.conn, alice.id, refused)
                    .await
                    .unwrap()
            );
        }
        assert!(
            set_primary_email(&mut t.conn, alice.id, second.id)
                .await
                .unwrap()
        );
        assert_eq!(
            ensure_primary_email(&mut t.conn, alice.id).await.unwrap(),
            Some(second.id)
        );
        assert_eq!(
            find_email(&mut t.conn, second.id).await.unwrap(),
            Some(second.clone())
        );

        // Removing the primary clears it; the oldest verified one left takes over.
        assert!(remove_email(&mut t.conn, second.id).await.unwrap());
        assert_eq!(primary_email_id(&mut t.conn, alice.id).await.unwrap(), None);
        assert_eq!(
            ensure_primary_email(&mut t.conn, alice.id).await.unwrap(),
            Some(first.id)
        );
        assert_eq!(find_email(&mut t.conn, second.id).await.unwrap(), None);
        assert_eq!(remove_all_emails(&mut t.conn, alice.id).await.unwrap(), 2);
        assert_eq!(
            ensure_primary_email(&mut t.conn, alice.id).await.unwrap(),
            None
        );
        assert_eq!(
            ensure_primary_email(&mut t.conn, bob.id).await.unwrap(),
            Some(bobs.id)
        );
    }

    test_on_both_backends!(
        emails_are_added_listed_and_found_case_insensitively,
        same_address_twice_for_one_user_is_email_already_added,
        marking_confirmed_keeps_the_first_time_and_removal_deletes,
        the_oldest_verified_address_becomes_primary_and_follows_removal,
    );
}
