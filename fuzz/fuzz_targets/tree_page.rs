//! Directory (tree page) decoding (spec §13).
//!
//! Input: one mode byte, then the bytes. Mode 0..=127 parses a page; above,
//! the bytes are read as a run of entries, and names and hard-link paths
//! are checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::tree::{self, Entry, TreePage};
use ptar::format::Reader;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode < 128 {
        if let Ok(page) = TreePage::parse(rest) {
            let again = page.to_bytes();
            assert!(again.len() <= rest.len());
            assert_eq!(
                TreePage::parse(&again).as_ref(),
                Ok(&page),
                "page round trip"
            );
            if let TreePage::Leaf(entries) = &page {
                for w in entries.windows(2) {
                    assert!(w[0].name < w[1].name);
                }
                for e in entries {
                    tree::check_name(&e.name).expect("parsed names are valid");
                    let _ = e.kind.letter();
                }
            }
        }
    } else {
        let mut r = Reader::new(rest);
        while let Ok(e) = Entry::read(&mut r) {
            let mut out = Vec::new();
            e.write(&mut out);
            assert_eq!(Entry::read(&mut Reader::new(&out)).as_ref(), Ok(&e));
        }
        let _ = tree::check_name(rest);
        let _ = tree::check_link_path(rest);
    }
});
