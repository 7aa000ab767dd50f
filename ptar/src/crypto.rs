//! Keys, content ids and record encryption (spec §5, §6, §8).
//!
//! The passphrase goes only into Argon2id. Its output unwraps a random 256-bit
//! master key from a key slot; every working key is derived from the master
//! key with BLAKE3 `derive_key` and one of the fixed contexts below.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::format::header::{KdfParams, KeySlot};
use crate::format::{Id, Kind, FORMAT_MAJOR};
use crate::{Error, Result};

/// `derive_key` context of the frame encryption key (spec §5.5).
pub const CONTEXT_FRAME: &str = "ptar 2026-12-06 v2 frame encryption key";
/// `derive_key` context of the content-id key.
pub const CONTEXT_ID: &str = "ptar 2026-11-22 v1 content id key";
/// `derive_key` context of the chunker gear-table key.
pub const CONTEXT_GEAR: &str = "ptar 2026-11-22 v1 chunker gear table";
/// `derive_key` context of the key-check key.
pub const CONTEXT_KEY_CHECK: &str = "ptar 2026-11-22 v1 key check";
/// Associated-data prefix of a key-slot wrap.
pub const KEYSLOT_AD_PREFIX: &[u8] = b"ptar-keyslot-v1";
pub use crate::format::frame::SEAL_OVERHEAD;

/// A 256-bit secret that is wiped when dropped.
pub type SecretKey = Zeroizing<[u8; 32]>;

/// Source of random bytes: the OS, or a seeded stream for test vectors.
pub trait Entropy: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Randomness from the operating system.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("the operating system's random source failed");
    }
}

/// A deterministic stream (BLAKE3 XOF of a seed): only for reproducible test
/// vectors. Never use it for real archives.
pub struct SeededEntropy(blake3::OutputReader);

impl SeededEntropy {
    /// A stream determined by `seed`.
    pub fn new(seed: &[u8]) -> SeededEntropy {
        let mut h = blake3::Hasher::new_derive_key("ptar test vectors deterministic entropy");
        h.update(seed);
        SeededEntropy(h.finalize_xof())
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf);
    }
}

#[cfg(test)]
thread_local! {
    /// Argon2id derivations started on this thread: lets a test prove that a
    /// refusal came before any derivation, without timing anything.
    pub(crate) static ARGON2_RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs Argon2id after checking the caps, so a hostile slot cannot make us
/// allocate or spin without bound.
pub fn passphrase_key(passphrase: &[u8], kdf: &KdfParams, salt: &[u8; 16]) -> Result<SecretKey> {
    kdf.check_limits().map_err(Error::ExcessiveWork)?;
    #[cfg(test)]
    ARGON2_RUNS.with(|n| n.set(n.get() + 1));
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))
        .map_err(|e| Error::ExcessiveWork(format!("Argon2id refused the parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| Error::InvalidInput(format!("Argon2id failed: {e}")))?;
    Ok(out)
}

fn keyslot_ad(uuid: &[u8; 16], slot: &KeySlot) -> Vec<u8> {
    let mut ad = KEYSLOT_AD_PREFIX.to_vec();
    ad.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
    ad.extend_from_slice(uuid);
    ad.extend_from_slice(&slot.params_bytes());
    ad
}

/// Wraps `master` for `passphrase` into a new key slot.
pub fn wrap_master_key(
    master: &[u8; 32],
    passphrase: &[u8],
    kdf: KdfParams,
    uuid: &[u8; 16],
    entropy: &mut dyn Entropy,
) -> Result<KeySlot> {
    let mut salt = [0u8; 16];
    entropy.fill(&mut salt);
    let mut nonce = [0u8; 24];
    entropy.fill(&mut nonce);
    let mut slot = KeySlot {
        kdf,
        salt,
        nonce,
        wrapped: [0; 48],
    };
    let kek = passphrase_key(passphrase, &kdf, &salt)?;
    let ad = keyslot_ad(uuid, &slot);
    let ct = XChaCha20Poly1305::new(kek.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: master,
                aad: &ad,
            },
        )
        .expect("encrypting 32 bytes cannot fail");
    slot.wrapped.copy_from_slice(&ct);
    Ok(slot)
}

/// Tries one slot: `Ok(None)` when the passphrase does not open it.
pub fn unwrap_slot(
    slot: &KeySlot,
    passphrase: &[u8],
    uuid: &[u8; 16],
) -> Result<Option<SecretKey>> {
    let kek = passphrase_key(passphrase, &slot.kdf, &slot.salt)?;
    let ad = keyslot_ad(uuid, slot);
    match XChaCha20Poly1305::new(kek.as_ref().into()).decrypt(
        XNonce::from_slice(&slot.nonce),
        Payload {
            msg: &slot.wrapped,
            aad: &ad,
        },
    ) {
        Ok(pt) => {
            let pt = Zeroizing::new(pt);
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&pt);
            Ok(Some(k))
        }
        Err(_) => Ok(None),
    }
}

