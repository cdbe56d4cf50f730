//! The registrations cookie: which registrations in progress belong to this browser
//! (docs/protocol.md#registration). The registration pages answer 404 for an id this browser
//! did not start, so a registration's URL alone is worth nothing to someone else.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::CookieJar;

/// The cookie's name.
pub const REGISTRATIONS_COOKIE: &str = "user-registrations";

/// How many registrations one browser keeps (the oldest are forgotten first).
const MAX_REGISTRATIONS: usize = 10;

/// The cookie's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RegistrationsCookie {
    /// `user_registrations` ids (ULID text), oldest first.
    ids: Vec<String>,
}

impl CookieJar {
    fn registrations_cookie(&self) -> RegistrationsCookie {
        self.load(REGISTRATIONS_COOKIE).unwrap_or_default()
    }

    /// Whether this browser started registration `id`.
    pub fn has_registration(&self, id: Ulid) -> bool {
        let id = id.to_string();
        self.registrations_cookie().ids.contains(&id)
    }

    /// Adds registration `id` to the cookie (a browser-session cookie).
    pub fn add_registration(
        &mut self,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
        id: Ulid,
    ) -> Result<(), serde_json::Error> {
        let mut cookie = self.registrations_cookie();
        cookie.ids.push(id.to_string());
        let excess = cookie.ids.len().saturating_sub(MAX_REGISTRATIONS);
        cookie.ids.drain(..excess);
        self.save(rng, REGISTRATIONS_COOKIE, &cookie, None)
    }

    /// Forgets registration `id` (it was completed); the cookie goes when it is empty.
    pub fn remove_registration(
        &mut self,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
        id: Ulid,
    ) -> Result<(), serde_json::Error> {
        let mut cookie = self.registrations_cookie();
        let id = id.to_string();
        cookie.ids.retain(|kept| *kept != id);
        if cookie.ids.is_empty() {
            self.remove(REGISTRATIONS_COOKIE);
            Ok(())
        } else {
            self.save(rng, REGISTRATIONS_COOKIE, &cookie, None)
        }
    }
}
