//! Login through upstream OpenID providers (docs/protocol.md#upstream-login): the link between a
//! provider's subject and a local user, and one login attempt at a provider (an authorization
//! session). Providers themselves are configuration (`crate::upstream`), named here by id.

use serde_json::{Map, Value};
use ulid::Ulid;

/// One row of `upstream_oauth_links`: the provider's `subject` is this local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamLink {
    /// The row id (the `{link_id}` of `/upstream/link/{link_id}`).
    pub id: Ulid,
    /// The configured provider id.
    pub provider_id: String,
    /// The local user; `None` while the person has not confirmed the account yet.
    pub user_id: Option<Ulid>,
    /// The subject (the rendered `claims_imports.subject` template), unique per provider.
    pub subject: String,
    /// A label for the upstream account (`claims_imports.account_name`), display only.
    pub human_account_name: Option<String>,
    /// When it was created.
    pub created_at: i64,
}

/// One row of `upstream_oauth_authorization_sessions`: a login attempt at a provider, from the
/// redirect to the provider (pending) through the callback (completed) to the browser session
/// it started (consumed). Its `Debug` hides the PKCE verifier and the ID token.
#[derive(Clone, PartialEq)]
pub struct UpstreamSession {
    /// The row id (what the `upstream-oauth2-sessions` cookie lists).
    pub id: Ulid,
    /// The configured provider id.
    pub provider_id: String,
    /// The link the callback found or created.
    pub link_id: Option<Ulid>,
    /// The `state` sent to the provider (unique).
    pub state: String,
    /// The `nonce` sent to the provider; the ID token must carry it.
    pub nonce: String,
    /// The PKCE verifier, when the request used PKCE.
    pub code_verifier: Option<String>,
    /// Where to go after the login (`{"kind": …, "id": …}`), if anywhere.
    pub post_auth_action: Option<Value>,
    /// The validated ID token (set at completion).
    pub id_token: Option<String>,
    /// Its claims (set at completion).
    pub id_token_claims: Option<Map<String, Value>>,
    /// The userinfo answer, when fetched (set at completion).
    pub userinfo: Option<Map<String, Value>>,
    /// When the login started.
    pub created_at: i64,
    /// When the callback validated the provider's answer.
    pub completed_at: Option<i64>,
    /// When a browser session was started from it.
    pub consumed_at: Option<i64>,
}

impl UpstreamSession {
    /// Waiting for the callback.
    pub fn is_pending(&self) -> bool {
        self.completed_at.is_none()
    }

    /// Completed by the callback and not yet used to log in.
    pub fn is_completed(&self) -> bool {
        self.completed_at.is_some() && self.consumed_at.is_none()
    }
}

impl std::fmt::Debug for UpstreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSession")
            .field("id", &self.id)
            .field("provider_id", &self.provider_id)
            .field("link_id", &self.link_id)
            .field("post_auth_action", &self.post_auth_action)
            .field("created_at", &self.created_at)
            .field("completed_at", &self.completed_at)
            .field("consumed_at", &self.consumed_at)
            .finish_non_exhaustive()
    }
}

/// What the callback stores when it completes a session.
#[derive(Clone, Copy)]
pub struct UpstreamCompletion<'a> {
    /// The link found or created for the subject.
    pub link_id: Ulid,
    /// The validated ID token.
    pub id_token: &'a str,
    /// Its claims.
    pub id_token_claims: &'a Map<String, Value>,
    /// The userinfo answer, when fetched.
    pub userinfo: Option<&'a Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_verifier_and_the_id_token() {
        let session = UpstreamSession {
            id: Ulid::nil(),
            provider_id: "p".to_owned(),
            link_id: None,
            state: "state-secret".to_owned(),
            nonce: "nonce-secret".to_owned(),
            code_verifier: Some("verifier-secret".to_owned()),
            post_auth_action: None,
            id_token: Some("eyJ.token.secret".to_owned()),
            id_token_claims: None,
            userinfo: None,
            created_at: 0,
            completed_at: None,
            consumed_at: None,
        };
        let text = format!("{session:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(session.is_pending());
        assert!(!session.is_completed());
    }
}
