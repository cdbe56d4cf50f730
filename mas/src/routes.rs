//! Every path MAS serves, written once, and the [`UrlBuilder`] that turns them into public
//! URLs. Handlers, routers and (later) the discovery document all take paths from here, so
//! they cannot drift apart. Paths are relative to the listener's prefix (`/auth`).

use std::sync::Arc;

use url::Url;

/// `GET /health`: readiness probe (docs/protocol.md#pages).
pub const HEALTH: &str = "/health";

// --- Human pages (oauth-web) ---

/// `GET /`: the index page (docs/protocol.md#pages).
pub const INDEX: &str = "/";
/// `GET/POST /login`: the login page; the query carries a post-auth action
/// (docs/protocol.md#pages).
pub const LOGIN: &str = "/login";
/// `POST /logout`: ends the browser session.
pub const LOGOUT: &str = "/logout";
/// `GET /authorize`: the OAuth 2.0 authorization endpoint (RFC 6749 §3.1,
/// docs/protocol.md#authorization-endpoint).
pub const AUTHORIZE: &str = "/authorize";
/// `GET/POST /consent/{grant_id}`: the consent page (docs/protocol.md#consent), as a route pattern.
pub const CONSENT: &str = "/consent/{grant_id}";
/// `GET /assets/*`: static files; the route pattern.
pub const ASSETS: &str = "/assets/{*path}";

/// The consent page of one grant (a path for [`UrlBuilder`]).
pub fn consent(grant_id: ulid::Ulid) -> String {
    format!("/consent/{grant_id}")
}

/// `GET/POST /link`: the device authorization grant's code-entry page, its `verification_uri`
/// (RFC 8628 §3.2; docs/protocol.md#device-authorization-grant); `?code=` fills in the code.
pub const LINK: &str = "/link";
/// `GET/POST /device/{grant_id}`: the approval page of one device grant, as a route pattern.
pub const DEVICE_CONSENT: &str = "/device/{grant_id}";

/// The approval page of one device grant (a path for [`UrlBuilder`]).
pub fn device_consent(grant_id: ulid::Ulid) -> String {
    format!("/device/{grant_id}")
}

/// `GET/POST /register`: the registration form (docs/protocol.md#registration); the query
/// carries a post-auth action.
pub const REGISTER: &str = "/register";
/// `GET/POST /register/{registration_id}/verify-email`: the mailed code of a registration.
pub const REGISTER_VERIFY_EMAIL: &str = "/register/{registration_id}/verify-email";
/// `POST /register/{registration_id}/verify-email/resend`: mails a new code.
pub const REGISTER_VERIFY_EMAIL_RESEND: &str = "/register/{registration_id}/verify-email/resend";
/// `GET/POST /register/{registration_id}/display-name`: the last step, which creates the
/// account.
pub const REGISTER_DISPLAY_NAME: &str = "/register/{registration_id}/display-name";

/// The code page of one registration (a path for [`UrlBuilder`]).
pub fn register_verify_email(registration_id: ulid::Ulid) -> String {
    format!("/register/{registration_id}/verify-email")
}

/// The "send a new code" form of one registration (a path for [`UrlBuilder`]).
pub fn register_verify_email_resend(registration_id: ulid::Ulid) -> String {
    format!("/register/{registration_id}/verify-email/resend")
}

/// The display-name step of one registration (a path for [`UrlBuilder`]).
pub fn register_display_name(registration_id: ulid::Ulid) -> String {
    format!("/register/{registration_id}/display-name")
}

// --- end of the human pages ---

// --- Login through upstream OpenID providers (upstream) ---

/// `GET /upstream/authorize/{provider_id}`: starts a login at an upstream provider
/// (docs/protocol.md#upstream-login); the query carries a post-auth action.
pub const UPSTREAM_AUTHORIZE: &str = "/upstream/authorize/{provider_id}";
/// `GET/POST /upstream/callback/{provider_id}`: the provider's answer (query or `form_post`).
pub const UPSTREAM_CALLBACK: &str = "/upstream/callback/{provider_id}";
/// `GET/POST /upstream/link/{link_id}`: confirm the account an upstream login creates.
pub const UPSTREAM_LINK: &str = "/upstream/link/{link_id}";

/// The start of a login at one provider (a path for [`UrlBuilder`]).
pub fn upstream_authorize(provider_id: &str) -> String {
    format!("/upstream/authorize/{provider_id}")
}

/// The callback of one provider: the redirect URI registered there.
pub fn upstream_callback(provider_id: &str) -> String {
    format!("/upstream/callback/{provider_id}")
}

/// The confirmation page of one link.
pub fn upstream_link(link_id: ulid::Ulid) -> String {
    format!("/upstream/link/{link_id}")
}

