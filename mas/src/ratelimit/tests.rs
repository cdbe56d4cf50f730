use super::*;
use crate::clock::MockClock;

const T0: i64 = 1_704_067_200_000;

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

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
fn a_zero_rate_never_refills() {
    let limiter = KeyedLimiter::new(Quota::new(1, 0.0));
    limiter.check(&(), T0).unwrap();
    assert!(limiter.check(&(), T0 + 86_400_000).is_err());
}

#[test]
fn checks_never_prune_and_prune_drops_only_expired_keys() {
    // The old request path retained over the whole map once it held 4096 keys.
    let limiter = KeyedLimiter::new(Quota::new(1, 1.0));
    for key in 0..5000_u32 {
        limiter.check(&key, T0).unwrap();
    }
    limiter.check(&u32::MAX, T0 + 10_000).unwrap();
    assert_eq!(limiter.len(), 5001);
    // At T0 + 1 s the first 5000 TATs have just passed; the last one runs until T0 + 11 s.
    let pruned = limiter.prune(T0 + 10_000);
    assert_eq!(
        pruned,
        Pruned {
            removed: 5000,
            overflowed: 0
        }
    );
    assert_eq!(limiter.len(), 1);
    assert_eq!(limiter.prune(T0 + 10_999).removed, 0);
    assert_eq!(limiter.prune(T0 + 11_000).removed, 1);
    assert!(limiter.is_empty());
}

#[test]
fn a_full_limiter_makes_newcomers_share_one_quota_until_the_next_prune() {
    let limiter = KeyedLimiter::with_max_keys(Quota::new(2, 1.0), 2);
    limiter.check(&"a", T0).unwrap();
    limiter.check(&"b", T0).unwrap();
    // Full: "c" and "d" share one state with a burst of 2.
    limiter.check(&"c", T0).unwrap();
    limiter.check(&"d", T0).unwrap();
    let refused = limiter.check(&"e", T0).unwrap_err();
    assert_eq!(refused.retry_after, Duration::from_secs(1));
    assert_eq!(limiter.len(), 2);
    // The keys already tracked keep their own state.
    limiter.check(&"a", T0).unwrap();
    assert!(limiter.check(&"a", T0).is_err());
    // After a prune, a newcomer gets its own key again.
    let pruned = limiter.prune(T0 + 2_000);
    assert_eq!(
        pruned,
        Pruned {
            removed: 2,
            overflowed: 3
        }
    );
    limiter.check(&"e", T0 + 2_000).unwrap();
    limiter.check(&"e", T0 + 2_000).unwrap();
    assert!(limiter.check(&"e", T0 + 2_000).is_err());
    assert_eq!(limiter.len(), 1);
    assert_eq!(limiter.prune(T0 + 2_000).overflowed, 0);
}

#[test]
fn ipv6_addresses_are_limited_per_64_and_ipv4_per_address() {
    let limiter = RateLimiter::default();
    for address in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
    ] {
        limiter.check_password_ip(ip(address), T0).unwrap();
    }
    // A fourth address of the same /64 is the same client.
    assert!(
        limiter
            .check_password_ip(ip("2001:db8:1:2:abcd::9"), T0)
            .is_err()
    );
    // The next /64 is another client.
    limiter
        .check_password_ip(ip("2001:db8:1:3::1"), T0)
        .unwrap();
    // IPv4: one address is one client, its mapped IPv6 form included.
    for _ in 0..3 {
        limiter.check_password_ip(ip("192.0.2.7"), T0).unwrap();
    }
    assert!(
        limiter
            .check_password_ip(ip("::ffff:192.0.2.7"), T0)
            .is_err()
    );
    limiter.check_password_ip(ip("192.0.2.8"), T0).unwrap();
}

#[test]
fn ip_keys_group_ipv6_by_64() {
    let key = |text: &str| IpKey::from(text.parse::<IpAddr>().unwrap());
    assert_eq!(key("2001:db8:a:b:1::1"), key("2001:db8:a:b:2::2"));
    assert_ne!(key("2001:db8:a:b::1"), key("2001:db8:a:c::1"));
    assert_eq!(key("::ffff:198.51.100.4"), key("198.51.100.4"));
    assert_ne!(key("198.51.100.4"), key("198.51.100.5"));
    assert_eq!(key("2001:db8:a:b:1::1").to_string(), "2001:db8:a:b::/64");
    assert_eq!(key("::ffff:198.51.100.4").to_string(), "198.51.100.4");
}

#[test]
fn password_limits_follow_the_spec_defaults() {
    let limiter = RateLimiter::default();
    let user = Ulid::nil();
    for _ in 0..3 {
        limiter.check_password(ip("192.0.2.7"), user, T0).unwrap();
    }
    assert!(limiter.check_password(ip("192.0.2.7"), user, T0).is_err());
    // Another address still gets through (the account allows 1800 at once).
    limiter.check_password(ip("192.0.2.8"), user, T0).unwrap();
    // Without a known address only the account counts.
    limiter.check_password(None, user, T0).unwrap();
}

