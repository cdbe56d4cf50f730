//! `GET/POST /complete-compat-sso/{id}` (a `human` route, docs/protocol.md#compat-layer): without a
//! browser session, off to the login page with `kind=continue_compat_sso_login`; with one, a
//! "continue to the application" page. Its POST (CSRF first) fulfils the login with a fresh
//! 32-alphanumeric token (only its SHA-256 is stored) and sends the browser to the client's
//! `redirectUrl` with `loginToken` added to the query.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use ulid::Ulid;

use crate::auth::post_auth::{PostAuthAction, login_url};
use crate::clock::Clock;
use crate::crypto::{random, sha256_hex};
use crate::csp::CspSources;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::homeserver::HomeserverConnection;
use crate::model::{BrowserSession, CompatSsoLogin, redirect_uri};
use crate::pages::{CsrfForm, PageState, user_view};
use crate::rng::RngSource;
use crate::routes::{self, UrlBuilder};
use crate::storage::{Database, compat_sso_logins};
use crate::templates::CompatSsoContext;

fn not_found() -> HtmlError {
    HtmlError::new(
        StatusCode::NOT_FOUND,
        "Request not found",
        "This sign-in request does not exist. Go back to the application and try again.",
    )
}

fn not_pending() -> HtmlError {
    HtmlError::bad_request(
        "Request already handled",
        "This sign-in request was already completed. Go back to the application and start \
         again.",
    )
}

/// A pending login and the browser session to fulfil it in, or the login page to go to.
enum Loaded {
    Ready(CompatSsoLogin, Box<BrowserSession>),
    Login(Response),
}

async fn load(
    db: &Database,
    urls: &UrlBuilder,
    jar: &CookieJar,
    id: &str,
) -> Result<Loaded, HtmlError> {
    let id: Ulid = id.parse().map_err(|_| not_found())?;
    let mut conn = db.acquire().await?;
    let login = compat_sso_logins::find_compat_sso_login(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    if !login.is_pending() {
        return Err(not_pending());
    }
    // Checked when it was stored; checked again so a row from older rules is never used.
    if !redirect_uri::is_safe_legacy_target(&login.redirect_uri) {
        return Err(not_found());
    }
    let Some(session) = load_session(&mut conn, jar).await? else {
        // `action=register` also lands on the login page: this server has no registration.
        let action = PostAuthAction::ContinueCompatSsoLogin { id };
        let url = login_url(urls, Some(&action), None);
        return Ok(Loaded::Login(Redirect::to(&url).into_response()));
    };
    Ok(Loaded::Ready(login, Box::new(session)))
}

/// The host of `redirectUrl`, or its scheme when it has none (`im.fluffychat:`).
fn redirect_host(login: &CompatSsoLogin) -> String {
    login.redirect_uri.host_str().map_or_else(
        || format!("{}:", login.redirect_uri.scheme()),
        str::to_owned,
    )
}

/// `GET /complete-compat-sso/{id}`.
#[tracing::instrument(name = "handlers.compat.sso.complete.get", skip_all)]
pub(crate) async fn get(
    State(page): State<PageState>,
    State(db): State<Database>,
    State(homeserver): State<Arc<dyn HomeserverConnection>>,
    mut jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, HtmlError> {
    let (login, session) = match load(&db, &page.urls, &jar, &id).await? {
        Loaded::Login(response) => return Ok(response),
        Loaded::Ready(login, session) => (login, session),
    };
    let user = user_view(homeserver.as_ref(), &session.user).await;
    let csrf = page.csrf_token(&mut jar);
    let context = CompatSsoContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        form_action: page.urls.relative(&routes::complete_compat_sso(login.id)),
        user,
        redirect_host: redirect_host(&login),
        redirect_uri: login.redirect_uri.to_string(),
    };
    let html = page.templates.render_compat_sso(&context)?;
    // The answer to this page's form redirects to the client (CSP `form-action`).
    let mut response = (jar, Html(html)).into_response();
    response
        .extensions_mut()
        .insert(CspSources::default().form_action(&login.redirect_uri));
    Ok(response)
}

/// `POST /complete-compat-sso/{id}`.
#[tracing::instrument(name = "handlers.compat.sso.complete.post", skip_all)]
pub(crate) async fn post(
    State(db): State<Database>,
    State(clock): State<Arc<dyn Clock>>,
    State(rng): State<RngSource>,
    State(urls): State<UrlBuilder>,
    Path(id): Path<String>,
    CsrfForm { jar, .. }: CsrfForm,
) -> Result<Response, HtmlError> {
    let (login, session) = match load(&db, &urls, &jar, &id).await? {
        Loaded::Login(response) => return Ok(response),
        Loaded::Ready(login, session) => (login, session),
    };
    let token = random::login_token(&mut rng.fork());
    let mut conn = db.acquire().await?;
    let fulfilled = compat_sso_logins::fulfill_compat_sso_login(
        &mut conn,
        clock.as_ref(),
        login.id,
        session.id,
        &sha256_hex(&token),
    )
    .await?;
    if !fulfilled {
        return Err(not_pending());
    }
    tracing::info!(compat_sso_login.id = %login.id, user.id = %session.user.id, "compat SSO login fulfilled");
    let mut destination = login.redirect_uri;
    destination
        .query_pairs_mut()
        .append_pair("loginToken", &token);
    Ok(Redirect::to(destination.as_str()).into_response())
}
