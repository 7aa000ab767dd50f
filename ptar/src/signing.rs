//! ed25519 signing keys for footers, and their text files.
//!
//! A secret key file holds one line `PTAR-SECRET-KEY-1 <64 hex digits of the seed>`,
//! a public key file one line `PTAR-PUBLIC-KEY-1 <64 hex digits>`.

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
    VerifyingKey::from_bytes(&b)
        .map_err(|_| Error::InvalidInput("the public key is not a valid ed25519 point".into()))
}

/// Short fingerprint of a public key (first 8 bytes, hex).
pub fn fingerprint(k: &[u8; 32]) -> String {
    hex(&k[..8])
}
