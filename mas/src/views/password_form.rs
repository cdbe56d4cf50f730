//! What the password pages (the change page and the recovery link's form) show for a refused
//! new password: a message next to the field and, for a weak one, zxcvbn's score in words and
//! its feedback.

use crate::auth::new_password::{NewPasswordRefusal, score_in_words};
use crate::templates::{FormError, StrengthView};

/// The field errors and the strength report for `refusal`.
pub(super) fn refusal_view(refusal: NewPasswordRefusal) -> (FormError, Option<StrengthView>) {
    match refusal {
        NewPasswordRefusal::Empty => (
            FormError::field("new_password", "Enter a new password."),
            None,
        ),
        NewPasswordRefusal::Mismatch => (
            FormError::field(
                "new_password_confirm",
                "The two new passwords are not the same.",
            ),
            None,
        ),
        NewPasswordRefusal::TooWeak { strength, minimum } => (
            FormError::field(
                "new_password",
                "This password is too easy to guess. Choose a longer one.",
            ),
            Some(StrengthView {
                score: strength.score,
                words: score_in_words(strength.score).to_owned(),
                minimum_words: score_in_words(minimum).to_owned(),
                feedback: strength.feedback,
            }),
        ),
    }
}
