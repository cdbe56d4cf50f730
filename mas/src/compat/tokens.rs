//! Issuing the tokens of a compat session, for a login and for `/refresh` alike: an `mct_`
//! access token, alone and never expiring, or expiring and paired with an `mcr_` refresh token
//! (Matrix client-server API "Refreshing access tokens"). Only their SHA-256 is stored.

use std::time::Duration;

use rand::{CryptoRng, RngCore};
use sqlx::AnyConnection;
use ulid::Ulid;

use crate::clock::Clock;
use crate::crypto::{TokenKind, sha256_hex};
use crate::storage::StorageError;
use crate::storage::compat;

/// The texts of a freshly issued refreshable pair, for the answer.
pub(super) struct RefreshablePair {
    /// The access token.
    pub(super) access_token: String,
    /// The refresh token.
    pub(super) refresh_token: String,
    /// The access token's lifetime in milliseconds (`expires_in_ms`).
    pub(super) expires_in_ms: u64,
}

/// Stores a new access token of the session, expiring after `ttl` (`None`: never), in the
/// caller's transaction. Returns its text and its id.
pub(super) async fn issue_access_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + CryptoRng),
    session_id: Ulid,
    ttl: Option<Duration>,
) -> Result<(String, Ulid), StorageError> {
    let access_token = TokenKind::CompatAccessToken.generate(rng);
    let access = compat::add_compat_access_token(
        conn,
        clock,
        rng,
        session_id,
        &sha256_hex(&access_token),
        ttl,
    )
    .await?;
    Ok((access_token, access.id))
}

/// Stores a new access token of the session expiring after `ttl` and a refresh token issued
/// with it, in the caller's transaction.
pub(super) async fn issue_refreshable_pair(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + CryptoRng),
    session_id: Ulid,
    ttl: Duration,
) -> Result<RefreshablePair, StorageError> {
    let (access_token, access_id) =
        issue_access_token(conn, clock, rng, session_id, Some(ttl)).await?;
    let refresh_token = TokenKind::CompatRefreshToken.generate(rng);
    compat::add_compat_refresh_token(
        conn,
        clock,
        rng,
        session_id,
        access_id,
        &sha256_hex(&refresh_token),
    )
    .await?;
    Ok(RefreshablePair {
        access_token,
        refresh_token,
        expires_in_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
    })
}
