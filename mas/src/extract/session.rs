//! The browser session (docs/protocol.md#cookies-and-csrf): the private `session` cookie holds the
//! id of the browser's current `user_sessions` row. Reading it gives a session only when the row is
//! active and its user may still log in (not locked, not deactivated); anything else reads as "no
//! session".

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use ulid::Ulid;

use super::cookies::{CookieJar, PERMANENT};
use crate::model::BrowserSession;
use crate::storage::{StorageError, browser_sessions};

/// Name of the cookie.
pub const SESSION_COOKIE: &str = "session";

/// The cookie's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SessionCookie {
    /// The `user_sessions` id (ULID text).
    current: String,
}

impl CookieJar {
    /// The browser session id the cookie names, if any (not checked against the database).
    pub fn session_id(&self) -> Option<Ulid> {
        self.load::<SessionCookie>(SESSION_COOKIE)
            .and_then(|cookie| cookie.current.parse().ok())
    }

    /// Points the cookie at `session_id` ("permanent": the session ends at logout).
    pub fn set_session(
        &mut self,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
        session_id: Ulid,
    ) -> Result<(), serde_json::Error> {
        let cookie = SessionCookie {
            current: session_id.to_string(),
        };
        self.save(rng, SESSION_COOKIE, &cookie, Some(PERMANENT))
    }

    /// Removes the cookie (logout).
    pub fn clear_session(&mut self) {
        self.remove(SESSION_COOKIE);
    }
}

/// The active browser session named by the cookie, with a user who may log in.
pub async fn load_session(
    conn: &mut AnyConnection,
    jar: &CookieJar,
) -> Result<Option<BrowserSession>, StorageError> {
    let Some(id) = jar.session_id() else {
        return Ok(None);
    };
    let session = browser_sessions::find_active_browser_session(conn, id).await?;
    Ok(session.filter(|session| session.user.is_valid()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::{HeaderMap, HeaderValue, header};
    use url::Url;

    use super::*;
    use crate::config::EncryptionKey;
    use crate::extract::CookieManager;
    use crate::rng::RngSource;
    use crate::storage::testing::{migrated, test_on_both_backends};
    use crate::storage::{Database, users};

    fn manager() -> CookieManager {
        let base = Url::parse("https://matrix.example.com/auth/").unwrap();
        CookieManager::new(&EncryptionKey([3; 32]), &base)
    }

    /// The jar a browser would send back after `jar`'s changes.
    fn round_trip(jar: &CookieJar) -> CookieJar {
        manager().jar(&crate::extract::cookies::cookie_header(
            &jar.set_cookie_headers(),
        ))
    }

    #[test]
    fn the_cookie_is_private_permanent_and_secure_on_https() {
        let mut jar = manager().jar(&HeaderMap::new());
        let id = Ulid::from_parts(1, 2);
        jar.set_session(&mut RngSource::seeded(1).fork(), id)
            .unwrap();
        let headers = jar.set_cookie_headers();
        let header = headers[0].to_str().unwrap();
        assert!(header.starts_with("__Host-session="), "{header}");
        assert!(!header.contains(&id.to_string()), "encrypted: {header}");
        let attributes = crate::extract::cookies::cookie_attributes(header);
        for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(attributes.contains(attribute), "{attribute}: {header}");
        }
        assert!(header.contains(&format!("Max-Age={}", PERMANENT.as_secs())));
        assert_eq!(round_trip(&jar).session_id(), Some(id));
    }

    #[test]
    fn a_cleared_or_forged_cookie_names_no_session() {
        let mut jar = manager().jar(&HeaderMap::new());
        jar.set_session(&mut RngSource::seeded(1).fork(), Ulid::from_parts(1, 2))
            .unwrap();
        jar.clear_session();
        assert_eq!(jar.session_id(), None);
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("session=forged"));
        assert_eq!(manager().jar(&headers).session_id(), None);
    }

    async fn only_active_sessions_of_valid_users_load(db: Database) {
        let mut t = migrated(db).await;
        let user = t.user("alice").await;
        let session = t.browser_session(&user).await;
        let mut jar = manager().jar(&HeaderMap::new());
        assert_eq!(load_session(&mut t.conn, &jar).await.unwrap(), None);

        jar.set_session(&mut t.rng, session.id).unwrap();
        let loaded = load_session(&mut t.conn, &jar).await.unwrap().unwrap();
        assert_eq!(loaded.id, session.id);

        users::lock_user(&mut t.conn, &t.clock, user.id)
            .await
            .unwrap();
        assert_eq!(load_session(&mut t.conn, &jar).await.unwrap(), None);
        users::unlock_user(&mut t.conn, user.id).await.unwrap();
        assert!(load_session(&mut t.conn, &jar).await.unwrap().is_some());

        t.clock.advance(Duration::from_secs(1));
        browser_sessions::finish_browser_session(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap();
        assert_eq!(load_session(&mut t.conn, &jar).await.unwrap(), None);
    }

    test_on_both_backends!(only_active_sessions_of_valid_users_load);
}
