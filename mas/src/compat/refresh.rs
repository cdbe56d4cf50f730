//! `POST /_matrix/client/{v}/refresh` (Matrix client-server API "Refreshing access tokens";
//! docs/protocol.md#compat-layer): consumes a compat refresh token and issues a new access token
//! (lifetime `compat_token_ttl`) and refresh token; the old access token is revoked. A consumed,
//! revoked or unknown token is `M_UNKNOWN_TOKEN`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::crypto::{TokenKind, sha256_hex};
use crate::error::MatrixError;
use crate::storage::compat;

#[derive(Debug, Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// `POST …/refresh`.
#[tracing::instrument(name = "handlers.compat.refresh.post", skip_all)]
pub(super) async fn post(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, MatrixError> {
    let request: RefreshRequest = super::login::parse_body(&body)?;
    if TokenKind::from_token(&request.refresh_token) != Some(TokenKind::CompatRefreshToken) {
        return Err(super::logout::unknown_token());
    }
    let clock = state.clock.as_ref();
    let mut rng = state.rng.fork();
    let mut tx = state.db.begin_write().await?;
    let found = compat::lookup_compat_refresh_token(&mut tx, &sha256_hex(&request.refresh_token))
        .await?
        .ok_or_else(super::logout::unknown_token)?;
    if !found.token.is_valid() || !found.session.is_active() || !found.user.is_valid() {
        return Err(super::logout::unknown_token());
    }
    if !compat::consume_compat_refresh_token(&mut tx, clock, found.token.id).await? {
        return Err(super::logout::unknown_token());
    }
    compat::revoke_compat_access_token(&mut tx, clock, found.token.access_token_id).await?;
    let ttl = state.site.compat_token_ttl;
    let access_token = TokenKind::CompatAccessToken.generate(&mut rng);
    let access = compat::add_compat_access_token(
        &mut tx,
        clock,
        &mut rng,
        found.session.id,
        &sha256_hex(&access_token),
        Some(ttl),
    )
    .await?;
    let refresh_token = TokenKind::CompatRefreshToken.generate(&mut rng);
    compat::add_compat_refresh_token(
        &mut tx,
        clock,
        &mut rng,
        found.session.id,
        access.id,
        &sha256_hex(&refresh_token),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(compat_session.id = %found.session.id, "compat token refreshed");
    Ok(Json(json!({
        "access_token": access_token,
        "refresh_token": refresh_token,
        "expires_in_ms": u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
    })))
}
