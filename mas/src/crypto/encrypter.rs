//! Symmetric authenticated encryption for cookies and secrets stored in the database, keyed
//! from `secrets.encryption`. Each purpose gets its own sub-key (HKDF-SHA256, RFC 5869),
//! so a value encrypted for one purpose never decrypts as another. The cipher is
//! ChaCha20-Poly1305 (RFC 8439) with a random 96-bit nonce; the output is
//! `base64url(nonce ‖ ciphertext ‖ tag)` without padding, safe in cookies and URLs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit as _, Nonce};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::config::EncryptionKey;

/// Nonce length of ChaCha20-Poly1305.
const NONCE_LEN: usize = 12;
/// Tag length of ChaCha20-Poly1305.
const TAG_LEN: usize = 16;

/// Sub-key purpose: private cookies.
pub const PURPOSE_COOKIES: &str = "cookies";
/// Sub-key purpose: secrets stored in the database (client secrets, upstream tokens).
pub const PURPOSE_DATABASE: &str = "database";

/// A value could not be decrypted: not ours, tampered with, or for another purpose or
/// context. Deliberately says nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot decrypt the value")]
pub struct DecryptError;

/// Encrypts and decrypts with one purpose's sub-key; cheap to clone.
#[derive(Clone)]
pub struct Encrypter {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Encrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encrypter(..)")
    }
}

impl Encrypter {
    /// The encrypter for `purpose` (e.g. [`PURPOSE_COOKIES`]), keyed with
    /// HKDF-SHA256(ikm = the encryption key, info = `mas/encrypter/<purpose>`).
    pub fn derive(key: &EncryptionKey, purpose: &str) -> Self {
        let mut sub_key = Zeroizing::new([0_u8; 32]);
        let info = format!("mas/encrypter/{purpose}");
        Hkdf::<Sha256>::new(None, &key.0)
            .expand(info.as_bytes(), sub_key.as_mut_slice())
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        Self {
            cipher: ChaCha20Poly1305::new(&Key::from(*sub_key)),
        }
    }

    /// Encrypts `plaintext` with a fresh nonce from `rng`.
    pub fn encrypt(&self, rng: &mut (impl RngCore + CryptoRng), plaintext: &[u8]) -> String {
        self.encrypt_with_context(rng, b"", plaintext)
    }

    /// Decrypts a value made by [`encrypt`](Self::encrypt).
    pub fn decrypt(&self, text: &str) -> Result<Vec<u8>, DecryptError> {
        self.decrypt_with_context(b"", text)
    }

    /// Encrypts `plaintext` bound to `context` (authenticated, not encrypted): the value
    /// only decrypts with the same context. Cookies use their name, so one cookie's value
    /// cannot be replayed as another's.
    pub fn encrypt_with_context(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        context: &[u8],
        plaintext: &[u8],
    ) -> String {
        let mut nonce = [0_u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 only fails past 256 GiB"));
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Decrypts a value made by [`encrypt_with_context`](Self::encrypt_with_context) with
    /// the same `context`.
    pub fn decrypt_with_context(
        &self,
        context: &[u8],
        text: &str,
    ) -> Result<Vec<u8>, DecryptError> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| DecryptError)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(DecryptError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| DecryptError)?;
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        self.cipher
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| DecryptError)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey([byte; 32])
    }

    #[test]
    fn values_round_trip_and_use_fresh_nonces() {
        let mut rng = StdRng::seed_from_u64(1);
        let encrypter = Encrypter::derive(&key(1), PURPOSE_COOKIES);
        let first = encrypter.encrypt(&mut rng, b"hello");
        let second = encrypter.encrypt(&mut rng, b"hello");
        assert_ne!(first, second);
        assert_eq!(encrypter.decrypt(&first).unwrap(), b"hello");
        assert_eq!(encrypter.decrypt(&second).unwrap(), b"hello");
        // nonce (12) + "hello" (5) + tag (16) = 33 bytes = 44 base64url characters.
        assert_eq!(first.len(), 44);
        assert!(
            first
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn other_purposes_keys_and_contexts_cannot_decrypt() {
        let mut rng = StdRng::seed_from_u64(2);
        let cookies = Encrypter::derive(&key(1), PURPOSE_COOKIES);
        let value = cookies.encrypt_with_context(&mut rng, b"session", b"secret");
        assert_eq!(
            cookies.decrypt_with_context(b"session", &value).unwrap(),
            b"secret"
        );
        assert_eq!(
            cookies.decrypt_with_context(b"csrf", &value),
            Err(DecryptError)
        );
        assert_eq!(cookies.decrypt(&value), Err(DecryptError));
        let database = Encrypter::derive(&key(1), PURPOSE_DATABASE);
        assert_eq!(
            database.decrypt_with_context(b"session", &value),
            Err(DecryptError)
        );
        let other_key = Encrypter::derive(&key(2), PURPOSE_COOKIES);
        assert_eq!(
            other_key.decrypt_with_context(b"session", &value),
            Err(DecryptError)
        );
    }

    #[test]
    fn tampered_or_malformed_values_are_refused() {
        let mut rng = StdRng::seed_from_u64(3);
        let encrypter = Encrypter::derive(&key(1), PURPOSE_COOKIES);
        let value = encrypter.encrypt(&mut rng, b"hello");
        let mut bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(&bytes);
        for text in [
            tampered.as_str(),
            "",
            "AAAA",
            "not base64!",
            &value[..value.len() - 2],
        ] {
            assert_eq!(encrypter.decrypt(text), Err(DecryptError), "{text}");
        }
    }

    #[test]
    fn derivation_is_deterministic_so_restarts_keep_cookies_readable() {
        let mut rng = StdRng::seed_from_u64(4);
        let value = Encrypter::derive(&key(7), PURPOSE_DATABASE).encrypt(&mut rng, b"x");
        let again = Encrypter::derive(&key(7), PURPOSE_DATABASE);
        assert_eq!(again.decrypt(&value).unwrap(), b"x");
        assert_eq!(format!("{again:?}"), "Encrypter(..)");
    }
}
