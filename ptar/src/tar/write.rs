//! Writing a snapshot as a POSIX pax tar stream.
//!
//! [`TarWriter`] is an [`EntrySink`]: hand it to [`crate::Archive::export`]
//! and it writes POSIX.1-2001 pax (ustar magic `ustar\0`, version `00`), the
//! way GNU tar `--format=posix --xattrs --acls --sparse` writes it, so GNU
//! tar and bsdtar read it back with everything they can keep.
//!
//! | entry field | ustar field | pax record (written only when needed) |
//! |---|---|---|
//! | member path (directories end in `/`) | `name`, `prefix` (split at a `/`) | `path` when it does not fit 100/155 bytes or is not ASCII |
//! | kind | `typeflag`: file `0`, hard link `1`, symlink `2`, char/block device `3`/`4`, directory `5`, fifo `6` | sockets are not written (reported as an error) |
//! | `mode` (permission bits) | `mode` | — |
//! | `uid`, `gid` | `uid`, `gid` (0 when over 7 octal digits) | `uid`, `gid` |
//! | `user`, `group` | `uname`, `gname` (truncated to 32 bytes) | `uname`, `gname` when longer than 32 bytes or not ASCII |
//! | `size` | `size` (0 when over 11 octal digits) | `size` |
//! | `mtime` | `mtime` (seconds; 0 when negative or over 11 octal digits) | `mtime` when it has nanoseconds or does not fit |
//! | `atime`, `ctime` | — | `atime`, `ctime` always (as GNU tar's posix format), unless zero |
//! | symlink target, hard-link path | `linkname` (truncated to 100 bytes) | `linkpath` when longer than 100 bytes or not ASCII |
//! | device numbers | `devmajor`, `devminor` (0 when over 7 octal digits) | `devmajor`, `devminor` (GNU keys) |
//! | `xattrs` (each, ACLs included) | — | `SCHILY.xattr.NAME` = the raw value (`%` and `=` in NAME as `%25`, `%3D`) |
//! | `system.posix_acl_access` | — | `SCHILY.acl.access` = the ACL as text (`user::rw-\nuser:1001:r--\n...`, ids as numbers) |
//! | `system.posix_acl_default` (directories) | — | `SCHILY.acl.default` = the ACL as text (empty for a directory without one) |
//! | extents with holes | `name` = `DIR/GNUSparseFile.0/NAME`, `size` = map + data | `GNU.sparse.major=1`, `GNU.sparse.minor=0`, `GNU.sparse.name`, `GNU.sparse.realsize` |
//!
//! As GNU tar does, a member gets a pax header (`x`, named
//! `DIR/PaxHeaders/NAME`) when any of its records is needed, ACL text
//! records are written when the entry has an access ACL or (a directory) a
//! default ACL, the access ACL then falling back to the permission bits, and
//! hard links carry no xattrs (their first name does). A sparse file's data
//! begins with its map (the count of segments, then offset and length of
//! each, one decimal number a line, padded to 512 bytes), followed by the
//! data segments; a file ending in a hole ends its map with the segment
//! (size, 0).
//!
//! No member's size field lies: a file's content is read (or, past
//! 8 MiB of data, checked chunk by chunk) before its header goes out, so a
//! damaged file is left out and reported. Should the archive still fail
//! later, the member is filled up with zeros to its declared size and the
//! failure is reported.

use std::collections::HashSet;
use std::io::{Read, Write};

use crate::format::tree::{Entry, EntryType, Extent, Payload, Timestamp};
use crate::fs::Selection;
use crate::sink::{EntrySink, FileContent, Flow};
use crate::{Error, Result};

/// The tar block size.
const BLOCK: usize = 512;
/// Files with at most this many bytes of tar data are read whole, once,
/// before their header is written; longer ones are checked chunk by chunk
/// first and then read again as they are written.
const STAGE_MAX: u64 = 8 << 20;
/// Largest value of an octal field of `width` bytes (digits and a NUL).
const fn octal_max(width: usize) -> u64 {
    (1u64 << (3 * (width as u32 - 1))) - 1
}

/// Writes a snapshot's entries as a POSIX pax tar stream; see the
/// [module documentation](self) for what maps to what.
pub struct TarWriter<W: Write> {
    out: W,
    selection: Selection,
    matched: Vec<bool>,
    /// Regular files written, the targets hard links may name.
    written: HashSet<Vec<u8>>,
    /// The data of a file read before its header is written.
    stage: Vec<u8>,
    /// The first error writing to `out`: everything after it is skipped,
    /// and [`TarWriter::finish`] returns it.
    broken: Option<std::io::Error>,
}

/// Why writing one member stopped.
enum Fault {
    /// Writing to the output failed: the stream is unusable.
    Out(std::io::Error),
    /// The member could not be written; the stream is intact.
    Entry(Error),
}

impl From<std::io::Error> for Fault {
    fn from(e: std::io::Error) -> Fault {
        Fault::Out(e)
    }
}

