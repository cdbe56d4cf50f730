use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::*;

fn env(vars: &[(&str, &str)]) -> Env {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Env::parse(&map, Path::new("/srv")).unwrap()
}

fn layout(dir: &Path) -> Layout {
    Layout::new(&dir.join("data"), &dir.join("run"))
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

fn at(v: &Value, dotted: &str) -> Value {
    dotted
        .split('.')
        .fold(v, |v, k| match k.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[k],
        })
        .clone()
}

#[test]
fn sqlite_homeserver_has_the_mas_wiring_and_data_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let env = env(&[
        ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
        ("APPLIANCE_SYNAPSE_PORT", "9008"),
        ("APPLIANCE_MAS_PORT", "9080"),
    ]);
    let r = render(&env, &layout, "example.com").unwrap();
    let hs = yaml(&r.homeserver);
    let data = layout.data.display().to_string();
    assert_eq!(at(&hs, "server_name"), "example.com");
    assert_eq!(at(&hs, "public_baseurl"), "https://matrix.example.com/");
    assert_eq!(at(&hs, "report_stats"), false);
    assert_eq!(at(&hs, "listeners.0.port"), 9008);
    assert_eq!(at(&hs, "listeners.0.bind_addresses.0"), "127.0.0.1");
    assert_eq!(at(&hs, "listeners.0.x_forwarded"), true);
    assert_eq!(at(&hs, "database.name"), "sqlite3");
    assert_eq!(
        at(&hs, "database.args.database"),
        format!("{data}/synapse/homeserver.db").as_str()
    );
    assert_eq!(
        at(&hs, "media_store_path"),
        format!("{data}/synapse/media_store").as_str()
    );
    assert_eq!(
        at(&hs, "signing_key_path"),
        format!("{data}/secrets/synapse_signing.key").as_str()
    );
    assert_eq!(at(&hs, "matrix_authentication_service.enabled"), true);
    assert_eq!(
        at(&hs, "matrix_authentication_service.endpoint"),
        "http://127.0.0.1:9080/auth/"
    );
    assert_eq!(
        at(&hs, "matrix_authentication_service.secret_path"),
        format!("{data}/secrets/mas_synapse_shared_secret").as_str()
    );
    assert!(hs.get("turn_uris").is_none() && hs.get("email").is_none());

    let mas = yaml(&r.mas);
    assert_eq!(
        at(&mas, "http.public_base"),
        "https://matrix.example.com/auth/"
    );
    assert_eq!(at(&mas, "http.issuer"), "https://matrix.example.com/auth/");
    assert_eq!(at(&mas, "http.listeners.0.prefix"), "/auth");
    assert_eq!(
        at(&mas, "http.listeners.0.binds.0.address"),
        "127.0.0.1:9080"
    );
    assert_eq!(
        at(&mas, "database.uri"),
        format!("sqlite://{data}/mas/mas.db").as_str()
    );
    assert!(mas["database"].get("schema").is_none());
    assert_eq!(at(&mas, "matrix.homeserver"), "example.com");
    assert_eq!(at(&mas, "matrix.endpoint"), "http://127.0.0.1:9008/");
    assert_eq!(at(&mas, "passwords.enabled"), true);
}

#[test]
fn postgres_puts_synapse_in_public_and_mas_in_schema_mas() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(&[("CLOUDRON_POSTGRESQL_URL", "postgres://u:p%22w@db:5433/app")]);
    let r = render(&env, &layout(tmp.path()), "localhost").unwrap();
    let hs = yaml(&r.homeserver);
    assert_eq!(at(&hs, "database.name"), "psycopg2");
    assert_eq!(at(&hs, "database.args.user"), "u");
    assert_eq!(
        at(&hs, "database.args.password"),
        "p\"w",
        "quotes survive YAML rendering"
    );
    assert_eq!(at(&hs, "database.args.dbname"), "app");
    assert_eq!(at(&hs, "database.args.host"), "db");
    assert_eq!(at(&hs, "database.args.port"), 5433);
    let mas = yaml(&r.mas);
    assert_eq!(at(&mas, "database.uri"), "postgresql://u:p%22w@db:5433/app");
    assert_eq!(at(&mas, "database.schema"), "mas");
}

