use super::{Route, percent_decode, route};

/// The routing table of docs/architecture.md, path by path.
#[test]
fn route_table_matches_the_documented_routing() {
    let table = [
        ("/healthz", Route::Healthz),
        ("/healthz/", Route::Synapse),
        ("/.well-known/matrix/client", Route::WellKnownClient),
        ("/.well-known/matrix/server", Route::WellKnownServer),
        ("/.well-known/matrix/support", Route::Synapse),
        ("/auth", Route::AuthSlash),
        ("/auth/", Route::Mas),
        ("/auth/.well-known/openid-configuration", Route::Mas),
        ("/auth/account/", Route::Mas),
        ("/authx", Route::Synapse),
        ("/authx/y", Route::Synapse),
        ("/_matrix/client/v3/login", Route::MasCompat),
        ("/_matrix/client/r0/login", Route::MasCompat),
        ("/_matrix/client/api/v1/login", Route::MasCompat),
        ("/_matrix/client/api/v1/refresh", Route::MasCompat),
        ("/_matrix/client/v3/logout", Route::MasCompat),
        ("/_matrix/client/v3/logout/all", Route::MasCompat),
        ("/_matrix/client/v3/refresh", Route::MasCompat),
        ("/_matrix/client/v3/login/sso/redirect", Route::MasCompat),
        (
            "/_matrix/client/v3/login/sso/redirect/01J0PR0V1D",
            Route::MasCompat,
        ),
        ("/_matrix/client/unstable/login", Route::MasCompat),
        ("/_matrix/client/v3/login/", Route::MasCompat),
        ("/_matrix/client/v3/loginx", Route::Synapse),
        ("/_matrix/client/v3/logouts", Route::Synapse),
        ("/_matrix/client//login", Route::Synapse),
        ("/_matrix/client/login", Route::Synapse),
        ("/_matrix/client/api/v2/login", Route::Synapse),
        ("/_matrix/client/v3/sync", Route::Synapse),
        ("/_matrix/client/v1/auth_metadata", Route::Synapse),
        (
            "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
            Route::Synapse,
        ),
        ("/_matrix/client/v3/%6Cogin", Route::Synapse),
        ("/_matrix/federation/v1/version", Route::Synapse),
        ("/_synapse/admin/v1/users", Route::Synapse),
        ("/_synapse/mas", Route::Blocked),
        ("/_synapse/mas/", Route::Blocked),
        ("/_synapse/mas/is_localpart_available", Route::Blocked),
        ("/_synapse/%6Das/is_localpart_available", Route::Blocked),
        ("/_synapse/%6d%61%73/x", Route::Blocked),
        ("/%5Fsynapse/mas/x", Route::Blocked),
        ("/_synapse%2Fmas/x", Route::Blocked),
        ("//_synapse//mas/x", Route::Blocked),
        // Wider than Synapse's own routing (exact case, one decoding), for proxies in front.
        ("/_SYNAPSE/Mas/x", Route::Blocked),
        ("/_synapse/%256Das/x", Route::Blocked),
        ("/_synapse/%25256d%2561s", Route::Blocked),
        ("/a/%25252e%25252E/_synapse/mas", Route::BadPath),
        ("/a/%2525252e", Route::BadPath),
        ("/_matrix/client/v3/rooms/%2523a%253Ab", Route::Synapse),
        ("/_synapse/mas.", Route::Synapse),
        ("/_synapse/masx", Route::Synapse),
        ("/_synapse/client/pick_idp", Route::Synapse),
        ("/_matrix/../_synapse/mas/x", Route::BadPath),
        ("/_matrix/client/v3/./login", Route::BadPath),
        ("/_matrix/%2e%2e/_synapse/mas", Route::BadPath),
        ("/_matrix/%2E/x", Route::BadPath),
        ("/auth/..", Route::BadPath),
        ("/a/..%2Fb", Route::BadPath),
        ("/a/...", Route::Synapse),
        ("/a/.b", Route::Synapse),
        ("/a/%ZZ/%", Route::Synapse),
        ("*", Route::BadPath),
        ("", Route::BadPath),
        ("/", Route::Front),
        ("//", Route::Synapse),
        ("/index.html", Route::Synapse),
        ("/.well-known/change-password", Route::ChangePassword),
        ("/.well-known/change-password/", Route::Synapse),
        ("/.well-known/Change-Password", Route::Synapse),
    ];
    for (path, expected) in table {
        assert_eq!(route(path), expected, "route({path:?})");
    }
}

