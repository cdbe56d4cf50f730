use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use serde::Deserialize;
use tower::ServiceExt as _;

use std::collections::BTreeSet;

use super::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    id: String,
}

fn manager(base: &str) -> CookieManager {
    CookieManager::new(&EncryptionKey([9; 32]), &Url::parse(base).unwrap())
}

fn session(id: &str) -> Session {
    Session { id: id.to_owned() }
}

#[test]
fn saved_cookies_read_back_on_the_next_request() {
    let manager = manager("http://localhost:8000/auth/");
    let mut rng = StdRng::seed_from_u64(1);
    let mut jar = manager.jar(&HeaderMap::new());
    assert_eq!(jar.load::<Session>("session"), None);
    jar.save(&mut rng, "session", &session("01AB"), Some(PERMANENT))
        .unwrap();
    // Visible on the same jar before it is sent.
    assert_eq!(jar.load("session"), Some(session("01AB")));

    let next = manager.jar(&cookie_header(&jar.set_cookie_headers()));
    assert_eq!(next.load("session"), Some(session("01AB")));
    assert!(next.set_cookie_headers().is_empty());
}

#[test]
fn attributes_follow_the_public_base() {
    let mut rng = StdRng::seed_from_u64(2);
    for (base, secure) in [
        ("http://localhost:8000/auth/", false),
        ("https://example.com/auth/", true),
    ] {
        let mut jar = manager(base).jar(&HeaderMap::new());
        jar.save(&mut rng, "session", &session("x"), Some(PERMANENT))
            .unwrap();
        jar.save(&mut rng, "csrf", &1, None).unwrap();
        let headers: Vec<String> = jar
            .set_cookie_headers()
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect();
        let (csrf, session) = (&headers[0], &headers[1]);
        // On https: the `__Host-` prefix, which needs `Path=/`.
        let (prefix, path) = if secure {
            ("__Host-", "/")
        } else {
            ("", "/auth/")
        };
        assert!(csrf.starts_with(&format!("{prefix}csrf=")), "{csrf}");
        let mut expected: BTreeSet<String> = [format!("Path={path}"), "HttpOnly".to_owned()]
            .into_iter()
            .chain(["SameSite=Lax".to_owned()])
            .chain(secure.then(|| "Secure".to_owned()))
            .collect();
        assert_eq!(
            cookie_attributes(csrf),
            expected,
            "a browser-session cookie"
        );
        expected.insert("Max-Age=315360000".to_owned());
        assert!(
            session.starts_with(&format!("{prefix}session=")),
            "{session}"
        );
        assert_eq!(cookie_attributes(session), expected);
    }
}

#[test]
fn a_base_without_trailing_slash_still_scopes_to_a_directory() {
    let mut jar = manager("http://example.com/auth").jar(&HeaderMap::new());
    jar.remove("session");
    let header = jar.set_cookie_headers()[0].to_str().unwrap().to_owned();
    assert!(header.starts_with("session=;"), "{header}");
    let expected: BTreeSet<String> = ["Path=/auth/", "HttpOnly", "SameSite=Lax", "Max-Age=0"]
        .map(str::to_owned)
        .into();
    assert_eq!(cookie_attributes(&header), expected);
}

#[test]
fn removed_cookies_read_as_absent() {
    let manager = manager("http://localhost/auth/");
    let mut jar = manager.jar(&HeaderMap::new());
    jar.save(
        &mut StdRng::seed_from_u64(3),
        "session",
        &session("x"),
        None,
    )
    .unwrap();
    let mut next = manager.jar(&cookie_header(&jar.set_cookie_headers()));
    next.remove("session");
    assert_eq!(next.load::<Session>("session"), None);
}

#[test]
fn forged_replayed_or_foreign_values_read_as_absent() {
    let manager = manager("http://localhost/auth/");
    let mut jar = manager.jar(&HeaderMap::new());
    jar.save(&mut StdRng::seed_from_u64(4), "csrf", &session("x"), None)
        .unwrap();
    let csrf_value = jar.set_cookie_headers()[0]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("csrf=")
        .to_owned();
    let mut headers = HeaderMap::new();
    // The csrf cookie's value replayed as the session cookie, plus junk.
    let cookie = format!("session={csrf_value}; other=plain; broken; csrf=AAAA");
    headers.insert(COOKIE, HeaderValue::try_from(cookie).unwrap());
    let jar = manager.jar(&headers);
    assert_eq!(jar.load::<Session>("session"), None);
    assert_eq!(jar.load::<Session>("csrf"), None);
    assert_eq!(jar.load::<String>("other"), None);
    // Another deployment's key cannot read ours.
    let foreign = CookieManager::new(
        &EncryptionKey([8; 32]),
        &Url::parse("http://localhost/auth/").unwrap(),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        COOKIE,
        HeaderValue::try_from(format!("csrf={csrf_value}")).unwrap(),
    );
    assert_eq!(foreign.jar(&headers).load::<Session>("csrf"), None);
    assert_eq!(manager.jar(&headers).load("csrf"), Some(session("x")));
}

