//! The pages for people (docs/protocol.md#pages): the index, login and logout, the account page
//! ([`account`]), login through upstream providers ([`upstream`]), plus the route group of the
//! `human` resource, which also carries `/authorize` and the consent page from `oauth2`. Static
//! files (`assets` resource) are served by [`assets`].
//!
//! Every form POST checks its CSRF token first (docs/protocol.md#cookies-and-csrf); a bad or
//! missing one is a 403 page. Pages answer errors as [`HtmlError`]s, rendered by the human group's
//! layer, which also sets `X-Frame-Options: DENY`.

mod account;
pub(crate) mod assets;
mod index;
mod login;
mod logout;
mod upstream;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use ulid::Ulid;

use crate::app::AppState;
use crate::error::HtmlError;
use crate::extract::CsrfError;
use crate::oauth2::{authorize, consent};
use crate::routes::{self, UrlBuilder};
use crate::templates::PostAuthAction as PostAuthActionView;

pub(crate) use self::index::user_view;

/// The largest form body a page reads (login, consent and logout forms are tiny).
pub const FORM_BODY_LIMIT: usize = 16 * 1024;

/// The `human` resource: pages, `/authorize` and consent.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::INDEX, get(index::get))
        .route(routes::LOGIN, get(login::get).post(login::post))
        .route(routes::LOGOUT, axum::routing::post(logout::post))
        .merge(account::router())
        .route(routes::AUTHORIZE, get(authorize::get))
        .route(routes::CONSENT, get(consent::get).post(consent::post))
        .route(
            routes::COMPLETE_COMPAT_SSO,
            get(crate::compat::sso::complete::get).post(crate::compat::sso::complete::post),
        )
        .merge(upstream::router())
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
}

/// What to do after logging in (the `kind` and `id` of the login query). Only the kinds this
/// server implements are kept; others are dropped and the login ends on the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PostAuthAction {
    /// Back to the consent page of an authorization grant.
    ContinueAuthorizationGrant {
        /// The grant.
        id: Ulid,
    },
    /// Back to the "continue to the application" page of a legacy SSO login.
    ContinueCompatSsoLogin {
        /// The `compat_sso_logins` row.
        id: Ulid,
    },
    /// To the account page, with the deep link a client opened it with (MSC4191 `action`
    /// and `device_id`).
    ManageAccount {
        /// The account page's `action`.
        action: Option<String>,
        /// The account page's `device_id`.
        device_id: Option<String>,
    },
}

impl PostAuthAction {
    const CONTINUE_AUTHORIZATION_GRANT: &'static str = "continue_authorization_grant";
    const CONTINUE_COMPAT_SSO_LOGIN: &'static str = "continue_compat_sso_login";
    const MANAGE_ACCOUNT: &'static str = "manage_account";

    /// From the `kind` and `id` query or form fields. For `manage_account` the `id` is the
    /// account page's query (`action=…&device_id=…`, form-encoded), so that the login form and
    /// the upstream session carry it in the same two fields as the other kinds.
    pub(crate) fn from_fields(kind: Option<&str>, id: Option<&str>) -> Option<Self> {
        let kind = kind?;
        if kind == Self::MANAGE_ACCOUNT {
            let (mut action, mut device_id) = (None, None);
            for (name, value) in url::form_urlencoded::parse(id.unwrap_or_default().as_bytes()) {
                match &*name {
                    "action" => action = Some(value.into_owned()),
                    "device_id" => device_id = Some(value.into_owned()),
                    _ => {}
                }
            }
            return Some(Self::ManageAccount { action, device_id });
        }
        let id = id?.parse().ok()?;
        match kind {
            Self::CONTINUE_AUTHORIZATION_GRANT => Some(Self::ContinueAuthorizationGrant { id }),
            Self::CONTINUE_COMPAT_SSO_LOGIN => Some(Self::ContinueCompatSsoLogin { id }),
            _ => None,
        }
    }

    /// The `kind` and `id` fields.
    pub(crate) fn fields(&self) -> (&'static str, String) {
        match self {
            Self::ContinueAuthorizationGrant { id } => {
                (Self::CONTINUE_AUTHORIZATION_GRANT, id.to_string())
            }
            Self::ContinueCompatSsoLogin { id } => {
                (Self::CONTINUE_COMPAT_SSO_LOGIN, id.to_string())
            }
            Self::ManageAccount { action, device_id } => (
                Self::MANAGE_ACCOUNT,
                account_query(action.as_deref(), device_id.as_deref()),
            ),
        }
    }

