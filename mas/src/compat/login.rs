//! `GET/POST /_matrix/client/{v}/login` (Matrix client-server API "Login";
//! docs/protocol.md#compat-layer): the login flows, and a password or SSO-token login that starts a
//! compat session with its device upserted in Synapse before the answer. The JSON is in
//! `login/wire.rs`.

mod wire;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use rand_chacha::ChaCha20Rng;
use sqlx::{Any, AnyConnection, Transaction};
use ulid::Ulid;

use self::wire::{
    Credentials, Identifier, LoginFlows, LoginRequest, LoginResponse, PasswordCredentials,
};
use super::errors::{bad_json, forbidden, limit_exceeded, parse_body};
use super::tokens::{RefreshablePair, issue_access_token, issue_refreshable_pair};
use crate::app::{AppState, SiteConfig};
use crate::auth::account::{AccountRefusal, check_account};
use crate::auth::device::provision_device;
use crate::auth::password::{self, LoginIdentifier, PasswordLogin, PasswordRefusal, localpart_of};
use crate::auth::sessions::{SessionHandles, replace_compat_sessions_on_device};
use crate::clock::Clock;
use crate::crypto::passwords::PasswordManager;
use crate::crypto::random;
use crate::error::MatrixError;
use crate::extract::client_ip::ClientIp;
use crate::model::{CompatSession, User};
use crate::ratelimit::RateLimiter;
use crate::rng::RngSource;
use crate::storage::compat::{self as store, NewCompatSession};
use crate::storage::{Database, StorageError, users};

/// Synapse accepts device ids of 1 to 255 characters.
const MAX_DEVICE_ID_LENGTH: usize = 255;

/// The state parts of `POST …/login`: what starts and ends sessions, the settings of the
/// answer, and the password sequence's hashing and rate limits.
#[derive(Clone)]
pub(super) struct LoginState {
    sessions: SessionHandles,
    site: Arc<SiteConfig>,
    passwords: Option<Arc<PasswordManager>>,
    limiter: RateLimiter,
}

impl FromRef<AppState> for LoginState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            sessions: SessionHandles::from_ref(state),
            site: state.site.clone(),
            passwords: state.passwords.clone(),
            limiter: state.limiter.clone(),
        }
    }
}

impl LoginState {
    /// The password sequence; `None` when password login is disabled.
    fn password_login(&self) -> Option<PasswordLogin<'_>> {
        Some(PasswordLogin {
            db: &self.sessions.db,
            clock: self.sessions.clock.as_ref(),
            limiter: &self.limiter,
            manager: self.passwords.as_deref()?,
            rng: &self.sessions.rng,
        })
    }
}

/// Who logs in, once the credentials were checked.
enum Authenticated {
    /// A checked password (with, perhaps, a newer hash of it to store).
    Password(password::Authenticated),
    /// A login token from a legacy SSO login, taken in the login's transaction.
    Token { user: User, user_session_id: Ulid },
}

impl Authenticated {
    fn user(&self) -> &User {
        match self {
            Self::Password(authenticated) => &authenticated.user,
            Self::Token { user, .. } => user,
        }
    }

    fn user_session_id(&self) -> Option<Ulid> {
        match self {
            Self::Password(_) => None,
            Self::Token {
                user_session_id, ..
            } => Some(*user_session_id),
        }
    }
}

fn appservice_unsupported() -> MatrixError {
    MatrixError::new(
        StatusCode::BAD_REQUEST,
        "M_APPSERVICE_LOGIN_UNSUPPORTED",
        "Application service login is not supported by this server",
    )
}

fn unknown_login_type() -> MatrixError {
    MatrixError::new(StatusCode::BAD_REQUEST, "M_UNKNOWN", "Invalid login type")
}

fn invalid_credentials() -> MatrixError {
    forbidden("Invalid username or password")
}

/// Deactivated → `M_USER_DEACTIVATED`, locked → `M_USER_LOCKED`, guest → `M_FORBIDDEN`.
fn account_refused(refusal: AccountRefusal) -> MatrixError {
    match refusal {
        AccountRefusal::Deactivated => MatrixError::new(
            StatusCode::FORBIDDEN,
            "M_USER_DEACTIVATED",
            "This account has been deactivated",
        ),
        AccountRefusal::Locked => MatrixError::new(
            StatusCode::UNAUTHORIZED,
            "M_USER_LOCKED",
            "This account has been locked",
        )
        .with("soft_logout", false),
        AccountRefusal::Guest => forbidden("Guest accounts cannot log in here"),
    }
}

