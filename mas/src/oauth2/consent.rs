//! `GET/POST /consent/{grant_id}` (docs/protocol.md#consent, #scopes-and-policy): the signed-in
//! user sees who asks for what and approves or denies. Consent is asked every time.
//!
//! POST (CSRF first) evaluates the scope policy, fulfils the grant and sends the client its
//! `code` (32 alphanumerics; only its SHA-256 is stored) and/or `id_token`, with `state`, in
//! the grant's response mode. "Deny" cancels the grant and sends `access_denied`. A policy
//! violation is a page, never a redirect: the user can only go back to the application.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use rand::{CryptoRng, RngCore};
use serde::Deserialize;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::authorize::Callback;
use super::policy;
use crate::app::SiteConfig;
use crate::auth::post_auth::{PostAuthAction, login_url, needs_fresh_login};
use crate::clock::Clock;
use crate::crypto::keystore::{ID_TOKEN_TTL_SECS, Keystore};
use crate::crypto::{IdTokenClaims, JwsAlgorithm, oidc_hash, random, sha256_hex};
use crate::csp::CspSources;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::homeserver::HomeserverConnection;
use crate::model::{AuthorizationGrant, BrowserSession, Client, GrantStage};
use crate::pages::{CsrfForm, PageState, user_view};
use crate::routes::UrlBuilder;
use crate::storage::{Database, browser_sessions, clients, grants};
use crate::templates::{ClientView, ConsentContext, describe_scopes, device_id_of};

/// The consent form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(crate) struct ConsentForm {
    #[serde(default)]
    action: String,
}

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
        "This sign-in request was already approved or cancelled. Go back to the application \
         and start again.",
    )
}

/// The 403 page for a scope the policy refuses (the reasons logged and shown).
pub(super) fn policy_violation(violations: &[policy::Violation]) -> HtmlError {
    let reasons: Vec<String> = violations.iter().map(ToString::to_string).collect();
    for violation in violations {
        tracing::info!(
            policy.violation = violation.code(),
            "authorization grant refused by policy"
        );
    }
    HtmlError::new(
        StatusCode::FORBIDDEN,
        "This request is not allowed",
        format!(
            "The application asked for access that cannot be given to your account. {} Go \
             back to the application.",
            reasons.join(" ")
        ),
    )
}

/// `uri` as text for an `href` or `src`, if it is an http(s) address with a host.
fn web_link(uri: Option<&url::Url>) -> Option<String> {
    uri.filter(|uri| {
        matches!(uri.scheme(), "https" | "http") && uri.host_str().is_some_and(|h| !h.is_empty())
    })
    .map(ToString::to_string)
}

/// `client` as pages show it.
pub(super) fn client_view(client: &Client) -> ClientView {
    let metadata = &client.metadata;
    ClientView {
        client_id: client.id.to_string(),
        name: client.display_name(),
        // Defence in depth: only web addresses become links or images, whatever is stored.
        logo_uri: web_link(metadata.logo_uri.as_ref()),
        client_uri: web_link(metadata.client_uri.as_ref()),
        tos_uri: web_link(metadata.tos_uri.as_ref()),
        policy_uri: web_link(metadata.policy_uri.as_ref()),
    }
}

/// `sources` with the client's logo allowed as an image, when it is an https address.
pub(super) fn logo_source(mut sources: CspSources, client: &Client) -> CspSources {
    if let Some(logo) = client
        .metadata
        .logo_uri
        .as_ref()
        .filter(|uri| uri.scheme() == "https")
    {
        sources = sources.img_src(logo);
    }
    sources
}

/// Where a grant's response goes.
fn callback(grant: &AuthorizationGrant, client: &Client) -> Callback {
    Callback {
        redirect_uri: grant.request.redirect_uri.clone(),
        mode: grant.request.response_mode,
        state: grant.request.state.clone(),
        client_name: client.display_name(),
    }
}

/// What both methods need: a pending grant, its client and a browser session that may
/// consent; or the response to give instead (a redirect to the login page).
enum Loaded {
    Ready(Box<Ready>),
    Login(Response),
}

