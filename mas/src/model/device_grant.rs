//! Device authorization grants (RFC 8628; docs/protocol.md#device-authorization-grant): a device
//! without a browser asks for codes, a person approves on another device's browser, and the
//! device polls the token endpoint until it gets its tokens.

use ulid::Ulid;

use super::Scope;

/// How long the codes of a device authorization request can be used: 10 minutes
/// (docs/protocol.md#lifetimes), from the request to the token exchange.
pub const DEVICE_CODE_LIFETIME_MS: i64 = 10 * 60 * 1000;

/// The polling interval the device is told (`interval`, RFC 8628 §3.2), in seconds.
pub const DEVICE_CODE_POLL_INTERVAL_SECS: u64 = 5;

/// A poll sooner than this after the previous one is answered `slow_down` (RFC 8628 §3.5): the
/// interval less one second for timer slack on the device.
pub const DEVICE_CODE_MIN_POLL_GAP_MS: i64 = 4_000;

/// What a new device grant is made of: the request and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviceGrant {
    /// The client that asked.
    pub client_id: Ulid,
    /// The requested scope.
    pub scope: Scope,
    /// SHA-256 (hex) of the `device_code` handed to the device.
    pub device_code_sha256: String,
    /// The `user_code` (without its hyphen), typed or confirmed by the person.
    pub user_code: String,
    /// The requesting device's address, as the approval page shows it.
    pub ip_address: Option<String>,
    /// The requesting device's `User-Agent`.
    pub user_agent: Option<String>,
}

/// Where a device grant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceGrantStage {
    /// Waiting for the person (or expired while waiting).
    Pending,
    /// Approved; waiting for the device's next poll.
    Fulfilled,
    /// Denied by the person.
    Rejected,
    /// The device got its tokens.
    Exchanged,
}

/// A stored device grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// The row id.
    pub id: Ulid,
    /// The request.
    pub request: NewDeviceGrant,
    /// When the device asked.
    pub created_at: i64,
    /// When the codes stop working.
    pub expires_at: i64,
    /// When the person approved.
    pub fulfilled_at: Option<i64>,
    /// When the person denied.
    pub rejected_at: Option<i64>,
    /// When the device got its tokens.
    pub exchanged_at: Option<i64>,
    /// The device's last poll of the token endpoint.
    pub last_polled_at: Option<i64>,
    /// The browser session that approved or denied.
    pub user_session_id: Option<Ulid>,
    /// The OAuth session the exchange created.
    pub session_id: Option<Ulid>,
}

impl DeviceGrant {
    /// Its stage, from the timestamps.
    pub fn stage(&self) -> DeviceGrantStage {
        if self.exchanged_at.is_some() {
            DeviceGrantStage::Exchanged
        } else if self.rejected_at.is_some() {
            DeviceGrantStage::Rejected
        } else if self.fulfilled_at.is_some() {
            DeviceGrantStage::Fulfilled
        } else {
            DeviceGrantStage::Pending
        }
    }

    /// Whether the codes no longer work at `now`.
    pub fn expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// The user code as people see it: `ABCD-EFGH`.
    pub fn display_user_code(&self) -> String {
        display_user_code(&self.request.user_code)
    }
}

/// A stored user code as people see it: its two halves joined by a hyphen.
pub fn display_user_code(code: &str) -> String {
    let middle = code.len() / 2;
    match (code.get(..middle), code.get(middle..)) {
        (Some(head), Some(tail)) if !head.is_empty() => format!("{head}-{tail}"),
        _ => code.to_owned(),
    }
}

/// What a person typed, as stored: spaces and hyphens dropped, letters upper-cased. `None` when
/// nothing is left or it is longer than any code could be (a 64-character cap keeps lookups of
/// junk cheap).
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (!code.is_empty() && code.len() <= 64).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_shown_with_a_hyphen_and_read_back_without() {
        assert_eq!(display_user_code("ABCDEFGH"), "ABCD-EFGH");
        assert_eq!(display_user_code(""), "");
        assert_eq!(
            normalize_user_code(" abcd-efgh ").as_deref(),
            Some("ABCDEFGH")
        );
        assert_eq!(
            normalize_user_code("ab cd\tef-gh").as_deref(),
            Some("ABCDEFGH")
        );
        assert_eq!(normalize_user_code(" - "), None);
        assert_eq!(normalize_user_code(&"A".repeat(65)), None);
    }

    #[test]
    fn the_stage_follows_the_timestamps() {
        let mut grant = DeviceGrant {
            id: Ulid::nil(),
            request: NewDeviceGrant {
                client_id: Ulid::nil(),
                scope: Scope::default(),
                device_code_sha256: String::new(),
                user_code: "ABCDEFGH".to_owned(),
                ip_address: None,
                user_agent: None,
            },
            created_at: 0,
            expires_at: DEVICE_CODE_LIFETIME_MS,
            fulfilled_at: None,
            rejected_at: None,
            exchanged_at: None,
            last_polled_at: None,
            user_session_id: None,
            session_id: None,
        };
        assert_eq!(grant.stage(), DeviceGrantStage::Pending);
        assert!(!grant.expired(DEVICE_CODE_LIFETIME_MS - 1));
        assert!(grant.expired(DEVICE_CODE_LIFETIME_MS));
        grant.fulfilled_at = Some(1);
        assert_eq!(grant.stage(), DeviceGrantStage::Fulfilled);
        grant.exchanged_at = Some(2);
        assert_eq!(grant.stage(), DeviceGrantStage::Exchanged);
        grant.exchanged_at = None;
        grant.fulfilled_at = None;
        grant.rejected_at = Some(3);
        assert_eq!(grant.stage(), DeviceGrantStage::Rejected);
        assert_eq!(grant.display_user_code(), "ABCD-EFGH");
    }
}
