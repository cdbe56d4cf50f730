//! The `refresh_token` grant (RFC 6749 §6; docs/protocol.md#refresh-token-grant). Refresh tokens
//! rotate on every use: the presented token is consumed and linked to its successor, a new access
//! and refresh pair is issued, and the old access token is revoked.
//!
//! An **already consumed** token that comes back is judged by its successor:
//!
//! - the successor is still unused (neither refreshed nor revoked, and its access token never
//!   introspected: `first_used_at` is NULL): the client most likely never received the
//!   answer. The successor pair is revoked and a fresh pair issued (as upstream MAS does);
//! - the successor was used (refreshed, or its access token introspected): the client moved
//!   on, so this is a replay by someone else. RFC 9700 §4.14.2: the **whole session** ends
//!   (every token revoked, the session finished, its device deleted in the homeserver) and
//!   the answer is `invalid_grant`. Upstream MAS only refuses the token here;
//! - anything else (no successor recorded, or revoked): `invalid_grant`.

use sqlx::AnyConnection;
use ulid::Ulid;

use super::{TokenPair, TokenResponse, TokenState, invalid_grant};
use crate::auth::sessions::SessionEnder;
use crate::clock::Clock;
use crate::crypto::{TokenKind, sha256_hex};
use crate::error::OAuthError;
use crate::model::{Client, RefreshToken, Session};
use crate::storage::introspection::Introspected;
use crate::storage::{Database, StorageError, access_tokens, introspection, refresh_tokens};

/// Exchanges a refresh token for a new pair.
pub(super) async fn grant(
    state: &TokenState,
    client: &Client,
    presented: &str,
) -> Result<TokenResponse, OAuthError> {
    let mut conn = state.sessions.db.acquire().await?;
    let found = find_usable(&mut conn, client, presented).await?;
    // For a consumed token: the unused successor to replace.
    let replaced = match found.token.consumed_at {
        None => None,
        Some(_) => match successor_of(&mut conn, &found.token).await? {
            Successor::Unused(next) => Some(next),
            Successor::Used => {
                drop(conn);
                end_replayed_session(&state.sessions.db, state.sessions.ender(), &found.session)
                    .await?;
                return Err(invalid_grant(
                    "the refresh token was already used; the session has ended",
                ));
            }
            Successor::Unavailable => {
                return Err(invalid_grant("the refresh token was already used"));
            }
        },
    };
    drop(conn);

    let clock = state.sessions.clock.as_ref();
    let mut rng = state.sessions.rng.fork();
    let ttl = state.site.access_token_ttl;
    let pair = TokenPair::generate(&mut rng, true);
    let mut tx = state.sessions.db.begin_write().await?;
    let stored = pair
        .store(&mut tx, clock, &mut rng, found.session.id, ttl)
        .await?;
    let new_refresh_id = stored
        .as_ref()
        .map(|refresh| refresh.id)
        .ok_or_else(|| OAuthError::internal("a refresh token was not stored"))?;
    if !rotate(
        &mut tx,
        clock,
        &found.token,
        replaced.as_ref(),
        new_refresh_id,
    )
    .await?
    {
        return Err(invalid_grant("the refresh token was already used"));
    }
    tx.commit().await?;
    if replaced.is_some() {
        tracing::info!(
            oauth2_session.id = %found.session.id,
            "refresh token reused before its successor was used; reissued"
        );
    }
    Ok(TokenResponse::new(pair, ttl, &found.session.scope))
}

