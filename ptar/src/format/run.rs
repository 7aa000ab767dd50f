//! Index runs and snapshot runs (spec §9, §11.2): pages of entries and the
//! directory that lists them, and the base-4 counter that says which
//! generations a run covers and which runs are in force.
//!
//! ```text
//! index page          LE32 n || n × id (32) || n × LE64 frame offset
//!                     || n × LE32 body length || n × LE32 ordinal
//! index directory     LE32 m || m × (first id 32, LE64 offset, LE32 body length, LE32 count)
//! snapshot page       LE32 n || n × (id 32, LE64 generation, LE64 offset, LE32 body length, LE32 ordinal)
//! snapshot directory  LE32 m || m × (LE64 offset, LE32 body length, LE32 count)
//! ```

use super::frame::check_body_len;
use super::{malformed, Id, Malformed, Put, Reader};

/// Most entries in one index page or snapshot page.
pub const MAX_PAGE_ENTRIES: usize = 4096;
/// Entries the reference writer puts in each index page but the last.
pub const INDEX_PAGE_ENTRIES: usize = 1024;
/// Bytes per index entry, all columns together.
pub const INDEX_ENTRY_LEN: usize = 48;
/// Bytes per index directory entry.
pub const INDEX_DIR_ENTRY_LEN: usize = 48;
/// Bytes per snapshot entry.
pub const SNAPSHOT_ENTRY_LEN: usize = 56;
/// Bytes per snapshot directory entry.
pub const SNAPSHOT_DIR_ENTRY_LEN: usize = 16;
/// The counter's base: a run merges this many runs of the level below.
pub const FAN_IN: u64 = 4;

/// `z(g)`: the number of trailing zero base-4 digits of `g` (`g ≥ 1`).
pub fn level(g: u64) -> u32 {
    debug_assert!(g > 0);
    g.trailing_zeros() / 2
}

/// The number of generations the run of generation `g` covers: `4^z(g)`.
pub fn coverage(g: u64) -> u64 {
    FAN_IN.pow(level(g))
}

/// The generations whose runs are in force at generation `g`, newest first,
/// each with the first generation its run covers (spec §9.3).
pub fn runs_in_force(g: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut h = g;
    while h > 0 {
        let first = h - coverage(h) + 1;
        out.push((h, first));
        h = first - 1;
    }
    out
}

/// Where a blob is: the frame of its record and its ordinal there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobLocation {
    /// Absolute offset of the record's frame.
    pub offset: u64,
    /// The frame's body length.
    pub body_len: u32,
    /// The blob's position in the record.
    pub ordinal: u32,
}

fn check_location(l: &BlobLocation) -> Result<(), Malformed> {
    check_body_len(l.body_len)?;
    if l.offset.checked_add(4 + u64::from(l.body_len)).is_none() {
        return malformed("frame offset plus length overflows");
    }
    Ok(())
}

/// A decoded index page: ids in strictly increasing order and their locations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexPage {
    /// The ids, strictly increasing.
    pub ids: Vec<Id>,
    /// Where each blob is.
    pub locations: Vec<BlobLocation>,
}

impl IndexPage {
    /// Lays out a page's content in columns.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.ids.len();
        let mut out = Vec::with_capacity(4 + INDEX_ENTRY_LEN * n);
        out.put_u32(u32::try_from(n).expect("pages hold at most 4096 entries"));
        for id in &self.ids {
            out.put(&id.0);
        }
        for l in &self.locations {
            out.put_u64(l.offset);
        }
        for l in &self.locations {
            out.put_u32(l.body_len);
        }
        for l in &self.locations {
            out.put_u32(l.ordinal);
        }
        out
    }

    /// Parses and checks a page's content (spec §9.1).
    pub fn parse(content: &[u8]) -> Result<IndexPage, Malformed> {
        let mut r = Reader::new(content);
        let n = r.count(
            INDEX_ENTRY_LEN,
            MAX_PAGE_ENTRIES as u32,
            "index page entries",
        )?;
        if n == 0 {
            return malformed("index page is empty");
        }
        if content.len() != 4 + INDEX_ENTRY_LEN * n {
            return malformed(format!(
                "index page of {n} entries is {} bytes, not {}",
                content.len(),
                4 + INDEX_ENTRY_LEN * n
            ));
        }
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.id("blob id")?;
            if ids.last().is_some_and(|last| *last >= id) {
                return malformed("index page ids are not strictly increasing");
            }
            ids.push(id);
        }
        let mut locations = vec![
            BlobLocation {
                offset: 0,
                body_len: 0,
                ordinal: 0
            };
            n
        ];
        for l in &mut locations {
            l.offset = r.u64("frame offset")?;
        }
        for l in &mut locations {
            l.body_len = r.u32("body length")?;
        }
        for l in &mut locations {
            l.ordinal = r.u32("ordinal")?;
            check_location(l)?;
        }
        r.finish("index page")?;
        Ok(IndexPage { ids, locations })
    }

    /// The location of `id`, if this page holds it.
    pub fn find(&self, id: &Id) -> Option<BlobLocation> {
        self.ids.binary_search(id).ok().map(|i| self.locations[i])
    }
}

