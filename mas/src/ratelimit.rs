//! In-memory rate limiting (docs/protocol.md#rate-limits): keyed GCRA (generic cell rate algorithm,
//! what upstream's `governor` implements) per process, no sharing between instances. Time comes
//! from the injected clock, in milliseconds, so tests can step it.
//!
//! A [`Quota`] is a burst and a sustained rate. A key's state is its theoretical arrival time
//! (TAT): a request at `now` is allowed when `TAT - now <= (burst - 1) × interval`, and then
//! pushes the TAT one interval further. Keys whose TAT has passed hold no information; they
//! are dropped by [`RateLimiter::prune`], which a background task runs every
//! [`PRUNE_INTERVAL`] ([`RateLimiter::spawn_pruning`]), never a request. Between two prunes a
//! limiter holds at most [`MAX_KEYS`] keys, so memory stays bounded whatever arrives, and a
//! check stays O(1) (see [`KeyedLimiter::check`] for what a full limiter does).
//!
//! Limits per client address are keyed by [`IpKey`]: an IPv4 address, or the /64 network of
//! an IPv6 address (RFC 4291 §2.5.4: a /64 is one link, and one subscriber usually gets at
//! least that much, so a client walking through its own /64 stays one key).
//!
//! [`RateLimiter`] holds the limiters MAS uses: password checks (the login page and the compat
//! layer call [`RateLimiter::check_password_ip`] and [`RateLimiter::check_password_account`]
//! before verifying anything), and the unauthenticated endpoints that store a row for anyone
//! who asks (dynamic client registration, the legacy SSO redirect, the start of an upstream
//! login). A refusal is a [`RateLimited`]; [`RateLimited::respond`] adds `Retry-After`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;
use ulid::Ulid;

use crate::clock::Clock;

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
    /// `POST /oauth2/registration` per client address: 10 at once, then one a minute (60 an
    /// hour, 1,440 a day). Upstream MAS does not limit dynamic client registration at all.
    /// Element X and Element Web register a client once per login, so even 10 people behind
    /// one NAT signing in together, and one more every minute after that, never see it; a
    /// script stores at most 1,440 clients a day per address (or IPv6 /64) instead of
    /// thousands a minute.
    pub const CLIENT_REGISTRATION_PER_IP: Self = Self::new(10, 1.0 / 60.0);
    /// `GET /_matrix/client/{v}/login/sso/redirect` per client address: 10 at once, then one
    /// every 30 s (120 an hour). A legacy client starts one SSO login per sign-in, and a person
    /// retries a few times at most; each request stores a pending compat SSO login.
    pub const COMPAT_SSO_REDIRECT_PER_IP: Self = Self::new(10, 1.0 / 30.0);
    /// `GET /upstream/authorize/{id}` per client address: 60 at once, then one every 2 s
    /// (1,800 an hour). Each request stores an upstream authorization session; far more room
    /// than the SSO redirect because in SSO-only mode every visit of the login page (every
    /// authorization by a signed-out client, every reload) lands here, and many people may
    /// share one address (an office, a conference network). Still bounds what one address
    /// can store.
    pub const UPSTREAM_AUTHORIZE_PER_IP: Self = Self::new(60, 0.5);
    /// `POST /oauth2/device` per client address: 10 at once, then one every 30 s (120 an
    /// hour). A device asks once per sign-in (and again when its codes expire); each request
    /// stores a device grant. Upstream MAS does not limit it.
    pub const DEVICE_AUTHORIZATION_PER_IP: Self = Self::new(10, 1.0 / 30.0);
    /// `/link` code lookups per client address (typed codes and `?code=` links): 10 at once,
    /// then one every 10 s (360 an hour). A person types a code a few times at most; guessing
    /// one of the live 8-character codes (40 bits, RFC 8628 §5.1) at that pace is hopeless.
    pub const DEVICE_LINK_PER_IP: Self = Self::new(10, 0.1);

    /// A quota of `burst` requests at once and `per_second` sustained.
    pub const fn new(burst: u32, per_second: f64) -> Self {
        Self { burst, per_second }
    }

    /// The time one request "costs", in milliseconds (at least 1).
    fn interval_ms(self) -> i64 {
        if self.per_second > 0.0 {
            // Float to int casts saturate; the quotas above give 1,000–5,000,000 ms.
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

    /// One GCRA step: the new TAT of a key whose TAT is `tat` (`None`: unknown) for a request
    /// at `now_ms`, or the refusal (which leaves the TAT as it was).
    fn step(self, tat: Option<i64>, now_ms: i64) -> Result<i64, RateLimited> {
        let tat = tat.unwrap_or(now_ms).max(now_ms);
        let ahead = tat - now_ms;
        let tolerance = self.tolerance_ms();
        if ahead > tolerance {
            let wait = u64::try_from(ahead - tolerance).unwrap_or(0);
            return Err(RateLimited {
                retry_after: Duration::from_millis(wait),
            });
        }
        Ok(tat.saturating_add(self.interval_ms()))
    }
}

/// A request was refused; the caller may retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded; retry in {} s", self.retry_after_secs())]
pub struct RateLimited {
    /// How long until one more request would be allowed.
    pub retry_after: Duration,
}

impl RateLimited {
    /// [`retry_after`](Self::retry_after) in whole seconds, rounded up (at least 1), as
    /// `Retry-After` carries it: a client that waits this long is let in.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            secs.saturating_add(1)
        } else {
            secs
        };
        secs.max(1)
    }

    /// [`retry_after`](Self::retry_after) in milliseconds (Matrix `retry_after_ms`).
    pub fn retry_after_ms(&self) -> u64 {
        u64::try_from(self.retry_after.as_millis()).unwrap_or(u64::MAX)
    }

    /// `error` (an endpoint's error in its protocol's shape) answered with 429 Too Many
    /// Requests and `Retry-After` in seconds (RFC 6585 §4, RFC 9110 §10.2.3).
    pub fn respond(self, error: impl IntoResponse) -> Response {
        let mut response = error.into_response();
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs()),
        );
        response
    }
}

