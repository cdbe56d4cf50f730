//! `POST /_matrix/client/{v}/refresh` (Matrix client-server API "Refreshing access tokens";
//! docs/protocol.md#compat-layer): consumes a compat refresh token and issues a new access token
//! (lifetime `compat_token_ttl`) and refresh token; the old access token is revoked. A consumed,
//! revoked or unknown token is `M_UNKNOWN_TOKEN`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::errors::{parse_body, unknown_token};
use super::tokens::issue_refreshable_pair;
use crate::app::SiteConfig;
use crate::clock::Clock;
use crate::crypto::{TokenKind, sha256_hex};
use crate::error::MatrixError;
use crate::rng::RngSource;
use crate::storage::{Database, compat};

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// The answer: the new pair and the access token's lifetime (keys in alphabetical order, as
/// they were always written).
#[derive(Serialize)]
pub(super) struct RefreshResponse {
    access_token: String,
    expires_in_ms: u64,
    refresh_token: String,
}

/// `POST …/refresh`.
#[tracing::instrument(name = "handlers.compat.refresh.post", skip_all)]
pub(super) async fn post(
    State(db): State<Database>,
    State(clock): State<Arc<dyn Clock>>,
    State(rng): State<RngSource>,
    State(site): State<Arc<SiteConfig>>,
    body: Bytes,
) -> Result<Json<RefreshResponse>, MatrixError> {
    let request: RefreshRequest = parse_body(&body)?;
    if TokenKind::from_token(&request.refresh_token) != Some(TokenKind::CompatRefreshToken) {
        return Err(unknown_token());
    }
    let clock = clock.as_ref();
    let mut rng = rng.fork();
    let mut tx = db.begin_write().await?;
    let found = compat::lookup_compat_refresh_token(&mut tx, &sha256_hex(&request.refresh_token))
        .await?
        .ok_or_else(unknown_token)?;
    if !found.token.is_valid() || !found.session.is_active() || !found.user.is_valid() {
        return Err(unknown_token());
    }
    if !compat::consume_compat_refresh_token(&mut tx, clock, found.token.id).await? {
        return Err(unknown_token());
    }
    compat::revoke_compat_access_token(&mut tx, clock, found.token.access_token_id).await?;
    let pair = issue_refreshable_pair(
        &mut tx,
        clock,
        &mut rng,
        found.session.id,
        site.compat_token_ttl,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(compat_session.id = %found.session.id, "compat token refreshed");
    Ok(Json(RefreshResponse {
        access_token: pair.access_token,
        expires_in_ms: pair.expires_in_ms,
        refresh_token: pair.refresh_token,
    }))
}
