//! The injected source of time. Everything that stores or compares a time asks a [`Clock`],
//! so tests can fix and advance it. This module is the only place allowed to read the system
//! clock (clippy's `disallowed-methods` enforces it).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time as Unix milliseconds, the unit every stored timestamp uses.
    fn now_unix_ms(&self) -> i64 {
        unix_ms(self.now())
    }
}

/// Converts a time to Unix milliseconds (negative before 1970, saturating far out of range).
pub fn unix_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place that reads the system clock; everything else gets a Clock"
    )]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock for tests: starts at a fixed time and only moves when told to.
#[derive(Debug, Clone)]
pub struct MockClock {
    unix_ms: Arc<AtomicI64>,
}

impl MockClock {
    /// A clock reading `unix_ms` milliseconds after the Unix epoch.
    pub fn new(unix_ms: i64) -> Self {
        Self {
            unix_ms: Arc::new(AtomicI64::new(unix_ms)),
        }
    }

    /// Moves the clock forward by `by` (clones share the same time).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.unix_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Default for MockClock {
    /// 2024-01-01T00:00:00Z, a readable fixed point for snapshots.
    fn default() -> Self {
        Self::new(1_704_067_200_000)
    }
}

impl Clock for MockClock {
    fn now(&self) -> SystemTime {
        let ms = self.unix_ms.load(Ordering::SeqCst);
        let magnitude = Duration::from_millis(ms.unsigned_abs());
        if ms >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_clock_stays_put_until_advanced_through_any_clone() {
        let clock = MockClock::new(1_000);
        assert_eq!(clock.now_unix_ms(), 1_000);
        let shared = clock.clone();
        shared.advance(Duration::from_secs(2));
        assert_eq!(clock.now_unix_ms(), 3_000);
    }

    #[test]
    fn unix_ms_handles_times_before_the_epoch() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_millis(5)), -5);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now_unix_ms() > MockClock::default().now_unix_ms());
    }
}
