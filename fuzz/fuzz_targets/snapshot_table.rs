//! Snapshot table (spec §11) and snapshot record (spec §11.1) parsing.
//!
//! Input: one mode byte, then the bytes. Mode bit 0 selects the table (the
//! generation it is checked against is `1 + mode / 4`), else the record. With
//! the table, bit 1 sets the count field from the length first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::snapshot::SnapshotRecord;
use ptar::format::table;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 != 0 {
        let mut buf = rest.to_vec();
        if mode & 2 != 0 && buf.len() >= 16 {
            let n = ((buf.len() - 16) / 40) as u32;
            buf[8..12].copy_from_slice(&n.to_le_bytes());
        }
        let generation = 1 + u64::from(mode / 4);
        if let Ok(entries) = table::parse(&buf, generation) {
            assert_eq!(
                table::to_bytes(&entries),
                buf,
                "table does not re-serialize"
            );
            for e in &entries {
                assert!(e.generation >= 1 && e.generation <= generation);
            }
        }
    } else if let Ok(r) = SnapshotRecord::parse(rest) {
        // Unknown non-critical extensions are dropped: compare parsed values.
        let again = r.to_bytes();
        assert!(again.len() <= rest.len());
        assert_eq!(SnapshotRecord::parse(&again).as_ref(), Ok(&r));
    }
});
