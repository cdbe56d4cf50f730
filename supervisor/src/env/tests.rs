use std::collections::BTreeMap;
use std::path::Path;

use super::*;

fn parse(vars: &[(&str, &str)]) -> Result<Env, EnvErrors> {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Env::parse(&map, Path::new("/srv/app"))
}

fn problems(vars: &[(&str, &str)]) -> Vec<String> {
    parse(vars)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn empty_environment_gives_the_local_defaults() {
    let env = parse(&[]).unwrap();
    assert!(!env.cloudron);
    assert_eq!(env.origin_str(), "http://localhost:8000");
    assert_eq!(env.server_name, "localhost");
    assert!(!env.server_name_explicit);
    assert_eq!(env.database, Database::Sqlite);
    assert_eq!(env.data_dir, Path::new("/srv/app/data"));
    assert_eq!(env.run_dir, Path::new("/srv/app/data/run"));
    assert_eq!(
        (env.http_port, env.synapse_port, env.mas_port),
        (8000, 8008, 8080)
    );
    assert_eq!(env.stop_timeout, Duration::from_secs(10));
    assert_eq!(env.db_wait, Duration::from_secs(30));
    assert_eq!(env.max_connections, 1024);
    assert_eq!(env.request_idle_timeout, Duration::from_secs(30));
    assert!(env.password_login);
    assert!(env.oidc.is_none() && env.mail.is_none() && env.turn.is_none());
    assert_eq!(env.user, None);
}

#[test]
fn cloudron_environment_uses_platform_paths_user_and_parent_domain() {
    let env = parse(&[
        ("CLOUDRON", "1"),
        ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
        ("CLOUDRON_APP_DOMAIN", "matrix.example.com"),
    ])
    .unwrap();
    assert!(env.cloudron);
    assert_eq!(env.server_name, "example.com");
    assert_eq!(env.data_dir, Path::new("/app/data"));
    assert_eq!(env.run_dir, Path::new("/run/appliance"));
    assert_eq!(env.user.as_deref(), Some("cloudron"));
}

#[test]
fn cloudron_two_label_domain_is_its_own_server_name() {
    let env = parse(&[
        ("CLOUDRON", "1"),
        ("CLOUDRON_APP_ORIGIN", "https://example.com"),
        ("CLOUDRON_APP_DOMAIN", "example.com"),
    ])
    .unwrap();
    assert_eq!(env.server_name, "example.com");
}

#[test]
fn local_server_name_is_the_origin_host() {
    let env = parse(&[("CLOUDRON_APP_ORIGIN", "https://chat.example.org")]).unwrap();
    assert_eq!(env.server_name, "chat.example.org");
    assert_eq!(env.app_domain, "chat.example.org");
}

#[test]
fn explicit_server_name_is_validated_and_marked() {
    let env = parse(&[("APPLIANCE_SERVER_NAME", "Example.COM")]).unwrap();
    assert_eq!(env.server_name, "example.com");
    assert!(env.server_name_explicit);
    let p = problems(&[("APPLIANCE_SERVER_NAME", "bad name!")]);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("APPLIANCE_SERVER_NAME: "), "{p:?}");
}

