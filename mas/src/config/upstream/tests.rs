use super::*;
use crate::config::Problems;

const ID: &str = "01J00000000000000000PR0V1D";

fn provider() -> ProviderConfig {
    serde_yaml::from_str(&format!(
        "id: {ID}\n\
         issuer: https://idp.example.com\n\
         client_id: matrix\n\
         client_secret: hunter2\n\
         scope: openid profile email\n"
    ))
    .unwrap()
}

fn problems(providers: Vec<ProviderConfig>) -> Vec<String> {
    let mut problems = Problems::default();
    validate(&UpstreamOAuth2Config { providers }, &mut problems);
    problems.0.iter().map(ToString::to_string).collect()
}

#[test]
fn upstream_key_names_parse_with_upstream_defaults() {
    let yaml = format!(
        "id: {ID}\n\
         issuer: https://idp.example.com\n\
         human_name: Cloudron\n\
         client_id: matrix\n\
         client_secret: hunter2\n\
         scope: openid profile email\n\
         discovery_mode: oidc\n\
         pkce_method: auto\n\
         fetch_userinfo: true\n\
         token_endpoint: https://idp.example.com/token\n\
         response_mode: form_post\n\
         claims_imports:\n\
         \x20 subject: {{ template: '{{{{ user.sub }}}}' }}\n\
         \x20 localpart: {{ action: require, template: '{{{{ user.preferred_username }}}}', on_conflict: fail }}\n\
         \x20 displayname: {{ action: force, template: '{{{{ user.name }}}}' }}\n\
         \x20 email: {{ action: force, template: '{{{{ user.email }}}}' }}\n\
         \x20 skip_confirmation: true\n"
    );
    let parsed: ProviderConfig = serde_yaml::from_str(&yaml).unwrap();
    assert!(parsed.enabled);
    assert_eq!(
        parsed.token_endpoint_auth_method,
        TokenAuthMethod::ClientSecretBasic
    );
    assert_eq!(parsed.id_token_signed_response_alg, "RS256");
    assert_eq!(parsed.response_mode, Some(ResponseMode::FormPost));
    assert_eq!(
        parsed.claims_imports.localpart.action,
        ImportAction::Require
    );
    assert_eq!(
        parsed.claims_imports.displayname.action,
        ImportAction::Force
    );
    assert!(problems(vec![parsed]).is_empty());

    let defaults = provider();
    assert_eq!(defaults.discovery_mode, DiscoveryMode::Oidc);
    assert_eq!(defaults.pkce_method, PkceMethod::Auto);
    assert!(!defaults.fetch_userinfo);
    assert_eq!(defaults.claims_imports.email.action, ImportAction::Ignore);
    assert_eq!(
        defaults.claims_imports.localpart.on_conflict,
        OnConflict::Fail
    );
}

#[test]
fn unknown_keys_are_refused() {
    let yaml = format!("id: {ID}\nclient_id: x\nbogus: 1\n");
    assert!(serde_yaml::from_str::<ProviderConfig>(&yaml).is_err());
    let yaml = format!("id: {ID}\nclient_id: x\nclaims_imports: {{ localpart: {{ nope: 1 }} }}\n");
    assert!(serde_yaml::from_str::<ProviderConfig>(&yaml).is_err());
}

#[test]
fn a_valid_provider_has_no_problem() {
    assert!(problems(vec![provider()]).is_empty());
}

