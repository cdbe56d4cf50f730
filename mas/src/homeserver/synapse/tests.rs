//! The client against an in-process fake Synapse: paths, headers, bodies, status mapping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes as AxumBytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method as AxumMethod, StatusCode as AxumStatus, Uri as AxumUri};
use serde_json::{Value, json};

use super::*;
use crate::homeserver::{CONSENT_QUERY_TIMEOUT, FieldAction};

const SECRET: &str = "test-shared-secret-1234";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Option<Value>,
}

/// A canned answer for a path.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
}

impl Fake {
    fn answer(&self, path: &str, status: u16, body: &str) {
        self.answer_after(path, status, body, Duration::ZERO);
    }

    fn answer_after(&self, path: &str, status: u16, body: &str, delay: Duration) {
        let answer = Answer {
            status,
            body: body.to_owned(),
            delay,
        };
        self.answers
            .lock()
            .unwrap()
            .insert(format!("/_synapse/mas/{path}"), answer);
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

async fn handle(
    State(fake): State<Fake>,
    method: AxumMethod,
    uri: AxumUri,
    headers: HeaderMap,
    body: AxumBytes,
) -> (AxumStatus, HeaderMap, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    fake.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap()),
    });
    let answer = fake.answers.lock().unwrap().get(uri.path()).cloned();
    let Some(answer) = answer else {
        return (
            AxumStatus::NOT_FOUND,
            HeaderMap::new(),
            "<html>404</html>".to_owned(),
        );
    };
    tokio::time::sleep(answer.delay).await;
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    (
        AxumStatus::from_u16(answer.status).unwrap(),
        headers,
        answer.body,
    )
}

/// A fake Synapse on a free port, and a client for it whose endpoint has a path prefix.
async fn start() -> (Fake, SynapseConnection) {
    let fake = Fake::default();
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let endpoint = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let client = SynapseConnection::new("example.com", endpoint, SECRET).unwrap();
    (fake, client)
}

#[tokio::test]
async fn provision_user_posts_only_the_given_fields_and_maps_201_and_200() {
    let (fake, hs) = start().await;
    fake.answer("provision_user", 201, "{}");
    let request = ProvisionRequest {
        display_name: FieldAction::Set("Alice".to_owned()),
        avatar_url: FieldAction::Unset,
        emails: FieldAction::Set(vec!["alice@example.com".to_owned()]),
        locked: Some(false),
        ..ProvisionRequest::new("alice")
    };
    assert_eq!(
        hs.provision_user(&request).await.unwrap(),
        Upserted::Created
    );
    let seen = fake.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/_synapse/mas/provision_user");
    assert_eq!(
        seen.authorization.as_deref(),
        Some("Bearer test-shared-secret-1234")
    );
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        seen.body.unwrap(),
        json!({
            "localpart": "alice",
            "set_displayname": "Alice",
            "unset_avatar_url": true,
            "set_emails": ["alice@example.com"],
            "locked": false,
        })
    );

    fake.answer("provision_user", 200, "{}");
    let minimal = ProvisionRequest::new("alice");
    assert_eq!(
        hs.provision_user(&minimal).await.unwrap(),
        Upserted::Updated
    );
    assert_eq!(fake.last().body.unwrap(), json!({"localpart": "alice"}));
}