impl<W: Write> TarWriter<W> {
    /// A writer of every entry to `out`.
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter {
            out,
            selection: Selection::default(),
            matched: Vec::new(),
            written: HashSet::new(),
            stage: Vec::new(),
            broken: None,
        }
    }

    /// Writes only the members `selection` selects (as extraction does: a
    /// directory selects what is under it). Directories above a selected
    /// member are walked but not written, as `tar -c dir/sub/file` does.
    pub fn with_selection(mut self, selection: Selection) -> TarWriter<W> {
        self.matched = vec![false; selection.patterns.len()];
        self.selection = selection;
        self
    }

    /// The selection's patterns that selected nothing so far.
    pub fn unmatched(&self) -> Vec<Vec<u8>> {
        self.selection
            .patterns
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| !**m)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Ends the stream with its two zero blocks, flushes, and gives the
    /// output back. Fails with the first error writing to the output.
    pub fn finish(mut self) -> Result<W> {
        if let Some(e) = self.broken.take() {
            return Err(e.into());
        }
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Whether `path` is selected (and records which pattern selected it).
    fn selected(&mut self, path: &[u8]) -> bool {
        self.selection.take(path, &mut self.matched)
    }

    /// Turns a member's outcome into the sink's.
    fn settle(&mut self, r: std::result::Result<(), Fault>) -> Result<Flow> {
        match r {
            Ok(()) => Ok(Flow::Take),
            Err(Fault::Out(e)) => {
                self.broken = Some(e);
                Ok(Flow::Skip)
            }
            Err(Fault::Entry(e)) => Err(e),
        }
    }

    /// Writes a member's headers; its data, if any, is the caller's to write.
    fn write_headers(&mut self, m: &Member<'_>) -> std::io::Result<()> {
        self.out.write_all(&member_headers(m))
    }

    /// Zeros up to the next block boundary after `len` bytes of data.
    fn pad(&mut self, len: u64) -> std::io::Result<()> {
        let rest = (BLOCK - (len % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..rest])
    }

    fn write_file(
        &mut self,
        path: &[u8],
        entry: &Entry,
        content: &mut FileContent<'_>,
    ) -> std::result::Result<(), Fault> {
        let extents = content.extents().map_err(Fault::Entry)?.to_vec();
        let sparse = extents.iter().any(|x| matches!(x, Extent::Hole { .. }));
        let map = if sparse {
            sparse_map(&extents, entry.size)
        } else {
            Vec::new()
        };
        let data_len: u64 = extents
            .iter()
            .filter(|x| matches!(x, Extent::Data { .. }))
            .map(Extent::len)
            .sum();
        // Everything is read (small files) or checked (large ones) before
        // the header promises a size.
        let staged = data_len <= STAGE_MAX;
        self.stage.clear();
        for x in &extents {
            if let Extent::Data { id, len } = x {
                let r = if staged {
                    content.with_chunk(id, *len, |d| self.stage.extend_from_slice(d))
                } else {
                    content.with_chunk(id, *len, |_| ())
                };
                r.map_err(Fault::Entry)?;
            }
        }
        let payload = map.len() as u64 + data_len;
        let m = Member {
            name: path,
            typeflag: b'0',
            entry,
            linkname: b"",
            size: payload,
            device: None,
            sparse,
            metadata: true,
        };
        self.write_headers(&m)?;
        self.out.write_all(&map)?;
        if staged {
            self.out.write_all(&self.stage)?;
            self.stage.clear();
            self.stage.shrink_to(1 << 20);
        } else {
            let mut done = 0u64;
            for x in &extents {
                let Extent::Data { id, len } = x else {
                    continue;
                };
                match content.with_chunk(id, *len, |d| self.out.write_all(d)) {
                    Ok(w) => w?,
                    Err(e) => {
                        // Checked a moment ago, failing now: keep the
                        // stream whole, say the member is not.
                        let left = data_len - done;
                        std::io::copy(&mut std::io::repeat(0).take(left), &mut self.out)?;
                        self.pad(payload)?;
                        self.written.insert(path.to_vec());
                        let note =
                            format!("; the tar member holds zeros from byte {done} of its data on");
                        return Err(Fault::Entry(match e {
                            Error::Corrupt { region, detail } => Error::Corrupt {
                                region,
                                detail: detail + &note,
                            },
                            other => Error::Io {
                                path: None,
                                source: std::io::Error::other(format!("{other}{note}")),
                            },
                        }));
                    }
                }
                done += *len as u64;
            }
        }
        self.pad(payload)?;
        self.written.insert(path.to_vec());
        Ok(())
    }

    fn write_other(&mut self, path: &[u8], e: &Entry) -> std::result::Result<(), Fault> {
        let (typeflag, linkname, device, metadata): (u8, &[u8], _, bool) = match (
            e.kind, &e.payload,
        ) {
            (EntryType::Symlink, Payload::Symlink(t)) => (b'2', t, None, true),
            (EntryType::Hardlink, Payload::Hardlink(t)) => {
                if !self.written.contains(t.as_slice()) {
                    return Err(Fault::Entry(Error::InvalidInput(format!(
                            "hard link to '{}', which was not written to the tar stream (not selected, or not readable)",
                            String::from_utf8_lossy(t)
                        ))));
                }
                // As GNU tar: the first name carries the xattrs.
                (b'1', t, None, false)
            }
            (EntryType::CharDevice, Payload::Device { major, minor }) => {
                (b'3', &[][..], Some((*major, *minor)), true)
            }
            (EntryType::BlockDevice, Payload::Device { major, minor }) => {
                (b'4', &[][..], Some((*major, *minor)), true)
            }
            (EntryType::Fifo, _) => (b'6', &[][..], None, true),
            (EntryType::Socket, _) => {
                return Err(Fault::Entry(Error::Unsupported(
                    "sockets in a tar stream (socket ignored)".into(),
                )))
            }
            (k, _) => {
                return Err(Fault::Entry(Error::InvalidInput(format!(
                    "{k:?} entry with a mismatched payload; not written"
                ))))
            }
        };
        let m = Member {
            name: path,
            typeflag,
            entry: e,
            linkname,
            size: 0,
            device,
            sparse: false,
            metadata,
        };
        self.write_headers(&m)?;
        Ok(())
    }
}

