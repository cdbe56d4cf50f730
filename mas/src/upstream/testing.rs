//! [`FakeProvider`]: an in-process OpenID provider for tests (axum on `127.0.0.1:0`) serving
//! discovery, a JWKS, `/authorize` (approves at once), `/token` and `/userinfo`, signing with
//! fixed test keys on a shared [`MockClock`]. [`Knobs`] make it misbehave (wrong nonce, issuer
//! or audience, another signing key, expired tokens, no PKCE, token errors, answers over the
//! size limit),
//! [`FakeProvider::set_down`] takes it down, and it records what it was asked
//! ([`FakeProvider::log`]).
//!
//! Typical use (router tests too):
//!
//! ```ignore
//! let fake = FakeProvider::start().await;
//! let app = TestApp::with_upstream(db, fake.clock.clone(), &fake.upstream_config()).await;
//! // GET /auth/upstream/authorize/<PROVIDER_ID> → 302 to the fake's /authorize; then:
//! let callback = fake.approve(&location);   // <redirect_uri>?code=…&state=…
//! ```
//!
//! Every answer carries `Connection: close`, so clients pool nothing and
//! [`FakeProvider::set_down`] takes effect at once: while down, connections are accepted and
//! dropped (the client sees a transport error, as with a provider that is unreachable).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt as _, Full};
use rand::SeedableRng as _;
use serde_json::{Map, Value, json};
use url::Url;

use super::{UpstreamProviders, code_challenge};
use crate::clock::{Clock as _, MockClock};
use crate::config::UpstreamOAuth2Config;
use crate::config::upstream::ProviderConfig;
use crate::crypto::jwk::{Jwk, Jwks};
use crate::crypto::{SigningKey, jwt, oidc_hash};

/// The id tests give the fake provider (the Cloudron provider's constant).
pub(crate) const PROVIDER_ID: &str = "01J00000000000000000PR0V1D";
/// Our client id at the fake provider.
pub(crate) const CLIENT_ID: &str = "matrix-client";
/// Our client secret at the fake provider.
pub(crate) const CLIENT_SECRET: &str = "client secret:1234";

const RSA_PEM: &str = include_str!("testdata/provider_rsa.pem");
const OTHER_RSA_PEM: &str = include_str!("testdata/other_rsa.pem");
const EC_PEM: &str = include_str!("testdata/provider_ec.pem");
const RSA_KID: &str = "rsa-1";
const ROTATED_KID: &str = "rsa-2";
const EC_KID: &str = "ec-1";

/// How the fake provider misbehaves. The default behaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Knobs {
    /// Discovery does not list S256 (and a `code_challenge` is ignored).
    pub(crate) no_pkce: bool,
    /// The ID token's `nonce` is not the request's.
    pub(crate) wrong_nonce: bool,
    /// The ID token's `iss` is another issuer.
    pub(crate) wrong_issuer: bool,
    /// The ID token's `aud` is another client.
    pub(crate) wrong_audience: bool,
    /// The ID token's `aud` also names this client; `azp` is ours unless `wrong_azp`.
    pub(crate) extra_audience: Option<String>,
    /// `azp` names another client.
    pub(crate) wrong_azp: bool,
    /// The ID token is signed by a key not in the JWKS, under the JWKS key's `kid`.
    pub(crate) other_key: bool,
    /// The ID token expired (beyond the 30 s leeway).
    pub(crate) expired: bool,
    /// The ID token's `at_hash` does not match the access token.
    pub(crate) bad_at_hash: bool,
    /// The ID token is signed with ES256 (`ec-1`) instead of RS256.
    pub(crate) es256: bool,
    /// The token endpoint answers this OAuth error (400).
    pub(crate) token_error: Option<String>,
    /// `/authorize` answers `error=access_denied` (the person cancelled).
    pub(crate) deny: bool,
    /// Merged into the discovery document (`null` removes a member).
    pub(crate) discovery_patch: Map<String, Value>,
    /// Merged into the ID token's claims (`null` removes a claim).
    pub(crate) id_token_patch: Map<String, Value>,
    /// Merged into the userinfo answer (`null` removes a claim).
    pub(crate) userinfo_patch: Map<String, Value>,
    /// One endpoint's answer is padded past the 1 MiB MAS reads.
    pub(crate) oversized: Option<Oversized>,
}

