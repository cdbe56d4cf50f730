//! OAuth 2.0 scopes (RFC 6749 §3.3) and the Matrix scopes of MSC2967
//! (docs/protocol.md#scopes-and-policy). A [`Scope`] is a set of tokens: parsing ignores order and
//! repeated tokens, and printing gives the tokens sorted and space-separated, which is also how a
//! scope is stored.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// `openid`: ask for an ID token.
pub const OPENID: &str = "openid";
/// `email`: the `email` claim.
pub const EMAIL: &str = "email";
/// Access to the Matrix client-server API, stable form.
pub const API_STABLE: &str = "urn:matrix:client:api:*";
/// Access to the Matrix client-server API, unstable (MSC2967) form.
pub const API_UNSTABLE: &str = "urn:matrix:org.matrix.msc2967.client:api:*";
/// Prefix of the stable device scope; the device ID follows.
pub const DEVICE_STABLE_PREFIX: &str = "urn:matrix:client:device:";
/// Prefix of the unstable (MSC2967) device scope; the device ID follows.
pub const DEVICE_UNSTABLE_PREFIX: &str = "urn:matrix:org.matrix.msc2967.client:device:";
/// Synapse admin API access.
pub const SYNAPSE_ADMIN: &str = "urn:synapse:admin:*";
/// MAS admin access.
pub const MAS_ADMIN: &str = "urn:mas:admin";

/// The shortest device ID the policy accepts in a device scope
/// (docs/protocol.md#scopes-and-policy).
pub const MIN_DEVICE_ID_LEN: usize = 10;

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope token {0:?}")]
pub struct InvalidScope(pub String);

/// One scope token: non-empty, printable ASCII without space, `"` or `\` (RFC 6749 NQCHAR).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeToken(String);

impl ScopeToken {
    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The device ID if this is a device scope (either prefix), whatever its form.
    pub fn device_id(&self) -> Option<&str> {
        self.0
            .strip_prefix(DEVICE_STABLE_PREFIX)
            .or_else(|| self.0.strip_prefix(DEVICE_UNSTABLE_PREFIX))
    }

    /// Whether this is a stable Matrix scope (`urn:matrix:client:…`).
    pub fn is_stable_matrix(&self) -> bool {
        self.0.starts_with("urn:matrix:client:")
    }

    /// Whether this is an unstable Matrix scope (`urn:matrix:org.matrix.msc2967.client:…`).
    pub fn is_unstable_matrix(&self) -> bool {
        self.0.starts_with("urn:matrix:org.matrix.msc2967.client:")
    }
}

impl FromStr for ScopeToken {
    type Err = InvalidScope;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        let valid = !token.is_empty()
            && token
                .bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E));
        if valid {
            Ok(Self(token.to_owned()))
        } else {
            Err(InvalidScope(token.to_owned()))
        }
    }
}

impl fmt::Display for ScopeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of scope tokens. Parsed from and printed as the space-separated wire form;
/// serialized with serde as that string too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<ScopeToken>);

impl Scope {
    /// The empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many distinct tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The tokens, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &ScopeToken> {
        self.0.iter()
    }

    /// Whether `token` is in the set.
    pub fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|t| t.as_str() == token)
    }

    /// Adds a token; returns whether it was new.
    pub fn insert(&mut self, token: ScopeToken) -> bool {
        self.0.insert(token)
    }

    /// Whether the stable client-server API scope is present.
    pub fn has_stable_api(&self) -> bool {
        self.contains(API_STABLE)
    }

    /// Whether the unstable client-server API scope is present.
    pub fn has_unstable_api(&self) -> bool {
        self.contains(API_UNSTABLE)
    }

    /// Whether either client-server API scope is present.
    pub fn has_api(&self) -> bool {
        self.has_stable_api() || self.has_unstable_api()
    }

    /// Whether `urn:synapse:admin:*` is present.
    pub fn has_synapse_admin(&self) -> bool {
        self.contains(SYNAPSE_ADMIN)
    }

    /// Whether `openid` is present (an ID token is wanted).
    pub fn has_openid(&self) -> bool {
        self.contains(OPENID)
    }

    /// The device IDs of every device scope, stable and unstable, in token order (the
    /// policy allows one device scope per request, see [`Scope::device_id`]).
    pub fn device_ids(&self) -> Vec<&str> {
        self.0.iter().filter_map(ScopeToken::device_id).collect()
    }

    /// The device ID when there is exactly one device scope; `None` with none or several.
    pub fn device_id(&self) -> Option<&str> {
        match self.device_ids().as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Whether stable and unstable Matrix scopes are mixed (a policy violation).
    pub fn mixes_stable_and_unstable(&self) -> bool {
        self.0.iter().any(ScopeToken::is_stable_matrix)
            && self.0.iter().any(ScopeToken::is_unstable_matrix)
    }

    /// The scope as introspection reports it (docs/protocol.md#introspection): both the stable and
    /// the unstable forms of the API scope and of every device scope, everything else as is.
    pub fn normalize_for_introspection(&self) -> Self {
        let mut normalized = self.clone();
        if self.has_api() {
            normalized.insert(ScopeToken(API_STABLE.to_owned()));
            normalized.insert(ScopeToken(API_UNSTABLE.to_owned()));
        }
        for device_id in self.device_ids() {
            normalized.insert(ScopeToken(format!("{DEVICE_STABLE_PREFIX}{device_id}")));
            normalized.insert(ScopeToken(format!("{DEVICE_UNSTABLE_PREFIX}{device_id}")));
        }
        normalized
    }
}

