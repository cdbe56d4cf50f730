//! Cost of one password hash with the appliance's argon2id parameters (the budget is 20–50 ms
//! per hash on the 2-core machine) and with a few alternatives, for choosing them.
//! Run with `cargo bench -p mas --bench passwords`.

use std::io::Write;
use std::time::Instant;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use mas::crypto::passwords::{ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB};

fn main() {
    let ours = (ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES);
    let mut out = std::io::stdout().lock();
    for (m, t, p) in [
        ours,
        (19 * 1024, 3, 1),
        (12 * 1024, 3, 1),
        (46 * 1024, 1, 1),
    ] {
        let params = Params::new(m, t, p, None).expect("valid argon2 parameters");
        let argon2 =
            Argon2::new_with_secret(b"pepper", Algorithm::Argon2id, Version::V0x13, params)
                .expect("valid argon2 secret");
        let salt = SaltString::encode_b64(&[7; 16]).expect("a 16-byte salt encodes");
        let _ = argon2.hash_password(b"warm up", &salt);
        let rounds: u32 = 20;
        let start = Instant::now();
        for _ in 0..rounds {
            let _ = argon2.hash_password(b"correct horse battery staple", &salt);
        }
        let per_hash = start.elapsed() / rounds;
        let marker = if (m, t, p) == ours { " (ours)" } else { "" };
        let _ = writeln!(
            out,
            "argon2id m={m} KiB t={t} p={p}: {per_hash:?} per hash{marker}"
        );
    }
}
