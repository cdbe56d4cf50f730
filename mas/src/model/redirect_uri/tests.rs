use proptest::prelude::*;

use super::*;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

fn for_client(uri: &str, client_uri: &str, native: bool) -> Result<(), RedirectUriError> {
    check_for_client(&url(uri), Some(&url(client_uri)), native)
}

#[test]
fn script_schemes_are_refused_whatever_their_case_or_client() {
    // The attack this module exists for: a client_uri whose one-label host reversed is
    // `javascript`, and the redirect URI `javascript:alert(document.domain)//`.
    for uri in [
        "javascript:alert(document.domain)//",
        "JavaScript:alert(1)",
        "JAVASCRIPT://%0aalert(1)",
        "vbscript:msgbox(1)",
        "VBScript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "blob:https://example.com/1",
        "about:blank",
    ] {
        let parsed = url(uri);
        assert!(!is_safe_target(&parsed), "{uri}");
        assert!(!is_safe_legacy_target(&parsed), "{uri}");
        assert_eq!(csp_source(&parsed), None, "{uri}");
        for client_uri in [
            "https://javascript/",
            "https://vbscript/",
            "https://data/",
            "https://example.com/",
        ] {
            assert!(
                for_client(uri, client_uri, true).is_err(),
                "{uri} {client_uri}"
            );
        }
    }
}

#[test]
fn private_use_schemes_need_a_dotted_non_suffix_client_host() {
    assert_eq!(
        for_client("com.example:/cb", "https://example.com/", true),
        Ok(())
    );
    assert_eq!(
        for_client("com.example.app:/cb", "https://example.com/", true),
        Ok(())
    );
    assert_eq!(
        for_client("io.element.app:/cb", "https://element.io/", true),
        Ok(())
    );
    for (uri, client_uri, expected) in [
        (
            "javascript:/cb",
            "https://javascript/",
            RedirectUriError::ForbiddenScheme("javascript".into()),
        ),
        (
            "localhost:/cb",
            "https://localhost/",
            RedirectUriError::NotPrivateUse("localhost".into()),
        ),
        (
            "io.github:/cb",
            "https://github.io/",
            RedirectUriError::NoSchemeOwner,
        ),
        (
            "uk.co:/cb",
            "https://co.uk/",
            RedirectUriError::NoSchemeOwner,
        ),
        (
            "com.exampleapp:/cb",
            "https://example.com/",
            RedirectUriError::SchemeNotOwned,
        ),
        (
            "org.example:/cb",
            "https://example.com/",
            RedirectUriError::SchemeNotOwned,
        ),
        (
            "com.example://host/cb",
            "https://example.com/",
            RedirectUriError::Authority,
        ),
        (
            "com.example:/cb#x",
            "https://example.com/",
            RedirectUriError::Fragment,
        ),
        (
            "com.:/cb",
            "https://example.com/",
            RedirectUriError::NotPrivateUse("com.".into()),
        ),
    ] {
        assert_eq!(
            for_client(uri, client_uri, true),
            Err(expected),
            "{uri} {client_uri}"
        );
    }
    // Web clients never use private-use schemes.
    assert_eq!(
        for_client("com.example:/cb", "https://example.com/", false),
        Err(RedirectUriError::WebScheme)
    );
    // Without a client_uri (a client stored before it was required) nothing owns a scheme.
    assert_eq!(
        check_for_client(&url("com.example:/cb"), None, true),
        Err(RedirectUriError::NoSchemeOwner)
    );
}

#[test]
fn web_and_loopback_rules() {
    assert_eq!(
        for_client("https://app.example.com/cb", "https://example.com/", false),
        Ok(())
    );
    assert_eq!(
        for_client("http://127.0.0.1:4567/cb", "https://example.com/", true),
        Ok(())
    );
    assert_eq!(
        for_client("http://[::1]/cb", "https://example.com/", true),
        Ok(())
    );
    assert_eq!(
        for_client("https://localhost/cb", "https://example.com/", true),
        Ok(())
    );
    for (uri, native, expected) in [
        ("https://evil.com/cb", true, RedirectUriError::OffHost),
        (
            "https://notexample.com/cb",
            false,
            RedirectUriError::OffHost,
        ),
        ("http://example.com/cb", true, RedirectUriError::Http),
        ("http://127.0.0.2/cb", true, RedirectUriError::Http),
        ("http://localhost/cb", false, RedirectUriError::Http),
        (
            "https://localhost/cb",
            false,
            RedirectUriError::WebLocalhost,
        ),
        (
            "https://example.com/cb#x",
            false,
            RedirectUriError::Fragment,
        ),
    ] {
        assert_eq!(
            for_client(uri, "https://example.com/", native),
            Err(expected),
            "{uri}"
        );
    }
}

#[test]
fn legacy_targets_allow_dotless_app_schemes_but_not_script() {
    assert!(is_safe_legacy_target(&url("element://connect")));
    assert!(is_safe_legacy_target(&url("im.fluffychat:/login")));
    assert!(is_safe_legacy_target(&url(
        "https://app.example.com/#/home"
    )));
    assert!(!is_safe_legacy_target(&url("javascript:alert(1)")));
    assert!(!is_safe_legacy_target(&url("JavaScript:alert(1)")));
}

