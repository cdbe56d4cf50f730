//! `GET/POST /_matrix/client/{v}/login` (Matrix client-server API "Login";
//! docs/protocol.md#compat-layer): the login flows, and a password or SSO-token login that starts a
//! compat session with its device upserted in Synapse before the answer.

use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use ulid::Ulid;

use crate::app::AppState;
use crate::auth::account::{AccountRefusal, check_account};
use crate::auth::device::provision_device;
use crate::auth::password::{self, PasswordLogin, PasswordRefusal, localpart_of};
use crate::auth::sessions::SessionEnder;
use crate::crypto::{TokenKind, random, sha256_hex};
use crate::error::MatrixError;
use crate::extract::client_ip::ClientIp;
use crate::model::User;
use crate::ratelimit::RateLimited;
use crate::storage::compat::{self as store, NewCompatSession};
use crate::storage::users;

/// Synapse accepts device ids of 1 to 255 characters.
const MAX_DEVICE_ID_LENGTH: usize = 255;

/// `GET …/login`: the supported flows, in upstream's order.
#[tracing::instrument(name = "handlers.compat.login.get", skip_all)]
pub(super) async fn get(State(state): State<AppState>) -> Json<Value> {
    let mut flows = Vec::new();
    if state.passwords.is_some() {
        flows.push(json!({ "type": "m.login.password" }));
    }
    flows.push(json!({
        "type": "m.login.sso",
        "identity_providers": [],
        "oauth_aware_preferred": true,
        "org.matrix.msc3824.delegated_oidc_compatibility": true,
    }));
    flows.push(json!({ "type": "m.login.token" }));
    Json(json!({ "flows": flows }))
}

/// The body of `POST …/login`.
#[derive(Debug, Deserialize)]
struct LoginRequest {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    identifier: Option<Identifier>,
    /// The legacy top-level user field; wins over `identifier`.
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: bool,
}

#[derive(Debug, Deserialize)]
struct Identifier {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<String>,
}

fn forbidden(message: &'static str) -> MatrixError {
    MatrixError::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", message)
}

fn invalid_credentials() -> MatrixError {
    forbidden("Invalid username or password")
}

fn bad_json(message: impl Into<std::borrow::Cow<'static, str>>) -> MatrixError {
    MatrixError::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
}

/// `M_LIMIT_EXCEEDED` with `retry_after_ms`.
pub(super) fn limit_exceeded(limited: RateLimited) -> MatrixError {
    let ms = limited.retry_after_ms();
    MatrixError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "M_LIMIT_EXCEEDED",
        "Too many login attempts; try again later",
    )
    .with("retry_after_ms", ms)
}

/// Parses a JSON body: not JSON → `M_NOT_JSON`, the wrong shape → `M_BAD_JSON`.
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, MatrixError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_NOT_JSON",
            "The request body is not JSON",
        )
    })?;
    serde_json::from_value(value).map_err(|error| bad_json(format!("Invalid request: {error}")))
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

