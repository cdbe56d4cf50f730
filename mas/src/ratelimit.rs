//! In-memory rate limiting (mas-protocol §17.1): keyed GCRA (generic cell rate algorithm,
//! what upstream's `governor` implements) per process, no sharing between instances. Time
//! comes from the injected clock, in milliseconds, so tests can step it.
//!
//! A [`Quota`] is a burst and a sustained rate. A key's state is its theoretical arrival time
//! (TAT): a request at `now` is allowed when `TAT - now <= (burst - 1) × interval`, and then
//! pushes the TAT one interval further. Keys whose TAT has passed hold no information and are
//! pruned, so memory stays bounded by the keys active in the last burst window.
//!
//! [`RateLimiter`] holds the limiters MAS uses; password checks call
//! [`RateLimiter::check_password`] before verifying anything (the login page and the compat
//! layer).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ulid::Ulid;

/// A burst and a sustained rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// How many requests may come at once.
    pub burst: u32,
    /// How many requests per second are allowed in the long run.
    pub per_second: f64,
}

impl Quota {
    /// `login.per_ip`: 3, then one every 20 s.
    pub const LOGIN_PER_IP: Self = Self::new(3, 0.05);
    /// `login.per_account`: 1800, then one every 2 s.
    pub const LOGIN_PER_ACCOUNT: Self = Self::new(1800, 0.5);
    /// `registration` (per IP).
    pub const REGISTRATION: Self = Self::new(3, 0.0008);
    /// `account_recovery.per_ip`.
    pub const ACCOUNT_RECOVERY_PER_IP: Self = Self::new(3, 0.0008);
    /// `account_recovery.per_address`.
    pub const ACCOUNT_RECOVERY_PER_ADDRESS: Self = Self::new(3, 0.0002);
    /// `email_authentication.per_ip`.
    pub const EMAIL_AUTHENTICATION_PER_IP: Self = Self::new(5, 0.016666);
    /// `email_authentication.per_address`.
    pub const EMAIL_AUTHENTICATION_PER_ADDRESS: Self = Self::new(3, 0.000277);
    /// `email_authentication.emails_per_session`.
    pub const EMAIL_AUTHENTICATION_EMAILS_PER_SESSION: Self = Self::new(2, 0.003333);
    /// `email_authentication.attempt_per_session`.
    pub const EMAIL_AUTHENTICATION_ATTEMPT_PER_SESSION: Self = Self::new(10, 0.016666);

    /// A quota of `burst` requests at once and `per_second` sustained.
    pub const fn new(burst: u32, per_second: f64) -> Self {
        Self { burst, per_second }
    }

    /// The time one request "costs", in milliseconds (at least 1).
    fn interval_ms(self) -> i64 {
        if self.per_second > 0.0 {
            // Float to int casts saturate; the rates of §17.1 give 1,000–5,000,000 ms.
            #[expect(
                clippy::cast_possible_truncation,
                reason = "saturating cast of a positive, bounded value"
            )]
            let ms = (1000.0 / self.per_second).round() as i64;
            ms.max(1)
        } else {
            i64::MAX / 4
        }
    }

    /// How far ahead of now the TAT may run before requests are refused.
    fn tolerance_ms(self) -> i64 {
        self.interval_ms()
            .saturating_mul(i64::from(self.burst.saturating_sub(1)))
    }
}

/// A request was refused; the caller may retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded; retry in {} s", retry_after.as_secs().max(1))]
pub struct RateLimited {
    /// How long until one more request would be allowed.
    pub retry_after: Duration,
}

/// When there are more keys than this, expired ones are dropped on the next check.
const PRUNE_THRESHOLD: usize = 4096;

/// One GCRA limiter over keys of type `K`.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    quota: Quota,
    tats: Mutex<HashMap<K, i64>>,
}

impl<K: Eq + Hash + Clone> KeyedLimiter<K> {
    /// An empty limiter with `quota`.
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `key` at `now_ms`, or refuses it (without counting it).
    pub fn check(&self, key: &K, now_ms: i64) -> Result<(), RateLimited> {
        let interval = self.quota.interval_ms();
        let tolerance = self.quota.tolerance_ms();
        // The critical section is a hash lookup; a panic inside cannot corrupt an i64.
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() >= PRUNE_THRESHOLD {
            tats.retain(|_, tat| *tat > now_ms);
        }
        let tat = tats.get(key).copied().unwrap_or(now_ms).max(now_ms);
        let ahead = tat - now_ms;
        if ahead > tolerance {
            let wait = u64::try_from(ahead - tolerance).unwrap_or(0);
            return Err(RateLimited {
                retry_after: Duration::from_millis(wait),
            });
        }
        tats.insert(key.clone(), tat.saturating_add(interval));
        Ok(())
    }