/// Whether `device_id` may appear in a device scope: at least [`MIN_DEVICE_ID_LEN`] characters of
/// `[A-Za-z0-9._~!$&'()*+,;=:@/-]` (upstream MAS's policy), at most 255 (Synapse).
pub fn is_valid_device_id(device_id: &str) -> bool {
    (MIN_DEVICE_ID_LEN..=255).contains(&device_id.len())
        && device_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~!$&'()*+,;=:@/-".contains(&b))
}

impl FromStr for Scope {
    type Err = InvalidScope;

    /// Splits on spaces; empty pieces (repeated spaces) are skipped, so `""` is the empty
    /// scope.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(' ')
            .filter(|piece| !piece.is_empty())
            .map(ScopeToken::from_str)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, token) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(token.as_str())?;
        }
        Ok(())
    }
}

impl FromIterator<ScopeToken> for Scope {
    fn from_iter<I: IntoIterator<Item = ScopeToken>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(text: &str) -> Scope {
        text.parse().unwrap()
    }

    #[test]
    fn parsing_sorts_and_deduplicates_and_printing_joins_with_spaces() {
        let parsed = scope("openid  urn:matrix:client:api:* openid");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed.to_string(), "openid urn:matrix:client:api:*");
        assert_eq!(scope(""), Scope::new());
        assert_eq!(scope("").to_string(), "");
    }

    #[test]
    fn tokens_with_forbidden_characters_are_refused() {
        for bad in ["a\"b", "back\\slash", "tab\there", "é"] {
            assert_eq!(
                bad.parse::<Scope>(),
                Err(InvalidScope(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn api_scope_is_found_in_either_form() {
        assert!(scope(API_STABLE).has_stable_api());
        assert!(!scope(API_STABLE).has_unstable_api());
        assert!(scope(API_UNSTABLE).has_api());
        assert!(!scope("openid").has_api());
    }

    #[test]
    fn device_id_comes_from_either_prefix_and_only_when_single() {
        let stable = scope("urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ");
        assert_eq!(stable.device_id(), Some("ABCDEFGHIJ"));
        let unstable = scope("urn:matrix:org.matrix.msc2967.client:device:XYZ0123456");
        assert_eq!(unstable.device_id(), Some("XYZ0123456"));
        let two = scope("urn:matrix:client:device:AAAAAAAAAA urn:matrix:client:device:BBBBBBBBBB");
        assert_eq!(two.device_ids().len(), 2);
        assert_eq!(two.device_id(), None);
        assert_eq!(scope("openid").device_id(), None);
    }

    #[test]
    fn mixing_stable_and_unstable_matrix_scopes_is_detected() {
        assert!(
            scope("urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:device:ABCDEFGHIJ")
                .mixes_stable_and_unstable()
        );
        assert!(
            !scope("openid urn:matrix:client:api:* urn:synapse:admin:*")
                .mixes_stable_and_unstable()
        );
    }

    #[test]
    fn introspection_form_has_both_api_and_device_forms() {
        let normalized = scope(
            "openid urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:client:device:DEV1234567",
        )
        .normalize_for_introspection();
        assert_eq!(
            normalized.to_string(),
            "openid urn:matrix:client:api:* urn:matrix:client:device:DEV1234567 \
             urn:matrix:org.matrix.msc2967.client:api:* \
             urn:matrix:org.matrix.msc2967.client:device:DEV1234567"
        );
        assert_eq!(
            scope("openid").normalize_for_introspection(),
            scope("openid")
        );
    }

    #[test]
    fn admin_scope_is_recognized() {
        assert!(scope("urn:synapse:admin:* openid").has_synapse_admin());
        assert!(!scope(MAS_ADMIN).has_synapse_admin());
    }

    #[test]
    fn device_ids_follow_the_policy_character_class_and_length() {
        assert!(is_valid_device_id("ABCDEFGHIJ"));
        assert!(is_valid_device_id("a.b_c~d!$&'()*+,;=:@/-"));
        assert!(!is_valid_device_id("SHORT"));
        assert!(!is_valid_device_id("with space in it"));
        assert!(!is_valid_device_id(&"A".repeat(256)));
    }

    #[test]
    fn serde_uses_the_wire_string() {
        let parsed: Scope = serde_json::from_str("\"email openid\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"email openid\"");
        assert!(serde_json::from_str::<Scope>("\"a\\\\b\"").is_err());
    }
}