#[test]
fn csp_sources_are_origins_or_schemes() {
    assert_eq!(
        csp_source(&url("https://app.example.com:8443/cb?x=1")).as_deref(),
        Some("https://app.example.com:8443")
    );
    assert_eq!(
        csp_source(&url("http://127.0.0.1:4567/cb")).as_deref(),
        Some("http://127.0.0.1:4567")
    );
    assert_eq!(
        csp_source(&url("com.example.app:/cb")).as_deref(),
        Some("com.example.app:")
    );
    assert_eq!(csp_source(&url("element://connect")), None);
}

#[test]
fn public_suffixes_are_recognized() {
    assert!(is_public_suffix(&url("https://com/")));
    assert!(is_public_suffix(&url("https://github.io/")));
    assert!(is_public_suffix(&url("https://co.uk/")));
    assert!(!is_public_suffix(&url("https://example.com/")));
    assert!(!is_public_suffix(&url("https://foo.github.io/")));
    assert!(!is_public_suffix(&url("https://localhost/")));
    assert!(!is_public_suffix(&url("https://127.0.0.1/")));
}

#[test]
fn reversed_host_matching_is_by_whole_labels() {
    assert!(scheme_matches_reversed_host("com.example", "example.com"));
    assert!(scheme_matches_reversed_host("io.element.app", "element.io"));
    assert!(scheme_matches_reversed_host("COM.Example.x", "example.com"));
    assert!(!scheme_matches_reversed_host("com", "example.com"));
    assert!(!scheme_matches_reversed_host("com.examples", "example.com"));
}

/// Any mixed-case spelling of `word`.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn client_uris() -> impl Strategy<Value = Url> {
    prop_oneof![
        Just(url("https://example.com/")),
        Just(url("https://javascript/")),
        Just(url("https://data/")),
        Just(url("https://github.io/")),
        "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}".prop_map(|host| url(&format!("https://{host}/"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever a stranger registers, an accepted redirect URI is http(s) or a dotted
    /// private-use scheme, never has a fragment, and its CSP source is one header token.
    #[test]
    fn accepted_uris_are_web_or_dotted_private_use(
        text in "[a-zA-Z][a-zA-Z0-9+.-]{0,12}:[ -~]{0,24}",
        client_uri in client_uris(),
        native in any::<bool>(),
    ) {
        if let Ok(uri) = Url::parse(&text)
            && check_for_client(&uri, Some(&client_uri), native).is_ok()
        {
            let scheme = uri.scheme();
            prop_assert!(matches!(scheme, "http" | "https") || scheme.contains('.'), "{uri}");
            prop_assert!(!FORBIDDEN_SCHEMES.contains(&scheme));
            prop_assert!(uri.fragment().is_none());
            let source = csp_source(&uri).unwrap();
            prop_assert!(!source.contains(|c: char| c.is_whitespace() || c == ';' || c == ','));
        }
    }

    /// Script and local schemes are refused in any case, with anything after them.
    #[test]
    fn forbidden_schemes_fail_in_any_case(
        scheme in prop_oneof![
            any_case("javascript"), any_case("vbscript"), any_case("data"), any_case("file"),
            any_case("blob"), any_case("about"),
        ],
        rest in "[ -~]{0,24}",
        client_uri in client_uris(),
    ) {
        if let Ok(uri) = Url::parse(&format!("{scheme}:{rest}")) {
            prop_assert!(!is_safe_target(&uri));
            prop_assert!(!is_safe_legacy_target(&uri));
            prop_assert!(csp_source(&uri).is_none());
            prop_assert!(check_for_client(&uri, Some(&client_uri), true).is_err());
        }
    }

    /// The reversed client host (plus labels) is accepted; any other first labels are not.
    #[test]
    fn reversed_hosts_own_their_schemes(
        labels in proptest::collection::vec("[a-z][a-z0-9]{0,6}", 2..4),
        extra in proptest::option::of("[a-z]{1,6}"),
        other in "[a-z]{1,6}",
    ) {
        let host = labels.join(".");
        let client_uri = url(&format!("https://{host}/"));
        prop_assume!(can_own_a_scheme(&host));
        let mut reversed: Vec<&str> = labels.iter().rev().map(String::as_str).collect();
        if let Some(extra) = &extra {
            reversed.push(extra);
        }
        let scheme = reversed.join(".");
        let uri = format!("{scheme}:/cb");
        prop_assert_eq!(for_client(&uri, client_uri.as_str(), true), Ok(()));
        prop_assume!(other != labels[labels.len() - 1]);
        let wrong = format!("{other}.{}", reversed[1..].join("."));
        let wrong_uri = format!("{wrong}:/cb");
        prop_assert!(for_client(&wrong_uri, client_uri.as_str(), true).is_err());
    }
}
