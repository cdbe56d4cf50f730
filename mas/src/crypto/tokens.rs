//! Bearer tokens (docs/protocol.md#tokens): `<prefix>_<30 alphanumerics>_<checksum>`, where the
//! checksum is the CRC-32/ISO-HDLC of `<prefix>_<random>` written in base 62. This module generates
//! and recognises tokens and hashes them for storage; it does not know whether a token is live
//! (that is a database lookup by [`sha256_hex`]).

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::{CryptoRng, RngCore};
use sha2::{Digest as _, Sha256};

use super::random::alphanumeric;

/// Length of the random part of a token.
const RANDOM_LENGTH: usize = 30;
/// Length of the checksum part of a token.
const CHECKSUM_LENGTH: usize = 6;
/// The base-62 alphabet of the checksum, digit value = index.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a bearer token is, as told by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// OAuth 2.0 access token (`mat_`).
    AccessToken,
    /// OAuth 2.0 refresh token (`mar_`).
    RefreshToken,
    /// Matrix compat access token (`mct_`; also legacy Synapse `syt_` and macaroons).
    CompatAccessToken,
    /// Matrix compat refresh token (`mcr_`; also legacy Synapse `syr_`).
    CompatRefreshToken,
    /// Personal access token (`mpt_`).
    PersonalAccessToken,
}

impl TokenKind {
    /// Every kind, in prefix order of the spec's table.
    pub const ALL: [Self; 5] = [
        Self::AccessToken,
        Self::RefreshToken,
        Self::CompatAccessToken,
        Self::CompatRefreshToken,
        Self::PersonalAccessToken,
    ];

    /// The three-letter prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::AccessToken => "mat",
            Self::RefreshToken => "mar",
            Self::CompatAccessToken => "mct",
            Self::CompatRefreshToken => "mcr",
            Self::PersonalAccessToken => "mpt",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.prefix() == prefix)
    }

    /// A fresh token of this kind: prefix, 30 random alphanumerics, checksum.
    pub fn generate(self, rng: &mut (impl RngCore + CryptoRng)) -> String {
        let body = format!("{}_{}", self.prefix(), alphanumeric(rng, RANDOM_LENGTH));
        let checksum = checksum(&body);
        format!("{body}_{checksum}")
    }

    /// The kind of `token`, or `None` if it is not a token we issued or imported.
    ///
    /// Our tokens are checked strictly: three `_`-separated parts of lengths 3, 30 and 6, a
    /// known prefix and a matching checksum. Legacy Synapse tokens are recognised without
    /// validation (they arrive through syn2mas imports): `syt_…` and macaroons are compat
    /// access tokens, `syr_…` is a compat refresh token.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.starts_with("syt_") || is_synapse_macaroon(token) {
            return Some(Self::CompatAccessToken);
        }
        if token.starts_with("syr_") {
            return Some(Self::CompatRefreshToken);
        }
        Self::from_own_token(token)
    }

    /// Strict parsing of a `m??_` token (no legacy formats).
    fn from_own_token(token: &str) -> Option<Self> {
        let mut parts = token.split('_');
        let (prefix, random, sum) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || random.len() != RANDOM_LENGTH
            || sum.len() != CHECKSUM_LENGTH
            || !random.bytes().all(|byte| byte.is_ascii_alphanumeric())
        {
            return None;
        }
        let kind = Self::from_prefix(prefix)?;
        let body = &token[..prefix.len() + 1 + random.len()];
        (checksum(body) == sum).then_some(kind)
    }
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
            Self::CompatAccessToken => "compat_access_token",
            Self::CompatRefreshToken => "compat_refresh_token",
            Self::PersonalAccessToken => "personal_access_token",
        })
    }
}

/// The 6-character checksum of `body` (`<prefix>_<random>`): CRC-32/ISO-HDLC in base 62,
/// least-significant digit first, left-padded with `0` (docs/protocol.md#tokens).
pub fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut digits = String::with_capacity(CHECKSUM_LENGTH);
    loop {
        digits.push(char::from(BASE62[(n % 62) as usize]));
        n /= 62;
        if n == 0 {
            break;
        }
    }
    // 62^6 > 2^32, so there are at most 6 digits.
    format!("{digits:0>CHECKSUM_LENGTH$}")
}

/// Whether `token` looks like a Synapse macaroon: base64url that decodes to a first packet
/// whose key is `location` (bytes `location ` at offset 4, after the 4-hex-digit length).
fn is_synapse_macaroon(token: &str) -> bool {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT
        .decode(token)
        .is_ok_and(|bytes| bytes.get(4..13) == Some(b"location ".as_slice()))
}

