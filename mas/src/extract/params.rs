//! Decoding `application/x-www-form-urlencoded` text (WHATWG URL §5.1), strictly, as RFC 6749
//! §3.1 asks of OAuth parameters: a bad percent escape or bytes that are not UTF-8 are an error,
//! not a replacement character. Used for form bodies ([`super::client_auth::FormParams`]) and
//! for the authorization endpoint's query, and under [`StrictQuery`] and [`StrictForm`] for the
//! queries and forms of the pages, where a repeated name is refused too.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// Why form-encoded text could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `%` not followed by two hexadecimal digits.
    #[error("malformed percent-encoding")]
    Percent,
    /// The decoded bytes are not UTF-8.
    #[error("parameters must be UTF-8")]
    Utf8,
}

/// The `name=value` pairs of `raw`, in order, each decoded; empty pairs (`a=1&&b=2`) are
/// skipped and a pair without `=` has an empty value.
pub fn decode_pairs(raw: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    raw.split(|&byte| byte == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&byte| byte == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Decodes one name or value: `+` is a space, `%XX` a byte, and the result must be UTF-8.
pub fn decode(raw: &[u8]) -> Result<String, DecodeError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        match raw[index] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = raw.get(index + 1).and_then(|&b| hex_value(b));
                let low = raw.get(index + 2).and_then(|&b| hex_value(b));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(DecodeError::Percent);
                };
                bytes.push((high << 4) | low);
                index += 2;
            }
            other => bytes.push(other),
        }
        index += 1;
    }
    String::from_utf8(bytes).map_err(|_| DecodeError::Utf8)
}

/// Why a query or form could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// A bad percent escape or bytes that are not UTF-8.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A name given twice (RFC 6749 §3.1: "Request and response parameters MUST NOT be
    /// included more than once").
    #[error("parameter `{0}` is repeated")]
    Repeated(String),
    /// The pairs do not make the expected fields (a missing or unparsable one).
    #[error("{0}")]
    Fields(String),
}

/// The decoded parameters of `raw` by name, refusing a repeated name (in one pass: this runs on
/// every token and introspection request).
pub fn strict_params(raw: &[u8]) -> Result<BTreeMap<String, String>, ParamsError> {
    let mut params = BTreeMap::new();
    for (name, value) in decode_pairs(raw)? {
        match params.entry(name) {
            Entry::Occupied(entry) => return Err(ParamsError::Repeated(entry.key().clone())),
            Entry::Vacant(entry) => {
                entry.insert(value);
            }
        }
    }
    Ok(params)
}

/// `T` from form-encoded text, once [`strict_params`] has accepted it.
pub fn deserialize<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ParamsError> {
    strict_params(raw)?;
    fields(raw)
}

/// `T` from form-encoded text that [`strict_params`] already accepted (serde ignores the names
/// `T` does not declare).
pub fn fields<T: DeserializeOwned>(checked: &[u8]) -> Result<T, ParamsError> {
    serde_urlencoded::from_bytes(checked).map_err(|error| ParamsError::Fields(error.to_string()))
}

// Handlers answer these in their own protocol's shape (`Result<StrictQuery<T>, ParamsError>`);
// a bare rejection is plain text.
impl IntoResponse for ParamsError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.to_string()).into_response()
    }
}

impl IntoResponse for FormError {
    fn into_response(self) -> Response {
        (self.status(), self.to_string()).into_response()
    }
}

/// The query string as `T`, read strictly (no query reads as empty).
#[derive(Debug, Clone)]
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ParamsError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        deserialize(query.as_bytes()).map(Self)
    }
}

/// An `application/x-www-form-urlencoded` body as `T`, read strictly.
#[derive(Debug, Clone)]
pub struct StrictForm<T>(pub T);

/// Why a form body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The body is not declared as a form.
    #[error("the body must be application/x-www-form-urlencoded")]
    ContentType,
    /// The body could not be read: too large (413) or broken (400).
    #[error("the body could not be read")]
    Body(StatusCode),
    /// The parameters are malformed.
    #[error(transparent)]
    Params(#[from] ParamsError),
}

impl FormError {
    /// The status the refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Body(status) => *status,
            Self::Params(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictForm<T> {
    type Rejection = FormError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(deserialize(&read_form_body(request, state).await?)?))
    }
}

/// The raw body of a form POST, once its content type says it is a form; the caller decodes
/// it with [`deserialize`] (as often as it needs: each type takes the names it declares).
pub async fn read_form_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, FormError> {
    let form = "application/x-www-form-urlencoded";
    if !super::client_auth::has_content_type(request.headers(), form) {
        return Err(FormError::ContentType);
    }
    read_body(request, state).await
}

/// The body as bytes within the router's limit: too large is 413, a broken body 400.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, FormError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            let status = rejection.status();
            FormError::Body(if status == StatusCode::PAYLOAD_TOO_LARGE {
                status
            } else {
                StatusCode::BAD_REQUEST
            })
        })
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encode(pairs: &[(String, String)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    #[test]
    fn escapes_and_utf8_are_checked() {
        assert_eq!(
            decode_pairs(b"a=hello+world&&b=%2F%41%c3%a9&c").unwrap(),
            [
                ("a".to_owned(), "hello world".to_owned()),
                ("b".to_owned(), "/Aé".to_owned()),
                ("c".to_owned(), String::new()),
            ]
        );
        for (raw, error) in [
            (&b"a=%"[..], DecodeError::Percent),
            (b"a=%4", DecodeError::Percent),
            (b"a=%zz", DecodeError::Percent),
            (b"%=1", DecodeError::Percent),
            (b"a=%ff", DecodeError::Utf8),
            (b"a=%c3", DecodeError::Utf8),
            (b"a=\xff", DecodeError::Utf8),
            (b"%ed%a0%80=1", DecodeError::Utf8),
        ] {
            assert_eq!(decode_pairs(raw), Err(error), "{raw:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever a stranger sends, decoding answers (never panics), and anything it accepts
        /// is UTF-8 text with no pair lost or invented beyond the `&`-separated pieces.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(pairs) = decode_pairs(&raw) {
                let pieces = raw.split(|&b| b == b'&').filter(|p| !p.is_empty()).count();
                prop_assert_eq!(pairs.len(), pieces);
            }
        }

        /// What a client encodes (any Unicode, any punctuation) decodes to the same pairs.
        #[test]
        fn encoded_pairs_round_trip(pairs in proptest::collection::vec(("\\PC{0,8}", "\\PC{0,16}"), 0..6)) {
            let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(k, v)| !(k.is_empty() && v.is_empty())).collect();
            let decoded = decode_pairs(encode(&pairs).as_bytes()).unwrap();
            prop_assert_eq!(decoded, pairs);
        }

        /// A percent-encoded byte sequence that is not UTF-8 is refused, wherever it sits.
        #[test]
        fn invalid_utf8_is_refused(prefix in "[a-z]{0,4}", bad in prop_oneof![Just("%ff"), Just("%c3"), Just("%80"), Just("%ed%a0%80"), Just("%f8%88%80%80%80")]) {
            let raw = format!("k={prefix}{bad}");
            prop_assert_eq!(decode_pairs(raw.as_bytes()), Err(DecodeError::Utf8));
        }
    }
}
