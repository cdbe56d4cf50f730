//! `upstream_oauth_authorization_sessions`: login attempts at upstream providers (migration
//! 0012). Created pending with the `state`, `nonce` and PKCE verifier sent to the provider;
//! completed once by the callback with the validated ID token and the link; consumed once when
//! a browser session starts from it. Both steps are conditional updates, so a replayed or
//! concurrent callback loses.

use rand::RngCore;
use serde_json::{Map, Value};
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::{UpstreamCompletion, UpstreamSession};
use crate::rng::new_ulid;

const STATE_UNIQUE: Unique = Unique {
    name: "upstream_oauth_authorization_sessions_state_unique",
    sqlite_columns: "upstream_oauth_authorization_sessions.state",
};

#[derive(sqlx::FromRow)]
struct SessionRow {
    upstream_oauth_authorization_session_id: String,
    upstream_oauth_provider_id: String,
    upstream_oauth_link_id: Option<String>,
    state: String,
    nonce: String,
    code_challenge_verifier: Option<String>,
    post_auth_action: Option<String>,
    id_token: Option<String>,
    id_token_claims: Option<String>,
    userinfo: Option<String>,
    created_at: i64,
    completed_at: Option<i64>,
    consumed_at: Option<i64>,
}

fn opt_json<T: serde::de::DeserializeOwned>(
    column: &'static str,
    text: Option<&str>,
) -> Result<Option<T>, StorageError> {
    text.map(|text| rows::json(column, text)).transpose()
}

impl TryFrom<SessionRow> for UpstreamSession {
    type Error = StorageError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "upstream_oauth_authorization_sessions.upstream_oauth_authorization_session_id",
                &row.upstream_oauth_authorization_session_id,
            )?,
            provider_id: row.upstream_oauth_provider_id,
            link_id: rows::opt_ulid(
                "upstream_oauth_authorization_sessions.upstream_oauth_link_id",
                row.upstream_oauth_link_id.as_deref(),
            )?,
            state: row.state,
            nonce: row.nonce,
            code_verifier: row.code_challenge_verifier,
            post_auth_action: opt_json(
                "upstream_oauth_authorization_sessions.post_auth_action",
                row.post_auth_action.as_deref(),
            )?,
            id_token: row.id_token,
            id_token_claims: opt_json(
                "upstream_oauth_authorization_sessions.id_token_claims",
                row.id_token_claims.as_deref(),
            )?,
            userinfo: opt_json(
                "upstream_oauth_authorization_sessions.userinfo",
                row.userinfo.as_deref(),
            )?,
            created_at: row.created_at,
            completed_at: row.completed_at,
            consumed_at: row.consumed_at,
        })
    }
}

/// A login attempt to store before redirecting to the provider.
#[derive(Clone, Copy)]
pub struct NewUpstreamSession<'a> {
    /// The configured provider id.
    pub provider_id: &'a str,
    /// The `state` sent to the provider.
    pub state: &'a str,
    /// The `nonce` sent to the provider.
    pub nonce: &'a str,
    /// The PKCE verifier, when the request carries a challenge.
    pub code_verifier: Option<&'a str>,
    /// Where to go after the login.
    pub post_auth_action: Option<&'a Value>,
}

/// Stores a pending login attempt. A `state` that exists already is
/// [`StorageError::TokenCollision`] (generate a new one).
#[tracing::instrument(
    name = "db.upstream_oauth_authorization_sessions.add",
    skip_all,
    fields(
        upstream.provider = new.provider_id,
        upstream_oauth_authorization_session.id = tracing::field::Empty,
    ),
    err
)]
pub async fn add_upstream_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    new: NewUpstreamSession<'_>,
) -> Result<UpstreamSession, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record(
        "upstream_oauth_authorization_session.id",
        tracing::field::display(id),
    );
    let post_auth_action = new
        .post_auth_action
        .map(|action| {
            rows::to_json(
                "upstream_oauth_authorization_sessions.post_auth_action",
                action,
            )
        })
        .transpose()?;
    sqlx::query(
        "INSERT INTO upstream_oauth_authorization_sessions \
         (upstream_oauth_authorization_session_id, upstream_oauth_provider_id, state, nonce, \
          code_challenge_verifier, post_auth_action, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(new.provider_id)
    .bind(new.state)
    .bind(new.nonce)
    .bind(new.code_verifier)
    .bind(post_auth_action)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &STATE_UNIQUE, StorageError::TokenCollision))?;
    Ok(UpstreamSession {
        id,
        provider_id: new.provider_id.to_owned(),
        link_id: None,
        state: new.state.to_owned(),
        nonce: new.nonce.to_owned(),
        code_verifier: new.code_verifier.map(str::to_owned),
        post_auth_action: new.post_auth_action.cloned(),
        id_token: None,
        id_token_claims: None,
        userinfo: None,
        created_at: now,
        completed_at: None,
        consumed_at: None,
    })
}

/// The login attempt with this id.
#[tracing::instrument(
    name = "db.upstream_oauth_authorization_sessions.find",
    skip_all,
    fields(upstream_oauth_authorization_session.id = %id),
    err
)]
pub async fn find_upstream_session(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<UpstreamSession>, StorageError> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT upstream_oauth_authorization_session_id, upstream_oauth_provider_id, \
         upstream_oauth_link_id, state, nonce, code_challenge_verifier, post_auth_action, \
         id_token, id_token_claims, userinfo, created_at, completed_at, consumed_at \
         FROM upstream_oauth_authorization_sessions \
         WHERE upstream_oauth_authorization_session_id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(UpstreamSession::try_from).transpose()
}

fn claims_text(
    column: &'static str,
    claims: Option<&Map<String, Value>>,
) -> Result<Option<String>, StorageError> {
    claims
        .map(|claims| rows::to_json(column, claims))
        .transpose()
}

/// The callback validated the provider's answer: records it and the link. `false` if the
/// attempt was not pending (a replayed callback, or a missing row).
#[tracing::instrument(
    name = "db.upstream_oauth_authorization_sessions.complete",
    skip_all,
    fields(
        upstream_oauth_authorization_session.id = %id,
        upstream_oauth_link.id = %completion.link_id,
    ),
    err
)]
pub async fn complete_upstream_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    completion: UpstreamCompletion<'_>,
) -> Result<bool, StorageError> {
    let claims = claims_text(
        "upstream_oauth_authorization_sessions.id_token_claims",
        Some(completion.id_token_claims),
    )?;
    let userinfo = claims_text(
        "upstream_oauth_authorization_sessions.userinfo",
        completion.userinfo,
    )?;
    let result = sqlx::query(
        "UPDATE upstream_oauth_authorization_sessions \
         SET completed_at = $2, upstream_oauth_link_id = $3, id_token = $4, \
             id_token_claims = $5, userinfo = $6 \
         WHERE upstream_oauth_authorization_session_id = $1 AND completed_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .bind(completion.link_id.to_string())
    .bind(completion.id_token)
    .bind(claims)
    .bind(userinfo)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A browser session started from the completed attempt. `false` if it was not completed or
/// was consumed already.
#[tracing::instrument(
    name = "db.upstream_oauth_authorization_sessions.consume",
    skip_all,
    fields(upstream_oauth_authorization_session.id = %id),
    err
)]
pub async fn consume_upstream_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE upstream_oauth_authorization_sessions SET consumed_at = $2 \
         WHERE upstream_oauth_authorization_session_id = $1 \
           AND completed_at IS NOT NULL AND consumed_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests;
