//! The QR-login test client (issue 12): "Sign in with a QR code" as Element X does it, with
//! matrix-sdk (the engine of Element X) playing both devices in one process.
//!
//! Device A signs in with the OAuth 2.0 authorization code flow (MSC2964, a native client with a
//! loopback redirect, MSC2966 dynamic registration) and sets up cross-signing. A then shows a QR
//! code (MSC4108, the existing device generates it) that device B, a fresh client with its own
//! store, scans; B gets its tokens through the device authorization grant (RFC 8628) that A
//! approves in the browser, and A hands B the cross-signing secrets over the secure channel.
//!
//! The driver (tests/e2e/qr-login.suite.mjs) talks to this process in JSON lines: one event
//! object per line on stdout, answers on stdin. In order:
//!
//! - `{"event":"authorize","url"}`: open this in the browser; answer `{"callback":URL}` with the
//!   URL the loopback redirect received;
//! - `{"event":"signed_in","user_id","device_id"}`, `{"event":"cross_signing_ready"}`;
//! - `{"event":"qr_ready","rendezvous_url"}`, `{"event":"check_code","code"}` (B shows it, the
//!   process types it into A);
//! - `{"event":"approve","url"}` (A's verification URI) and `{"event":"user_code","code"}` (what
//!   B shows), in either order: the driver approves or denies in the browser;
//! - `{"event":"done",...}` (see [`Done`]), or at any point
//!   `{"event":"error","stage","message",...}` and exit status 1.
//!
//! Usage: `qr-client --homeserver <public base URL> --redirect-uri <loopback callback URL>`.

use std::future::{Future, IntoFuture};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt as _;
use matrix_sdk::Client;
use matrix_sdk::authentication::oauth::ClientRegistrationData;
use matrix_sdk::authentication::oauth::qrcode::{
    GeneratedQrProgress, GrantLoginProgress, LoginProgress, QRCodeLoginError, QrCodeData,
    QrCodeIntentData, QrProgress,
};
use matrix_sdk::authentication::oauth::registration::{
    ApplicationType, ClientMetadata, Localized, OAuthGrantType,
};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::serde::Raw;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::oneshot;
use url::Url;

/// The name both devices register with; the approval page must show it.
const CLIENT_NAME: &str = "QR login test client";
/// Their `client_uri` (MSC2966: https, not localhost; nothing is fetched from it).
const CLIENT_URI: &str = "https://qr-client.example.org/";
/// How long the whole QR exchange may take, approval in the browser included.
const QR_TIMEOUT: Duration = Duration::from_secs(240);
/// How long one device waits for the other once its own side has failed (the other usually
/// learns it over the secure channel and fails too, which the driver wants to see).
const GRACE_AFTER_FAILURE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            emit(failure.to_json());
            ExitCode::FAILURE
        }
    }
}

/// The command line.
struct Args {
    /// The homeserver's public base URL (the appliance's public origin).
    homeserver: Url,
    /// The loopback redirect URI of device A's authorization code flow (RFC 8252).
    redirect_uri: Url,
}

impl Args {
    fn parse() -> Result<Self, Failure> {
        let mut homeserver = None;
        let mut redirect_uri = None;
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--homeserver" => &mut homeserver,
                "--redirect-uri" => &mut redirect_uri,
                _ => return Err(Failure::new("args", format!("unknown argument {flag}"))),
            };
            let value = args
                .next()
                .ok_or_else(|| Failure::new("args", format!("{flag} needs a value")))?;
            *slot = Some(Url::parse(&value).at("args")?);
        }
        let required = |v: Option<Url>, flag: &str| {
            v.ok_or_else(|| Failure::new("args", format!("{flag} is required")))
        };
        Ok(Self {
            homeserver: required(homeserver, "--homeserver")?,
            redirect_uri: required(redirect_uri, "--redirect-uri")?,
        })
    }
}

