//! Budget figures of the OAuth API (issue 3): token introspection, the path every Synapse
//! request takes, the authorization-code exchange, and one poll of a waiting device's code
//! (issue 12: every device showing a QR code polls every 5 s); and of the compat layer (issue 4): a
//! legacy `m.login.password` login against one password hash done alone. Runs the real router from
//! `AppState::from_config` behind `lifecycle::serve` on a loopback TCP listener, and drives it
//! with a keep-alive hyper client in the same process (so client work is counted against the
//! server's throughput). The homeserver is the in-memory mock: the figures are MAS's own cost.
//!
//! Run with `cargo bench -p mas --bench oauth` (release build). SQLite always; PostgreSQL when
//! `DATABASE_URL` is set (a fresh database is created and dropped). Prints figures; asserts
//! no timing.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mas::app::{AppState, build_router};
use mas::clock::SystemClock;
use mas::crypto::{TokenKind, random, sha256_hex};
use mas::homeserver::MockHomeserver;
use mas::model::{
    ApplicationType, AuthenticationMethod, Client as OAuthClient, ClientAuthMethod, ClientMetadata,
    CodeChallenge, CodeChallengeMethod, GrantTypes, NewAuthorizationGrant, NewDeviceGrant,
    NewSession, ResponseMode,
};
use mas::ratelimit::{Quota, RateLimitConfig, RateLimiter};
use mas::rng::RngSource;
use mas::storage::{
    Database, access_tokens, browser_sessions, clients, device_grants, grants, oauth2_sessions,
    passwords, users,
};
use sqlx::Connection as _;
use tokio::task::JoinSet;

const SECRET: &str = "bench-shared-secret";
/// Tokens in the database; requests cycle through them.
const TOKENS: usize = 1_000;
const SINGLE_WARMUP: usize = 300;
const SINGLE_REQUESTS: usize = 3_000;
const CONCURRENT_CLIENTS: usize = 32;
const CONCURRENT_REQUESTS_EACH: usize = 600;
const EXCHANGES: usize = 300;
/// Device code polls measured, each on its own pending grant (the answer a waiting device gets
/// almost every time: `authorization_pending`, which also records the poll's time).
const POLLS: usize = 3_000;
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT_URI: &str = "io.element.app:/callback";
/// Compat logins measured (each costs one argon2id verification, about 25 ms).
const COMPAT_LOGINS: usize = 60;
const COMPAT_PASSWORD: &str = "correct horse battery staple";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!("MAS OAuth API benchmark ({} CPU cores)", num_cpus());
        let dir = tempfile::tempdir()?;
        let sqlite = format!("sqlite://{}", dir.path().join("mas.db").display());
        run("SQLite", &sqlite, None, dir.path()).await?;
        match std::env::var("DATABASE_URL") {
            Ok(admin_url) => {
                let name = format!("mas_bench_{}", std::process::id());
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(&format!(
                    "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
                     LC_COLLATE 'C' LC_CTYPE 'C'"
                ))
                .execute(&mut admin)
                .await?;
                let mut url = url::Url::parse(&admin_url)?;
                url.set_path(&name);
                let outcome = run("PostgreSQL", url.as_str(), Some("mas"), dir.path()).await;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                outcome?;
            }
            Err(_) => println!("\nPostgreSQL: skipped (DATABASE_URL not set)"),
        }
        Ok(())
    })
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The benchmark on one database.
async fn run(
    label: &str,
    uri: &str,
    schema: Option<&str>,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    println!("\n{label}");
    let config = config(uri, schema, dir)?;
    let db = Database::connect(&config.database).await?;
    mas::storage::migrate(&db).await?;
    let homeserver = Arc::new(MockHomeserver::new("example.com"));
    let mut state = AppState::from_config(
        &config,
        db.clone(),
        Arc::new(SystemClock),
        RngSource::from_entropy(),
        homeserver,
    )?;
    // The compat logins below come from one address in quick succession: the per-IP and
    // per-account limits would refuse all but the first few. Their cost (a map lookup) stays.
    let unlimited = Quota::new(1_000_000, 1_000_000.0);
    state.limiter = RateLimiter::new(RateLimitConfig {
        login_per_ip: unlimited,
        login_per_account: unlimited,
        ..RateLimitConfig::default()
    });
    let listener = config
        .http
        .listeners
        .first()
        .context("the config has a listener")?;
    let router = build_router(state.clone(), listener);
    let bound = mas::lifecycle::BoundListener::bind("bench", "127.0.0.1:0", router).await?;
    let address = bound.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mas::lifecycle::serve(vec![bound], async {
        let _ = stopped.await;
    }));

    let fixtures = Fixtures::create(&state).await?;
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENT_CLIENTS)
        .build_http();

    introspection_single(&client, address, &fixtures.tokens).await?;
    introspection_concurrent(&client, address, &fixtures.tokens).await?;
    code_exchange(&client, address, &state, &fixtures).await?;
    device_code_polling(&client, address, &state, &fixtures).await?;
    compat_password_login(&client, address, &state).await?;

    let _ = stop.send(());
    server.await??;
    db.close().await;
    Ok(())
}