#[test]
fn turn_and_mail_are_rendered_for_synapse() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(&[
        ("CLOUDRON_TURN_SERVER", "turn.example.com"),
        ("CLOUDRON_TURN_PORT", "3478"),
        ("CLOUDRON_TURN_TLS_PORT", "5349"),
        ("CLOUDRON_TURN_SECRET", "tsecret"),
        ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
        ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
        ("CLOUDRON_MAIL_FROM", "matrix@example.com"),
        ("CLOUDRON_MAIL_FROM_DISPLAY_NAME", "Example Chat"),
    ]);
    let hs = yaml(
        &render(&env, &layout(tmp.path()), "localhost")
            .unwrap()
            .homeserver,
    );
    assert_eq!(
        at(&hs, "turn_uris.0"),
        "turn:turn.example.com:3478?transport=udp"
    );
    assert_eq!(
        at(&hs, "turn_uris.2"),
        "turns:turn.example.com:5349?transport=tcp"
    );
    assert_eq!(at(&hs, "turn_shared_secret"), "tsecret");
    assert_eq!(at(&hs, "email.smtp_host"), "mail");
    assert_eq!(at(&hs, "email.smtp_port"), 2525);
    assert_eq!(at(&hs, "email.force_tls"), false);
    assert_eq!(
        at(&hs, "email.notif_from"),
        "\"Example Chat\" <matrix@example.com>"
    );
}

#[test]
fn the_mail_display_name_cannot_break_the_from_header() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(&[
        ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
        ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
        ("CLOUDRON_MAIL_FROM", "matrix@example.com"),
        (
            "CLOUDRON_MAIL_FROM_DISPLAY_NAME",
            "Chat\"\r\nBcc: victim@example.org\t",
        ),
    ]);
    let r = render(&env, &layout(tmp.path()), "localhost").unwrap();
    let expected = "\"ChatBcc: victim@example.org\" <matrix@example.com>";
    assert_eq!(at(&yaml(&r.homeserver), "email.notif_from"), expected);
    assert_eq!(at(&yaml(&r.mas), "email.from"), expected);
}

#[test]
fn debug_output_of_the_context_never_shows_the_mail_password() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(&[
        ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
        ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
        ("CLOUDRON_MAIL_SMTP_USERNAME", "relay-user"),
        ("CLOUDRON_MAIL_SMTP_PASSWORD", "relay-pass-123"),
        ("CLOUDRON_MAIL_FROM", "matrix@example.com"),
    ]);
    let ctx = Context::new(&env, &layout(tmp.path()), "localhost");
    let debug = format!("{ctx:?}");
    assert!(debug.contains("relay-user"), "{debug}");
    assert!(!debug.contains("relay-pass-123"), "{debug}");
}

#[test]
fn operator_overrides_merge_but_owned_and_forbidden_keys_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    std::fs::write(
        layout.overrides_dir().join("homeserver.yaml"),
        "max_upload_size: 500M\n\
         server_name: evil.example\n\
         enable_registration: true\n\
         password_config: {enabled: true, policy: {minimum_length: 12}}\n\
         listeners: []\n\
         retention: {enabled: true}\n",
    )
    .unwrap();
    std::fs::write(
        layout.overrides_dir().join("mas.yaml"),
        "account: {password_registration_enabled: true}\nmatrix: {endpoint: http://elsewhere/}\n",
    )
    .unwrap();
    let r = render(&env(&[]), &layout, "localhost").unwrap();
    let hs = yaml(&r.homeserver);
    assert_eq!(
        at(&hs, "max_upload_size"),
        "500M",
        "an operator default wins over ours"
    );
    assert_eq!(at(&hs, "retention.enabled"), true, "new keys are added");
    assert_eq!(at(&hs, "server_name"), "localhost", "owned key restored");
    assert_eq!(at(&hs, "listeners.0.port"), 8008, "owned key restored");
    assert!(
        hs.get("enable_registration").is_none(),
        "forbidden key dropped"
    );
    assert!(
        hs["password_config"].get("enabled").is_none(),
        "forbidden key dropped"
    );
    assert_eq!(
        at(&hs, "password_config.policy.minimum_length"),
        12,
        "siblings kept"
    );
    let mas = yaml(&r.mas);
    assert_eq!(at(&mas, "account.password_registration_enabled"), true);
    assert_eq!(at(&mas, "matrix.endpoint"), "http://127.0.0.1:8008/");

    let mut keys: Vec<&str> = r.ignored.iter().map(|i| i.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "enable_registration",
            "listeners",
            "matrix",
            "password_config.enabled",
            "server_name"
        ]
    );
    assert!(r.ignored.iter().all(|i| i.file.ends_with(".yaml")));
}

