//! Upstream MAS's default scope policy (docs/protocol.md#scopes-and-policy), in Rust (upstream
//! evaluates Rego; we only need its default rules): who may be granted which scope, and the
//! structural rules for Matrix scopes (one device scope with a valid id, beside an API scope;
//! stable and unstable forms not mixed). Every violation is reported, not just the first, so a page
//! can list them.
//!
//! Entry points: [`authorization_grant`] for interactive grants (authorization code, device
//! code) and [`client_credentials`] for a client acting for itself.

use std::fmt;

use crate::model::scope::{
    self, API_STABLE, API_UNSTABLE, DEVICE_STABLE_PREFIX, DEVICE_UNSTABLE_PREFIX, MAS_ADMIN,
    SYNAPSE_ADMIN,
};
use crate::model::{Scope, User};

/// `urn:mas:graphql:*`: anyone may ask for it.
const MAS_GRAPHQL: &str = "urn:mas:graphql:*";

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A scope this requester may not have (unknown, admin without the right, a Matrix scope
    /// without a user).
    ScopeNotAllowed(String),
    /// A device scope whose id is too short, too long, or has characters outside the class.
    InvalidDeviceId(String),
    /// More than one device scope.
    TooManyDeviceScopes,
    /// A device scope without a client-server API scope.
    DeviceScopeWithoutApiScope,
    /// Stable and unstable Matrix scopes in one request.
    MixedStableAndUnstable,
    /// A guest account (imported from Synapse) asked for a session.
    GuestNotAllowed,
}

impl Violation {
    /// A short machine code, as upstream's policy reports it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ScopeNotAllowed(_) => "scope-not-allowed",
            Self::InvalidDeviceId(_) => "invalid-device-id",
            Self::TooManyDeviceScopes => "too-many-device-scopes",
            Self::DeviceScopeWithoutApiScope => "device-scope-without-api-scope",
            Self::MixedStableAndUnstable => "mixed-stable-and-unstable-scopes",
            Self::GuestNotAllowed => "guest-not-allowed",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ScopeNotAllowed(scope) => write!(f, "The scope \"{scope}\" is not allowed."),
            Self::InvalidDeviceId(id) => write!(
                f,
                "The device ID \"{id}\" is not valid: it needs at least {} characters of \
                 letters, digits and ._~!$&'()*+,;=:@/-",
                scope::MIN_DEVICE_ID_LEN
            ),
            Self::TooManyDeviceScopes => f.write_str("Only one device may be requested at a time."),
            Self::DeviceScopeWithoutApiScope => {
                f.write_str("A device was requested without access to the Matrix API.")
            }
            Self::MixedStableAndUnstable => {
                f.write_str("Stable and unstable Matrix scopes cannot be mixed in one request.")
            }
            Self::GuestNotAllowed => f.write_str("Guest accounts cannot sign in to applications."),
        }
    }
}

/// Who the grant is for.
#[derive(Debug, Clone, Copy)]
enum Requester<'a> {
    /// A user, through an interactive grant.
    User(&'a User),
    /// The client itself (`client_credentials`); `admin` when it is allowed `urn:mas:admin`.
    Client { admin: bool },
}

/// The policy for an interactive grant (authorization code or device code) for `user`.
pub fn authorization_grant(user: &User, scope: &Scope) -> Result<(), Vec<Violation>> {
    evaluate(Requester::User(user), scope)
}

/// The policy for a `client_credentials` grant: no Matrix or Synapse-admin scopes;
/// `urn:mas:admin` only when `admin_client` (listed in `policy.data.admin_clients`).
pub fn client_credentials(admin_client: bool, scope: &Scope) -> Result<(), Vec<Violation>> {
    evaluate(
        Requester::Client {
            admin: admin_client,
        },
        scope,
    )
}

