//! Email verification, written once for registration and for adding an address on the account
//! page (docs/protocol.md#email-verification): [`start`] makes an email authentication and
//! queues the mail with its code in the caller's transaction; [`code_problem`] words the outcome
//! of a typed code for the code page's `code` field. Rate limits and which page comes next stay
//! with the callers.

use rand::RngCore;
use sqlx::AnyConnection;

use crate::clock::Clock;
use crate::jobs::{self, Job};
use crate::model::{EmailAuthentication, EmailAuthenticationPurpose};
use crate::storage::StorageError;
use crate::storage::email_authentications::{CodeCheck, add_email_authentication};
use crate::templates::FormError;

/// Makes an authentication of `email` for `purpose` and queues the mail with its code. Call it
/// inside the transaction of the change that needs it, then wake the job worker after the
/// commit (`state.jobs.wake()`).
pub(crate) async fn start(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    purpose: EmailAuthenticationPurpose,
    email: &str,
) -> Result<EmailAuthentication, StorageError> {
    let authentication = add_email_authentication(conn, clock, rng, purpose, email).await?;
    let job = Job::SendEmailAuthenticationCode {
        authentication_id: authentication.id,
    };
    jobs::queue(conn, clock, rng, &job).await?;
    Ok(authentication)
}

/// The message for the `code` field after a refused code; `None` when it was accepted.
pub(crate) fn code_problem(check: &CodeCheck) -> Option<FormError> {
    let message = match check {
        CodeCheck::Accepted(_) => return None,
        CodeCheck::Wrong { attempts_left: 0 } => {
            "That code is not right, and no tries are left. Send a new code.".to_owned()
        }
        CodeCheck::Wrong { attempts_left: 1 } => {
            "That code is not right. You can try once more.".to_owned()
        }
        CodeCheck::Wrong { attempts_left } => {
            format!("That code is not right. You can try {attempts_left} more times.")
        }
        CodeCheck::TooManyAttempts => "Too many wrong codes. Send a new code.".to_owned(),
        CodeCheck::Expired => "This code has expired. Send a new code.".to_owned(),
        CodeCheck::AlreadyUsed => "This code was used already.".to_owned(),
        CodeCheck::NotFound => "No code was sent for this request. Send a new code.".to_owned(),
    };
    Some(FormError::field("code", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_own_message_on_the_code_field() {
        let refusals = [
            CodeCheck::Wrong { attempts_left: 0 },
            CodeCheck::Wrong { attempts_left: 1 },
            CodeCheck::Wrong { attempts_left: 3 },
            CodeCheck::TooManyAttempts,
            CodeCheck::Expired,
            CodeCheck::AlreadyUsed,
            CodeCheck::NotFound,
        ];
        let messages: Vec<String> = refusals
            .iter()
            .map(|check| {
                let problem = code_problem(check).expect("a refusal has a message");
                assert_eq!(problem.field.as_deref(), Some("code"));
                problem.message
            })
            .collect();
        let distinct: std::collections::BTreeSet<_> = messages.iter().collect();
        assert_eq!(distinct.len(), messages.len(), "{messages:?}");
        assert!(messages[2].contains("3 more"));
    }
}