struct Ready {
    grant: AuthorizationGrant,
    client: Client,
    session: BrowserSession,
}

async fn load(
    db: &Database,
    urls: &UrlBuilder,
    jar: &CookieJar,
    grant_id: &str,
) -> Result<Loaded, HtmlError> {
    let id: Ulid = grant_id.parse().map_err(|_| not_found())?;
    let mut conn = db.acquire().await?;
    let grant = grants::find_authorization_grant(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    if grant.stage() != GrantStage::Pending {
        return Err(not_pending());
    }
    let login = || {
        let action = PostAuthAction::ContinueAuthorizationGrant { id };
        let url = login_url(urls, Some(&action), grant.request.login_hint.as_deref());
        Loaded::Login(Redirect::to(&url).into_response())
    };
    let Some(session) = load_session(&mut conn, jar).await? else {
        return Ok(login());
    };
    if needs_fresh_login(&mut conn, &session, &grant).await? {
        return Ok(login());
    }
    let client = clients::find_client(&mut conn, grant.request.client_id)
        .await?
        .ok_or_else(not_found)?;
    if let Err(why) = client.check_redirect_target(&grant.request.redirect_uri) {
        tracing::warn!(
            grant.id = %grant.id,
            oauth2_client.id = %client.id,
            reason = %why,
            "consent refused: the grant's redirect URI breaks the redirect URI rules"
        );
        return Err(not_found());
    }
    Ok(Loaded::Ready(Box::new(Ready {
        grant,
        client,
        session,
    })))
}

/// `GET /consent/{grant_id}`.
#[tracing::instrument(name = "handlers.oauth2.consent.get", skip_all)]
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
    } = match load(&db, &page.urls, &jar, &grant_id).await? {
        Loaded::Login(response) => return Ok(response),
        Loaded::Ready(ready) => *ready,
    };
    policy::authorization_grant(&session.user, &grant.request.scope)
        .map_err(|violations| policy_violation(&violations))?;
    let user = user_view(homeserver.as_ref(), &session.user).await;
    let scope = grant.request.scope.to_string();
    let csrf = page.csrf_token(&mut jar);
    let context = ConsentContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        form_action: page.urls.relative(&crate::routes::consent(grant.id)),
        client: client_view(&client),
        scopes: describe_scopes(&scope),
        device_id: device_id_of(&scope),
        user,
    };
    let html = page.templates.render_consent(&context)?;
    // The answer to this page's form redirects to the client; browsers hold that redirect to
    // the page's `form-action`.
    let sources = logo_source(
        CspSources::default().form_action(&grant.request.redirect_uri),
        &client,
    );
    let mut response = (jar, Html(html)).into_response();
    response.extensions_mut().insert(sources);
    Ok(response)
}

/// `POST /consent/{grant_id}`.
#[tracing::instrument(name = "handlers.oauth2.consent.post", skip_all)]
pub(crate) async fn post(
    State(page): State<PageState>,
    State(db): State<Database>,
    State(site): State<Arc<SiteConfig>>,
    State(keystore): State<Arc<Keystore>>,
    Path(grant_id): Path<String>,
    CsrfForm { jar, fields: form }: CsrfForm<ConsentForm>,
) -> Result<Response, HtmlError> {
    let ready = match load(&db, &page.urls, &jar, &grant_id).await? {
        Loaded::Login(response) => return Ok(response),
        Loaded::Ready(ready) => *ready,
    };
    let Ready { grant, client, .. } = &ready;
    let prefix = page.urls.prefix();
    let callback = callback(grant, client);
    match form.action.as_str() {
        "approve" => {}
        "deny" => {
            let mut conn = db.acquire().await?;
            grants::cancel_authorization_grant(&mut conn, page.clock.as_ref(), grant.id).await?;
            tracing::info!(grant.id = %grant.id, "authorization grant denied by the user");
            return callback.error(
                &page.templates,
                prefix,
                "access_denied",
                "the user denied the request",
            );
        }
        _ => {
            return Err(HtmlError::bad_request(
                "Invalid form",
                "Choose Continue or Cancel.",
            ));
        }
    }
    policy::authorization_grant(&ready.session.user, &grant.request.scope)
        .map_err(|violations| policy_violation(&violations))?;
    let params = fulfil(&page, &db, &site.issuer, &keystore, &ready).await?;
    callback.respond(&page.templates, prefix, params)
}

