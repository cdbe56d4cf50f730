//! The device authorization grant's pages (RFC 8628 §3.3; docs/protocol.md#pages): the code entry
//! page (`/link`), the approval page (`/device/{grant_id}`) and the page after a decision.

use serde::Serialize;

use super::{
    ClientView, FormError, SAMPLE_CSRF, SAMPLE_PREFIX, ScopeView, UserView, describe_scopes,
    device_id_of,
};

/// The code entry page: one field for the code the device shows.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceLinkContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/link`).
    pub form_action: String,
    /// The code to fill in (the last attempt, as typed).
    pub code: String,
    /// Problems with the last attempt.
    pub errors: Vec<FormError>,
}

impl DeviceLinkContext {
    /// The page after a code nobody asked for.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/link"),
            code: "ABCD-EFGX".to_owned(),
            errors: vec![FormError::field(
                "code",
                "No sign-in request has this code. Check the code shown on your device.",
            )],
        }
    }
}

/// The approval page: which client on which device asks, from where, for what; Allow and Deny.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceConsentContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of both forms.
    pub csrf_token: String,
    /// Where both forms post (`/auth/device/{grant_id}`), with `action=allow` or `deny`.
    pub form_action: String,
    /// The client asking.
    pub client: ClientView,
    /// The requested scopes in words ([`describe_scopes`]).
    pub scopes: Vec<ScopeView>,
    /// The device ID of the device scope, if any ([`device_id_of`]).
    pub device_id: Option<String>,
    /// The user code as the device shows it (`ABCD-EFGH`).
    pub user_code: String,
    /// The address the device asked from, if known.
    pub ip_address: Option<String>,
    /// The device's `User-Agent`, if it sent one.
    pub user_agent: Option<String>,
    /// When the device asked, in words ([`time_ago`]).
    pub requested: String,
    /// The signed-in user.
    pub user: UserView,
}

impl DeviceConsentContext {
    /// Element X on a new phone asking for API access and a device.
    pub fn sample() -> Self {
        let scope = "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ";
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/device/01J0000000000000000000GRNT"),
            client: ClientView::sample(),
            scopes: describe_scopes(scope),
            device_id: device_id_of(scope),
            user_code: "ABCD-EFGH".to_owned(),
            ip_address: Some("192.0.2.7".to_owned()),
            user_agent: Some("Element X/25.01 (Android 15)".to_owned()),
            requested: time_ago(0, 2 * 60 * 1000 + 5_000),
            user: UserView::sample(),
        }
    }
}

/// The page after the person allowed or denied a device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDoneContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// Whether the device was allowed in (else it was denied).
    pub approved: bool,
}

impl DeviceDoneContext {
    /// A device allowed in.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            approved: true,
        }
    }
}

/// How long before `now` `then` was, in words ("just now", "1 minute ago", "7 minutes ago", …);
/// both in milliseconds. A device request lives 10 minutes, so minutes are enough.
pub fn time_ago(then: i64, now: i64) -> String {
    let minutes = now.saturating_sub(then).max(0) / 60_000;
    match minutes {
        0 => "just now".to_owned(),
        1 => "1 minute ago".to_owned(),
        _ => format!("{minutes} minutes ago"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_told_in_whole_minutes() {
        assert_eq!(time_ago(1_000, 1_000), "just now");
        assert_eq!(time_ago(0, 59_999), "just now");
        assert_eq!(time_ago(0, 60_000), "1 minute ago");
        assert_eq!(time_ago(0, 9 * 60_000 + 59_000), "9 minutes ago");
        assert_eq!(time_ago(5_000, 0), "just now", "a clock step back");
    }
}