#[test]
fn every_problem_is_reported_with_its_dotted_path() {
    let mut bad = provider();
    bad.id = "nope".to_owned();
    bad.issuer = None;
    bad.client_id = String::new();
    bad.client_secret = None;
    bad.id_token_signed_response_alg = "HS256".to_owned();
    bad.scope = "profile".to_owned();
    bad.userinfo_signed_response_alg = Some("RS256".to_owned());
    bad.on_backchannel_logout = BackchannelLogout::LogoutAll;
    let p = "upstream_oauth2.providers[0]";
    assert_eq!(
        problems(vec![bad]),
        [
            format!("{p}.id: \"nope\" is not a ULID"),
            format!("{p}.issuer: required (ID tokens are checked against it)"),
            format!("{p}.client_id: must not be empty"),
            format!("{p}.client_secret: set `client_secret` or `client_secret_file`"),
            format!(
                "{p}.userinfo_signed_response_alg: not supported (userinfo must be plain JSON)"
            ),
            format!("{p}.on_backchannel_logout: not supported (only do_nothing)"),
            format!(
                "{p}.id_token_signed_response_alg: \"HS256\" is not supported (RS256 or ES256)"
            ),
            format!("{p}.scope: must contain openid"),
        ]
    );
}

#[test]
fn a_broken_template_is_reported_at_its_path() {
    let mut config = provider();
    config.claims_imports.localpart.template = Some("{{ user.".to_owned());
    config
        .additional_authorization_parameters
        .insert("prompt".to_owned(), "{% if %}".to_owned());
    let found = problems(vec![config]);
    assert_eq!(found.len(), 2, "{found:?}");
    let p = "upstream_oauth2.providers[0]";
    assert!(
        found[0].starts_with(&format!(
            "{p}.additional_authorization_parameters.prompt: invalid template: "
        )),
        "{found:?}"
    );
    assert!(
        found[1].starts_with(&format!(
            "{p}.claims_imports.localpart.template: invalid template: "
        )),
        "{found:?}"
    );
}

#[test]
fn unsupported_client_authentication_is_a_problem() {
    let mut jwt = provider();
    jwt.token_endpoint_auth_method = TokenAuthMethod::PrivateKeyJwt;
    assert_eq!(
        problems(vec![jwt]),
        [
            "upstream_oauth2.providers[0].token_endpoint_auth_method: private_key_jwt is not supported (use client_secret_basic, client_secret_post or none)"
        ]
    );
    let mut public = provider();
    public.token_endpoint_auth_method = TokenAuthMethod::None;
    assert_eq!(
        problems(vec![public.clone()]),
        [
            "upstream_oauth2.providers[0].client_secret: a provider with token_endpoint_auth_method none may not have a client secret"
        ]
    );
    public.client_secret = None;
    assert!(problems(vec![public]).is_empty());
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::try_from(dir.path().join("secret")).unwrap();
    std::fs::write(&path, "from-file\n").unwrap();
    let mut config = provider();
    config.client_secret = None;
    config.client_secret_file = Some(path.clone());
    assert_eq!(
        config.load_client_secret().unwrap().as_deref(),
        Some("from-file")
    );
    config.client_secret = Some("inline".to_owned());
    assert_eq!(
        problems(vec![config.clone()]),
        [
            "upstream_oauth2.providers[0].client_secret: set either `client_secret` or `client_secret_file`, not both"
        ]
    );
    config.client_secret = None;
    config.client_secret_file = Some(path.join("missing"));
    let found = problems(vec![config]);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("upstream_oauth2.providers[0].client_secret_file: cannot read"),
        "{found:?}"
    );
}

#[test]
fn disabled_discovery_needs_explicit_endpoints() {
    let mut config = provider();
    config.discovery_mode = DiscoveryMode::Disabled;
    config.fetch_userinfo = true;
    let p = "upstream_oauth2.providers[0]";
    assert_eq!(
        problems(vec![config.clone()]),
        [
            format!("{p}.authorization_endpoint: required when discovery_mode is disabled"),
            format!("{p}.token_endpoint: required when discovery_mode is disabled"),
            format!("{p}.userinfo_endpoint: required when discovery_mode is disabled"),
            format!("{p}.jwks_uri: required when discovery_mode is disabled"),
        ]
    );
    config.authorization_endpoint = Some("https://idp.example.com/auth".parse().unwrap());
    config.token_endpoint = Some("https://idp.example.com/token".parse().unwrap());
    config.userinfo_endpoint = Some("ftp://idp.example.com/me".parse().unwrap());
    config.jwks_uri = Some("https://idp.example.com/jwks".parse().unwrap());
    assert_eq!(
        problems(vec![config]),
        [format!("{p}.userinfo_endpoint: must be an http(s) URL")]
    );
}

