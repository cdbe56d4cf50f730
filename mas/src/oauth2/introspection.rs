//! `POST /oauth2/introspect` (RFC 7662; docs/protocol.md#introspection): Synapse asks about a
//! client's token on every request it has not cached. This is the hot path: one indexed query
//! (token hash → token → session → user), a constant-time comparison of the caller's secret, and a
//! write only on a token's first use (`first_used_at`, which the refresh-token replay rule needs).
//!
//! Callers authenticate with `Authorization: Bearer <matrix.secret>` (Synapse), or as a
//! confidential client **declared in the config** (the legacy MSC3861 setup). A dynamically
//! registered client is refused (401 `invalid_client`) even with the right secret: anyone may
//! register one (RFC 7591), and RFC 7662 §4 wants callers specifically authorized to
//! introspect. Upstream MAS lets any confidential client introspect.
//!
//! Any well-formed request about a token that is not valid (unknown, malformed, revoked,
//! expired, finished session, locked or deactivated user, wrong `token_type_hint`) gets
//! **200 `{"active": false}`**: a 4xx would make Synapse answer 503 instead of logging the
//! client out.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sqlx::AnyConnection;

use crate::app::SiteConfig;
use crate::clock::Clock;
use crate::crypto::{Encrypter, TokenKind, constant_time_eq, sha256_hex};
use crate::error::OAuthError;
use crate::extract::bearer::Bearer;
use crate::extract::client_auth::ClientAuthorization;
use crate::model::{CompatSession, Scope, Session, User};
use crate::storage::{Database, StorageError, access_tokens, compat, introspection};

/// The answer (RFC 7662 §2.2). Absent fields are omitted; times are Unix seconds.
#[derive(Debug, Default, Serialize)]
pub struct IntrospectionResponse {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    /// A JSON integer: Synapse refuses `300.0` and `"300"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
}

impl IntrospectionResponse {
    const INACTIVE: Self = Self {
        active: false,
        scope: None,
        client_id: None,
        username: None,
        token_type: None,
        exp: None,
        expires_in: None,
        iat: None,
        nbf: None,
        sub: None,
        jti: None,
        device_id: None,
    };

    /// `exp` and `expires_in` (whole seconds, never negative) for a token that expires at
    /// `expires_at` (Unix ms); nothing for one that does not expire.
    fn set_expiry(&mut self, expires_at: Option<i64>, now: i64) {
        if let Some(expires_at) = expires_at {
            self.exp = Some(expires_at / 1000);
            self.expires_in = Some((expires_at - now).max(0) / 1000);
        }
    }

    /// The common fields of an active OAuth token of `session`.
    fn active(session: &Session, user: Option<&User>, created_at: i64) -> Self {
        Self {
            active: true,
            scope: Some(session.scope.normalize_for_introspection()),
            client_id: Some(session.client_id.to_string()),
            username: user.map(|user| user.username.clone()),
            sub: user.map(User::sub),
            iat: Some(created_at / 1000),
            nbf: Some(created_at / 1000),
            ..Self::INACTIVE
        }
    }
}

/// Why introspection failed: only the caller's authentication or a broken request.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The bearer secret is not `matrix.secret`.
    #[error("the bearer token is not the homeserver's secret")]
    BadSecret,
    /// No authentication at all.
    #[error("client authentication required")]
    Unauthenticated,
    /// A public client may not introspect.
    #[error("public clients may not introspect tokens")]
    PublicClient,
    /// Only clients declared in the config may introspect.
    #[error("only clients declared in the configuration may introspect tokens")]
    NotStatic,
}

impl From<RouteError> for OAuthError {
    fn from(error: RouteError) -> Self {
        let code = match error {
            RouteError::Unauthenticated | RouteError::NotStatic => "invalid_client",
            RouteError::BadSecret | RouteError::PublicClient => "access_denied",
        };
        Self::new(StatusCode::UNAUTHORIZED, code, error.to_string())
    }
}

