//! `POST /_matrix/client/{v}/logout` and `…/logout/all` (Matrix client-server API, "Logout";
//! docs/protocol.md#compat-layer): end compat sessions (never OAuth ones) through
//! [`SessionEnder`](crate::auth::sessions::SessionEnder), which deletes their devices in Synapse
//! at once (so the token stops working despite Synapse's introspection cache) and queues a
//! device sync for the user.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::errors::{parse_body, unknown_token};
use crate::auth::sessions::SessionHandles;
use crate::clock::Clock;
use crate::crypto::{TokenKind, sha256_hex};
use crate::error::MatrixError;
use crate::extract::bearer::Bearer;
use crate::model::{CompatSession, User};
use crate::storage::{Database, compat};

#[derive(Debug, Default, Deserialize)]
struct LogoutAllRequest {
    #[serde(rename = "io.element.only_compat_is_fine", default)]
    only_compat_is_fine: bool,
}

/// The answer of both endpoints: an empty object.
#[derive(Debug, Serialize)]
pub(super) struct LoggedOut {}

/// The live compat session of the request's bearer token: no token → `M_MISSING_TOKEN`,
/// anything else than an active compat access token → `M_UNKNOWN_TOKEN`.
async fn authenticate(
    db: &Database,
    clock: &dyn Clock,
    bearer: Option<&str>,
) -> Result<(CompatSession, User), MatrixError> {
    let Some(token) = bearer else {
        return Err(MatrixError::new(
            StatusCode::UNAUTHORIZED,
            "M_MISSING_TOKEN",
            "Missing access token",
        ));
    };
    if TokenKind::from_token(token) != Some(TokenKind::CompatAccessToken) {
        return Err(unknown_token());
    }
    let mut conn = db.acquire().await?;
    let found = compat::lookup_compat_access_token(&mut conn, &sha256_hex(token))
        .await?
        .ok_or_else(unknown_token)?;
    let now = clock.now_unix_ms();
    if !found.token.is_valid(now) || !found.session.is_active() || !found.user.is_valid() {
        return Err(unknown_token());
    }
    Ok((found.session, found.user))
}

/// `POST …/logout`.
#[tracing::instrument(name = "handlers.compat.logout.post", skip_all)]
pub(super) async fn logout(
    State(handles): State<SessionHandles>,
    Bearer(bearer): Bearer,
) -> Result<Json<LoggedOut>, MatrixError> {
    let (session, user) =
        authenticate(&handles.db, handles.clock.as_ref(), bearer.as_deref()).await?;
    handles
        .ender()
        .end_compat_sessions(&user, std::slice::from_ref(&session))
        .await?;
    tracing::info!(user.id = %user.id, compat_session.id = %session.id, "compat logout");
    Ok(Json(LoggedOut {}))
}

/// `POST …/logout/all`: only with `io.element.only_compat_is_fine: true`, since OAuth
/// sessions are not ended here.
#[tracing::instrument(name = "handlers.compat.logout_all.post", skip_all)]
pub(super) async fn logout_all(
    State(handles): State<SessionHandles>,
    Bearer(bearer): Bearer,
    body: Bytes,
) -> Result<Json<LoggedOut>, MatrixError> {
    let (_, user) = authenticate(&handles.db, handles.clock.as_ref(), bearer.as_deref()).await?;
    let request: LogoutAllRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutAllRequest::default()
    } else {
        parse_body(&body)?
    };
    if !request.only_compat_is_fine {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_UNRECOGNIZED",
            "Logging out of all sessions is not supported by this deployment",
        ));
    }
    let mut conn = handles.db.acquire().await?;
    let sessions = compat::list_active_compat_sessions(&mut conn, user.id).await?;
    drop(conn);
    handles
        .ender()
        .end_compat_sessions(&user, &sessions)
        .await?;
    tracing::info!(user.id = %user.id, sessions = sessions.len(), "compat logout of all sessions");
    Ok(Json(LoggedOut {}))
}