#[test]
fn server_name_grammar() {
    for ok in [
        "example.com",
        "localhost:8448",
        "1.2.3.4",
        "[::1]",
        "[::1]:8448",
        "a-b.c",
    ] {
        assert!(validate_server_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "exa mple.com",
        "example.com:0",
        "example.com:99999",
        "[::1",
        "[zz]",
        "a..b",
        "x_y",
    ] {
        assert!(validate_server_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn unparseable_origin_names_the_variable() {
    let p = problems(&[("CLOUDRON_APP_ORIGIN", "not a url")]);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("CLOUDRON_APP_ORIGIN: \"not a url\" is not a valid URL"),
        "{p:?}"
    );
}

#[test]
fn origin_with_path_or_other_scheme_is_refused() {
    for bad in [
        "https://example.com/matrix",
        "ftp://example.com",
        "https://u:p@example.com",
    ] {
        let p = problems(&[("CLOUDRON_APP_ORIGIN", bad)]);
        assert!(p[0].starts_with("CLOUDRON_APP_ORIGIN: "), "{bad}: {p:?}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(&[
        ("CLOUDRON_APP_ORIGIN", "::"),
        ("APPLIANCE_HTTP_PORT", "eighty"),
        ("APPLIANCE_STOP_TIMEOUT", "-3"),
        ("APPLIANCE_PASSWORD_LOGIN", "maybe"),
        ("CLOUDRON_PROXY_IP", "10.0.0"),
    ]);
    let vars: Vec<&str> = p.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        vars,
        [
            "CLOUDRON_APP_ORIGIN",
            "CLOUDRON_PROXY_IP",
            "APPLIANCE_HTTP_PORT",
            "APPLIANCE_STOP_TIMEOUT",
            "APPLIANCE_PASSWORD_LOGIN"
        ]
    );
}

#[test]
fn router_limits_are_read_and_checked() {
    let env = parse(&[
        ("APPLIANCE_MAX_CONNECTIONS", "64"),
        ("APPLIANCE_REQUEST_IDLE_TIMEOUT", " 5 "),
    ])
    .unwrap();
    assert_eq!(env.max_connections, 64);
    assert_eq!(env.request_idle_timeout, Duration::from_secs(5));
    assert_eq!(
        problems(&[
            ("APPLIANCE_MAX_CONNECTIONS", "0"),
            ("APPLIANCE_REQUEST_IDLE_TIMEOUT", "0"),
        ]),
        [
            "APPLIANCE_MAX_CONNECTIONS: \"0\" is not a whole number from 1 to 1000000",
            "APPLIANCE_REQUEST_IDLE_TIMEOUT: \"0\" is not a whole number from 1 to 3600",
        ]
    );
    for (var, bad) in [
        ("APPLIANCE_MAX_CONNECTIONS", "many"),
        ("APPLIANCE_MAX_CONNECTIONS", "-1"),
        ("APPLIANCE_MAX_CONNECTIONS", "1000001"),
        ("APPLIANCE_REQUEST_IDLE_TIMEOUT", "1.5"),
        ("APPLIANCE_REQUEST_IDLE_TIMEOUT", "3601"),
        // Larger than any deadline a clock can hold: refused, not a panic later.
        ("APPLIANCE_REQUEST_IDLE_TIMEOUT", "18446744073709551615"),
    ] {
        let p = problems(&[(var, bad)]);
        assert_eq!(p.len(), 1, "{var}={bad}: {p:?}");
        assert!(p[0].starts_with(&format!("{var}: ")), "{var}={bad}: {p:?}");
    }
}

#[test]
fn ports_must_be_valid_and_distinct() {
    assert!(problems(&[("APPLIANCE_MAS_PORT", "0")])[0].starts_with("APPLIANCE_MAS_PORT: "));
    assert!(problems(&[("APPLIANCE_MAS_PORT", "70000")])[0].starts_with("APPLIANCE_MAS_PORT: "));
    let p = problems(&[("APPLIANCE_MAS_PORT", "8008")]);
    assert_eq!(
        p,
        [
            "APPLIANCE_MAS_PORT: port 8008 is also used by APPLIANCE_SYNAPSE_PORT; each needs its own"
        ]
    );
}

#[test]
fn postgres_from_url_with_encoded_password() {
    let env = parse(&[(
        "CLOUDRON_POSTGRESQL_URL",
        "postgres://user:p%40ss%2Fw@db.local:6543/mydb",
    )])
    .unwrap();
    let Database::Postgres(pg) = env.database else {
        panic!("expected PostgreSQL")
    };
    assert_eq!(pg.host, "db.local");
    assert_eq!(pg.port, 6543);
    assert_eq!(pg.user, "user");
    assert_eq!(pg.password, "p@ss/w");
    assert_eq!(pg.database, "mydb");
    assert_eq!(pg.url(), "postgresql://user:p%40ss%2Fw@db.local:6543/mydb");
    assert!(
        !format!("{pg:?}").contains("p@ss"),
        "Debug must not show the password"
    );
}

#[test]
fn postgres_from_split_variables_and_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let env = parse(&[
        ("CLOUDRON_POSTGRESQL_HOST", "postgresql"),
        ("CLOUDRON_POSTGRESQL_PORT", "5432"),
        ("CLOUDRON_POSTGRESQL_USERNAME", "app"),
        ("CLOUDRON_POSTGRESQL_PASSWORD_FILE", pw.to_str().unwrap()),
        ("CLOUDRON_POSTGRESQL_DATABASE", "db"),
    ])
    .unwrap();
    let Database::Postgres(pg) = env.database else {
        panic!("expected PostgreSQL")
    };
    assert_eq!(
        (pg.host.as_str(), pg.password.as_str()),
        ("postgresql", "s3cret")
    );
}

#[test]
fn bad_postgres_url_never_echoes_the_password() {
    let p = problems(&[("CLOUDRON_POSTGRESQL_URL", "mysql://u:hunter2@h/db")]);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("CLOUDRON_POSTGRESQL_URL: "));
    assert!(!p[0].contains("hunter2"));
}