/// The key of a limit per client address: IPv4 addresses (IPv4-mapped IPv6 ones included)
/// one by one, IPv6 addresses by their /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpKey {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// The first four 16-bit groups (the /64 network) of an IPv6 address.
    V6([u16; 4]),
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(ip) => Self::V4(ip),
            IpAddr::V6(ip) => {
                let [a, b, c, d, ..] = ip.segments();
                Self::V6([a, b, c, d])
            }
        }
    }
}

impl std::fmt::Display for IpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4(ip) => write!(f, "{ip}"),
            Self::V6([a, b, c, d]) => write!(f, "{a:x}:{b:x}:{c:x}:{d:x}::/64"),
        }
    }
}

/// How many keys one limiter holds at most. An entry is about 40 bytes, so a full limiter
/// holds a few MiB. Filling it takes this many distinct addresses (IPv6 /64s) inside about a
/// minute (a key lives until its TAT has passed, then until the next prune).
pub const MAX_KEYS: usize = 65_536;

/// How often the background task prunes expired keys.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The state of a limiter, behind its lock.
#[derive(Debug)]
struct Tats<K> {
    keys: HashMap<K, i64>,
    /// The TAT that new keys share while `keys` is full.
    overflow: Option<i64>,
    /// Requests checked against `overflow` since the last prune.
    overflowed: u64,
}

/// One GCRA limiter over keys of type `K`.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    quota: Quota,
    max_keys: usize,
    tats: Mutex<Tats<K>>,
}

/// What one [`KeyedLimiter::prune`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Expired keys dropped.
    pub removed: usize,
    /// Requests that found the limiter full since the previous prune.
    pub overflowed: u64,
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, other: Self) {
        self.removed += other.removed;
        self.overflowed += other.overflowed;
    }
}

impl<K: Eq + Hash + Clone> KeyedLimiter<K> {
    /// An empty limiter with `quota`, holding at most [`MAX_KEYS`] keys.
    pub fn new(quota: Quota) -> Self {
        Self::with_max_keys(quota, MAX_KEYS)
    }

