//! `GET/POST /link` (RFC 8628 §3.3; docs/protocol.md#pages): the device authorization grant's
//! `verification_uri`, where a person types the code their device shows. `GET ?code=` (the
//! `verification_uri_complete` a QR code carries, RFC 8628 §3.3.1) looks the code up at once.
//!
//! Every lookup (a `GET` with a code, every `POST` after its CSRF check) counts against the
//! per-address `/link` limiter first (RFC 8628 §5.1: user codes are short, so guessing must be
//! slow). The code is read leniently (case, spaces and hyphens do not matter). A code of a
//! pending, unexpired request leads to its approval page (303 to `/device/{grant_id}`); anything
//! else is the page again, status 400, with one of three messages. Nothing else about the
//! request is shown here: the approval page needs a browser session.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use ulid::Ulid;

use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::extract::params::{ParamsError, StrictQuery};
use crate::model::{DeviceGrant, DeviceGrantStage, normalize_user_code};
use crate::pages::{CsrfForm, PageState, bad_query};
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::storage::{Database, device_grants};
use crate::templates::{DeviceLinkContext, FormError};

/// The name of the code field (and of the query parameter).
const CODE_FIELD: &str = "code";

/// The query: `?code=` from `verification_uri_complete`.
#[derive(Debug, Deserialize)]
pub(crate) struct LinkQuery {
    code: Option<String>,
}

/// The form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(crate) struct LinkForm {
    #[serde(default)]
    code: String,
}

/// Why a device grant can no longer be approved or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unusable {
    /// Approved, denied or exchanged already: a user code works once.
    Used,
    /// Still pending, but past its lifetime.
    Expired,
}

impl Unusable {
    /// Why `grant` cannot be decided on at `now`, if it cannot.
    pub(super) fn of(grant: &DeviceGrant, now: i64) -> Option<Self> {
        if grant.stage() != DeviceGrantStage::Pending {
            Some(Self::Used)
        } else if grant.expired(now) {
            Some(Self::Expired)
        } else {
            None
        }
    }

    /// What the person is told.
    pub(super) fn message(self) -> &'static str {
        match self {
            Self::Used => "This code was already used.",
            Self::Expired => "This code has expired. Start again on your device.",
        }
    }
}

/// A refused lookup, shown on the page again.
struct Refusal {
    status: StatusCode,
    message: String,
    /// `Retry-After` in seconds, when the rate limit refused the lookup (RFC 6585 §4).
    retry_after: Option<u64>,
}

impl Refusal {
    fn bad_request(message: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.to_owned(),
            retry_after: None,
        }
    }
}

/// `GET /link`.
#[tracing::instrument(name = "handlers.oauth2.device.link.get", skip_all)]
pub(crate) async fn get(
    State(page): State<PageState>,
    State(db): State<Database>,
    State(limiter): State<RateLimiter>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    query: Result<StrictQuery<LinkQuery>, ParamsError>,
) -> Result<Response, HtmlError> {
    let StrictQuery(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let Some(code) = query.code.filter(|code| !code.trim().is_empty()) else {
        return render(&page, jar, String::new(), None);
    };
    respond(&page, &db, &limiter, ip, jar, code).await
}

/// `POST /link`.
#[tracing::instrument(name = "handlers.oauth2.device.link.post", skip_all)]
pub(crate) async fn post(
    State(page): State<PageState>,
    State(db): State<Database>,
    State(limiter): State<RateLimiter>,
    ClientIp(ip): ClientIp,
    CsrfForm { jar, fields: form }: CsrfForm<LinkForm>,
) -> Result<Response, HtmlError> {
    respond(&page, &db, &limiter, ip, jar, form.code).await
}

/// Looks `code` up: off to the approval page, or the page again with the refusal.
async fn respond(
    page: &PageState,
    db: &Database,
    limiter: &RateLimiter,
    ip: Option<std::net::IpAddr>,
    jar: CookieJar,
    code: String,
) -> Result<Response, HtmlError> {
    match lookup(page, db, limiter, ip, &code).await? {
        Ok(id) => {
            let url = page.urls.relative(&routes::device_consent(id));
            Ok((jar, Redirect::to(&url)).into_response())
        }
        Err(refusal) => {
            // Shown back in the field; whatever was sent, no more than a code could be.
            let code = code.chars().take(64).collect();
            render(page, jar, code, Some(refusal))
        }
    }
}

/// The grant a typed code names, if it can still be approved; `Ok(Err(_))` is a refusal.
async fn lookup(
    page: &PageState,
    db: &Database,
    limiter: &RateLimiter,
    ip: Option<std::net::IpAddr>,
    typed: &str,
) -> Result<Result<Ulid, Refusal>, HtmlError> {
    let now = page.clock.now_unix_ms();
    if let Err(limited) = limiter.check_device_link(ip, now) {
        let seconds = limited.retry_after_secs();
        tracing::info!(
            retry_after = seconds,
            "device code lookup refused: rate limited"
        );
        return Ok(Err(Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("Too many attempts. Wait {seconds} seconds and try again."),
            retry_after: Some(seconds),
        }));
    }
    let Some(code) = normalize_user_code(typed) else {
        return Ok(Err(Refusal::bad_request(
            "Enter the code shown on your device.",
        )));
    };
    let mut conn = db.acquire().await?;
    let Some(grant) = device_grants::find_device_grant_by_user_code(&mut conn, &code).await? else {
        tracing::info!("device code lookup: no such code");
        return Ok(Err(Refusal::bad_request(
            "No sign-in request has this code. Check the code shown on your device.",
        )));
    };
    if let Some(unusable) = Unusable::of(&grant, now) {
        tracing::info!(device_grant.id = %grant.id, reason = ?unusable, "device code lookup: code not usable");
        return Ok(Err(Refusal::bad_request(unusable.message())));
    }
    Ok(Ok(grant.id))
}

/// Renders the page, with the code as typed and the refusal of the last lookup, if any.
fn render(
    page: &PageState,
    mut jar: CookieJar,
    code: String,
    refusal: Option<Refusal>,
) -> Result<Response, HtmlError> {
    let csrf = page.csrf_token(&mut jar);
    let (status, errors, retry_after) = match refusal {
        None => (StatusCode::OK, Vec::new(), None),
        Some(refusal) => (
            refusal.status,
            vec![FormError::field(CODE_FIELD, refusal.message)],
            refusal.retry_after,
        ),
    };
    let context = DeviceLinkContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        form_action: page.urls.relative(routes::LINK),
        code,
        errors,
    };
    let html = page.templates.render_device_link(&context)?;
    let mut response = (status, jar, Html(html)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}

#[cfg(test)]
pub(crate) mod tests;