/// A configuration like the appliance's, with the test keys and an inline secret.
fn config(
    uri: &str,
    schema: Option<&str>,
    dir: &std::path::Path,
) -> anyhow::Result<mas::config::RootConfig> {
    let rsa = dir.join("rsa.pem");
    let ec = dir.join("ec.pem");
    std::fs::write(&rsa, include_str!("../src/app/testdata/rsa.pem"))?;
    std::fs::write(&ec, include_str!("../src/app/testdata/ec.pem"))?;
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/mas");
    let schema = schema.map_or(String::new(), |schema| format!("  schema: {schema}\n"));
    let yaml = format!(
        "http:\n  public_base: \"http://localhost:8000/auth/\"\n  listeners:\n    - name: web\n      \
         prefix: /auth\n      binds: [{{address: \"127.0.0.1:0\"}}]\n      resources:\n        \
         - name: discovery\n        - name: oauth\n        - name: compat\n        - name: health\n\
         database:\n  uri: \"{uri}\"\n{schema}  max_connections: 10\n\
         matrix:\n  homeserver: example.com\n  endpoint: \"http://127.0.0.1:1/\"\n  secret: {SECRET}\n\
         secrets:\n  encryption: \"{key}\"\n  keys:\n    - key_file: \"{rsa}\"\n    - key_file: \"{ec}\"\n\
         passwords:\n  enabled: true\n  schemes:\n    - version: 1\n      algorithm: argon2id\n\
         templates:\n  path: \"{templates}\"\n",
        key = "0".repeat(64),
        rsa = rsa.display(),
        ec = ec.display(),
    );
    Ok(mas::config::from_str(&yaml)?)
}

/// The rows the benchmark uses, created through the storage functions.
struct Fixtures {
    client: OAuthClient,
    browser_session_id: ulid::Ulid,
    tokens: Arc<Vec<String>>,
}

impl Fixtures {
    async fn create(state: &AppState) -> anyhow::Result<Self> {
        let clock = SystemClock;
        let mut rng = state.rng.fork();
        let mut conn = state.db.pool().acquire().await?;
        let user = users::add_user(&mut conn, &clock, &mut rng, "alice").await?;
        let metadata = ClientMetadata {
            redirect_uris: vec![REDIRECT_URI.parse()?],
            grant_types: GrantTypes {
                authorization_code: true,
                refresh_token: true,
                device_code: true,
                ..GrantTypes::default()
            },
            client_name: Some("Element X".to_owned()),
            logo_uri: None,
            client_uri: Some("https://element.io/".parse()?),
            policy_uri: None,
            tos_uri: None,
            jwks_uri: None,
            jwks: None,
            id_token_signed_response_alg: None,
            userinfo_signed_response_alg: None,
            token_endpoint_auth_method: ClientAuthMethod::None,
            token_endpoint_auth_signing_alg: None,
            initiate_login_uri: None,
            application_type: Some(ApplicationType::Native),
            contacts: Vec::new(),
        };
        let client = clients::add_client(&mut conn, &clock, &mut rng, None, metadata, None).await?;
        let browser =
            browser_sessions::start_browser_session(&mut conn, &clock, &mut rng, &user, None, None)
                .await?;
        let password =
            passwords::add_password(&mut conn, &clock, &mut rng, user.id, "$x", 1, None).await?;
        browser_sessions::record_authentication(
            &mut conn,
            &clock,
            &mut rng,
            browser.id,
            AuthenticationMethod::Password {
                user_password_id: password.id,
            },
        )
        .await?;

        let mut tokens = Vec::with_capacity(TOKENS);
        let mut tx = state.db.begin_write().await?;
        for index in 0..TOKENS {
            let new = NewSession {
                client_id: client.id,
                user_id: Some(user.id),
                user_session_id: Some(browser.id),
                scope: format!(
                    "openid urn:matrix:client:api:* urn:matrix:client:device:DEVICE{index:06}"
                )
                .parse()?,
                user_agent: None,
                human_name: None,
            };
            let session =
                oauth2_sessions::create_oauth2_session(&mut tx, &clock, &mut rng, new).await?;
            let token = TokenKind::AccessToken.generate(&mut rng);
            access_tokens::add_access_token(
                &mut tx,
                &clock,
                &mut rng,
                session.id,
                &sha256_hex(&token),
                Some(Duration::from_secs(86_400)),
            )
            .await?;
            tokens.push(token);
        }
        tx.commit().await?;
        Ok(Self {
            client,
            browser_session_id: browser.id,
            tokens: Arc::new(tokens),
        })
    }