    /// An empty limiter with `quota`, holding at most `max_keys` keys.
    pub fn with_max_keys(quota: Quota, max_keys: usize) -> Self {
        Self {
            quota,
            max_keys,
            tats: Mutex::new(Tats {
                keys: HashMap::new(),
                overflow: None,
                overflowed: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tats<K>> {
        // The critical sections are hash operations; a panic inside cannot corrupt an i64.
        self.tats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one request of `key` at `now_ms`, or refuses it (without counting it). O(1):
    /// one hash lookup and at most one insert.
    ///
    /// When the limiter already holds its maximum of keys and `key` is not one of them, the
    /// request is checked against one state that every such newcomer shares until the next
    /// prune, with the same quota. Dropping the limit for newcomers would let whoever fills
    /// the map (with many addresses) go unlimited; refusing them outright would lock every
    /// new client out; evicting in O(1) would need a second structure. Sharing keeps the
    /// keys already tracked exact, caps newcomers together at one key's rate, and costs
    /// nothing until the map is full.
    pub fn check(&self, key: &K, now_ms: i64) -> Result<(), RateLimited> {
        let mut tats = self.lock();
        let tats = &mut *tats;
        if let Some(tat) = tats.keys.get_mut(key) {
            *tat = self.quota.step(Some(*tat), now_ms)?;
        } else if tats.keys.len() < self.max_keys {
            let tat = self.quota.step(None, now_ms)?;
            tats.keys.insert(key.clone(), tat);
        } else {
            tats.overflowed = tats.overflowed.saturating_add(1);
            tats.overflow = Some(self.quota.step(tats.overflow, now_ms)?);
        }
        Ok(())
    }

    /// Drops the keys whose TAT has passed at `now_ms` (they would start afresh anyway), and
    /// resets the shared state of newcomers once it has passed too. O(keys): run it off the
    /// request path.
    pub fn prune(&self, now_ms: i64) -> Pruned {
        let mut tats = self.lock();
        let before = tats.keys.len();
        tats.keys.retain(|_, tat| *tat > now_ms);
        if tats.overflow.is_some_and(|tat| tat <= now_ms) {
            tats.overflow = None;
        }
        Pruned {
            removed: before - tats.keys.len(),
            overflowed: std::mem::take(&mut tats.overflowed),
        }
    }

    /// How many keys are tracked (tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().keys.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KeyedLimiter<IpKey> {
    /// Counts one request from `ip`, by its [`IpKey`]. An unknown address is not limited:
    /// the server always knows the peer, only in-process tests have none.
    fn check_ip(&self, ip: Option<IpAddr>, now_ms: i64) -> Result<(), RateLimited> {
        match ip {
            Some(ip) => self.check(&IpKey::from(ip), now_ms),
            None => Ok(()),
        }
    }
}

/// The quotas of the limiters MAS uses (upstream MAS's `rate_limiting` defaults, and ours for the
/// endpoints upstream MAS does not limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Password checks per client IP.
    pub login_per_ip: Quota,
    /// Password checks per account.
    pub login_per_account: Quota,
    /// Dynamic client registrations per client IP.
    pub client_registration_per_ip: Quota,
    /// Legacy SSO redirects per client IP.
    pub compat_sso_redirect_per_ip: Quota,
    /// Upstream login starts per client IP.
    pub upstream_authorize_per_ip: Quota,
    /// Device authorization requests per client IP.
    pub device_authorization_per_ip: Quota,
    /// User-code lookups on the `/link` page per client IP.
    pub device_link_per_ip: Quota,
    /// Email authentication codes sent, per client IP (`email_authentication.per_ip`).
    pub email_authentication_per_ip: Quota,
    /// Email authentication codes sent, per address (`email_authentication.per_address`).
    pub email_authentication_per_address: Quota,
    /// Email authentication codes sent, per browser session
    /// (`email_authentication.emails_per_session`).
    pub email_authentication_emails_per_session: Quota,
    /// Codes tried, per email authentication (`email_authentication.attempt_per_session`).
    pub email_authentication_attempt_per_session: Quota,
    /// `POST /recover` per client address (upstream's `account_recovery.per_ip`).
    pub account_recovery_per_ip: Quota,
    /// `POST /recover` per normalized email address (upstream's
    /// `account_recovery.per_address`).
    pub account_recovery_per_address: Quota,
    /// Self-service registrations per client IP (upstream's `registration`).
    pub registration_per_ip: Quota,
    /// New codes mailed per registration (upstream's `email_authentication.emails_per_session`).
    pub registration_code_resend: Quota,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_per_ip: Quota::LOGIN_PER_IP,
            login_per_account: Quota::LOGIN_PER_ACCOUNT,
            client_registration_per_ip: Quota::CLIENT_REGISTRATION_PER_IP,
            compat_sso_redirect_per_ip: Quota::COMPAT_SSO_REDIRECT_PER_IP,
            upstream_authorize_per_ip: Quota::UPSTREAM_AUTHORIZE_PER_IP,
            device_authorization_per_ip: Quota::DEVICE_AUTHORIZATION_PER_IP,
            device_link_per_ip: Quota::DEVICE_LINK_PER_IP,
            email_authentication_per_ip: Quota::EMAIL_AUTHENTICATION_PER_IP,
            email_authentication_per_address: Quota::EMAIL_AUTHENTICATION_PER_ADDRESS,
            email_authentication_emails_per_session: Quota::EMAIL_AUTHENTICATION_EMAILS_PER_SESSION,
            email_authentication_attempt_per_session:
                Quota::EMAIL_AUTHENTICATION_ATTEMPT_PER_SESSION,
            account_recovery_per_ip: Quota::ACCOUNT_RECOVERY_PER_IP,
            account_recovery_per_address: Quota::ACCOUNT_RECOVERY_PER_ADDRESS,
            registration_per_ip: Quota::REGISTRATION,
            registration_code_resend: Quota::EMAIL_AUTHENTICATION_EMAILS_PER_SESSION,
        }
    }
}

#[derive(Debug)]
struct Limiters {
    login_per_ip: KeyedLimiter<IpKey>,
    login_per_account: KeyedLimiter<Ulid>,
    client_registration_per_ip: KeyedLimiter<IpKey>,
    compat_sso_redirect_per_ip: KeyedLimiter<IpKey>,
    upstream_authorize_per_ip: KeyedLimiter<IpKey>,
    device_authorization_per_ip: KeyedLimiter<IpKey>,
    device_link_per_ip: KeyedLimiter<IpKey>,
    email_authentication_per_ip: KeyedLimiter<IpKey>,
    email_authentication_per_address: KeyedLimiter<String>,
    email_authentication_emails_per_session: KeyedLimiter<Ulid>,
    email_authentication_attempt_per_session: KeyedLimiter<Ulid>,
    account_recovery_per_ip: KeyedLimiter<IpKey>,
    account_recovery_per_address: KeyedLimiter<String>,
    registration_per_ip: KeyedLimiter<IpKey>,
    registration_code_resend: KeyedLimiter<Ulid>,
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
                client_registration_per_ip: KeyedLimiter::new(config.client_registration_per_ip),
                compat_sso_redirect_per_ip: KeyedLimiter::new(config.compat_sso_redirect_per_ip),
                upstream_authorize_per_ip: KeyedLimiter::new(config.upstream_authorize_per_ip),
                device_authorization_per_ip: KeyedLimiter::new(config.device_authorization_per_ip),
                device_link_per_ip: KeyedLimiter::new(config.device_link_per_ip),
                email_authentication_per_ip: KeyedLimiter::new(config.email_authentication_per_ip),
                email_authentication_per_address: KeyedLimiter::new(
                    config.email_authentication_per_address,
                ),
                email_authentication_emails_per_session: KeyedLimiter::new(
                    config.email_authentication_emails_per_session,
                ),
                email_authentication_attempt_per_session: KeyedLimiter::new(
                    config.email_authentication_attempt_per_session,
                ),
                account_recovery_per_ip: KeyedLimiter::new(config.account_recovery_per_ip),
                account_recovery_per_address: KeyedLimiter::new(
                    config.account_recovery_per_address,
                ),
                registration_per_ip: KeyedLimiter::new(config.registration_per_ip),
                registration_code_resend: KeyedLimiter::new(config.registration_code_resend),
            }),
        }
    }

    /// Counts one password attempt from `ip` (when known), refusing it when that address is
    /// over its quota. Check this before looking at the password.
    pub fn check_password_ip(&self, ip: Option<IpAddr>, now_ms: i64) -> Result<(), RateLimited> {
        self.inner.login_per_ip.check_ip(ip, now_ms)
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

    /// Counts one dynamic client registration from `ip`.
    pub fn check_client_registration(
        &self,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        self.inner.client_registration_per_ip.check_ip(ip, now_ms)
    }

    /// Counts one legacy SSO redirect from `ip`.
    pub fn check_compat_sso_redirect(
        &self,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        self.inner.compat_sso_redirect_per_ip.check_ip(ip, now_ms)
    }

    /// Counts one upstream login start from `ip`.
    pub fn check_upstream_authorize(
        &self,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        self.inner.upstream_authorize_per_ip.check_ip(ip, now_ms)
    }

    /// Counts one device authorization request from `ip`.
    pub fn check_device_authorization(
        &self,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        self.inner.device_authorization_per_ip.check_ip(ip, now_ms)
    }

    /// Counts one registration form that passed its checks, from `ip` (checked before the
    /// password is hashed and the registration stored).
    pub fn check_registration(&self, ip: Option<IpAddr>, now_ms: i64) -> Result<(), RateLimited> {
        self.inner.registration_per_ip.check_ip(ip, now_ms)
    }

    /// Counts one "send a new code" of registration `registration_id`.
    pub fn check_registration_code_resend(
        &self,
        registration_id: Ulid,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        self.inner
            .registration_code_resend
            .check(&registration_id, now_ms)
    }

    /// Counts one user-code lookup on the `/link` page from `ip`.
    pub fn check_device_link(&self, ip: Option<IpAddr>, now_ms: i64) -> Result<(), RateLimited> {
        self.inner.device_link_per_ip.check_ip(ip, now_ms)
    }

    /// Counts one email authentication code about to be sent to `address` (compared in lower
    /// case) from `ip` in the browser session `session_id`: the address of the client first,
    /// then the mailbox, then the session (upstream MAS's `email_authentication` limits).
    pub fn check_email_authentication_send(
        &self,
        ip: Option<IpAddr>,
        address: &str,
        session_id: Ulid,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        let inner = &*self.inner;
        inner.email_authentication_per_ip.check_ip(ip, now_ms)?;
        let address = crate::model::normalize_email(address);
        inner
            .email_authentication_per_address
            .check(&address, now_ms)?;
        inner
            .email_authentication_emails_per_session
            .check(&session_id, now_ms)
    }

    /// Counts one code tried on the email authentication `authentication_id`.
    pub fn check_email_authentication_attempt(
        &self,
        authentication_id: Ulid,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        self.inner
            .email_authentication_attempt_per_session
            .check(&authentication_id, now_ms)
    }

    /// A password recovery request (`POST /recover`): per client address, then per address
    /// asked for (normalized), so that nobody floods one mailbox or the queue.
    pub fn check_account_recovery(
        &self,
        ip: Option<IpAddr>,
        email: &str,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        self.inner.account_recovery_per_ip.check_ip(ip, now_ms)?;
        self.inner
            .account_recovery_per_address
            .check(&email.to_owned(), now_ms)
    }

    /// Prunes every limiter at `now_ms` (see [`KeyedLimiter::prune`]).
    pub fn prune(&self, now_ms: i64) -> Pruned {
        let inner = &*self.inner;
        let mut total = inner.login_per_ip.prune(now_ms);
        total += inner.login_per_account.prune(now_ms);
        total += inner.client_registration_per_ip.prune(now_ms);
        total += inner.compat_sso_redirect_per_ip.prune(now_ms);
        total += inner.upstream_authorize_per_ip.prune(now_ms);
        total += inner.device_authorization_per_ip.prune(now_ms);
        total += inner.device_link_per_ip.prune(now_ms);
        total += inner.email_authentication_per_ip.prune(now_ms);
        total += inner.email_authentication_per_address.prune(now_ms);
        total += inner.email_authentication_emails_per_session.prune(now_ms);
        total += inner.email_authentication_attempt_per_session.prune(now_ms);
        total += inner.account_recovery_per_ip.prune(now_ms);
        total += inner.account_recovery_per_address.prune(now_ms);
        total += inner.registration_per_ip.prune(now_ms);
        total += inner.registration_code_resend.prune(now_ms);
        total
    }

    /// How many keys the limiters hold together (tests and metrics).
    pub fn len(&self) -> usize {
        let inner = &*self.inner;
        inner.login_per_ip.len()
            + inner.login_per_account.len()
            + inner.client_registration_per_ip.len()
            + inner.compat_sso_redirect_per_ip.len()
            + inner.upstream_authorize_per_ip.len()
            + inner.device_authorization_per_ip.len()
            + inner.device_link_per_ip.len()
            + inner.email_authentication_per_ip.len()
            + inner.email_authentication_per_address.len()
            + inner.email_authentication_emails_per_session.len()
            + inner.email_authentication_attempt_per_session.len()
            + inner.account_recovery_per_ip.len()
            + inner.account_recovery_per_address.len()
            + inner.registration_per_ip.len()
            + inner.registration_code_resend.len()
    }

    /// Whether no limiter holds a key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts the task that [prunes](Self::prune) the limiters every `every` (the server
    /// uses [`PRUNE_INTERVAL`]), at the time `clock` tells; abort the handle to stop it.
    pub fn spawn_pruning(&self, clock: Arc<dyn Clock>, every: Duration) -> JoinHandle<()> {
        let limiter = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let pruned = limiter.prune(clock.now_unix_ms());
                if pruned.overflowed > 0 {
                    tracing::warn!(
                        requests = pruned.overflowed,
                        max_keys = MAX_KEYS,
                        "a rate limiter was full: new clients shared one quota"
                    );
                }
                tracing::debug!(removed = pruned.removed, "rate limiters pruned");
            }
        })
    }
}

#[cfg(test)]
mod tests;
