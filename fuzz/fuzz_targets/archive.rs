//! Whole-archive open, list, walk, read and verify, from bytes.
//!
//! Input: one mode byte, then the archive. Mode bit 0 repairs the header
//! checksum and the trailers' hashes and checks first
//! ([`ptar_fuzz::fix_archive`]), so mutations get past the integrity checks
//! to the manifest, the runs and the frames; bit 1 opens through a temporary
//! file (memory map and positional reads) instead of from memory; bit 2
//! (without bit 1) opens the bytes as a caller's positional source
//! ([`Archive::from_reader`]). Encrypted
//! archives get the test passphrase when every key slot in the input is
//! cheap to try.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use ptar::Archive;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    let keys = ptar_fuzz::keys_for(&bytes);
    if mode & 1 != 0 {
        ptar_fuzz::fix_archive(&mut bytes, keys.as_deref());
    }
    let pass = ptar_fuzz::kdf_is_cheap(&bytes).then_some(ptar_fuzz::PASSPHRASE);
    // A damaged tail is read past, so that what follows still meets it.
    let opts = ptar::OpenOptions::new().allow_damaged_tail(true);
    let archive = if mode & 2 != 0 {
        let Ok(mut f) = tempfile::tempfile() else {
            return;
        };
        if f.write_all(&bytes).is_err() {
            return;
        }
        let _ = ptar::probe_file(&f);
        Archive::from_file_with(f, std::path::Path::new("fuzz.ptar"), pass, &opts)
    } else if mode & 4 != 0 {
        Archive::from_reader_with(bytes, pass, &opts)
    } else {
        Archive::from_vec_with(bytes, pass, &opts)
    };
    if let Ok(a) = archive {
        ptar_fuzz::exercise(&a);
    }
});
