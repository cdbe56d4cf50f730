use rand::SeedableRng as _;
use rand::rngs::StdRng;

use super::*;
use crate::config::{HashingAlgorithm, HashingScheme};

fn scheme(version: u16, algorithm: HashingAlgorithm) -> HashingScheme {
    HashingScheme {
        version,
        algorithm,
        cost: (algorithm == HashingAlgorithm::Bcrypt).then_some(4),
        secret: None,
        secret_file: None,
        unicode_normalization: false,
    }
}

/// Version 1 bcrypt (imported from Synapse), version 2 argon2id.
fn upgrading_manager() -> PasswordManager {
    let config = PasswordsConfig {
        schemes: vec![
            scheme(2, HashingAlgorithm::Argon2id),
            scheme(1, HashingAlgorithm::Bcrypt),
        ],
        ..PasswordsConfig::default()
    };
    config.build_manager().unwrap()
}

fn assert_send_static<T: Send + 'static>(value: T) -> T {
    value
}

#[tokio::test]
async fn new_hashes_use_the_highest_version() {
    let manager = upgrading_manager();
    assert_eq!(manager.current_version(), 2);
    let mut rng = StdRng::seed_from_u64(1);
    let (version, hash) = assert_send_static(manager.hash(&mut rng, "hunter2"))
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let verified = manager.verify(version, &hash, "hunter2").await.unwrap();
    assert_eq!(
        verified,
        Verified {
            needs_upgrade: false
        }
    );
}

#[tokio::test]
async fn hash_futures_do_not_borrow_the_rng() {
    let manager = upgrading_manager();
    let mut rng = StdRng::seed_from_u64(4);
    let first = manager.hash(&mut rng, "one");
    let second = manager.hash(&mut rng, "two");
    let (first, second) = tokio::join!(first, second);
    assert_ne!(first.unwrap().1, second.unwrap().1);
}

