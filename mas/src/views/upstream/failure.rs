//! The refusals of an upstream login: each a page for the person (the error template, never a
//! 500) and exactly one `warn` line for the administrator with `provider`, a stable snake_case
//! `reason` and details. Details name claims, endpoints and error codes, never a token, a code
//! or a secret.

use std::fmt::Display;

use axum::http::StatusCode;

use crate::error::HtmlError;
use crate::upstream::{ClaimsError, Provider, UpstreamError};

/// Logs the refusal and builds its page.
fn refuse(
    provider: &str,
    reason: &'static str,
    details: &dyn Display,
    page: HtmlError,
) -> HtmlError {
    tracing::warn!(provider, reason, details = %details, "upstream login refused");
    page
}

/// A provider's free text (`error_description`) for the log: one line, at most 200
/// characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// The provider id of a request is not an enabled provider (404).
pub(super) fn unknown_provider(provider_id: &str) -> HtmlError {
    refuse(
        provider_id,
        "unknown_provider",
        &"no enabled provider has this id",
        HtmlError::new(
            StatusCode::NOT_FOUND,
            "Unknown sign-in provider",
            "This way of signing in is not available on this server. Go back and try again.",
        ),
    )
}

/// The provider client failed: unreachable or broken discovery (502), a refused code (400),
/// an ID token that does not verify (400), a userinfo answer that does not fit (502).
pub(super) fn upstream_error(provider: &Provider, error: &UpstreamError) -> HtmlError {
    let name = provider.display_name();
    let page = match error {
        UpstreamError::Unreachable { .. } | UpstreamError::Discovery(_) => HtmlError::new(
            StatusCode::BAD_GATEWAY,
            format!("{name} is not available"),
            format!(
                "This server could not reach {name} to sign you in. Try again in a few \
                 minutes; if it keeps failing, tell the administrator of this server."
            ),
        ),
        UpstreamError::TokenEndpoint { error: code, .. } => HtmlError::bad_request(
            "Sign-in failed",
            format!(
                "{name} refused to complete the sign-in (error code: {code}). Go back and \
                 try again."
            ),
        ),
        UpstreamError::IdToken(_) => HtmlError::bad_request(
            "Sign-in failed",
            format!(
                "This server could not verify the answer from {name}, so you were not signed \
                 in. Try again; if it keeps failing, tell the administrator of this server."
            ),
        ),
        UpstreamError::Userinfo(_) => HtmlError::new(
            StatusCode::BAD_GATEWAY,
            "Sign-in failed",
            format!(
                "This server could not read your profile from {name}. Try again; if it keeps \
                 failing, tell the administrator of this server."
            ),
        ),
    };
    refuse(&provider.id, error.reason(), error, page)
}

/// The claims could not be imported: a required one is missing (400, names it), the
/// username is not a valid Matrix username (400), or a template is broken (400, for the
/// administrator).
pub(super) fn claims_error(provider: &Provider, error: &ClaimsError) -> HtmlError {
    let name = provider.display_name();
    let page = match error {
        ClaimsError::MissingRequired { attribute } => HtmlError::bad_request(
            "Sign-in failed",
            format!(
                "{name} did not send your {}, which this server needs to create your \
                 account. Ask the administrator of {name} to provide it.",
                describe(attribute)
            ),
        ),
        ClaimsError::InvalidLocalpart { value } => HtmlError::bad_request(
            "Sign-in failed",
            format!(
                "The username {value:?} from {name} cannot be used as a Matrix username \
                 (only lower-case letters, digits and . _ = - / + are allowed). Ask the \
                 administrator of this server for help."
            ),
        ),
        ClaimsError::Template { .. } => HtmlError::bad_request(
            "Sign-in failed",
            format!(
                "The sign-in settings for {name} are not working. Tell the administrator of \
                 this server."
            ),
        ),
    };
    refuse(&provider.id, error.reason(), error, page)
}

/// How an attribute is called on a page.
fn describe(attribute: &str) -> &str {
    match attribute {
        "localpart" => "username",
        "displayname" => "display name",
        "email" => "email address",
        "subject" => "account identifier",
        other => other,
    }
}