#[test]
fn invalid_override_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    std::fs::write(
        layout.overrides_dir().join("homeserver.yaml"),
        "a: [unclosed\n",
    )
    .unwrap();
    let err = render(&env(&[]), &layout, "localhost")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config/homeserver.yaml: is not valid YAML"),
        "{err}"
    );
    std::fs::write(layout.overrides_dir().join("homeserver.yaml"), "- a list\n").unwrap();
    let err = render(&env(&[]), &layout, "localhost")
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be a YAML mapping"), "{err}");
}

#[test]
fn written_configs_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let r = render(&env(&[]), &layout, "localhost").unwrap();
    write(&layout, &r).unwrap();
    for p in [
        layout.homeserver_yaml(),
        layout.synapse_log_yaml(),
        layout.mas_yaml(),
    ] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}

#[test]
fn deep_merge_replaces_scalars_and_lists_and_merges_maps() {
    let mut base = yaml("a: {b: 1, c: [1, 2]}\nd: x\n");
    deep_merge(&mut base, &yaml("a: {c: [3], e: 2}\nd: null\n"));
    assert_eq!(base, yaml("a: {b: 1, c: [3], e: 2}\nd: null\n"));
}

const OIDC: &[(&str, &str)] = &[
    ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
    ("CLOUDRON_OIDC_ISSUER", "https://my.example.com"),
    ("CLOUDRON_OIDC_CLIENT_ID", "cid-123"),
    ("CLOUDRON_OIDC_CLIENT_SECRET", "s3cr\"et: {x}"),
    ("CLOUDRON_OIDC_PROVIDER_NAME", "Example \"Cloud\""),
];

fn with(base: &[(&'static str, &'static str)], more: &[(&'static str, &'static str)]) -> Env {
    let all: Vec<(&str, &str)> = base.iter().chain(more).copied().collect();
    env(&all)
}

fn providers(mas: &Value) -> Vec<Value> {
    mas["upstream_oauth2"]["providers"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn platform_oidc_renders_the_cloudron_provider_and_turns_passwords_off() {
    let tmp = tempfile::tempdir().unwrap();
    let r = render(&env(OIDC), &layout(tmp.path()), "example.com").unwrap();
    let mas = yaml(&r.mas);
    assert_eq!(at(&mas, "passwords.enabled"), false, "SSO-only by default");
    assert_eq!(
        mas["upstream_oauth2"],
        yaml(
            r#"
providers:
  - id: 01J00000000000000000PR0V1D
    issuer: https://my.example.com
    human_name: Example "Cloud"
    client_id: cid-123
    client_secret: 's3cr"et: {x}'
    token_endpoint_auth_method: client_secret_basic
    id_token_signed_response_alg: RS256
    scope: openid profile email
    discovery_mode: oidc
    pkce_method: auto
    fetch_userinfo: true
    claims_imports:
      subject: {template: "{{ user.sub }}"}
      skip_confirmation: true
      localpart:
        action: require
        template: "{{ user.preferred_username }}"
        on_conflict: fail
      displayname: {action: force, template: "{{ user.name }}"}
      email: {action: force, template: "{{ user.email }}"}
"#
        ),
        "{}",
        r.mas
    );
    assert!(r.ignored.is_empty());
}

#[test]
fn platform_oidc_explicit_endpoints_are_rendered_when_set() {
    let tmp = tempfile::tempdir().unwrap();
    let env = with(
        OIDC,
        &[
            (
                "CLOUDRON_OIDC_AUTH_ENDPOINT",
                "https://my.example.com/openid/auth",
            ),
            (
                "CLOUDRON_OIDC_TOKEN_ENDPOINT",
                "https://my.example.com/openid/token",
            ),
            (
                "CLOUDRON_OIDC_KEYS_ENDPOINT",
                "https://my.example.com/openid/jwks",
            ),
            (
                "CLOUDRON_OIDC_PROFILE_ENDPOINT",
                "https://my.example.com/openid/me",
            ),
            (
                "CLOUDRON_OIDC_DISCOVERY_URL",
                "https://my.example.com/.well-known/openid-configuration",
            ),
        ],
    );
    let mas = yaml(
        &render(&env, &layout(tmp.path()), "example.com")
            .unwrap()
            .mas,
    );
    let p = &providers(&mas)[0];
    assert_eq!(
        p["authorization_endpoint"],
        "https://my.example.com/openid/auth"
    );
    assert_eq!(p["token_endpoint"], "https://my.example.com/openid/token");
    assert_eq!(p["jwks_uri"], "https://my.example.com/openid/jwks");
    assert_eq!(p["userinfo_endpoint"], "https://my.example.com/openid/me");
    assert_eq!(p["discovery_mode"], "oidc", "discovery stays strict");
    assert!(
        p.get("discovery_url").is_none(),
        "MAS discovers from the issuer; the discovery URL is not a provider key"
    );
}

#[test]
fn platform_oidc_without_optional_variables_has_no_endpoints_and_a_default_name() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(&[
        ("CLOUDRON_OIDC_ISSUER", "http://127.0.0.1:4000"),
        ("CLOUDRON_OIDC_CLIENT_ID", "c"),
        ("CLOUDRON_OIDC_CLIENT_SECRET", "s"),
    ]);
    let mas = yaml(&render(&env, &layout(tmp.path()), "localhost").unwrap().mas);
    let p = &providers(&mas)[0];
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        assert!(p.get(key).is_none(), "{key} rendered without its variable");
    }
    assert_eq!(p["human_name"], "Single sign-on");
    assert_eq!(p["issuer"], "http://127.0.0.1:4000");
}