#[test]
fn skip_confirmation_needs_a_required_localpart_and_no_suggestion() {
    let mut config = provider();
    config.claims_imports.skip_confirmation = true;
    config.claims_imports.displayname.action = ImportAction::Suggest;
    let p = "upstream_oauth2.providers[0].claims_imports";
    assert_eq!(
        problems(vec![config.clone()]),
        [
            format!("{p}.skip_confirmation: needs localpart.action: require"),
            format!(
                "{p}.displayname.action: suggest needs the confirmation page (skip_confirmation is true)"
            ),
        ]
    );
    config.claims_imports.localpart.action = ImportAction::Require;
    config.claims_imports.displayname.action = ImportAction::Force;
    assert!(problems(vec![config]).is_empty());
}

#[test]
fn duplicated_ids_are_reported() {
    assert_eq!(
        problems(vec![provider(), provider()]),
        ["upstream_oauth2.providers[1].id: the same id is used twice"]
    );
}

#[test]
fn redaction_hides_inline_secrets() {
    let mut config = UpstreamOAuth2Config {
        providers: vec![provider()],
    };
    redact(&mut config);
    assert_eq!(config.providers[0].client_secret.as_deref(), Some(REDACTED));
}

#[test]
fn the_section_parses_in_a_whole_document_and_is_redacted_in_dumps() {
    let config = crate::config::from_str(&format!(
        "upstream_oauth2:\n\
         \x20 providers:\n\
         \x20   - id: {ID}\n\
         \x20     issuer: https://idp.example.com\n\
         \x20     client_id: matrix\n\
         \x20     client_secret: hunter2\n"
    ))
    .unwrap();
    assert_eq!(config.upstream_oauth2.providers.len(), 1);
    let dumped = serde_yaml::to_string(&config.redacted()).unwrap();
    assert!(!dumped.contains("hunter2"), "{dumped}");
    assert!(dumped.contains(REDACTED), "{dumped}");
    // Without providers the section stays out of dumps.
    let empty = serde_yaml::to_string(&crate::config::RootConfig::default()).unwrap();
    assert!(!empty.contains("upstream_oauth2"), "{empty}");
}

#[test]
fn schema_errors_name_the_dotted_path() {
    let error = crate::config::from_str(&format!(
        "upstream_oauth2:\n\
         \x20 providers:\n\
         \x20   - id: {ID}\n\
         \x20     client_id: matrix\n\
         \x20     pkce_method: sometimes\n"
    ))
    .unwrap_err();
    let crate::config::ConfigError::Schema { path, message } = error else {
        panic!("{error:?}")
    };
    assert_eq!(path, "upstream_oauth2.providers[0].pkce_method");
    assert!(message.contains("unknown variant"), "{message}");
}

#[test]
fn root_validation_includes_the_providers() {
    let mut config = crate::config::RootConfig::default();
    let mut bad = provider();
    bad.scope = "email".to_owned();
    config.upstream_oauth2.providers.push(bad);
    let problems: Vec<String> = config.validate().iter().map(ToString::to_string).collect();
    assert!(
        problems.contains(&"upstream_oauth2.providers[0].scope: must contain openid".to_owned()),
        "{problems:?}"
    );
}

#[test]
fn debug_hides_the_client_secret() {
    let mut config = provider();
    config.client_secret = Some("client-s3cret".to_owned());
    let debug = format!("{config:?}");
    assert!(!debug.contains("client-s3cret"), "{debug}");
    assert!(
        debug.contains("client_secret: Some(\"<redacted>\")"),
        "{debug}"
    );
    assert!(debug.contains("idp.example.com"), "{debug}");
    let debug = format!(
        "{:?}",
        UpstreamOAuth2Config {
            providers: vec![config]
        }
    );
    assert!(!debug.contains("client-s3cret"), "{debug}");
}
