//! `GET /health` (docs/protocol.md#pages): 200 `ok` when the database answers `SELECT 1`, else 503
//! with a short reason. The appliance's readiness probe.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing;

use crate::app::AppState;
use crate::routes;
use crate::storage::Database;
use crate::telemetry::ErrorChain;

/// A probe must answer quickly even when the database hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(routes::HEALTH, routing::get(get))
}

#[tracing::instrument(name = "handlers.health.get", skip_all)]
pub(crate) async fn get(State(db): State<Database>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(PING_TIMEOUT, db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok"),
        Ok(Err(error)) => {
            tracing::warn!(error = %ErrorChain(&error), "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => {
            tracing::warn!("health check: database did not answer in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database timed out")
        }
    }
}