#[test]
fn password_login_follows_appliance_password_login() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let enabled = |env: &Env| {
        at(
            &yaml(&render(env, &layout, "localhost").unwrap().mas),
            "passwords.enabled",
        )
    };
    assert_eq!(
        enabled(&with(OIDC, &[("APPLIANCE_PASSWORD_LOGIN", "true")])),
        true
    );
    assert_eq!(
        enabled(&with(OIDC, &[("APPLIANCE_PASSWORD_LOGIN", "false")])),
        false
    );
    assert_eq!(enabled(&env(&[])), true, "no platform OIDC: passwords on");
    assert_eq!(enabled(&env(&[("APPLIANCE_PASSWORD_LOGIN", "0")])), false);
    let plain = yaml(&render(&env(&[]), &layout, "localhost").unwrap().mas);
    assert!(
        plain.get("upstream_oauth2").is_none(),
        "no provider without the variables"
    );
}

const OPERATOR_PROVIDERS: &str = "\
upstream_oauth2:
  providers:
    - id: 01HOPERATOR0000000000000001
      issuer: https://accounts.example.org
      client_id: op
      client_secret: op-secret
      scope: openid
    - id: 01J00000000000000000PR0V1D
      issuer: https://evil.example
      client_id: evil
      human_name: Example SSO
      claims_imports:
        localpart:
          on_conflict: set
    - id: 01HOPERATOR0000000000000002
      issuer: https://gitlab.example.org
      client_id: gl
passwords: {enabled: true}
account: {password_registration_enabled: true}
";

#[test]
fn operator_providers_are_appended_after_the_platform_one_which_they_may_tune_but_not_rewire() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    std::fs::write(layout.overrides_dir().join("mas.yaml"), OPERATOR_PROVIDERS).unwrap();
    let r = render(&env(OIDC), &layout, "example.com").unwrap();
    let mas = yaml(&r.mas);
    let ids: Vec<Value> = providers(&mas).iter().map(|p| p["id"].clone()).collect();
    assert_eq!(
        ids,
        [
            "01J00000000000000000PR0V1D",
            "01HOPERATOR0000000000000001",
            "01HOPERATOR0000000000000002"
        ]
    );
    let ours = &providers(&mas)[0];
    assert_eq!(
        ours["issuer"], "https://my.example.com",
        "ours is not replaced"
    );
    assert_eq!(ours["client_id"], "cid-123");
    assert_eq!(ours["human_name"], "Example SSO", "tuned by the operator");
    let localpart = &ours["claims_imports"]["localpart"];
    assert_eq!(localpart["on_conflict"], "set", "tuned by the operator");
    assert_eq!(
        (&localpart["action"], &localpart["template"]),
        (
            &Value::from("require"),
            &Value::from("{{ user.preferred_username }}")
        ),
        "the rest of ours is kept"
    );
    assert_eq!(providers(&mas)[1]["client_secret"], "op-secret");
    assert_eq!(
        at(&mas, "passwords.enabled"),
        false,
        "passwords.enabled stays the appliance's"
    );
    assert_eq!(at(&mas, "account.password_registration_enabled"), true);
    let mut keys: Vec<&str> = r.ignored.iter().map(|i| i.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "passwords.enabled",
            "upstream_oauth2.providers.1.client_id (id 01J00000000000000000PR0V1D)",
            "upstream_oauth2.providers.1.issuer (id 01J00000000000000000PR0V1D)"
        ]
    );
    assert!(
        r.ignored
            .iter()
            .all(|i| i.file.ends_with("config/mas.yaml"))
    );
}

