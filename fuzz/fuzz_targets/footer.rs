//! Footer parsing (spec §10).
//!
//! Input: one mode byte, then the bytes. Mode bit 0 pads or cuts the bytes
//! to a footer's 512 and writes both magics, so mutations reach the fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::footer::{self, Footer, FOOTER_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & 1 != 0 {
        buf.resize(FOOTER_LEN, 0);
        buf[..8].copy_from_slice(&footer::MAGIC);
        buf[FOOTER_LEN - 8..].copy_from_slice(&footer::END_MAGIC);
    }
    let looks = Footer::looks_like_footer(&buf);
    if let Ok(f) = Footer::parse(&buf) {
        assert!(looks, "a footer that parses must look like one");
        assert_eq!(
            f.to_bytes(),
            buf,
            "footer does not re-serialize to its bytes"
        );
        assert_eq!(f.committed_bytes(), buf[..footer::COMMITTED_LEN]);
        assert!(f.signed_message().starts_with(footer::SIGNATURE_CONTEXT));
    }
});
