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

/// Unix milliseconds as `2026-01-02 03:04 UTC` (the proleptic Gregorian calendar; days to
/// dates after Howard Hinnant's `civil_from_days`), for pages and operator-facing output.
pub fn format_unix_ms(unix_ms: i64) -> String {
    let minutes = unix_ms.div_euclid(60_000);
    let (days, minute_of_day) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute) = (minute_of_day / 60, minute_of_day % 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_ms_format_as_utc_dates() {
        assert_eq!(format_unix_ms(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_unix_ms(1_704_067_200_000), "2024-01-01 00:00 UTC");
        assert_eq!(format_unix_ms(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(format_unix_ms(1_767_323_040_000), "2026-01-02 03:04 UTC");
        assert_eq!(format_unix_ms(-60_000), "1969-12-31 23:59 UTC");
    }

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
