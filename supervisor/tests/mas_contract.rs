//! The one place the supervisor depends on `mas` (a dev-dependency): a `mas.yaml` rendered
//! from fixture environments must load into MAS's own config types and validate cleanly.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly by design")]

use std::collections::BTreeMap;
use std::path::Path;

use supervisor::env::Env;
use supervisor::paths::Layout;
use supervisor::{render, secrets, state};

fn render_for(vars: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env = Env::parse(&map, Path::new("/")).unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    let pin = state::check(&layout, &env).unwrap();
    secrets::ensure_secrets(&layout, &mut rand::rngs::OsRng).unwrap();
    let rendered = render::render(&env, &layout, pin.server_name()).unwrap();
    (tmp, rendered.mas)
}

fn load_and_validate(yaml: &str) -> mas::config::RootConfig {
    let config = mas::config::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"));
    let problems = config.validate();
    assert!(problems.is_empty(), "{problems:?}\n---\n{yaml}");
    config
}

#[test]
fn rendered_mas_config_loads_on_sqlite() {
    let (_tmp, yaml) = render_for(&[("CLOUDRON_APP_ORIGIN", "https://matrix.example.com")]);
    let config = load_and_validate(&yaml);
    assert_eq!(
        config.http.public_base.as_str(),
        "https://matrix.example.com/auth/"
    );
}

#[test]
fn rendered_mas_config_loads_on_postgres_with_mail_and_sso_env() {
    let (_tmp, yaml) = render_for(&[
        ("CLOUDRON", "1"),
        ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
        ("CLOUDRON_APP_DOMAIN", "matrix.example.com"),
        (
            "CLOUDRON_POSTGRESQL_URL",
            "postgres://user:pw@postgresql:5432/db",
        ),
        ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
        ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
        ("CLOUDRON_MAIL_FROM", "matrix@example.com"),
        ("CLOUDRON_MAIL_FROM_DISPLAY_NAME", "Example \"Chat\""),
    ]);
    let config = load_and_validate(&yaml);
    assert_eq!(config.matrix.homeserver, "example.com");
}

#[test]
fn rendered_mas_config_with_the_platform_provider_loads_and_validates() {
    let vars = [
        ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
        ("CLOUDRON_OIDC_ISSUER", "https://my.example.com"),
        ("CLOUDRON_OIDC_CLIENT_ID", "cid"),
        ("CLOUDRON_OIDC_CLIENT_SECRET", "csecret"),
        ("CLOUDRON_OIDC_PROVIDER_NAME", "Example Cloud"),
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
    ];
    let (_tmp, yaml) = render_for(&vars);
    let config = load_and_validate(&yaml);
    let providers = &config.upstream_oauth2.providers;
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].id, supervisor::render::CLOUDRON_PROVIDER_ID);
    assert_eq!(providers[0].client_id, "cid");
    assert!(!config.passwords.enabled, "SSO-only by default");
}

#[test]
fn rendered_mas_config_with_operator_providers_after_the_platform_one_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("config")).unwrap();
    std::fs::write(
        data.join("config/mas.yaml"),
        "upstream_oauth2:\n  providers:\n    - id: 01HQW90Z35CMXFJWQPHC3BGZGQ\n      issuer: https://accounts.example.org\n      client_id: op\n      client_secret: op-secret\n      scope: openid\n",
    )
    .unwrap();
    let map: BTreeMap<String, String> = [
        ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
        ("CLOUDRON_OIDC_ISSUER", "https://my.example.com"),
        ("CLOUDRON_OIDC_CLIENT_ID", "cid"),
        ("CLOUDRON_OIDC_CLIENT_SECRET", "csecret"),
        ("APPLIANCE_PASSWORD_LOGIN", "true"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let env = Env::parse(&map, Path::new("/")).unwrap();
    let layout = Layout::new(&data, &tmp.path().join("run"));
    let pin = state::check(&layout, &env).unwrap();
    secrets::ensure_secrets(&layout, &mut rand::rngs::OsRng).unwrap();
    let rendered = render::render(&env, &layout, pin.server_name()).unwrap();
    let config = load_and_validate(&rendered.mas);
    let ids: Vec<&str> = config
        .upstream_oauth2
        .providers
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            supervisor::render::CLOUDRON_PROVIDER_ID,
            "01HQW90Z35CMXFJWQPHC3BGZGQ"
        ]
    );
    assert!(config.passwords.enabled);
}

#[test]
fn rendered_mas_config_with_each_registration_mode_loads_and_validates() {
    let mail = [
        ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
        ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
        ("CLOUDRON_MAIL_FROM", "matrix@example.com"),
    ];
    for mode in ["off", "token", "open"] {
        for with_mail in [false, true] {
            let mut vars = vec![
                ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
                ("APPLIANCE_REGISTRATION", mode),
            ];
            if with_mail {
                vars.extend(mail);
            }
            let (_tmp, yaml) = render_for(&vars);
            let config = load_and_validate(&yaml);
            let account = &config.account;
            assert_eq!(
                account.password_registration_enabled,
                mode != "off",
                "{mode} {with_mail}"
            );
            assert_eq!(
                account.registration_token_required(),
                mode == "token" || (mode == "open" && !with_mail),
                "{mode} {with_mail}"
            );
            assert_eq!(account.password_registration_email_required, with_mail);
            assert_eq!(account.password_recovery_enabled, with_mail);
        }
    }
}

#[test]
fn rendered_mas_config_with_a_terms_url_loads_and_validates() {
    let (_tmp, yaml) = render_for(&[
        ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
        ("APPLIANCE_REGISTRATION", "token"),
        ("APPLIANCE_TERMS_URL", "https://example.com/terms"),
    ]);
    let config = load_and_validate(&yaml);
    assert!(config.account.password_registration_enabled);
    assert_eq!(
        config.branding.tos_uri.as_ref().map(url::Url::as_str),
        Some("https://example.com/terms")
    );
}
