//! The snapshot table: every snapshot of the archive as of one generation (spec §11).
//!
//! ```text
//! offset size field
//!      0    8 magic "PTARSNAP"
//!      8    4 snapshot count N
//!     12    4 reserved (MUST be 0)
//!     16  40N entries, in the order the snapshots were added:
//!             32 snapshot id (the id of its snapshot blob)
//!              8 generation that added it
//! ```

use super::limits::MAX_SNAPSHOTS;
use super::{malformed, Id, Malformed, Put, Reader};

/// Snapshot table magic.
pub const MAGIC: [u8; 8] = *b"PTARSNAP";

/// One snapshot as listed by the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// The snapshot id.
    pub id: Id,
    /// The generation that added it.
    pub generation: u64,
}

/// Serializes a table.
pub fn to_bytes(entries: &[TableEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + 40 * entries.len());
    b.put(&MAGIC);
    b.put_u32(entries.len() as u32);
    b.put_u32(0);
    for e in entries {
        b.put(&e.id.0);
        b.put_u64(e.generation);
    }
    b
}

/// Parses a table written by generation `generation`.
pub fn parse(buf: &[u8], generation: u64) -> Result<Vec<TableEntry>, Malformed> {
    let mut r = Reader::new(buf);
    if r.take(8, "magic")? != MAGIC {
        return malformed("bad snapshot table magic");
    }
    let n = r.count(0, MAX_SNAPSHOTS, "snapshot count")?;
    r.zeros(4, "reserved")?;
    if r.remaining() != n * 40 {
        return malformed("snapshot table length disagrees with its count");
    }
    let mut out = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    for _ in 0..n {
        let e = TableEntry {
            id: r.id("snapshot id")?,
            generation: r.u64("generation")?,
        };
        if e.generation == 0 || e.generation > generation {
            return malformed(format!(
                "snapshot {} claims generation {}",
                e.id.short(),
                e.generation
            ));
        }
        if !seen.insert(e.id) {
            return malformed(format!("snapshot {} is listed twice", e.id.short()));
        }
        out.push(e);
    }
    Ok(out)
}