/// A refused password login in Matrix terms.
fn password_refused(refusal: PasswordRefusal) -> MatrixError {
    match refusal {
        PasswordRefusal::RateLimited(limited) => limit_exceeded(limited),
        PasswordRefusal::InvalidCredentials => invalid_credentials(),
        PasswordRefusal::Account(refusal) => account_refused(refusal),
        PasswordRefusal::Internal(error) => MatrixError::internal(error),
    }
}

/// `GET …/login`: the supported flows, in upstream's order.
#[tracing::instrument(name = "handlers.compat.login.get", skip_all)]
pub(super) async fn get(State(passwords): State<Option<Arc<PasswordManager>>>) -> Json<LoginFlows> {
    Json(LoginFlows::new(passwords.is_some()))
}

/// `POST …/login`.
#[tracing::instrument(name = "handlers.compat.login.post", skip_all)]
pub(super) async fn post(
    State(state): State<LoginState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<LoginResponse>, MatrixError> {
    let request: LoginRequest = parse_body(&body)?;
    let handles = &state.sessions;
    let device_id = device_id_of(request.device_id, &handles.rng)?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let display_name = request.initial_device_display_name.as_deref();

    // The password is checked before the write transaction starts (hashing is slow); the SSO
    // token is taken inside it, so a failed login leaves it unused.
    let (mut tx, authenticated) = match request.credentials {
        Credentials::Password(credentials) => {
            let login = state.password_login();
            let site = &state.site;
            let authenticated = password_login(login, site, ip, &credentials).await?;
            (handles.db.begin_write().await?, authenticated)
        }
        Credentials::Token { token } => {
            token_login(&handles.db, handles.clock.as_ref(), token.as_deref()).await?
        }
        Credentials::ApplicationService => return Err(appservice_unsupported()),
        Credentials::Unsupported => return Err(unknown_login_type()),
    };
    let user = authenticated.user();
    let new_session = NewCompatSession {
        user_id: user.id,
        device_id: &device_id,
        user_session_id: authenticated.user_session_id(),
        is_synapse_admin: false,
        user_agent,
        human_name: display_name,
    };
    let ttl = request.refresh_token.then_some(state.site.compat_token_ttl);
    let mut rng = handles.rng.fork();
    let (session, tokens) = start_session(
        &mut tx,
        handles.clock.as_ref(),
        &mut rng,
        &authenticated,
        new_session,
        ttl,
    )
    .await?;
    tx.commit().await?;

    provision_or_end(handles, user, &session, display_name).await?;
    tracing::info!(user.id = %user.id, compat_session.id = %session.id, "compat login");
    Ok(Json(answer(
        tokens,
        device_id,
        user,
        &state.site.server_name,
    )))
}

/// The requested device id (1 to 255 characters, else `M_BAD_JSON`), or a new one.
fn device_id_of(requested: Option<String>, rng: &RngSource) -> Result<String, MatrixError> {
    match requested {
        Some(id) if id.is_empty() || id.len() > MAX_DEVICE_ID_LENGTH => {
            Err(bad_json("device_id must be 1 to 255 characters"))
        }
        Some(id) => Ok(id),
        None => Ok(random::compat_device_id(&mut rng.fork())),
    }
}

/// `m.login.password`: the user from `user` or an `m.id.user` identifier (or, when
/// `account.login_with_email_allowed`, an `m.id.thirdparty` identifier with medium `email`,
/// Matrix client-server API "Identifier types"), then the whole
/// password sequence of [`PasswordLogin::authenticate`] (rate limits, dummy verification for an
/// unknown user, the account state). `login` is `None` in SSO-only mode.
async fn password_login(
    login: Option<PasswordLogin<'_>>,
    site: &SiteConfig,
    ip: Option<IpAddr>,
    credentials: &PasswordCredentials,
) -> Result<Authenticated, MatrixError> {
    // SSO-only mode (issue 5): `GET` lists no `m.login.password`; say why it is refused.
    let Some(login) = login else {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            "password login is disabled",
        ));
    };
    let (server_name, email_allowed) = (&site.server_name, site.account.login_with_email_allowed);
    let identifier = match (&credentials.user, &credentials.identifier) {
        (Some(user), _) => LoginIdentifier::Username(localpart_of(user, server_name)),
        (None, Some(Identifier::User { user })) => LoginIdentifier::Username(localpart_of(
            user.as_deref()
                .ok_or_else(|| bad_json("The identifier has no user"))?,
            server_name,
        )),
        (None, Some(Identifier::Email { address })) if email_allowed => LoginIdentifier::Email(
            address
                .as_deref()
                .ok_or_else(|| bad_json("The identifier has no address"))?
                .trim(),
        ),
        (None, Some(Identifier::Email { .. } | Identifier::Unsupported)) => {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_UNKNOWN",
                "Unsupported identifier type",
            ));
        }
        (None, None) => return Err(bad_json("Missing identifier")),
    };
    let Some(password) = credentials.password.as_deref() else {
        return Err(bad_json("Missing password"));
    };
    let authenticated = login
        .authenticate_as(ip, identifier, password)
        .await
        .map_err(password_refused)?;
    Ok(Authenticated::Password(authenticated))
}

