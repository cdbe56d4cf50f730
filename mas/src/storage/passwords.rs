//! `user_passwords`: password hashes, append-only (migration 0002). The newest row of a user
//! is the active password.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows;
use crate::clock::Clock;
use crate::model::Password;
use crate::rng::new_ulid;

#[derive(sqlx::FromRow)]
struct PasswordRow {
    user_password_id: String,
    user_id: String,
    hashed_password: String,
    version: i64,
    upgraded_from_id: Option<String>,
    created_at: i64,
}

impl TryFrom<PasswordRow> for Password {
    type Error = StorageError;

    fn try_from(row: PasswordRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid("user_passwords.user_password_id", &row.user_password_id)?,
            user_id: rows::ulid("user_passwords.user_id", &row.user_id)?,
            hashed_password: row.hashed_password,
            version: rows::narrow("user_passwords.version", row.version)?,
            upgraded_from_id: rows::opt_ulid(
                "user_passwords.upgraded_from_id",
                row.upgraded_from_id.as_deref(),
            )?,
            created_at: row.created_at,
        })
    }
}

/// Adds a hash for the user, which becomes the active password. `upgraded_from` names the
/// hash it replaces when it is a re-hash with a newer scheme at login.
#[tracing::instrument(
    name = "db.user_passwords.add",
    skip_all,
    fields(user.id = %user_id, password.version = version),
    err
)]
pub async fn add_password(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    user_id: Ulid,
    hashed_password: &str,
    version: u16,
    upgraded_from: Option<Ulid>,
) -> Result<Password, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    sqlx::query(
        "INSERT INTO user_passwords \
         (user_password_id, user_id, hashed_password, version, upgraded_from_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(user_id.to_string())
    .bind(hashed_password)
    .bind(i64::from(version))
    .bind(upgraded_from.map(|id| id.to_string()))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(Password {
        id,
        user_id,
        hashed_password: hashed_password.to_owned(),
        version,
        upgraded_from_id: upgraded_from,
        created_at: now,
    })
}

/// The user's active password: the newest (ties, within one millisecond, broken by id).
#[tracing::instrument(name = "db.user_passwords.active", skip_all, fields(user.id = %user_id), err)]
pub async fn active_password(
    conn: &mut AnyConnection,
    user_id: Ulid,
) -> Result<Option<Password>, StorageError> {
    let row: Option<PasswordRow> = sqlx::query_as(
        "SELECT user_password_id, user_id, hashed_password, version, upgraded_from_id, \
                created_at \
         FROM user_passwords WHERE user_id = $1 \
         ORDER BY created_at DESC, user_password_id DESC LIMIT 1",
    )
    .bind(user_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Password::try_from).transpose()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::Database;
    use crate::storage::testing::{migrated, test_on_both_backends};

    async fn newest_password_is_active_and_keeps_its_upgrade_link(db: Database) {
        let mut t = migrated(db).await;
        let user = t.user("alice").await;
        assert_eq!(active_password(&mut t.conn, user.id).await.unwrap(), None);

        let first = add_password(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            user.id,
            "$2b$old",
            1,
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            active_password(&mut t.conn, user.id).await.unwrap(),
            Some(first.clone())
        );

        t.clock.advance(Duration::from_secs(1));
        let upgraded = add_password(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            user.id,
            "$argon2id$new",
            2,
            Some(first.id),
        )
        .await
        .unwrap();
        let active = active_password(&mut t.conn, user.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(active, upgraded);
        assert_eq!(active.version, 2);
        assert_eq!(active.upgraded_from_id, Some(first.id));

        let other = t.user("bob").await;
        assert_eq!(active_password(&mut t.conn, other.id).await.unwrap(), None);
    }

    async fn password_for_a_missing_user_is_refused(db: Database) {
        let mut t = migrated(db).await;
        let missing = Ulid::nil();
        let result = add_password(&mut t.conn, &t.clock, &mut t.rng, missing, "$x", 1, None).await;
        assert!(matches!(result, Err(StorageError::Query(_))), "{result:?}");
    }

    test_on_both_backends!(
        newest_password_is_active_and_keeps_its_upgrade_link,
        password_for_a_missing_user_is_refused,
    );
}
