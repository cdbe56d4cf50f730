//! Loading and validation tests, starting from the exact document the supervisor renders.

use camino::Utf8PathBuf;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::crypto::SigningKey;

/// The mas.yaml the supervisor renders, as a fixed sample: the shape first specified for it,
/// kept verbatim.
const SAMPLE_CONFIG: &str = r#"
http:
  public_base: "http://localhost:8000/auth/"
  issuer: "http://localhost:8000/auth/"
  trusted_proxies: ["127.0.0.0/8", "::1/128"]
  listeners:
    - name: web
      prefix: /auth
      binds:
        - address: "127.0.0.1:8080"
      resources:
        - name: discovery
        - name: human
        - name: oauth
        - name: compat
        - name: assets
          path: "/path/to/repo/assets"
        - name: health
database:
  uri: "sqlite:///abs/path/data/mas/mas.db"   # or "postgresql://user:pass@host:5432/db"
  schema: mas                                # only with PostgreSQL; absent = default schema
  max_connections: 10
matrix:
  kind: synapse
  homeserver: "example.com"
  endpoint: "http://127.0.0.1:8008/"
  secret_file: "/abs/data/secrets/mas_synapse_shared_secret"
secrets:
  encryption_file: "/abs/data/secrets/mas_encryption_key"   # 64 hex chars (32 bytes)
  keys:
    - key_file: "/abs/data/secrets/mas_rsa.pem"             # RSA-2048, PKCS#8 PEM
    - key_file: "/abs/data/secrets/mas_ec_p256.pem"         # EC P-256, PKCS#8 PEM
passwords:
  enabled: true
  schemes:
    - version: 1
      algorithm: argon2id
account:
  password_registration_enabled: false
templates:
  path: "/path/to/repo/templates/mas"
email:
  from: '"Matrix" <noreply@localhost>'
  transport: blackhole
"#;

/// `SAMPLE_CONFIG` with its secret files present in `dir` and a PostgreSQL URI (the
/// sample pairs `schema` with SQLite, which validation rightly refuses).
fn valid_config(dir: &tempfile::TempDir) -> RootConfig {
    let root = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let files = [
        ("mas_synapse_shared_secret", "shared-secret\n".to_owned()),
        ("mas_encryption_key", format!("{}\n", "ab".repeat(32))),
        (
            "mas_rsa.pem",
            SigningKey::generate_rsa(&mut rng)
                .unwrap()
                .to_pkcs8_pem()
                .unwrap(),
        ),
        (
            "mas_ec_p256.pem",
            SigningKey::generate_ec_p256(&mut rng)
                .to_pkcs8_pem()
                .unwrap(),
        ),
    ];
    for (name, content) in files {
        std::fs::write(root.join(name), content).unwrap();
    }
    let text = SAMPLE_CONFIG
        .replace("/abs/data/secrets", root.as_str())
        .replace(
            "sqlite:///abs/path/data/mas/mas.db",
            "postgresql://mas:pw@localhost/mas",
        );
    from_str(&text).unwrap()
}

fn paths(config: &RootConfig) -> Vec<String> {
    config
        .validate()
        .into_iter()
        .map(|problem| problem.path)
        .collect()
}

#[test]
fn sample_config_deserializes() {
    let config = from_str(SAMPLE_CONFIG).unwrap();
    let listener = &config.http.listeners[0];
    assert_eq!(listener.path_prefix(), Some("/auth"));
    assert_eq!(
        listener.binds[0].socket_address().as_deref(),
        Some("127.0.0.1:8080")
    );
    assert!(listener.resources.contains(&Resource::Health {}));
    assert!(listener.resources.contains(&Resource::Assets {
        path: "/path/to/repo/assets".into()
    }));
    assert_eq!(config.database.schema.as_deref(), Some("mas"));
    assert_eq!(config.matrix.homeserver, "example.com");
    assert_eq!(config.email.transport, EmailTransport::Blackhole);
    // Unset keys take upstream's defaults.
    assert_eq!(config.database.connect_timeout, 30);
    assert!(config.account.password_change_allowed);
}

#[test]
fn brief_sample_only_lacks_its_files_and_a_postgres_uri() {
    let config = from_str(SAMPLE_CONFIG).unwrap();
    assert_eq!(
        paths(&config),
        [
            "database.schema",
            "matrix.secret_file",
            "secrets.encryption_file",
            "secrets.keys[0].key_file",
            "secrets.keys[1].key_file",
        ]
    );
}