impl<W: Write> EntrySink for TarWriter<W> {
    fn enter_dir(&mut self, path: &[u8], entry: &Entry) -> Result<Flow> {
        if self.broken.is_some() {
            return Ok(Flow::Skip);
        }
        if !self.selected(path) {
            return Ok(if self.selection.may_hold(path) {
                Flow::Take
            } else {
                Flow::Skip
            });
        }
        let mut name = path.to_vec();
        name.push(b'/');
        let m = Member {
            name: &name,
            typeflag: b'5',
            entry,
            linkname: b"",
            size: 0,
            device: None,
            sparse: false,
            metadata: true,
        };
        let r = self.write_headers(&m).map_err(Fault::Out);
        self.settle(r)
    }

    fn leave_dir(&mut self, _: &[u8], _: &Entry) -> Result<()> {
        Ok(())
    }

    fn file(&mut self, path: &[u8], entry: &Entry, content: &mut FileContent<'_>) -> Result<Flow> {
        if self.broken.is_some() || !self.selected(path) {
            return Ok(Flow::Skip);
        }
        let r = self.write_file(path, entry, content);
        self.settle(r)
    }

    fn other(&mut self, path: &[u8], entry: &Entry) -> Result<Flow> {
        if self.broken.is_some() || !self.selected(path) {
            return Ok(Flow::Skip);
        }
        let r = self.write_other(path, entry);
        self.settle(r)
    }
}

/// What one member's headers say.
struct Member<'a> {
    /// The member path (a directory's ends in `/`).
    name: &'a [u8],
    typeflag: u8,
    entry: &'a Entry,
    linkname: &'a [u8],
    /// Bytes of data that follow the header.
    size: u64,
    device: Option<(u32, u32)>,
    /// Written in GNU sparse format 1.0 (the data begins with the map).
    sparse: bool,
    /// Carries xattrs and ACLs.
    metadata: bool,
}

/// One 512-byte header block being filled in.
struct Block([u8; BLOCK]);

impl Block {
    fn new() -> Block {
        Block([0u8; BLOCK])
    }

    /// Copies `v` into the field at `at` of `len` bytes, truncated to fit.
    fn bytes(&mut self, at: usize, len: usize, v: &[u8]) {
        let n = v.len().min(len);
        self.0[at..at + n].copy_from_slice(&v[..n]);
    }

    /// Zero-padded octal digits and a NUL; `v` must fit (see [`octal_max`]).
    fn octal(&mut self, at: usize, len: usize, v: u64) {
        debug_assert!(v <= octal_max(len));
        let s = format!("{v:0w$o}", w = len - 1);
        self.bytes(at, len - 1, s.as_bytes());
        self.0[at + len - 1] = 0;
    }

    /// Magic, version and checksum: the block is complete.
    fn seal(mut self, typeflag: u8) -> [u8; BLOCK] {
        self.0[156] = typeflag;
        self.0[257..263].copy_from_slice(b"ustar\0");
        self.0[263..265].copy_from_slice(b"00");
        self.0[148..156].fill(b' ');
        let sum: u32 = self.0.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}");
        self.0[148..154].copy_from_slice(s.as_bytes());
        self.0[154] = 0;
        self.0[155] = b' ';
        self.0
    }
}

/// Appends one pax record, `LEN KEY=VALUE\n`, LEN counting itself.
fn record(pax: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3;
    let mut len = body;
    loop {
        let next = body + len.to_string().len();
        if next == len {
            break;
        }
        len = next;
    }
    pax.extend_from_slice(len.to_string().as_bytes());
    pax.push(b' ');
    pax.extend_from_slice(key);
    pax.push(b'=');
    pax.extend_from_slice(value);
    pax.push(b'\n');
}

