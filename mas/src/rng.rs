//! The injected source of randomness. Everything random (row ids, tokens, codes, secrets)
//! comes from one [`RngSource`] held in `AppState`: seeded from the OS in production,
//! from a fixed `u64` in tests, so a test run is reproducible. A request takes its own
//! generator with [`RngSource::fork`] and never holds the shared lock across an `.await`.
//! Row ids are ULIDs built from the injected clock and RNG ([`new_ulid`]).

use std::sync::{Arc, Mutex, PoisonError};

use rand::{Rng as _, RngCore, SeedableRng as _};
use rand_chacha::ChaCha20Rng;
use ulid::Ulid;

/// A shared, cheap-to-clone ChaCha20 generator that hands out independent generators.
#[derive(Debug, Clone)]
pub struct RngSource {
    shared: Arc<Mutex<ChaCha20Rng>>,
}

impl RngSource {
    /// A source seeded from the operating system's entropy (production).
    pub fn from_entropy() -> Self {
        Self::from_rng(ChaCha20Rng::from_entropy())
    }

    /// A deterministic source (tests): the same seed gives the same ids and tokens.
    pub fn seeded(seed: u64) -> Self {
        Self::from_rng(ChaCha20Rng::seed_from_u64(seed))
    }

    fn from_rng(rng: ChaCha20Rng) -> Self {
        Self {
            shared: Arc::new(Mutex::new(rng)),
        }
    }

    /// A fresh generator seeded from the shared one (the lock is held only for the 32 bytes
    /// of the seed). Cryptographically secure, like its parent.
    pub fn fork(&self) -> ChaCha20Rng {
        // A panic while holding the lock cannot leave a ChaCha state half-written in a way
        // that matters, so a poisoned lock is used as is.
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        ChaCha20Rng::from_seed(shared.r#gen())
    }
}

/// A ULID for `clock_ms` (Unix milliseconds from the injected clock; negative times clamp
/// to the epoch) with 80 random bits from `rng`.
pub fn new_ulid(clock_ms: i64, rng: &mut (impl RngCore + ?Sized)) -> Ulid {
    let ms = u64::try_from(clock_ms).unwrap_or(0);
    let mut random = [0_u8; 16];
    rng.fill_bytes(&mut random);
    Ulid::from_parts(ms, u128::from_be_bytes(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sources_fork_the_same_generators() {
        let (a, b) = (RngSource::seeded(7), RngSource::seeded(7));
        assert_eq!(a.fork().next_u64(), b.fork().next_u64());
        let mut first = a.fork();
        let mut second = a.fork();
        assert_ne!(first.next_u64(), second.next_u64());
    }

    #[test]
    fn clones_share_one_stream() {
        let source = RngSource::seeded(1);
        let clone = source.clone();
        let reference = RngSource::seeded(1);
        assert_eq!(source.fork().next_u64(), reference.fork().next_u64());
        assert_eq!(clone.fork().next_u64(), reference.fork().next_u64());
    }

    #[test]
    fn ulid_carries_the_clock_time_and_is_26_upper_case_characters() {
        let mut rng = RngSource::seeded(3).fork();
        let id = new_ulid(1_704_067_200_000, &mut rng);
        assert_eq!(id.timestamp_ms(), 1_704_067_200_000);
        let text = id.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(text, text.to_uppercase());
        assert_eq!(text.parse::<Ulid>().unwrap(), id);
        assert_ne!(new_ulid(1_704_067_200_000, &mut rng), id);
    }

    #[test]
    fn ulid_before_the_epoch_clamps_to_zero() {
        let id = new_ulid(-5, &mut RngSource::seeded(0).fork());
        assert_eq!(id.timestamp_ms(), 0);
    }
}