/// Lower-case hex SHA-256 of `value`: how tokens and codes are stored and looked up.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    /// Three vectors computed with upstream MAS's algorithm (docs/protocol.md#tokens).
    const VECTORS: [(&str, u32, &str); 3] = [
        (
            "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            0xF667_1F15,
            "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4",
        ),
        (
            "mct_abcdefghijklmnopqrstuvwxyz0123",
            0x2A90_CEBC,
            "mct_abcdefghijklmnopqrstuvwxyz0123_06fQKm",
        ),
        (
            "mar_0123456789abcdefghijABCDEFGHIJ",
            0x4084_0694,
            "mar_0123456789abcdefghijABCDEFGHIJ_wBcFB1",
        ),
    ];

    #[test]
    fn checksum_matches_the_spec_vectors() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        for (body, crc, token) in VECTORS {
            assert_eq!(crc32fast::hash(body.as_bytes()), crc, "{body}");
            assert_eq!(format!("{body}_{}", checksum(body)), token);
        }
    }

    #[test]
    fn spec_vectors_parse_as_their_kind() {
        assert_eq!(
            TokenKind::from_token(VECTORS[0].2),
            Some(TokenKind::AccessToken)
        );
        assert_eq!(
            TokenKind::from_token(VECTORS[1].2),
            Some(TokenKind::CompatAccessToken)
        );
        assert_eq!(
            TokenKind::from_token(VECTORS[2].2),
            Some(TokenKind::RefreshToken)
        );
    }

    #[test]
    fn generated_tokens_have_the_format_and_parse_back() {
        let mut rng = StdRng::seed_from_u64(7);
        for kind in TokenKind::ALL {
            let token = kind.generate(&mut rng);
            assert_eq!(token.len(), 3 + 1 + 30 + 1 + 6, "{token}");
            assert!(token.starts_with(&format!("{}_", kind.prefix())));
            assert_eq!(TokenKind::from_token(&token), Some(kind), "{token}");
        }
    }

    #[test]
    fn generation_is_deterministic_for_a_seeded_rng_and_differs_per_call() {
        let mut a = StdRng::seed_from_u64(1);
        let mut b = StdRng::seed_from_u64(1);
        let first = TokenKind::AccessToken.generate(&mut a);
        assert_eq!(first, TokenKind::AccessToken.generate(&mut b));
        assert_ne!(first, TokenKind::AccessToken.generate(&mut a));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let good = VECTORS[0].2;
        let bad_checksum = good.replace("_96elV4", "_96elV5");
        let unknown_prefix = format!("mxt{}", &good[3..]);
        let cases = [
            "",
            "mat",
            "mat__",
            &good[..good.len() - 1],
            &format!("{good}_"),
            &format!("{good}x"),
            &bad_checksum,
            &unknown_prefix,
            "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAA!_96elV4",
            "MAT_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4",
            "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_6elV4",
            "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4\n",
            "mat_ÄAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4",
        ];
        for token in cases {
            assert_eq!(TokenKind::from_token(token), None, "{token:?}");
        }
    }

    #[test]
    fn a_token_of_one_kind_does_not_pass_as_another() {
        // Swapping the prefix breaks the checksum, which covers the prefix.
        let token = VECTORS[0].2.replacen("mat", "mar", 1);
        assert_eq!(TokenKind::from_token(&token), None);
    }

    #[test]
    fn legacy_synapse_tokens_are_compat_tokens() {
        assert_eq!(
            TokenKind::from_token("syt_YWxpY2U_kJxYQeWdqQzXUaBnRSqa_2TAXIv"),
            Some(TokenKind::CompatAccessToken)
        );
        assert_eq!(
            TokenKind::from_token("syr_YWxpY2U_anything"),
            Some(TokenKind::CompatRefreshToken)
        );
        // Made with pymacaroons (Synapse's library): location example.com, one caveat.
        let macaroon = "MDAxOWxvY2F0aW9uIGV4YW1wbGUuY29tCjAwMTNpZGVudGlmaWVyIGtleQowMDI1Y2lkIHVzZXJfaWQgPSBAYWxpY2U6ZXhhbXBsZS5jb20KMDAyZnNpZ25hdHVyZSB7ixshqIroGxkvp2dpPW46kw4JKEjxaxn0BlUaOz3v1wo";
        assert_eq!(
            TokenKind::from_token(macaroon),
            Some(TokenKind::CompatAccessToken)
        );
        assert_eq!(TokenKind::from_token("MDAxOWxvY2F0aW9u"), None);
        assert_eq!(TokenKind::from_token("bm90IGEgbWFjYXJvb24K"), None);
    }

    #[test]
    fn sha256_hex_is_lower_case_hex_of_the_utf8_bytes() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn kinds_display_as_introspection_hints() {
        assert_eq!(TokenKind::AccessToken.to_string(), "access_token");
        assert_eq!(TokenKind::RefreshToken.to_string(), "refresh_token");
    }
}