/// A time as pax writes it: seconds, and a fraction without trailing zeros.
fn pax_time(t: Timestamp) -> String {
    let (neg, sec, nsec) = if t.sec < 0 && t.nsec > 0 {
        // -1 s + 0.25 s is -0.75 s.
        (true, (-(t.sec + 1)) as u64, 1_000_000_000 - t.nsec)
    } else {
        (t.sec < 0, t.sec.unsigned_abs(), t.nsec)
    };
    let mut s = format!("{}{sec}", if neg { "-" } else { "" });
    if nsec > 0 {
        let frac = format!("{nsec:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

/// Splits a path into ustar `prefix` and `name` (155 and 100 bytes) at a `/`.
fn split_name(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((b"", path));
    }
    // The shortest prefix whose rest fits the name field.
    let from = path.len() - 101;
    (from..path.len().min(156))
        .find(|&i| path[i] == b'/' && i > 0 && i + 1 < path.len() && path.len() - i - 1 <= 100)
        .map(|i| (&path[..i], &path[i + 1..]))
}

/// `DIR/WHAT/BASE` for a member path `DIR/BASE` (DIR is `.` at the top), as
/// GNU tar names pax headers and sparse files, cut to the name field.
fn side_name(path: &[u8], what: &[u8]) -> Vec<u8> {
    let p = path.strip_suffix(b"/").unwrap_or(path);
    let (dir, base) = match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&b"."[..], p),
    };
    let mut n = dir.to_vec();
    n.push(b'/');
    n.extend_from_slice(what);
    n.push(b'/');
    n.extend_from_slice(base);
    n.truncate(100);
    n
}

/// GNU tar's encoding of an xattr name inside a pax keyword.
fn xattr_key(name: &[u8]) -> Vec<u8> {
    let mut k = b"SCHILY.xattr.".to_vec();
    for &b in name {
        match b {
            b'%' => k.extend_from_slice(b"%25"),
            b'=' => k.extend_from_slice(b"%3D"),
            _ => k.push(b),
        }
    }
    k
}

/// The kernel's binary POSIX ACL (version 2, then tag, permissions, id per
/// entry) as the text GNU tar writes: one `tag:qualifier:rwx` a line.
/// `None` when the bytes are not such an ACL.
fn acl_text(bin: &[u8]) -> Option<Vec<u8>> {
    let rest = bin.strip_prefix(&2u32.to_le_bytes())?;
    if rest.len() % 8 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for e in rest.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let head = match tag {
            0x01 => "user::".to_string(),
            0x02 => format!("user:{id}:"),
            0x04 => "group::".to_string(),
            0x08 => format!("group:{id}:"),
            0x10 => "mask::".to_string(),
            0x20 => "other::".to_string(),
            _ => return None,
        };
        if perm > 7 {
            return None;
        }
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&rwx(perm as u32));
        out.push(b'\n');
    }
    Some(out)
}

fn rwx(p: u32) -> [u8; 3] {
    [
        if p & 4 != 0 { b'r' } else { b'-' },
        if p & 2 != 0 { b'w' } else { b'-' },
        if p & 1 != 0 { b'x' } else { b'-' },
    ]
}

/// The ACL an entry without an access ACL has: its permission bits.
fn mode_acl(mode: u32) -> Vec<u8> {
    let mut t = b"user::".to_vec();
    t.extend_from_slice(&rwx(mode >> 6));
    t.extend_from_slice(b"\ngroup::");
    t.extend_from_slice(&rwx(mode >> 3));
    t.extend_from_slice(b"\nother::");
    t.extend_from_slice(&rwx(mode));
    t.push(b'\n');
    t
}

/// GNU sparse 1.0 map of a file's extents, padded to whole blocks.
fn sparse_map(extents: &[Extent], size: u64) -> Vec<u8> {
    let mut segments: Vec<(u64, u64)> = Vec::new();
    let mut at = 0u64;
    for x in extents {
        if let Extent::Data { len, .. } = x {
            match segments.last_mut() {
                Some((off, n)) if *off + *n == at => *n += *len as u64,
                _ => segments.push((at, *len as u64)),
            }
        }
        at += x.len();
    }
    if matches!(extents.last(), Some(Extent::Hole { .. })) {
        segments.push((size, 0));
    }
    let mut map = format!("{}\n", segments.len()).into_bytes();
    for (off, n) in segments {
        map.extend_from_slice(format!("{off}\n{n}\n").as_bytes());
    }
    map.resize(map.len().div_ceil(BLOCK) * BLOCK, 0);
    map
}

