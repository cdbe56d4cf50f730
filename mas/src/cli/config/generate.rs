//! `config generate`: a complete configuration for local use, with fresh secrets inline (the
//! keys are made here, in the CLI, so that `config` stays plain data).

use std::path::Path;

use camino::Utf8PathBuf;

use rand::distributions::Alphanumeric;
use rand::{CryptoRng, Rng, RngCore};
use url::Url;

use crate::config::{
    BindConfig, DatabaseConfig, HttpConfig, KeyConfig, ListenerConfig, MatrixConfig, Resource,
    RootConfig, SecretsConfig, TemplatesConfig,
};
use crate::crypto::{KeyError, SigningKey};

/// A working configuration for local use: MAS on `http://localhost:8080/` with every
/// resource, data in `./mas.db`, Synapse expected on `localhost:8008`, and fresh secrets (a
/// 32-byte encryption key, RSA-2048 and EC P-256 signing keys, a homeserver secret).
pub(crate) fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Result<RootConfig, KeyError> {
    let rsa = SigningKey::generate_rsa(rng)?.to_pkcs8_pem()?;
    let ec = SigningKey::generate_ec_p256(rng).to_pkcs8_pem()?;
    let http = HttpConfig {
        public_base: Url::parse("http://localhost:8080/").expect("a constant, valid URL"),
        listeners: vec![ListenerConfig {
            name: Some("web".to_owned()),
            resources: vec![
                Resource::Discovery {},
                Resource::Human {},
                Resource::OAuth {},
                Resource::Compat {},
                Resource::Assets {
                    path: "assets".into(),
                },
                Resource::Health {},
            ],
            prefix: None,
            binds: vec![BindConfig::address("127.0.0.1:8080")],
        }],
        ..HttpConfig::default()
    };
    Ok(RootConfig {
        http,
        database: DatabaseConfig {
            uri: Some("sqlite://mas.db".to_owned()),
            ..DatabaseConfig::default()
        },
        matrix: MatrixConfig {
            secret: Some(random_hex(rng)),
            ..MatrixConfig::default()
        },
        secrets: SecretsConfig {
            encryption: Some(random_hex(rng)),
            encryption_file: None,
            keys: vec![
                KeyConfig {
                    kid: Some(random_kid(rng)),
                    key: Some(rsa),
                    key_file: None,
                },
                KeyConfig {
                    kid: Some(random_kid(rng)),
                    key: Some(ec),
                    key_file: None,
                },
            ],
        },
        templates: TemplatesConfig {
            path: shipped_templates(),
            ..TemplatesConfig::default()
        },
        ..RootConfig::default()
    })
}

/// The templates shipped with this binary: next to it in the image (`/app/code/templates/mas`),
/// or in the repository for `target/{debug,release}/mas-cli`; else the relative default.
fn shipped_templates() -> Utf8PathBuf {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let candidates = exe_dir
        .iter()
        .flat_map(|dir| [dir.join("templates/mas"), dir.join("../../templates/mas")]);
    candidates
        .filter_map(|dir| dir.canonicalize().ok())
        .find(|dir| dir.is_dir())
        .and_then(|dir| Utf8PathBuf::from_path_buf(dir).ok())
        .unwrap_or_else(|| TemplatesConfig::default().path)
}

/// 32 random bytes as 64 hex characters.
fn random_hex(rng: &mut impl RngCore) -> String {
    let mut bytes = [0_u8; 32];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A 10-character alphanumeric key ID, like upstream's.
fn random_kid(rng: &mut impl RngCore) -> String {
    rng.sample_iter(Alphanumeric)
        .take(10)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;
    use crate::config::from_str;

    #[test]
    fn generated_config_validates_and_loads_its_keys() {
        let generated = generate(&mut StdRng::seed_from_u64(3)).unwrap();
        let yaml = serde_yaml::to_string(&generated).unwrap();
        let config = from_str(&yaml).unwrap();
        assert_eq!(config, generated);
        assert_eq!(config.validate(), []);
        let keys = config.secrets.load_keys().unwrap();
        let algorithms: Vec<_> = keys.iter().map(|loaded| loaded.key.algorithm()).collect();
        assert_eq!(algorithms, ["RS256", "ES256"]);
        assert!(config.secrets.encryption_key().is_ok());
    }

    #[test]
    fn redaction_hides_inline_secrets() {
        let config = generate(&mut StdRng::seed_from_u64(4)).unwrap();
        let yaml = serde_yaml::to_string(&config.redacted()).unwrap();
        assert!(!yaml.contains("PRIVATE KEY"), "{yaml}");
        assert!(!yaml.contains(config.matrix.secret.as_deref().unwrap()));
    }
}