/// Where a page is (both kinds of directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRef {
    /// Absolute offset of the page's frame.
    pub offset: u64,
    /// The frame's body length.
    pub body_len: u32,
    /// Entries in the page.
    pub count: u32,
}

/// Reads and checks one directory entry's page place and count (the
/// fields both kinds of directory share); `what` names the kind of page.
fn read_page_ref(r: &mut Reader<'_>, what: &str) -> Result<PageRef, Malformed> {
    let p = PageRef {
        offset: r.u64("page offset")?,
        body_len: r.u32("page body length")?,
        count: r.u32("page entry count")?,
    };
    check_location(&BlobLocation {
        offset: p.offset,
        body_len: p.body_len,
        ordinal: 0,
    })?;
    if p.count == 0 || p.count as usize > MAX_PAGE_ENTRIES {
        return malformed(format!(
            "{what} page entry count {} is out of range",
            p.count
        ));
    }
    Ok(p)
}

/// A decoded index directory: the first id and place of each page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexDirectory {
    /// The first id of each page, strictly increasing.
    pub first_ids: Vec<Id>,
    /// Each page's place and entry count.
    pub pages: Vec<PageRef>,
}

impl IndexDirectory {
    /// Lays out a directory's content.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + INDEX_DIR_ENTRY_LEN * self.pages.len());
        out.put_u32(u32::try_from(self.pages.len()).expect("bounded by the frame size"));
        for (id, p) in self.first_ids.iter().zip(&self.pages) {
            out.put(&id.0);
            out.put_u64(p.offset);
            out.put_u32(p.body_len);
            out.put_u32(p.count);
        }
        out
    }

    /// Parses and checks a directory's content (spec §9.2).
    pub fn parse(content: &[u8]) -> Result<IndexDirectory, Malformed> {
        let mut r = Reader::new(content);
        let m = r.count(INDEX_DIR_ENTRY_LEN, u32::MAX, "index directory pages")?;
        if m == 0 {
            return malformed("index directory names no page");
        }
        if content.len() != 4 + INDEX_DIR_ENTRY_LEN * m {
            return malformed("index directory length does not match its page count");
        }
        let mut d = IndexDirectory::default();
        let mut total = 0u64;
        for _ in 0..m {
            let id = r.id("first id")?;
            if d.first_ids.last().is_some_and(|last| *last >= id) {
                return malformed("index directory first ids are not strictly increasing");
            }
            let p = read_page_ref(&mut r, "index")?;
            total += u64::from(p.count);
            d.first_ids.push(id);
            d.pages.push(p);
        }
        if total > u64::from(u32::MAX) {
            return malformed("index run holds more than 2^32 - 1 entries");
        }
        Ok(d)
    }

    /// The page that would hold `id`: the last whose first id is at most `id`.
    pub fn page_for(&self, id: &Id) -> Option<usize> {
        match self.first_ids.binary_search(id) {
            Ok(i) => Some(i),
            Err(0) => None,
            Err(i) => Some(i - 1),
        }
    }

    /// Entries in the run.
    pub fn entry_count(&self) -> u64 {
        self.pages.iter().map(|p| u64::from(p.count)).sum()
    }
}

/// One entry of a snapshot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The snapshot's id.
    pub id: Id,
    /// The generation that added it.
    pub generation: u64,
    /// Where its record is.
    pub location: BlobLocation,
}

/// Lays out a snapshot page's content.
pub fn snapshot_page_bytes(entries: &[SnapshotEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + SNAPSHOT_ENTRY_LEN * entries.len());
    out.put_u32(u32::try_from(entries.len()).expect("pages hold at most 4096 entries"));
    for e in entries {
        out.put(&e.id.0);
        out.put_u64(e.generation);
        out.put_u64(e.location.offset);
        out.put_u32(e.location.body_len);
        out.put_u32(e.location.ordinal);
    }
    out
}

/// Parses a snapshot page's content (spec §11.2); every entry's generation
/// must lie in `covered` (the run's coverage).
pub fn parse_snapshot_page(
    content: &[u8],
    covered: std::ops::RangeInclusive<u64>,
) -> Result<Vec<SnapshotEntry>, Malformed> {
    let mut r = Reader::new(content);
    let n = r.count(
        SNAPSHOT_ENTRY_LEN,
        MAX_PAGE_ENTRIES as u32,
        "snapshot page entries",
    )?;
    if n == 0 {
        return malformed("snapshot page is empty");
    }
    if content.len() != 4 + SNAPSHOT_ENTRY_LEN * n {
        return malformed("snapshot page length does not match its entry count");
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let e = SnapshotEntry {
            id: r.id("snapshot id")?,
            generation: r.u64("snapshot generation")?,
            location: BlobLocation {
                offset: r.u64("snapshot record offset")?,
                body_len: r.u32("snapshot record body length")?,
                ordinal: r.u32("snapshot record ordinal")?,
            },
        };
        if !covered.contains(&e.generation) {
            return malformed(format!(
                "snapshot entry names generation {}, outside its run ({}..={})",
                e.generation,
                covered.start(),
                covered.end()
            ));
        }
        check_location(&e.location)?;
        out.push(e);
    }
    Ok(out)
}

