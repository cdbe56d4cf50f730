//! The `upstream-oauth2-sessions` cookie (docs/protocol.md#cookies-and-csrf): the authorization
//! sessions this browser started, so that a callback is only accepted in the browser that began the
//! login (a `state` not listed here is a "state mismatch") and the link page only for the browser
//! that came back from the provider. Used sessions stay listed (their database row says they were
//! used: a replay is refused as such) until they expire. Private (encrypted) like every cookie,
//! `SameSite=Lax` (the provider's redirect back is a top-level GET), a browser-session cookie. It
//! keeps the newest [`MAX_SESSIONS`] entries younger than [`MAX_AGE_MS`].

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::extract::CookieJar;

/// The cookie's name (upstream's).
pub(super) const UPSTREAM_SESSIONS_COOKIE: &str = "upstream-oauth2-sessions";
/// How many pending logins a browser keeps.
const MAX_SESSIONS: usize = 10;
/// How long a login may take, from the redirect to the provider to the confirmation.
const MAX_AGE_MS: i64 = 60 * 60 * 1000;

/// One login attempt of this browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// The authorization session id (ULID text).
    id: String,
    /// The provider id.
    provider: String,
    /// The `state` sent to the provider.
    state: String,
    /// The link the callback settled on, once it did (ULID text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    /// When the login started (Unix ms).
    created_at: i64,
}

/// The cookie's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UpstreamSessions {
    sessions: Vec<Entry>,
}

impl UpstreamSessions {
    /// The browser's sessions still young enough at `now` (none when the cookie is missing or
    /// unreadable).
    pub(super) fn load(jar: &CookieJar, now: i64) -> Self {
        let mut cookie: Self = jar.load(UPSTREAM_SESSIONS_COOKIE).unwrap_or_default();
        cookie
            .sessions
            .retain(|entry| now.saturating_sub(entry.created_at) < MAX_AGE_MS);
        cookie
    }

    /// Whether the browser has no pending login.
    pub(super) fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Adds a new login (the oldest beyond [`MAX_SESSIONS`] are forgotten).
    pub(super) fn add(&mut self, id: Ulid, provider: &str, state: &str, now: i64) {
        self.sessions.push(Entry {
            id: id.to_string(),
            provider: provider.to_owned(),
            state: state.to_owned(),
            link: None,
            created_at: now,
        });
        let excess = self.sessions.len().saturating_sub(MAX_SESSIONS);
        self.sessions.drain(..excess);
    }

    /// The session this browser started at `provider` with `state`.
    pub(super) fn find_by_state(&self, provider: &str, state: &str) -> Option<Ulid> {
        self.sessions
            .iter()
            .find(|entry| entry.provider == provider && entry.state == state)
            .and_then(|entry| entry.id.parse().ok())
    }

    /// Records the link the callback of session `id` settled on.
    pub(super) fn set_link(&mut self, id: Ulid, link: Ulid) {
        let id = id.to_string();
        for entry in self.sessions.iter_mut().filter(|entry| entry.id == id) {
            entry.link = Some(link.to_string());
        }
    }

    /// The session whose callback settled on `link`, newest first.
    pub(super) fn find_by_link(&self, link: Ulid) -> Option<Ulid> {
        let link = link.to_string();
        self.sessions
            .iter()
            .rev()
            .find(|entry| entry.link.as_deref() == Some(link.as_str()))
            .and_then(|entry| entry.id.parse().ok())
    }

    /// Writes the cookie into `jar` (removes it when nothing is pending).
    pub(super) fn save(
        &self,
        jar: &mut CookieJar,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), serde_json::Error> {
        if self.sessions.is_empty() {
            jar.remove(UPSTREAM_SESSIONS_COOKIE);
            Ok(())
        } else {
            jar.save(rng, UPSTREAM_SESSIONS_COOKIE, self, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use url::Url;

    use super::*;
    use crate::config::EncryptionKey;
    use crate::extract::CookieManager;
    use crate::rng::RngSource;

    fn jar() -> CookieJar {
        let base = Url::parse("https://matrix.example.com/auth/").unwrap();
        CookieManager::new(&EncryptionKey([5; 32]), &base).jar(&HeaderMap::new())
    }

    fn id(n: u128) -> Ulid {
        Ulid::from(n)
    }

    #[test]
    fn sessions_are_found_by_provider_and_state_then_by_link() {
        let mut sessions = UpstreamSessions::default();
        sessions.add(id(1), "p1", "state-a", 0);
        sessions.add(id(2), "p2", "state-b", 0);
        assert_eq!(sessions.find_by_state("p1", "state-a"), Some(id(1)));
        assert_eq!(
            sessions.find_by_state("p2", "state-a"),
            None,
            "other provider"
        );
        assert_eq!(sessions.find_by_state("p1", "state-x"), None);
        assert_eq!(sessions.find_by_link(id(9)), None);
        sessions.set_link(id(2), id(9));
        assert_eq!(sessions.find_by_link(id(9)), Some(id(2)));
        assert!(!sessions.is_empty());
    }

    #[test]
    fn only_the_newest_ten_and_the_young_ones_are_kept() {
        let mut sessions = UpstreamSessions::default();
        for n in 0..12 {
            sessions.add(id(n), "p", &format!("state-{n}"), i64::try_from(n).unwrap());
        }
        assert_eq!(sessions.find_by_state("p", "state-0"), None);
        assert_eq!(sessions.find_by_state("p", "state-1"), None);
        assert_eq!(sessions.find_by_state("p", "state-2"), Some(id(2)));

        let mut rng = RngSource::seeded(1).fork();
        let mut jar = jar();
        sessions.save(&mut jar, &mut rng).unwrap();
        let loaded = UpstreamSessions::load(&jar, 11);
        assert_eq!(loaded, sessions);
        let later = UpstreamSessions::load(&jar, 2 + MAX_AGE_MS);
        assert_eq!(later.find_by_state("p", "state-2"), None, "expired");
        assert_eq!(later.find_by_state("p", "state-3"), Some(id(3)));
    }

    #[test]
    fn the_cookie_is_encrypted_and_removed_once_nothing_is_young_enough() {
        let mut rng = RngSource::seeded(1).fork();
        let mut jar = jar();
        let mut sessions = UpstreamSessions::default();
        sessions.add(id(1), "p", "visible-state", 0);
        sessions.save(&mut jar, &mut rng).unwrap();
        let headers = jar.set_cookie_headers();
        let header = headers[0].to_str().unwrap();
        assert!(
            header.starts_with("__Host-upstream-oauth2-sessions="),
            "{header}"
        );
        assert!(!header.contains("visible-state"), "{header}");
        assert!(header.contains("HttpOnly") && header.contains("SameSite=Lax"));
        assert!(
            !header.contains("Max-Age"),
            "a browser-session cookie: {header}"
        );

        let expired = UpstreamSessions::load(&jar, MAX_AGE_MS);
        assert!(expired.is_empty());
        expired.save(&mut jar, &mut rng).unwrap();
        let headers = jar.set_cookie_headers();
        assert!(headers[0].to_str().unwrap().contains("Max-Age=0"));
    }
}