#[tokio::test]
async fn query_user_encodes_the_localpart_and_maps_404_to_none() {
    let (fake, hs) = start().await;
    let user = json!({
        "user_id": "@a/b+c:example.com",
        "display_name": null,
        "avatar_url": "mxc://example.com/x",
        "is_suspended": false,
        "is_deactivated": true,
    });
    fake.answer("query_user", 200, &user.to_string());
    let found = hs.query_user("a/b+c", CALL_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(found.user_id, "@a/b+c:example.com");
    assert_eq!(found.display_name, None);
    assert!(found.is_deactivated);
    let seen = fake.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.query.as_deref(), Some("localpart=a%2Fb%2Bc"));
    assert_eq!(seen.content_type, None);

    fake.answer(
        "query_user",
        404,
        r#"{"errcode":"M_NOT_FOUND","error":"User not found"}"#,
    );
    assert_eq!(hs.query_user("bob", CALL_TIMEOUT).await.unwrap(), None);

    fake.answer("query_user", 200, "not json");
    let error = hs.query_user("bob", CALL_TIMEOUT).await.unwrap_err();
    assert!(
        matches!(
            error,
            HomeserverError::BadResponse {
                call: "query_user",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn availability_maps_the_refusal_errcodes_to_false() {
    let (fake, hs) = start().await;
    fake.answer("is_localpart_available", 200, "{}");
    assert!(hs.is_localpart_available("carol").await.unwrap());
    assert_eq!(fake.last().query.as_deref(), Some("localpart=carol"));
    for errcode in ["M_USER_IN_USE", "M_INVALID_USERNAME", "M_EXCLUSIVE"] {
        let body = json!({"errcode": errcode, "error": "no"}).to_string();
        fake.answer("is_localpart_available", 400, &body);
        assert!(
            !hs.is_localpart_available("carol").await.unwrap(),
            "{errcode}"
        );
    }
    fake.answer("is_localpart_available", 400, r#"{"errcode":"M_UNKNOWN"}"#);
    let error = hs.is_localpart_available("carol").await.unwrap_err();
    assert_eq!(error.errcode(), Some("M_UNKNOWN"));

    fake.take();
    assert!(!hs.is_localpart_available("caröl").await.unwrap());
    assert!(fake.take().is_empty(), "a non-ASCII localpart is not sent");
}

#[tokio::test]
async fn device_calls_send_their_bodies_and_expect_their_statuses() {
    let (fake, hs) = start().await;
    fake.answer("upsert_device", 201, "{}");
    let created = hs.upsert_device("alice", "ALICEDEV", Some("Phone")).await;
    assert_eq!(created.unwrap(), Upserted::Created);
    let body = json!({"localpart": "alice", "device_id": "ALICEDEV", "display_name": "Phone"});
    assert_eq!(fake.last().body.unwrap(), body);
    fake.answer("upsert_device", 200, "{}");
    let updated = hs.upsert_device("alice", "ALICEDEV", None).await;
    assert_eq!(updated.unwrap(), Upserted::Updated);
    let body = json!({"localpart": "alice", "device_id": "ALICEDEV"});
    assert_eq!(fake.last().body.unwrap(), body);

    fake.answer("update_device_display_name", 200, "{}");
    hs.update_device_display_name("alice", "ALICEDEV", "Tablet")
        .await
        .unwrap();
    assert_eq!(fake.last().body.unwrap()["display_name"], "Tablet");

    fake.answer("delete_device", 204, "");
    hs.delete_device("alice", "ALICEDEV").await.unwrap();
    assert_eq!(fake.last().path, "/_synapse/mas/delete_device");
    fake.answer("delete_device", 200, "{}");
    let error = hs.delete_device("alice", "ALICEDEV").await.unwrap_err();
    assert!(
        matches!(error, HomeserverError::BadResponse { .. }),
        "{error}"
    );

    fake.answer("sync_devices", 200, "{}");
    let devices = ["B".to_owned(), "A".to_owned()].into();
    hs.sync_devices("alice", &devices).await.unwrap();
    assert_eq!(
        fake.last().body.unwrap(),
        json!({"localpart": "alice", "devices": ["A", "B"]})
    );
}

#[tokio::test]
async fn user_calls_send_their_bodies() {
    let (fake, hs) = start().await;
    for path in [
        "delete_user",
        "reactivate_user",
        "set_displayname",
        "unset_displayname",
        "allow_cross_signing_reset",
    ] {
        fake.answer(path, 200, "{}");
    }
    hs.delete_user("alice", true).await.unwrap();
    hs.reactivate_user("alice").await.unwrap();
    hs.set_displayname("alice", "Alice").await.unwrap();
    hs.unset_displayname("alice").await.unwrap();
    hs.allow_cross_signing_reset("alice").await.unwrap();
    let seen: Vec<(String, Value)> = fake
        .take()
        .into_iter()
        .map(|seen| (seen.path, seen.body.unwrap()))
        .collect();
    let alice = json!({"localpart": "alice"});
    let expected = vec![
        ("delete_user", json!({"localpart": "alice", "erase": true})),
        ("reactivate_user", alice.clone()),
        (
            "set_displayname",
            json!({"localpart": "alice", "displayname": "Alice"}),
        ),
        ("unset_displayname", alice.clone()),
        ("allow_cross_signing_reset", alice),
    ];
    let expected: Vec<(String, Value)> = expected
        .into_iter()
        .map(|(path, body)| (format!("/_synapse/mas/{path}"), body))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn error_statuses_carry_the_matrix_errcode() {
    let (fake, hs) = start().await;
    fake.answer(
        "upsert_device",
        404,
        r#"{"errcode":"M_NOT_FOUND","error":"User not found"}"#,
    );
    let error = hs.upsert_device("nobody", "X", None).await.unwrap_err();
    assert!(error.is_not_found() && !error.is_transient());
    assert_eq!(error.errcode(), Some("M_NOT_FOUND"));

    fake.answer(
        "set_displayname",
        403,
        r#"{"errcode":"M_UNKNOWN","error":"This endpoint must only be called by MAS"}"#,
    );
    let error = hs.set_displayname("alice", "A").await.unwrap_err();
    assert!(matches!(error, HomeserverError::Status { status: 403, .. }));

    // An HTML error page: a status without an errcode, worth a retry.
    let error = hs.reactivate_user("alice").await.unwrap_err();
    assert!(matches!(
        error,
        HomeserverError::Status {
            status: 404,
            errcode: None,
            ..
        }
    ));
    fake.answer("reactivate_user", 502, "<html>bad gateway</html>");
    let error = hs.reactivate_user("alice").await.unwrap_err();
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn a_slow_homeserver_times_out_and_a_closed_port_is_unreachable() {
    let (fake, hs) = start().await;
    fake.answer_after("query_user", 200, "{}", Duration::from_secs(5));
    let started = std::time::Instant::now();
    let error = hs
        .query_user("alice", CONSENT_QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            HomeserverError::Timeout {
                call: "query_user",
                ..
            }
        ),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let endpoint = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let hs = SynapseConnection::new("example.com", endpoint, SECRET).unwrap();
    let error = hs.unset_displayname("alice").await.unwrap_err();
    assert!(
        matches!(error, HomeserverError::Unreachable { .. }),
        "{error}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn an_endpoint_path_prefix_is_kept() {
    let (fake, hs) = start().await;
    let prefixed = Url::parse(&format!("{}prefix", hs.base)).unwrap();
    let hs = SynapseConnection::new("example.com", prefixed, SECRET).unwrap();
    let _ = hs.unset_displayname("alice").await;
    assert_eq!(fake.last().path, "/prefix/_synapse/mas/unset_displayname");
}

#[tokio::test]
async fn read_only_mode_skips_writes_but_still_reads() {
    let (fake, hs) = start().await;
    let hs = hs.with_read_only(true);
    fake.answer("query_user", 404, r#"{"errcode":"M_NOT_FOUND"}"#);
    assert_eq!(
        hs.provision_user(&ProvisionRequest::new("alice"))
            .await
            .unwrap(),
        Upserted::Updated
    );
    hs.delete_device("alice", "X").await.unwrap();
    hs.allow_cross_signing_reset("alice").await.unwrap();
    assert!(fake.take().is_empty());
    assert_eq!(hs.query_user("alice", CALL_TIMEOUT).await.unwrap(), None);
    assert_eq!(fake.take().len(), 1);
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let endpoint = Url::parse("http://127.0.0.1:8008").unwrap();
    let hs = SynapseConnection::new("example.com", endpoint, SECRET).unwrap();
    let debug = format!("{hs:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("http://127.0.0.1:8008/"), "{debug}");
}

#[test]
fn the_config_picks_the_mode_and_refuses_what_it_cannot_speak() {
    let mut config = MatrixConfig {
        secret: Some(SECRET.to_owned()),
        ..MatrixConfig::default()
    };
    assert!(!SynapseConnection::from_config(&config).unwrap().read_only);
    config.kind = HomeserverKind::SynapseReadOnly;
    assert!(SynapseConnection::from_config(&config).unwrap().read_only);
    config.kind = HomeserverKind::SynapseLegacy;
    assert!(matches!(
        SynapseConnection::from_config(&config),
        Err(SynapseSetupError::UnsupportedKind(_))
    ));
    config.kind = HomeserverKind::Synapse;
    config.endpoint = Url::parse("https://synapse.example.com/").unwrap();
    assert!(matches!(
        SynapseConnection::from_config(&config),
        Err(SynapseSetupError::UnsupportedScheme(_))
    ));
    config.secret = None;
    assert!(matches!(
        SynapseConnection::from_config(&config),
        Err(SynapseSetupError::Secret(_))
    ));
}
