//! Router-level tests of the compat layer, on both backends, by topic: `login` (the flows
//! and `POST …/login`), `tokens` (compat tokens seen by introspection and the device set),
//! `sessions` (logout, logout/all, refresh). The helpers they share are here.

mod login;
mod sessions;
mod tokens;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::app::testing::{MATRIX_SECRET, TestApp, TestResponse, bearer, form_request};
use crate::model::{CompatSession, User};
use crate::storage::{compat, jobs};

const LOGIN: &str = "/auth/_matrix/client/v3/login";

/// `POST path` with a raw body, from `peer` when given.
async fn post_raw(app: &TestApp, path: &str, body: &str, peer: Option<&str>) -> TestResponse {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "Element/1.0")
        .body(Body::from(body.to_owned()))
        .unwrap();
    if let Some(peer) = peer {
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    app.request(request).await
}

async fn login(app: &TestApp, body: &Value) -> TestResponse {
    post_raw(app, LOGIN, &body.to_string(), None).await
}

fn password_body(user: &str, password: &str) -> Value {
    json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user },
        "password": password,
    })
}

fn errcode(response: &TestResponse) -> String {
    response.json()["errcode"].as_str().unwrap().to_owned()
}

/// Introspects `token` as Synapse does, with or without `X-MAS-Supports-Device-Id: 1`.
async fn introspect(app: &TestApp, token: &str, device_header: bool) -> Value {
    let mut request = form_request(Method::POST, "/auth/oauth2/introspect", &[("token", token)]);
    if device_header {
        request
            .headers_mut()
            .insert("x-mas-supports-device-id", "1".parse().unwrap());
    }
    let response = app.request(bearer(request, MATRIX_SECRET)).await;
    response.assert_status(StatusCode::OK);
    response.json()
}

/// The user's compat sessions that are not finished.
async fn active_compat_sessions(app: &TestApp, user: &User) -> Vec<CompatSession> {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    compat::list_active_compat_sessions(&mut conn, user.id)
        .await
        .unwrap()
}

/// Whether a job is queued (the device sync after a session ended).
async fn a_job_is_queued(app: &TestApp) -> bool {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    jobs::next_job_due_at(&mut conn).await.unwrap().is_some()
}