#[tokio::test]
async fn old_versions_verify_and_need_an_upgrade() {
    let manager = upgrading_manager();
    let synapse_hash = "$2b$04$vcIJnn0Cr3KL1ZRbFuLrLOddXUxyp2ktTx8jq5BXRKq/YW1a8cUn6";
    let verified = manager
        .verify(1, synapse_hash, "correct horse battery staple")
        .await
        .unwrap();
    assert_eq!(
        verified,
        Verified {
            needs_upgrade: true
        }
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_versions_are_errors() {
    let manager = upgrading_manager();
    let synapse_hash = "$2b$04$vcIJnn0Cr3KL1ZRbFuLrLOddXUxyp2ktTx8jq5BXRKq/YW1a8cUn6";
    let wrong = manager.verify(1, synapse_hash, "wrong").await;
    assert!(matches!(wrong, Err(PasswordError::Mismatch)), "{wrong:?}");
    let unknown = manager.verify(9, synapse_hash, "wrong").await;
    assert!(matches!(unknown, Err(PasswordError::UnknownVersion(9))));
    // A hash stored under the wrong version is malformed for that scheme.
    let mixed = manager
        .verify(2, synapse_hash, "correct horse battery staple")
        .await;
    assert!(
        matches!(mixed, Err(PasswordError::MalformedHash)),
        "{mixed:?}"
    );
}

#[tokio::test]
async fn verify_and_upgrade_returns_a_current_hash_only_for_the_right_password() {
    let manager = upgrading_manager();
    let mut rng = StdRng::seed_from_u64(2);
    let old = "$2b$04$vcIJnn0Cr3KL1ZRbFuLrLOddXUxyp2ktTx8jq5BXRKq/YW1a8cUn6";
    let password = "correct horse battery staple";

    let upgrade = manager.verify_and_upgrade(&mut rng, 1, old, password);
    let (version, new) = assert_send_static(upgrade).await.unwrap().unwrap();
    assert_eq!(version, 2);
    assert!(manager.verify(2, &new, password).await.is_ok());

    let wrong = manager.verify_and_upgrade(&mut rng, 1, old, "wrong").await;
    assert!(matches!(wrong, Err(PasswordError::Mismatch)));

    let current = manager
        .verify_and_upgrade(&mut rng, 2, &new, password)
        .await;
    assert!(current.unwrap().is_none());
}

#[tokio::test]
async fn the_dummy_verification_uses_the_current_scheme_and_is_counted() {
    let manager = upgrading_manager();
    assert_eq!(manager.verifications(), 0);
    manager.verify_dummy("guess").await;
    // Even the dummy's own password is not a success for anyone: the outcome is discarded.
    manager.verify_dummy(DUMMY_PASSWORD).await;
    assert_eq!(manager.verifications(), 2);
    // Made once, with the current (version 2, Argon2id) scheme.
    let dummy = manager.dummy.get().unwrap().clone().unwrap();
    assert!(dummy.starts_with("$argon2id$"), "{dummy}");
    // Real verifications count too.
    let synapse_hash = "$2b$04$vcIJnn0Cr3KL1ZRbFuLrLOddXUxyp2ktTx8jq5BXRKq/YW1a8cUn6";
    let _ = manager.verify(1, synapse_hash, "wrong").await;
    assert_eq!(manager.verifications(), 3);

    let bcrypt = PasswordsConfig {
        schemes: vec![scheme(1, HashingAlgorithm::Bcrypt)],
        ..PasswordsConfig::default()
    };
    let manager = bcrypt.build_manager().unwrap();
    manager.verify_dummy("guess").await;
    let dummy = manager.dummy.get().unwrap().clone().unwrap();
    assert!(dummy.starts_with("$2b$04$"), "{dummy}");
}

#[tokio::test]
async fn peppers_are_read_from_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = camino::Utf8PathBuf::try_from(dir.path().join("pepper")).unwrap();
    std::fs::write(&path, "pep\n").unwrap();
    let mut bcrypt = scheme(1, HashingAlgorithm::Bcrypt);
    bcrypt.secret_file = Some(path);
    let config = PasswordsConfig {
        schemes: vec![bcrypt],
        ..PasswordsConfig::default()
    };
    let manager = PasswordManager::from_config(&config).unwrap();
    let (_, hash) = manager
        .hash(&mut StdRng::seed_from_u64(3), "pw")
        .await
        .unwrap();
    // The trimmed file content was appended: "pw" + "pep".
    let unpeppered = PasswordManager::new(
        [(
            1,
            Hasher::new(HashingAlgorithm::Bcrypt, Some(4), None, false).unwrap(),
        )],
        0,
    )
    .unwrap();
    assert!(unpeppered.verify(1, &hash, "pwpep").await.is_ok());
}

#[test]
fn bad_configs_are_refused() {
    let empty = PasswordsConfig {
        schemes: vec![],
        ..PasswordsConfig::default()
    };
    assert!(matches!(
        empty.build_manager(),
        Err(PasswordConfigError::NoSchemes)
    ));
    let twice = PasswordsConfig {
        schemes: vec![
            scheme(1, HashingAlgorithm::Argon2id),
            scheme(1, HashingAlgorithm::Bcrypt),
        ],
        ..PasswordsConfig::default()
    };
    assert!(matches!(
        twice.build_manager(),
        Err(PasswordConfigError::DuplicateVersion(1))
    ));
    let mut missing = scheme(1, HashingAlgorithm::Bcrypt);
    missing.secret_file = Some("/nonexistent/pepper".into());
    let missing = PasswordsConfig {
        schemes: vec![missing],
        ..PasswordsConfig::default()
    };
    assert!(matches!(
        missing.build_manager(),
        Err(PasswordConfigError::Pepper { version: 1, .. })
    ));
}

#[test]
fn the_default_config_hashes_with_argon2id() {
    let manager = PasswordsConfig::default().build_manager().unwrap();
    assert_eq!(manager.current_version(), 1);
}

#[test]
fn complexity_follows_the_zxcvbn_score() {
    assert!(!complexity_ok("password", 1));
    assert!(!complexity_ok("", 1));
    assert!(complexity_ok("", 0));
    assert!(complexity_ok("x7#Kp!2vQz@9Lm", 4));
    assert!(!complexity_ok("hunter2", 3));
    let manager = PasswordsConfig::default().build_manager().unwrap();
    assert!(!manager.is_complex_enough("password1"));
    assert!(manager.is_complex_enough("correct horse battery staple"));
    // Very long input is cheap: zxcvbn looks at the first 100 characters only.
    let long = format!("x7#Kp!2vQz@9Lm{}", "a".repeat(1_000_000));
    let start = std::time::Instant::now();
    complexity_ok(&long, 3);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}
