//! `oauth2_authorization_grants`: `/authorize` requests through consent to the code exchange
//! (migrations 0007, 0013). Fulfilment and exchange are conditional updates: of two concurrent
//! attempts exactly one wins, and the loser learns it from the `false` it gets back.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::{AuthorizationGrant, CodeChallenge, NewAuthorizationGrant};
use crate::rng::new_ulid;

const CODE_UNIQUE: Unique = Unique {
    name: "oauth2_authorization_grants_code_unique",
    sqlite_columns: "oauth2_authorization_grants.authorization_code_sha256",
};

macro_rules! grant_columns {
    () => {
        "oauth2_authorization_grant_id, oauth2_client_id, redirect_uri, \
         CAST(redirect_uri_explicit AS INTEGER) AS redirect_uri_explicit, scope, state, nonce, \
         response_mode, CAST(response_type_code AS INTEGER) AS response_type_code, \
         CAST(response_type_id_token AS INTEGER) AS response_type_id_token, code_challenge, \
         code_challenge_method, login_hint, prompt, authorization_code_sha256, \
         user_session_id, oauth2_session_id, created_at, fulfilled_at, cancelled_at, \
         exchanged_at"
    };
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    oauth2_authorization_grant_id: String,
    oauth2_client_id: String,
    redirect_uri: String,
    redirect_uri_explicit: i64,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    response_mode: String,
    response_type_code: i64,
    response_type_id_token: i64,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
    prompt: Option<String>,
    authorization_code_sha256: Option<String>,
    user_session_id: Option<String>,
    oauth2_session_id: Option<String>,
    created_at: i64,
    fulfilled_at: Option<i64>,
    cancelled_at: Option<i64>,
    exchanged_at: Option<i64>,
}

impl TryFrom<GrantRow> for AuthorizationGrant {
    type Error = StorageError;

    fn try_from(row: GrantRow) -> Result<Self, Self::Error> {
        const TABLE: &str = "oauth2_authorization_grants";
        let code_challenge = match (row.code_challenge, row.code_challenge_method) {
            (Some(challenge), Some(method)) => Some(CodeChallenge {
                challenge,
                method: rows::parse("oauth2_authorization_grants.code_challenge_method", &method)?,
            }),
            (None, None) => None,
            _ => {
                return Err(StorageError::InvalidData {
                    column: TABLE,
                    reason: "code_challenge without its method, or the reverse".to_owned(),
                });
            }
        };
        let request = NewAuthorizationGrant {
            client_id: rows::ulid(
                "oauth2_authorization_grants.oauth2_client_id",
                &row.oauth2_client_id,
            )?,
            redirect_uri: rows::parse(
                "oauth2_authorization_grants.redirect_uri",
                &row.redirect_uri,
            )?,
            redirect_uri_explicit: row.redirect_uri_explicit != 0,
            scope: rows::parse("oauth2_authorization_grants.scope", &row.scope)?,
            state: row.state,
            nonce: row.nonce,
            response_mode: rows::parse(
                "oauth2_authorization_grants.response_mode",
                &row.response_mode,
            )?,
            response_type_code: row.response_type_code != 0,
            response_type_id_token: row.response_type_id_token != 0,
            code_challenge,
            login_hint: row.login_hint,
            prompt: row.prompt,
        };
        Ok(Self {
            id: rows::ulid(
                "oauth2_authorization_grants.oauth2_authorization_grant_id",
                &row.oauth2_authorization_grant_id,
            )?,
            request,
            authorization_code_sha256: row.authorization_code_sha256,
            user_session_id: rows::opt_ulid(
                "oauth2_authorization_grants.user_session_id",
                row.user_session_id.as_deref(),
            )?,
            session_id: rows::opt_ulid(
                "oauth2_authorization_grants.oauth2_session_id",
                row.oauth2_session_id.as_deref(),
            )?,
            created_at: row.created_at,
            fulfilled_at: row.fulfilled_at,
            cancelled_at: row.cancelled_at,
            exchanged_at: row.exchanged_at,
        })
    }
}