    /// The stored form (`{"kind": …, "id": …}`), e.g. in an upstream authorization session.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let (kind, id) = self.fields();
        serde_json::json!({ "kind": kind, "id": id })
    }

    /// Back from [`Self::to_json`]; anything else is no action.
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<Self> {
        let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
        Self::from_fields(field("kind"), field("id"))
    }

    /// The hidden fields of the login form.
    pub(crate) fn view(&self) -> PostAuthActionView {
        let (kind, id) = self.fields();
        PostAuthActionView {
            kind: kind.to_owned(),
            id,
        }
    }

    /// Where the browser goes once logged in.
    pub(crate) fn destination(action: Option<&Self>, urls: &UrlBuilder) -> String {
        match action {
            Some(Self::ContinueAuthorizationGrant { id }) => urls.relative(&routes::consent(*id)),
            Some(Self::ContinueCompatSsoLogin { id }) => {
                urls.relative(&routes::complete_compat_sso(*id))
            }
            Some(Self::ManageAccount { action, device_id }) => {
                let path = urls.relative(routes::ACCOUNT);
                let query = account_query(action.as_deref(), device_id.as_deref());
                if query.is_empty() {
                    path
                } else {
                    format!("{path}?{query}")
                }
            }
            None => urls.relative(routes::INDEX),
        }
    }
}

/// The account page's deep-link query (`action=…&device_id=…`), empty without either.
fn account_query(action: Option<&str>, device_id: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(action) = action {
        query.append_pair("action", action);
    }
    if let Some(device_id) = device_id {
        query.append_pair("device_id", device_id);
    }
    query.finish()
}

/// The login page with a post-auth action and a username to fill in.
pub(crate) fn login_url(
    urls: &UrlBuilder,
    action: Option<&PostAuthAction>,
    login_hint: Option<&str>,
) -> String {
    with_action_query(urls.relative(routes::LOGIN), action, login_hint)
}

/// The start of a login at an upstream provider, carrying the post-auth action and the
/// `login_hint` (the login page's buttons, and its SSO-only redirect).
pub(crate) fn upstream_authorize_url(
    urls: &UrlBuilder,
    provider_id: &str,
    action: Option<&PostAuthAction>,
    login_hint: Option<&str>,
) -> String {
    let path = urls.relative(&routes::upstream_authorize(provider_id));
    with_action_query(path, action, login_hint)
}

/// `path` with the `kind`, `id` and `login_hint` query.
fn with_action_query(
    path: String,
    action: Option<&PostAuthAction>,
    login_hint: Option<&str>,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(action) = action {
        let (kind, id) = action.fields();
        query.append_pair("kind", kind);
        query.append_pair("id", &id);
    }
    if let Some(hint) = login_hint {
        query.append_pair("login_hint", hint);
    }
    let query = query.finish();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The localpart a person typed or a client hinted: `alice`, `@alice:server` or
/// `mxid:@alice:server` (upstream's `login_hint` form) for this server; anything else as is.
pub(crate) fn localpart_of<'a>(input: &'a str, server_name: &str) -> &'a str {
    let input = input.trim();
    let mxid = input.strip_prefix("mxid:").unwrap_or(input);
    mxid.strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .filter(|(_, server)| *server == server_name)
        .map_or(input, |(localpart, _)| localpart)
}

/// A form field set: what every page POST carries.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    /// The CSRF token.
    #[serde(default)]
    pub(crate) csrf: String,
}

/// The page for a refused CSRF check.
pub(crate) fn csrf_failed(error: CsrfError) -> HtmlError {
    tracing::info!(reason = %error, "form refused: CSRF check failed");
    HtmlError::new(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The page you sent was too old or did not come from this site. Go back, reload the \
         page and try again. This site needs cookies to be enabled.",
    )
}

/// The page for a form body that could not be read.
pub(crate) fn bad_form(rejection: &axum::extract::rejection::FormRejection) -> HtmlError {
    let status = rejection.status();
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    HtmlError::new(
        status,
        "Invalid form",
        "The form could not be read. Go back, reload the page and try again.",
    )
}

/// The page for a query string that could not be read.
pub(crate) fn bad_query(_rejection: &axum::extract::rejection::QueryRejection) -> HtmlError {
    HtmlError::bad_request(
        "Invalid link",
        "The address of this page is malformed. Go back and try again.",
    )
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
