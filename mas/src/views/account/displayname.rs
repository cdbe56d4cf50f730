//! `POST /account/displayname` (docs/protocol.md#pages): sets the profile display name in the
//! homeserver (`set_displayname`), or clears it when the field is empty (`unset_displayname`).
//! MAS stores no display name, so a homeserver that does not answer leaves nothing half-done:
//! the person gets an error page and the old name stays. Refused when the configuration or
//! the user's upstream provider owns the name ([`Policy`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::manage::{Policy, signed_in};
use super::{AccountState, MainPage, main_page, to_login};
use crate::error::HtmlError;
use crate::pages::CsrfForm;
use crate::templates::FormError;

/// Synapse's limit on display names (`MAX_DISPLAYNAME_LEN`), in characters.
const MAX_DISPLAYNAME_CHARS: usize = 256;

/// The form.
#[derive(Debug, Deserialize)]
pub(super) struct DisplaynameForm {
    #[serde(default)]
    displayname: String,
}

/// The problem with a display name, if any.
fn check(name: &str) -> Option<&'static str> {
    if name.chars().count() > MAX_DISPLAYNAME_CHARS {
        return Some("The display name is too long: use at most 256 characters.");
    }
    if name.chars().any(char::is_control) {
        return Some("The display name cannot contain control characters.");
    }
    None
}

/// `POST /account/displayname`.
#[tracing::instrument(name = "handlers.views.account.displayname.post", skip_all)]
pub(super) async fn post(
    State(state): State<AccountState>,
    CsrfForm { jar, fields }: CsrfForm<DisplaynameForm>,
) -> Result<Response, HtmlError> {
    let Some(user) = signed_in(&state, &jar).await? else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    let policy = Policy::load(&mut *state.db.acquire().await?, &state, user.id).await?;
    if let Some(reason) = policy.displayname_locked {
        let refused = MainPage::refused(StatusCode::FORBIDDEN, FormError::form(reason));
        return main_page(&state, jar, &user, refused).await;
    }
    let name = fields.displayname.trim();
    if let Some(message) = check(name) {
        let refused = MainPage {
            displayname_value: Some(fields.displayname.clone()),
            ..MainPage::refused(
                StatusCode::BAD_REQUEST,
                FormError::field("displayname", message),
            )
        };
        return main_page(&state, jar, &user, refused).await;
    }
    let result = if name.is_empty() {
        state.homeserver.unset_displayname(&user.username).await
    } else {
        state.homeserver.set_displayname(&user.username, name).await
    };
    if let Err(error) = result {
        tracing::warn!(
            user.id = %user.id,
            error = &error as &dyn std::error::Error,
            "the homeserver did not change the display name"
        );
        return Err(HtmlError::new(
            StatusCode::BAD_GATEWAY,
            "Display name not changed",
            "The homeserver did not accept the change, so your display name is as it was. \
             Try again in a few minutes.",
        ));
    }
    tracing::info!(user.id = %user.id, "display name changed from the account page");
    let notice = if name.is_empty() {
        "Your display name was removed: people see your username.".to_owned()
    } else {
        format!("Your display name is now {name}.")
    };
    main_page(&state, jar, &user, MainPage::notice(notice)).await
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn display_names_are_checked_for_length_and_control_characters() {
        assert_eq!(check("Alice"), None);
        assert_eq!(check(""), None);
        assert_eq!(check(&"é".repeat(256)), None);
        assert!(check(&"é".repeat(257)).is_some());
        assert!(check("Al\u{0}ice").is_some());
        assert!(check("Al\nice").is_some());
    }
}
