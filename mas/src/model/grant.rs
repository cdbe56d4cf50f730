//! Authorization grants: one `/authorize` request, from creation through consent to the code
//! exchange (docs/protocol.md#authorization-endpoint, #authorization-code-grant).

use ulid::Ulid;
use url::Url;

use super::{Scope, keyword_enum};

/// How long a code may be exchanged after consent: 10 minutes (docs/protocol.md#lifetimes).
pub const AUTHORIZATION_CODE_LIFETIME_MS: i64 = 10 * 60 * 1000;

keyword_enum! {
    /// How the authorization response reaches the client.
    pub enum ResponseMode as "response_mode" {
        /// In the redirect URI's query.
        Query = "query",
        /// In the redirect URI's fragment.
        Fragment = "fragment",
        /// As an auto-submitted form POST.
        FormPost = "form_post",
    }
}

keyword_enum! {
    /// PKCE `code_challenge_method` (RFC 7636).
    pub enum CodeChallengeMethod as "code_challenge_method" {
        /// The verifier itself.
        Plain = "plain",
        /// BASE64URL(SHA-256(verifier)).
        S256 = "S256",
    }
}

/// A PKCE challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge {
    /// The `code_challenge`.
    pub challenge: String,
    /// Its method.
    pub method: CodeChallengeMethod,
}

/// What a new grant is made of (the validated `/authorize` parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuthorizationGrant {
    /// The client that asked.
    pub client_id: Ulid,
    /// Where to send the response (one of the client's).
    pub redirect_uri: Url,
    /// The request carried `redirect_uri` (rather than leaving it to the client's only
    /// registered one), so the token request must repeat it (RFC 6749 §4.1.3).
    pub redirect_uri_explicit: bool,
    /// The requested scope.
    pub scope: Scope,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
    /// The OIDC `nonce`, put in the ID token.
    pub nonce: Option<String>,
    /// How to respond.
    pub response_mode: ResponseMode,
    /// `response_type` contains `code`.
    pub response_type_code: bool,
    /// `response_type` contains `id_token`.
    pub response_type_id_token: bool,
    /// The PKCE challenge.
    pub code_challenge: Option<CodeChallenge>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// `prompt`, space-separated as received (`login`, `none`, `create`).
    pub prompt: Option<String>,
}

/// Where a grant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStage {
    /// Waiting for login and consent.
    Pending,
    /// Consent given; the code (if any) is waiting to be exchanged.
    Fulfilled,
    /// The code was exchanged for tokens.
    Exchanged,
    /// Refused or abandoned.
    Cancelled,
}

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationGrant {
    /// The row id.
    pub id: Ulid,
    /// The request's parameters.
    pub request: NewAuthorizationGrant,
    /// SHA-256 (hex) of the code handed out at fulfilment.
    pub authorization_code_sha256: Option<String>,
    /// The browser session that consented.
    pub user_session_id: Option<Ulid>,
    /// The OAuth session created by the exchange.
    pub session_id: Option<Ulid>,
    /// When `/authorize` was called.
    pub created_at: i64,
    /// When consent was given.
    pub fulfilled_at: Option<i64>,
    /// When it was cancelled.
    pub cancelled_at: Option<i64>,
    /// When the code was exchanged.
    pub exchanged_at: Option<i64>,
}

impl AuthorizationGrant {
    /// Its stage, from the timestamps.
    pub fn stage(&self) -> GrantStage {
        if self.cancelled_at.is_some() {
            GrantStage::Cancelled
        } else if self.exchanged_at.is_some() {
            GrantStage::Exchanged
        } else if self.fulfilled_at.is_some() {
            GrantStage::Fulfilled
        } else {
            GrantStage::Pending
        }
    }

    /// Whether the code is too old to exchange at `now` (10 minutes after consent). A grant
    /// that was never fulfilled has no valid code either.
    pub fn code_expired(&self, now: i64) -> bool {
        self.fulfilled_at
            .is_none_or(|fulfilled| now > fulfilled.saturating_add(AUTHORIZATION_CODE_LIFETIME_MS))
    }
}

/// Whether the space-separated `prompt` of a grant has `value`.
pub fn prompt_has(prompt: Option<&str>, value: &str) -> bool {
    prompt.is_some_and(|prompt| prompt.split(' ').any(|v| v == value))
}
