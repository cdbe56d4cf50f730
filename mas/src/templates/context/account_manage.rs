//! What the account page offers for managing the account itself (docs/protocol.md#pages): its
//! email addresses, display name and closing it. The blocks of the main page
//! ([`AccountManageView`], part of `AccountContext`) and the deactivation page
//! ([`DeactivateContext`]).

use serde::Serialize;

use super::{FormError, SAMPLE_CSRF, SAMPLE_PREFIX, UserView};

/// One email address of the user, with its forms.
#[derive(Debug, Clone, Serialize)]
pub struct EmailView {
    /// The address as given.
    pub address: String,
    /// Whether it was proven (only verified addresses reach the homeserver).
    pub verified: bool,
    /// Whether it is the primary address.
    pub primary: bool,
    /// Where its "Remove" form posts (`/auth/account/emails/{id}/remove`).
    pub remove_action: String,
    /// Where its "Make primary" form posts; `None` when it is primary or not verified.
    pub primary_action: Option<String>,
}

/// The email, display name and deactivation blocks of the account page.
#[derive(Debug, Clone, Serialize)]
pub struct AccountManageView {
    /// The user's addresses, oldest first.
    pub emails: Vec<EmailView>,
    /// Where the "Add an email address" form posts (`/auth/account/emails`).
    pub add_email_action: String,
    /// Why addresses cannot be changed here (by configuration, or the provider owns them);
    /// `None` when they can (then the forms are shown).
    pub email_locked: Option<String>,
    /// The address to fill in the add form (after a refusal).
    pub email_value: String,
    /// Where the display name form posts (`/auth/account/displayname`).
    pub displayname_action: String,
    /// Why the display name cannot be changed here; `None` when it can.
    pub displayname_locked: Option<String>,
    /// The display name to fill in (the current one, or the refused attempt).
    pub displayname_value: String,
    /// The deactivation page (`/auth/account/deactivate`); `None` when it is not offered.
    pub deactivate_url: Option<String>,
    /// Problems with the form last sent from this page (fields `email`, `displayname`).
    pub errors: Vec<FormError>,
}

impl AccountManageView {
    /// Alice with a primary verified address and an unverified one, everything allowed.
    pub fn sample() -> Self {
        let email = |address: &str, id: &str, verified, primary| EmailView {
            address: address.to_owned(),
            verified,
            primary,
            remove_action: format!("{SAMPLE_PREFIX}/account/emails/{id}/remove"),
            primary_action: (verified && !primary)
                .then(|| format!("{SAMPLE_PREFIX}/account/emails/{id}/primary")),
        };
        Self {
            emails: vec![
                email(
                    "alice@example.com",
                    "01J0000000000000000000EML1",
                    true,
                    true,
                ),
                email(
                    "alice@work.example",
                    "01J0000000000000000000EML2",
                    true,
                    false,
                ),
                email(
                    "old@example.net",
                    "01J0000000000000000000EML3",
                    false,
                    false,
                ),
            ],
            add_email_action: format!("{SAMPLE_PREFIX}/account/emails"),
            email_locked: None,
            email_value: String::new(),
            displayname_action: format!("{SAMPLE_PREFIX}/account/displayname"),
            displayname_locked: None,
            displayname_value: "Alice".to_owned(),
            deactivate_url: Some(format!("{SAMPLE_PREFIX}/account/deactivate")),
            errors: Vec::new(),
        }
    }
}

/// The deactivation page (`GET/POST /account/deactivate`): a warning and a confirmation form,
/// or, once done, "Your account is closed".
#[derive(Debug, Clone, Serialize)]
pub struct DeactivateContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// The signed-in user.
    pub user: UserView,
    /// Where the form posts (`/auth/account/deactivate`).
    pub form_action: String,
    /// The account has a password: the form asks for it; otherwise for the username.
    pub needs_password: bool,
    /// The username to type when there is no password.
    pub username: String,
    /// Whether the "Also erase my messages" box was ticked (kept after a refusal).
    pub erase: bool,
    /// Problems with the last attempt (fields `password`, `username`).
    pub errors: Vec<FormError>,
    /// The account page (`/auth/account/`).
    pub account_url: String,
    /// The account is closed: the page says so, with no form.
    pub closed: bool,
}

impl DeactivateContext {
    /// Alice, asked for her password.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            user: UserView::sample(),
            form_action: format!("{SAMPLE_PREFIX}/account/deactivate"),
            needs_password: true,
            username: "alice".to_owned(),
            erase: false,
            errors: vec![FormError::field("password", "Wrong password.")],
            account_url: format!("{SAMPLE_PREFIX}/account/"),
            closed: false,
        }
    }
}