/// Marks the grant fulfilled by the session and makes the response parameters: the code (its
/// hash stored) and the ID token (issued by `issuer`, signed with `keystore`), as the response
/// type asks.
async fn fulfil(
    page: &PageState,
    db: &Database,
    issuer: &str,
    keystore: &Keystore,
    ready: &Ready,
) -> Result<Vec<(&'static str, String)>, HtmlError> {
    let Ready { grant, session, .. } = ready;
    let clock = page.clock.as_ref();
    let mut rng = page.rng.fork();
    let code = grant
        .request
        .response_type_code
        .then(|| random::authorization_code(&mut rng));
    let code_sha256 = code.as_deref().map(sha256_hex);
    let mut tx = db.begin_write().await?;
    let fulfilled = grants::fulfill_authorization_grant(
        &mut tx,
        clock,
        grant.id,
        session.id,
        code_sha256.as_deref(),
    )
    .await?;
    if !fulfilled {
        return Err(not_pending());
    }
    let mut params = Vec::new();
    if grant.request.response_type_id_token {
        let id_token = id_token(
            &mut tx,
            &mut rng,
            clock,
            issuer,
            keystore,
            ready,
            code.as_deref(),
        )
        .await?;
        params.push(("id_token", id_token));
    }
    tx.commit().await?;
    tracing::info!(
        grant.id = %grant.id,
        user_session.id = %session.id,
        user.id = %session.user.id,
        "authorization grant fulfilled"
    );
    if let Some(code) = code {
        params.insert(0, ("code", code));
    }
    Ok(params)
}

/// The ID token of an implicit or hybrid response (OpenID Connect Core 1.0 §3.2.2.10,
/// §3.3.2.11): `auth_time` from the session's last authentication, and the `c_hash` of `code`
/// when one is sent with it.
async fn id_token(
    conn: &mut AnyConnection,
    rng: &mut (impl RngCore + CryptoRng),
    clock: &dyn Clock,
    issuer: &str,
    keystore: &Keystore,
    ready: &Ready,
    code: Option<&str>,
) -> Result<String, HtmlError> {
    let Ready {
        grant,
        client,
        session,
    } = ready;
    let auth_time = browser_sessions::last_authentication(conn, session.id)
        .await?
        .map(|auth| auth.created_at / 1000);
    let alg = client
        .metadata
        .id_token_signed_response_alg
        .as_deref()
        .map_or(Ok(JwsAlgorithm::Rs256), str::parse)
        .map_err(HtmlError::internal)?;
    let iat = clock.now_unix_ms() / 1000;
    let claims = IdTokenClaims {
        iss: issuer.to_owned(),
        sub: session.user.sub(),
        aud: client.id.to_string(),
        iat,
        exp: iat + ID_TOKEN_TTL_SECS,
        nonce: grant.request.nonce.clone(),
        auth_time,
        at_hash: None,
        c_hash: code.map(|code| oidc_hash(alg, code)),
    };
    keystore
        .sign_id_token(rng, alg, &claims)
        .map_err(HtmlError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_addresses_become_links() {
        let parse = |text: &str| url::Url::parse(text).unwrap();
        assert_eq!(
            web_link(Some(&parse("https://example.com/tos"))).as_deref(),
            Some("https://example.com/tos")
        );
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "com.example:/x",
            "file:///etc/passwd",
        ] {
            assert_eq!(web_link(Some(&parse(bad))), None, "{bad}");
        }
        assert_eq!(web_link(None), None);
    }
}