/// The key-check value stored in the header.
pub fn key_check(master: &[u8; 32], uuid: &[u8; 16]) -> [u8; 32] {
    let k = blake3::derive_key(CONTEXT_KEY_CHECK, master);
    *blake3::keyed_hash(&k, uuid).as_bytes()
}

/// The working keys of an encrypted archive.
pub struct Keys {
    master: SecretKey,
    frame: SecretKey,
    id: SecretKey,
    gear: SecretKey,
}

impl Keys {
    /// Derives every subkey from the master key.
    pub fn from_master(master: SecretKey) -> Keys {
        let d = |ctx| Zeroizing::new(blake3::derive_key(ctx, master.as_ref()));
        Keys {
            frame: d(CONTEXT_FRAME),
            id: d(CONTEXT_ID),
            gear: d(CONTEXT_GEAR),
            master,
        }
    }

    /// The master key (for wrapping it into a new slot).
    pub fn master(&self) -> &[u8; 32] {
        &self.master
    }

    /// The gear-table key.
    pub fn gear_key(&self) -> &[u8; 32] {
        &self.gear
    }

    /// Whether `other` gives every blob the same id as these keys (the same
    /// content-id key: archives sharing a master key). Compared in constant
    /// time.
    pub fn same_content_ids(&self, other: &Keys) -> bool {
        self.id
            .iter()
            .zip(other.id.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Subkey bytes by context, for test vectors.
    pub fn subkeys(&self) -> [(&'static str, [u8; 32]); 3] {
        [
            (CONTEXT_FRAME, *self.frame),
            (CONTEXT_ID, *self.id),
            (CONTEXT_GEAR, *self.gear),
        ]
    }
}

/// Computes a blob's id: BLAKE3 of `kind || data`, keyed with the id key
/// when encrypted.
pub fn content_id(keys: Option<&Keys>, kind: Kind, data: &[u8]) -> Id {
    let mut h = match keys {
        Some(k) => blake3::Hasher::new_keyed(&k.id),
        None => blake3::Hasher::new(),
    };
    h.update(&[kind as u8]);
    h.update(data);
    Id(*h.finalize().as_bytes())
}

/// Seals a frame's envelope (spec §8.1): `nonce || Seal(K_frame, nonce,
/// AD_frame, envelope)`, for the frame at `offset`.
pub fn seal_frame(
    keys: &Keys,
    uuid: &[u8; 16],
    offset: u64,
    nonce: &[u8; 24],
    envelope: &[u8],
) -> Vec<u8> {
    let body_len = u32::try_from(envelope.len() + SEAL_OVERHEAD).expect("frames are below 17 MiB");
    let ad = crate::format::frame::associated_data(uuid, offset, body_len);
    let ct = XChaCha20Poly1305::new(keys.frame.as_ref().into())
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: envelope,
                aad: &ad,
            },
        )
        .expect("a frame below the size limit always encrypts");
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens a sealed frame body at `offset`; `None` when it does not authenticate.
pub fn open_frame(keys: &Keys, uuid: &[u8; 16], offset: u64, body: &[u8]) -> Option<Vec<u8>> {
    if body.len() < SEAL_OVERHEAD {
        return None;
    }
    let ad = crate::format::frame::associated_data(uuid, offset, u32::try_from(body.len()).ok()?);
    let (nonce, ct) = body.split_at(24);
    let cipher = XChaCha20Poly1305::new(keys.frame.as_ref().into());
    decrypt_record(&cipher, XNonce::from_slice(nonce), ct, &ad)
}

/// Decrypts and authenticates `ct` (ciphertext and tag).
#[cfg(not(fuzzing))]
fn decrypt_record(
    cipher: &XChaCha20Poly1305,
    nonce: &XNonce,
    ct: &[u8],
    ad: &[u8],
) -> Option<Vec<u8>> {
    cipher.decrypt(nonce, Payload { msg: ct, aad: ad }).ok()
}

/// Fuzzing builds only (`--cfg fuzzing`, set by cargo-fuzz): decrypts
/// WITHOUT checking the tag, so fuzzed records reach the decompressor and
/// the parsers behind it. The keystream is the encryption of zeros under
/// the same nonce and associated data; authentic records decrypt as usual.
#[cfg(fuzzing)]
fn decrypt_record(
    cipher: &XChaCha20Poly1305,
    nonce: &XNonce,
    ct: &[u8],
    ad: &[u8],
) -> Option<Vec<u8>> {
    let body = ct.get(..ct.len().checked_sub(16)?)?;
    let zeros = vec![0u8; body.len()];
    let keystream = cipher
        .encrypt(
            nonce,
            Payload {
                msg: &zeros,
                aad: ad,
            },
        )
        .ok()?;
    Some(body.iter().zip(&keystream).map(|(c, k)| c ^ k).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn slot_round_trip_and_wrong_passphrase() {
        let mut e = SeededEntropy::new(b"t");
        let mk = [5u8; 32];
        let uuid = [1u8; 16];
        let slot = wrap_master_key(&mk, b"right", FAST, &uuid, &mut e).unwrap();
        assert_eq!(*unwrap_slot(&slot, b"right", &uuid).unwrap().unwrap(), mk);
        assert!(unwrap_slot(&slot, b"wrong", &uuid).unwrap().is_none());
        assert!(unwrap_slot(&slot, b"right", &[2u8; 16]).unwrap().is_none());
    }

    #[test]
    fn hostile_kdf_is_refused_before_work() {
        let slot = KeySlot {
            kdf: KdfParams {
                m_kib: 64 * 1024 * 1024,
                t: 1,
                p: 1,
            },
            salt: [0; 16],
            nonce: [0; 24],
            wrapped: [0; 48],
        };
        let t = std::time::Instant::now();
        assert!(matches!(
            unwrap_slot(&slot, b"x", &[0; 16]),
            Err(Error::ExcessiveWork(_))
        ));
        assert!(t.elapsed().as_secs() < 1);
    }

    #[test]
    fn ids_are_domain_separated_and_keyed() {
        let k = Keys::from_master(Zeroizing::new([3; 32]));
        assert_ne!(
            content_id(None, Kind::Chunk, b"x"),
            content_id(None, Kind::Tree, b"x")
        );
        assert_ne!(
            content_id(None, Kind::Chunk, b"x"),
            content_id(Some(&k), Kind::Chunk, b"x")
        );
    }

    #[test]
    fn frame_ad_binds_offset_length_and_archive() {
        let k = Keys::from_master(Zeroizing::new([3; 32]));
        let uuid = [0; 16];
        let sealed = seal_frame(&k, &uuid, 10, &[9; 24], b"abc");
        assert_eq!(open_frame(&k, &uuid, 10, &sealed).unwrap(), b"abc");
        assert!(open_frame(&k, &uuid, 11, &sealed).is_none());
        assert!(open_frame(&k, &[1; 16], 10, &sealed).is_none());
        assert!(open_frame(&k, &uuid, 10, &sealed[..sealed.len() - 1]).is_none());
    }
}
