//! Regression tests for what the fuzz targets in `fuzz/` found. Each test
//! rebuilds the crashing input by code (or from a short hex literal) and
//! checks the library now answers with an error, not a panic.

use ptar::format::header::{Header, KdfParams, KeySlot};

/// `fuzz/fuzz_targets/header.rs`: a key slot with a huge Argon2 lane count
/// made `KdfParams::check_limits` compute `8 * p` in u32 and overflow (a
/// panic in debug builds, a wrapped comparison in release builds). Reached
/// from any archive's key slot when a passphrase is tried.
#[test]
fn kdf_limits_with_a_huge_lane_count_do_not_overflow() {
    for p in [u32::MAX, 0x2000_0001, 1 << 29] {
        let kdf = KdfParams { m_kib: 64, t: 1, p };
        assert!(kdf.check_limits().is_err(), "p = {p:#x}");
    }
    // Through the header parser and the key-slot unwrap, as the fuzzer did.
    let slot = KeySlot {
        kdf: KdfParams {
            m_kib: 1 << 20,
            t: 1,
            p: u32::MAX,
        },
        salt: [1; 16],
        nonce: [2; 24],
        wrapped: [3; 48],
    };
    let h = Header {
        major: ptar::format::FORMAT_MAJOR,
        minor: 0,
        flags: ptar::format::header::FLAG_ENCRYPTED,
        uuid: [4; 16],
        chunker: ptar::ChunkerParams::DEFAULT,
        default_codec: 0,
        created: 0,
        key_check: [5; 32],
        key_slots: vec![slot],
    };
    let parsed = Header::parse(&h.to_bytes()).expect("the header itself is well formed");
    let err = ptar::crypto::unwrap_slot(&parsed.key_slots[0], b"pw", &parsed.uuid);
    assert!(matches!(err, Err(ptar::Error::ExcessiveWork(_))));
}
