//! Snapshot runs (spec §11.2: snapshot pages and snapshot directories) and
//! the snapshot record (§11.1).
//!
//! Input: one mode byte, then the bytes. Mode bit 0 clear: a snapshot
//! record. Bit 0 set: bit 1 selects a snapshot directory, else a snapshot
//! page, checked against the coverage of the run of generation
//! `1 + mode / 8` (so runs covering 1, 4 and 16 generations are met); bit 2
//! sets the count field from the length first, so mutations reach the
//! entries. What parses must re-serialize to exactly its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::frame::MAX_BODY_LEN;
use ptar::format::run::{
    self, parse_snapshot_directory, parse_snapshot_page, snapshot_directory_bytes,
    snapshot_page_bytes, MAX_PAGE_ENTRIES, SNAPSHOT_DIR_ENTRY_LEN, SNAPSHOT_ENTRY_LEN,
};
use ptar::format::snapshot::SnapshotRecord;

fn set_count(buf: &mut [u8], entry_len: usize) {
    if buf.len() >= 4 {
        let n = ((buf.len() - 4) / entry_len) as u32;
        buf[..4].copy_from_slice(&n.to_le_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(r) = SnapshotRecord::parse(rest) {
            // Unknown non-critical extensions are dropped: compare parsed values.
            let again = r.to_bytes();
            assert!(again.len() <= rest.len());
            assert_eq!(SnapshotRecord::parse(&again).as_ref(), Ok(&r));
        }
        return;
    }
    let mut buf = rest.to_vec();
    if mode & 2 != 0 {
        if mode & 4 != 0 {
            set_count(&mut buf, SNAPSHOT_DIR_ENTRY_LEN);
        }
        if let Ok(pages) = parse_snapshot_directory(&buf) {
            assert_eq!(
                snapshot_directory_bytes(&pages),
                buf,
                "snapshot directory does not re-serialize"
            );
            for p in &pages {
                assert!(p.count >= 1 && p.count as usize <= MAX_PAGE_ENTRIES);
                assert!(p.body_len >= 1 && p.body_len <= MAX_BODY_LEN);
            }
        }
    } else {
        if mode & 4 != 0 {
            set_count(&mut buf, SNAPSHOT_ENTRY_LEN);
        }
        let g = 1 + u64::from(mode >> 3);
        let covered = g - run::coverage(g) + 1..=g;
        if let Ok(entries) = parse_snapshot_page(&buf, covered.clone()) {
            assert_eq!(
                snapshot_page_bytes(&entries),
                buf,
                "snapshot page does not re-serialize"
            );
            assert!(!entries.is_empty() && entries.len() <= MAX_PAGE_ENTRIES);
            for e in &entries {
                assert!(covered.contains(&e.generation));
                assert!(e.location.body_len >= 1 && e.location.body_len <= MAX_BODY_LEN);
            }
        }
    }
});