#[test]
fn operator_providers_alone_without_platform_oidc_keep_the_reserved_id_out() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    std::fs::write(layout.overrides_dir().join("mas.yaml"), OPERATOR_PROVIDERS).unwrap();
    let r = render(&env(&[]), &layout, "localhost").unwrap();
    let mas = yaml(&r.mas);
    let ids: Vec<Value> = providers(&mas).iter().map(|p| p["id"].clone()).collect();
    assert_eq!(
        ids,
        ["01HOPERATOR0000000000000001", "01HOPERATOR0000000000000002"]
    );
    assert!(
        r.ignored
            .iter()
            .any(|i| i.key.contains("01J00000000000000000PR0V1D"))
    );
}

#[test]
fn operator_override_without_providers_keeps_the_platform_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    for text in [
        "account: {password_registration_enabled: true}\n",
        "upstream_oauth2: {providers: []}\n",
        "upstream_oauth2: {providers: null}\n",
    ] {
        std::fs::write(layout.overrides_dir().join("mas.yaml"), text).unwrap();
        let mas = yaml(&render(&env(OIDC), &layout, "example.com").unwrap().mas);
        let ids: Vec<Value> = providers(&mas).iter().map(|p| p["id"].clone()).collect();
        assert_eq!(ids, ["01J00000000000000000PR0V1D"], "{text}");
    }
    std::fs::write(
        layout.overrides_dir().join("mas.yaml"),
        "upstream_oauth2: {providers: []}\n",
    )
    .unwrap();
    let mas = yaml(&render(&env(&[]), &layout, "localhost").unwrap().mas);
    assert!(
        mas.get("upstream_oauth2").is_none(),
        "an empty operator list adds no empty section: {mas:?}"
    );
}

#[test]
fn operator_providers_that_are_not_a_list_name_the_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    for (text, expected) in [
        (
            "upstream_oauth2: {providers: {id: x}}\n",
            "upstream_oauth2.providers must be a list",
        ),
        (
            "upstream_oauth2: [a]\n",
            "upstream_oauth2 must be a mapping",
        ),
    ] {
        std::fs::write(layout.overrides_dir().join("mas.yaml"), text).unwrap();
        let err = render(&env(OIDC), &layout, "localhost")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config/mas.yaml: ") && err.contains(expected),
            "{err}"
        );
    }
}

#[test]
fn the_client_secret_is_only_in_the_private_mas_yaml() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let r = render(&env(OIDC), &layout, "example.com").unwrap();
    assert!(r.mas.contains("s3cr"));
    assert!(!r.homeserver.contains("s3cr") && !r.synapse_log.contains("s3cr"));
    write(&layout, &r).unwrap();
    let mode = std::fs::metadata(layout.mas_yaml())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let ctx = Context::new(&env(OIDC), &layout, "example.com");
    assert!(
        !format!("{ctx:?}").contains("s3cr"),
        "Debug hides the secret"
    );
}

/// A registration Synapse accepts, for the appservice rendering tests.
fn registration(id: &str) -> String {
    format!(
        "id: {id}\nurl: null\nas_token: as-{id}\nhs_token: hs-{id}\nsender_localpart: {id}bot\n\
         namespaces: {{users: [{{exclusive: true, regex: '@{id}_.*'}}]}}\n"
    )
}

/// The experimental features bridges need (MSC3202, MSC2409) are on in `hs`.
#[track_caller]
fn assert_bridge_features_on(hs: &Value) {
    assert_eq!(
        at(hs, "experimental_features.msc3202_transaction_extensions"),
        true
    );
    assert_eq!(
        at(
            hs,
            "experimental_features.msc2409_to_device_messages_enabled"
        ),
        true
    );
}