    /// A fulfilled grant with a device scope; returns its code.
    async fn grant(&self, state: &AppState, index: usize) -> anyhow::Result<String> {
        let clock = SystemClock;
        let mut rng = state.rng.fork();
        let mut conn = state.db.pool().acquire().await?;
        let request = NewAuthorizationGrant {
            client_id: self.client.id,
            redirect_uri: REDIRECT_URI.parse()?,
            redirect_uri_explicit: true,
            scope: format!(
                "openid urn:matrix:client:api:* urn:matrix:client:device:EXCH{index:06}"
            )
            .parse()?,
            state: None,
            nonce: Some("nonce".to_owned()),
            response_mode: ResponseMode::Query,
            response_type_code: true,
            response_type_id_token: false,
            code_challenge: Some(CodeChallenge {
                challenge: CHALLENGE.to_owned(),
                method: CodeChallengeMethod::S256,
            }),
            login_hint: None,
            prompt: None,
        };
        let grant =
            grants::create_authorization_grant(&mut conn, &clock, &mut rng, request).await?;
        let code = random::authorization_code(&mut rng);
        grants::fulfill_authorization_grant(
            &mut conn,
            &clock,
            grant.id,
            self.browser_session_id,
            Some(&sha256_hex(&code)),
        )
        .await?;
        Ok(code)
    }
}