/// Stores a validated `/authorize` request as a pending grant.
#[tracing::instrument(
    name = "db.oauth2_authorization_grants.add",
    skip_all,
    fields(oauth2_client.id = %request.client_id, grant.id = tracing::field::Empty),
    err
)]
pub async fn create_authorization_grant(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    request: NewAuthorizationGrant,
) -> Result<AuthorizationGrant, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("grant.id", tracing::field::display(id));
    let challenge = request.code_challenge.as_ref();
    sqlx::query(
        "INSERT INTO oauth2_authorization_grants \
         (oauth2_authorization_grant_id, oauth2_client_id, redirect_uri, redirect_uri_explicit, \
          scope, state, nonce, response_mode, response_type_code, response_type_id_token, \
          code_challenge, code_challenge_method, login_hint, prompt, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(id.to_string())
    .bind(request.client_id.to_string())
    .bind(request.redirect_uri.as_str())
    .bind(request.redirect_uri_explicit)
    .bind(request.scope.to_string())
    .bind(request.state.as_deref())
    .bind(request.nonce.as_deref())
    .bind(request.response_mode.as_str())
    .bind(request.response_type_code)
    .bind(request.response_type_id_token)
    .bind(challenge.map(|c| c.challenge.as_str()))
    .bind(challenge.map(|c| c.method.as_str()))
    .bind(request.login_hint.as_deref())
    .bind(request.prompt.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(AuthorizationGrant {
        id,
        request,
        authorization_code_sha256: None,
        user_session_id: None,
        session_id: None,
        created_at: now,
        fulfilled_at: None,
        cancelled_at: None,
        exchanged_at: None,
    })
}

/// The grant with this id.
#[tracing::instrument(name = "db.oauth2_authorization_grants.find", skip_all, fields(grant.id = %id), err)]
pub async fn find_authorization_grant(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<AuthorizationGrant>, StorageError> {
    let row: Option<GrantRow> = sqlx::query_as(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM oauth2_authorization_grants WHERE oauth2_authorization_grant_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(AuthorizationGrant::try_from).transpose()
}

/// The grant whose code hashes to `code_sha256`, whatever its stage (the token endpoint needs
/// exchanged grants too, for the replay rule of docs/protocol.md#authorization-code-grant).
#[tracing::instrument(name = "db.oauth2_authorization_grants.find_by_code", skip_all, err)]
pub async fn find_authorization_grant_by_code(
    conn: &mut AnyConnection,
    code_sha256: &str,
) -> Result<Option<AuthorizationGrant>, StorageError> {
    let row: Option<GrantRow> = sqlx::query_as(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM oauth2_authorization_grants WHERE authorization_code_sha256 = $1"
    ))
    .bind(code_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(AuthorizationGrant::try_from).transpose()
}

/// Consent given in `user_session_id`: the grant becomes fulfilled, with the hash of the code
/// handed out now (`None` when `response_type` has no `code`). `false` if the grant was not
/// pending (already fulfilled, cancelled, or missing). A hash collision is
/// [`StorageError::TokenCollision`].
#[tracing::instrument(
    name = "db.oauth2_authorization_grants.fulfill",
    skip_all,
    fields(grant.id = %id, user_session.id = %user_session_id),
    err
)]
pub async fn fulfill_authorization_grant(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    user_session_id: Ulid,
    code_sha256: Option<&str>,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE oauth2_authorization_grants \
         SET fulfilled_at = $2, user_session_id = $3, authorization_code_sha256 = $4 \
         WHERE oauth2_authorization_grant_id = $1 \
           AND fulfilled_at IS NULL AND cancelled_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .bind(user_session_id.to_string())
    .bind(code_sha256)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &CODE_UNIQUE, StorageError::TokenCollision))?;
    Ok(result.rows_affected() == 1)
}

/// Marks the code exchanged, linking the session the exchange created (insert the session
/// first, in the same transaction). Returns whether this call won: `false` when the grant was
/// already exchanged, not fulfilled, or cancelled; the caller then rolls back and answers
/// `invalid_grant`.
#[tracing::instrument(
    name = "db.oauth2_authorization_grants.exchange",
    skip_all,
    fields(grant.id = %id, oauth2_session.id = %session_id),
    err
)]
pub async fn exchange_authorization_grant(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    session_id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE oauth2_authorization_grants SET exchanged_at = $2, oauth2_session_id = $3 \
         WHERE oauth2_authorization_grant_id = $1 AND exchanged_at IS NULL \
           AND fulfilled_at IS NOT NULL AND cancelled_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .bind(session_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Cancels a grant that was not exchanged (the user refused, or a new one replaced it).
/// `false` if it was exchanged or cancelled already.
#[tracing::instrument(name = "db.oauth2_authorization_grants.cancel", skip_all, fields(grant.id = %id), err)]
pub async fn cancel_authorization_grant(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE oauth2_authorization_grants SET cancelled_at = $2 \
         WHERE oauth2_authorization_grant_id = $1 \
           AND cancelled_at IS NULL AND exchanged_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests;
