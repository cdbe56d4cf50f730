//! [`HomeserverError`]: why a homeserver call failed, and whether retrying may help.

use std::time::Duration;

/// A failed homeserver call. Every variant names the call (`provision_user`…).
#[derive(Debug, thiserror::Error)]
pub enum HomeserverError {
    /// No connection could be made, or it broke before an answer arrived.
    #[error("{call}: the homeserver is unreachable")]
    Unreachable {
        /// The call.
        call: &'static str,
        /// The transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No complete answer within the time limit.
    #[error("{call}: the homeserver did not answer within {timeout:?}")]
    Timeout {
        /// The call.
        call: &'static str,
        /// The limit that passed.
        timeout: Duration,
    },
    /// An answer with a status the call does not expect (errors such as `404 M_NOT_FOUND`).
    #[error("{call}: the homeserver answered {status}{}", describe(.errcode.as_deref(), .message.as_deref()))]
    Status {
        /// The call.
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// The Matrix `errcode`, when the body was Matrix error JSON.
        errcode: Option<String>,
        /// The Matrix `error` text.
        message: Option<String>,
    },
    /// An expected status with a body that does not parse, or an unexpected success status.
    #[error("{call}: unexpected answer from the homeserver: {reason}")]
    BadResponse {
        /// The call.
        call: &'static str,
        /// What was wrong.
        reason: String,
    },
}

fn describe(errcode: Option<&str>, message: Option<&str>) -> String {
    match (errcode, message) {
        (Some(errcode), Some(message)) => format!(" {errcode}: {message}"),
        (Some(errcode), None) => format!(" {errcode}"),
        (None, Some(message)) => format!(": {message}"),
        (None, None) => String::new(),
    }
}

impl HomeserverError {
    /// The Matrix `errcode` of a [`HomeserverError::Status`].
    pub fn errcode(&self) -> Option<&str> {
        match self {
            Self::Status { errcode, .. } => errcode.as_deref(),
            _ => None,
        }
    }

    /// Whether this is the homeserver's "no such user" (`404 M_NOT_FOUND`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }

    /// Whether the same call may succeed later (no connection, timeout, 5xx, 429): what a job
    /// queue retries. A 4xx is the request's fault and will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::BadResponse { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, errcode: Option<&str>) -> HomeserverError {
        HomeserverError::Status {
            call: "provision_user",
            status,
            errcode: errcode.map(str::to_owned),
            message: Some("User not found".to_owned()),
        }
    }

    #[test]
    fn status_errors_name_the_call_status_and_errcode() {
        assert_eq!(
            status(404, Some("M_NOT_FOUND")).to_string(),
            "provision_user: the homeserver answered 404 M_NOT_FOUND: User not found"
        );
    }

    #[test]
    fn only_server_side_failures_are_transient() {
        assert!(status(503, None).is_transient());
        assert!(status(429, Some("M_LIMIT_EXCEEDED")).is_transient());
        assert!(!status(404, Some("M_NOT_FOUND")).is_transient());
        assert!(status(404, Some("M_NOT_FOUND")).is_not_found());
        let timeout = HomeserverError::Timeout {
            call: "query_user",
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.is_transient());
        assert_eq!(timeout.errcode(), None);
    }
}