/// `POST …/login`.
#[tracing::instrument(name = "handlers.compat.login.post", skip_all)]
pub(super) async fn post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, MatrixError> {
    let request: LoginRequest = parse_body(&body)?;
    let device_id = match request.device_id.as_deref() {
        Some(id) if id.is_empty() || id.len() > MAX_DEVICE_ID_LENGTH => {
            return Err(bad_json("device_id must be 1 to 255 characters"));
        }
        Some(id) => id.to_owned(),
        None => random::compat_device_id(&mut state.rng.fork()),
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());

    // The password is checked before the write transaction starts (hashing is slow); the SSO
    // token is taken inside it, so a failed login leaves it unused.
    let (mut tx, authenticated) = match request.kind.as_str() {
        "m.login.password" => {
            let authenticated = password_login(&state, ip, &request).await?;
            let tx = state.db.begin_write().await?;
            (tx, authenticated)
        }
        "m.login.token" => {
            let Some(token) = request.token.as_deref() else {
                return Err(bad_json("Missing token"));
            };
            let mut tx = state.db.begin_write().await?;
            let taken = super::sso::take_login_token(&mut tx, state.clock.as_ref(), token).await?;
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
            (tx, authenticated)
        }
        "m.login.application_service" => {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_APPSERVICE_LOGIN_UNSUPPORTED",
                "Application service login is not supported by this server",
            ));
        }
        _ => {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_UNKNOWN",
                "Invalid login type",
            ));
        }
    };
    let user = authenticated.user();

    let clock = state.clock.as_ref();
    let mut rng = state.rng.fork();
    if let Authenticated::Password(password) = &authenticated {
        password.store_upgrade(&mut tx, clock, &mut rng).await?;
    }
    // Replace device: the sessions that hold this device end (the device itself stays).
    for old in store::find_active_compat_sessions_by_device(&mut tx, user.id, &device_id).await? {
        store::finish_compat_session(&mut tx, clock, old.id).await?;
        tracing::info!(compat_session.id = %old.id, "compat session replaced by a new login");
    }
    let session = store::add_compat_session(
        &mut tx,
        clock,
        &mut rng,
        NewCompatSession {
            user_id: user.id,
            device_id: &device_id,
            user_session_id: authenticated.user_session_id(),
            is_synapse_admin: false,
            user_agent,
            human_name: request.initial_device_display_name.as_deref(),
        },
    )
    .await?;
    let ttl = request.refresh_token.then_some(state.site.compat_token_ttl);
    let access_token = TokenKind::CompatAccessToken.generate(&mut rng);
    let access = store::add_compat_access_token(
        &mut tx,
        clock,
        &mut rng,
        session.id,
        &sha256_hex(&access_token),
        ttl,
    )
    .await?;
    let refresh_token = if request.refresh_token {
        let token = TokenKind::CompatRefreshToken.generate(&mut rng);
        store::add_compat_refresh_token(
            &mut tx,
            clock,
            &mut rng,
            session.id,
            access.id,
            &sha256_hex(&token),
        )
        .await?;
        Some(token)
    } else {
        None
    };
    tx.commit().await?;

    // The device must exist in Synapse before the token is handed out; if it cannot be, the
    // session ends again as any compat session ends (a device sync is queued).
    let display_name = request.initial_device_display_name.as_deref();
    if provision_device(
        state.homeserver.as_ref(),
        &user.username,
        &device_id,
        display_name,
    )
    .await
    .is_err()
    {
        SessionEnder::from_state(&state)
            .end_compat_sessions(user, std::slice::from_ref(&session))
            .await?;
        return Err(MatrixError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNKNOWN",
            "The homeserver is not available; try again later",
        ));
    }
    tracing::info!(user.id = %user.id, compat_session.id = %session.id, "compat login");

    let mut response = json!({
        "access_token": access_token,
        "device_id": device_id,
        "user_id": format!("@{}:{}", user.username, state.site.server_name),
        "home_server": state.site.server_name,
    });
    if let Some(refresh_token) = refresh_token {
        let expires_in_ms =
            u64::try_from(state.site.compat_token_ttl.as_millis()).unwrap_or(u64::MAX);
        response["refresh_token"] = json!(refresh_token);
        response["expires_in_ms"] = json!(expires_in_ms);
    }
    Ok(Json(response))
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

/// `m.login.password`: the user from `user` or an `m.id.user` identifier, then the whole
/// password sequence of [`PasswordLogin::authenticate`] (rate limits, dummy verification for an
/// unknown user, the account state).
async fn password_login(
    state: &AppState,
    ip: Option<IpAddr>,
    request: &LoginRequest,
) -> Result<Authenticated, MatrixError> {
    // SSO-only mode (issue 5): `GET` lists no `m.login.password`; say why it is refused.
    let Some(login) = PasswordLogin::from_state(state) else {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            "password login is disabled",
        ));
    };
    let username = match (&request.user, &request.identifier) {
        (Some(user), _) => user.as_str(),
        (None, Some(identifier)) if identifier.kind == "m.id.user" => identifier
            .user
            .as_deref()
            .ok_or_else(|| bad_json("The identifier has no user"))?,
        (None, Some(_)) => {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_UNKNOWN",
                "Unsupported identifier type",
            ));
        }
        (None, None) => return Err(bad_json("Missing identifier")),
    };
    let Some(password) = request.password.as_deref() else {
        return Err(bad_json("Missing password"));
    };
    let username = localpart_of(username, &state.site.server_name);
    let authenticated = login
        .authenticate(ip, username, password)
        .await
        .map_err(password_refused)?;
    Ok(Authenticated::Password(authenticated))
}