/// `POST /oauth2/introspect`.
#[tracing::instrument(name = "handlers.oauth2.introspection.post", skip_all)]
pub async fn post(
    State(db): State<Database>,
    State(clock): State<Arc<dyn Clock>>,
    State(encrypter): State<Encrypter>,
    State(site): State<Arc<SiteConfig>>,
    headers: axum::http::HeaderMap,
    Bearer(bearer): Bearer,
    request: ClientAuthorization,
) -> Result<Response, OAuthError> {
    let mut conn = db.acquire().await?;
    match (&bearer, &request.credentials) {
        (Some(secret), _) => {
            if !constant_time_eq(secret.as_bytes(), site.matrix_secret.as_bytes()) {
                return Err(RouteError::BadSecret.into());
            }
        }
        (None, Some(credentials)) => {
            let client = credentials.authenticate(&mut conn, &encrypter).await?;
            if client.is_public() {
                return Err(RouteError::PublicClient.into());
            }
            if !client.is_static {
                return Err(RouteError::NotStatic.into());
            }
        }
        (None, None) => return Err(RouteError::Unauthenticated.into()),
    }
    let token = request.form.require("token")?;
    let hint = request.form.get("token_type_hint");
    let now = clock.now_unix_ms();
    let supports_device_id = headers
        .get("x-mas-supports-device-id")
        .is_some_and(|value| value.as_bytes() == b"1");
    let answer = introspect(
        &mut conn,
        clock.as_ref(),
        token,
        hint,
        now,
        supports_device_id,
    )
    .await?;
    Ok(Json(answer).into_response())
}

/// Looks `token` up and decides whether it is active at `now`.
///
/// `X-MAS-Supports-Device-Id: 1` (Synapse sends it) only changes the answer for compatibility
/// tokens, whose device goes in a separate `device_id` field (docs/protocol.md#introspection); an
/// OAuth session's device is always in its scope, in both forms. `supports_device_id` is whether
/// the caller sent it.
pub async fn introspect(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    token: &str,
    hint: Option<&str>,
    now: i64,
    supports_device_id: bool,
) -> Result<IntrospectionResponse, StorageError> {
    let Some(kind) = TokenKind::from_token(token) else {
        return Ok(IntrospectionResponse::INACTIVE);
    };
    let kind_hint = match kind {
        TokenKind::AccessToken | TokenKind::CompatAccessToken | TokenKind::PersonalAccessToken => {
            "access_token"
        }
        TokenKind::RefreshToken | TokenKind::CompatRefreshToken => "refresh_token",
    };
    if hint.is_some_and(|hint| hint != kind_hint) {
        return Ok(IntrospectionResponse::INACTIVE);
    }
    let hash = sha256_hex(token);
    match kind {
        TokenKind::AccessToken => access_token(conn, clock, &hash, now).await,
        TokenKind::RefreshToken => refresh_token(conn, &hash).await,
        TokenKind::CompatAccessToken => {
            compat_access_token(conn, clock, &hash, now, supports_device_id).await
        }
        TokenKind::CompatRefreshToken => {
            compat_refresh_token(conn, &hash, supports_device_id).await
        }
        // Personal access tokens are not issued yet, so none of them is ours.
        TokenKind::PersonalAccessToken => Ok(IntrospectionResponse::INACTIVE),
    }
}

/// An OAuth access token (`mat_`) by its hash; its first use is recorded.
async fn access_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    hash: &str,
    now: i64,
) -> Result<IntrospectionResponse, StorageError> {
    let Some(found) = introspection::lookup_access_token_for_introspection(conn, hash).await?
    else {
        return Ok(IntrospectionResponse::INACTIVE);
    };
    let token = &found.token;
    if !token.is_valid(now) || !is_live(&found.session, found.user.as_ref()) {
        return Ok(IntrospectionResponse::INACTIVE);
    }
    if token.first_used_at.is_none() {
        access_tokens::mark_access_token_first_used(conn, clock, token.id).await?;
    }
    let mut answer =
        IntrospectionResponse::active(&found.session, found.user.as_ref(), token.created_at);
    answer.token_type = Some("access_token");
    answer.jti = Some(token.id.to_string());
    answer.set_expiry(token.expires_at, now);
    Ok(answer)
}

/// An OAuth refresh token (`mar_`) by its hash.
async fn refresh_token(
    conn: &mut AnyConnection,
    hash: &str,
) -> Result<IntrospectionResponse, StorageError> {
    let Some(found) = introspection::lookup_refresh_token_for_introspection(conn, hash).await?
    else {
        return Ok(IntrospectionResponse::INACTIVE);
    };
    if !found.token.is_valid() || !is_live(&found.session, found.user.as_ref()) {
        return Ok(IntrospectionResponse::INACTIVE);
    }
    let mut answer =
        IntrospectionResponse::active(&found.session, found.user.as_ref(), found.token.created_at);
    answer.token_type = Some("refresh_token");
    answer.jti = Some(found.token.id.to_string());
    Ok(answer)
}

