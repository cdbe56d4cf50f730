//! `GET`/`POST /upstream/link/{link_id}` (docs/protocol.md#upstream-login): the "create your
//! account" page of an upstream login whose provider asks for a confirmation (`skip_confirmation:
//! false`, or an attribute `suggest`ed). Only the browser whose callback settled on the link may
//! use it (the `upstream-oauth2-sessions` cookie), once.
//!
//! The page shows the username (fixed when the provider forces it, else a field pre-filled
//! with the suggestion), and the display name and email the provider sent, each with an
//! opt-out box when `suggest`ed. The POST (CSRF first) re-imports the claims stored with the
//! session, checks the username (grammar, free here and at the homeserver; a fixed one follows
//! `on_conflict`), creates the account and logs in.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use ulid::Ulid;

use super::account::{
    self, BrowserInfo, NewAccount, Plan, UsernameCheck, fixed_username, offered_display_name,
    offered_email,
};
use super::callback::browser_info;
use super::cookie::UpstreamSessions;
use super::{UpstreamState, failure};
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::model::{UpstreamLink, UpstreamSession, User};
use crate::pages::CsrfForm;
use crate::routes;
use crate::storage::{upstream_links, upstream_sessions, users};
use crate::templates::{FormError, Templates, UpstreamLinkContext};
use crate::upstream::{ImportAction, ImportedClaims, Provider, UpstreamIdentity, import_claims};

/// The confirmation form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(super) struct LinkForm {
    username: Option<String>,
    import_display_name: Option<String>,
    import_email: Option<String>,
}

fn not_found() -> HtmlError {
    HtmlError::new(
        StatusCode::NOT_FOUND,
        "Sign-in not found",
        "This sign-in does not exist. Go back and sign in again.",
    )
}

/// A completed login waiting at its link.
struct Loaded {
    provider: Arc<crate::upstream::Provider>,
    session: UpstreamSession,
    link: UpstreamLink,
    claims: ImportedClaims,
}

async fn load(state: &UpstreamState, jar: &CookieJar, link_id: &str) -> Result<Loaded, HtmlError> {
    let link_id: Ulid = link_id.parse().map_err(|_| not_found())?;
    let mut conn = state.db.acquire().await?;
    let link = upstream_links::find_upstream_link(&mut conn, link_id)
        .await?
        .ok_or_else(not_found)?;
    let provider = state
        .providers
        .get(&link.provider_id)
        .ok_or_else(|| failure::unknown_provider(&link.provider_id))?
        .clone();
    let sessions = UpstreamSessions::load(jar, state.clock.now_unix_ms());
    let Some(session_id) = sessions.find_by_link(link.id) else {
        return Err(failure::state_mismatch(
            &provider.id,
            "the link page was not reached in this browser",
        ));
    };
    let session = upstream_sessions::find_upstream_session(&mut conn, session_id)
        .await?
        .filter(|session| session.link_id == Some(link.id) && session.provider_id == provider.id)
        .ok_or_else(|| failure::state_mismatch(&provider.id, "no such authorization session"))?;
    if !session.is_completed() {
        return Err(failure::replayed(
            &provider.id,
            "the authorization session was used already",
        ));
    }
    let identity = UpstreamIdentity {
        id_token: session.id_token.clone().unwrap_or_default(),
        id_token_claims: session.id_token_claims.clone().unwrap_or_default(),
        userinfo: session.userinfo.clone(),
    };
    let claims = import_claims(&provider, &identity)
        .map_err(|error| failure::claims_error(&provider, &error))?;
    Ok(Loaded {
        provider,
        session,
        link,
        claims,
    })
}

/// Renders the page, with `username` in the field and `errors`.
fn render(
    state: &UpstreamState,
    templates: &Templates,
    mut jar: CookieJar,
    loaded: &Loaded,
    username: Option<String>,
    errors: Vec<FormError>,
) -> Result<Response, HtmlError> {
    let mut rng = state.rng.fork();
    let csrf = jar.csrf_token(state.clock.as_ref(), &mut rng);
    let claims = &loaded.claims;
    let fixed = fixed_username(claims);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let username = fixed
        .map(str::to_owned)
        .or(username)
        .or_else(|| claims.localpart.value.clone())
        .unwrap_or_default();
    let context = UpstreamLinkContext {
        prefix: state.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        form_action: state.urls.relative(&routes::upstream_link(loaded.link.id)),
        provider_name: loaded.provider.display_name().to_owned(),
        mxid: fixed.map(|name| state.homeserver.mxid(name)),
        username,
        username_editable: fixed.is_none(),
        display_name: offered_display_name(claims).map(str::to_owned),
        display_name_optional: claims.displayname.action == ImportAction::Suggest,
        email: offered_email(claims).map(str::to_owned),
        email_optional: claims.email.action == ImportAction::Suggest,
        errors,
    };
    let html = templates.render_upstream_link(&context)?;
    Ok((status, jar, Html(html)).into_response())
}

/// The link got a user meanwhile (another tab confirmed it): log in as that user.
async fn log_in_linked(
    state: &UpstreamState,
    jar: CookieJar,
    loaded: &Loaded,
    user_id: Ulid,
    browser: &BrowserInfo,
) -> Result<Response, HtmlError> {
    let mut tx = state.db.begin_write().await?;
    let user = users::find_user(&mut tx, user_id)
        .await?
        .ok_or_else(|| HtmlError::internal(format!("link {} has no user", loaded.link.id)))?;
    account::check_user(&loaded.provider, &user)?;
    account::log_in(state, tx, jar, &loaded.session, &user, browser, false).await
}

