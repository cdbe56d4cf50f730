//! `GET /authorize`: the authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2; PKCE
//! RFC 7636; docs/protocol.md#authorization-endpoint and #redirect-uri-rules). Validates the
//! request, stores it as a pending grant and sends the browser on to the login page (no session) or
//! the consent page.
//!
//! Errors come in two kinds. Until the client and its redirect URI are known to be good, the
//! person gets an HTML error page: an unknown client or a bad redirect URI is never redirected
//! to, and neither is a redirect URI that breaks today's rules
//! ([`crate::model::redirect_uri`]), whenever the client was stored. After that, errors go back
//! to the client through the response mode, with `state`: by redirect for a client declared in
//! the config; for a registered client, a page that names the client and offers the way back
//! (RFC 9700 §4.11.2). Answers to `prompt=none` are always redirected (OpenID Connect Core
//! §3.1.2.6).
//!
//! The request is read and checked in `request`; [`Callback`] (in `responder`) delivers
//! authorization responses (errors here, codes and ID tokens from the consent page) in the three
//! response modes: `query`, `fragment` and `form_post` (a page with a form and a visible
//! "Continue" button; we serve no JavaScript).

mod request;
mod responder;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use sqlx::AnyConnection;
use ulid::Ulid;
use url::Url;

use self::request::{
    Params, error_mode, repeated_page, resolve_redirect_uri, unknown_client, validate,
};
pub(crate) use self::responder::Callback;
use self::responder::unsafe_redirect_uri;
use crate::auth::post_auth::{PostAuthAction, login_url, register_url};
use crate::auth::registration::RegistrationOpen;
use crate::clock::Clock;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::model::{Client, NewAuthorizationGrant, prompt_has};
use crate::pages::PageState;
use crate::rng::RngSource;
use crate::routes::UrlBuilder;
use crate::storage::{Database, StorageError, clients, grants};

fn internal(error: StorageError) -> HtmlError {
    HtmlError::internal(error)
}

/// `GET /authorize`.
#[tracing::instrument(name = "handlers.oauth2.authorize.get", skip_all)]
pub(crate) async fn get(
    State(db): State<Database>,
    State(page): State<PageState>,
    State(registration): State<RegistrationOpen>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Result<Response, HtmlError> {
    let PageState {
        templates,
        urls,
        clock,
        rng,
    } = page;
    let params = Params::parse(query.as_deref()).map_err(|error| {
        HtmlError::bad_request(
            "Invalid request from the application",
            format!("The application's request could not be read ({error})."),
        )
    })?;
    let client_id = params
        .get("client_id")
        .map_err(repeated_page)?
        .and_then(|id| id.parse().ok())
        .ok_or_else(unknown_client)?;
    let mut conn = db.pool().acquire().await.map_err(|e| internal(e.into()))?;
    let (client, redirect_uri) = client_and_redirect_uri(&mut conn, client_id, &params).await?;

    let prefix = urls.prefix();
    let mut callback = Callback {
        redirect_uri: redirect_uri.clone(),
        mode: error_mode(&params),
        state: params.get("state").ok().flatten().map(str::to_owned),
        client_name: client.display_name(),
    };
    let request = match validate(&params, &client, redirect_uri) {
        Ok(request) => request,
        // Before the person has done anything: a registered client only gets a page with the
        // way back (RFC 9700 §4.11.2); a client from the config is trusted with a redirect.
        Err(error) if client.is_static => {
            return callback.error(&templates, prefix, error.error, &error.description);
        }
        Err(error) => {
            tracing::info!(
                oauth2_client.id = %client.id,
                error = error.error,
                "authorization request refused"
            );
            return callback.error_page(&templates, prefix, error.error, &error.description);
        }
    };
    callback.mode = request.response_mode;

    let session = load_session(&mut conn, &jar).await.map_err(internal)?;
    drop(conn);
    let prompt = request.prompt.as_deref();
    if prompt_has(prompt, "none") {
        // Consent is asked every time (docs/protocol.md#consent), so nothing can happen silently.
        let (error, description) = match session {
            None => ("login_required", "the user is not signed in"),
            Some(_) => ("consent_required", "the user must approve the request"),
        };
        return callback.error(&templates, prefix, error, description);
    }

    let signed_in = session.is_some();
    store_and_continue(
        &db,
        clock.as_ref(),
        &rng,
        &urls,
        request,
        signed_in,
        registration,
    )
    .await
}

/// Stores the checked request as a pending grant and sends the browser on: to the
/// registration page for `prompt=create` when registration is open (OpenID Connect
/// "Initiating User Registration via OpenID Connect" 1.0 §4; MSC2964 clients send it), to the
/// login page without a session, for a fresh login or for `prompt=create` with registration
/// closed, else to the consent page.
async fn store_and_continue(
    db: &Database,
    clock: &dyn Clock,
    rng: &RngSource,
    urls: &UrlBuilder,
    request: NewAuthorizationGrant,
    signed_in: bool,
    RegistrationOpen(registration_open): RegistrationOpen,
) -> Result<Response, HtmlError> {
    let prompt = request.prompt.as_deref();
    let create = prompt_has(prompt, "create");
    let needs_login = !signed_in || prompt_has(prompt, "login") || create;
    let login_hint = request.login_hint.clone();
    let client_id = request.client_id;
    let mut tx = db.begin_write().await.map_err(internal)?;
    let grant = grants::create_authorization_grant(&mut tx, clock, &mut rng.fork(), request)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(|e| internal(e.into()))?;
    tracing::info!(grant.id = %grant.id, oauth2_client.id = %client_id, "authorization grant created");

    let action = PostAuthAction::ContinueAuthorizationGrant { id: grant.id };
    let destination = if create && registration_open {
        register_url(urls, Some(&action))
    } else if needs_login {
        login_url(urls, Some(&action), login_hint.as_deref())
    } else {
        urls.relative(&crate::routes::consent(grant.id))
    };
    Ok(Redirect::to(&destination).into_response())
}

/// The client `client_id` and the redirect URI this request will use. Until both are
/// known to be good, errors are pages for the person, never redirects: an unknown client, a
/// redirect URI that is not registered, or a stored one that breaks today's rules.
async fn client_and_redirect_uri(
    conn: &mut AnyConnection,
    client_id: Ulid,
    params: &Params,
) -> Result<(Client, Url), HtmlError> {
    let client = clients::find_client(conn, client_id)
        .await
        .map_err(internal)?
        .ok_or_else(unknown_client)?;
    let requested_uri = params.get("redirect_uri").map_err(repeated_page)?;
    let redirect_uri = resolve_redirect_uri(&client, requested_uri)?;
    if let Err(why) = client.check_redirect_target(&redirect_uri) {
        tracing::warn!(
            oauth2_client.id = %client.id,
            reason = %why,
            "authorization refused: the client's redirect URI breaks the redirect URI rules"
        );
        return Err(unsafe_redirect_uri());
    }
    Ok((client, redirect_uri))
}

#[cfg(test)]
mod tests;
