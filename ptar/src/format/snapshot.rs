//! The snapshot record, stored as a blob of kind snapshot (spec §11.1).
//!
//! ```text
//!   8  start time, nanoseconds since the Unix epoch (i64)
//!   8  duration in nanoseconds
//!   4+n host name, 4+n user name, 4+n OS, 4+n architecture, 4+n snapshot name (UTF-8)
//!   4  argument count, then per argument 4+n bytes (the command line)
//!   4  tag count, then per tag 4+n UTF-8
//!   4  source path count, then per path 4+n bytes (as given, before normalization)
//!   32 root tree id
//!   8 files, 8 directories, 8 symlinks, 8 hard links, 8 other entries,
//!   8 total size of regular files, 8 blobs added, 8 bytes added (stored)
//!   4  error count, then per error: 4+n path bytes, 4+n UTF-8 message
//!   2  extension count, then extensions as in tree entries
//! ```

use super::{Id, Malformed, Put, Reader};

const MAX_STR: usize = 64 * 1024;

/// Counts kept with a snapshot (spec §11.1). They are declarations, not
/// facts: nothing checks them against the tree, so a reader shows them or
/// takes them as default output budgets, never as sizes to allocate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Regular-file entries (a file with several names counts once).
    pub files: u64,
    /// Directory entries (the root, which has no entry, is not counted).
    pub dirs: u64,
    /// Symbolic-link entries.
    pub symlinks: u64,
    /// Hard-link entries: the names of a file beyond the one stored as a
    /// regular file.
    pub hardlinks: u64,
    /// Device, fifo and socket entries.
    pub others: u64,
    /// Sum of the sizes of the regular-file entries.
    pub total_size: u64,
    /// Blobs this snapshot added to the archive.
    pub new_blobs: u64,
    /// Stored bytes this snapshot added.
    pub new_bytes: u64,
}

/// A snapshot record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Start, ns since the epoch.
    pub time_ns: i64,
    /// How long the snapshot took, ns.
    pub duration_ns: u64,
    /// Host name.
    pub hostname: String,
    /// User name.
    pub username: String,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// Name given by the user. Like every text field of the record, it
    /// may be empty (here: no name).
    pub name: String,
    /// Command line.
    pub command_line: Vec<Vec<u8>>,
    /// Tags.
    pub tags: Vec<String>,
    /// Source paths as given.
    pub paths: Vec<Vec<u8>>,
    /// Root tree id.
    pub root: Id,
    /// Counts.
    pub summary: Summary,
    /// Errors met while reading sources: (path, message).
    pub errors: Vec<(Vec<u8>, String)>,
}

impl SnapshotRecord {
    /// Serializes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_i64(self.time_ns);
        b.put_u64(self.duration_ns);
        for s in [
            &self.hostname,
            &self.username,
            &self.os,
            &self.arch,
            &self.name,
        ] {
            b.put_bytes32(s.as_bytes());
        }
        b.put_u32(self.command_line.len() as u32);
        for a in &self.command_line {
            b.put_bytes32(a);
        }
        b.put_u32(self.tags.len() as u32);
        for t in &self.tags {
            b.put_bytes32(t.as_bytes());
        }
        b.put_u32(self.paths.len() as u32);
        for p in &self.paths {
            b.put_bytes32(p);
        }
        b.put(&self.root.0);
        let s = &self.summary;
        for v in [
            s.files,
            s.dirs,
            s.symlinks,
            s.hardlinks,
            s.others,
            s.total_size,
            s.new_blobs,
            s.new_bytes,
        ] {
            b.put_u64(v);
        }
        b.put_u32(self.errors.len() as u32);
        for (p, m) in &self.errors {
            b.put_bytes32(p);
            b.put_bytes32(m.as_bytes());
        }
        b.put_u16(0);
        b
    }

    /// Parses.
    pub fn parse(buf: &[u8]) -> Result<SnapshotRecord, Malformed> {
        let mut r = Reader::new(buf);
        let mut s = SnapshotRecord {
            time_ns: r.i64("time")?,
            duration_ns: r.u64("duration")?,
            ..Default::default()
        };
        s.hostname = r.string32(MAX_STR, "host name")?;
        s.username = r.string32(MAX_STR, "user name")?;
        s.os = r.string32(MAX_STR, "os")?;
        s.arch = r.string32(MAX_STR, "arch")?;
        s.name = r.string32(MAX_STR, "name")?;
        let n = r.count(4, u32::MAX, "argument count")?;
        for _ in 0..n {
            s.command_line
                .push(r.bytes32(MAX_STR, "argument")?.to_vec());
        }
        let n = r.count(4, u32::MAX, "tag count")?;
        for _ in 0..n {
            s.tags.push(r.string32(MAX_STR, "tag")?);
        }
        let n = r.count(4, u32::MAX, "path count")?;
        for _ in 0..n {
            s.paths.push(r.bytes32(MAX_STR, "path")?.to_vec());
        }
        s.root = r.id("root")?;
        let mut v = [0u64; 8];
        for x in v.iter_mut() {
            *x = r.u64("summary")?;
        }
        s.summary = super::snapshot::Summary {
            files: v[0],
            dirs: v[1],
            symlinks: v[2],
            hardlinks: v[3],
            others: v[4],
            total_size: v[5],
            new_blobs: v[6],
            new_bytes: v[7],
        };
        let n = r.count(8, u32::MAX, "error count")?;
        for _ in 0..n {
            let p = r.bytes32(MAX_STR, "error path")?.to_vec();
            let m = r.string32(MAX_STR, "error message")?;
            s.errors.push((p, m));
        }
        r.extensions()?;
        r.finish("snapshot")?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_field_may_be_empty() {
        // All five strings empty, and one empty argument, tag, source path,
        // error path and error message (spec §11.1: any of them may be empty).
        let r = SnapshotRecord {
            command_line: vec![Vec::new()],
            tags: vec![String::new()],
            paths: vec![Vec::new()],
            errors: vec![(Vec::new(), String::new())],
            ..SnapshotRecord::default()
        };
        assert_eq!(SnapshotRecord::parse(&r.to_bytes()).unwrap(), r);
        let empty = SnapshotRecord::default();
        assert_eq!(SnapshotRecord::parse(&empty.to_bytes()).unwrap(), empty);
    }

    #[test]
    fn extension_tags_out_of_order_are_refused() {
        let mut b = SnapshotRecord::default().to_bytes();
        b.truncate(b.len() - 2);
        b.put_u16(2);
        for tag in [9u16, 9] {
            b.put_u16(tag);
            b.put_u32(0);
        }
        let e = SnapshotRecord::parse(&b).unwrap_err();
        assert!(e.0.contains("extension tag"), "{}", e.0);
    }
}
