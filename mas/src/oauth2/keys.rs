//! `GET /oauth2/keys.json` (RFC 7517 JWKS; docs/protocol.md#discovery): the public halves of the
//! signing keys, with their stable `kid`s, for checking ID tokens and signed userinfo.

use axum::Json;
use axum::extract::State;

use crate::app::AppState;
use crate::crypto::Jwks;

/// `GET /oauth2/keys.json`.
#[tracing::instrument(name = "handlers.oauth2.keys.get", skip_all)]
pub async fn get(State(state): State<AppState>) -> Json<Jwks> {
    Json(state.keystore.jwks())
}
