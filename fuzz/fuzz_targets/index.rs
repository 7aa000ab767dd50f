//! Index parsing and lookup (spec §9).
//!
//! Input: one mode byte, a 32-byte id to look up, then the index bytes.
//! Mode bit 0 treats the bytes as entries and builds a matching prefix
//! (magic, count, fan-out); with bit 1 the entries are sorted and deduplicated
//! first. Lookups must stay in bounds whatever the fan-out table says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::index::{self, IndexEntry, IndexView, ENTRY_LEN};
use ptar::format::Id;

fuzz_target!(|data: &[u8]| {
    if data.len() < 33 {
        return;
    }
    let mode = data[0];
    let probe = Id(data[1..33].try_into().expect("32 bytes"));
    let rest = &data[33..];
    let buf = if mode & 1 != 0 {
        let mut raw: Vec<&[u8]> = rest.chunks_exact(ENTRY_LEN).collect();
        if mode & 2 != 0 {
            raw.sort_by(|a, b| a[..32].cmp(&b[..32]));
            raw.dedup_by(|a, b| a[..32] == b[..32]);
        }
        let mut first = [0u32; 256];
        for e in &raw {
            first[e[0] as usize] += 1;
        }
        let mut b = index::prefix_bytes(raw.len() as u64, &first);
        for e in raw {
            b.extend_from_slice(e);
        }
        b
    } else {
        rest.to_vec()
    };
    for chunk in buf.chunks_exact(ENTRY_LEN) {
        if let Ok(e) = IndexEntry::parse(chunk) {
            let mut out = Vec::new();
            e.write(&mut out);
            assert_eq!(out, chunk, "index entry does not re-serialize to its bytes");
        }
    }
    if let Ok(v) = IndexView::for_lookup(&buf) {
        // A hostile fan-out table: lookups answer anything but stay in bounds.
        let _ = v.find(&probe);
        for i in 0..v.len().min(64) {
            if let Ok(e) = v.entry(i) {
                let _ = v.find(&e.id);
            }
        }
    }
    if let Ok(v) = IndexView::new(&buf) {
        let _ = v.find(&probe);
        if v.check_entries().is_ok() {
            let entries: Vec<IndexEntry> = v.iter().map(|e| e.expect("checked")).collect();
            assert_eq!(entries.len(), v.len());
            assert_eq!(
                index::to_bytes(&entries),
                buf,
                "index does not re-serialize"
            );
            for e in &entries {
                assert_eq!(v.find(&e.id), Ok(Some(*e)), "a listed entry is not found");
            }
            if !entries.iter().any(|e| e.id == probe) {
                assert_eq!(v.find(&probe), Ok(None));
            }
        }
    }
});