#[test]
fn percent_decode_is_one_pass_and_lenient() {
    assert_eq!(percent_decode(b"/%6Das"), b"/mas");
    assert_eq!(percent_decode(b"%252e"), b"%2e");
    assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
    assert_eq!(percent_decode(b"%"), b"%");
    assert_eq!(percent_decode(b"%ff"), [0xff]);
}

mod properties {
    //! Property tests: the internal API stays blocked however a path is encoded, the compat
    //! rewrite is exactly the routing table's regex, and decoding never panics.

    use std::sync::LazyLock;

    use proptest::prelude::*;
    use proptest::sample::select;

    use super::super::{MAS_PREFIX, Route, percent_decode, route};

    /// Bounded: a few seconds for the whole module, and no regression files in the tree.
    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// The compat line of the routing table, the regex `is_compat` spells out by hand.
    static COMPAT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^/_matrix/client/(api/v1|[^/]+)/(login|logout|refresh)(/.*)?$").unwrap()
    });

    /// What the router sees of a request target: `None` when hyper would refuse it.
    fn path_of(target: &str) -> Option<String> {
        let uri: http::Uri = target.parse().ok()?;
        Some(uri.path().to_owned())
    }

    /// Python's `urllib.parse.unquote_to_bytes`, written independently of the router's decoder.
    fn unquote(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = input;
        while let Some((&first, tail)) = rest.split_first() {
            if let [b'%', a, b, ..] = rest
                && a.is_ascii_hexdigit()
                && b.is_ascii_hexdigit()
            {
                let hex = [*a, *b];
                let text = std::str::from_utf8(&hex).unwrap();
                out.push(u8::from_str_radix(text, 16).unwrap());
                rest = &rest[3..];
                continue;
            }
            out.push(first);
            rest = tail;
        }
        out
    }

    /// Synapse's view: Twisted splits the path on `/`, unquotes each segment and walks the
    /// resource tree from the root, one exact segment at a time.
    fn synapse_reaches_internal_api(path: &str) -> bool {
        let segments: Vec<Vec<u8>> = path
            .strip_prefix('/')
            .unwrap_or(path)
            .split('/')
            .map(|s| unquote(s.as_bytes()))
            .collect();
        segments.first().is_some_and(|s| s == b"_synapse")
            && segments.get(1).is_some_and(|s| s == b"mas")
    }

    /// The worst a normalising proxy in front could make of it: decode until nothing changes,
    /// merge slashes, resolve dot segments (RFC 3986 §5.2.4), ignore case.
    fn normalised_reaches_internal_api(path: &str) -> bool {
        let mut decoded = path.as_bytes().to_vec();
        loop {
            let next = unquote(&decoded);
            if next == decoded {
                break;
            }
            decoded = next;
        }
        let mut kept: Vec<&[u8]> = Vec::new();
        for segment in decoded.split(|&b| b == b'/') {
            match segment {
                b"" | b"." => {}
                b".." => {
                    kept.pop();
                }
                other => kept.push(other),
            }
        }
        kept.first()
            .is_some_and(|s| s.eq_ignore_ascii_case(b"_synapse"))
            && kept.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"mas"))
    }

    fn forwarded(route: Route) -> bool {
        !matches!(route, Route::Blocked | Route::BadPath)
    }

    /// One character of a name, as is or disguised.
    fn disguise(c: char) -> impl Strategy<Value = String> {
        let byte = c as u32;
        prop_oneof![
            3 => Just(c.to_string()),
            1 => Just(c.to_ascii_uppercase().to_string()),
            1 => Just(format!("%{byte:02X}")),
            1 => Just(format!("%{byte:02x}")),
            1 => Just(format!("%25{byte:02X}")),
            1 => Just(format!("%2525{byte:02x}")),
        ]
    }

    fn disguised(name: &'static str) -> impl Strategy<Value = String> {
        name.chars()
            .map(disguise)
            .collect::<Vec<_>>()
            .prop_map(|parts| parts.concat())
    }

    /// A separator as is, doubled, with dot segments that cancel out, or encoded.
    fn slash() -> impl Strategy<Value = &'static str> {
        select(
            &[
                "/",
                "/",
                "/",
                "//",
                "/./",
                "/x/../",
                "%2F",
                "%2f",
                "/%2e/",
                "/z/%2E%2e/",
                "%252F",
                "/x/.%2e/",
                "/y/./../",
                "///",
                "/%252e/",
            ][..],
        )
    }

    /// `/_synapse/mas/...` disguised every way a decoder or a normaliser might undo.
    fn internal_api_target() -> impl Strategy<Value = String> {
        (
            select(
                &[
                    "",
                    "",
                    "/x/..",
                    "/%2e%2e",
                    "/.",
                    "/",
                    "/_matrix/..",
                    "/a/b/../..",
                ][..],
            ),
            slash(),
            disguised("_synapse"),
            slash(),
            disguised("mas"),
            select(
                &[
                    "",
                    "/",
                    "/is_localpart_available",
                    "/x/y",
                    "/.",
                    "/x/..",
                    "/%2e",
                ][..],
            ),
            select(&["", "?", "?a=/_synapse/mas", "#frag", "?x#/../y", "?%2F"][..]),
        )
            .prop_map(|(prefix, s1, synapse, s2, mas, tail, suffix)| {
                format!("{prefix}{s1}{synapse}{s2}{mas}{tail}{suffix}")
            })
    }

    /// A segment: routing-table words, encodings of them, or random URL characters.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            select(
                &[
                    "_synapse",
                    "mas",
                    "_matrix",
                    "client",
                    "v3",
                    "r0",
                    "api",
                    "v1",
                    "unstable",
                    "login",
                    "logout",
                    "refresh",
                    "auth",
                    "healthz",
                    ".well-known",
                    "matrix",
                    "",
                    ".",
                    "..",
                    "%2e",
                    "%2E%2e",
                    "%2F",
                    "%6Das",
                    "%5Fsynapse",
                    "MAS",
                    "mas.",
                    "%25",
                    "%256D",
                    "%zz",
                    "%",
                    "x",
                ][..]
            )
            .prop_map(str::to_owned),
            "[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,6}",
        ]
    }

    /// Any request target made of such segments, with a query or a fragment now and then.
    fn any_target() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(segment(), 0..7),
            select(&["", "", "?", "?next=/_synapse/mas", "#x", "?a#b"][..]),
        )
            .prop_map(|(segments, suffix)| format!("/{}{suffix}", segments.join("/")))
    }

    /// A compat path, or something close to one.
    fn compat_like_target() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                3 => Just("/_matrix/client/"),
                1 => select(&[
                    "/_matrix/client//",
                    "/_matrix/clientx/",
                    "/auth/_matrix/client/",
                    "/_matrix/federation/",
                    "/_MATRIX/client/",
                ][..]),
            ],
            prop_oneof![
                select(
                    &[
                        "v3", "r0", "api/v1", "api/v2", "api", "unstable", "", "v3/x"
                    ][..]
                )
                .prop_map(str::to_owned),
                "[a-zA-Z0-9._%-]{0,4}",
            ],
            prop_oneof![
                2 => select(&["/login", "/logout", "/refresh"][..]),
                1 => select(&[
                    "/loginx", "/logouts", "/%6Cogin", "/Login", "login", "/sync", "/", "",
                ][..]),
            ],
            prop_oneof![
                select(&["", "/", "/all", "/sso/redirect", "/sso/redirect/01J0"][..])
                    .prop_map(str::to_owned),
                "[a-z/]{0,6}",
            ],
            select(&["", "?a=b", "?x=/login"][..]),
        )
            .prop_map(|(prefix, version, endpoint, tail, query)| {
                format!("{prefix}{version}{endpoint}{tail}{query}")
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn internal_api_is_never_forwarded_however_disguised(target in internal_api_target()) {
            let Some(path) = path_of(&target) else { return Ok(()) };
            prop_assert!(
                normalised_reaches_internal_api(&path),
                "generator produced {target:?}, which does not name the internal API"
            );
            let routed = route(&path);
            prop_assert!(!forwarded(routed), "{target:?} (path {path:?}) went to {routed:?}");
        }

        #[test]
        fn a_path_synapse_would_serve_from_its_internal_api_is_never_forwarded(
            target in prop_oneof![internal_api_target(), any_target()],
        ) {
            let Some(path) = path_of(&target) else { return Ok(()) };
            let routed = route(&path);
            if synapse_reaches_internal_api(&path) || normalised_reaches_internal_api(&path) {
                prop_assert!(!forwarded(routed), "{target:?} (path {path:?}) went to {routed:?}");
            }
        }

        #[test]
        fn compat_rewrite_is_exactly_the_routing_table_regex(
            target in prop_oneof![3 => compat_like_target(), 1 => any_target()],
        ) {
            let Some(path) = path_of(&target) else { return Ok(()) };
            let routed = route(&path);
            if !forwarded(routed) {
                return Ok(());
            }
            let compat = COMPAT.is_match(&path);
            prop_assert_eq!(routed == Route::MasCompat, compat, "{:?} went to {:?}", path, routed);
            // What each backend receives: MAS only ever paths under its prefix, Synapse never.
            let under_prefix = |p: &str| p.starts_with("/auth/");
            match routed {
                Route::MasCompat => {
                    let rewritten = format!("{MAS_PREFIX}{path}");
                    prop_assert!(under_prefix(&rewritten), "{:?}", rewritten);
                }
                Route::Mas => prop_assert!(under_prefix(&path)),
                Route::Synapse => prop_assert!(!under_prefix(&path) && path != MAS_PREFIX),
                Route::AuthSlash => prop_assert_eq!(path.as_str(), MAS_PREFIX),
                Route::Front => prop_assert_eq!(path.as_str(), "/"),
                Route::Healthz
                | Route::WellKnownClient
                | Route::WellKnownServer
                | Route::ChangePassword => {}
                Route::Blocked | Route::BadPath => unreachable!("filtered above"),
            }
        }

        #[test]
        fn route_never_panics(path in any::<String>()) {
            let _ = route(&path);
        }

        #[test]
        fn percent_decode_never_panics_and_never_grows(input in any::<Vec<u8>>()) {
            let decoded = percent_decode(&input);
            prop_assert!(decoded.len() <= input.len());
            if !input.contains(&b'%') {
                prop_assert_eq!(decoded, input);
            }
        }

        #[test]
        fn percent_decode_undoes_percent_encoding(bytes in any::<Vec<u8>>(), upper in any::<bool>()) {
            let encoded: String = bytes
                .iter()
                .map(|b| if upper { format!("%{b:02X}") } else { format!("%{b:02x}") })
                .collect();
            prop_assert_eq!(percent_decode(encoded.as_bytes()), bytes);
        }

        #[test]
        fn percent_decode_matches_python_unquote(input in "[%0-9a-fA-Fg+ -]{0,12}") {
            prop_assert_eq!(percent_decode(input.as_bytes()), unquote(input.as_bytes()));
        }
    }
}
