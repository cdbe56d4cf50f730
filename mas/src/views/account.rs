//! `GET /account/` (and `/account`, `/account/{*rest}`): the account page (docs/protocol.md#pages),
//! MSC4191's `account_management_uri`. It shows the user's Matrix ID, verified email addresses and
//! active sessions, each with a sign-out form ([`session_end`]), and follows a client's deep link
//! (`?action=…&device_id=…`): the cross-signing reset page ([`cross_signing_reset`]), the
//! confirmation of ending a device's session, or the main page with the named session marked.
//! Without a browser session it sends the person to the login page with the `manage_account`
//! post-auth action, which brings them back to the same link.
//!
//! It links to the password change page ([`password`]) when passwords are on and the
//! configuration allows changing one. Email management is not offered (yet).

mod cross_signing_reset;
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

use crate::app::{AppState, SiteConfig};
use crate::auth::post_auth::{PostAuthAction, login_url};
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::params::{ParamsError, StrictQuery};
use crate::extract::session::load_session;
use crate::homeserver::HomeserverConnection;
use crate::pages::{PageState, bad_query, user_view};
use crate::routes::{self, UrlBuilder};
use crate::storage::{Database, StorageError, clients, compat, emails, oauth2_sessions};
use crate::templates::{
    AccountContext, CrossSigningResetContext, SessionEndContext, SessionView, UserView,
};

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
    State(page): State<PageState>,
    State(db): State<Database>,
    State(homeserver): State<Arc<dyn HomeserverConnection>>,
    State(settings): State<AccountSettings>,
    mut jar: CookieJar,
    query: Result<StrictQuery<AccountQuery>, ParamsError>,
) -> Result<Response, HtmlError> {
    let StrictQuery(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let mut conn = db.acquire().await?;
    let Some(session) = load_session(&mut conn, &jar).await? else {
        return Ok(to_login(&page.urls, query.action, query.device_id));
    };
    let user = session.user;
    let mut sessions = list_sessions(&mut conn, &page.urls, user.id).await?;
    let addresses = emails::list_emails(&mut conn, user.id).await?;
    drop(conn);
    let csrf_token = page.csrf_token(&mut jar).form_value().to_owned();
    let prefix = page.urls.prefix().to_owned();
    let account_url = page.urls.relative(routes::ACCOUNT);
    let mut notice = None;
    let html = match DeepLink::parse(query.action.as_deref(), query.device_id.as_deref()) {
        DeepLink::CrossSigningReset => {
            let context = CrossSigningResetContext {
                prefix,
                csrf_token,
                user: user_view(homeserver.as_ref(), &user).await,
                form_action: page.urls.relative(routes::ACCOUNT_CROSS_SIGNING_RESET),
                allowed: false,
                account_url,
            };
            let html = page.templates.render_account_cross_signing_reset(&context);
            return Ok((jar, Html(html?)).into_response());
        }
        DeepLink::EndDevice(device_id) => {
            let held: Vec<SessionView> = sessions
                .iter()
                .filter(|view| view.device_id.as_deref() == Some(device_id.as_str()))
                .cloned()
                .collect();
            if !held.is_empty() {
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
            notice = Some(format!("No app is signed in on device {device_id}."));
            let user = user_view(homeserver.as_ref(), &user).await;
            render_main(
                &page, &settings, user, csrf_token, sessions, addresses, notice,
            )?
        }
        DeepLink::Main { selected } => {
            for view in &mut sessions {
                view.selected = selected.is_some() && view.device_id == selected;
            }
            if selected.is_some() && !sessions.iter().any(|view| view.selected) {
                notice = Some("That session has ended.".to_owned());
            }
            let user = user_view(homeserver.as_ref(), &user).await;
            render_main(
                &page, &settings, user, csrf_token, sessions, addresses, notice,
            )?
        }
    };
    Ok((jar, Html(html)).into_response())
}

/// What the account page offers, from the configuration.
#[derive(Debug, Clone)]
pub(super) struct AccountSettings {
    site: Arc<SiteConfig>,
    passwords_enabled: bool,
}

impl FromRef<AppState> for AccountSettings {
    fn from_ref(state: &AppState) -> Self {
        Self {
            site: state.site.clone(),
            passwords_enabled: state.passwords.is_some(),
        }
    }
}

impl AccountSettings {
    /// Whether the page links to the password change (passwords on, changes allowed).
    fn password_change_offered(&self) -> bool {
        self.passwords_enabled && self.site.account.password_change_allowed
    }
}

/// The main page.
fn render_main(
    page: &PageState,
    settings: &AccountSettings,
    user: UserView,
    csrf_token: String,
    sessions: Vec<SessionView>,
    addresses: Vec<crate::model::UserEmail>,
    notice: Option<String>,
) -> Result<String, HtmlError> {
    let account_url = page.urls.relative(routes::ACCOUNT);
    let context = AccountContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token,
        user,
        emails: addresses
            .into_iter()
            .filter(|email| email.confirmed_at.is_some())
            .map(|email| email.email)
            .collect(),
        sessions,
        notice,
        cross_signing_reset_url: format!("{account_url}?action=org.matrix.cross_signing_reset"),
        logout_action: page.urls.relative(routes::LOGOUT),
        password_change_url: settings
            .password_change_offered()
            .then(|| page.urls.relative(routes::ACCOUNT_PASSWORD)),
    };
    page.templates
        .render_account(&context)
        .map_err(HtmlError::internal)
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
            created_at: format_time(session.created_at),
            last_active_at: session.last_active_at.map(format_time),
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
            created_at: format_time(session.created_at),
            last_active_at: None,
            end_action: urls.relative(&routes::account_session_end(session.id)),
            selected: false,
        });
    }
    Ok(views)
}

/// Unix milliseconds as `2026-01-02 03:04 UTC` (the proleptic Gregorian calendar; days to
/// dates after Howard Hinnant's `civil_from_days`).
fn format_time(unix_ms: i64) -> String {
    let minutes = unix_ms.div_euclid(60_000);
    let (days, minute_of_day) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute) = (minute_of_day / 60, minute_of_day % 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests;
