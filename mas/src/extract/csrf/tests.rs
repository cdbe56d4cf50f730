use axum::http::{HeaderMap, HeaderValue};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use url::Url;

use super::*;
use crate::clock::MockClock;
use crate::config::EncryptionKey;
use crate::extract::cookies::{CookieManager, cookie_header};

fn manager() -> CookieManager {
    CookieManager::new(
        &EncryptionKey([3; 32]),
        &Url::parse("http://localhost/auth/").unwrap(),
    )
}

/// The next request's jar, carrying the cookies `jar` set.
fn next_request(manager: &CookieManager, jar: &CookieJar) -> CookieJar {
    manager.jar(&cookie_header(&jar.set_cookie_headers()))
}

#[test]
fn tokens_are_32_random_bytes_valid_for_an_hour() {
    let token = CsrfToken::generate(&mut StdRng::seed_from_u64(1), 1_000, None);
    assert_eq!(token.form_value().len(), 43);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(token.form_value()).unwrap().len(),
        32
    );
    assert_eq!(token.expires_at(), 1_000 + 3_600_000);
    assert_eq!(token.verify_form(1_000, None, token.form_value()), Ok(()));
    assert_eq!(
        token.verify_form(1_000 + 3_600_000, None, token.form_value()),
        Err(CsrfError::Expired)
    );
}

#[test]
fn other_values_are_mismatches() {
    let token = CsrfToken::generate(&mut StdRng::seed_from_u64(2), 0, None);
    let other = CsrfToken::generate(&mut StdRng::seed_from_u64(3), 0, None);
    for submitted in ["", other.form_value(), &token.form_value()[..42]] {
        assert_eq!(
            token.verify_form(1, None, submitted),
            Err(CsrfError::Mismatch)
        );
    }
}

#[test]
fn a_rendered_form_verifies_on_the_next_request() {
    let (manager, clock) = (manager(), MockClock::default());
    let mut rng = StdRng::seed_from_u64(4);
    let mut get = manager.jar(&HeaderMap::new());
    let token = get.csrf_token(&clock, &mut rng);
    let post = next_request(&manager, &get);
    assert_eq!(post.verify_csrf(&clock, token.form_value()), Ok(()));
    assert_eq!(post.verify_csrf(&clock, "forged"), Err(CsrfError::Mismatch));
}

#[test]
fn without_the_cookie_forms_are_refused() {
    let jar = manager().jar(&HeaderMap::new());
    let token = CsrfToken::generate(&mut StdRng::seed_from_u64(5), 0, None);
    assert_eq!(
        jar.verify_csrf(&MockClock::default(), token.form_value()),
        Err(CsrfError::Missing)
    );
}

#[test]
fn rendering_a_form_keeps_the_token_and_extends_its_expiry() {
    let (manager, clock) = (manager(), MockClock::default());
    let mut rng = StdRng::seed_from_u64(6);
    let mut first = manager.jar(&HeaderMap::new());
    let token = first.csrf_token(&clock, &mut rng);

    clock.advance(Duration::from_secs(50 * 60));
    let mut second = next_request(&manager, &first);
    let extended = second.csrf_token(&clock, &mut rng);
    assert_eq!(extended.form_value(), token.form_value());
    assert_eq!(extended.expires_at(), token.expires_at() + 50 * 60 * 1000);

    // 59 minutes after the second render (109 after the first) it still verifies.
    clock.advance(Duration::from_secs(59 * 60));
    let post = next_request(&manager, &second);
    assert_eq!(post.verify_csrf(&clock, token.form_value()), Ok(()));
}

#[test]
fn an_expired_token_is_refused_and_replaced_on_the_next_render() {
    let (manager, clock) = (manager(), MockClock::default());
    let mut rng = StdRng::seed_from_u64(7);
    let mut first = manager.jar(&HeaderMap::new());
    let token = first.csrf_token(&clock, &mut rng);
    clock.advance(CSRF_TTL);
    let mut later = next_request(&manager, &first);
    assert_eq!(
        later.verify_csrf(&clock, token.form_value()),
        Err(CsrfError::Expired)
    );
    let fresh = later.csrf_token(&clock, &mut rng);
    assert_ne!(fresh.form_value(), token.form_value());
    assert!(!fresh.is_expired(clock.now_unix_ms()));
}

#[test]
fn the_cookie_is_named_csrf_and_lives_an_hour() {
    let mut jar = manager().jar(&HeaderMap::new());
    jar.csrf_token(&MockClock::default(), &mut StdRng::seed_from_u64(8));
    let header = jar.set_cookie_headers()[0].to_str().unwrap().to_owned();
    assert!(header.starts_with("csrf="), "{header}");
    assert!(header.ends_with("; Max-Age=3600"), "{header}");
}

/// The `Cookie` header of a browser holding exactly these jars' cookies.
fn jars_header(jars: &[&CookieJar]) -> HeaderMap {
    let set_cookies: Vec<HeaderValue> = jars
        .iter()
        .flat_map(|jar| jar.set_cookie_headers())
        .collect();
    cookie_header(&set_cookies)
}

#[test]
fn a_planted_csrf_cookie_of_another_session_does_not_pass() {
    let (manager, clock) = (manager(), MockClock::default());
    let mut rng = StdRng::seed_from_u64(9);
    // The attacker renders a form without a session and keeps cookie and token.
    let mut attacker = manager.jar(&HeaderMap::new());
    let stolen = attacker.csrf_token(&clock, &mut rng);
    // The victim's browser is signed in; the attacker's csrf cookie is planted beside it.
    let mut victim_session = manager.jar(&HeaderMap::new());
    victim_session
        .set_session(&mut rng, Ulid::from_parts(1, 1))
        .unwrap();
    let planted = manager.jar(&jars_header(&[&victim_session, &attacker]));
    assert_eq!(
        planted.verify_csrf(&clock, stolen.form_value()),
        Err(CsrfError::OtherSession)
    );
    // A token the victim's browser rendered itself passes.
    let mut victim = manager.jar(&jars_header(&[&victim_session]));
    let own = victim.csrf_token(&clock, &mut rng);
    let post = manager.jar(&jars_header(&[&victim_session, &victim]));
    assert_eq!(post.verify_csrf(&clock, own.form_value()), Ok(()));
}

#[test]
fn signing_in_renews_the_token() {
    let (manager, clock) = (manager(), MockClock::default());
    let mut rng = StdRng::seed_from_u64(11);
    let mut before = manager.jar(&HeaderMap::new());
    let anonymous = before.csrf_token(&clock, &mut rng);
    before
        .set_session(&mut rng, Ulid::from_parts(2, 2))
        .unwrap();
    let signed_in = before.csrf_token(&clock, &mut rng);
    assert_ne!(anonymous.form_value(), signed_in.form_value());
    let post = next_request(&manager, &before);
    assert_eq!(post.verify_csrf(&clock, signed_in.form_value()), Ok(()));
    assert_eq!(
        post.verify_csrf(&clock, anonymous.form_value()),
        Err(CsrfError::Mismatch)
    );
}