/// One introspection request like Synapse's; fails unless the token is active.
async fn introspect(client: &HttpClient, address: SocketAddr, token: &str) -> anyhow::Result<()> {
    let request = Request::post(format!("http://{address}/auth/oauth2/introspect"))
        .header("authorization", format!("Bearer {SECRET}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-mas-supports-device-id", "1")
        .body(Full::new(Bytes::from(format!(
            "token={token}&token_type_hint=access_token"
        ))))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() || !body.starts_with(b"{\"active\":true") {
        bail!(
            "introspection answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

async fn introspection_single(
    client: &HttpClient,
    address: SocketAddr,
    tokens: &[String],
) -> anyhow::Result<()> {
    for token in tokens.iter().cycle().take(SINGLE_WARMUP.max(tokens.len())) {
        introspect(client, address, token).await?;
    }
    let mut latencies = Vec::with_capacity(SINGLE_REQUESTS);
    for token in tokens.iter().cycle().take(SINGLE_REQUESTS) {
        let start = Instant::now();
        introspect(client, address, token).await?;
        latencies.push(start.elapsed());
    }
    println!("  introspection, 1 client:    {}", summary(&mut latencies));
    Ok(())
}

async fn introspection_concurrent(
    client: &HttpClient,
    address: SocketAddr,
    tokens: &Arc<Vec<String>>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for worker in 0..CONCURRENT_CLIENTS {
        let (client, tokens) = (client.clone(), Arc::clone(tokens));
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(CONCURRENT_REQUESTS_EACH);
            for index in 0..CONCURRENT_REQUESTS_EACH {
                let token = &tokens[(worker * 31 + index) % tokens.len()];
                let begin = Instant::now();
                introspect(&client, address, token).await?;
                latencies.push(begin.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result??);
    }
    let elapsed = start.elapsed();
    let count = latencies.len();
    println!(
        "  introspection, {CONCURRENT_CLIENTS} clients:  {:.0} requests/s ({count} in {:.2} s); {}",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        summary(&mut latencies)
    );
    Ok(())
}

async fn code_exchange(
    client: &HttpClient,
    address: SocketAddr,
    state: &AppState,
    fixtures: &Fixtures,
) -> anyhow::Result<()> {
    let client_id = fixtures.client.id.to_string();
    let mut latencies = Vec::with_capacity(EXCHANGES);
    for index in 0..EXCHANGES + 20 {
        let code = fixtures.grant(state, index).await?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &client_id),
                ("code_verifier", VERIFIER),
            ])
            .finish();
        let request = Request::post(format!("http://{address}/auth/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))?;
        let start = Instant::now();
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let elapsed = start.elapsed();
        if !status.is_success() {
            bail!(
                "exchange answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        // The first exchanges warm up connections and caches.
        if index >= 20 {
            latencies.push(elapsed);
        }
    }
    println!(
        "  code exchange (RS256 ID token, device upsert on the mock): {}",
        summary(&mut latencies)
    );
    Ok(())
}

/// Issue 12's budget: one poll of a pending device code, p50 under 1 ms. Each poll is the
/// first of its grant, so it takes the path a device on time takes (find the grant by the hash
/// of its code, check it, record the poll: one read and one conditional write).
async fn device_code_polling(
    client: &HttpClient,
    address: SocketAddr,
    state: &AppState,
    fixtures: &Fixtures,
) -> anyhow::Result<()> {
    let clock = SystemClock;
    let mut rng = state.rng.fork();
    let scope: mas::model::Scope =
        "urn:matrix:client:api:* urn:matrix:client:device:POLLDEVICE".parse()?;
    let mut codes = Vec::with_capacity(POLLS + 20);
    let mut tx = state.db.begin_write().await?;
    for _ in 0..POLLS + 20 {
        let device_code = random::device_code(&mut rng);
        let new = NewDeviceGrant {
            client_id: fixtures.client.id,
            scope: scope.clone(),
            device_code_sha256: sha256_hex(&device_code),
            user_code: random::user_code(&mut rng),
            ip_address: Some("127.0.0.1".to_owned()),
            user_agent: None,
        };
        device_grants::add_device_grant(&mut tx, &clock, &mut rng, new).await?;
        codes.push(device_code);
    }
    tx.commit().await?;
    let client_id = fixtures.client.id.to_string();
    let mut latencies = Vec::with_capacity(POLLS);
    for (index, code) in codes.iter().enumerate() {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", code),
                ("client_id", &client_id),
            ])
            .finish();
        let request = Request::post(format!("http://{address}/auth/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))?;
        let start = Instant::now();
        let response = client.request(request).await?;
        let body = response.into_body().collect().await?.to_bytes();
        let elapsed = start.elapsed();
        if !body.starts_with(b"{\"error\":\"authorization_pending\"") {
            bail!("the poll answered {}", String::from_utf8_lossy(&body));
        }
        if index >= 20 {
            latencies.push(elapsed);
        }
    }
    println!("  device code poll (pending):  {}", summary(&mut latencies));
    Ok(())
}

/// Issue 4's budget: a compat `m.login.password` login is one password verification plus at
/// most 5 ms. Times the verification alone (the same `PasswordManager` call the handler makes)
/// and then whole logins through the router (user lookup, rate-limit checks, verification,
/// session and token rows in one write transaction, the device upsert on the mock homeserver,
/// the JSON answer), and prints both and their difference.
async fn compat_password_login(
    client: &HttpClient,
    address: SocketAddr,
    state: &AppState,
) -> anyhow::Result<()> {
    let manager = state
        .passwords
        .clone()
        .context("the bench config enables passwords")?;
    let mut rng = state.rng.fork();
    let (version, hash) = manager.hash(&mut rng, COMPAT_PASSWORD).await?;
    {
        let clock = SystemClock;
        let mut conn = state.db.pool().acquire().await?;
        let user = users::add_user(&mut conn, &clock, &mut rng, "compat").await?;
        passwords::add_password(&mut conn, &clock, &mut rng, user.id, &hash, version, None).await?;
    }

    let mut hash_alone = Vec::with_capacity(COMPAT_LOGINS);
    for index in 0..COMPAT_LOGINS + 3 {
        let start = Instant::now();
        manager.verify(version, &hash, COMPAT_PASSWORD).await?;
        if index >= 3 {
            hash_alone.push(start.elapsed());
        }
    }

    let mut logins = Vec::with_capacity(COMPAT_LOGINS);
    for index in 0..COMPAT_LOGINS + 3 {
        let body = serde_json::json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "compat"},
            "password": COMPAT_PASSWORD,
            "initial_device_display_name": "bench",
        });
        let request = Request::post(format!("http://{address}/auth/_matrix/client/v3/login"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let start = Instant::now();
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let elapsed = start.elapsed();
        if !status.is_success() || !body.windows(4).any(|w| w == b"mct_") {
            bail!(
                "compat login answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if index >= 3 {
            logins.push(elapsed);
        }
    }
    let p50 = |latencies: &mut [Duration]| {
        latencies.sort_unstable();
        latencies[latencies.len() / 2]
    };
    let overhead = p50(&mut logins).saturating_sub(p50(&mut hash_alone));
    println!(
        "  argon2id verification alone:            {}",
        summary(&mut hash_alone)
    );
    println!(
        "  compat m.login.password (mock device):  {}",
        summary(&mut logins)
    );
    println!(
        "  compat login on top of the hash:        p50 {:.3} ms (budget 5 ms)",
        overhead.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// `p50 … p90 … p99 … (n)` in milliseconds.
fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies
            .get(index)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms ({} requests)",
        at(0.5),
        at(0.9),
        at(0.99),
        latencies.len()
    )
}