/// The provider answered `error=access_denied`: the person cancelled (400).
pub(super) fn cancelled(provider: &Provider, description: Option<&str>) -> HtmlError {
    refuse(
        &provider.id,
        "cancelled",
        &one_line(description.unwrap_or("access_denied")),
        HtmlError::bad_request(
            "Sign-in was cancelled",
            format!(
                "The sign-in at {} was cancelled. Go back to try again.",
                provider.display_name()
            ),
        ),
    )
}

/// The provider answered another `error` (400, shows the code).
pub(super) fn provider_error(
    provider: &Provider,
    code: &str,
    description: Option<&str>,
) -> HtmlError {
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    let details = format!("error={code} {}", one_line(description.unwrap_or_default()));
    refuse(
        &provider.id,
        "provider_error",
        &details.trim(),
        HtmlError::bad_request(
            "Sign-in failed",
            format!(
                "{} could not sign you in (error code: {code}). Go back and try again.",
                provider.display_name()
            ),
        ),
    )
}

/// The callback's `state` is missing or was not started in this browser (400).
pub(super) fn state_mismatch(provider_id: &str, details: &str) -> HtmlError {
    refuse(
        provider_id,
        "state_mismatch",
        &details,
        HtmlError::bad_request(
            "Sign-in could not be completed",
            "This sign-in was not started in this browser, or it took too long. Go back and \
             sign in again. This site needs cookies to be enabled.",
        ),
    )
}

/// The callback or confirmation was used already (400).
pub(super) fn replayed(provider_id: &str, details: &str) -> HtmlError {
    refuse(
        provider_id,
        "replayed",
        &details,
        HtmlError::bad_request(
            "Sign-in already completed",
            "This sign-in was already used. Go back and sign in again.",
        ),
    )
}

/// `text` as one shell word: the subject comes from the provider, and the administrator
/// pastes the command into a shell. Single-quoted; with control characters (which would break
/// the log line) bash's `$'…'` with `\uXXXX` escapes.
fn shell_quote(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return format!("'{}'", text.replace('\'', r"'\''"));
    }
    let escaped: String = text
        .chars()
        .map(|c| match c {
            '\\' => r"\\".to_owned(),
            '\'' => r"\'".to_owned(),
            c if c.is_control() => format!("\\u{:04x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect();
    format!("$'{escaped}'")
}

/// The username belongs to another account and `on_conflict` does not link them (409). The
/// log line says how the administrator links the subject to that account.
pub(super) fn localpart_conflict(
    provider: &Provider,
    username: &str,
    subject: &str,
    details: &str,
) -> HtmlError {
    refuse(
        &provider.id,
        "localpart_conflict",
        &format_args!(
            "username {username:?}, subject {subject:?}: {details}; to let this subject sign \
             in as that user: mas-cli manage link-upstream {username} --provider {} \
             --subject {}",
            provider.id,
            shell_quote(subject)
        ),
        HtmlError::new(
            StatusCode::CONFLICT,
            "This username is already taken",
            format!(
                "The username {username:?} from {} already belongs to an account on this \
                 server, so no account was created. The administrator of this server can link \
                 your {} account to it.",
                provider.display_name(),
                provider.display_name(),
            ),
        ),
    )
}

/// The linked account is locked (403).
pub(super) fn account_locked(provider: &Provider, username: &str) -> HtmlError {
    refuse(
        &provider.id,
        "user_locked",
        &format_args!("username {username:?}"),
        HtmlError::new(
            StatusCode::FORBIDDEN,
            "This account is locked",
            "Your account on this server is locked. Contact the administrator of this server.",
        ),
    )
}

/// The linked account is deactivated (`reason` `user_deactivated`) or a guest
/// (`guest_user`) (403).
pub(super) fn account_unavailable(
    provider: &Provider,
    username: &str,
    reason: &'static str,
) -> HtmlError {
    refuse(
        &provider.id,
        reason,
        &format_args!("username {username:?}"),
        HtmlError::new(
            StatusCode::FORBIDDEN,
            "This account cannot sign in",
            "Your account on this server has been deactivated or cannot sign in here. Contact \
             the administrator of this server.",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn subjects_are_quoted_as_one_shell_word_on_one_line() {
        assert_eq!(shell_quote("alice"), "'alice'");
        assert_eq!(shell_quote("a$(id)'b"), r"'a$(id)'\''b'");
        assert_eq!(shell_quote("a\nb'\\"), r"$'a\u000ab\'\\'");
    }
}
