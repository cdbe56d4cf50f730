//! The other random values (codes, secrets, device IDs; docs/protocol.md#tokens). Each takes the
//! injected RNG; none is stored in plaintext except the device ID and the user code, which are not
//! bearer credentials on their own.

use rand::distributions::{Alphanumeric, DistString as _, Uniform};
use rand::{CryptoRng, Rng as _, RngCore};

/// `len` characters from `[A-Za-z0-9]`.
pub fn alphanumeric(rng: &mut (impl RngCore + CryptoRng), len: usize) -> String {
    Alphanumeric.sample_string(rng, len)
}

/// An OAuth 2.0 authorization code: 32 alphanumerics.
pub fn authorization_code(rng: &mut (impl RngCore + CryptoRng)) -> String {
    alphanumeric(rng, 32)
}

/// A compat SSO `loginToken`: 32 alphanumerics.
pub fn login_token(rng: &mut (impl RngCore + CryptoRng)) -> String {
    alphanumeric(rng, 32)
}

/// A device-authorization `device_code`: 32 alphanumerics.
pub fn device_code(rng: &mut (impl RngCore + CryptoRng)) -> String {
    alphanumeric(rng, 32)
}

/// The alphabet of device-authorization user codes: upper-case letters and digits without the
/// look-alikes `0`/`O` and `1`/`I` (RFC 8628 §6.1), 32 characters.
pub const USER_CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The length of a user code: 8 characters of [`USER_CODE_ALPHABET`], 40 bits (RFC 8628 §5.1
/// with the code-entry page's rate limit).
pub const USER_CODE_LEN: usize = 8;

/// A device-authorization `user_code`: [`USER_CODE_LEN`] characters of
/// [`USER_CODE_ALPHABET`], stored and compared without the hyphen people see (`ABCD-EFGH`).
pub fn user_code(rng: &mut (impl RngCore + CryptoRng)) -> String {
    let index = Uniform::from(0..USER_CODE_ALPHABET.len());
    (0..USER_CODE_LEN)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.sample(index)]))
        .collect()
}

/// A password recovery ticket, the secret of the mailed link: 32 alphanumerics (about 190
/// bits), URL-safe as is.
pub fn recovery_ticket(rng: &mut (impl RngCore + CryptoRng)) -> String {
    alphanumeric(rng, 32)
}

/// An email verification code: 6 digits, zero-padded.
pub fn email_code(rng: &mut (impl RngCore + CryptoRng)) -> String {
    format!("{:06}", rng.gen_range(0..1_000_000_u32))
}

/// A client secret handed out by dynamic client registration: 20 alphanumerics.
pub fn client_secret(rng: &mut (impl RngCore + CryptoRng)) -> String {
    alphanumeric(rng, 20)
}

/// A generated Matrix device ID for compat logins: 10 alphanumerics.
pub fn compat_device_id(rng: &mut (impl RngCore + CryptoRng)) -> String {
    alphanumeric(rng, 10)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    fn all_alphanumeric(value: &str) -> bool {
        value.bytes().all(|byte| byte.is_ascii_alphanumeric())
    }

    #[test]
    fn values_have_the_lengths_and_alphabets_of_the_spec() {
        let mut rng = StdRng::seed_from_u64(3);
        for (value, len) in [
            (authorization_code(&mut rng), 32),
            (login_token(&mut rng), 32),
            (device_code(&mut rng), 32),
            (client_secret(&mut rng), 20),
            (compat_device_id(&mut rng), 10),
        ] {
            assert_eq!(value.len(), len, "{value}");
            assert!(all_alphanumeric(&value), "{value}");
        }
        for _ in 0..50 {
            let code = user_code(&mut rng);
            assert_eq!(code.len(), USER_CODE_LEN);
            assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
            assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
            let email = email_code(&mut rng);
            assert_eq!(email.len(), 6);
            assert!(email.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn values_are_fresh_each_call() {
        let mut rng = StdRng::seed_from_u64(3);
        assert_ne!(authorization_code(&mut rng), authorization_code(&mut rng));
    }

    #[test]
    fn email_codes_are_zero_padded() {
        // Over many draws some code starts with 0; all keep six characters.
        let mut rng = StdRng::seed_from_u64(9);
        let codes: Vec<String> = (0..200).map(|_| email_code(&mut rng)).collect();
        assert!(codes.iter().any(|code| code.starts_with('0')));
        assert!(codes.iter().all(|code| code.len() == 6));
    }
}
