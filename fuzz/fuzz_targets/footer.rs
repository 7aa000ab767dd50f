//! Footer parsing (spec §10): the trailer (§10.2, §10.3 rule 2) and the
//! manifest's content (§10.1).
//!
//! Input: one mode byte, then the bytes. Mode bit 0 selects the manifest,
//! else the trailer. For a trailer, bit 1 pads or cuts the bytes to 184,
//! writes both magics and recomputes the check, so mutations reach the
//! fields. For a manifest, bit 1 sets the run count to what the generation
//! needs and cuts or pads the runs and the signature block to match. Whatever
//! parses must re-serialize to exactly its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::manifest::{
    self, Manifest, Trailer, MANIFEST_FIXED_LEN, RUN_LEN, SIGNATURE_LEN, TRAILER_CHECKED_LEN,
    TRAILER_LEN,
};
use ptar::format::run::runs_in_force;

fn trailer(mode: u8, rest: &[u8]) {
    let mut buf = rest.to_vec();
    if mode & 2 != 0 {
        buf.resize(TRAILER_LEN, 0);
        buf[..8].copy_from_slice(&manifest::MAGIC);
        buf[TRAILER_LEN - 8..].copy_from_slice(&manifest::END_MAGIC);
        let check = *blake3::hash(&buf[..TRAILER_CHECKED_LEN]).as_bytes();
        buf[TRAILER_CHECKED_LEN..TRAILER_CHECKED_LEN + 32].copy_from_slice(&check);
    }
    let looks = Trailer::looks_like_trailer(&buf);
    if let Ok(t) = Trailer::parse(&buf) {
        assert!(looks, "a trailer that parses must look like one");
        assert_eq!(
            t.to_bytes()[..],
            buf[..],
            "trailer does not re-serialize to its bytes"
        );
        assert_eq!(t.checked_bytes()[..], buf[..TRAILER_CHECKED_LEN]);
        if t.key_slots.is_none() {
            assert_eq!(t.key_slots_hash, [0; 32], "a key-slot hash without a table");
        }
    }
}

fn manifest(mode: u8, rest: &[u8]) {
    let mut buf = rest.to_vec();
    if mode & 2 != 0 && buf.len() >= 32 {
        // Keep the generation small enough that the run list stays short.
        let g = u64::from_le_bytes(buf[24..32].try_into().expect("8 bytes")) % 4096 + 1;
        buf[24..32].copy_from_slice(&g.to_le_bytes());
        let r = runs_in_force(g).len();
        buf.resize(MANIFEST_FIXED_LEN.max(buf.len()), 0);
        buf[156..160].copy_from_slice(&(r as u32).to_le_bytes());
        buf.resize(MANIFEST_FIXED_LEN + RUN_LEN * r + SIGNATURE_LEN, 0);
    }
    if let Ok(m) = Manifest::parse(&buf) {
        assert_eq!(
            m.to_bytes(),
            buf,
            "manifest does not re-serialize to its bytes"
        );
        assert_eq!(m.runs.len(), runs_in_force(m.generation).len());
        let signed = m.signed_bytes();
        assert_eq!(signed[..], buf[..buf.len() - SIGNATURE_LEN]);
        assert!(m
            .signature_message()
            .starts_with(manifest::SIGNATURE_CONTEXT));
        assert_eq!(Manifest::parse(&m.to_bytes()).as_ref(), Ok(&m));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 != 0 {
        manifest(mode, rest);
    } else {
        trailer(mode, rest);
    }
});