/// A compatibility access token (`mct_`, or an imported `syt_` or macaroon) by its hash; its first use is recorded.
async fn compat_access_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    hash: &str,
    now: i64,
    supports_device_id: bool,
) -> Result<IntrospectionResponse, StorageError> {
    let Some(found) = compat::lookup_compat_access_token(conn, hash).await? else {
        return Ok(IntrospectionResponse::INACTIVE);
    };
    let token = &found.token;
    if !token.is_valid(now) || !found.session.is_active() || !found.user.is_valid() {
        return Ok(IntrospectionResponse::INACTIVE);
    }
    if token.first_used_at.is_none() {
        compat::mark_compat_access_token_first_used(conn, clock, token.id).await?;
    }
    let mut answer = compat_active(
        &found.session,
        &found.user,
        token.created_at,
        supports_device_id,
    );
    answer.token_type = Some("access_token");
    answer.set_expiry(token.expires_at, now);
    Ok(answer)
}

/// A compatibility refresh token (`mcr_`, or an imported `syr_`) by its hash.
async fn compat_refresh_token(
    conn: &mut AnyConnection,
    hash: &str,
    supports_device_id: bool,
) -> Result<IntrospectionResponse, StorageError> {
    let Some(found) = compat::lookup_compat_refresh_token(conn, hash).await? else {
        return Ok(IntrospectionResponse::INACTIVE);
    };
    if !found.token.is_valid() || !found.session.is_active() || !found.user.is_valid() {
        return Ok(IntrospectionResponse::INACTIVE);
    }
    let mut answer = compat_active(
        &found.session,
        &found.user,
        found.token.created_at,
        supports_device_id,
    );
    answer.token_type = Some("refresh_token");
    Ok(answer)
}

/// The answer for an active compat token (docs/protocol.md#introspection): client `legacy`, both
/// API scope forms, the device in both scope forms unless the caller takes a separate `device_id`
/// field, and the Synapse admin scope for admin sessions.
fn compat_active(
    session: &CompatSession,
    user: &User,
    created_at: i64,
    supports_device_id: bool,
) -> IntrospectionResponse {
    use crate::model::scope::{
        API_STABLE, API_UNSTABLE, DEVICE_STABLE_PREFIX, DEVICE_UNSTABLE_PREFIX, SYNAPSE_ADMIN,
    };
    let mut tokens = vec![API_STABLE.to_owned(), API_UNSTABLE.to_owned()];
    let mut device_id = None;
    if supports_device_id {
        device_id = Some(session.device_id.clone());
    } else {
        tokens.push(format!("{DEVICE_STABLE_PREFIX}{}", session.device_id));
        tokens.push(format!("{DEVICE_UNSTABLE_PREFIX}{}", session.device_id));
    }
    if session.is_synapse_admin {
        tokens.push(SYNAPSE_ADMIN.to_owned());
    }
    // A device id that cannot be a scope token (a space, a quote) only travels in `device_id`.
    let scope = tokens
        .join(" ")
        .parse::<Scope>()
        .or_else(|_| {
            let mut plain = vec![API_STABLE, API_UNSTABLE];
            if session.is_synapse_admin {
                plain.push(SYNAPSE_ADMIN);
            }
            plain.join(" ").parse::<Scope>()
        })
        .ok();
    IntrospectionResponse {
        active: true,
        scope,
        client_id: Some("legacy".to_owned()),
        username: Some(user.username.clone()),
        sub: Some(user.sub()),
        iat: Some(created_at / 1000),
        nbf: Some(created_at / 1000),
        device_id,
        ..IntrospectionResponse::INACTIVE
    }
}

/// The session is not finished and its user (if it has one) is neither locked nor
/// deactivated. Synapse checks neither on this path, so this is the only guard.
fn is_live(session: &Session, user: Option<&User>) -> bool {
    session.is_active()
        && match session.user_id {
            Some(_) => user.is_some_and(User::is_valid),
            None => true,
        }
}

#[cfg(test)]
mod tests;
