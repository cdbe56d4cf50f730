//! ID token validation (OpenID Connect Core §3.1.3.7): the signature against the provider's
//! JWKS (cached; refetched once, at most once a minute, when a token names an unknown `kid`),
//! the configured algorithm, `iss`, `aud`/`azp`, `exp`/`iat`/`nbf` with a 30 s leeway on the
//! injected clock, `nonce`, and `at_hash`/`c_hash` when present.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::discovery::{Endpoints, same_issuer};
use super::fetch;
use super::{IdTokenError, Provider, UpstreamError};
use crate::crypto::jwk::unb64;
use crate::crypto::{Jwks, JwsAlgorithm, JwtError, jwt, oidc_hash};

/// Clock skew tolerated on `exp`, `nbf`.
const LEEWAY_SECS: f64 = 30.0;
/// The JWKS is refetched for an unknown `kid` at most this often.
const JWKS_REFETCH_INTERVAL_MS: i64 = 60 * 1000;

/// The provider's keys and when they were fetched.
#[derive(Debug, Default)]
pub(super) struct JwksCache {
    jwks: Option<Arc<Jwks>>,
    fetched_at_ms: i64,
}

/// What the token must match besides the provider's configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expected<'a> {
    /// The access token issued with it (`at_hash`).
    pub(super) access_token: &'a str,
    /// The authorization code it was issued for (`c_hash`).
    pub(super) code: &'a str,
    /// The session's nonce.
    pub(super) nonce: &'a str,
}

/// The JOSE header fields we read.
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
}

impl Provider {
    /// Validates `id_token` and returns its claims.
    pub(super) async fn validate_id_token(
        &self,
        endpoints: &Endpoints,
        id_token: &str,
        expected: &Expected<'_>,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let header = id_token.split('.').next().unwrap_or_default();
        let header: Header = unb64(header)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(IdTokenError::Malformed)?;
        if header.alg != self.id_token_alg.as_str() {
            return Err(IdTokenError::Algorithm {
                expected: self.id_token_alg.as_str(),
                found: header.alg,
            }
            .into());
        }
        let claims = self.verify_signature(endpoints, id_token).await?;
        self.check_claims(&claims, expected)?;
        Ok(claims)
    }

    /// Checks the signature, refetching the JWKS once for an unknown key.
    async fn verify_signature(
        &self,
        endpoints: &Endpoints,
        id_token: &str,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let jwks = self.jwks(endpoints, None).await?;
        match jwt::verify(&jwks, id_token) {
            Err(JwtError::UnknownKey) => {}
            other => return other.map_err(|error| signature_error(&error).into()),
        }
        let fresh = self.jwks(endpoints, Some(&jwks)).await?;
        if Arc::ptr_eq(&fresh, &jwks) {
            // Refetched too recently: refuse rather than hammer the provider.
            return Err(IdTokenError::UnknownKey.into());
        }
        jwt::verify(&fresh, id_token).map_err(|error| signature_error(&error).into())
    }

    /// The cached JWKS, fetched when there is none. With `stale` (the set that lacked a key),
    /// refetches unless that happened less than a minute ago (then the cached set is returned).
    async fn jwks(
        &self,
        endpoints: &Endpoints,
        stale: Option<&Arc<Jwks>>,
    ) -> Result<Arc<Jwks>, UpstreamError> {
        let mut cache = self.jwks.lock().await;
        let now = self.clock.now_unix_ms();
        if let Some(jwks) = &cache.jwks {
            let refetch = stale.is_some_and(|stale| {
                Arc::ptr_eq(stale, jwks)
                    && now.saturating_sub(cache.fetched_at_ms) >= JWKS_REFETCH_INTERVAL_MS
            });
            if !refetch {
                return Ok(jwks.clone());
            }
        }
        let jwks: Jwks = fetch::get_json(&self.http, "jwks", &endpoints.jwks_uri)
            .await
            .map_err(|error| error.into_discovery_error("jwks"))?;
        tracing::debug!(provider = %self.id, keys = jwks.keys.len(), "fetched the provider's JWKS");
        let jwks = Arc::new(jwks);
        cache.jwks = Some(jwks.clone());
        cache.fetched_at_ms = now;
        Ok(jwks)
    }

