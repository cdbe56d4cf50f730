//! `GET/POST /device/{grant_id}` (RFC 8628 §3.3, §5.4; docs/protocol.md#pages): the approval page
//! of one device authorization grant. The signed-in person sees which client on which device
//! asks, the user code to compare with the device, where and when the request came from and what
//! it asks for, and chooses Allow or Deny. Without a browser session the browser goes to the
//! login page with the `continue_device_code_grant` action, which brings it back here.
//!
//! The grant must be pending and unexpired on both methods. The scope policy applies as on the
//! consent page of the authorization code flow (a violation is the 403 page). POST (CSRF first)
//! records the decision with the browser session, conditionally: of two racing decisions one
//! wins, and one after the grant expired is refused. The device learns the outcome at its next
//! poll of the token endpoint.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use ulid::Ulid;

use super::link::Unusable;
use crate::auth::post_auth::{PostAuthAction, login_url};
use crate::csp::CspSources;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::homeserver::HomeserverConnection;
use crate::model::{BrowserSession, Client, DeviceGrant};
use crate::oauth2::consent::{client_view, logo_source, policy_violation};
use crate::oauth2::policy;
use crate::pages::{CsrfForm, PageState, user_view};
use crate::routes::{self, UrlBuilder};
use crate::storage::{Database, clients, device_grants};
use crate::templates::{
    DeviceConsentContext, DeviceDoneContext, describe_scopes, device_id_of, time_ago,
};

/// The approval form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceConsentForm {
    #[serde(default)]
    action: String,
}

fn not_found() -> HtmlError {
    HtmlError::new(
        StatusCode::NOT_FOUND,
        "Request not found",
        "This sign-in request does not exist. Start again on your device.",
    )
}

/// The 400 page for a grant that can no longer be decided on.
fn unusable(why: Unusable) -> HtmlError {
    let title = match why {
        Unusable::Used => "Request already handled",
        Unusable::Expired => "Request expired",
    };
    HtmlError::bad_request(title, why.message())
}

/// What both methods need: a pending, unexpired grant, its client and a browser session; or the
/// response to give instead (a redirect to the login page).
enum Loaded {
    Ready(Box<Ready>),
    Login(Response),
}

struct Ready {
    grant: DeviceGrant,
    client: Client,
    session: BrowserSession,
}

async fn load(
    page: &PageState,
    db: &Database,
    jar: &CookieJar,
    grant_id: &str,
) -> Result<Loaded, HtmlError> {
    let id: Ulid = grant_id.parse().map_err(|_| not_found())?;
    let mut conn = db.acquire().await?;
    let grant = device_grants::find_device_grant(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    if let Some(why) = Unusable::of(&grant, page.clock.now_unix_ms()) {
        return Err(unusable(why));
    }
    // A locked or deactivated user has no session here (`load_session`), so cannot approve.
    let Some(session) = load_session(&mut conn, jar).await? else {
        return Ok(Loaded::Login(login(&page.urls, id)));
    };
    let client = clients::find_client(&mut conn, grant.request.client_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Loaded::Ready(Box::new(Ready {
        grant,
        client,
        session,
    })))
}

/// To the login page, and back here afterwards.
fn login(urls: &UrlBuilder, id: Ulid) -> Response {
    let action = PostAuthAction::ContinueDeviceCodeGrant { id };
    Redirect::to(&login_url(urls, Some(&action), None)).into_response()
}

/// `GET /device/{grant_id}`.
#[tracing::instrument(name = "handlers.oauth2.device.consent.get", skip_all)]
pub(crate) async fn get(
    State(page): State<PageState>,
    State(db): State<Database>,
    State(homeserver): State<Arc<dyn HomeserverConnection>>,
    mut jar: CookieJar,
    Path(grant_id): Path<String>,
) -> Result<Response, HtmlError> {
    let Ready {
        grant,
        client,
        session,
    } = match load(&page, &db, &jar, &grant_id).await? {
        Loaded::Login(response) => return Ok(response),
        Loaded::Ready(ready) => *ready,
    };
    policy::authorization_grant(&session.user, &grant.request.scope)
        .map_err(|violations| policy_violation(&violations))?;
    let user = user_view(homeserver.as_ref(), &session.user).await;
    let scope = grant.request.scope.to_string();
    let csrf = page.csrf_token(&mut jar);
    let context = DeviceConsentContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        form_action: page.urls.relative(&routes::device_consent(grant.id)),
        client: client_view(&client),
        scopes: describe_scopes(&scope),
        device_id: device_id_of(&scope),
        user_code: grant.display_user_code(),
        ip_address: grant.request.ip_address.clone(),
        user_agent: grant.request.user_agent.clone(),
        requested: time_ago(grant.created_at, page.clock.now_unix_ms()),
        user,
    };
    let html = page.templates.render_device_consent(&context)?;
    // The forms post to this page itself (`form-action 'self'`); only the logo needs a source.
    let sources = logo_source(CspSources::default(), &client);
    let mut response = (jar, Html(html)).into_response();
    response.extensions_mut().insert(sources);
    Ok(response)
}

/// `POST /device/{grant_id}`.
#[tracing::instrument(name = "handlers.oauth2.device.consent.post", skip_all)]
pub(crate) async fn post(
    State(page): State<PageState>,
    State(db): State<Database>,
    Path(grant_id): Path<String>,
    CsrfForm { jar, fields: form }: CsrfForm<DeviceConsentForm>,
) -> Result<Response, HtmlError> {
    let Ready { grant, session, .. } = match load(&page, &db, &jar, &grant_id).await? {
        Loaded::Login(response) => return Ok(response),
        Loaded::Ready(ready) => *ready,
    };
    let approved = match form.action.as_str() {
        "allow" => true,
        "deny" => false,
        _ => {
            return Err(HtmlError::bad_request(
                "Invalid form",
                "Choose Allow or Deny.",
            ));
        }
    };
    if approved {
        policy::authorization_grant(&session.user, &grant.request.scope)
            .map_err(|violations| policy_violation(&violations))?;
    }
    let clock = page.clock.as_ref();
    let mut conn = db.acquire().await?;
    let decided = if approved {
        device_grants::fulfill_device_grant(&mut conn, clock, grant.id, session.id).await?
    } else {
        device_grants::reject_device_grant(&mut conn, clock, grant.id, session.id).await?
    };
    if !decided {
        // Decided in another tab meanwhile, or expired since the page was loaded.
        let why = if grant.expired(clock.now_unix_ms()) {
            Unusable::Expired
        } else {
            Unusable::Used
        };
        return Err(unusable(why));
    }
    tracing::info!(
        device_grant.id = %grant.id,
        user_session.id = %session.id,
        user.id = %session.user.id,
        approved,
        "device grant decided by the user"
    );
    let context = DeviceDoneContext {
        prefix: page.urls.prefix().to_owned(),
        approved,
    };
    let html = page.templates.render_device_done(&context)?;
    Ok((jar, Html(html)).into_response())
}

#[cfg(test)]
mod tests;
