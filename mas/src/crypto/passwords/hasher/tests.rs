use super::*;

const SALT: [u8; 16] = *b"0123456789abcdef";

fn argon2(pepper: Option<&str>) -> Hasher {
    Hasher::new(HashingAlgorithm::Argon2id, None, pepper, false).unwrap()
}

fn bcrypt(cost: u32, pepper: Option<&str>, nfkc: bool) -> Hasher {
    Hasher::new(HashingAlgorithm::Bcrypt, Some(cost), pepper, nfkc).unwrap()
}

#[test]
fn argon2id_hashes_are_phc_strings_with_the_documented_parameters() {
    let hash = argon2(None).hash("hunter2", SALT).unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(argon2(None).verify("hunter2", &hash).unwrap());
    assert!(!argon2(None).verify("hunter3", &hash).unwrap());
}

#[test]
fn argon2id_pepper_is_needed_to_verify() {
    let hash = argon2(Some("pepper")).hash("hunter2", SALT).unwrap();
    assert!(argon2(Some("pepper")).verify("hunter2", &hash).unwrap());
    assert!(!argon2(None).verify("hunter2", &hash).unwrap());
    assert!(!argon2(Some("other")).verify("hunter2", &hash).unwrap());
}

#[test]
fn bcrypt_emits_2b_with_the_configured_cost_and_appends_the_pepper() {
    let hash = bcrypt(5, Some("pep"), false).hash("pw", SALT).unwrap();
    assert!(hash.starts_with("$2b$05$"), "{hash}");
    assert!(bcrypt(5, Some("pep"), false).verify("pw", &hash).unwrap());
    // The pepper is appended to the password bytes, nothing more.
    assert!(bcrypt(5, None, false).verify("pwpep", &hash).unwrap());
    assert!(!bcrypt(5, None, false).verify("pw", &hash).unwrap());
}

#[test]
fn bcrypt_verifies_hashes_made_the_way_synapse_makes_them() {
    // Made with Python bcrypt 5.0.0 through Synapse 1.163's `_do_hash` logic: NFKC, pepper
    // appended, truncated to 72 bytes, `bcrypt.hashpw(.., bcrypt.gensalt(rounds))`.
    let plain = "$2b$04$vcIJnn0Cr3KL1ZRbFuLrLOddXUxyp2ktTx8jq5BXRKq/YW1a8cUn6";
    assert!(
        bcrypt(12, None, true)
            .verify("correct horse battery staple", plain)
            .unwrap()
    );

    // "ﬁnd-me-Å" with U+FB01 (ligature) and U+212B (Ångström sign), pepper "pepper!".
    let peppered = "$2b$05$.Rz3SWlIm6gT.9CmgUyOBexwp5yBIR5sn5u3.syfnsFAQNzWh2Kdq";
    let synapse = bcrypt(12, Some("pepper!"), true);
    assert!(synapse.verify("\u{FB01}nd-me-\u{212B}", peppered).unwrap());
    // NFKC makes the decomposed spelling equal too.
    assert!(synapse.verify("find-me-\u{00C5}", peppered).unwrap());
    // Without normalisation the ligature no longer matches.
    let raw = bcrypt(12, Some("pepper!"), false);
    assert!(!raw.verify("\u{FB01}nd-me-\u{212B}", peppered).unwrap());

    // 100 bytes + pepper "pep": only the first 72 bytes of the password were hashed.
    let long_hash = "$2b$04$bkn.15H9Uy/DGagBkF4xD.bp25X.5dkhDAC9OH2Rw1svjIQGQsjuG";
    let long = format!(
        "{}correct horse battery staple{}",
        "x".repeat(60),
        "y".repeat(12)
    );
    let synapse = bcrypt(12, Some("pep"), true);
    assert!(synapse.verify(&long, long_hash).unwrap());
    assert!(synapse.verify(&long[..72], long_hash).unwrap());
    assert!(!synapse.verify(&long[..71], long_hash).unwrap());
}

#[test]
fn bcrypt_truncates_peppered_input_at_72_bytes() {
    let hasher = bcrypt(4, Some("pepper"), false);
    let password = "p".repeat(70);
    let hash = hasher.hash(&password, SALT).unwrap();
    // 70 + "pe" are hashed; the rest of the pepper is cut off.
    assert!(
        bcrypt(4, None, false)
            .verify(&format!("{password}pe"), &hash)
            .unwrap()
    );
    assert!(
        bcrypt(4, None, false)
            .verify(&format!("{password}pX"), &hash)
            .is_ok_and(|ok| !ok)
    );
}

#[test]
fn bcrypt_accepts_2a_and_2y_prefixes() {
    let hash = bcrypt(4, None, false).hash("pw", SALT).unwrap();
    for prefix in ["$2a$", "$2y$"] {
        let other = hash.replacen("$2b$", prefix, 1);
        assert!(
            bcrypt(4, None, false).verify("pw", &other).unwrap(),
            "{other}"
        );
    }
}

#[test]
fn bcrypt_cost_out_of_range_is_refused() {
    assert!(Hasher::new(HashingAlgorithm::Bcrypt, Some(3), None, false).is_err());
    assert!(Hasher::new(HashingAlgorithm::Bcrypt, Some(32), None, false).is_err());
}

#[test]
fn pbkdf2_verifies_phc_hashes_of_the_peppered_password() {
    // New PBKDF2 hashes use the crate's 600,000 rounds (seconds in a debug build), so the
    // stored hash here is made with 1,000 rounds: verification reads rounds from the hash.
    let params = pbkdf2::Params {
        rounds: 1_000,
        output_length: 32,
    };
    let salt = SaltString::encode_b64(&SALT).unwrap();
    let hash = Pbkdf2
        .hash_password_customized(b"pwpep", None, None, params, &salt)
        .unwrap()
        .to_string();
    assert!(hash.starts_with("$pbkdf2-sha256$i=1000,"), "{hash}");
    let hasher = Hasher::new(HashingAlgorithm::Pbkdf2, None, Some("pep"), false).unwrap();
    assert!(hasher.verify("pw", &hash).unwrap());
    assert!(!hasher.verify("pwpep", &hash).unwrap());
}

#[test]
fn malformed_hashes_are_errors_not_mismatches() {
    for algorithm in [
        HashingAlgorithm::Argon2id,
        HashingAlgorithm::Bcrypt,
        HashingAlgorithm::Pbkdf2,
    ] {
        let hasher = Hasher::new(algorithm, Some(4), None, false).unwrap();
        for hash in ["", "garbage", "$2b$04$short", "$argon2id$v=19$m=1"] {
            assert!(
                matches!(hasher.verify("pw", hash), Err(PasswordError::MalformedHash)),
                "{algorithm:?} {hash}"
            );
        }
    }
}

#[test]
fn debug_output_hides_the_pepper() {
    let debug = format!("{:?}", argon2(Some("sekrit")));
    assert!(!debug.contains("sekrit"), "{debug}");
}
