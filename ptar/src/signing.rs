//! ed25519 signing keys for footers, and their text files.
//!
//! A secret key file holds one line `PTAR-SECRET-KEY-1 <64 hex digits of the seed>`,
//! a public key file one line `PTAR-PUBLIC-KEY-1 <64 hex digits>`.
//!
//! Public keys and signatures are checked as spec §2 defines "strict"
//! ed25519: a public key must be the canonical encoding of a curve point
//! that is not of small order ([`public_key`]); a signature's `S` must be
//! below the group order, its `R` canonical and not of small order, and the
//! equation is the cofactorless one ([`verify`]).

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::format::{hex, unhex};
use crate::{Error, Result};

const SECRET_PREFIX: &str = "PTAR-SECRET-KEY-1 ";
const PUBLIC_PREFIX: &str = "PTAR-PUBLIC-KEY-1 ";

/// A new random signing key.
pub fn generate() -> SigningKey {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).expect("the operating system's random source failed");
    SigningKey::from_bytes(&seed)
}

/// The secret key file's text.
pub fn secret_to_text(k: &SigningKey) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(format!("{SECRET_PREFIX}{}\n", hex(&k.to_bytes())))
}

/// The public key file's text.
pub fn public_to_text(k: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}\n", hex(k.as_bytes()))
}

/// Parses a secret key file.
pub fn secret_from_text(text: &str) -> Result<SigningKey> {
    let h = text
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .map(str::trim)
        .ok_or_else(|| Error::InvalidInput("not a ptar secret key file".into()))?;
    let b = zeroize::Zeroizing::new(
        unhex(h)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| Error::InvalidInput("malformed ptar secret key".into()))?,
    );
    Ok(SigningKey::from_bytes(
        b.as_slice().try_into().expect("32 bytes"),
    ))
}

/// Parses a public key file (or a secret key file, taking its public half).
pub fn public_from_text(text: &str) -> Result<VerifyingKey> {
    if text.trim_start().starts_with(SECRET_PREFIX.trim_end()) {
        return Ok(secret_from_text(text)?.verifying_key());
    }
    let h = text
        .trim()
        .strip_prefix(PUBLIC_PREFIX)
        .map(str::trim)
        .ok_or_else(|| Error::InvalidInput("not a ptar public key file".into()))?;
    let b: [u8; 32] = unhex(h)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::InvalidInput("malformed ptar public key".into()))?;
    public_key(&b).map_err(|why| Error::InvalidInput(format!("the public key {why}")))
}

/// Decodes a public key as spec §2 requires: the 32 bytes decode to a point
/// of the curve, are that point's canonical encoding (the y coordinate below
/// 2^255 − 19; the sign bit clear when x is 0), and the point is not of
/// small order. The error says which rule the bytes break.
pub fn public_key(bytes: &[u8; 32]) -> std::result::Result<VerifyingKey, &'static str> {
    let k = VerifyingKey::from_bytes(bytes).map_err(|_| "is not an ed25519 curve point")?;
    if k.to_edwards().compress().as_bytes() != bytes {
        return Err("is not the canonical encoding of its point");
    }
    if k.is_weak() {
        return Err("is a point of small order");
    }
    Ok(k)
}

/// Verifies an ed25519 signature strictly (spec §2): the public key passes
/// [`public_key`]; `S` is below the group order ℓ; `R` is the canonical
/// encoding of a point not of small order; and `[S]B = R + [k]A` holds
/// without multiplying by the cofactor, with `k = SHA-512(R || A || message)`
/// reduced modulo ℓ.
pub fn verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(k) = public_key(public) else {
        return false;
    };
    // verify_strict rejects S ≥ ℓ, an R that does not decode, an R or key of
    // small order, and (by comparing encodings) a non-canonical R.
    k.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

/// Short fingerprint of a public key (first 8 bytes, hex).
pub fn fingerprint(k: &[u8; 32]) -> String {
    hex(&k[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    /// The group order ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = a[i] as u16 + b[i] as u16 + carry;
            out[i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        out
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn a_good_signature_verifies_and_a_non_canonical_s_does_not() {
        let k = key();
        let public = k.verifying_key().to_bytes();
        let sig = k.sign(b"message").to_bytes();
        assert!(verify(&public, b"message", &sig));
        assert!(!verify(&public, b"other message", &sig));
        // S + ℓ satisfies the equation as well ([ℓ]B is the identity), but
        // is not canonical: refused.
        let mut bad = sig;
        let s: [u8; 32] = sig[32..].try_into().unwrap();
        bad[32..].copy_from_slice(&add_le(&s, &ORDER));
        assert!(!verify(&public, b"message", &bad));
    }

    #[test]
    fn small_order_keys_are_refused_and_cannot_forge() {
        // The identity (y = 1) and a point of order 2 (y = −1): curve points
        // that decode, canonical, of small order.
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        };
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        for a in [identity, minus_one] {
            assert!(VerifyingKey::from_bytes(&a).is_ok(), "a curve point");
            assert_eq!(public_key(&a).unwrap_err(), "is a point of small order");
            let text = format!("{PUBLIC_PREFIX}{}\n", hex(&a));
            let e = public_from_text(&text).unwrap_err().to_string();
            assert!(e.contains("small order"), "{e}");
        }
        // With A = R = identity and S = 0 the cofactorless equation holds
        // for every message; strict verification refuses it.
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity);
        assert!(!verify(&identity, b"anything", &sig));
        assert!(!verify(&identity, b"anything else", &sig));
    }

    #[test]
    fn non_canonical_keys_are_refused() {
        // y = p + j (p = 2^255 − 19) encodes the same y as j: find such an
        // encoding of a point of large order.
        let mut found = 0;
        for j in 0u8..19 {
            for sign in [0u8, 0x80] {
                let mut a = [0xffu8; 32];
                a[0] = 0xed + j;
                a[31] = 0x7f | sign;
                let Ok(k) = VerifyingKey::from_bytes(&a) else {
                    continue;
                };
                assert!(public_key(&a).is_err(), "{}", hex(&a));
                if !k.is_weak() {
                    assert_eq!(
                        public_key(&a).unwrap_err(),
                        "is not the canonical encoding of its point"
                    );
                    found += 1;
                }
            }
        }
        assert!(
            found > 0,
            "some non-canonical encoding of a large-order point"
        );
        // The identity with the sign bit set ("negative zero" x).
        let mut a = [0u8; 32];
        a[0] = 1;
        a[31] = 0x80;
        assert!(public_key(&a).is_err());
        // Bytes that decode to no point at all.
        let mut a = [0u8; 32];
        a[0] = 2;
        assert_eq!(public_key(&a).unwrap_err(), "is not an ed25519 curve point");
        // A real key passes, from its public or its secret key file.
        let k = key();
        let p = public_from_text(&public_to_text(&k.verifying_key())).unwrap();
        assert_eq!(p, k.verifying_key());
        assert_eq!(public_from_text(&secret_to_text(&k)).unwrap(), p);
    }
}
