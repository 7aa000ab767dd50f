//! Index pages and index directories (spec §9.1, §9.2), and lookups in them.
//!
//! Input: one mode byte, a 32-byte id to look up, then the bytes. Mode bit 0
//! selects the directory, else the page. With bit 1 the bytes are rows of 48
//! bytes (id, then the page's or directory's other fields) laid out with a
//! matching count (a page in columns), so mutations reach the checks behind
//! the count; bit 2 sorts the rows by id and drops repeated ids first.
//!
//! A page or directory that parses must re-serialize to exactly its bytes; a
//! page must find every id it lists at its own location and nothing else; a
//! directory must send every id to the last page whose first id is at most
//! it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::format::run::{IndexDirectory, IndexPage, INDEX_ENTRY_LEN};
use ptar::format::{frame, Id};

const ROW: usize = 48;

fn rows(rest: &[u8], mode: u8) -> Vec<&[u8]> {
    let mut raw: Vec<&[u8]> = rest.chunks_exact(ROW).collect();
    if mode & 4 != 0 {
        raw.sort_by(|a, b| a[..32].cmp(&b[..32]));
        raw.dedup_by(|a, b| a[..32] == b[..32]);
    }
    raw
}

fn page(mode: u8, probe: &Id, rest: &[u8]) {
    let buf = if mode & 2 != 0 {
        let raw = rows(rest, mode);
        let mut b = (raw.len() as u32).to_le_bytes().to_vec();
        for (cols, at) in [(32, 0), (8, 32), (4, 40), (4, 44)] {
            for r in &raw {
                b.extend_from_slice(&r[at..at + cols]);
            }
        }
        b
    } else {
        rest.to_vec()
    };
    let Ok(p) = IndexPage::parse(&buf) else {
        return;
    };
    assert_eq!(p.to_bytes(), buf, "index page does not re-serialize");
    assert_eq!(buf.len(), 4 + INDEX_ENTRY_LEN * p.ids.len());
    assert_eq!(p.ids.len(), p.locations.len());
    assert!(p.ids.windows(2).all(|w| w[0] < w[1]), "ids not increasing");
    for (id, l) in p.ids.iter().zip(&p.locations) {
        assert!(l.body_len >= 1 && l.body_len <= frame::MAX_BODY_LEN);
        assert!(l.offset.checked_add(4 + u64::from(l.body_len)).is_some());
        assert_eq!(p.find(id), Some(*l), "a listed id is not found");
    }
    let found = p.find(probe);
    match p.ids.iter().position(|id| id == probe) {
        Some(i) => assert_eq!(found, Some(p.locations[i])),
        None => assert_eq!(found, None, "an id that is not listed is found"),
    }
}

fn directory(mode: u8, probe: &Id, rest: &[u8]) {
    let buf = if mode & 2 != 0 {
        let raw = rows(rest, mode);
        let mut b = (raw.len() as u32).to_le_bytes().to_vec();
        for r in &raw {
            b.extend_from_slice(r);
        }
        b
    } else {
        rest.to_vec()
    };
    let Ok(d) = IndexDirectory::parse(&buf) else {
        return;
    };
    assert_eq!(d.to_bytes(), buf, "index directory does not re-serialize");
    assert_eq!(d.first_ids.len(), d.pages.len());
    let total: u64 = d.pages.iter().map(|p| u64::from(p.count)).sum();
    assert_eq!(d.entry_count(), total);
    for (i, id) in d.first_ids.iter().enumerate() {
        assert_eq!(
            d.page_for(id),
            Some(i),
            "a first id is sent to another page"
        );
    }
    match d.page_for(probe) {
        None => assert!(*probe < d.first_ids[0]),
        Some(i) => {
            assert!(d.first_ids[i] <= *probe);
            if let Some(next) = d.first_ids.get(i + 1) {
                assert!(*probe < *next, "a later page would hold the id");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 33 {
        return;
    }
    let mode = data[0];
    let probe = Id(data[1..33].try_into().expect("32 bytes"));
    let rest = &data[33..];
    if mode & 1 != 0 {
        directory(mode, &probe, rest);
    } else {
        page(mode, &probe, rest);
    }
});