/// `m.login.token`: takes the login token in a new write transaction (returned for the rest
/// of the login) and checks its user's account.
async fn token_login(
    db: &Database,
    clock: &dyn Clock,
    token: Option<&str>,
) -> Result<(Transaction<'static, Any>, Authenticated), MatrixError> {
    let Some(token) = token else {
        return Err(bad_json("Missing token"));
    };
    let mut tx = db.begin_write().await?;
    let taken = super::sso::take_login_token(&mut tx, clock, token).await?;
    let Some((user_id, user_session_id)) = taken else {
        return Err(forbidden("invalid login token"));
    };
    let user = users::find_user(&mut tx, user_id)
        .await?
        .ok_or_else(|| forbidden("invalid login token"))?;
    check_account(&user).map_err(account_refused)?;
    let authenticated = Authenticated::Token {
        user,
        user_session_id,
    };
    Ok((tx, authenticated))
}

/// The tokens a login hands out: one that never expires, or (`refresh_token: true`) an
/// expiring pair.
enum LoginTokens {
    Plain(String),
    Refreshable(RefreshablePair),
}

/// Writes the login in the caller's transaction: the upgraded password hash if there is one,
/// the end of the sessions holding the same device ("replace device"; the device itself
/// stays), the new session and its tokens (expiring after `ttl` with a refresh token, if
/// given).
async fn start_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut ChaCha20Rng,
    authenticated: &Authenticated,
    new: NewCompatSession<'_>,
    ttl: Option<Duration>,
) -> Result<(CompatSession, LoginTokens), StorageError> {
    if let Authenticated::Password(password) = authenticated {
        password.store_upgrade(conn, clock, rng).await?;
    }
    replace_compat_sessions_on_device(conn, clock, new.user_id, new.device_id).await?;
    let session = store::add_compat_session(conn, clock, rng, new).await?;
    let tokens = match ttl {
        Some(ttl) => LoginTokens::Refreshable(
            issue_refreshable_pair(conn, clock, rng, session.id, ttl).await?,
        ),
        None => LoginTokens::Plain(
            issue_access_token(conn, clock, rng, session.id, None)
                .await?
                .0,
        ),
    };
    Ok((session, tokens))
}

/// Makes sure the device exists in Synapse before the token is handed out; if it cannot be,
/// the session ends again as any compat session ends (a device sync is queued) and the answer
/// is `M_UNKNOWN` (503).
async fn provision_or_end(
    handles: &SessionHandles,
    user: &User,
    session: &CompatSession,
    display_name: Option<&str>,
) -> Result<(), MatrixError> {
    let provisioned = provision_device(
        handles.homeserver.as_ref(),
        &user.username,
        &session.device_id,
        display_name,
    )
    .await;
    if provisioned.is_ok() {
        return Ok(());
    }
    handles
        .ender()
        .end_compat_sessions(user, std::slice::from_ref(session))
        .await?;
    Err(MatrixError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "M_UNKNOWN",
        "The homeserver is not available; try again later",
    ))
}

/// The answer of a successful login.
fn answer(tokens: LoginTokens, device_id: String, user: &User, server_name: &str) -> LoginResponse {
    let (access_token, refresh) = match tokens {
        LoginTokens::Plain(access_token) => (access_token, None),
        LoginTokens::Refreshable(pair) => (
            pair.access_token,
            Some((pair.refresh_token, pair.expires_in_ms)),
        ),
    };
    let (refresh_token, expires_in_ms) = refresh.unzip();
    LoginResponse {
        access_token,
        device_id,
        expires_in_ms,
        home_server: server_name.to_owned(),
        refresh_token,
        user_id: format!("@{}:{server_name}", user.username),
    }
}