/// Lays out a snapshot directory's content.
pub fn snapshot_directory_bytes(pages: &[PageRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + SNAPSHOT_DIR_ENTRY_LEN * pages.len());
    out.put_u32(u32::try_from(pages.len()).expect("bounded by the frame size"));
    for p in pages {
        out.put_u64(p.offset);
        out.put_u32(p.body_len);
        out.put_u32(p.count);
    }
    out
}

/// Parses a snapshot directory's content (spec §11.2).
pub fn parse_snapshot_directory(content: &[u8]) -> Result<Vec<PageRef>, Malformed> {
    let mut r = Reader::new(content);
    let m = r.count(SNAPSHOT_DIR_ENTRY_LEN, u32::MAX, "snapshot directory pages")?;
    if m == 0 {
        return malformed("snapshot directory names no page");
    }
    if content.len() != 4 + SNAPSHOT_DIR_ENTRY_LEN * m {
        return malformed("snapshot directory length does not match its page count");
    }
    let mut out = Vec::with_capacity(m);
    for _ in 0..m {
        let p = read_page_ref(&mut r, "snapshot")?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_covers_every_generation_once() {
        assert_eq!(runs_in_force(1), vec![(1, 1)]);
        assert_eq!(runs_in_force(4), vec![(4, 1)]);
        assert_eq!(runs_in_force(7), vec![(7, 7), (6, 6), (5, 5), (4, 1)]);
        assert_eq!(runs_in_force(20), vec![(20, 17), (16, 1)]);
        for g in 1..5000u64 {
            let runs = runs_in_force(g);
            // Disjoint, newest first, covering 1..=g exactly.
            let mut next = g;
            for &(h, first) in &runs {
                assert_eq!(h, next);
                assert_eq!(h - first + 1, coverage(h));
                next = first - 1;
            }
            assert_eq!(next, 0);
            // As many as the base-4 digit sum.
            let mut digits = 0;
            let mut x = g;
            while x > 0 {
                digits += x % 4;
                x /= 4;
            }
            assert_eq!(runs.len() as u64, digits);
        }
        assert_eq!(runs_in_force(10_000).len(), 7);
        assert_eq!(runs_in_force((1 << 24) - 1).len(), 36);
    }

    fn id(b: u8) -> Id {
        Id([b; 32])
    }

    #[test]
    fn index_pages_round_trip_and_find() {
        let page = IndexPage {
            ids: vec![id(1), id(5), id(9)],
            locations: (0..3)
                .map(|i| BlobLocation {
                    offset: 100 * i,
                    body_len: 50,
                    ordinal: i as u32,
                })
                .collect(),
        };
        let bytes = page.to_bytes();
        assert_eq!(bytes.len(), 4 + 48 * 3);
        let back = IndexPage::parse(&bytes).unwrap();
        assert_eq!(back, page);
        assert_eq!(back.find(&id(5)).unwrap().offset, 100);
        assert!(back.find(&id(6)).is_none());
        // Unsorted ids, a zero body length, a short page.
        let mut bad = bytes.clone();
        bad[4..36].copy_from_slice(&[9; 32]);
        assert!(IndexPage::parse(&bad).is_err());
        let mut bad = bytes.clone();
        bad[4 + 96 + 24..4 + 96 + 28].copy_from_slice(&0u32.to_le_bytes());
        assert!(IndexPage::parse(&bad).is_err());
        assert!(IndexPage::parse(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn directories_pick_the_right_page() {
        let d = IndexDirectory {
            first_ids: vec![id(10), id(20)],
            pages: vec![
                PageRef {
                    offset: 1,
                    body_len: 9,
                    count: 3
                };
                2
            ],
        };
        let back = IndexDirectory::parse(&d.to_bytes()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.page_for(&id(5)), None);
        assert_eq!(back.page_for(&id(10)), Some(0));
        assert_eq!(back.page_for(&id(15)), Some(0));
        assert_eq!(back.page_for(&id(25)), Some(1));
        assert_eq!(back.entry_count(), 6);
    }

    #[test]
    fn snapshot_pages_check_their_coverage() {
        let e = SnapshotEntry {
            id: id(3),
            generation: 5,
            location: BlobLocation {
                offset: 7,
                body_len: 8,
                ordinal: 0,
            },
        };
        let bytes = snapshot_page_bytes(&[e]);
        assert_eq!(parse_snapshot_page(&bytes, 5..=8).unwrap(), vec![e]);
        assert!(parse_snapshot_page(&bytes, 6..=8).is_err());
        let pages = vec![PageRef {
            offset: 3,
            body_len: 4,
            count: 1,
        }];
        assert_eq!(
            parse_snapshot_directory(&snapshot_directory_bytes(&pages)).unwrap(),
            pages
        );
        assert!(parse_snapshot_directory(&0u32.to_le_bytes()).is_err());
    }
}