// --- end of the upstream login ---

// --- Legacy Matrix SSO login (compat-sso) ---

/// `GET /_matrix/client/{v}/login/sso/redirect`: starts a legacy SSO login
/// (docs/protocol.md#compat-layer).
pub const COMPAT_SSO_REDIRECT: &str = "/_matrix/client/{version}/login/sso/redirect";
/// The same with a trailing slash.
pub const COMPAT_SSO_REDIRECT_SLASH: &str = "/_matrix/client/{version}/login/sso/redirect/";
/// The same with an identity provider id (ignored).
pub const COMPAT_SSO_REDIRECT_IDP: &str = "/_matrix/client/{version}/login/sso/redirect/{idp}";
/// `GET/POST /complete-compat-sso/{id}`: the "continue to the application" page.
pub const COMPLETE_COMPAT_SSO: &str = "/complete-compat-sso/{id}";

/// The "continue to the application" page of one legacy SSO login.
pub fn complete_compat_sso(id: ulid::Ulid) -> String {
    format!("/complete-compat-sso/{id}")
}

// --- end of the legacy Matrix SSO login ---

// --- Matrix compat layer (compat-api) ---

/// `GET/POST /_matrix/client/{v}/login`: legacy login (docs/protocol.md#compat-layer).
pub const COMPAT_LOGIN: &str = "/_matrix/client/{version}/login";
/// `POST /_matrix/client/{v}/logout`: ends the compat session of the bearer token.
pub const COMPAT_LOGOUT: &str = "/_matrix/client/{version}/logout";
/// `POST /_matrix/client/{v}/logout/all`: ends every compat session of the user.
pub const COMPAT_LOGOUT_ALL: &str = "/_matrix/client/{version}/logout/all";
/// `POST /_matrix/client/{v}/refresh`: rotates a compat refresh token.
pub const COMPAT_REFRESH: &str = "/_matrix/client/{version}/refresh";

// --- end of the Matrix compat layer ---

// --- OAuth 2.0 API and discovery (oauth-api) ---

/// `GET /.well-known/openid-configuration`: provider metadata (docs/protocol.md#discovery).
pub const OIDC_DISCOVERY: &str = "/.well-known/openid-configuration";
/// `GET /.well-known/webfinger`: the issuer link (OpenID Connect Discovery §2).
pub const WEBFINGER: &str = "/.well-known/webfinger";
/// `GET /oauth2/keys.json`: the JWKS.
pub const OAUTH2_KEYS: &str = "/oauth2/keys.json";
/// `POST /oauth2/token`: the token endpoint (docs/protocol.md#token-endpoint).
pub const OAUTH2_TOKEN: &str = "/oauth2/token";
/// `POST /oauth2/device`: the device authorization endpoint (RFC 8628 §3.1).
pub const OAUTH2_DEVICE: &str = "/oauth2/device";
/// `POST /oauth2/registration`: dynamic client registration (RFC 7591, MSC2966).
pub const OAUTH2_REGISTRATION: &str = "/oauth2/registration";
/// `POST /oauth2/introspect`: token introspection (RFC 7662, docs/protocol.md#introspection).
pub const OAUTH2_INTROSPECT: &str = "/oauth2/introspect";
/// `POST /oauth2/revoke`: token revocation (RFC 7009, MSC4254).
pub const OAUTH2_REVOKE: &str = "/oauth2/revoke";
/// `GET/POST /oauth2/userinfo`: OpenID Connect userinfo.
pub const OAUTH2_USERINFO: &str = "/oauth2/userinfo";
/// The account pages (MSC4191 `account_management_uri`; deep links add `?action=…`).
pub const ACCOUNT: &str = "/account/";
/// `GET /account`: redirects to [`ACCOUNT`].
pub const ACCOUNT_BARE: &str = "/account";
/// `GET /account/{*rest}`: the account page too (upstream's single-page app serves every path
/// under it).
pub const ACCOUNT_REST: &str = "/account/{*rest}";
/// `POST /account/sessions/{session_id}/end`: signs out one OAuth or compat session.
pub const ACCOUNT_SESSION_END: &str = "/account/sessions/{session_id}/end";
/// `POST /account/cross-signing-reset`: lets the user reset their identity
/// (docs/protocol.md#pages).
pub const ACCOUNT_CROSS_SIGNING_RESET: &str = "/account/cross-signing-reset";

