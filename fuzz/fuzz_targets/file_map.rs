//! File chunk list (file-map page) decoding (spec §14).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::filemap::FileMapPage;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = FileMapPage::parse(data) {
        let again = page.to_bytes();
        assert_eq!(
            again, data,
            "file-map page does not re-serialize to its bytes"
        );
        assert_eq!(FileMapPage::parse(&again).as_ref(), Ok(&page));
        let covered = page.covered();
        match &page {
            FileMapPage::Extents(es) => {
                assert!(!es.is_empty());
                assert!(es.iter().all(|e| !e.is_empty() && e.len() <= covered));
            }
            FileMapPage::Children { level, children } => {
                assert!(*level >= 1 && !children.is_empty());
                assert!(children.iter().all(|c| c.1 > 0 && c.1 <= covered));
            }
        }
    }
});