    /// The claim checks after the signature, in this order: issuer and audience, times,
    /// the bindings to this login (nonce, hashes), the subject.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        expected: &Expected<'_>,
    ) -> Result<(), IdTokenError> {
        self.check_issuer_and_audience(claims)?;
        // Seconds, fractional: numeric dates may be floats (RFC 7519 §2).
        #[expect(
            clippy::cast_precision_loss,
            reason = "Unix milliseconds fit an f64 exactly"
        )]
        let now = self.clock.now_unix_ms() as f64 / 1000.0;
        check_times(claims, now)?;
        check_bindings(claims, expected, self.id_token_alg)?;
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(IdTokenError::MissingSubject);
        }
        Ok(())
    }

    /// `iss` is the provider, `aud` contains us, and with several audiences (or any `azp`)
    /// `azp` is us (OpenID Connect Core 1.0 §3.1.3.7).
    fn check_issuer_and_audience(&self, claims: &Map<String, Value>) -> Result<(), IdTokenError> {
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !same_issuer(&self.issuer, iss) {
            return Err(IdTokenError::Issuer {
                expected: self.issuer.clone(),
                found: iss.to_owned(),
            });
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&self.client_id.as_str()) {
            return Err(IdTokenError::Audience);
        }
        let azp = claims.get("azp").and_then(Value::as_str);
        if (audiences.len() > 1 || azp.is_some()) && azp != Some(self.client_id.as_str()) {
            return Err(IdTokenError::AuthorizedParty);
        }
        Ok(())
    }
}

/// `exp` not passed, `iat` present, `nbf` (if any) reached, at `now` (Unix seconds) with
/// [`LEEWAY_SECS`] either way.
fn check_times(claims: &Map<String, Value>, now: f64) -> Result<(), IdTokenError> {
    let exp = claims.get("exp").and_then(Value::as_f64);
    if exp.is_none_or(|exp| now >= exp + LEEWAY_SECS) {
        return Err(IdTokenError::Expired);
    }
    if claims.get("iat").and_then(Value::as_f64).is_none() {
        return Err(IdTokenError::MissingIssuedAt);
    }
    if let Some(nbf) = claims.get("nbf")
        && nbf.as_f64().is_none_or(|nbf| nbf > now + LEEWAY_SECS)
    {
        return Err(IdTokenError::NotYetValid);
    }
    Ok(())
}

/// The token belongs to this login: our `nonce`, and `at_hash` / `c_hash` (when present)
/// match the access token and the code under the signing algorithm `alg`.
fn check_bindings(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
    alg: JwsAlgorithm,
) -> Result<(), IdTokenError> {
    let token_nonce = claims.get("nonce").and_then(Value::as_str);
    if token_nonce.is_none_or(|token_nonce| {
        !crate::crypto::constant_time_eq(token_nonce.as_bytes(), expected.nonce.as_bytes())
    }) {
        return Err(IdTokenError::Nonce);
    }
    if let Some(at_hash) = claims.get("at_hash")
        && at_hash.as_str() != Some(oidc_hash(alg, expected.access_token).as_str())
    {
        return Err(IdTokenError::AccessTokenHash);
    }
    if let Some(c_hash) = claims.get("c_hash")
        && c_hash.as_str() != Some(oidc_hash(alg, expected.code).as_str())
    {
        return Err(IdTokenError::CodeHash);
    }
    Ok(())
}

fn signature_error(error: &JwtError) -> IdTokenError {
    match error {
        JwtError::UnknownKey => IdTokenError::UnknownKey,
        JwtError::BadSignature => IdTokenError::Signature,
        _ => IdTokenError::Malformed,
    }
}
