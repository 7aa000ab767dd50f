//! File maps: the extent list of a file too long to keep inline (spec §14).
//!
//! ```text
//!   1  level (0 = extents; 1.. = child maps)
//!   3  reserved (MUST be 0)
//!   4  item count (at least 1)
//!   level 0: extents as in a tree entry
//!   level n: per child: 32-byte file map id, u64 bytes covered
//! ```

use super::tree::Extent;
use super::{limits::*, malformed, Id, Malformed, Put, Reader};

/// A parsed file-map page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileMapPage {
    /// Extents in file order.
    Extents(Vec<Extent>),
    /// Child maps in file order, with the bytes each covers.
    Children {
        /// Height above the extent pages.
        level: u8,
        /// (id, bytes covered).
        children: Vec<(Id, u64)>,
    },
}

impl FileMapPage {
    /// Serializes a page.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            FileMapPage::Extents(es) => {
                b.put_u8(0);
                b.put(&[0; 3]);
                b.put_u32(es.len() as u32);
                for e in es {
                    e.write(&mut b);
                }
            }
            FileMapPage::Children { level, children } => {
                b.put_u8(*level);
                b.put(&[0; 3]);
                b.put_u32(children.len() as u32);
                for (id, len) in children {
                    b.put(&id.0);
                    b.put_u64(*len);
                }
            }
        }
        b
    }

    /// Bytes covered by the page.
    pub fn covered(&self) -> u64 {
        match self {
            FileMapPage::Extents(es) => es.iter().map(|e| e.len()).sum(),
            FileMapPage::Children { children, .. } => children.iter().map(|c| c.1).sum(),
        }
    }

    /// Parses a page.
    pub fn parse(buf: &[u8]) -> Result<FileMapPage, Malformed> {
        let mut r = Reader::new(buf);
        let level = r.u8("level")?;
        r.zeros(3, "reserved")?;
        if level > MAX_PAGE_LEVELS {
            return malformed("file map too deep");
        }
        let page = if level == 0 {
            let n = r.count(9, MAX_PAGE_ITEMS, "extent count")?;
            let mut es = Vec::with_capacity(n);
            for _ in 0..n {
                es.push(Extent::read(&mut r)?);
            }
            FileMapPage::Extents(es)
        } else {
            let n = r.count(40, MAX_PAGE_ITEMS, "child count")?;
            let mut cs = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.id("child id")?;
                let len = r.u64("covered")?;
                if len == 0 {
                    return malformed("child map covers nothing");
                }
                cs.push((id, len));
            }
            FileMapPage::Children {
                level,
                children: cs,
            }
        };
        r.finish("file map")?;
        let count = match &page {
            FileMapPage::Extents(es) => es.len(),
            FileMapPage::Children { children, .. } => children.len(),
        };
        if count == 0 {
            return malformed("empty file map page");
        }
        let mut total: u64 = 0;
        let lens: Vec<u64> = match &page {
            FileMapPage::Extents(es) => es.iter().map(|e| e.len()).collect(),
            FileMapPage::Children { children, .. } => children.iter().map(|c| c.1).collect(),
        };
        for l in lens {
            total = total
                .checked_add(l)
                .ok_or_else(|| Malformed("file map lengths overflow".into()))?;
        }
        Ok(page)
    }
}
