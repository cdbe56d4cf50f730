//! `GET`/`POST /upstream/callback/{provider_id}` (docs/protocol.md#upstream-login): the provider's
//! answer, in the query (`response_mode=query`) or as a form (`form_post`).
//!
//! Order: the `state`, which must be one this browser's `upstream-oauth2-sessions` cookie
//! lists and whose session is still pending (else "state mismatch" or "replayed"); only then
//! the provider's `error` (cancelled, or another code), as upstream MAS does, so that a forged
//! `error=` link cannot show our pages in a provider's name; the code exchange and ID-token
//! validation by the provider client; the claims import; then the account
//! ([`account::decide`]). All writes
//! (link, user, email, job, the session's completion, the browser session) happen in one
//! transaction at the end.
//!
//! A `form_post` answer is a cross-site POST, which does not carry our `SameSite=Lax` cookies.
//! When it arrives without the cookie, the page re-posts the same fields to the same URL from
//! our own origin (one button, no JavaScript); that second POST carries the cookie.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::account::{self, BrowserInfo};
use super::cookie::UpstreamSessions;
use super::{UpstreamState, failure, redirect_uri};
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::extract::params::{FormError, ParamsError, StrictForm, StrictQuery};
use crate::model::{UpstreamCompletion, UpstreamSession};
use crate::pages::{bad_form, bad_query};
use crate::routes::{self, UrlBuilder};
use crate::storage::upstream_sessions;
use crate::templates::{FormPostParam, Templates, UpstreamResubmitContext};
use crate::upstream::{CallbackParams, ImportedClaims, Provider, UpstreamIdentity, import_claims};

/// The field our re-post page adds, so that it is not offered twice.
const RESUBMITTED: &str = "mas_resubmitted";

/// The callback's parameters (no `Debug`: the code is a credential).
#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    #[serde(rename = "mas_resubmitted")]
    resubmitted: Option<String>,
}

/// The browser's `User-Agent` and address.
pub(super) fn browser_info(headers: &HeaderMap, ClientIp(ip): ClientIp) -> BrowserInfo {
    BrowserInfo {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        ip: ip.map(|ip| ip.to_string()),
    }
}

/// `GET /upstream/callback/{provider_id}`.
#[tracing::instrument(
    name = "handlers.upstream.callback.get",
    skip_all,
    fields(provider = %provider_id)
)]
pub(super) async fn get(
    State(state): State<UpstreamState>,
    ip: ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Path(provider_id): Path<String>,
    query: Result<StrictQuery<CallbackQuery>, ParamsError>,
) -> Result<Response, HtmlError> {
    let StrictQuery(params) = query.map_err(|rejection| bad_query(&rejection))?;
    handle(
        &state,
        jar,
        &provider_id,
        params,
        browser_info(&headers, ip),
    )
    .await
}

/// `POST /upstream/callback/{provider_id}` (`response_mode=form_post`).
#[tracing::instrument(
    name = "handlers.upstream.callback.post",
    skip_all,
    fields(provider = %provider_id)
)]
pub(super) async fn post(
    State(state): State<UpstreamState>,
    State(templates): State<Templates>,
    ip: ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Path(provider_id): Path<String>,
    form: Result<StrictForm<CallbackQuery>, FormError>,
) -> Result<Response, HtmlError> {
    let StrictForm(params) = form.map_err(|rejection| bad_form(&rejection))?;
    let now = state.clock.now_unix_ms();
    if let Some(provider) = state.providers.get(&provider_id)
        && params.resubmitted.is_none()
        && UpstreamSessions::load(&jar, now).is_empty()
    {
        return resubmit(&templates, &state.urls, provider, &params);
    }
    handle(
        &state,
        jar,
        &provider_id,
        params,
        browser_info(&headers, ip),
    )
    .await
}

/// The page that re-posts a cookie-less `form_post` answer from our own origin.
fn resubmit(
    templates: &Templates,
    urls: &UrlBuilder,
    provider: &Provider,
    params: &CallbackQuery,
) -> Result<Response, HtmlError> {
    let fields = [
        ("state", &params.state),
        ("code", &params.code),
        ("error", &params.error),
        ("error_description", &params.error_description),
    ];
    let mut hidden: Vec<FormPostParam> = fields
        .into_iter()
        .filter_map(|(name, value)| {
            value.as_ref().map(|value| FormPostParam {
                name: name.to_owned(),
                value: value.clone(),
            })
        })
        .collect();
    hidden.push(FormPostParam {
        name: RESUBMITTED.to_owned(),
        value: "1".to_owned(),
    });
    let context = UpstreamResubmitContext {
        prefix: urls.prefix().to_owned(),
        provider_name: provider.display_name().to_owned(),
        form_action: urls.relative(&routes::upstream_callback(&provider.id)),
        params: hidden,
    };
    let html = templates.render_upstream_resubmit(&context)?;
    Ok(Html(html).into_response())
}

