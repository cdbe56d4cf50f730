//! Choosing a new password, written once for the password change page and password recovery
//! (docs/protocol.md#passwords): typed twice, strong enough by zxcvbn's score against
//! `passwords.minimum_complexity` (with the score in words and zxcvbn's feedback when it is
//! not), then hashed by the current scheme and stored, in the caller's transaction, as the
//! user's active password (the newest row of `user_passwords`; the old ones stay, inactive).
//!
//! Which sessions a new password ends is the caller's choice ([`super::sessions`]); the wording
//! of each [`NewPasswordRefusal`] stays with the callers too.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use crate::clock::Clock;
use crate::crypto::passwords::{PasswordError, PasswordManager};
use crate::rng::RngSource;
use crate::storage::{StorageError, passwords};

/// How strong zxcvbn judges a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Strength {
    /// zxcvbn's score, 0 (guessed within a thousand tries) to 4 (more than 10¹⁰).
    pub(crate) score: u8,
    /// zxcvbn's warning and suggestions, in English.
    pub(crate) feedback: Vec<String>,
}

impl Strength {
    /// zxcvbn's judgement of `password`; `user_inputs` (the username, the server name) count
    /// as easy to guess. zxcvbn reads the first 100 characters only, so this stays cheap.
    pub(crate) fn of(password: &str, user_inputs: &[&str]) -> Self {
        let entropy = zxcvbn::zxcvbn(password, user_inputs);
        let mut feedback = Vec::new();
        if let Some(found) = entropy.feedback() {
            if let Some(warning) = found.warning() {
                feedback.push(warning.to_string());
            }
            feedback.extend(found.suggestions().iter().map(ToString::to_string));
        }
        Self {
            score: u8::from(entropy.score()),
            feedback,
        }
    }
}

/// A zxcvbn score in words.
pub(crate) fn score_in_words(score: u8) -> &'static str {
    match score {
        0 => "very weak",
        1 => "weak",
        2 => "fair",
        3 => "strong",
        _ => "very strong",
    }
}

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NewPasswordRefusal {
    /// The new password is empty.
    Empty,
    /// The two copies differ.
    Mismatch,
    /// Below `passwords.minimum_complexity`.
    TooWeak {
        /// The password's strength.
        strength: Strength,
        /// The score needed.
        minimum: u8,
    },
}

/// Checks a new password typed twice: not empty, both copies equal, then strong enough. The
/// comparison is of two values the same person just typed, so it needs no constant time.
pub(crate) fn check_new_password(
    manager: &PasswordManager,
    password: &str,
    confirm: &str,
    user_inputs: &[&str],
) -> Result<(), NewPasswordRefusal> {
    if password.is_empty() {
        return Err(NewPasswordRefusal::Empty);
    }
    if password != confirm {
        return Err(NewPasswordRefusal::Mismatch);
    }
    let minimum = manager.minimum_complexity();
    let strength = Strength::of(password, user_inputs);
    if strength.score < minimum {
        return Err(NewPasswordRefusal::TooWeak { strength, minimum });
    }
    Ok(())
}

/// A new password, hashed by the current scheme, ready to store.
#[derive(Debug)]
pub(crate) struct HashedPassword {
    version: u16,
    hash: String,
}

impl HashedPassword {
    /// Hashes `password` on the blocking pool (do it before opening the transaction that
    /// stores it, so the transaction stays short).
    pub(crate) async fn new(
        manager: &PasswordManager,
        rng: &RngSource,
        password: &str,
    ) -> Result<Self, PasswordError> {
        let (version, hash) = manager.hash(&mut rng.fork(), password).await?;
        Ok(Self { version, hash })
    }

    /// Stores it as the user's active password, in the caller's transaction.
    pub(crate) async fn store(
        &self,
        conn: &mut AnyConnection,
        clock: &dyn Clock,
        rng: &mut (impl RngCore + ?Sized),
        user_id: Ulid,
    ) -> Result<Ulid, StorageError> {
        let stored =
            passwords::add_password(conn, clock, rng, user_id, &self.hash, self.version, None)
                .await?;
        tracing::info!(user.id = %user_id, password.version = self.version, "password set");
        Ok(stored.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HashingAlgorithm;
    use crate::crypto::passwords::Hasher;

    fn manager(minimum: u8) -> PasswordManager {
        let argon2 = Hasher::new(HashingAlgorithm::Argon2id, None, None, false).unwrap();
        PasswordManager::new([(1, argon2)], minimum).unwrap()
    }

    #[test]
    fn a_new_password_must_be_typed_twice_the_same_and_be_strong_enough() {
        let manager = manager(3);
        let strong = "correct horse battery staple 42";
        assert_eq!(check_new_password(&manager, strong, strong, &[]), Ok(()));
        assert_eq!(
            check_new_password(&manager, "", "", &[]),
            Err(NewPasswordRefusal::Empty)
        );
        assert_eq!(
            check_new_password(&manager, strong, "other", &[]),
            Err(NewPasswordRefusal::Mismatch)
        );
        let Err(NewPasswordRefusal::TooWeak { strength, minimum }) =
            check_new_password(&manager, "password1", "password1", &[])
        else {
            panic!("a weak password passed");
        };
        assert_eq!(minimum, 3);
        assert!(strength.score < 3);
        assert!(!strength.feedback.is_empty(), "zxcvbn says why");
    }

    #[test]
    fn the_username_counts_as_easy_to_guess() {
        let alone = Strength::of("zebulon-fitzgerald", &[]);
        let known = Strength::of("zebulon-fitzgerald", &["zebulon-fitzgerald"]);
        assert!(known.score < alone.score, "{known:?} vs {alone:?}");
    }

    #[test]
    fn scores_have_words() {
        let words: Vec<_> = (0..=4).map(score_in_words).collect();
        assert_eq!(
            words,
            ["very weak", "weak", "fair", "strong", "very strong"]
        );
    }
}