/// An answer padded with 2 MiB of leading whitespace: still valid JSON, so only the size
/// limit refuses it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Oversized {
    /// The path whose answer is padded (`/.well-known/openid-configuration`, `/jwks`,
    /// `/token`, `/userinfo`).
    pub(crate) path: &'static str,
    /// Sent without `Content-Length` (chunked), so only reading the stream tells.
    pub(crate) chunked: bool,
}

const OVERSIZE_PADDING: usize = 2 * 1024 * 1024;

/// One token request as received.
#[derive(Debug, Clone)]
pub(crate) struct TokenRequest {
    /// The HTTP Basic credentials (decoded), if any.
    pub(crate) basic: Option<(String, String)>,
    /// The form.
    pub(crate) form: BTreeMap<String, String>,
}

/// What the fake provider was asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    pub(crate) discovery: usize,
    pub(crate) jwks: usize,
    pub(crate) authorize: usize,
    pub(crate) token: Vec<TokenRequest>,
    pub(crate) userinfo: usize,
}

/// An authorization code waiting for the token request.
#[derive(Debug, Clone)]
struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    claims: Map<String, Value>,
}

struct Inner {
    issuer: String,
    clock: MockClock,
    key: SigningKey,
    other_key: SigningKey,
    ec_key: SigningKey,
    rotated: AtomicBool,
    down: Arc<AtomicBool>,
    counter: AtomicUsize,
    knobs: Mutex<Knobs>,
    user: Mutex<Map<String, Value>>,
    codes: Mutex<HashMap<String, Grant>>,
    access_tokens: Mutex<HashMap<String, Map<String, Value>>>,
    log: Mutex<Log>,
}

/// A running fake provider; stops when dropped.
pub(crate) struct FakeProvider {
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub(crate) issuer: String,
    /// The clock it signs with; give the same one to the code under test.
    pub(crate) clock: MockClock,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The person who logs in by default.
pub(crate) fn default_user() -> Map<String, Value> {
    let Value::Object(user) = json!({
        "sub": "alice",
        "preferred_username": "alice",
        "name": "Alice Liddell",
        "email": "alice@example.org",
        "email_verified": true,
    }) else {
        unreachable!()
    };
    user
}

impl FakeProvider {
    /// Starts on a fresh [`MockClock::default`].
    pub(crate) async fn start() -> Self {
        Self::start_with_clock(MockClock::default()).await
    }

