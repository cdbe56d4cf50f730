//! `GET /account/` (and `/account`, `/account/{*rest}`): the account page (docs/protocol.md#pages),
//! MSC4191's `account_management_uri`. It shows the user's Matrix ID, verified email addresses and
//! active sessions, each with a sign-out form ([`session_end`]), and follows a client's deep link
//! (`?action=…&device_id=…`): the cross-signing reset page ([`cross_signing_reset`]), the
//! confirmation of ending a device's session, or the main page with the named session marked.
//! Without a browser session it sends the person to the login page with the `manage_account`
//! post-auth action, which brings them back to the same link.
//!
//! The page also manages the account itself ([`manage`]): email addresses ([`emails`]), the
//! display name ([`displayname`]) and closing the account ([`deactivate`]). Their POSTs answer
//! with this page again, with a notice or the form's errors ([`main_page`]).
//! It links to the password change page ([`password`]) when passwords are on and the
//! configuration allows changing one.

mod add_email;
mod cross_signing_reset;
mod deactivate;
mod displayname;
mod emails;
mod manage;
pub(super) mod password;
mod session_end;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sqlx::AnyConnection;
use ulid::Ulid;

use self::manage::ManageValues;
use crate::app::{AppState, SiteConfig};
use crate::auth::post_auth::{PostAuthAction, login_url};
use crate::crypto::passwords::PasswordManager;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::params::{ParamsError, StrictQuery};
use crate::extract::session::load_session;
use crate::homeserver::HomeserverConnection;
use crate::jobs::JobWaker;
use crate::model::User;
use crate::pages::{PageState, bad_query, user_view};
use crate::ratelimit::RateLimiter;
use crate::routes::{self, UrlBuilder};
use crate::storage::{self, Database, StorageError, clients, compat, oauth2_sessions};
use crate::templates::{
    AccountContext, CrossSigningResetContext, FormError, SessionEndContext, SessionView, UserView,
};
use crate::upstream::UpstreamProviders;

/// The routes of the account pages.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::ACCOUNT_BARE, get(bare))
        .route(routes::ACCOUNT, get(get_page))
        .route(routes::ACCOUNT_REST, get(get_page))
        .route(
            routes::ACCOUNT_SESSION_END,
            get(get_page).post(session_end::post),
        )
        .route(
            routes::ACCOUNT_CROSS_SIGNING_RESET,
            get(get_page).post(cross_signing_reset::post),
        )
        .merge(manage::router())
        .route(
            routes::ACCOUNT_PASSWORD,
            get(password::get).post(password::post),
        )
}

/// The deep-link query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AccountQuery {
    action: Option<String>,
    device_id: Option<String>,
}

/// What a deep link asks for (MSC4191 actions, with the old unprefixed names).
#[derive(Debug, Clone, PartialEq, Eq)]
enum DeepLink {
    /// The main page, with the sessions of this device marked.
    Main { selected: Option<String> },
    /// The cross-signing reset page.
    CrossSigningReset,
    /// The confirmation of ending this device's sessions.
    EndDevice(String),
}

impl DeepLink {
    fn parse(action: Option<&str>, device_id: Option<&str>) -> Self {
        let device_id = device_id.filter(|id| !id.is_empty()).map(str::to_owned);
        match (action, device_id) {
            (Some("org.matrix.cross_signing_reset"), _) => Self::CrossSigningReset,
            (
                Some("org.matrix.device_delete" | "org.matrix.session_end" | "session_end"),
                Some(device_id),
            ) => Self::EndDevice(device_id),
            (
                Some("org.matrix.device_view" | "org.matrix.session_view" | "session_view"),
                selected,
            ) => Self::Main { selected },
            // profile, devices_list, sessions_list and anything unknown.
            _ => Self::Main { selected: None },
        }
    }
}

