//! Legacy Matrix SSO login (Matrix client-server API "Client login via SSO";
//! docs/protocol.md#compat-layer): `GET /_matrix/client/{v}/login/sso/redirect` stores a pending
//! [`CompatSsoLogin`](crate::model::CompatSsoLogin) and sends the browser to the "continue to the
//! application" page ([`complete`]); once the user continues, the client gets a one-time
//! `loginToken` that it trades through `m.login.token` within 30 s ([`take_login_token`], called by
//! the `/login` handler, which creates the compat session).

pub(crate) mod complete;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sqlx::AnyConnection;
use ulid::Ulid;
use url::Url;

use crate::app::AppState;
use crate::auth::post_auth::PostAuthAction;
use crate::clock::Clock;
use crate::crypto::sha256_hex;
use crate::error::MatrixError;
use crate::extract::client_ip::ClientIp;
use crate::model::redirect_uri;
use crate::ratelimit::RateLimiter;
use crate::rng::RngSource;
use crate::routes::{self, UrlBuilder};
use crate::storage::{Database, StorageError, compat_sso_logins};
use crate::upstream::UpstreamProviders;

/// The SSO redirect routes (for the `compat` resource's router).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::COMPAT_SSO_REDIRECT, get(redirect))
        .route(routes::COMPAT_SSO_REDIRECT_SLASH, get(redirect))
        .route(routes::COMPAT_SSO_REDIRECT_IDP, get(redirect))
}

/// Trades a `loginToken` (the `token` of an `m.login.token` login): `Some((user_id,
/// user_session_id))` once, within 30 s of the user's "Continue"; `None` for an unknown,
/// expired or already used token. Call it in the login's transaction, so that a failed login
/// leaves the token unused. Link the compat session the caller creates with
/// [`compat_sso_logins::link_compat_session`] if wanted (the login id is not returned here;
/// use [`compat_sso_logins::exchange_login_token`] directly for it).
pub async fn take_login_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    token: &str,
) -> Result<Option<(Ulid, Ulid)>, StorageError> {
    let exchanged =
        compat_sso_logins::exchange_login_token(conn, clock, &sha256_hex(token)).await?;
    Ok(exchanged.map(|login| (login.user_id, login.user_session_id)))
}

/// What the client asks for after the login (`action` or `org.matrix.msc3824.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SsoAction {
    Login,
    Register,
}

impl SsoAction {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "login" => Some(Self::Login),
            "register" => Some(Self::Register),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
        }
    }
}

/// `redirectUrl` as the spec allows it: an absolute URL without userinfo, with a host when
/// it is http(s); custom schemes of mobile apps are fine, script and local schemes
/// (`javascript:`, `data:`, `file:`…) are not.
fn valid_redirect_url(value: &str) -> Option<Url> {
    let url = Url::parse(value).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    redirect_uri::is_safe_legacy_target(&url).then_some(url)
}

fn bad_param(errcode: &'static str, message: &'static str) -> MatrixError {
    MatrixError::new(StatusCode::BAD_REQUEST, errcode, message)
}

/// The state parts of the SSO redirect: where the pending login is stored, the rate limit in
/// front of it, and where the browser goes next.
#[derive(Clone)]
struct RedirectState {
    db: Database,
    clock: Arc<dyn Clock>,
    rng: RngSource,
    limiter: RateLimiter,
    urls: UrlBuilder,
    upstream: UpstreamProviders,
}

impl FromRef<AppState> for RedirectState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            rng: state.rng.clone(),
            limiter: state.limiter.clone(),
            urls: state.urls.clone(),
            upstream: state.upstream.clone(),
        }
    }
}

/// `GET /_matrix/client/{v}/login/sso/redirect[/{idp}]`. An `idp` that names an enabled
/// upstream provider sends the browser straight to that provider (the login continues on the
/// "continue" page afterwards); any other `idp` is ignored. Each request stores a pending
/// login, so they are rate-limited per client address
/// ([`COMPAT_SSO_REDIRECT_PER_IP`](crate::ratelimit::Quota::COMPAT_SSO_REDIRECT_PER_IP)):
/// `M_LIMIT_EXCEEDED` with `retry_after_ms`, and `Retry-After`.
#[tracing::instrument(name = "handlers.compat.sso.redirect.get", skip_all)]
async fn redirect(
    State(state): State<RedirectState>,
    ClientIp(ip): ClientIp,
    Path(params): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Result<Response, MatrixError> {
    let now = state.clock.now_unix_ms();
    if let Err(limited) = state.limiter.check_compat_sso_redirect(ip, now) {
        tracing::info!(client.ip = ?ip, "SSO redirect refused: too many from this address");
        return Ok(limited.respond(super::errors::limit_exceeded(limited)));
    }
    let (redirect_url, action) = read_query(query.as_deref().unwrap_or_default());
    let redirect_url =
        redirect_url.ok_or_else(|| bad_param("M_MISSING_PARAM", "Missing redirectUrl"))?;
    let redirect_url = valid_redirect_url(&redirect_url)
        .ok_or_else(|| bad_param("M_INVALID_PARAM", "Invalid redirectUrl"))?;
    let mut conn = state.db.acquire().await?;
    let mut rng = state.rng.fork();
    let login = compat_sso_logins::add_compat_sso_login(
        &mut conn,
        state.clock.as_ref(),
        &mut rng,
        redirect_url,
    )
    .await?;
    let provider = params.get("idp").and_then(|idp| state.upstream.get(idp));
    let destination = match provider {
        Some(provider) => via_provider(&state.urls, &provider.id, login.id),
        None => continue_page(&state.urls, login.id, action),
    };
    Ok(Redirect::to(destination.as_str()).into_response())
}

/// The first `redirectUrl`, and the first `action` (or `org.matrix.msc3824.action`, MSC3824)
/// of the query; an action that is neither `login` nor `register` counts as none.
fn read_query(query: &str) -> (Option<String>, Option<SsoAction>) {
    let mut redirect_url = None;
    let mut action = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "redirectUrl" if redirect_url.is_none() => redirect_url = Some(value.into_owned()),
            "action" | "org.matrix.msc3824.action" if action.is_none() => {
                action = SsoAction::parse(&value);
            }
            _ => {}
        }
    }
    (redirect_url, action)
}

/// The upstream provider's authorization start, continuing with the login afterwards.
fn via_provider(urls: &UrlBuilder, provider_id: &str, login_id: Ulid) -> Url {
    let mut destination = urls.absolute(&routes::upstream_authorize(provider_id));
    let (kind, id) = PostAuthAction::ContinueCompatSsoLogin { id: login_id }.fields();
    destination
        .query_pairs_mut()
        .append_pair("kind", kind)
        .append_pair("id", &id);
    destination
}

/// The "continue" page of the login, with the client's `action` when it gave one.
fn continue_page(urls: &UrlBuilder, login_id: Ulid, action: Option<SsoAction>) -> Url {
    let mut destination = urls.absolute(&routes::complete_compat_sso(login_id));
    if let Some(action) = action {
        destination
            .query_pairs_mut()
            .append_pair("action", action.as_str());
    }
    destination
}

#[cfg(test)]
mod tests;