    /// How many keys are tracked (tests and metrics).
    pub fn len(&self) -> usize {
        self.tats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The quotas of the limiters MAS uses (mas-protocol §17.1 defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Password checks per client IP.
    pub login_per_ip: Quota,
    /// Password checks per account.
    pub login_per_account: Quota,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_per_ip: Quota::LOGIN_PER_IP,
            login_per_account: Quota::LOGIN_PER_ACCOUNT,
        }
    }
}

#[derive(Debug)]
struct Limiters {
    login_per_ip: KeyedLimiter<IpAddr>,
    login_per_account: KeyedLimiter<Ulid>,
}

/// The process's rate limiters; cheap to clone (a field of the app state).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Limiters>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(RateLimitConfig::default())
    }
}

impl RateLimiter {
    /// Limiters with these quotas.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            inner: Arc::new(Limiters {
                login_per_ip: KeyedLimiter::new(config.login_per_ip),
                login_per_account: KeyedLimiter::new(config.login_per_account),
            }),
        }
    }

    /// Counts one password attempt from `ip` (when known), refusing it when that address is
    /// over its quota. Check this before looking at the password.
    pub fn check_password_ip(&self, ip: Option<IpAddr>, now_ms: i64) -> Result<(), RateLimited> {
        match ip {
            // IPv4-mapped IPv6 addresses are the same client as their IPv4 form.
            Some(ip) => self.inner.login_per_ip.check(&ip.to_canonical(), now_ms),
            None => Ok(()),
        }
    }

    /// Counts one password attempt on the account `user_id`, refusing it when the account is
    /// over its quota. Check this before verifying the password.
    pub fn check_password_account(&self, user_id: Ulid, now_ms: i64) -> Result<(), RateLimited> {
        self.inner.login_per_account.check(&user_id, now_ms)
    }

    /// Both password limits: the IP first, then the account.
    pub fn check_password(
        &self,
        ip: Option<IpAddr>,
        user_id: Ulid,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        self.check_password_ip(ip, now_ms)?;
        self.check_password_account(user_id, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_704_067_200_000;

    #[test]
    fn a_burst_is_allowed_then_refused_until_one_interval_passes() {
        let limiter = KeyedLimiter::new(Quota::new(3, 0.05));
        for _ in 0..3 {
            limiter.check(&"a", T0).unwrap();
        }
        let refused = limiter.check(&"a", T0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        // A refused request costs nothing: still refused 1 ms before the interval is over.
        assert!(limiter.check(&"a", T0 + 19_999).is_err());
        limiter.check(&"a", T0 + 20_000).unwrap();
        assert!(limiter.check(&"a", T0 + 20_000).is_err());
    }

    #[test]
    fn keys_are_independent() {
        let limiter = KeyedLimiter::new(Quota::new(1, 1.0));
        limiter.check(&1, T0).unwrap();
        assert!(limiter.check(&1, T0).is_err());
        limiter.check(&2, T0).unwrap();
    }

    #[test]
    fn a_quiet_key_refills_to_the_burst_and_no_further() {
        let limiter = KeyedLimiter::new(Quota::new(2, 1.0));
        limiter.check(&"k", T0).unwrap();
        limiter.check(&"k", T0).unwrap();
        let later = T0 + 3_600_000;
        limiter.check(&"k", later).unwrap();
        limiter.check(&"k", later).unwrap();
        assert!(limiter.check(&"k", later).is_err());
    }

    #[test]
    fn expired_keys_are_pruned_when_the_map_grows() {
        let limiter = KeyedLimiter::new(Quota::new(1, 1.0));
        for key in 0..PRUNE_THRESHOLD {
            limiter.check(&key, T0).unwrap();
        }
        assert_eq!(limiter.len(), PRUNE_THRESHOLD);
        limiter.check(&usize::MAX, T0 + 10_000).unwrap();
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn password_limits_follow_the_spec_defaults() {
        let limiter = RateLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let user = Ulid::nil();
        for _ in 0..3 {
            limiter.check_password(Some(ip), user, T0).unwrap();
        }
        assert!(limiter.check_password(Some(ip), user, T0).is_err());
        // The mapped IPv6 form is the same client.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(limiter.check_password_ip(Some(mapped), T0).is_err());
        // Another address still gets through (the account allows 1800 at once).
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        limiter.check_password(Some(other), user, T0).unwrap();
        // Without a known address only the account counts.
        limiter.check_password(None, user, T0).unwrap();
    }

    #[test]
    fn the_account_limit_holds_across_addresses() {
        let limiter = RateLimiter::new(RateLimitConfig {
            login_per_ip: Quota::LOGIN_PER_IP,
            login_per_account: Quota::new(2, 0.5),
        });
        let user = Ulid::nil();
        limiter.check_password_account(user, T0).unwrap();
        limiter.check_password_account(user, T0).unwrap();
        let refused = limiter.check_password_account(user, T0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(2));
    }

    #[test]
    fn a_zero_rate_never_refills() {
        let limiter = KeyedLimiter::new(Quota::new(1, 0.0));
        limiter.check(&(), T0).unwrap();
        assert!(limiter.check(&(), T0 + 86_400_000).is_err());
    }
}