/// `GET /account`: to `/account/`, keeping the query.
#[tracing::instrument(name = "handlers.views.account.bare.get", skip_all)]
async fn bare(State(urls): State<UrlBuilder>, uri: axum::http::Uri) -> Response {
    let path = urls.relative(routes::ACCOUNT);
    let location = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// 302 to the login page, which comes back to the account page with this deep link.
fn to_login(urls: &UrlBuilder, action: Option<String>, device_id: Option<String>) -> Response {
    let action = PostAuthAction::ManageAccount { action, device_id };
    let url = login_url(urls, Some(&action), None);
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}

/// The 404 page for a session that is not one of the user's active ones.
fn session_not_found() -> HtmlError {
    HtmlError::new(
        StatusCode::NOT_FOUND,
        "Session not found",
        "This session does not exist or has already ended.",
    )
}

/// `GET /account/` and every path under it.
#[tracing::instrument(name = "handlers.views.account.get", skip_all)]
async fn get_page(
    State(state): State<AccountState>,
    mut jar: CookieJar,
    query: Result<StrictQuery<AccountQuery>, ParamsError>,
) -> Result<Response, HtmlError> {
    let StrictQuery(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let (page, homeserver) = (&state.page, &state.homeserver);
    let mut conn = state.db.acquire().await?;
    let Some(session) = load_session(&mut conn, &jar).await? else {
        return Ok(to_login(&page.urls, query.action, query.device_id));
    };
    let user = session.user;
    let sessions = list_sessions(&mut conn, &page.urls, user.id).await?;
    drop(conn);
    let prefix = page.urls.prefix().to_owned();
    let account_url = page.urls.relative(routes::ACCOUNT);
    match DeepLink::parse(query.action.as_deref(), query.device_id.as_deref()) {
        DeepLink::CrossSigningReset => {
            let csrf_token = page.csrf_token(&mut jar).form_value().to_owned();
            let context = CrossSigningResetContext {
                prefix,
                csrf_token,
                user: user_view(homeserver.as_ref(), &user).await,
                form_action: page.urls.relative(routes::ACCOUNT_CROSS_SIGNING_RESET),
                allowed: false,
                account_url,
            };
            let html = page.templates.render_account_cross_signing_reset(&context);
            Ok((jar, Html(html?)).into_response())
        }
        DeepLink::EndDevice(device_id) => {
            let held: Vec<SessionView> = sessions
                .iter()
                .filter(|view| view.device_id.as_deref() == Some(device_id.as_str()))
                .cloned()
                .collect();
            if !held.is_empty() {
                let csrf_token = page.csrf_token(&mut jar).form_value().to_owned();
                let context = SessionEndContext {
                    prefix,
                    csrf_token,
                    device_id,
                    sessions: held,
                    account_url,
                };
                let html = page.templates.render_account_session_end(&context);
                return Ok((jar, Html(html?)).into_response());
            }
            let notice = format!("No app is signed in on device {device_id}.");
            main_page(&state, jar, &user, MainPage::notice(notice)).await
        }
        DeepLink::Main { selected } => {
            let marked = sessions
                .iter()
                .any(|view| selected.is_some() && view.device_id == selected);
            let extras = MainPage {
                selected: selected.clone(),
                notice: (selected.is_some() && !marked)
                    .then(|| "That session has ended.".to_owned()),
                ..MainPage::default()
            };
            main_page(&state, jar, &user, extras).await
        }
    }
}

/// The parts of the state the account pages read.
#[derive(Debug, Clone)]
pub(super) struct AccountState {
    page: PageState,
    db: Database,
    homeserver: Arc<dyn HomeserverConnection>,
    site: Arc<SiteConfig>,
    upstream: UpstreamProviders,
    passwords: Option<Arc<PasswordManager>>,
    limiter: RateLimiter,
    jobs: JobWaker,
}

impl FromRef<AppState> for AccountState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            page: PageState::from_ref(state),
            db: state.db.clone(),
            homeserver: state.homeserver.clone(),
            site: state.site.clone(),
            upstream: state.upstream.clone(),
            passwords: state.passwords.clone(),
            limiter: state.limiter.clone(),
            jobs: state.jobs.clone(),
        }
    }
}

/// What the main page shows besides the account: a notice, the errors of a form and what to
/// fill in again, and the session a deep link marks.
#[derive(Debug, Default)]
pub(super) struct MainPage {
    /// The status of the answer (200 unless a form was refused).
    pub(super) status: Option<StatusCode>,
    /// A message above the lists.
    pub(super) notice: Option<String>,
    /// The refused form's problems.
    pub(super) errors: Vec<FormError>,
    /// The address to fill in the add form.
    pub(super) email_value: String,
    /// The display name to fill in instead of the current one.
    pub(super) displayname_value: Option<String>,
    /// The device whose sessions are marked.
    pub(super) selected: Option<String>,
}