#[test]
fn secret_and_secret_file_together_are_refused() {
    let p = problems(&[
        ("CLOUDRON_TURN_SERVER", "turn.example.com"),
        ("CLOUDRON_TURN_SECRET", "a"),
        ("CLOUDRON_TURN_SECRET_FILE", "/x"),
    ]);
    assert!(
        p.iter()
            .any(|l| l.starts_with("CLOUDRON_TURN_SECRET: set either")),
        "{p:?}"
    );
}

#[test]
fn missing_secret_file_is_reported() {
    let p = problems(&[("CLOUDRON_OIDC_CLIENT_SECRET_FILE", "/nonexistent/secret")]);
    assert!(
        p.iter()
            .any(|l| l.starts_with("CLOUDRON_OIDC_CLIENT_SECRET_FILE: cannot read")),
        "{p:?}"
    );
}

#[test]
fn oidc_needs_issuer_client_id_and_secret_and_turns_password_login_off() {
    let p = problems(&[("CLOUDRON_OIDC_ISSUER", "https://my.example.com")]);
    assert!(p.iter().any(|l| l.starts_with("CLOUDRON_OIDC_CLIENT_ID: ")));
    assert!(
        p.iter()
            .any(|l| l.starts_with("CLOUDRON_OIDC_CLIENT_SECRET: "))
    );

    let vars = [
        ("CLOUDRON_OIDC_ISSUER", "https://my.example.com"),
        ("CLOUDRON_OIDC_CLIENT_ID", "cid"),
        ("CLOUDRON_OIDC_CLIENT_SECRET", "csecret"),
        ("CLOUDRON_OIDC_PROVIDER_NAME", "My Cloudron"),
    ];
    let env = parse(&vars).unwrap();
    assert_eq!(env.oidc.as_ref().unwrap().provider_name, "My Cloudron");
    assert!(
        !env.password_login,
        "SSO-only by default when the platform IdP is configured"
    );
    assert!(!format!("{:?}", env.oidc).contains("csecret"));

    let mut with_override = vars.to_vec();
    with_override.push(("APPLIANCE_PASSWORD_LOGIN", "true"));
    assert!(parse(&with_override).unwrap().password_login);
}

#[test]
fn mail_needs_a_port_and_a_sender() {
    let p = problems(&[("CLOUDRON_MAIL_SMTP_SERVER", "mail")]);
    assert!(p[0].starts_with("CLOUDRON_MAIL_SMTP_PORT: "));
    let p = problems(&[
        ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
        ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
    ]);
    assert!(p[0].starts_with("CLOUDRON_MAIL_FROM: "));
    let env = parse(&[
        ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
        ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
        ("CLOUDRON_MAIL_FROM", "matrix@example.com"),
    ])
    .unwrap();
    assert_eq!(env.mail.unwrap().smtp_port, Some(2525));
}

#[test]
fn turn_defaults_its_port() {
    let env = parse(&[
        ("CLOUDRON_TURN_SERVER", "turn.example.com"),
        ("CLOUDRON_TURN_SECRET", "t"),
    ])
    .unwrap();
    let turn = env.turn.unwrap();
    assert_eq!((turn.port, turn.tls_port), (3478, None));
}

#[test]
fn synapse_python_must_exist_when_given() {
    let p = problems(&[("APPLIANCE_SYNAPSE_PYTHON", "/nonexistent/python")]);
    assert_eq!(
        p,
        ["APPLIANCE_SYNAPSE_PYTHON: /nonexistent/python does not exist"]
    );
}

#[test]
fn relative_dirs_are_anchored_at_the_working_directory() {
    let env = parse(&[("APPLIANCE_DATA_DIR", "d"), ("APPLIANCE_RUN_DIR", "/tmp/r")]).unwrap();
    assert_eq!(env.data_dir, Path::new("/srv/app/d"));
    assert_eq!(env.run_dir, Path::new("/tmp/r"));
}

