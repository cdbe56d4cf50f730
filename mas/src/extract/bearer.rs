//! `Authorization: Bearer <token>` (RFC 6750 §2.1): the token of a userinfo request, or the
//! homeserver's shared secret at introspection. Only the header form is read; an absent or
//! non-bearer header gives `None`, so each endpoint answers in its own error shape.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

/// The bearer token of the request, if it has one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bearer(pub Option<String>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.as_ref().map(|_| "<redacted>");
        f.debug_tuple("Bearer").field(&shown).finish()
    }
}

impl Bearer {
    /// The token of an `Authorization` header value: scheme `Bearer` (any case), then the
    /// token. `None` for another scheme, an empty token, or a value that is not text.
    pub fn parse(value: &[u8]) -> Option<String> {
        let value = std::str::from_utf8(value).ok()?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|value| Self::parse(value.as_bytes())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(Bearer::parse(b"Bearer abc"), Some("abc".to_owned()));
        assert_eq!(Bearer::parse(b"bearer  abc "), Some("abc".to_owned()));
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_none() {
        assert_eq!(Bearer::parse(b"Basic abc"), None);
        assert_eq!(Bearer::parse(b"Bearer "), None);
        assert_eq!(Bearer::parse(b"Bearer"), None);
        assert_eq!(Bearer::parse(b"Bearer \xff"), None);
    }
}