#[test]
fn a_complete_config_has_no_problems_and_loads_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = valid_config(&dir);
    assert_eq!(config.validate(), []);
    assert_eq!(config.matrix.load_secret().unwrap(), "shared-secret");
    assert_eq!(config.secrets.encryption_key().unwrap().0, [0xab; 32]);
}

#[test]
fn missing_secret_file_names_the_file_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.matrix.secret_file = Some("/nonexistent/secret".into());
    let problems = config.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "matrix.secret_file");
    assert!(problems[0].message.contains("/nonexistent/secret"));
}

#[test]
fn inline_secret_and_file_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.matrix.secret = Some("inline".to_owned());
    assert_eq!(paths(&config), ["matrix.secret"]);
}

#[test]
fn bad_database_url_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.database.uri = Some("not a url".to_owned());
    assert_eq!(paths(&config), ["database.uri"]);
}

#[test]
fn public_base_without_trailing_slash_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.http.public_base = "http://localhost:8000/auth".parse().unwrap();
    // The prefix still matches the path, so only the slash is wrong.
    assert_eq!(paths(&config), ["http.public_base"]);
}

#[test]
fn listener_prefix_must_match_public_base_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.http.listeners[0].prefix = Some("/other".to_owned());
    let problems = config.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "http.listeners[0].prefix");
    assert!(problems[0].message.contains("/auth"), "{}", problems[0]);
}

#[test]
fn schema_with_sqlite_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.database.uri = Some("sqlite:///tmp/mas.db".to_owned());
    assert_eq!(paths(&config), ["database.schema"]);
}

#[test]
fn encryption_key_must_be_64_hex_characters() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.secrets.encryption_file = None;
    config.secrets.encryption = Some("abcd".to_owned());
    assert_eq!(paths(&config), ["secrets.encryption"]);
}

#[test]
fn an_rsa_key_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.secrets.keys.remove(0);
    assert_eq!(paths(&config), ["secrets.keys"]);
}

#[test]
fn bad_bind_and_proxy_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid_config(&dir);
    config.http.trusted_proxies.push("nonsense".to_owned());
    config.http.listeners[0]
        .binds
        .push(BindConfig::address("no-port"));
    assert_eq!(
        paths(&config),
        ["http.trusted_proxies[2]", "http.listeners[0].binds[1]"]
    );
}

#[test]
fn unknown_key_is_a_schema_error_naming_its_path() {
    let text = SAMPLE_CONFIG.replace("address: \"127.0.0.1:8080\"", "adress: x");
    let error = from_str(&text).unwrap_err().to_string();
    assert!(error.contains("http.listeners[0].binds[0]"), "{error}");
    assert!(error.contains("adress"), "{error}");
}

#[test]
fn unknown_resource_is_a_schema_error() {
    let text = SAMPLE_CONFIG.replace("name: compat", "name: graphql");
    let error = from_str(&text).unwrap_err().to_string();
    assert!(error.contains("graphql"), "{error}");
}

#[test]
fn later_files_are_deep_merged_over_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    let overlay = dir.path().join("overlay.yaml");
    std::fs::write(&base, SAMPLE_CONFIG).unwrap();
    std::fs::write(
        &overlay,
        "account:\n  password_registration_enabled: true\ndatabase:\n  max_connections: 3\n",
    )
    .unwrap();
    let files = [base, overlay].map(|path| Utf8PathBuf::try_from(path).unwrap());
    let config = load(&files).unwrap();
    assert!(config.account.password_registration_enabled);
    assert_eq!(config.database.max_connections, 3);
    // Untouched siblings survive the merge.
    assert_eq!(config.database.schema.as_deref(), Some("mas"));
    assert!(config.account.email_change_allowed);
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let error = load(&["/nonexistent/mas.yaml"]).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/mas.yaml"));
}

#[test]
fn defaults_are_valid_apart_from_required_values() {
    assert_eq!(
        paths(&RootConfig::default()),
        [
            "database.uri",
            "matrix.secret",
            "secrets.encryption",
            "secrets.keys"
        ]
    );
}

#[test]
fn unknown_key_inside_a_resource_is_refused() {
    let text = SAMPLE_CONFIG.replace("- name: health", "- name: health\n          extra: 1");
    let error = from_str(&text).unwrap_err().to_string();
    assert!(error.contains("extra"), "{error}");
}