mod properties {
    use proptest::prelude::*;

    use super::super::percent_decode;

    /// `%` and two hex digits is an escape; anything else stays as it is (RFC 3986 §2.1).
    fn reference(input: &str) -> Option<String> {
        let mut out = Vec::new();
        let mut rest = input.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            if let [b'%', a, b, ..] = rest
                && a.is_ascii_hexdigit()
                && b.is_ascii_hexdigit()
            {
                let hex = [*a, *b];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
                rest = &rest[3..];
                continue;
            }
            out.push(first);
            rest = tail;
        }
        String::from_utf8(out).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn percent_decode_never_panics(input in any::<String>()) {
            let _ = percent_decode(&input);
        }

        #[test]
        fn percent_decode_decodes_exactly_the_valid_escapes(input in "[%0-9a-fA-Fg+é -]{0,12}") {
            prop_assert_eq!(percent_decode(&input), reference(&input));
        }
    }
}

#[test]
fn registration_defaults_to_off_and_reads_each_mode() {
    assert_eq!(parse(&[]).unwrap().registration, Registration::Off);
    for (raw, mode) in [
        ("off", Registration::Off),
        ("token", Registration::Token),
        ("open", Registration::Open),
        (" Open ", Registration::Open),
    ] {
        let env = parse(&[("APPLIANCE_REGISTRATION", raw)]).unwrap();
        assert_eq!(env.registration, mode, "{raw}");
    }
}

#[test]
fn a_bad_registration_mode_names_the_variable_and_the_choices() {
    assert_eq!(
        problems(&[("APPLIANCE_REGISTRATION", "yes")]),
        ["APPLIANCE_REGISTRATION: \"yes\" is not off, token or open"]
    );
}

#[test]
fn the_terms_url_must_be_an_http_url_with_a_host() {
    let env = parse(&[("APPLIANCE_TERMS_URL", "https://example.com/terms")]).unwrap();
    assert_eq!(
        env.terms_url.map(String::from).as_deref(),
        Some("https://example.com/terms")
    );
    assert_eq!(parse(&[]).unwrap().terms_url, None);
    for bad in [
        "example.com/terms",
        "ftp://example.com/terms",
        "https://u:p@example.com/",
    ] {
        let found = problems(&[("APPLIANCE_TERMS_URL", bad)]);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(found[0].starts_with("APPLIANCE_TERMS_URL: "), "{found:?}");
        assert!(found[0].contains(bad), "{found:?}");
    }
}

#[test]
fn registration_without_password_login_names_both_variables() {
    let found = problems(&[
        ("APPLIANCE_REGISTRATION", "open"),
        ("APPLIANCE_PASSWORD_LOGIN", "false"),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("APPLIANCE_REGISTRATION: "),
        "{found:?}"
    );
    assert!(found[0].contains("APPLIANCE_PASSWORD_LOGIN"), "{found:?}");
    // The platform's single sign-on turns password login off unless it is asked for.
    let sso = [
        ("CLOUDRON_OIDC_ISSUER", "https://my.example.com"),
        ("CLOUDRON_OIDC_CLIENT_ID", "cid"),
        ("CLOUDRON_OIDC_CLIENT_SECRET", "secret"),
    ];
    let with =
        |more: &[(&'static str, &'static str)]| sso.iter().chain(more).copied().collect::<Vec<_>>();
    let found = problems(&with(&[("APPLIANCE_REGISTRATION", "token")]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("single sign-on"), "{found:?}");
    assert!(
        found[0].contains("APPLIANCE_PASSWORD_LOGIN=true"),
        "{found:?}"
    );
    let env = parse(&with(&[
        ("APPLIANCE_REGISTRATION", "token"),
        ("APPLIANCE_PASSWORD_LOGIN", "true"),
    ]))
    .unwrap();
    assert_eq!(env.registration, Registration::Token);
}

#[test]
fn open_registration_needs_a_token_when_mail_is_off() {
    assert!(AccountPolicy::open_needs_token(Registration::Open, false));
    assert!(!AccountPolicy::open_needs_token(Registration::Open, true));
    assert!(!AccountPolicy::open_needs_token(Registration::Token, false));
}