impl MainPage {
    /// The page with a notice.
    pub(super) fn notice(notice: impl Into<String>) -> Self {
        Self {
            notice: Some(notice.into()),
            ..Self::default()
        }
    }

    /// The page with one refusal of a form, with `status`.
    pub(super) fn refused(status: StatusCode, error: FormError) -> Self {
        Self {
            status: Some(status),
            errors: vec![error],
            ..Self::default()
        }
    }
}

/// The main account page of `user`, loaded afresh (sessions, addresses, display name, what may
/// be changed), with `extras`.
pub(super) async fn main_page(
    state: &AccountState,
    mut jar: CookieJar,
    user: &User,
    extras: MainPage,
) -> Result<Response, HtmlError> {
    let page = &state.page;
    let mut conn = state.db.acquire().await?;
    let mut sessions = list_sessions(&mut conn, &page.urls, user.id).await?;
    let policy = manage::Policy::load(&mut conn, state, user.id).await?;
    let addresses = storage::emails::list_emails(&mut conn, user.id).await?;
    let primary = storage::emails::primary_email_id(&mut conn, user.id).await?;
    drop(conn);
    for view in &mut sessions {
        view.selected = extras.selected.is_some() && view.device_id == extras.selected;
    }
    let shown = user_view(state.homeserver.as_ref(), user).await;
    let current_name = state_display_name(&shown, user);
    let manage = policy.view(
        &page.urls,
        &addresses,
        primary,
        ManageValues {
            errors: extras.errors,
            email_value: extras.email_value,
            displayname_value: extras.displayname_value.unwrap_or(current_name),
        },
    );
    let csrf_token = page.csrf_token(&mut jar).form_value().to_owned();
    let account_url = page.urls.relative(routes::ACCOUNT);
    let context = AccountContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token,
        user: shown,
        manage,
        sessions,
        notice: extras.notice,
        cross_signing_reset_url: format!("{account_url}?action=org.matrix.cross_signing_reset"),
        logout_action: page.urls.relative(routes::LOGOUT),
        password_change_url: (state.passwords.is_some()
            && state.site.account.password_change_allowed)
            .then(|| page.urls.relative(routes::ACCOUNT_PASSWORD)),
    };
    let html = page.templates.render_account(&context)?;
    let status = extras.status.unwrap_or(StatusCode::OK);
    Ok((status, jar, Html(html)).into_response())
}

/// The display name the homeserver has, or empty when it has none (the page shows the
/// username then).
fn state_display_name(view: &UserView, user: &User) -> String {
    view.display_name
        .clone()
        .filter(|name| *name != user.username)
        .unwrap_or_default()
}

/// The user's active OAuth sessions (oldest first), then their active compat sessions.
async fn list_sessions(
    conn: &mut AnyConnection,
    urls: &UrlBuilder,
    user_id: Ulid,
) -> Result<Vec<SessionView>, StorageError> {
    let mut views = Vec::new();
    for session in oauth2_sessions::list_active_oauth2_sessions(conn, user_id).await? {
        let client = clients::find_client(conn, session.client_id).await?;
        views.push(SessionView {
            name: client.map_or_else(|| "Unknown app".to_owned(), |c| c.display_name()),
            legacy: false,
            device_id: session.scope.device_id().map(str::to_owned),
            created_at: crate::clock::format_unix_ms(session.created_at),
            last_active_at: session.last_active_at.map(crate::clock::format_unix_ms),
            end_action: urls.relative(&routes::account_session_end(session.id)),
            selected: false,
        });
    }
    for session in compat::list_active_compat_sessions(conn, user_id).await? {
        views.push(SessionView {
            name: session
                .human_name
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| "Legacy login".to_owned()),
            legacy: true,
            device_id: Some(session.device_id),
            created_at: crate::clock::format_unix_ms(session.created_at),
            last_active_at: None,
            end_action: urls.relative(&routes::account_session_end(session.id)),
            selected: false,
        });
    }
    Ok(views)
}

#[cfg(test)]
mod tests;