/// Why the run stopped: the step that failed and the error, as the driver prints it.
#[derive(Debug)]
struct Failure {
    stage: &'static str,
    message: String,
    /// The OAuth error code the new device got from the token endpoint (`access_denied`, ...).
    oauth_error: Option<String>,
    /// What the other device ended with, when both ran.
    other: Option<String>,
}

impl Failure {
    fn new(stage: &'static str, message: impl Into<String>) -> Self {
        Self {
            stage,
            message: message.into(),
            oauth_error: None,
            other: None,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "event": "error",
            "stage": self.stage,
            "message": self.message,
            "oauth_error": self.oauth_error,
            "other": self.other,
        })
    }
}

/// `.at(stage)`: any displayable error becomes a [`Failure`] of that stage.
trait At<T> {
    fn at(self, stage: &'static str) -> Result<T, Failure>;
}

impl<T, E: std::fmt::Display> At<T> for Result<T, E> {
    fn at(self, stage: &'static str) -> Result<T, Failure> {
        // The sdk's errors print their cause in their own message (thiserror `transparent`).
        self.map_err(|e| Failure::new(stage, e.to_string()))
    }
}

/// Writes one event line on stdout and flushes it (the driver reads line by line).
fn emit(event: Value) {
    let mut out = std::io::stdout().lock();
    // If the driver is gone there is nobody left to tell.
    let _ = writeln!(out, "{event}");
    let _ = out.flush();
}

async fn run() -> Result<(), Failure> {
    let args = Args::parse()?;
    let registration = registration_data(&args.redirect_uri)?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();

    // Each device has its own store, as two phones would; both go when the process ends.
    let (a, _a_store) = new_client(&args.homeserver).await?;
    sign_in_a(&a, &registration, &args.redirect_uri, &mut stdin).await?;
    set_up_cross_signing(&a).await?;

    let (b, _b_store) = new_client(&args.homeserver).await?;
    tokio::time::timeout(QR_TIMEOUT, qr_login(&a, &b, &registration))
        .await
        .map_err(|_| Failure::new("qr_login", "timed out"))??;

    let done = Done::collect(&a, &b).await?;
    emit(done.to_json());
    Ok(())
}

/// The metadata both devices register with: what Element X sends (a native app, a loopback
/// redirect for the code flow, the device authorization grant for QR login), under our name.
fn registration_data(redirect_uri: &Url) -> Result<ClientRegistrationData, Failure> {
    let client_uri = Url::parse(CLIENT_URI).at("registration")?;
    let mut metadata = ClientMetadata::new(
        ApplicationType::Native,
        vec![
            OAuthGrantType::AuthorizationCode {
                redirect_uris: vec![redirect_uri.clone()],
            },
            OAuthGrantType::DeviceCode,
        ],
        Localized::new(client_uri, []),
    );
    metadata.client_name = Some(Localized::new(CLIENT_NAME.to_owned(), []));
    Ok(Raw::new(&metadata).at("registration")?.into())
}

/// A client of the homeserver at `homeserver` (no server discovery: the URL is the
/// homeserver's, plain http on loopback) with a fresh SQLite store.
async fn new_client(homeserver: &Url) -> Result<(Client, TempDir), Failure> {
    let store = tempfile::tempdir().at("client")?;
    let client = Client::builder()
        .homeserver_url(homeserver.as_str())
        .sqlite_store(store.path(), None)
        .handle_refresh_tokens()
        .build()
        .await
        .at("client")?;
    Ok((client, store))
}

/// Device A's OAuth sign-in: the authorization URL goes to the driver, the loopback callback URL
/// comes back on stdin.
async fn sign_in_a(
    a: &Client,
    registration: &ClientRegistrationData,
    redirect_uri: &Url,
    stdin: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>,
) -> Result<(), Failure> {
    let oauth = a.oauth();
    let auth = oauth
        .login(redirect_uri.clone(), None, Some(registration.clone()), None)
        .build()
        .await
        .at("authorize")?;
    emit(json!({ "event": "authorize", "url": auth.url }));

    let line = stdin
        .next_line()
        .await
        .at("callback")?
        .ok_or_else(|| Failure::new("callback", "stdin closed"))?;
    let answer: Value = serde_json::from_str(&line).at("callback")?;
    let callback = answer["callback"].as_str().ok_or_else(|| {
        Failure::new("callback", format!("expected {{\"callback\":URL}}: {line}"))
    })?;
    let callback = Url::parse(callback).at("callback")?;
    oauth
        .finish_login(callback.into())
        .await
        .at("finish_login")?;

    let (user_id, device_id) = ids(a).ok_or_else(|| Failure::new("finish_login", "no session"))?;
    emit(json!({ "event": "signed_in", "user_id": user_id, "device_id": device_id }));
    Ok(())
}

/// Cross-signing for A's user: new keys, A's device signed with them. Under MAS, Synapse takes
/// the first upload of a user's cross-signing keys without user-interactive auth. The QR grant
/// needs the three private keys (they are what A hands B); a key backup is optional for it.
async fn set_up_cross_signing(a: &Client) -> Result<(), Failure> {
    let encryption = a.encryption();
    encryption.wait_for_e2ee_initialization_tasks().await;
    encryption
        .bootstrap_cross_signing(None)
        .await
        .at("cross_signing")?;
    let status = encryption
        .cross_signing_status()
        .await
        .ok_or_else(|| Failure::new("cross_signing", "no cross-signing status"))?;
    if !status.is_complete() {
        return Err(Failure::new(
            "cross_signing",
            format!("incomplete after bootstrap: {status:?}"),
        ));
    }
    emit(json!({ "event": "cross_signing_ready" }));
    Ok(())
}

/// The QR exchange: A generates the QR code, B scans it; the check code B shows goes into A;
/// A reports its verification URI and B its user code, for the driver to approve (or deny) in
/// the browser; B ends signed in with the secrets A sent.
async fn qr_login(
    a: &Client,
    b: &Client,
    registration: &ClientRegistrationData,
) -> Result<(), Failure> {
    let a_oauth = a.oauth();
    let grant = a_oauth.grant_login_with_qr_code().generate();
    let (qr_tx, qr_rx) = oneshot::channel::<QrCodeData>();
    let (code_tx, code_rx) = oneshot::channel::<u8>();
    let a_watch = tokio::spawn(watch_a(grant.subscribe_to_progress(), qr_tx, code_rx));

    let b_oauth = b.oauth();
    let b_side = async {
        let shown = qr_rx
            .await
            .map_err(|_| ("A never showed a QR code".to_owned(), None))?;
        // "Scanning": B reads the bytes a QR code would carry, not A's value.
        let scanned = QrCodeData::from_bytes(&shown.to_bytes())
            .map_err(|e| (format!("cannot read the QR code: {e}"), None))?;
        let login = b_oauth
            .login_with_qr_code(Some(registration))
            .scan(&scanned);
        let b_watch = tokio::spawn(watch_b(login.subscribe_to_progress(), code_tx));
        let result = login.await;
        b_watch.abort();
        result.map_err(|e| describe_login_error(&e))
    };

    let (a_result, b_result) = finish_both(grant.into_future(), b_side).await;
    a_watch.abort();
    match (a_result, b_result) {
        (Some(Ok(())), Some(Ok(()))) => Ok(()),
        (a_result, Some(Err((message, oauth_error)))) => Err(Failure {
            stage: "new_device_login",
            message,
            oauth_error,
            other: Some(outcome(a_result.map(|r| r.map_err(|e| e.to_string())))),
        }),
        (Some(Err(e)), b_result) => Err(Failure {
            stage: "grant",
            message: e.to_string(),
            oauth_error: None,
            other: Some(outcome(b_result.map(|r| r.map_err(|(m, _)| m)))),
        }),
        (None, _) => Err(Failure::new("grant", "did not finish")),
        (_, None) => Err(Failure::new("new_device_login", "did not finish")),
    }
}

/// Runs both devices' futures; once one has failed, the other gets [`GRACE_AFTER_FAILURE`] to
/// finish (it is usually told over the secure channel) before it is dropped.
async fn finish_both<A, B, TA, EA, TB, EB>(
    a: A,
    b: B,
) -> (Option<Result<TA, EA>>, Option<Result<TB, EB>>)
where
    A: Future<Output = Result<TA, EA>>,
    B: Future<Output = Result<TB, EB>>,
{
    tokio::pin!(a, b);
    let limit = |failed: bool| {
        if failed {
            GRACE_AFTER_FAILURE
        } else {
            QR_TIMEOUT
        }
    };
    tokio::select! {
        a_result = &mut a => {
            let b_result = tokio::time::timeout(limit(a_result.is_err()), b).await.ok();
            (Some(a_result), b_result)
        }
        b_result = &mut b => {
            let a_result = tokio::time::timeout(limit(b_result.is_err()), a).await.ok();
            (a_result, Some(b_result))
        }
    }
}

/// One device's end, for the `other` field of an error.
fn outcome<E: std::fmt::Display>(result: Option<Result<(), E>>) -> String {
    match result {
        Some(Ok(())) => "finished".to_owned(),
        Some(Err(e)) => format!("failed: {e}"),
        None => "still running".to_owned(),
    }
}

/// B's login error as a message and, when the token endpoint refused the device code, its OAuth
/// error code (RFC 8628 section 3.5: `access_denied` after Deny, `expired_token`).
fn describe_login_error(e: &QRCodeLoginError) -> (String, Option<String>) {
    let oauth_error = match e {
        QRCodeLoginError::OAuth(e) => e.as_request_token_error().map(|t| t.as_ref().to_owned()),
        _ => None,
    };
    (format!("{e} ({e:?})"), oauth_error)
}

/// A's progress: hands the QR code to B, types in the check code B shows, and reports the
/// verification URI the driver opens in the browser.
async fn watch_a(
    progress: impl futures_util::Stream<Item = GrantLoginProgress<GeneratedQrProgress>>,
    qr_tx: oneshot::Sender<QrCodeData>,
    code_rx: oneshot::Receiver<u8>,
) {
    let mut qr_tx = Some(qr_tx);
    let mut code_rx = Some(code_rx);
    futures_util::pin_mut!(progress);
    while let Some(state) = progress.next().await {
        match state {
            GrantLoginProgress::EstablishingSecureChannel(GeneratedQrProgress::QrReady(qr)) => {
                let rendezvous_url = match qr.intent_data() {
                    QrCodeIntentData::Msc4108 { rendezvous_url, .. } => {
                        Some(rendezvous_url.to_string())
                    }
                    QrCodeIntentData::Msc4388 { .. } => None,
                };
                emit(json!({ "event": "qr_ready", "rendezvous_url": rendezvous_url }));
                if let Some(tx) = qr_tx.take() {
                    let _ = tx.send(qr);
                }
            }
            GrantLoginProgress::EstablishingSecureChannel(GeneratedQrProgress::QrScanned(
                sender,
            )) => {
                // MSC4108: the person reads the two digits B shows and types them into A.
                if let Some(rx) = code_rx.take()
                    && let Ok(code) = rx.await
                {
                    // A refused send ends A's future with an error, which is reported there.
                    let _ = sender.send(code).await;
                }
            }
            GrantLoginProgress::WaitingForAuth { verification_uri } => {
                emit(json!({ "event": "approve", "url": verification_uri }));
            }
            GrantLoginProgress::Starting
            | GrantLoginProgress::SyncingSecrets
            | GrantLoginProgress::Done => {}
        }
    }
}

/// B's progress: passes on the check code it shows, reports the user code it shows.
async fn watch_b(
    progress: impl futures_util::Stream<Item = LoginProgress<QrProgress>>,
    code_tx: oneshot::Sender<u8>,
) {
    let mut code_tx = Some(code_tx);
    futures_util::pin_mut!(progress);
    while let Some(state) = progress.next().await {
        match state {
            LoginProgress::EstablishingSecureChannel(QrProgress { check_code }) => {
                let code = check_code.to_digit();
                emit(json!({ "event": "check_code", "code": format!("{code:02}") }));
                if let Some(tx) = code_tx.take() {
                    let _ = tx.send(code);
                }
            }
            LoginProgress::WaitingForToken { user_code } => {
                emit(json!({ "event": "user_code", "code": user_code }));
            }
            LoginProgress::Starting | LoginProgress::SyncingSecrets | LoginProgress::Done => {}
        }
    }
}

/// The signed-in user and device of `client`.
fn ids(client: &Client) -> Option<(String, String)> {
    Some((
        client.user_id()?.to_string(),
        client.device_id()?.to_string(),
    ))
}

/// What the driver asserts at the end.
struct Done {
    a: (String, String),
    b: (String, String),
    /// B's `GET /_matrix/client/v3/account/whoami`.
    whoami: Value,
    /// B's own device carries a valid signature of the user's self-signing key.
    b_verified: bool,
    /// B holds the three private cross-signing keys A sent.
    b_has_cross_signing_secrets: bool,
    /// A, after a key query, sees B's device as cross-signed by their user.
    a_sees_b_verified: bool,
}

impl Done {
    async fn collect(a: &Client, b: &Client) -> Result<Self, Failure> {
        let a_ids = ids(a).ok_or_else(|| Failure::new("done", "A has no session"))?;
        let b_ids = ids(b).ok_or_else(|| Failure::new("done", "B has no session"))?;
        let me = b.whoami().await.at("whoami")?;
        let whoami = json!({
            "user_id": me.user_id,
            "device_id": me.device_id,
            "is_guest": me.is_guest,
        });
        let b_device = b.encryption().get_own_device().await.at("verification")?;
        let b_verified = b_device.is_some_and(|d| d.is_cross_signed_by_owner());
        let b_has_cross_signing_secrets = b
            .encryption()
            .cross_signing_status()
            .await
            .is_some_and(|s| s.is_complete());
        let a_sees_b_verified = a_sees_verified(a, b).await?;
        Ok(Self {
            a: a_ids,
            b: b_ids,
            whoami,
            b_verified,
            b_has_cross_signing_secrets,
            a_sees_b_verified,
        })
    }

    fn to_json(&self) -> Value {
        let pair = |(user_id, device_id): &(String, String)| json!({ "user_id": user_id, "device_id": device_id });
        json!({
            "event": "done",
            "a": pair(&self.a),
            "b": pair(&self.b),
            "whoami": self.whoami,
            "b_verified": self.b_verified,
            "b_has_cross_signing_secrets": self.b_has_cross_signing_secrets,
            "a_sees_b_verified": self.a_sees_b_verified,
        })
    }
}

/// Whether A, syncing as a client does (the device list change makes it query B's keys), sees
/// B's device cross-signed by their user; a few short syncs at most.
async fn a_sees_verified(a: &Client, b: &Client) -> Result<bool, Failure> {
    let (Some(user_id), Some(device_id)) = (b.user_id(), b.device_id()) else {
        return Ok(false);
    };
    let settings = SyncSettings::default().timeout(Duration::from_secs(1));
    for _ in 0..10 {
        a.sync_once(settings.clone()).await.at("a_sync")?;
        let device = a
            .encryption()
            .get_device(user_id, device_id)
            .await
            .at("a_sync")?;
        if device.is_some_and(|d| d.is_cross_signed_by_owner()) {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(false)
}
