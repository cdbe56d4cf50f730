//! `upstream_oauth_links`: which local user a provider's subject is (migration 0012). A link is
//! unique per (provider, subject); it may exist without a user while the person confirms the
//! account it creates. Binding is conditional, so two concurrent confirmations cannot both
//! bind one link.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::UpstreamLink;
use crate::rng::new_ulid;

const SUBJECT_UNIQUE: Unique = Unique {
    name: "upstream_oauth_links_provider_subject_unique",
    sqlite_columns: "upstream_oauth_links.upstream_oauth_provider_id, upstream_oauth_links.subject",
};

macro_rules! link_columns {
    () => {
        "upstream_oauth_link_id, upstream_oauth_provider_id, user_id, subject, \
         human_account_name, created_at"
    };
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    upstream_oauth_link_id: String,
    upstream_oauth_provider_id: String,
    user_id: Option<String>,
    subject: String,
    human_account_name: Option<String>,
    created_at: i64,
}

impl TryFrom<LinkRow> for UpstreamLink {
    type Error = StorageError;

    fn try_from(row: LinkRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "upstream_oauth_links.upstream_oauth_link_id",
                &row.upstream_oauth_link_id,
            )?,
            provider_id: row.upstream_oauth_provider_id,
            user_id: rows::opt_ulid("upstream_oauth_links.user_id", row.user_id.as_deref())?,
            subject: row.subject,
            human_account_name: row.human_account_name,
            created_at: row.created_at,
        })
    }
}

/// A link to create.
#[derive(Debug, Clone, Copy)]
pub struct NewUpstreamLink<'a> {
    /// The configured provider id.
    pub provider_id: &'a str,
    /// The provider's subject.
    pub subject: &'a str,
    /// The local user, or `None` for a link waiting for confirmation.
    pub user_id: Option<Ulid>,
    /// A display label for the upstream account.
    pub human_account_name: Option<&'a str>,
}

/// Creates a link. Fails with [`StorageError::UpstreamLinkExists`] if the provider's subject
/// is linked already.
#[tracing::instrument(
    name = "db.upstream_oauth_links.add",
    skip_all,
    fields(upstream.provider = new.provider_id, upstream_oauth_link.id = tracing::field::Empty),
    err
)]
pub async fn add_upstream_link(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    new: NewUpstreamLink<'_>,
) -> Result<UpstreamLink, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("upstream_oauth_link.id", tracing::field::display(id));
    sqlx::query(
        "INSERT INTO upstream_oauth_links \
         (upstream_oauth_link_id, upstream_oauth_provider_id, user_id, subject, \
          human_account_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(new.provider_id)
    .bind(new.user_id.map(|id| id.to_string()))
    .bind(new.subject)
    .bind(new.human_account_name)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &SUBJECT_UNIQUE, StorageError::UpstreamLinkExists))?;
    Ok(UpstreamLink {
        id,
        provider_id: new.provider_id.to_owned(),
        user_id: new.user_id,
        subject: new.subject.to_owned(),
        human_account_name: new.human_account_name.map(str::to_owned),
        created_at: now,
    })
}

/// The link with this id.
#[tracing::instrument(
    name = "db.upstream_oauth_links.find",
    skip_all,
    fields(upstream_oauth_link.id = %id),
    err
)]
pub async fn find_upstream_link(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<UpstreamLink>, StorageError> {
    let row: Option<LinkRow> = sqlx::query_as(concat!(
        "SELECT ",
        link_columns!(),
        " FROM upstream_oauth_links WHERE upstream_oauth_link_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(UpstreamLink::try_from).transpose()
}

/// The link of the provider's subject.
#[tracing::instrument(
    name = "db.upstream_oauth_links.find_by_subject",
    skip_all,
    fields(upstream.provider = provider_id),
    err
)]
pub async fn find_upstream_link_by_subject(
    conn: &mut AnyConnection,
    provider_id: &str,
    subject: &str,
) -> Result<Option<UpstreamLink>, StorageError> {
    let row: Option<LinkRow> = sqlx::query_as(concat!(
        "SELECT ",
        link_columns!(),
        " FROM upstream_oauth_links WHERE upstream_oauth_provider_id = $1 AND subject = $2"
    ))
    .bind(provider_id)
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(UpstreamLink::try_from).transpose()
}

/// The user's links to one provider, oldest first.
#[tracing::instrument(
    name = "db.upstream_oauth_links.list_for_user",
    skip_all,
    fields(user.id = %user_id, upstream.provider = provider_id),
    err
)]
pub async fn list_user_upstream_links(
    conn: &mut AnyConnection,
    user_id: Ulid,
    provider_id: &str,
) -> Result<Vec<UpstreamLink>, StorageError> {
    let rows: Vec<LinkRow> = sqlx::query_as(concat!(
        "SELECT ",
        link_columns!(),
        " FROM upstream_oauth_links WHERE user_id = $1 AND upstream_oauth_provider_id = $2 \
         ORDER BY created_at, upstream_oauth_link_id"
    ))
    .bind(user_id.to_string())
    .bind(provider_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(UpstreamLink::try_from).collect()
}

/// Binds a link that has no user yet to `user_id`. `false` if it is bound already (or
/// missing).
#[tracing::instrument(
    name = "db.upstream_oauth_links.bind",
    skip_all,
    fields(upstream_oauth_link.id = %id, user.id = %user_id),
    err
)]
pub async fn bind_upstream_link(
    conn: &mut AnyConnection,
    id: Ulid,
    user_id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE upstream_oauth_links SET user_id = $2 \
         WHERE upstream_oauth_link_id = $1 AND user_id IS NULL",
    )
    .bind(id.to_string())
    .bind(user_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Detaches one link from its user (`manage link-upstream --replace`). `false` if it had no
/// user (or is missing).
#[tracing::instrument(
    name = "db.upstream_oauth_links.unbind",
    skip_all,
    fields(upstream_oauth_link.id = %id),
    err
)]
pub async fn unbind_upstream_link(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE upstream_oauth_links SET user_id = NULL \
         WHERE upstream_oauth_link_id = $1 AND user_id IS NOT NULL",
    )
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Detaches every link of the user to the provider (`on_conflict: replace`), except `keep`;
/// the detached subjects no longer log in as this user. Returns how many were detached.
#[tracing::instrument(
    name = "db.upstream_oauth_links.unbind_for_user",
    skip_all,
    fields(user.id = %user_id, upstream.provider = provider_id),
    err
)]
pub async fn unbind_user_upstream_links(
    conn: &mut AnyConnection,
    user_id: Ulid,
    provider_id: &str,
    keep: Option<Ulid>,
) -> Result<u64, StorageError> {
    let keep = keep.map(|id| id.to_string()).unwrap_or_default();
    let result = sqlx::query(
        "UPDATE upstream_oauth_links SET user_id = NULL \
         WHERE user_id = $1 AND upstream_oauth_provider_id = $2 \
           AND upstream_oauth_link_id <> $3",
    )
    .bind(user_id.to_string())
    .bind(provider_id)
    .bind(keep)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}

/// How many links exist (for tests and `mas-cli` checks that nothing was created).
#[tracing::instrument(name = "db.upstream_oauth_links.count", skip_all, err)]
pub async fn count_upstream_links(conn: &mut AnyConnection) -> Result<i64, StorageError> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM upstream_oauth_links")
        .fetch_one(&mut *conn)
        .await?;
    Ok(count)
}

#[cfg(test)]
mod tests;