#[test]
fn several_cookie_headers_and_quoted_values_are_read() {
    let manager = manager("http://localhost/auth/");
    let mut jar = manager.jar(&HeaderMap::new());
    let mut rng = StdRng::seed_from_u64(5);
    jar.save(&mut rng, "a", &1, None).unwrap();
    jar.save(&mut rng, "b", &2, None).unwrap();
    let set = jar.set_cookie_headers();
    let value = |i: usize| {
        set[i]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let mut headers = HeaderMap::new();
    headers.append(
        COOKIE,
        HeaderValue::try_from(format!("x=1; {}", value(0))).unwrap(),
    );
    let (name, quoted) = value(1)
        .split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .unwrap();
    headers.append(
        COOKIE,
        HeaderValue::try_from(format!("{name}=\"{quoted}\"")).unwrap(),
    );
    let jar = manager.jar(&headers);
    assert_eq!(jar.load::<i32>("a"), Some(1));
    assert_eq!(jar.load::<i32>("b"), Some(2));
}

#[derive(Clone)]
struct TestState {
    cookies: CookieManager,
}

impl FromRef<TestState> for CookieManager {
    fn from_ref(state: &TestState) -> Self {
        state.cookies.clone()
    }
}

async fn count(mut jar: CookieJar) -> (CookieJar, String) {
    let visits = jar.load::<u32>("visits").unwrap_or(0) + 1;
    jar.save(
        &mut StdRng::seed_from_u64(u64::from(visits)),
        "visits",
        &visits,
        None,
    )
    .expect("a number serializes");
    (jar, visits.to_string())
}

#[tokio::test]
async fn the_jar_works_as_an_axum_extractor_and_response_part() {
    let state = TestState {
        cookies: manager("http://localhost/auth/"),
    };
    let app = Router::new().route("/", get(count)).with_state(state);

    let first = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let set: Vec<HeaderValue> = first
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    assert_eq!(set.len(), 1);

    let mut request = Request::get("/").body(Body::empty()).unwrap();
    *request.headers_mut() = cookie_header(&set);
    let second = app.oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(second.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"2");
}

#[test]
fn https_cookies_use_the_host_prefix_at_the_root() {
    let manager = manager("https://matrix.example.com/auth/");
    let mut rng = StdRng::seed_from_u64(20);
    let mut jar = manager.jar(&HeaderMap::new());
    jar.save(&mut rng, "session", &session("01AB"), Some(PERMANENT))
        .unwrap();
    let headers = jar.set_cookie_headers();
    let header = headers[0].to_str().unwrap();
    assert!(header.starts_with("__Host-session="), "{header}");
    let attributes = cookie_attributes(header);
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(attributes.contains(attribute), "{attribute}: {header}");
    }
    assert!(!header.contains("Domain"), "{header}");
    // It reads back under its own name only; an unprefixed one (which anyone on a sibling
    // subdomain could set) is ignored.
    let next = manager.jar(&cookie_header(&headers));
    assert_eq!(next.load("session"), Some(session("01AB")));
    let value = header.split(';').next().unwrap().split_once('=').unwrap().1;
    let mut planted = HeaderMap::new();
    planted.insert(
        COOKIE,
        HeaderValue::try_from(format!("session={value}")).unwrap(),
    );
    assert_eq!(manager.jar(&planted).load::<Session>("session"), None);
}

#[test]
fn a_name_sent_twice_reads_as_absent() {
    let manager = manager("http://localhost:8000/auth/");
    let mut rng = StdRng::seed_from_u64(21);
    let mut jar = manager.jar(&HeaderMap::new());
    jar.save(&mut rng, "session", &session("01AB"), Some(PERMANENT))
        .unwrap();
    jar.save(&mut rng, "csrf", &1, None).unwrap();
    let pairs: Vec<String> = jar.set_cookie_headers().iter().map(cookie_pair).collect();
    let session_pair = pairs.iter().find(|p| p.starts_with("session=")).unwrap();
    let csrf_pair = pairs.iter().find(|p| p.starts_with("csrf=")).unwrap();
    for header in [
        format!("{session_pair}; {csrf_pair}; {session_pair}"),
        format!("{session_pair}; {csrf_pair}; session=other"),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::try_from(header.as_str()).unwrap());
        let next = manager.jar(&headers);
        assert_eq!(next.load::<Session>("session"), None, "{header}");
        assert_eq!(next.load::<i32>("csrf"), Some(1), "the other cookie stays");
    }
    // Two Cookie headers count the same.
    let mut headers = HeaderMap::new();
    headers.append(
        COOKIE,
        HeaderValue::try_from(session_pair.as_str()).unwrap(),
    );
    headers.append(COOKIE, HeaderValue::try_from("session=x").unwrap());
    assert_eq!(manager.jar(&headers).load::<Session>("session"), None);
}