/// A member's pax header (when it needs one) and ustar header.
fn member_headers(m: &Member<'_>) -> Vec<u8> {
    let e = m.entry;
    let mut pax = Vec::new();
    let mut h = Block::new();
    if m.sparse {
        record(&mut pax, b"GNU.sparse.major", b"1");
        record(&mut pax, b"GNU.sparse.minor", b"0");
        record(&mut pax, b"GNU.sparse.name", m.name);
        record(
            &mut pax,
            b"GNU.sparse.realsize",
            e.size.to_string().as_bytes(),
        );
        h.bytes(0, 100, &side_name(m.name, b"GNUSparseFile.0"));
    } else {
        match split_name(m.name) {
            Some((prefix, name)) => {
                h.bytes(345, 155, prefix);
                h.bytes(0, 100, name);
                if !m.name.is_ascii() {
                    record(&mut pax, b"path", m.name);
                }
            }
            None => {
                h.bytes(0, 100, m.name);
                record(&mut pax, b"path", m.name);
            }
        }
    }
    if m.linkname.len() > 100 || !m.linkname.is_ascii() {
        record(&mut pax, b"linkpath", m.linkname);
    }
    h.bytes(157, 100, m.linkname);
    h.octal(100, 8, (e.mode & 0o7777) as u64);
    // A number too large for its field: pax record, and 0 in the field.
    let mut number = |pax: &mut Vec<u8>, key: &[u8], at: usize, len: usize, v: u64| {
        if v <= octal_max(len) {
            h.octal(at, len, v);
        } else {
            record(pax, key, v.to_string().as_bytes());
            h.octal(at, len, 0);
        }
    };
    number(&mut pax, b"uid", 108, 8, e.uid as u64);
    number(&mut pax, b"gid", 116, 8, e.gid as u64);
    number(&mut pax, b"size", 124, 12, m.size);
    match m.device {
        Some((major, minor)) => {
            number(&mut pax, b"devmajor", 329, 8, major as u64);
            number(&mut pax, b"devminor", 337, 8, minor as u64);
        }
        None => {
            h.octal(329, 8, 0);
            h.octal(337, 8, 0);
        }
    }
    let mtime_field = u64::try_from(e.mtime.sec)
        .ok()
        .filter(|&s| s <= octal_max(12));
    if mtime_field.is_none() || e.mtime.nsec != 0 {
        record(&mut pax, b"mtime", pax_time(e.mtime).as_bytes());
    }
    h.octal(136, 12, mtime_field.unwrap_or(0));
    for (key, t) in [(&b"atime"[..], e.atime), (b"ctime", e.ctime)] {
        if t != Timestamp::default() {
            record(&mut pax, key, pax_time(t).as_bytes());
        }
    }
    for (key, at, v) in [(&b"uname"[..], 265, &e.user), (b"gname", 297, &e.group)] {
        if v.len() > 32 || !v.is_ascii() {
            record(&mut pax, key, v);
        }
        h.bytes(at, 32, v);
    }
    if m.metadata {
        acl_records(&mut pax, e);
        for (name, value) in &e.xattrs {
            record(&mut pax, &xattr_key(name), value);
        }
    }
    let mut out = Vec::with_capacity(2 * BLOCK + pax.len());
    if !pax.is_empty() {
        let mut x = Block::new();
        x.bytes(0, 100, &side_name(m.name, b"PaxHeaders"));
        x.octal(100, 8, 0o644);
        x.octal(108, 8, 0);
        x.octal(116, 8, 0);
        x.octal(124, 12, pax.len() as u64);
        x.octal(136, 12, mtime_field.unwrap_or(0));
        out.extend_from_slice(&x.seal(b'x'));
        out.extend_from_slice(&pax);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    out.extend_from_slice(&h.seal(m.typeflag));
    out
}

/// `SCHILY.acl.access` and (directories) `SCHILY.acl.default`, when the
/// entry has an ACL, as GNU tar `--acls` writes them.
fn acl_records(pax: &mut Vec<u8>, e: &Entry) {
    let get = |name: &[u8]| {
        e.xattrs
            .iter()
            .find(|(n, _)| n.as_slice() == name)
            .map(|(_, v)| v.as_slice())
    };
    let dir = e.kind == EntryType::Dir;
    let access = get(b"system.posix_acl_access");
    let default = get(b"system.posix_acl_default").filter(|_| dir);
    if access.is_none() && default.is_none() {
        return;
    }
    // Bytes that are not an ACL still travel as the raw xattr.
    let Some(access) = access.map_or(Some(mode_acl(e.mode)), acl_text) else {
        return;
    };
    let Some(default) = default.map_or(Some(Vec::new()), acl_text) else {
        return;
    };
    record(pax, b"SCHILY.acl.access", &access);
    if dir {
        record(pax, b"SCHILY.acl.default", &default);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::Content;

    fn entry(kind: EntryType) -> Entry {
        let mtime = Timestamp {
            sec: 1_600_000_000,
            nsec: 0,
        };
        Entry::new("f", kind, Payload::File(Content::Inline(Vec::new())))
            .with_mode(0o644)
            .with_owner(1000, "alice")
            .with_group(1000, "staff")
            .with_times(mtime, Timestamp::default(), Timestamp::default())
            .with_source(0, 0, 1)
    }

    fn member<'a>(name: &'a [u8], e: &'a Entry, size: u64) -> Member<'a> {
        Member {
            name,
            typeflag: b'0',
            entry: e,
            linkname: b"",
            size,
            device: None,
            sparse: false,
            metadata: true,
        }
    }

    /// A header block read back, its checksum and magic checked.
    struct Parsed {
        block: [u8; BLOCK],
    }

    impl Parsed {
        fn new(b: &[u8]) -> Parsed {
            let block: [u8; BLOCK] = b[..BLOCK].try_into().unwrap();
            let mut sum: u32 = block.iter().map(|&b| b as u32).sum();
            sum -= block[148..156].iter().map(|&b| b as u32).sum::<u32>();
            sum += 8 * b' ' as u32;
            let stored = std::str::from_utf8(&block[148..154]).unwrap();
            assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum, "checksum");
            assert_eq!(&block[154..156], b"\0 ");
            assert_eq!(&block[257..265], b"ustar\x0000");
            Parsed { block }
        }
        fn field(&self, at: usize, len: usize) -> &[u8] {
            let f = &self.block[at..at + len];
            let end = f.iter().position(|&b| b == 0).unwrap_or(len);
            &f[..end]
        }
        fn octal(&self, at: usize, len: usize) -> u64 {
            let f = self.field(at, len);
            assert_eq!(f.len(), len - 1, "zero-padded to the field width");
            u64::from_str_radix(std::str::from_utf8(f).unwrap(), 8).unwrap()
        }
        fn typeflag(&self) -> u8 {
            self.block[156]
        }
    }

    /// Splits headers into (pax records, ustar header), checking every
    /// record's length prefix.
    /// Pax records as (keyword, value).
    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    fn parse(bytes: &[u8]) -> (Records, Parsed) {
        assert_eq!(bytes.len() % BLOCK, 0);
        let first = Parsed::new(bytes);
        if first.typeflag() != b'x' {
            assert_eq!(bytes.len(), BLOCK);
            return (Vec::new(), first);
        }
        let size = first.octal(124, 12) as usize;
        let body = &bytes[BLOCK..BLOCK + size];
        let mut recs = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let sp = rest.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            let rec = &rest[..len];
            assert_eq!(rec.last(), Some(&b'\n'), "record length is exact");
            let kv = &rec[sp + 1..len - 1];
            let eq = kv.iter().position(|&b| b == b'=').unwrap();
            recs.push((kv[..eq].to_vec(), kv[eq + 1..].to_vec()));
            rest = &rest[len..];
        }
        let ustar_at = BLOCK + size.div_ceil(BLOCK) * BLOCK;
        assert_eq!(bytes.len(), ustar_at + BLOCK);
        (recs, Parsed::new(&bytes[ustar_at..]))
    }

    fn get<'a>(recs: &'a Records, key: &str) -> Option<&'a [u8]> {
        recs.iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn a_plain_member_needs_no_pax_header() {
        let e = entry(EntryType::File);
        let (recs, h) = parse(&member_headers(&member(b"dir/f", &e, 6)));
        assert!(recs.is_empty());
        assert_eq!(h.field(0, 100), b"dir/f");
        assert_eq!(h.octal(100, 8), 0o644);
        assert_eq!(h.octal(108, 8), 1000);
        assert_eq!(h.octal(124, 12), 6);
        assert_eq!(h.octal(136, 12), 1_600_000_000);
        assert_eq!(h.field(265, 32), b"alice");
        assert_eq!(h.field(297, 32), b"staff");
        assert_eq!(h.typeflag(), b'0');
    }

    #[test]
    fn an_8_gib_size_and_a_large_uid_go_to_pax_records() {
        let mut e = entry(EntryType::File);
        e.uid = 1 << 30;
        e.gid = 0o7777777; // the largest that fits
        let size = 8u64 << 30;
        let (recs, h) = parse(&member_headers(&member(b"big", &e, size)));
        assert_eq!(get(&recs, "size"), Some(&b"8589934592"[..]));
        assert_eq!(get(&recs, "uid"), Some(&b"1073741824"[..]));
        assert_eq!(get(&recs, "gid"), None);
        // The ustar fields hold 0 where the value does not fit, as GNU tar writes.
        assert_eq!(h.octal(124, 12), 0);
        assert_eq!(h.octal(108, 8), 0);
        assert_eq!(h.octal(116, 8), 0o7777777);
        // Just below 8 GiB still fits the field.
        let (recs, h) = parse(&member_headers(&member(b"big", &e, size - 1)));
        assert_eq!(get(&recs, "size"), None);
        assert_eq!(h.octal(124, 12), size - 1);
    }

    #[test]
    fn names_split_into_prefix_and_name_or_go_to_pax() {
        let e = entry(EntryType::File);
        // 150 bytes: prefix and name, no record.
        let mid = [vec![b'a'; 99], b"/".to_vec(), vec![b'b'; 50]].concat();
        let (recs, h) = parse(&member_headers(&member(&mid, &e, 0)));
        assert!(recs.is_empty(), "{recs:?}");
        assert_eq!(h.field(345, 155), &mid[..99]);
        assert_eq!(h.field(0, 100), &mid[100..]);
        // 300 bytes: the path record, the name field cut to 100 bytes.
        let long = [vec![b'd'; 200], b"/".to_vec(), vec![b'f'; 99]].concat();
        let (recs, h) = parse(&member_headers(&member(&long, &e, 0)));
        assert_eq!(get(&recs, "path"), Some(&long[..]));
        assert_eq!(h.field(0, 100), &long[..100]);
        // A last component over 100 bytes cannot be split.
        let tail = [b"d/".to_vec(), vec![b'f'; 101]].concat();
        let (recs, _) = parse(&member_headers(&member(&tail, &e, 0)));
        assert_eq!(get(&recs, "path"), Some(&tail[..]));
        // Not ASCII: the raw bytes in a record (GNU tar writes them so).
        let odd = b"dir/not-utf8-\xff\xfe";
        let (recs, h) = parse(&member_headers(&member(odd, &e, 0)));
        assert_eq!(get(&recs, "path"), Some(&odd[..]));
        assert_eq!(h.field(0, 100), odd);
    }

    #[test]
    fn record_lengths_count_themselves_across_digit_boundaries() {
        for n in 0..300 {
            let mut pax = Vec::new();
            record(&mut pax, b"k", &vec![b'v'; n]);
            let sp = pax.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&pax[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, pax.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn times_owners_and_links_as_gnu_tar_writes_them() {
        let mut e = entry(EntryType::Symlink);
        e.mtime = Timestamp {
            sec: 1_796_134_987,
            nsec: 820_762_760,
        };
        e.atime = Timestamp { sec: 7, nsec: 0 };
        e.ctime = Timestamp {
            sec: -1,
            nsec: 250_000_000,
        };
        e.user = vec![b'u'; 40];
        let target = vec![b't'; 200];
        let m = Member {
            linkname: &target,
            typeflag: b'2',
            ..member(b"l", &e, 0)
        };
        let (recs, h) = parse(&member_headers(&m));
        assert_eq!(get(&recs, "mtime"), Some(&b"1796134987.82076276"[..]));
        assert_eq!(h.octal(136, 12), 1_796_134_987);
        assert_eq!(get(&recs, "atime"), Some(&b"7"[..]));
        assert_eq!(get(&recs, "ctime"), Some(&b"-0.75"[..]));
        assert_eq!(get(&recs, "uname"), Some(&e.user[..]));
        assert_eq!(h.field(265, 32), &e.user[..32]);
        assert_eq!(get(&recs, "gname"), None);
        assert_eq!(get(&recs, "linkpath"), Some(&target[..]));
        assert_eq!(h.field(157, 100), &target[..100]);
        assert_eq!(h.typeflag(), b'2');
        // A negative mtime: the record, and 0 in the field.
        e.mtime = Timestamp {
            sec: -86400,
            nsec: 0,
        };
        let (recs, h) = parse(&member_headers(&member(b"old", &e, 0)));
        assert_eq!(get(&recs, "mtime"), Some(&b"-86400"[..]));
        assert_eq!(h.octal(136, 12), 0);
    }

    #[test]
    fn acls_become_text_beside_the_raw_xattrs() {
        let acl = |es: &[(u16, u16, u32)]| {
            let mut b = 2u32.to_le_bytes().to_vec();
            for (t, p, id) in es {
                b.extend_from_slice(&t.to_le_bytes());
                b.extend_from_slice(&p.to_le_bytes());
                b.extend_from_slice(&id.to_le_bytes());
            }
            b
        };
        let u = u32::MAX;
        let access = acl(&[
            (1, 6, u),
            (2, 4, 1001),
            (4, 4, u),
            (0x10, 4, u),
            (0x20, 0, u),
        ]);
        let mut e = entry(EntryType::File);
        e.xattrs = vec![
            (b"system.posix_acl_access".to_vec(), access.clone()),
            (b"user.a=b%".to_vec(), b"v\n".to_vec()),
        ];
        let (recs, _) = parse(&member_headers(&member(b"f", &e, 0)));
        assert_eq!(
            get(&recs, "SCHILY.acl.access"),
            Some(&b"user::rw-\nuser:1001:r--\ngroup::r--\nmask::r--\nother::---\n"[..])
        );
        assert_eq!(get(&recs, "SCHILY.acl.default"), None);
        assert_eq!(
            get(&recs, "SCHILY.xattr.system.posix_acl_access"),
            Some(&access[..])
        );
        assert_eq!(get(&recs, "SCHILY.xattr.user.a%3Db%25"), Some(&b"v\n"[..]));
        // A directory with only a default ACL: the access ACL from its mode.
        let mut d = entry(EntryType::Dir);
        d.mode = 0o750;
        d.xattrs = vec![(
            b"system.posix_acl_default".to_vec(),
            acl(&[(1, 7, u), (4, 5, u), (0x20, 5, u)]),
        )];
        let (recs, _) = parse(&member_headers(&member(b"d/", &d, 0)));
        assert_eq!(
            get(&recs, "SCHILY.acl.access"),
            Some(&b"user::rwx\ngroup::r-x\nother::---\n"[..])
        );
        assert_eq!(
            get(&recs, "SCHILY.acl.default"),
            Some(&b"user::rwx\ngroup::r-x\nother::r-x\n"[..])
        );
        // A directory with only an access ACL: an empty default, as GNU tar.
        d.xattrs = vec![(b"system.posix_acl_access".to_vec(), access)];
        let (recs, _) = parse(&member_headers(&member(b"d/", &d, 0)));
        assert_eq!(get(&recs, "SCHILY.acl.default"), Some(&b""[..]));
        // Bytes that are not an ACL: no text, the raw xattr still goes.
        d.xattrs = vec![(b"system.posix_acl_access".to_vec(), vec![1, 2, 3])];
        let (recs, _) = parse(&member_headers(&member(b"d/", &d, 0)));
        assert_eq!(get(&recs, "SCHILY.acl.access"), None);
        assert!(get(&recs, "SCHILY.xattr.system.posix_acl_access").is_some());
    }

    #[test]
    fn sparse_files_carry_the_gnu_1_0_map() {
        let id = crate::Id::ZERO;
        let extents = [
            Extent::Hole { len: 8 << 20 },
            Extent::Data { len: 4096, id },
            Extent::Data { len: 100, id },
            Extent::Hole { len: 1000 },
            Extent::Data { len: 10, id },
            Extent::Hole { len: 5 },
        ];
        let size: u64 = extents.iter().map(Extent::len).sum();
        let map = sparse_map(&extents, size);
        assert_eq!(map.len(), BLOCK);
        let text = b"3\n8388608\n4196\n8393804\n10\n8393819\n0\n";
        assert_eq!(&map[..text.len()], text);
        assert!(map[text.len()..].iter().all(|&b| b == 0));
        // Ending in data: no closing segment.
        let map = sparse_map(&extents[..5], size - 5);
        assert!(map.starts_with(b"2\n8388608\n4196\n8393804\n10\n\0"));

        let mut e = entry(EntryType::File);
        e.size = size;
        let m = Member {
            sparse: true,
            ..member(b"dir/sparse.img", &e, 512 + 4206)
        };
        let (recs, h) = parse(&member_headers(&m));
        assert_eq!(get(&recs, "GNU.sparse.major"), Some(&b"1"[..]));
        assert_eq!(get(&recs, "GNU.sparse.minor"), Some(&b"0"[..]));
        assert_eq!(get(&recs, "GNU.sparse.name"), Some(&b"dir/sparse.img"[..]));
        assert_eq!(
            get(&recs, "GNU.sparse.realsize"),
            Some(size.to_string().as_bytes())
        );
        assert_eq!(get(&recs, "path"), None);
        assert_eq!(h.field(0, 100), b"dir/GNUSparseFile.0/sparse.img");
        assert_eq!(h.octal(124, 12), 512 + 4206);
    }

    #[test]
    fn sockets_and_dangling_hard_links_are_reported_not_written() {
        let mut w = TarWriter::new(Vec::new());
        let mut d = entry(EntryType::Dir);
        d.payload = Payload::Dir(crate::Id::ZERO);
        assert_eq!(w.enter_dir(b"d", &d).unwrap(), Flow::Take);
        let mut sock = entry(EntryType::Socket);
        sock.payload = Payload::None;
        let err = w.other(b"d/sock", &sock).unwrap_err();
        assert!(err.to_string().contains("socket"), "{err}");
        let mut link = entry(EntryType::Hardlink);
        link.payload = Payload::Hardlink(b"d/never".to_vec());
        let err = w.other(b"d/link", &link).unwrap_err();
        assert!(err.to_string().contains("d/never"), "{err}");
        let mut dev = entry(EntryType::BlockDevice);
        dev.payload = Payload::Device {
            major: 259,
            minor: 65537,
        };
        assert_eq!(w.other(b"d/blk", &dev).unwrap(), Flow::Take);
        let mut fifo = entry(EntryType::Fifo);
        fifo.payload = Payload::None;
        assert_eq!(w.other(b"d/fifo", &fifo).unwrap(), Flow::Take);
        let out = w.finish().unwrap();
        // Three headers and the end: nothing of the two that failed.
        assert_eq!(out.len(), 5 * BLOCK);
        assert!(out[3 * BLOCK..].iter().all(|&b| b == 0));
        let names: Vec<(u8, Vec<u8>)> = (0..3)
            .map(|i| {
                let h = Parsed::new(&out[i * BLOCK..]);
                (h.typeflag(), h.field(0, 100).to_vec())
            })
            .collect();
        assert_eq!(
            names,
            [
                (b'5', b"d/".to_vec()),
                (b'4', b"d/blk".to_vec()),
                (b'6', b"d/fifo".to_vec())
            ]
        );
        let blk = Parsed::new(&out[BLOCK..]);
        assert_eq!((blk.octal(329, 8), blk.octal(337, 8)), (259, 65537));
        assert_eq!(blk.octal(124, 12), 0);
    }

    #[test]
    fn side_names_follow_gnu_tar() {
        assert_eq!(side_name(b"dir", b"PaxHeaders"), b"./PaxHeaders/dir");
        assert_eq!(side_name(b"a/b/", b"PaxHeaders"), b"a/PaxHeaders/b");
        assert_eq!(side_name(&[b'x'; 300], b"PaxHeaders").len(), 100);
    }
}