    /// Starts on `clock`.
    pub(crate) async fn start_with_clock(clock: MockClock) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let down = Arc::new(AtomicBool::new(false));
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            clock: clock.clone(),
            key: SigningKey::from_pem(RSA_PEM).unwrap(),
            other_key: SigningKey::from_pem(OTHER_RSA_PEM).unwrap(),
            ec_key: SigningKey::from_pem(EC_PEM).unwrap(),
            rotated: AtomicBool::new(false),
            down: down.clone(),
            counter: AtomicUsize::new(0),
            knobs: Mutex::new(Knobs::default()),
            user: Mutex::new(default_user()),
            codes: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(Log::default()),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .layer(axum::middleware::from_fn_with_state(
                inner.clone(),
                oversize,
            ))
            .layer(axum::middleware::map_response(close_connection))
            .with_state(inner.clone());
        let listener = DownableListener {
            inner: listener,
            down,
        };
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            issuer,
            clock,
            inner,
            server,
        }
    }

    /// Changes the knobs.
    pub(crate) fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.inner.knobs.lock().unwrap());
    }

    /// Takes the provider down (connections dropped) or brings it back.
    pub(crate) fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Replaces the person who logs in next.
    pub(crate) fn set_user(&self, user: Value) {
        let Value::Object(user) = user else {
            panic!("a user is a JSON object")
        };
        *self.inner.user.lock().unwrap() = user;
    }

    /// Rotates the RSA key: the JWKS now lists `rsa-2` (a new key) instead of `rsa-1`, and
    /// ID tokens are signed with it.
    pub(crate) fn rotate_keys(&self) {
        self.inner.rotated.store(true, Ordering::SeqCst);
    }

    /// What it was asked so far.
    pub(crate) fn log(&self) -> Log {
        self.inner.log.lock().unwrap().clone()
    }

    /// `<issuer><path>`.
    pub(crate) fn url(&self, path: &str) -> Url {
        format!("{}{path}", self.issuer).parse().unwrap()
    }

    /// A provider entry like the Cloudron one the supervisor renders: our client with a
    /// secret (`client_secret_basic`), `openid profile email`, strict discovery, PKCE auto,
    /// userinfo, localpart `require`, display name and email `force`, no confirmation.
    pub(crate) fn provider_config(&self) -> ProviderConfig {
        serde_json::from_value(json!({
            "id": PROVIDER_ID,
            "issuer": self.issuer,
            "human_name": "Fake IdP",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "openid profile email",
            "discovery_mode": "oidc",
            "token_endpoint_auth_method": "client_secret_basic",
            "pkce_method": "auto",
            "fetch_userinfo": true,
            "claims_imports": {
                "subject": { "template": "{{ user.sub }}" },
                "localpart": {
                    "action": "require",
                    "template": "{{ user.preferred_username }}",
                    "on_conflict": "fail",
                },
                "displayname": { "action": "force", "template": "{{ user.name }}" },
                "email": { "action": "force", "template": "{{ user.email }}" },
                "skip_confirmation": true,
            },
        }))
        .unwrap()
    }

    /// `upstream_oauth2` with [`Self::provider_config`] only.
    pub(crate) fn upstream_config(&self) -> UpstreamOAuth2Config {
        UpstreamOAuth2Config {
            providers: vec![self.provider_config()],
        }
    }

    /// The providers of `config` on this provider's clock.
    pub(crate) fn providers_for(&self, config: &UpstreamOAuth2Config) -> UpstreamProviders {
        UpstreamProviders::from_config(config, Arc::new(self.clock.clone())).unwrap()
    }

    /// What the person's browser gets back from the provider for `authorization_url` (the
    /// URL MAS redirected to): `<redirect_uri>?code=…&state=…` (or `error=access_denied` with
    /// the `deny` knob). Panics when the request is not one the provider accepts.
    pub(crate) fn approve(&self, authorization_url: &Url) -> Url {
        let query: HashMap<String, String> = authorization_url.query_pairs().into_owned().collect();
        self.inner.authorize(&query).unwrap()
    }
}