/// The layout's appservice directory, created.
fn created_appservices_dir(layout: &Layout) -> PathBuf {
    let dir = layout.appservices_dir();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn homeserver_without_appservices_has_no_registration_list_but_the_bridge_features() {
    let tmp = tempfile::tempdir().unwrap();
    let r = render(&env(&[]), &layout(tmp.path()), "localhost").unwrap();
    let hs = yaml(&r.homeserver);
    assert!(hs.get("app_service_config_files").is_none(), "{hs:?}");
    assert_bridge_features_on(&hs);
}

#[test]
fn homeserver_lists_the_checked_appservice_files_by_absolute_path_in_name_order() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let dir = created_appservices_dir(&layout);
    std::fs::write(dir.join("whatsapp.yaml"), registration("whatsapp")).unwrap();
    std::fs::write(dir.join("telegram.yml"), registration("telegram")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a registration").unwrap();
    let r = render(&env(&[]), &layout, "localhost").unwrap();
    let hs = yaml(&r.homeserver);
    let expected: Vec<Value> = ["telegram.yml", "whatsapp.yaml"]
        .iter()
        .map(|name| Value::from(dir.join(name).display().to_string()))
        .collect();
    assert_eq!(
        hs["app_service_config_files"],
        Value::Sequence(expected),
        "{}",
        r.homeserver
    );
    assert!(dir.is_absolute());
    assert!(
        !r.homeserver.contains("as-telegram"),
        "no token in the config"
    );
}

#[test]
fn a_bad_appservice_file_stops_the_render_naming_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let dir = created_appservices_dir(&layout);
    std::fs::write(
        dir.join("telegram.yaml"),
        registration("telegram").replace("as_token: as-telegram\n", ""),
    )
    .unwrap();
    let err = render(&env(&[]), &layout, "localhost").unwrap_err();
    assert!(matches!(err, RenderError::Appservices(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "appservices/telegram.yaml: as_token: missing"
    );
}

#[test]
fn operator_overrides_keep_their_experimental_features_but_not_the_bridge_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    std::fs::write(
        layout.overrides_dir().join("homeserver.yaml"),
        "experimental_features:\n\
         \x20 msc3266_enabled: true\n\
         \x20 msc3202_transaction_extensions: false\n\
         \x20 msc2409_to_device_messages_enabled: false\n\
         app_service_config_files: [/etc/unchecked.yaml]\n",
    )
    .unwrap();
    let r = render(&env(&[]), &layout, "localhost").unwrap();
    let hs = yaml(&r.homeserver);
    assert_eq!(at(&hs, "experimental_features.msc3266_enabled"), true);
    assert_bridge_features_on(&hs);
    assert!(hs.get("app_service_config_files").is_none(), "{hs:?}");
    let mut keys: Vec<&str> = r.ignored.iter().map(|i| i.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "app_service_config_files",
            "experimental_features.msc2409_to_device_messages_enabled",
            "experimental_features.msc3202_transaction_extensions",
        ]
    );
}

/// The rendezvous channels of "Sign in with a QR code" (MSC4108, MSC4388) are on in `hs`.
#[track_caller]
fn assert_qr_login_rendezvous_on(hs: &Value) {
    assert_eq!(at(hs, "experimental_features.msc4108_enabled"), true);
    assert_eq!(at(hs, "experimental_features.msc4388_mode"), "open");
}

#[test]
fn homeserver_enables_the_qr_login_rendezvous_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let r = render(&env(&[]), &layout(tmp.path()), "localhost").unwrap();
    let hs = yaml(&r.homeserver);
    assert_qr_login_rendezvous_on(&hs);
    assert_eq!(at(&hs, "matrix_authentication_service.enabled"), true);
}

#[test]
fn operator_overrides_cannot_turn_the_qr_login_rendezvous_off() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    std::fs::write(
        layout.overrides_dir().join("homeserver.yaml"),
        "experimental_features:\n\
         \x20 msc3266_enabled: true\n\
         \x20 msc4108_enabled: false\n\
         \x20 msc4388_mode: authenticated\n",
    )
    .unwrap();
    let r = render(&env(&[]), &layout, "localhost").unwrap();
    let hs = yaml(&r.homeserver);
    assert_eq!(at(&hs, "experimental_features.msc3266_enabled"), true);
    assert_qr_login_rendezvous_on(&hs);
    assert_bridge_features_on(&hs);
    let mut keys: Vec<&str> = r.ignored.iter().map(|i| i.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "experimental_features.msc4108_enabled",
            "experimental_features.msc4388_mode",
        ]
    );
}