/// `GET /upstream/link/{link_id}`.
#[tracing::instrument(name = "handlers.upstream.link.get", skip_all, fields(upstream_oauth_link.id = %link_id))]
pub(super) async fn get(
    State(state): State<UpstreamState>,
    State(templates): State<Templates>,
    ip: ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Path(link_id): Path<String>,
) -> Result<Response, HtmlError> {
    let loaded = load(&state, &jar, &link_id).await?;
    if let Some(user_id) = loaded.link.user_id {
        let browser = browser_info(&headers, ip);
        return log_in_linked(&state, jar, &loaded, user_id, &browser).await;
    }
    render(&state, &templates, jar, &loaded, None, Vec::new())
}

/// Whether a typed username is a valid Matrix localpart (docs/protocol.md#usernames): the grammar,
/// not all digits, and a full MXID of at most 255 characters.
fn username_problem(username: &str, server_name: &str) -> Option<&'static str> {
    if username.is_empty() {
        return Some("Choose a username.");
    }
    let valid = username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=/+-".contains(&b));
    if !valid {
        return Some("Use only lower-case letters, digits and . _ = - / +");
    }
    if username.bytes().all(|b| b.is_ascii_digit()) {
        return Some("A username cannot be only digits.");
    }
    if username.len() + server_name.len() + 2 > 255 {
        return Some("This username is too long.");
    }
    None
}

/// The plan for the form, or the form errors to show.
async fn plan_for_form(
    state: &UpstreamState,
    loaded: &Loaded,
    form: &LinkForm,
) -> Result<Result<Plan, (String, Vec<FormError>)>, HtmlError> {
    let provider: &Provider = &loaded.provider;
    let claims = &loaded.claims;
    let fixed = fixed_username(claims);
    let username = match fixed {
        Some(name) => name.to_owned(),
        None => form
            .username
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_lowercase(),
    };
    if fixed.is_none()
        && let Some(problem) = username_problem(&username, &state.site.server_name)
    {
        return Ok(Err((username, vec![FormError::field("username", problem)])));
    }
    let mut conn = state.db.acquire().await?;
    let homeserver = state.homeserver.as_ref();
    let check =
        account::check_username(&mut conn, homeserver, provider, &username, fixed.is_some())
            .await?;
    let opted_in = |action: ImportAction, field: &Option<String>| {
        action != ImportAction::Suggest || field.is_some()
    };
    match check {
        UsernameCheck::Taken(why) if fixed.is_some() => Err(failure::localpart_conflict(
            provider,
            &username,
            &claims.subject,
            why,
        )),
        UsernameCheck::Taken(_) => Ok(Err((
            username,
            vec![FormError::field("username", "This username is taken.")],
        ))),
        UsernameCheck::Link { user, replace } => {
            account::check_user(provider, &user)?;
            Ok(Ok(Plan::LinkExisting { user, replace }))
        }
        UsernameCheck::Free => Ok(Ok(Plan::Create(NewAccount {
            username,
            display_name: offered_display_name(claims)
                .filter(|_| opted_in(claims.displayname.action, &form.import_display_name))
                .map(str::to_owned),
            email: offered_email(claims)
                .filter(|_| opted_in(claims.email.action, &form.import_email))
                .map(str::to_owned),
        }))),
    }
}

/// `POST /upstream/link/{link_id}`.
#[tracing::instrument(name = "handlers.upstream.link.post", skip_all, fields(upstream_oauth_link.id = %link_id))]
pub(super) async fn post(
    State(state): State<UpstreamState>,
    State(templates): State<Templates>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(link_id): Path<String>,
    CsrfForm { jar, fields: form }: CsrfForm<LinkForm>,
) -> Result<Response, HtmlError> {
    let loaded = load(&state, &jar, &link_id).await?;
    let browser = browser_info(&headers, ip);
    if let Some(user_id) = loaded.link.user_id {
        return log_in_linked(&state, jar, &loaded, user_id, &browser).await;
    }
    let plan = match plan_for_form(&state, &loaded, &form).await? {
        Ok(plan) => plan,
        Err((username, errors)) => {
            return render(&state, &templates, jar, &loaded, Some(username), errors);
        }
    };
    let mut tx = state.db.begin_write().await?;
    let executed = account::execute(
        &mut tx,
        state.clock.as_ref(),
        &state.rng,
        &loaded.provider,
        &loaded.claims,
        Some(loaded.link.id),
        plan,
    )
    .await?;
    let user: User = executed
        .user
        .ok_or_else(|| HtmlError::internal("the confirmation planned no user"))?;
    account::log_in(
        &state,
        tx,
        jar,
        &loaded.session,
        &user,
        &browser,
        executed.queued_job,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::username_problem;

    #[test]
    fn typed_usernames_follow_the_localpart_rules() {
        assert_eq!(username_problem("alice.b_c=d/e+f-g", "example.com"), None);
        assert!(username_problem("", "example.com").is_some());
        assert!(username_problem("Alice", "example.com").is_some());
        assert!(username_problem("al ice", "example.com").is_some());
        assert!(username_problem("1234", "example.com").is_some());
        assert!(username_problem(&"a".repeat(250), "example.com").is_some());
    }
}