impl Inner {
    fn next(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.counter.fetch_add(1, Ordering::SeqCst))
    }

    fn knobs(&self) -> Knobs {
        self.knobs.lock().unwrap().clone()
    }

    fn authorize(&self, query: &HashMap<String, String>) -> Result<Url, String> {
        self.log.lock().unwrap().authorize += 1;
        let param = |name: &str| query.get(name).cloned();
        if param("client_id").as_deref() != Some(CLIENT_ID) {
            return Err("unknown client_id".to_owned());
        }
        if param("response_type").as_deref() != Some("code") {
            return Err("response_type must be code".to_owned());
        }
        let redirect_uri = param("redirect_uri").ok_or("no redirect_uri")?;
        let mut callback: Url = redirect_uri.parse().map_err(|_| "bad redirect_uri")?;
        let knobs = self.knobs();
        {
            let mut pairs = callback.query_pairs_mut();
            if knobs.deny {
                pairs.append_pair("error", "access_denied");
            } else {
                let code = self.next("code");
                let code_challenge = if knobs.no_pkce {
                    None
                } else {
                    match (param("code_challenge"), param("code_challenge_method")) {
                        (Some(challenge), Some(method)) if method == "S256" => Some(challenge),
                        (None, None) => None,
                        _ => return Err("only S256 PKCE".to_owned()),
                    }
                };
                let grant = Grant {
                    redirect_uri,
                    nonce: param("nonce"),
                    code_challenge,
                    claims: self.user.lock().unwrap().clone(),
                };
                self.codes.lock().unwrap().insert(code.clone(), grant);
                pairs.append_pair("code", &code);
            }
            if let Some(state) = param("state") {
                pairs.append_pair("state", &state);
            }
        }
        Ok(callback)
    }

    fn discovery_document(&self) -> Value {
        let issuer = &self.issuer;
        let knobs = self.knobs();
        let mut document = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email"],
        });
        if !knobs.no_pkce {
            document["code_challenge_methods_supported"] = json!(["S256"]);
        }
        patch(&mut document, &knobs.discovery_patch);
        document
    }

    fn jwks(&self) -> Jwks {
        let rsa = if self.rotated.load(Ordering::SeqCst) {
            (&self.other_key, ROTATED_KID)
        } else {
            (&self.key, RSA_KID)
        };
        Jwks {
            keys: [rsa, (&self.ec_key, EC_KID)]
                .into_iter()
                .map(|(key, kid)| Jwk {
                    kid: Some(kid.to_owned()),
                    ..Jwk::public(key)
                })
                .collect(),
        }
    }

    /// Checks a token request; answers the tokens or an OAuth error.
    fn token(&self, request: &TokenRequest) -> Result<Value, (StatusCode, String)> {
        let knobs = self.knobs();
        let form = &request.form;
        let authenticated = match &request.basic {
            Some((id, secret)) => id == CLIENT_ID && secret == CLIENT_SECRET,
            None => {
                form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                    && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
            }
        };
        if !authenticated {
            return Err((StatusCode::UNAUTHORIZED, "invalid_client".to_owned()));
        }
        if let Some(error) = knobs.token_error {
            return Err((StatusCode::BAD_REQUEST, error));
        }
        if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return Err((StatusCode::BAD_REQUEST, "unsupported_grant_type".to_owned()));
        }
        let code = form.get("code").cloned().unwrap_or_default();
        let grant = self
            .codes
            .lock()
            .unwrap()
            .remove(&code)
            .ok_or_else(|| (StatusCode::BAD_REQUEST, "invalid_grant".to_owned()))?;
        if form.get("redirect_uri") != Some(&grant.redirect_uri) {
            return Err((StatusCode::BAD_REQUEST, "invalid_grant".to_owned()));
        }
        if let Some(challenge) = &grant.code_challenge
            && form
                .get("code_verifier")
                .map(|v| code_challenge(v))
                .as_ref()
                != Some(challenge)
        {
            return Err((StatusCode::BAD_REQUEST, "invalid_grant".to_owned()));
        }
        let access_token = self.next("access-token");
        self.access_tokens
            .lock()
            .unwrap()
            .insert(access_token.clone(), grant.claims.clone());
        let id_token = self.id_token(&knobs, &grant, &access_token);
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": id_token,
            "scope": "openid profile email",
        }))
    }

    fn id_token(&self, knobs: &Knobs, grant: &Grant, access_token: &str) -> String {
        let now = self.clock.now_unix_ms() / 1000;
        let (key, kid) = if knobs.es256 {
            (&self.ec_key, EC_KID)
        } else if self.rotated.load(Ordering::SeqCst) {
            (&self.other_key, ROTATED_KID)
        } else if knobs.other_key {
            (&self.other_key, RSA_KID)
        } else {
            (&self.key, RSA_KID)
        };
        let alg = jwt::JwsAlgorithm::of(key);
        let mut claims = Value::Object(grant.claims.clone());
        let audience = if knobs.wrong_audience {
            json!("someone-else")
        } else if let Some(extra) = &knobs.extra_audience {
            json!([CLIENT_ID, extra])
        } else {
            json!(CLIENT_ID)
        };
        let protocol = json!({
            "iss": if knobs.wrong_issuer { "https://evil.example.com" } else { &self.issuer },
            "aud": audience,
            "iat": now,
            "exp": if knobs.expired { now - 120 } else { now + 300 },
            "auth_time": now,
            "nonce": if knobs.wrong_nonce { Some("not-the-nonce") } else { grant.nonce.as_deref() },
            "at_hash": if knobs.bad_at_hash {
                oidc_hash(alg, "another-token")
            } else {
                oidc_hash(alg, access_token)
            },
        });
        let Value::Object(protocol) = protocol else {
            unreachable!()
        };
        patch(&mut claims, &protocol);
        if knobs.extra_audience.is_some() || knobs.wrong_azp {
            claims["azp"] = json!(if knobs.wrong_azp {
                "someone-else"
            } else {
                CLIENT_ID
            });
        }
        patch(&mut claims, &knobs.id_token_patch);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        jwt::sign(&mut rng, key, kid, &claims).unwrap()
    }
}