#[test]
fn the_account_limit_holds_across_addresses() {
    let limiter = RateLimiter::new(RateLimitConfig {
        login_per_account: Quota::new(2, 0.5),
        ..RateLimitConfig::default()
    });
    let user = Ulid::nil();
    limiter.check_password_account(user, T0).unwrap();
    limiter.check_password_account(user, T0).unwrap();
    let refused = limiter.check_password_account(user, T0).unwrap_err();
    assert_eq!(refused.retry_after, Duration::from_secs(2));
}

#[test]
fn row_creating_endpoints_have_their_own_quotas() {
    type Check = fn(&RateLimiter, Option<IpAddr>, i64) -> Result<(), RateLimited>;
    let cases: [(Check, u32, u64); 3] = [
        (RateLimiter::check_client_registration, 10, 60),
        (RateLimiter::check_compat_sso_redirect, 10, 30),
        (RateLimiter::check_upstream_authorize, 60, 2),
    ];
    for (check, burst, interval_secs) in cases {
        let limiter = RateLimiter::default();
        for _ in 0..burst {
            check(&limiter, ip("203.0.113.1"), T0).unwrap();
        }
        let refused = check(&limiter, ip("203.0.113.1"), T0).unwrap_err();
        assert_eq!(refused.retry_after_secs(), interval_secs);
        // Limits are separate: the password limit of that address is untouched.
        limiter.check_password_ip(ip("203.0.113.1"), T0).unwrap();
        let later = T0 + i64::try_from(interval_secs * 1000).unwrap();
        check(&limiter, ip("203.0.113.1"), later).unwrap();
        // No address known (in-process requests): not limited.
        check(&limiter, None, T0).unwrap();
    }
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let secs = |ms| {
        RateLimited {
            retry_after: Duration::from_millis(ms),
        }
        .retry_after_secs()
    };
    assert_eq!(secs(0), 1);
    assert_eq!(secs(1), 1);
    assert_eq!(secs(1000), 1);
    assert_eq!(secs(1001), 2);
    assert_eq!(secs(59_999), 60);
}

#[test]
fn respond_answers_429_with_retry_after() {
    let limited = RateLimited {
        retry_after: Duration::from_millis(2_500),
    };
    let response = limited.respond((StatusCode::BAD_REQUEST, "slow down"));
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "3");
}

#[test]
fn the_rate_limiter_prunes_every_limiter() {
    let limiter = RateLimiter::default();
    let address = ip("2001:db8::1");
    limiter.check_password(address, Ulid::nil(), T0).unwrap();
    limiter.check_client_registration(address, T0).unwrap();
    limiter.check_compat_sso_redirect(address, T0).unwrap();
    limiter.check_upstream_authorize(address, T0).unwrap();
    assert_eq!(limiter.len(), 5);
    // The longest interval of these is the registration's minute.
    assert_eq!(limiter.prune(T0 + 30_000).removed, 4);
    assert_eq!(limiter.prune(T0 + 60_000).removed, 1);
    assert!(limiter.is_empty());
}

#[tokio::test]
async fn the_pruning_task_prunes_at_the_injected_clock_time() {
    let clock = MockClock::new(T0);
    let limiter = RateLimiter::default();
    limiter.check_password_ip(ip("192.0.2.1"), T0).unwrap();
    let task = limiter.spawn_pruning(Arc::new(clock.clone()), Duration::from_millis(5));
    // Whatever the wall clock does, nothing has expired at the mock clock's time.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(limiter.len(), 1);
    clock.advance(Duration::from_secs(20));
    tokio::time::timeout(Duration::from_secs(5), async {
        while !limiter.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the task did not prune");
    task.abort();
}

#[test]
fn email_codes_are_limited_per_address_in_any_case_per_session_and_per_ip() {
    let limiter = RateLimiter::default();
    let (s1, s2, s3) = (
        Ulid::from_parts(1, 1),
        Ulid::from_parts(1, 2),
        Ulid::from_parts(1, 3),
    );
    // Two codes per browser session at once.
    let send = |address: &str, session, from: &str| {
        limiter.check_email_authentication_send(ip(from), address, session, T0)
    };
    send("a@example.org", s1, "192.0.2.1").unwrap();
    send("b@example.org", s1, "192.0.2.1").unwrap();
    send("c@example.org", s1, "192.0.2.1").unwrap_err();
    // Three per address, whatever the letter case and session.
    send("A@EXAMPLE.org", s2, "192.0.2.2").unwrap();
    send("a@example.org", s3, "192.0.2.3").unwrap();
    let refused = send("a@example.ORG", s3, "192.0.2.3").unwrap_err();
    assert!(refused.retry_after > Duration::from_secs(60), "{refused:?}");
    // Five per client address.
    for n in 0..2 {
        let session = Ulid::from_parts(2, n);
        send(&format!("ip{n}@example.org"), session, "192.0.2.1").unwrap();
    }
    send("ip9@example.org", Ulid::from_parts(2, 9), "192.0.2.1").unwrap_err();

    // Ten codes tried per authentication at once, then one a minute.
    let authentication = Ulid::from_parts(3, 1);
    for _ in 0..10 {
        limiter
            .check_email_authentication_attempt(authentication, T0)
            .unwrap();
    }
    limiter
        .check_email_authentication_attempt(authentication, T0)
        .unwrap_err();
    limiter
        .check_email_authentication_attempt(Ulid::from_parts(3, 2), T0)
        .unwrap();
}