fn evaluate(requester: Requester<'_>, scope: &Scope) -> Result<(), Vec<Violation>> {
    let mut violations = Vec::new();
    if let Requester::User(user) = requester
        && user.is_guest
    {
        violations.push(Violation::GuestNotAllowed);
    }
    for token in scope.iter() {
        let token = token.as_str();
        if !allowed(requester, token) {
            violations.push(Violation::ScopeNotAllowed(token.to_owned()));
        }
    }
    let device_ids = scope.device_ids();
    for id in &device_ids {
        if !scope::is_valid_device_id(id) {
            violations.push(Violation::InvalidDeviceId((*id).to_owned()));
        }
    }
    if device_ids.len() > 1 {
        violations.push(Violation::TooManyDeviceScopes);
    }
    if !device_ids.is_empty() && !scope.has_api() {
        violations.push(Violation::DeviceScopeWithoutApiScope);
    }
    if scope.mixes_stable_and_unstable() {
        violations.push(Violation::MixedStableAndUnstable);
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// Whether `requester` may have the scope `token` (the table in
/// docs/protocol.md#scopes-and-policy).
fn allowed(requester: Requester<'_>, token: &str) -> bool {
    let interactive_user = match requester {
        Requester::User(user) => Some(user),
        Requester::Client { .. } => None,
    };
    match token {
        "openid" | "email" | MAS_GRAPHQL => true,
        API_STABLE | API_UNSTABLE => interactive_user.is_some(),
        SYNAPSE_ADMIN => interactive_user.is_some_and(|user| user.can_request_admin),
        MAS_ADMIN => match requester {
            Requester::User(user) => user.can_request_admin,
            Requester::Client { admin } => admin,
        },
        _ if token.starts_with(DEVICE_STABLE_PREFIX)
            || token.starts_with(DEVICE_UNSTABLE_PREFIX) =>
        {
            // The id itself is checked separately, so that the message says what is wrong.
            interactive_user.is_some()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use ulid::Ulid;

    use super::*;

    fn user(can_request_admin: bool) -> User {
        User {
            id: Ulid::nil(),
            username: "alice".to_owned(),
            created_at: 0,
            locked_at: None,
            deactivated_at: None,
            can_request_admin,
            is_guest: false,
        }
    }

    fn scope(text: &str) -> Scope {
        text.parse().unwrap()
    }

    fn violations(user: &User, text: &str) -> Vec<Violation> {
        authorization_grant(user, &scope(text))
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn element_x_style_requests_are_allowed_in_both_forms() {
        let alice = user(false);
        for text in [
            "",
            "openid",
            "openid email urn:mas:graphql:*",
            "openid urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ",
            "openid urn:matrix:org.matrix.msc2967.client:api:* \
             urn:matrix:org.matrix.msc2967.client:device:a.b_c~d!$&'()*+,;=:@/-",
        ] {
            assert_eq!(authorization_grant(&alice, &scope(text)), Ok(()), "{text}");
        }
    }

    #[test]
    fn admin_scopes_need_can_request_admin() {
        let text = "openid urn:matrix:client:api:* urn:synapse:admin:* urn:mas:admin";
        assert_eq!(
            violations(&user(false), text),
            vec![
                Violation::ScopeNotAllowed(MAS_ADMIN.to_owned()),
                Violation::ScopeNotAllowed(SYNAPSE_ADMIN.to_owned()),
            ]
        );
        assert_eq!(authorization_grant(&user(true), &scope(text)), Ok(()));
    }

    #[test]
    fn two_device_scopes_are_refused() {
        let text = "urn:matrix:client:api:* urn:matrix:client:device:AAAAAAAAAA \
                    urn:matrix:client:device:BBBBBBBBBB";
        assert_eq!(
            violations(&user(false), text),
            vec![Violation::TooManyDeviceScopes]
        );
    }

    #[test]
    fn stable_and_unstable_scopes_are_not_mixed() {
        let text = "urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:device:ABCDEFGHIJ";
        assert_eq!(
            violations(&user(false), text),
            vec![Violation::MixedStableAndUnstable]
        );
    }

    #[test]
    fn device_ids_shorter_than_ten_or_with_other_characters_are_refused() {
        assert_eq!(
            violations(
                &user(false),
                "urn:matrix:client:api:* urn:matrix:client:device:SHORT"
            ),
            vec![Violation::InvalidDeviceId("SHORT".to_owned())]
        );
        let text = "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHI#";
        assert_eq!(
            violations(&user(false), text),
            vec![Violation::InvalidDeviceId("ABCDEFGHI#".to_owned())]
        );
    }

    #[test]
    fn a_device_scope_needs_an_api_scope() {
        assert_eq!(
            violations(&user(false), "openid urn:matrix:client:device:ABCDEFGHIJ"),
            vec![Violation::DeviceScopeWithoutApiScope]
        );
    }

    #[test]
    fn unknown_scopes_are_refused() {
        assert_eq!(
            violations(&user(true), "openid profile"),
            vec![Violation::ScopeNotAllowed("profile".to_owned())]
        );
    }

    #[test]
    fn guests_get_no_sessions() {
        let mut guest = user(false);
        guest.is_guest = true;
        assert_eq!(
            violations(&guest, "openid"),
            vec![Violation::GuestNotAllowed]
        );
    }

    #[test]
    fn client_credentials_get_no_matrix_or_synapse_admin_scopes() {
        let text = "urn:matrix:client:api:* urn:synapse:admin:*";
        assert_eq!(
            client_credentials(true, &scope(text)),
            Err(vec![
                Violation::ScopeNotAllowed(API_STABLE.to_owned()),
                Violation::ScopeNotAllowed(SYNAPSE_ADMIN.to_owned()),
            ])
        );
        assert_eq!(client_credentials(true, &scope("urn:mas:admin")), Ok(()));
        assert_eq!(
            client_credentials(false, &scope("urn:mas:admin")),
            Err(vec![Violation::ScopeNotAllowed(MAS_ADMIN.to_owned())])
        );
        assert_eq!(
            client_credentials(false, &scope("openid urn:mas:graphql:*")),
            Ok(())
        );
    }

    #[test]
    fn violations_read_as_sentences_with_codes() {
        let violation = Violation::InvalidDeviceId("SHORT".to_owned());
        assert!(violation.to_string().contains("at least 10 characters"));
        assert_eq!(violation.code(), "invalid-device-id");
    }
}
