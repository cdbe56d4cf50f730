//! What can go wrong talking to a provider ([`UpstreamError`], with a stable
//! [`UpstreamError::reason`] for log lines), importing its claims ([`ClaimsError`]), or
//! building the providers at start ([`UpstreamSetupError`]). Messages name endpoints and
//! claims, never a token, a code or a secret.

/// Why the providers could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    /// A provider's configuration is unusable (`config check` reports it first).
    #[error("upstream_oauth2.providers[{index}]: {message}")]
    Provider {
        /// Its position in `upstream_oauth2.providers`.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for upstream providers")]
    Client(#[source] reqwest::Error),
}

/// Why a login at a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider could not be reached (connection, timeout, 5xx).
    #[error("{endpoint} unreachable: {message}")]
    Unreachable {
        /// Which endpoint (`discovery`, `jwks`, `token`, `userinfo`).
        endpoint: &'static str,
        /// The transport error.
        message: String,
    },
    /// Discovery or the JWKS answered something unusable.
    #[error("discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The token endpoint refused the code (or answered something unusable).
    #[error("token endpoint: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenEndpoint {
        /// The OAuth error code (`invalid_grant`), or `invalid_response`.
        error: String,
        /// The provider's `error_description`, if any.
        description: Option<String>,
    },
    /// The ID token failed validation.
    #[error("ID token: {0}")]
    IdToken(#[from] IdTokenError),
    /// The userinfo answer is unusable.
    #[error("userinfo: {0}")]
    Userinfo(#[from] UserinfoError),
}

impl UpstreamError {
    /// A stable snake_case kind for log lines and error pages.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "provider_unreachable",
            Self::Discovery(_) => "discovery_invalid",
            Self::TokenEndpoint { .. } => "token_error",
            Self::IdToken(_) => "id_token_invalid",
            Self::Userinfo(_) => "userinfo_failed",
        }
    }
}

/// What is wrong with a provider's discovery document or JWKS.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Not a 2xx answer.
    #[error("{what} answered HTTP {status}")]
    Status {
        /// `discovery` or `jwks`.
        what: &'static str,
        /// The status code.
        status: u16,
    },
    /// Not the JSON we expect.
    #[error("{what} is not valid JSON: {message}")]
    Json {
        /// `discovery` or `jwks`.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The answer is over the size limit (1 MiB).
    #[error("{what} answer refused: {message}")]
    TooLarge {
        /// `discovery` or `jwks`.
        what: &'static str,
        /// How it is too large.
        message: String,
    },
    /// The document's `issuer` is not the configured one.
    #[error("issuer is {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's.
        found: String,
    },
    /// A required endpoint is missing.
    #[error("{0} is missing")]
    MissingEndpoint(&'static str),
    /// An endpoint is not a URL.
    #[error("{field} is not a valid URL")]
    InvalidUrl {
        /// The metadata field.
        field: &'static str,
    },
    /// An endpoint is plain http on a host that is not loopback.
    #[error("{field} must be https (plain http only on loopback): {url}")]
    Insecure {
        /// The metadata field.
        field: &'static str,
        /// The URL.
        url: String,
    },
    /// `response_types_supported` does not list `code`.
    #[error("response_types_supported does not contain code")]
    NoCodeResponseType,
}

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    /// Not a compact JWS with JSON header and claims.
    #[error("malformed")]
    Malformed,
    /// Signed with another algorithm than `id_token_signed_response_alg`. `found` is the
    /// provider's text: quoted and escaped, so the log line stays one line.
    #[error("signed with {found:?}, expected {expected}")]
    Algorithm {
        /// The configured algorithm.
        expected: &'static str,
        /// The header's.
        found: String,
    },
    /// No key of the provider's JWKS matches the header's `kid` (after one refetch).
    #[error("signed with a key not in the provider's JWKS")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `iss` is not the configured issuer.
    #[error("iss is {found:?}, expected {expected:?}")]
    Issuer {
        /// The configured issuer.
        expected: String,
        /// The token's (empty when missing).
        found: String,
    },
    /// `aud` does not contain our client id.
    #[error("aud does not contain our client_id")]
    Audience,
    /// `azp` is not our client id (or missing while `aud` has several values).
    #[error("azp is not our client_id")]
    AuthorizedParty,
    /// `exp` is in the past (beyond the leeway) or missing.
    #[error("expired")]
    Expired,
    /// `iat` is missing or not a number.
    #[error("iat is missing")]
    MissingIssuedAt,
    /// `nbf` is in the future (beyond the leeway).
    #[error("not valid yet (nbf)")]
    NotYetValid,
    /// `nonce` is not the session's.
    #[error("nonce does not match")]
    Nonce,
    /// `at_hash` does not match the access token.
    #[error("at_hash does not match the access token")]
    AccessTokenHash,
    /// `c_hash` does not match the authorization code.
    #[error("c_hash does not match the authorization code")]
    CodeHash,
    /// `sub` is missing or not a string.
    #[error("sub is missing")]
    MissingSubject,
}

/// Why the userinfo answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    /// Not a 2xx answer.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// Not a JSON object (a signed `application/jwt` answer is not supported).
    #[error("not a JSON object: {0}")]
    Json(String),
    /// The answer is over the size limit (1 MiB).
    #[error("answer refused: {0}")]
    TooLarge(String),
    /// Its `sub` differs from the ID token's.
    #[error("sub does not match the ID token's")]
    SubjectMismatch,
}

/// Why claims could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    /// A `require`d attribute (or the subject) is missing or empty.
    #[error("the provider did not send the {attribute}")]
    MissingRequired {
        /// `subject`, `localpart`, `displayname` or `email`.
        attribute: &'static str,
    },
    /// The localpart is not a valid Matrix username.
    #[error("{value:?} is not a valid Matrix username")]
    InvalidLocalpart {
        /// The lower-cased value.
        value: String,
    },
    /// A template failed for another reason than a missing claim.
    #[error("the {attribute} template failed: {message}")]
    Template {
        /// The attribute.
        attribute: &'static str,
        /// minijinja's message.
        message: String,
    },
}

impl ClaimsError {
    /// A stable snake_case kind for log lines.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingRequired { .. } => "missing_claim",
            Self::InvalidLocalpart { .. } => "invalid_localpart",
            Self::Template { .. } => "claims_template_failed",
        }
    }
}