const MAIL: &[(&str, &str)] = &[
    ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
    ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
    ("CLOUDRON_MAIL_FROM", "matrix@example.com"),
];

/// mas.yaml's `account` section: (registration on, token required, email required, recovery).
type AccountKeys = (bool, bool, bool, bool);

fn account_keys(mas: &Value) -> AccountKeys {
    let flag = |key: &str| {
        at(mas, &format!("account.{key}"))
            .as_bool()
            .unwrap_or_else(|| panic!("account.{key} is not a boolean: {mas:?}"))
    };
    (
        flag("password_registration_enabled"),
        flag("password_registration_token_required"),
        flag("password_registration_email_required"),
        flag("password_recovery_enabled"),
    )
}

#[test]
fn account_keys_follow_registration_mail_and_password_login_in_every_combination() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    // (APPLIANCE_REGISTRATION, mail, APPLIANCE_PASSWORD_LOGIN) → (enabled, token, email, recovery)
    let cases: &[(&str, bool, &str, AccountKeys)] = &[
        ("off", false, "true", (false, false, false, false)),
        ("off", true, "true", (false, false, true, true)),
        ("off", false, "false", (false, false, false, false)),
        ("off", true, "false", (false, false, true, false)),
        ("token", false, "true", (true, true, false, false)),
        ("token", true, "true", (true, true, true, true)),
        // Open with mail off: a token is needed all the same.
        ("open", false, "true", (true, true, false, false)),
        ("open", true, "true", (true, false, true, true)),
    ];
    for &(mode, mail, password_login, expected) in cases {
        let mut vars = vec![
            ("APPLIANCE_REGISTRATION", mode),
            ("APPLIANCE_PASSWORD_LOGIN", password_login),
        ];
        if mail {
            vars.extend(MAIL);
        }
        let mas = yaml(&render(&env(&vars), &layout, "localhost").unwrap().mas);
        assert_eq!(
            account_keys(&mas),
            expected,
            "{mode}, mail {mail}, passwords {password_login}"
        );
        assert!(mas.get("branding").is_none(), "no terms URL, no branding");
    }
}

#[test]
fn registration_defaults_to_off_and_sso_only_has_no_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let plain = yaml(&render(&env(&[]), &layout, "localhost").unwrap().mas);
    assert_eq!(account_keys(&plain), (false, false, false, false));
    let sso_with_mail: Vec<_> = OIDC.iter().chain(MAIL).copied().collect();
    let sso = yaml(
        &render(&env(&sso_with_mail), &layout, "localhost")
            .unwrap()
            .mas,
    );
    assert_eq!(account_keys(&sso), (false, false, true, false));
}

#[test]
fn a_takeover_that_keeps_password_login_on_makes_recovery_available() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let sso_with_mail: Vec<_> = OIDC.iter().chain(MAIL).copied().collect();
    let import = crate::state::SynapseImport {
        source: "database".to_owned(),
        password_login: true,
        synapse_idp_id: None,
    };
    let rendered = render_with(&env(&sso_with_mail), &layout, "localhost", Some(&import)).unwrap();
    let mas = yaml(&rendered.mas);
    assert_eq!(at(&mas, "passwords.enabled"), true);
    assert_eq!(account_keys(&mas), (false, false, true, true));
}

#[test]
fn the_terms_url_is_rendered_as_branding_tos_uri() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let env = env(&[
        ("APPLIANCE_REGISTRATION", "token"),
        ("APPLIANCE_TERMS_URL", "https://example.com/terms?v=2"),
    ]);
    let mas = yaml(&render(&env, &layout, "localhost").unwrap().mas);
    assert_eq!(
        at(&mas, "branding.tos_uri"),
        "https://example.com/terms?v=2"
    );
    assert_eq!(account_keys(&mas), (true, true, false, false));
}

#[test]
fn operators_may_still_override_the_account_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    std::fs::create_dir_all(layout.overrides_dir()).unwrap();
    std::fs::write(
        layout.overrides_dir().join("mas.yaml"),
        "account: {login_with_email_allowed: true, password_registration_token_required: true}\n",
    )
    .unwrap();
    let env = env(&[("APPLIANCE_REGISTRATION", "open")]);
    let mas = yaml(&render(&env, &layout, "localhost").unwrap().mas);
    assert_eq!(at(&mas, "account.login_with_email_allowed"), true);
    assert_eq!(account_keys(&mas), (true, true, false, false));
}
