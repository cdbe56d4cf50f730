//! The generated secrets in `<data>/secrets/` (docs/architecture.md#secrets): created once when
//! absent, never regenerated, each written atomically with mode 0600 in a 0700 directory.

use std::io;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::distributions::{Alphanumeric, DistString};
use rand::{CryptoRng, RngCore};

use crate::fsutil::{ensure_dir, write_atomic};
use crate::paths::{Layout, SECRET_FILES};

/// Errors while creating secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("cannot generate {name}: {message}")]
    Generate { name: &'static str, message: String },
}

/// Creates every missing secret; existing files are left untouched. Returns the names created.
pub fn ensure_secrets(
    layout: &Layout,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<&'static str>, SecretsError> {
    let dir = layout.secrets_dir();
    ensure_dir(&dir, 0o700).map_err(|source| io_err(&dir, source))?;
    let mut created = Vec::new();
    for name in SECRET_FILES {
        let path = layout.secret(name);
        if path.exists() {
            continue;
        }
        let contents = generate(name, rng)?;
        write_atomic(&path, contents.as_bytes(), 0o600).map_err(|source| io_err(&path, source))?;
        created.push(name);
    }
    Ok(created)
}

fn io_err(path: &Path, source: io::Error) -> SecretsError {
    SecretsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The contents of one secret file.
fn generate(
    name: &'static str,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String, SecretsError> {
    let fail = |e: &dyn std::fmt::Display| SecretsError::Generate {
        name,
        message: e.to_string(),
    };
    Ok(match name {
        "synapse_signing.key" => synapse_signing_key(rng),
        "mas_encryption_key" => {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            format!("{}\n", hex::encode(key))
        }
        "mas_rsa.pem" => {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            let key = rsa::RsaPrivateKey::new(rng, 2048).map_err(|e| fail(&e))?;
            key.to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| fail(&e))?
                .to_string()
        }
        "mas_ec_p256.pem" => {
            use p256::pkcs8::{EncodePrivateKey, LineEnding};
            let key = p256::SecretKey::random(rng);
            key.to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| fail(&e))?
                .to_string()
        }
        // synapse_macaroon, synapse_form_secret, synapse_registration_secret,
        // mas_synapse_shared_secret: 64 alphanumerics (~380 bits).
        _ => format!("{}\n", Alphanumeric.sample_string(rng, 64)),
    })
}

/// A Synapse signing key file: `ed25519 a_XXXX <unpadded base64 of a 32-byte seed>`.
fn synapse_signing_key(rng: &mut (impl RngCore + CryptoRng)) -> String {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let version = Alphanumeric.sample_string(rng, 4);
    format!("ed25519 a_{version} {}\n", STANDARD_NO_PAD.encode(seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::os::unix::fs::PermissionsExt;

    fn layout(dir: &Path) -> Layout {
        Layout::new(&dir.join("data"), &dir.join("run"))
    }

    #[test]
    fn creates_every_secret_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = layout(tmp.path());
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let created = ensure_secrets(&layout, &mut rng).unwrap();
        assert_eq!(created, SECRET_FILES.to_vec());
        let dir_mode = std::fs::metadata(layout.secrets_dir())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        for name in SECRET_FILES {
            let meta = std::fs::metadata(layout.secret(name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
            assert!(meta.len() > 0, "{name} is empty");
        }
    }

    #[test]
    fn existing_secrets_are_never_regenerated() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = layout(tmp.path());
        ensure_secrets(&layout, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
        let before: Vec<Vec<u8>> = SECRET_FILES
            .iter()
            .map(|n| std::fs::read(layout.secret(n)).unwrap())
            .collect();
        // A different RNG would produce different values if anything were rewritten.
        std::fs::remove_file(layout.secret("synapse_macaroon")).unwrap();
        let created = ensure_secrets(&layout, &mut rand::rngs::StdRng::seed_from_u64(2)).unwrap();
        assert_eq!(created, vec!["synapse_macaroon"]);
        for (name, old) in SECRET_FILES.iter().zip(&before) {
            let now = std::fs::read(layout.secret(name)).unwrap();
            if *name == "synapse_macaroon" {
                assert_ne!(&now, old, "a deleted secret is generated anew");
            } else {
                assert_eq!(&now, old, "{name} changed");
            }
        }
    }

    #[test]
    fn secret_formats_are_what_synapse_and_mas_expect() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = layout(tmp.path());
        ensure_secrets(&layout, &mut rand::rngs::StdRng::seed_from_u64(3)).unwrap();
        let read = |n| std::fs::read_to_string(layout.secret(n)).unwrap();

        let signing = read("synapse_signing.key");
        let parts: Vec<&str> = signing.trim_end().split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "ed25519");
        assert!(parts[1].starts_with("a_") && parts[1].len() == 6);
        assert_eq!(parts[2].len(), 43, "32 bytes in unpadded base64");

        let enc = read("mas_encryption_key");
        assert_eq!(enc.trim_end().len(), 64);
        assert!(hex::decode(enc.trim_end()).is_ok());

        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let rsa_key = rsa::RsaPrivateKey::from_pkcs8_pem(&read("mas_rsa.pem")).unwrap();
        assert_eq!(rsa_key.size(), 256, "RSA-2048");
        p256::SecretKey::from_pkcs8_pem(&read("mas_ec_p256.pem")).unwrap();

        let shared = read("mas_synapse_shared_secret");
        assert_eq!(shared.trim_end().len(), 64);
        assert!(shared.trim_end().chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
