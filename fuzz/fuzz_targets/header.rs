//! Header and key-slot parsing (spec §4, §5).
//!
//! Input: one mode byte, then the bytes. Mode bit 0 repairs the header's
//! length field and checksum first, so mutations reach the fields behind
//! the checksum; bit 1 also tries the bytes as a key-slot table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::header::{self, Header, KeySlot};
use ptar::format::Reader;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & 1 != 0 {
        ptar_fuzz::fix_archive(&mut buf, None);
        if let Some(Ok(len)) = buf.get(..16).map(Header::peek_len) {
            buf.truncate(len);
        }
    }
    let _ = Header::peek_len(&buf);
    if let Ok(h) = Header::parse(&buf) {
        // Every field is kept or checked: the bytes come back unchanged.
        assert_eq!(
            h.to_bytes(),
            buf,
            "header does not re-serialize to its bytes"
        );
        assert_eq!(h.encrypted(), !h.key_slots.is_empty());
        h.chunker
            .validate()
            .expect("a parsed header has valid chunker sizes");
        for s in &h.key_slots {
            let _ = s.kdf.check_limits();
            assert_eq!(s.params_bytes().len(), 32);
        }
    }
    if mode & 2 != 0 {
        if let Ok(slots) = header::keyslots_parse(&buf) {
            assert_eq!(header::keyslots_to_bytes(&slots), buf);
        }
    }
    let mut r = Reader::new(&buf);
    while let Ok(s) = KeySlot::read(&mut r) {
        let mut out = Vec::new();
        s.write(&mut out);
        assert_eq!(out.len(), header::KEY_SLOT_LEN);
        assert_eq!(KeySlot::read(&mut Reader::new(&out)).as_ref(), Ok(&s));
    }
});
