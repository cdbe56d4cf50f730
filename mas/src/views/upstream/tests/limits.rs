//! Abuse limits: upstream logins per client address.

use super::*;

async fn upstream_logins_are_rate_limited_per_address(db: Database) {
    let (_fake, app) = setup(db).await;
    // Sixty from one IPv6 /64, each address different.
    for n in 1..=60 {
        let mut browser = app
            .browser()
            .with_peer(&format!("[2001:db8:5:6::{n:x}]:4000"));
        start(&mut browser, AUTHORIZE).await;
    }
    let mut browser = app.browser().with_peer("[2001:db8:5:6:ffff::1]:4000");
    let response = browser.get(AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::TOO_MANY_REQUESTS,
        &["Too many sign-in attempts", "Wait 2 seconds"],
    );
    assert_eq!(response.header("retry-after"), Some("2"));
    assert!(!browser.has_cookie("upstream-oauth2-sessions"));
    let sessions = authorization_sessions(&app).await;
    assert_eq!(sessions, 60, "the refused request stored nothing");
    // Another /64 is another client; one interval later the first gets one more.
    let mut other = app.browser().with_peer("[2001:db8:5:7::1]:4000");
    start(&mut other, AUTHORIZE).await;
    app.clock.advance(std::time::Duration::from_secs(2));
    start(&mut browser, AUTHORIZE).await;
}

crate::storage::testing::test_on_both_backends!(upstream_logins_are_rate_limited_per_address);