/// `POST /account/displayname`: sets or clears the display name in the homeserver.
pub const ACCOUNT_DISPLAYNAME: &str = "/account/displayname";
/// `POST /account/emails`: starts adding an email address (a code is mailed).
pub const ACCOUNT_EMAILS: &str = "/account/emails";
/// `GET/POST /account/emails/verify/{authentication_id}`: the code-entry page of an address
/// being added.
pub const ACCOUNT_EMAIL_VERIFY: &str = "/account/emails/verify/{authentication_id}";
/// `POST /account/emails/verify/{authentication_id}/resend`: mails a new code.
pub const ACCOUNT_EMAIL_RESEND: &str = "/account/emails/verify/{authentication_id}/resend";
/// `POST /account/emails/{email_id}/remove`: removes one address.
pub const ACCOUNT_EMAIL_REMOVE: &str = "/account/emails/{email_id}/remove";
/// `POST /account/emails/{email_id}/primary`: makes one verified address the primary one.
pub const ACCOUNT_EMAIL_PRIMARY: &str = "/account/emails/{email_id}/primary";
/// `GET/POST /account/deactivate`: closes the account (docs/protocol.md#pages).
pub const ACCOUNT_DEACTIVATE: &str = "/account/deactivate";

/// The code-entry page of one address being added (a path for [`UrlBuilder`]).
pub fn account_email_verify(authentication_id: ulid::Ulid) -> String {
    format!("/account/emails/verify/{authentication_id}")
}

/// The "send a new code" form of one address being added (a path for [`UrlBuilder`]).
pub fn account_email_resend(authentication_id: ulid::Ulid) -> String {
    format!("/account/emails/verify/{authentication_id}/resend")
}

/// The removal form of one address (a path for [`UrlBuilder`]).
pub fn account_email_remove(email_id: ulid::Ulid) -> String {
    format!("/account/emails/{email_id}/remove")
}

/// The "make primary" form of one address (a path for [`UrlBuilder`]).
pub fn account_email_primary(email_id: ulid::Ulid) -> String {
    format!("/account/emails/{email_id}/primary")
}
/// `GET/POST /account/password`: the password change page (docs/protocol.md#pages); the router
/// sends `/.well-known/change-password` here.
pub const ACCOUNT_PASSWORD: &str = "/account/password";
/// `GET/POST /recover`: asks for a password recovery link by email (docs/protocol.md#pages).
pub const RECOVER: &str = "/recover";
/// `GET/POST /recover/complete?ticket=…`: the recovery link's new-password form.
pub const RECOVER_COMPLETE: &str = "/recover/complete";

/// The sign-out form of one session (a path for [`UrlBuilder`]).
pub fn account_session_end(session_id: ulid::Ulid) -> String {
    format!("/account/sessions/{session_id}/end")
}

// --- end of the OAuth 2.0 API ---

/// Builds absolute and prefixed URLs from `http.public_base`, never from a request's `Host`
/// (Synapse fetches discovery over loopback and republishes it verbatim).
#[derive(Debug, Clone)]
pub struct UrlBuilder {
    base: Arc<Url>,
}

impl UrlBuilder {
    /// A builder for `public_base` (a trailing slash is added when missing).
    pub fn new(mut public_base: Url) -> Self {
        if !public_base.path().ends_with('/') {
            let path = format!("{}/", public_base.path());
            public_base.set_path(&path);
        }
        Self {
            base: Arc::new(public_base),
        }
    }

    /// The public base, with its trailing slash.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The base's path without its trailing slash (`/auth`, or empty at the root): what every
    /// link, redirect and cookie `Path` starts with.
    pub fn prefix(&self) -> &str {
        self.base.path().trim_end_matches('/')
    }

    /// `path` (from this module) as an absolute public URL.
    pub fn absolute(&self, path: &str) -> Url {
        let mut url = Url::clone(&self.base);
        url.set_path(&format!(
            "{}{}",
            self.base.path(),
            path.trim_start_matches('/')
        ));
        url
    }

    /// `path` with the prefix in front, for same-origin links and redirects.
    pub fn relative(&self, path: &str) -> String {
        format!("{}/{}", self.prefix(), path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(base: &str) -> UrlBuilder {
        UrlBuilder::new(Url::parse(base).unwrap())
    }

    #[test]
    fn absolute_urls_keep_the_base_path() {
        let urls = builder("https://matrix.example.com/auth/");
        assert_eq!(
            urls.absolute(HEALTH).as_str(),
            "https://matrix.example.com/auth/health"
        );
    }

    #[test]
    fn relative_urls_carry_the_prefix() {
        assert_eq!(
            builder("http://localhost:8000/auth/").relative(HEALTH),
            "/auth/health"
        );
        assert_eq!(
            builder("http://localhost:8080/").relative(HEALTH),
            "/health"
        );
    }

    #[test]
    fn a_base_without_trailing_slash_is_completed() {
        let urls = builder("http://localhost:8000/auth");
        assert_eq!(urls.prefix(), "/auth");
        assert_eq!(urls.absolute("x").as_str(), "http://localhost:8000/auth/x");
    }
}