/// The presented token with its session and user: a refresh token of ours, issued to
/// `client`, not revoked, in an active session whose user (if any) is usable. It may have
/// been consumed already.
async fn find_usable(
    conn: &mut AnyConnection,
    client: &Client,
    presented: &str,
) -> Result<Introspected<RefreshToken>, OAuthError> {
    if TokenKind::from_token(presented) != Some(TokenKind::RefreshToken) {
        return Err(invalid_grant("invalid refresh token"));
    }
    let found = introspection::lookup_refresh_token_for_introspection(conn, &sha256_hex(presented))
        .await?
        .ok_or_else(|| invalid_grant("invalid refresh token"))?;
    if found.session.client_id != client.id {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if !found.session.is_active() {
        return Err(invalid_grant("the session has ended"));
    }
    let user_ok = match found.session.user_id {
        Some(_) => found.user.as_ref().is_some_and(|user| user.is_valid()),
        None => true,
    };
    if !user_ok {
        return Err(invalid_grant("the account is locked or deactivated"));
    }
    if found.token.revoked_at.is_some() {
        return Err(invalid_grant("the refresh token was revoked"));
    }
    Ok(found)
}

/// Links the presented token (or the unused successor it `replaced`) to the new refresh token
/// `new_refresh_id` and revokes the access token of the pair it supersedes. Returns whether
/// this request won: both updates are conditional, so of two concurrent refreshes exactly one
/// does.
async fn rotate(
    tx: &mut AnyConnection,
    clock: &dyn Clock,
    presented: &RefreshToken,
    replaced: Option<&RefreshToken>,
    new_refresh_id: Ulid,
) -> Result<bool, StorageError> {
    let (won, to_revoke) = match replaced {
        None => {
            let won =
                refresh_tokens::consume_refresh_token(tx, clock, presented.id, new_refresh_id)
                    .await?;
            (won, presented.access_token_id)
        }
        Some(successor) => {
            // Claiming the successor is the conditional step: it fails if the client used
            // it in the meantime. Then the presented token points at the new pair, and the
            // successor is revoked.
            let won =
                refresh_tokens::consume_refresh_token(tx, clock, successor.id, new_refresh_id)
                    .await?;
            if won {
                refresh_tokens::replace_refresh_token_successor(
                    tx,
                    presented.id,
                    successor.id,
                    new_refresh_id,
                )
                .await?;
                refresh_tokens::revoke_refresh_token(tx, clock, successor.id).await?;
            }
            (won, successor.access_token_id)
        }
    };
    if won && let Some(access_token_id) = to_revoke {
        access_tokens::revoke_access_token(tx, clock, access_token_id).await?;
    }
    Ok(won)
}

/// What became of the successor of a consumed refresh token.
#[derive(Debug)]
enum Successor {
    /// Neither consumed nor revoked, and its access token never used (or gone): the
    /// client most likely lost the answer that carried it.
    Unused(RefreshToken),
    /// Refreshed, or its access token was introspected: the client has it.
    Used,
    /// None recorded, missing, or revoked: nothing to conclude from it.
    Unavailable,
}

/// Follows `token.next_refresh_token_id` and judges the successor.
async fn successor_of(
    conn: &mut AnyConnection,
    token: &RefreshToken,
) -> Result<Successor, StorageError> {
    let Some(next_id) = token.next_refresh_token_id else {
        return Ok(Successor::Unavailable);
    };
    let Some(next) = refresh_tokens::find_refresh_token(conn, next_id).await? else {
        return Ok(Successor::Unavailable);
    };
    if next.consumed_at.is_some() {
        return Ok(Successor::Used);
    }
    if next.revoked_at.is_some() {
        return Ok(Successor::Unavailable);
    }
    if let Some(access_token_id) = next.access_token_id {
        let access = access_tokens::find_access_token(conn, access_token_id).await?;
        if access.is_some_and(|access| access.first_used_at.is_some()) {
            return Ok(Successor::Used);
        }
    }
    Ok(Successor::Unused(next))
}

/// RFC 9700 §4.14.2: a refresh token replayed after the client moved on ends the session.
/// Every token of the session is revoked first, then [`SessionEnder`] finishes it and deletes
/// its device (a queued device sync retries a failed deletion), as any other session end does.
async fn end_replayed_session(
    db: &Database,
    ender: SessionEnder<'_>,
    session: &Session,
) -> Result<(), OAuthError> {
    let clock = ender.clock;
    let mut tx = db.begin_write().await?;
    access_tokens::revoke_session_access_tokens(&mut tx, clock, session.id).await?;
    refresh_tokens::revoke_session_refresh_tokens(&mut tx, clock, session.id).await?;
    tx.commit().await?;
    // `false`: a concurrent request ended it first, and logged it.
    if ender.end_oauth2_session(session.id).await? {
        tracing::warn!(
            oauth2_session.id = %session.id,
            oauth2_client.id = %session.client_id,
            "refresh token replayed after its successor was used; session ended"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
