//! CSRF protection for HTML forms: 32 random bytes kept in the private `csrf` cookie with an
//! expiry of one hour, extended whenever a form is rendered. Every form POST carries the token
//! in a `csrf` field, compared in constant time with the cookie's.
//!
//! The token is bound to the browser session the `session` cookie named when the form was
//! rendered (none before sign-in): a `csrf` cookie that someone else obtained and planted in
//! this browser (from a sibling subdomain on an http origin, say) belongs to another session
//! or to none, so it does not pass. A token is renewed whenever the session changes.
//!
//! Usage: the GET handler calls [`CookieJar::csrf_token`] and puts
//! [`CsrfToken::form_value`] in the form; the POST handler calls [`CookieJar::verify_csrf`]
//! with the submitted field before anything else (page handlers through the
//! `crate::pages::CsrfForm` extractor).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::cookies::CookieJar;
use crate::clock::Clock;
use crate::crypto::constant_time_eq;

/// Name of the cookie holding the token.
pub const CSRF_COOKIE: &str = "csrf";
/// How long a token stays valid after the last form was rendered.
pub const CSRF_TTL: Duration = Duration::from_secs(3600);

/// Why a form submission was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    /// No (readable) `csrf` cookie: cookies blocked, or the form is from elsewhere.
    #[error("missing CSRF cookie")]
    Missing,
    /// The token is older than [`CSRF_TTL`] since the form was rendered.
    #[error("expired CSRF token")]
    Expired,
    /// The token was made for another browser session (or for none).
    #[error("CSRF token of another session")]
    OtherSession,
    /// The submitted value is not the cookie's token.
    #[error("CSRF token mismatch")]
    Mismatch,
}

/// A CSRF token and its expiry, as stored (encrypted) in the cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsrfToken {
    /// The 32 random bytes, base64url without padding (43 characters).
    token: String,
    /// Unix milliseconds after which the token is refused.
    expires_at: i64,
    /// The browser session (`user_sessions` id) the token was made for, if any.
    #[serde(default)]
    session: Option<String>,
}

impl CsrfToken {
    /// A fresh token for browser `session`, valid until `now_ms` + [`CSRF_TTL`].
    pub fn generate(
        rng: &mut (impl RngCore + CryptoRng),
        now_ms: i64,
        session: Option<Ulid>,
    ) -> Self {
        let mut bytes = [0_u8; 32];
        rng.fill_bytes(&mut bytes);
        Self {
            token: URL_SAFE_NO_PAD.encode(bytes),
            expires_at: now_ms.saturating_add(ttl_ms()),
            session: session.map(|id| id.to_string()),
        }
    }

    /// Whether the token was made for browser `session`.
    fn is_for(&self, session: Option<Ulid>) -> bool {
        self.session.as_deref() == session.map(|id| id.to_string()).as_deref()
    }

    /// The value for the form's hidden `csrf` field.
    pub fn form_value(&self) -> &str {
        &self.token
    }

    /// Unix milliseconds after which the token is refused.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Whether the token has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at
    }

    /// Checks a submitted form value against this (cookie) token at `now_ms`, in a browser
    /// whose session cookie names `session`; the value is compared in constant time.
    pub fn verify_form(
        &self,
        now_ms: i64,
        session: Option<Ulid>,
        submitted: &str,
    ) -> Result<(), CsrfError> {
        if self.is_expired(now_ms) {
            return Err(CsrfError::Expired);
        }
        if !self.is_for(session) {
            return Err(CsrfError::OtherSession);
        }
        if constant_time_eq(self.token.as_bytes(), submitted.as_bytes()) {
            Ok(())
        } else {
            Err(CsrfError::Mismatch)
        }
    }
}

impl CookieJar {
    /// The token for a form being rendered: the cookie's if still valid and made for the
    /// current browser session, else a new one; either way its expiry is pushed to now +
    /// [`CSRF_TTL`] and the cookie is re-set.
    pub fn csrf_token(
        &mut self,
        clock: &(impl Clock + ?Sized),
        rng: &mut (impl RngCore + CryptoRng),
    ) -> CsrfToken {
        let now = clock.now_unix_ms();
        let session = self.session_id();
        let token = match self.load::<CsrfToken>(CSRF_COOKIE) {
            Some(token) if !token.is_expired(now) && token.is_for(session) => CsrfToken {
                expires_at: now.saturating_add(ttl_ms()),
                ..token
            },
            _ => CsrfToken::generate(rng, now, session),
        };
        // A struct of a string and an integer always serializes.
        let _ = self.save(rng, CSRF_COOKIE, &token, Some(CSRF_TTL));
        token
    }

    /// Checks a submitted `csrf` form field against the cookie.
    pub fn verify_csrf(
        &self,
        clock: &(impl Clock + ?Sized),
        submitted: &str,
    ) -> Result<(), CsrfError> {
        let token = self
            .load::<CsrfToken>(CSRF_COOKIE)
            .ok_or(CsrfError::Missing)?;
        token.verify_form(clock.now_unix_ms(), self.session_id(), submitted)
    }
}

fn ttl_ms() -> i64 {
    i64::try_from(CSRF_TTL.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