/// Merges `changes` into the object `target`; `null` removes a member.
fn patch(target: &mut Value, changes: &Map<String, Value>) {
    let Value::Object(target) = target else {
        return;
    };
    for (name, value) in changes {
        if value.is_null() {
            target.remove(name);
        } else {
            target.insert(name.clone(), value.clone());
        }
    }
}

async fn close_connection(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Pads the answer when the [`Oversized`] knob names this path.
async fn oversize(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let Some(oversized) = inner.knobs().oversized.filter(|knob| knob.path == path) else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut padded = vec![b' '; OVERSIZE_PADDING];
    padded.extend_from_slice(&body);
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = Full::new(Bytes::from(padded));
    let body = if oversized.chunked {
        // MapFrame has no size hint, so hyper sends it chunked without Content-Length.
        Body::new(body.map_frame(|frame| frame))
    } else {
        Body::new(body)
    };
    Response::from_parts(parts, body)
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Json<Value> {
    inner.log.lock().unwrap().discovery += 1;
    Json(inner.discovery_document())
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Json<Jwks> {
    inner.log.lock().unwrap().jwks += 1;
    Json(inner.jwks())
}

async fn authorize(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match inner.authorize(&query) {
        Ok(callback) => Redirect::to(callback.as_str()).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|decoded| {
            let (id, secret) = decoded.split_once(':')?;
            let decode = |part: &str| {
                url::form_urlencoded::parse(format!("x={part}").as_bytes())
                    .next()
                    .map(|(_, value)| value.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let request = TokenRequest { basic, form };
    inner.log.lock().unwrap().token.push(request.clone());
    match inner.token(&request) {
        Ok(tokens) => Json(tokens).into_response(),
        Err((status, error)) => (
            status,
            Json(json!({ "error": error, "error_description": "refused by the fake provider" })),
        )
            .into_response(),
    }
}

async fn userinfo(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    inner.log.lock().unwrap().userinfo += 1;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(claims) = inner.access_tokens.lock().unwrap().get(token).cloned() else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token"})),
        )
            .into_response();
    };
    let mut claims = Value::Object(claims);
    patch(&mut claims, &inner.knobs().userinfo_patch);
    Json(claims).into_response()
}

/// A TCP listener that drops every connection while `down` is set.
struct DownableListener {
    inner: tokio::net::TcpListener,
    down: Arc<AtomicBool>,
}

impl axum::serve::Listener for DownableListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.down.load(Ordering::SeqCst) {
                        drop(stream);
                        continue;
                    }
                    return (stream, addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
