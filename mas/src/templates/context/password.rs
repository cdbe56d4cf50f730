//! The password pages (docs/protocol.md#pages): the password change (`/account/password`), the
//! recovery request (`/recover`) and the recovery link's new-password form
//! (`/recover/complete`), and the short notice page they end on (done, refused, unavailable).

use serde::Serialize;

use super::{FormError, SAMPLE_CSRF, SAMPLE_PREFIX};

/// How strong a refused new password was, and what zxcvbn suggests.
#[derive(Debug, Clone, Serialize)]
pub struct StrengthView {
    /// zxcvbn's score, 0 to 4.
    pub score: u8,
    /// The score in words ("weak").
    pub words: String,
    /// The score needed, in words ("strong").
    pub minimum_words: String,
    /// zxcvbn's warning and suggestions.
    pub feedback: Vec<String>,
}

impl StrengthView {
    /// A weak password with zxcvbn's feedback.
    pub fn sample() -> Self {
        Self {
            score: 1,
            words: "weak".to_owned(),
            minimum_words: "strong".to_owned(),
            feedback: vec![
                "This is similar to a commonly used password.".to_owned(),
                "Add more words that are less common.".to_owned(),
            ],
        }
    }
}

/// The password change form.
#[derive(Debug, Clone, Serialize)]
pub struct PasswordChangeContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/account/password`).
    pub form_action: String,
    /// The account page (`/auth/account/`).
    pub account_url: String,
    /// Problems with the last attempt.
    pub errors: Vec<FormError>,
    /// The strength of a new password refused as too weak.
    pub strength: Option<StrengthView>,
    /// Whether "Sign out my other sessions" is ticked.
    pub sign_out_others: bool,
}

impl PasswordChangeContext {
    /// A form refused for a weak new password.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/account/password"),
            account_url: format!("{SAMPLE_PREFIX}/account/"),
            errors: vec![FormError::field(
                "new_password",
                "This password is too easy to guess.",
            )],
            strength: Some(StrengthView::sample()),
            sign_out_others: true,
        }
    }
}

/// The recovery request form, or its answer.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/recover`).
    pub form_action: String,
    /// The address typed last.
    pub email: String,
    /// Problems with the last attempt.
    pub errors: Vec<FormError>,
    /// The request was taken: the same answer whether or not the address is known.
    pub sent: bool,
    /// The login page.
    pub login_url: String,
}

impl RecoverContext {
    /// The empty form.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/recover"),
            email: String::new(),
            errors: Vec::new(),
            sent: false,
            login_url: format!("{SAMPLE_PREFIX}/login"),
        }
    }

    /// The answer to a request.
    pub fn sent_sample() -> Self {
        Self {
            email: "alice@example.com".to_owned(),
            sent: true,
            ..Self::sample()
        }
    }
}

/// The recovery link's new-password form.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverCompleteContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/recover/complete`).
    pub form_action: String,
    /// The ticket from the link, carried in a hidden field.
    pub ticket: String,
    /// Whose password is being set (the Matrix ID).
    pub mxid: String,
    /// Problems with the last attempt.
    pub errors: Vec<FormError>,
    /// The strength of a new password refused as too weak.
    pub strength: Option<StrengthView>,
}

impl RecoverCompleteContext {
    /// A form refused for a weak new password.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/recover/complete"),
            ticket: "sample-ticket".to_owned(),
            mxid: "@alice:example.com".to_owned(),
            errors: vec![FormError::field(
                "new_password",
                "This password is too easy to guess.",
            )],
            strength: Some(StrengthView::sample()),
        }
    }
}

/// A link on a notice page.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    /// Where it leads.
    pub url: String,
    /// Its text.
    pub label: String,
}

/// A short page that ends a flow or refuses one: a heading, a message and a link onwards.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The heading ("Password changed").
    pub title: String,
    /// What happened, or why not.
    pub message: String,
    /// Where to go next.
    pub link: Option<LinkView>,
}

impl NoticeContext {
    /// The end of a recovery.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            title: "Password changed".to_owned(),
            message: "Your password has been changed and every session of your account has \
                      ended. Sign in with your new password."
                .to_owned(),
            link: Some(LinkView {
                url: format!("{SAMPLE_PREFIX}/login"),
                label: "Sign in".to_owned(),
            }),
        }
    }
}
