//! Private cookies: every value is JSON, encrypted and authenticated with the cookie sub-key
//! of `secrets.encryption` and bound to the cookie's name (the associated data). Cookies are
//! `HttpOnly` and `SameSite=Lax`. When `public_base` is https they are also `Secure`, named
//! with the `__Host-` prefix and scoped to `/` (RFC 6265bis §4.1.3.2: the browser then refuses
//! such a cookie from a sibling subdomain or over http, so nobody else can plant one);
//! otherwise (a local http setup) they are scoped to the public base path (`/auth/`).
//!
//! A cookie that is missing, forged, or from an old key reads as absent, and so does a name
//! the request carries twice: which of two values is ours cannot be told, and one of them may
//! have been planted (RFC 6265bis §5.8.3 lets a subdomain set a same-named cookie).
//!
//! [`CookieJar`] is an axum extractor (it needs a [`CookieManager`] in the state, via
//! `FromRef`) and a response part that emits one `Set-Cookie` per changed cookie.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponseParts, ResponseParts};
use cookie::{Cookie, SameSite};
use rand::{CryptoRng, RngCore};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::EncryptionKey;
use crate::crypto::encrypter::{Encrypter, PURPOSE_COOKIES};

/// Max-Age of a "permanent" cookie (the browser session): ten years.
pub const PERMANENT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The name prefix of cookies on an https origin (RFC 6265bis §4.1.3.2).
const HOST_PREFIX: &str = "__Host-";

/// The cookie key and attributes, shared by all requests (a field of the app state).
#[derive(Debug, Clone)]
pub struct CookieManager {
    encrypter: Encrypter,
    secure: bool,
    path: Arc<str>,
}

impl CookieManager {
    /// Cookies keyed from `key`, with attributes taken from `public_base`.
    pub fn new(key: &EncryptionKey, public_base: &Url) -> Self {
        let secure = public_base.scheme() == "https";
        let path = public_base.path();
        let path = if secure {
            // `__Host-` cookies must be scoped to `/`.
            "/".to_owned()
        } else if path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{path}/")
        };
        Self {
            encrypter: Encrypter::derive(key, PURPOSE_COOKIES),
            secure,
            path: path.into(),
        }
    }

    /// The name cookie `name` has in the browser.
    fn wire_name(&self, name: &str) -> String {
        if self.secure {
            format!("{HOST_PREFIX}{name}")
        } else {
            name.to_owned()
        }
    }

    /// The jar of a request with these `headers`. On https only `__Host-` cookies are read;
    /// a name that comes twice is dropped.
    pub fn jar(&self, headers: &HeaderMap) -> CookieJar {
        let mut incoming = BTreeMap::new();
        let mut repeated = std::collections::BTreeSet::new();
        let cookies = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok);
        for cookie in cookies {
            let name = if self.secure {
                match cookie.name().strip_prefix(HOST_PREFIX) {
                    Some(name) => name,
                    None => continue,
                }
            } else {
                cookie.name()
            };
            if incoming
                .insert(name.to_owned(), cookie.value_trimmed().to_owned())
                .is_some()
            {
                repeated.insert(name.to_owned());
            }
        }
        for name in &repeated {
            tracing::info!(cookie.name = %name, "cookie sent twice; ignoring both");
            incoming.remove(name);
        }
        CookieJar {
            manager: self.clone(),
            incoming,
            changes: BTreeMap::new(),
        }
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: Option<Duration>) -> String {
        let mut cookie = Cookie::build((self.wire_name(name), value.to_owned()))
            .path(self.path.to_string())
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure);
        if let Some(max_age) = max_age {
            let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            cookie = cookie.max_age(cookie::time::Duration::seconds(seconds));
        }
        cookie.build().to_string()
    }
}

/// A change to one cookie.
#[derive(Debug, Clone)]
enum Change {
    Set {
        value: String,
        max_age: Option<Duration>,
    },
    Remove,
}

/// The request's private cookies plus the changes to send back.
#[derive(Debug, Clone)]
pub struct CookieJar {
    manager: CookieManager,
    incoming: BTreeMap<String, String>,
    changes: BTreeMap<String, Change>,
}

impl CookieJar {
    /// The value of cookie `name`, if present and valid (changes made on this jar count).
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let encrypted = match self.changes.get(name) {
            Some(Change::Set { value, .. }) => value,
            Some(Change::Remove) => return None,
            None => self.incoming.get(name)?,
        };
        let plaintext = self
            .manager
            .encrypter
            .decrypt_with_context(name.as_bytes(), encrypted)
            .ok()?;
        serde_json::from_slice(&plaintext).ok()
    }

    /// Sets cookie `name` to `value`; `max_age: None` makes a browser-session cookie.
    pub fn save<T: Serialize>(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
        name: &str,
        value: &T,
        max_age: Option<Duration>,
    ) -> Result<(), serde_json::Error> {
        let plaintext = serde_json::to_vec(value)?;
        let value = self
            .manager
            .encrypter
            .encrypt_with_context(rng, name.as_bytes(), &plaintext);
        self.changes
            .insert(name.to_owned(), Change::Set { value, max_age });
        Ok(())
    }

    /// Removes cookie `name` (an expired `Set-Cookie`).
    pub fn remove(&mut self, name: &str) {
        self.changes.insert(name.to_owned(), Change::Remove);
    }

    /// One `Set-Cookie` value per changed cookie.
    pub fn set_cookie_headers(&self) -> Vec<HeaderValue> {
        self.changes
            .iter()
            .map(|(name, change)| match change {
                Change::Set { value, max_age } => self.manager.set_cookie(name, value, *max_age),
                Change::Remove => self.manager.set_cookie(name, "", Some(Duration::ZERO)),
            })
            // Names are our constants and values base64url, so this never drops a cookie.
            .filter_map(|header| HeaderValue::try_from(header).ok())
            .collect()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CookieJar
where
    CookieManager: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(CookieManager::from_ref(state).jar(&parts.headers))
    }
}

impl IntoResponseParts for CookieJar {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        for header in self.set_cookie_headers() {
            res.headers_mut().append(SET_COOKIE, header);
        }
        Ok(res)
    }
}

/// The `name=value` part of a `Set-Cookie` value: what a browser sends back.
#[cfg(test)]
pub(crate) fn cookie_pair(set_cookie: &HeaderValue) -> String {
    let text = set_cookie.to_str().unwrap_or_default();
    text.split(';').next().unwrap_or_default().to_owned()
}

/// The attributes of a `Set-Cookie` value (`Path=/`, `HttpOnly`…), in any order.
#[cfg(test)]
pub(crate) fn cookie_attributes(set_cookie: &str) -> std::collections::BTreeSet<String> {
    set_cookie.split("; ").skip(1).map(str::to_owned).collect()
}

/// The `Cookie` request header of a browser that was sent these `Set-Cookie` values.
#[cfg(test)]
pub(crate) fn cookie_header<'a>(
    set_cookies: impl IntoIterator<Item = &'a HeaderValue>,
) -> HeaderMap {
    let pairs: Vec<String> = set_cookies.into_iter().map(cookie_pair).collect();
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::try_from(pairs.join("; ")) {
        headers.insert(COOKIE, value);
    }
    headers
}

#[cfg(test)]
mod tests;