/// The pending session this browser started with `state_param` at `provider`.
async fn pending_session(
    state: &UpstreamState,
    jar: &CookieJar,
    provider: &Provider,
    state_param: Option<&str>,
) -> Result<UpstreamSession, HtmlError> {
    let Some(state_param) = state_param.filter(|value| !value.is_empty()) else {
        return Err(failure::state_mismatch(
            &provider.id,
            "no state in the callback",
        ));
    };
    let sessions = UpstreamSessions::load(jar, state.clock.now_unix_ms());
    let Some(session_id) = sessions.find_by_state(&provider.id, state_param) else {
        return Err(failure::state_mismatch(
            &provider.id,
            "the state was not started in this browser",
        ));
    };
    let mut conn = state.db.acquire().await?;
    let session = upstream_sessions::find_upstream_session(&mut conn, session_id)
        .await?
        .filter(|session| session.provider_id == provider.id && session.state == state_param)
        .ok_or_else(|| failure::state_mismatch(&provider.id, "no such authorization session"))?;
    if !session.is_pending() {
        return Err(failure::replayed(
            &provider.id,
            "the callback of this authorization session was used already",
        ));
    }
    Ok(session)
}

/// The callback, once its parameters are read: the state, the provider's answer, the code
/// exchange and claims import, then the account, settled and written in one transaction.
async fn handle(
    state: &UpstreamState,
    mut jar: CookieJar,
    provider_id: &str,
    params: CallbackQuery,
    browser: BrowserInfo,
) -> Result<Response, HtmlError> {
    let provider = state
        .providers
        .get(provider_id)
        .ok_or_else(|| failure::unknown_provider(provider_id))?;
    let session = pending_session(state, &jar, provider, params.state.as_deref()).await?;
    let code = answered_code(provider, &params)?;
    let (identity, claims) = verified_identity(state, provider, &session, code).await?;
    let site = &state.site;
    let homeserver = state.homeserver.as_ref();
    let decision =
        account::decide(&state.db, homeserver, &site.server_name, provider, &claims).await?;

    let mut tx = state.db.begin_write().await?;
    let (clock, rng) = (state.clock.as_ref(), &state.rng);
    let (unbound, plan) = (decision.unbound, decision.plan);
    let executed = account::execute(&mut tx, clock, rng, provider, &claims, unbound, plan).await?;
    complete_session(
        state,
        &mut tx,
        provider,
        &session,
        &identity,
        executed.link_id,
    )
    .await?;
    if let Some(user) = &executed.user {
        let queued_job = executed.queued_job;
        return account::log_in(state, tx, jar, &session, user, &browser, queued_job).await;
    }
    tx.commit().await?;
    tracing::info!(
        provider = %provider.id,
        upstream_oauth_link.id = %executed.link_id,
        "upstream login waits for the account confirmation"
    );
    let mut sessions = UpstreamSessions::load(&jar, state.clock.now_unix_ms());
    sessions.set_link(session.id, executed.link_id);
    sessions
        .save(&mut jar, &mut state.rng.fork())
        .map_err(HtmlError::internal)?;
    let destination = state
        .urls
        .relative(&routes::upstream_link(executed.link_id));
    Ok((jar, Redirect::to(&destination)).into_response())
}

/// Has the provider exchange `code` and validate the ID token (and fetch userinfo), then
/// imports the claims.
async fn verified_identity(
    state: &UpstreamState,
    provider: &Provider,
    session: &UpstreamSession,
    code: &str,
) -> Result<(UpstreamIdentity, ImportedClaims), HtmlError> {
    let redirect_uri = redirect_uri(&state.urls, &provider.id);
    let identity = provider
        .complete(CallbackParams {
            redirect_uri: &redirect_uri,
            code,
            code_verifier: session.code_verifier.as_deref(),
            nonce: &session.nonce,
        })
        .await
        .map_err(|error| failure::upstream_error(provider, &error))?;
    let claims = import_claims(provider, &identity)
        .map_err(|error| failure::claims_error(provider, &error))?;
    Ok((identity, claims))
}

/// The code of the provider's answer; an `error` answer (checked only once the state is known
/// to be this browser's) or one without a code is a refusal.
fn answered_code<'a>(provider: &Provider, params: &'a CallbackQuery) -> Result<&'a str, HtmlError> {
    if let Some(error) = params.error.as_deref() {
        let description = params.error_description.as_deref();
        return Err(if error == "access_denied" {
            failure::cancelled(provider, description)
        } else {
            failure::provider_error(provider, error, description)
        });
    }
    params
        .code
        .as_deref()
        .filter(|code| !code.is_empty())
        .ok_or_else(|| {
            failure::provider_error(provider, "invalid_request", Some("no code in the callback"))
        })
}

/// Marks the authorization session completed with the subject's link `link_id` and what the
/// provider sent, once: a concurrent callback that completed it first makes this one a replay.
async fn complete_session(
    state: &UpstreamState,
    tx: &mut sqlx::AnyConnection,
    provider: &Provider,
    session: &UpstreamSession,
    identity: &UpstreamIdentity,
    link_id: ulid::Ulid,
) -> Result<(), HtmlError> {
    let completion = UpstreamCompletion {
        link_id,
        id_token: &identity.id_token,
        id_token_claims: &identity.id_token_claims,
        userinfo: identity.userinfo.as_ref(),
    };
    if !upstream_sessions::complete_upstream_session(
        tx,
        state.clock.as_ref(),
        session.id,
        completion,
    )
    .await?
    {
        return Err(failure::replayed(
            &provider.id,
            "a concurrent callback completed the authorization session",
        ));
    }
    Ok(())
}
