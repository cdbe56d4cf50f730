//! `GET /oauth2/keys.json` (RFC 7517 JWKS; docs/protocol.md#discovery): the public halves of the
//! signing keys, with their stable `kid`s, for checking ID tokens and signed userinfo.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::crypto::Jwks;
use crate::crypto::keystore::Keystore;

/// `GET /oauth2/keys.json`.
#[tracing::instrument(name = "handlers.oauth2.keys.get", skip_all)]
pub async fn get(State(keystore): State<Arc<Keystore>>) -> Json<Jwks> {
    Json(keystore.jwks())
}
