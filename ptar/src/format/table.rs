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
//!
//! A table may list up to 2^24 snapshots (640 MiB): readers never hold it
//! whole. They check its prefix with [`parse_prefix`], then read entries a
//! slice at a time with [`parse_entry`] (see `store::SnapshotTable`).

use super::limits::MAX_SNAPSHOTS;
use super::{malformed, Id, Malformed, Put, Reader};

/// Snapshot table magic.
pub const MAGIC: [u8; 8] = *b"PTARSNAP";
/// Bytes before the first entry: magic, count, reserved.
pub const PREFIX_LEN: usize = 16;
/// Bytes of one entry.
pub const ENTRY_LEN: usize = 40;

/// One snapshot as listed by the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// The snapshot id.
    pub id: Id,
    /// The generation that added it.
    pub generation: u64,
}

impl TableEntry {
    /// Appends the entry's 40 bytes to `b`.
    pub fn write(&self, b: &mut Vec<u8>) {
        b.put(&self.id.0);
        b.put_u64(self.generation);
    }
}

/// The table's first bytes for a table of `n` entries.
pub fn prefix_bytes(n: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(PREFIX_LEN);
    b.put(&MAGIC);
    b.put_u32(n as u32);
    b.put_u32(0);
    b
}

/// Serializes a table.
pub fn to_bytes(entries: &[TableEntry]) -> Vec<u8> {
    let mut b = prefix_bytes(entries.len());
    b.reserve(ENTRY_LEN * entries.len());
    for e in entries {
        e.write(&mut b);
    }
    b
}

/// Checks a table's prefix against the table's length `table_len`:
/// returns the snapshot count.
pub fn parse_prefix(prefix: &[u8], table_len: u64) -> Result<usize, Malformed> {
    let mut r = Reader::new(prefix);
    if r.take(8, "magic")? != MAGIC {
        return malformed("bad snapshot table magic");
    }
    let n = r.u32("snapshot count")?;
    if n > MAX_SNAPSHOTS {
        return malformed(format!(
            "snapshot count: count {n} exceeds the limit {MAX_SNAPSHOTS}"
        ));
    }
    r.zeros(4, "reserved")?;
    if table_len != PREFIX_LEN as u64 + ENTRY_LEN as u64 * n as u64 {
        return malformed("snapshot table length disagrees with its count");
    }
    Ok(n as usize)
}

/// Parses one 40-byte entry of a table written by generation `generation`.
pub fn parse_entry(b: &[u8], generation: u64) -> Result<TableEntry, Malformed> {
    let mut r = Reader::new(b);
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
    Ok(e)
}

/// Parses a whole table held in memory, written by generation `generation`,
/// refusing a repeated id. For small tables (tests, fuzzing): readers of
/// archives stream the table instead.
pub fn parse(buf: &[u8], generation: u64) -> Result<Vec<TableEntry>, Malformed> {
    let n = parse_prefix(buf.get(..PREFIX_LEN).unwrap_or(buf), buf.len() as u64)?;
    let mut out = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    for b in buf[PREFIX_LEN..].chunks_exact(ENTRY_LEN) {
        let e = parse_entry(b, generation)?;
        if !seen.insert(e.id) {
            return malformed(format!("snapshot {} is listed twice", e.id.short()));
        }
        out.push(e);
    }
    Ok(out)
}
