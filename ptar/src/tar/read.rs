//! Reading tar streams (ustar, POSIX pax, GNU, v7) as an entry source.
//!
//! [`TarSource`] reads any [`Read`] front to back, without seeking (standard
//! input works), and yields each member as a [`SourceItem`] with its whole
//! path; it declares itself unordered, so [`crate::source::build`] keeps the
//! tree in memory, makes up missing directories and lets a later member of
//! the same path win (see [`crate::source`]).
//!
//! What is read:
//!
//! - **Headers**: v7, ustar (the `prefix` field), GNU (`ustar  ` magic; its
//!   `atime` and `ctime` fields when set) and star's; octal numbers with
//!   spaces or NULs around them, and GNU's base-256 numbers (negative times
//!   too). The checksum is accepted as the unsigned or the signed sum.
//! - **pax** `x` (per member) and `g` (global) records: `path`, `linkpath`,
//!   `size`, `uid`, `gid`, `uname`, `gname`, `mtime`, `atime`, `ctime` (with
//!   fractional seconds), `SCHILY.devmajor`/`SCHILY.devminor`,
//!   `SCHILY.xattr.NAME` (raw value), `LIBARCHIVE.xattr.NAME` (URL-encoded
//!   name, base64 value), `SCHILY.acl.access` and `SCHILY.acl.default`
//!   (text ACLs, as GNU tar `--acls` and star write them, stored as the
//!   kernel's binary `system.posix_acl_access`/`system.posix_acl_default`
//!   attributes; an access ACL with only the three base entries is the
//!   permission bits and is dropped). A record with an empty value undoes a
//!   global one. Global `path`, `linkpath`, `size`, sparse, attribute and
//!   ACL records are ignored (attributes belong to the member they
//!   precede). Other keywords are ignored.
//! - **GNU** `L` (long name) and `K` (long link target) members, `D`
//!   (dumpdir: a directory, its listing skipped), `V` (volume label:
//!   skipped); `M` (multi-volume continuation) and `N` (old long names) are
//!   problems.
//! - **Sparse files** in the old GNU format (`S`, with extension headers)
//!   and the pax formats 0.0 (`GNU.sparse.offset`/`numbytes` pairs), 0.1
//!   (`GNU.sparse.map`) and 1.0 (`GNU.sparse.major=1`, the map at the start
//!   of the data; what `tar --sparse --format=posix` writes): the data
//!   segments become the file's data ranges and what lies between them
//!   holes ([`FileData::data_ranges`]).
//!
//! How members map to entries: `0`, NUL and `7` (contiguous) are regular
//! files (so is an unknown type, with a notice, as GNU tar does), `5` a
//! directory (also a regular-file header whose name ends in `/`), `2` a
//! symlink (target stored as it is: extraction refuses to follow it out of
//! the destination), `1` a hard link (resolved by the builder against the
//! members before it), `3`/`4` devices from `devmajor`/`devminor`, `6` a
//! fifo. Permission bits are `mode & 0o7777`; owners by id and name; times
//! from pax, else the header's `mtime` (access and change times default to
//! it). Device, inode and link count are unknown (0), except that the
//! builder gives each name of a hard-linked file the number of its names.
//!
//! Member names: leading `/` are removed (with one notice, like GNU tar's
//! "Removing leading `/' from member names"), and so are `.` components and
//! doubled slashes; a name with a `..` component is skipped as a problem (as
//! GNU tar does), and so is one the format cannot store (a component over
//! 4096 bytes or holding NUL). A member naming the root itself (`./`) is
//! skipped.
//!
//! The end: two zero blocks end the archive, but the stream is read on to
//! its end: zero blocks are skipped and a valid header after them starts
//! another archive (concatenated tars, as `tar --ignore-zeros` reads them);
//! anything else after an end marker is ignored with a notice. Like GNU tar,
//! a stream that ends at a member boundary without an end marker (or after
//! one zero block) is accepted.
//!
//! Fatal errors ([`Error::TarInput`], with the byte offset of the header and
//! the member's name): a header checksum that does not match, a stream that
//! ends inside a header or a member, a number field that is not a number
//! where the framing depends on it, a compressed stream (gzip, bzip2, xz,
//! zstd, lzip, lz4, compress: the message says to decompress it first), and
//! everything over the limits below. Problems with one member (a bad name, a
//! bad attribute, a bad ACL) are [`SourceItem::Problem`]s: the member or the
//! attribute is skipped and the import goes on.
//!
//! Limits against hostile input: [`MAX_PAX_HEADER_LEN`] bytes of pax records
//! per member (and as many for the global ones), [`MAX_LONG_NAME_LEN`] bytes
//! for a long name or link, [`MAX_SPARSE_SEGMENTS`] segments in a sparse
//! map, which must be increasing, within the file's size and add up to what
//! the member stores; sizes are checked for overflow. Memory never depends
//! on a size field: contents are streamed, skipped members read through a
//! fixed buffer.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};

use crate::format::limits::{MAX_TARGET_LEN, MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN};
use crate::format::tree::{Content, Entry, EntryType, Payload, Timestamp};
use crate::format::Id;
use crate::source::{EntrySource, FileData, SourceItem};
use crate::{Error, Result};

/// Largest pax extended header (`x` records of one member, or the `g`
/// records in force), in bytes.
pub const MAX_PAX_HEADER_LEN: u64 = 1 << 20;
/// Longest GNU long name or long link target (`L`, `K`), in bytes; also the
/// longest member path and hard-link target accepted.
pub const MAX_LONG_NAME_LEN: u64 = MAX_TARGET_LEN as u64;
/// Most data segments in one sparse member's map.
pub const MAX_SPARSE_SEGMENTS: usize = 1 << 18;

const BLOCK: usize = 512;
/// Problems reported for one member before the rest are counted.
const MAX_PROBLEMS_PER_MEMBER: usize = 8;

/// Which header layout a block uses (from its magic).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `ustar\0`: POSIX, with the `prefix` field.
    Ustar,
    /// `ustar  \0`: GNU, with `atime`, `ctime` and the old sparse map.
    Gnu,
    /// No magic: v7.
    V7,
}

/// A number field: octal (spaces and NULs around it allowed, empty is 0) or
/// base-256 (first byte 0x80 positive, 0xff negative). `None` when it is
/// neither or does not fit 64 bits.
fn number(field: &[u8]) -> Option<i128> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        let mut v: i128 = if first & 0x40 != 0 {
            ((first | 0x80) as i8) as i128
        } else {
            (first & 0x7f) as i128
        };
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(b as i128)?;
            if v.unsigned_abs() > u64::MAX as u128 {
                return None;
            }
        }
        return Some(v);
    }
    let start = field.iter().take_while(|&&b| b == b' ').count();
    let s = &field[start..];
    let end = s
        .iter()
        .position(|b| !(b'0'..=b'7').contains(b))
        .unwrap_or(s.len());
    // What follows the digits must be terminators only.
    if s[end..].iter().any(|&b| b != b' ' && b != 0) {
        return None;
    }
    let mut v: i128 = 0;
    for &d in &s[..end] {
        v = v * 8 + (d - b'0') as i128;
        if v > u64::MAX as i128 {
            return None;
        }
    }
    Some(v)
}

fn unsigned(field: &[u8]) -> Option<u64> {
    number(field).and_then(|v| u64::try_from(v).ok())
}

/// The bytes of a NUL-terminated field.
fn text(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// Whether the stored checksum matches the unsigned or the signed sum.
fn checksum_ok(b: &[u8; BLOCK]) -> bool {
    let Some(stored) = number(&b[148..156]) else {
        return false;
    };
    let mut unsigned_sum: i128 = 0;
    let mut signed_sum: i128 = 0;
    for (i, &x) in b.iter().enumerate() {
        let x = if (148..156).contains(&i) { b' ' } else { x };
        unsigned_sum += x as i128;
        signed_sum += (x as i8) as i128;
    }
    stored == unsigned_sum || stored == signed_sum
}

/// The compressor whose magic starts `b`, if any.
fn compressed(b: &[u8]) -> Option<(&'static str, &'static str)> {
    let magics: [(&[u8], &str, &str); 7] = [
        (b"\x1f\x8b", "gzip", "gzip -dc"),
        (b"\xfd7zXZ\x00", "xz", "xz -dc"),
        (b"\x28\xb5\x2f\xfd", "zstd", "zstd -dc"),
        (b"BZh", "bzip2", "bzip2 -dc"),
        (b"LZIP", "lzip", "lzip -dc"),
        (b"\x04\x22\x4d\x18", "lz4", "lz4 -dc"),
        (b"\x1f\x9d", "compress", "gzip -dc"),
    ];
    magics
        .iter()
        .find(|(m, _, _)| b.starts_with(m))
        .map(|&(_, name, tool)| (name, tool))
}

/// Parses pax records (`LEN KEY=VALUE\n`), in order.
/// pax records: (keyword, value), in order.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

fn pax_records(data: &[u8]) -> std::result::Result<Records, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // GNU tar pads the last block of some headers with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || rest.get(digits) != Some(&b' ') {
            return Err("malformed pax record (no length)".into());
        }
        if digits > 20 {
            return Err("pax record length does not fit 64 bits".into());
        }
        let len: u64 = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("pax record length does not fit 64 bits")?;
        if len > rest.len() as u64 || (len as usize) < digits + 3 {
            return Err(format!(
                "pax record length {len} runs past the header's {} remaining bytes",
                rest.len()
            ));
        }
        let record = &rest[digits + 1..len as usize];
        let Some((&b'\n', body)) = record.split_last() else {
            return Err("pax record does not end in a newline".into());
        };
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or("pax record without '='")?;
        out.push((body[..eq].to_vec(), body[eq + 1..].to_vec()));
        rest = &rest[len as usize..];
    }
    Ok(out)
}

/// A pax time: decimal seconds, optionally negative, with a fraction.
fn pax_time(v: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: i64 = int.parse().ok()?;
    let mut nsec: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += (d - b'0') as u32 * 10u32.pow(8 - i as u32);
    }
    if !neg {
        return Some(Timestamp { sec, nsec });
    }
    if nsec == 0 {
        Some(Timestamp {
            sec: sec.checked_neg()?,
            nsec: 0,
        })
    } else {
        Some(Timestamp {
            sec: sec.checked_neg()?.checked_sub(1)?,
            nsec: 1_000_000_000 - nsec,
        })
    }
}

fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Standard base64, padding optional, whitespace not allowed.
fn base64(v: &[u8]) -> Option<Vec<u8>> {
    let v = match v.iter().position(|&b| b == b'=') {
        Some(n) if v[n..].iter().all(|&b| b == b'=') && v.len() - n <= 2 => &v[..n],
        Some(_) => return None,
        None => v,
    };
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    if v.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(v.len() / 4 * 3 + 2);
    for group in v.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in group.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

/// `%XX` escapes decoded (libarchive's xattr names).
fn url_decode(v: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && i + 2 < v.len() {
            if let (Some(h), Some(l)) = (hex(v[i + 1]), hex(v[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

// POSIX ACL tags and the "no qualifier" id of the kernel's binary form.
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const ACL_UNDEFINED_ID: u32 = u32::MAX;

/// A text ACL (`user::rw-,user:1001:r--,group::r--,mask::r--,other::---`,
/// commas or newlines between entries, `#` comments, star's trailing
/// numeric id, names resolved through the local user database) in the
/// kernel's binary form. `Ok(None)` for an access ACL that is only the
/// permission bits.
fn acl_to_binary(text: &[u8], default: bool) -> std::result::Result<Option<Vec<u8>>, String> {
    let text = String::from_utf8_lossy(text);
    let mut entries: Vec<(u16, u16, u32)> = Vec::new();
    for raw in text.split(['\n', ',']) {
        let item = raw.split('#').next().unwrap_or("").trim();
        if item.is_empty() {
            continue;
        }
        let item = item
            .strip_prefix("default:")
            .or_else(|| item.strip_prefix("d:"))
            .unwrap_or(item);
        let fields: Vec<&str> = item.split(':').collect();
        if fields.len() < 3 || fields.len() > 4 {
            return Err(format!("ACL entry '{item}' is not TAG:QUALIFIER:PERMS"));
        }
        let (tag, qual, perms) = (fields[0], fields[1], fields[2]);
        let mut p = 0u16;
        for c in perms.chars() {
            p |= match c {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                '-' => 0,
                _ => return Err(format!("ACL entry '{item}': bad permissions")),
            };
        }
        let numeric = fields.get(3).and_then(|s| s.parse::<u32>().ok());
        let id = |user: bool| -> std::result::Result<u32, String> {
            if let Ok(n) = qual.parse::<u32>() {
                return Ok(n);
            }
            if let Some(n) = numeric {
                return Ok(n);
            }
            let found = if user {
                crate::fs::owners::user_id(qual.as_bytes())
            } else {
                crate::fs::owners::group_id(qual.as_bytes())
            };
            found.ok_or_else(|| format!("ACL entry '{item}': unknown name '{qual}'"))
        };
        let e = match (tag, qual.is_empty()) {
            ("user" | "u", true) => (ACL_USER_OBJ, p, ACL_UNDEFINED_ID),
            ("user" | "u", false) => (ACL_USER, p, id(true)?),
            ("group" | "g", true) => (ACL_GROUP_OBJ, p, ACL_UNDEFINED_ID),
            ("group" | "g", false) => (ACL_GROUP, p, id(false)?),
            ("mask" | "m", true) => (ACL_MASK, p, ACL_UNDEFINED_ID),
            ("other" | "o", true) => (ACL_OTHER, p, ACL_UNDEFINED_ID),
            _ => return Err(format!("ACL entry '{item}': unknown tag")),
        };
        if e.2 == ACL_UNDEFINED_ID && entries.iter().any(|x| x.0 == e.0) {
            return Err(format!("ACL entry '{item}' repeats its tag"));
        }
        if e.2 != ACL_UNDEFINED_ID && entries.iter().any(|x| x.0 == e.0 && x.2 == e.2) {
            return Err(format!("ACL entry '{item}' repeats its qualifier"));
        }
        entries.push(e);
    }
    if entries.is_empty() {
        return Ok(None);
    }
    for (tag, name) in [
        (ACL_USER_OBJ, "user::"),
        (ACL_GROUP_OBJ, "group::"),
        (ACL_OTHER, "other::"),
    ] {
        if !entries.iter().any(|e| e.0 == tag) {
            return Err(format!("the ACL has no '{name}' entry"));
        }
    }
    let named = entries.iter().any(|e| e.0 == ACL_USER || e.0 == ACL_GROUP);
    if named && !entries.iter().any(|e| e.0 == ACL_MASK) {
        // As setfacl does: the mask is the union of the group class.
        let m = entries
            .iter()
            .filter(|e| matches!(e.0, ACL_USER | ACL_GROUP_OBJ | ACL_GROUP))
            .fold(0, |a, e| a | e.1);
        entries.push((ACL_MASK, m, ACL_UNDEFINED_ID));
    }
    if !default && entries.len() == 3 {
        return Ok(None);
    }
    entries.sort_by_key(|e| (e.0, e.2));
    let mut b = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&perm.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
    }
    Ok(Some(b))
}

/// What the pax records in force say about one member.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<Vec<u8>>,
    uid: Option<Vec<u8>>,
    gid: Option<Vec<u8>>,
    uname: Option<Vec<u8>>,
    gname: Option<Vec<u8>>,
    mtime: Option<Vec<u8>>,
    atime: Option<Vec<u8>>,
    ctime: Option<Vec<u8>>,
    devmajor: Option<Vec<u8>>,
    devminor: Option<Vec<u8>>,
    /// Attributes by name (`None`: undone by an empty record).
    xattrs: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    acl_access: Option<Vec<u8>>,
    acl_default: Option<Vec<u8>>,
    /// `GNU.sparse.*` records, in order (per member only).
    sparse: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Pax {
    /// Applies one record. Global records never set the framing fields,
    /// nor attributes and ACLs (a megabyte of them on every member would
    /// make a small stream a huge snapshot).
    fn apply(&mut self, key: &[u8], value: &[u8], global: bool, problems: &mut Vec<String>) {
        let v = (!value.is_empty()).then(|| value.to_vec());
        if global
            && (key.starts_with(b"SCHILY.xattr.")
                || key.starts_with(b"LIBARCHIVE.xattr.")
                || key.starts_with(b"SCHILY.acl."))
        {
            return;
        }
        let slot = match key {
            b"path" if !global => &mut self.path,
            b"linkpath" if !global => &mut self.linkpath,
            b"size" if !global => &mut self.size,
            b"uid" => &mut self.uid,
            b"gid" => &mut self.gid,
            b"uname" => &mut self.uname,
            b"gname" => &mut self.gname,
            b"mtime" => &mut self.mtime,
            b"atime" => &mut self.atime,
            b"ctime" => &mut self.ctime,
            b"SCHILY.devmajor" => &mut self.devmajor,
            b"SCHILY.devminor" => &mut self.devminor,
            b"SCHILY.acl.access" => &mut self.acl_access,
            b"SCHILY.acl.default" => &mut self.acl_default,
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    self.xattrs.insert(name.to_vec(), v);
                } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    let name = url_decode(name);
                    match v.as_deref().map(base64) {
                        None => {
                            self.xattrs.insert(name, None);
                        }
                        Some(Some(value)) => {
                            self.xattrs.insert(name, Some(value));
                        }
                        Some(None) => problems.push(format!(
                            "extended attribute '{}': the value is not base64; not stored",
                            String::from_utf8_lossy(&name)
                        )),
                    }
                } else if key.starts_with(b"GNU.sparse.") && !global {
                    self.sparse.push((key.to_vec(), value.to_vec()));
                }
                return;
            }
        };
        *slot = v;
    }

    /// The last value of a sparse record.
    fn sparse_value(&self, key: &[u8]) -> Option<&[u8]> {
        self.sparse
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// The kind of sparse map a member carries.
enum SparseMap {
    /// Old GNU (`S`): in the header and its extension blocks.
    OldGnu,
    /// pax 0.0 or 0.1: in the records.
    Pax0,
    /// pax 1.0: at the start of the data.
    Pax1,
}

/// The content of the member being read, and the stream under it.
struct Body<R> {
    input: R,
    /// Bytes consumed from the stream.
    offset: u64,
    /// Bytes of the member's data not consumed yet.
    left: u64,
    /// Padding after the member's data.
    pad: u64,
    /// Data segments `(offset in the file, length)` of a sparse member, in
    /// order, zero-length ones left out.
    segments: Option<Vec<(u64, u64)>>,
    /// The next segment `reader_at` hands out.
    next_segment: usize,
    /// Bytes of the current segment not read yet.
    segment_left: u64,
    /// Whether a plain member's content was asked for.
    started: bool,
    /// The file's length (a sparse file's real size).
    len: u64,
    /// The stream ended inside the content: the message.
    truncated: Option<String>,
    scratch: Vec<u8>,
}

impl<R: Read> Body<R> {
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.input.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Fills `buf` as far as the stream goes; the count read.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.read_some(&mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(got)
    }

    /// Reads and drops `n` bytes; how many the stream had.
    fn discard(&mut self, n: u64) -> io::Result<u64> {
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; 64 * 1024];
        }
        let mut done = 0u64;
        let mut scratch = std::mem::take(&mut self.scratch);
        while done < n {
            let want = (n - done).min(scratch.len() as u64) as usize;
            let got = self.read_some(&mut scratch[..want]);
            match got {
                Ok(0) => break,
                Ok(k) => done += k as u64,
                Err(e) => {
                    self.scratch = scratch;
                    return Err(e);
                }
            }
        }
        self.scratch = scratch;
        Ok(done)
    }

    /// Reads `n` bytes of the member's data (for metadata members and
    /// sparse maps); `None` when the stream ends first.
    fn take_data(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        let mut v = vec![0u8; n];
        let got = self.fill(&mut v)?;
        self.left -= got as u64;
        Ok((got == n).then_some(v))
    }

    fn truncation(&mut self) -> io::Error {
        let msg = format!(
            "the tar stream ends inside this member, {} bytes before the end of its content",
            self.left
        );
        self.truncated = Some(msg.clone());
        io::Error::new(io::ErrorKind::UnexpectedEof, msg)
    }
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let cap = if self.segments.is_some() {
            self.segment_left
        } else {
            self.left
        };
        if cap == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(cap) as usize;
        let n = match self.read_some(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                // The member cannot be read whole: the import stops.
                self.truncated = Some(format!("reading the tar stream failed: {e}"));
                return Err(e);
            }
        };
        if n == 0 {
            return Err(self.truncation());
        }
        self.left -= n as u64;
        if self.segments.is_some() {
            self.segment_left -= n as u64;
        }
        Ok(n)
    }
}

impl<R: Read> FileData for Body<R> {
    fn data_ranges(&mut self) -> Option<Vec<(u64, u64)>> {
        self.segments
            .as_ref()
            .map(|s| s.iter().map(|&(o, l)| (o, o + l)).collect())
    }

    fn reader_at(&mut self, start: u64) -> io::Result<&mut dyn Read> {
        let Some(segments) = &self.segments else {
            if start != 0 || self.started {
                return Err(io::Error::other(
                    "a tar member's content is read once, from its start",
                ));
            }
            self.started = true;
            return Ok(self);
        };
        let next = segments.get(self.next_segment).copied();
        if self.segment_left > 0 {
            let n = self.segment_left;
            let got = self.discard(n)?;
            self.left -= got;
            self.segment_left -= got;
            if got < n {
                return Err(self.truncation());
            }
        }
        match next {
            Some((offset, len)) if offset == start => {
                self.next_segment += 1;
                self.segment_left = len;
                Ok(self)
            }
            _ => Err(io::Error::other(
                "a sparse tar member's segments are read in order",
            )),
        }
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A member ready to hand out.
enum Ready {
    File { path: Vec<u8>, entry: Entry },
    Dir { path: Vec<u8>, entry: Entry },
    Other { path: Vec<u8>, entry: Entry },
}

/// A problem or notice to hand out before the next member.
enum Pending {
    Problem(Vec<u8>, String),
    Notice(Vec<u8>, String),
}

/// A tar stream as an [`EntrySource`] (see the module documentation).
pub struct TarSource<R: Read> {
    body: Body<R>,
    globals: Pax,
    /// Bytes of global records in force.
    globals_len: u64,
    queue: VecDeque<Pending>,
    ready: Option<Ready>,
    /// The member whose content `body` holds: its header's offset and name.
    member_at: u64,
    member_name: Vec<u8>,
    done: bool,
    noticed_slash: bool,
    /// What notices about the stream as a whole are reported under.
    name: Vec<u8>,
}

impl<R: Read> TarSource<R> {
    /// Reads the tar stream `input` from its current position.
    pub fn new(input: R) -> TarSource<R> {
        TarSource {
            body: Body {
                input,
                offset: 0,
                left: 0,
                pad: 0,
                segments: None,
                next_segment: 0,
                segment_left: 0,
                started: false,
                len: 0,
                truncated: None,
                scratch: Vec::new(),
            },
            globals: Pax::default(),
            globals_len: 0,
            queue: VecDeque::new(),
            ready: None,
            member_at: 0,
            member_name: Vec::new(),
            done: false,
            noticed_slash: false,
            name: b"tar input".to_vec(),
        }
    }

    /// Names the stream (its file name, or `-`) in notices about the stream
    /// as a whole.
    pub fn with_name(mut self, name: impl Into<Vec<u8>>) -> TarSource<R> {
        self.name = name.into();
        self
    }

    /// Bytes read from the stream so far.
    pub fn bytes_read(&self) -> u64 {
        self.body.offset
    }

    fn fatal(&mut self, offset: u64, member: Option<&[u8]>, detail: impl Into<String>) -> Error {
        self.done = true;
        Error::TarInput {
            offset,
            member: member.map(|m| String::from_utf8_lossy(m).into_owned()),
            detail: detail.into(),
        }
    }

    /// Skips what is left of the current member.
    fn finish_member(&mut self) -> Result<()> {
        let (at, name) = (self.member_at, std::mem::take(&mut self.member_name));
        if let Some(msg) = self.body.truncated.take() {
            return Err(self.fatal(at, Some(&name), msg));
        }
        let left = self.body.left;
        let n = left + self.body.pad;
        let got = self
            .body
            .discard(n)
            .map_err(|e| input_error(&self.name, e))?;
        if got < left {
            self.body.left = left - got;
            let msg = self.body.truncation().to_string();
            self.body.truncated = None;
            return Err(self.fatal(at, Some(&name), msg));
        }
        // A stream that ends in the last member's padding is accepted.
        self.body.left = 0;
        self.body.pad = 0;
        self.body.segments = None;
        self.body.next_segment = 0;
        self.body.segment_left = 0;
        self.body.started = false;
        self.body.len = 0;
        Ok(())
    }

    /// Reads a metadata member's data (`size` bytes, at most `limit`).
    fn meta_data(&mut self, at: u64, size: u64, limit: u64, what: &str) -> Result<Vec<u8>> {
        if size > limit {
            return Err(self.fatal(
                at,
                None,
                format!("{what} of {size} bytes is over the limit of {limit} bytes"),
            ));
        }
        self.body.left = size;
        let data = self
            .body
            .take_data(size as usize)
            .map_err(|e| input_error(&self.name, e))?;
        let Some(data) = data else {
            return Err(self.fatal(at, None, format!("the tar stream ends inside a {what}")));
        };
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        // The padding of the last block may be missing at the very end.
        self.body
            .discard(pad)
            .map_err(|e| input_error(&self.name, e))?;
        self.body.left = 0;
        Ok(data)
    }

    /// Reads headers up to the next member and prepares it (or the end).
    fn advance(&mut self) -> Result<()> {
        self.finish_member()?;
        let mut local = Pax::default();
        let mut local_len = 0u64;
        let mut problems: Vec<String> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pending_meta = false;
        let mut zeros = 0u64;
        let mut block = [0u8; BLOCK];
        loop {
            let at = self.body.offset;
            let got = self
                .body
                .fill(&mut block)
                .map_err(|e| input_error(&self.name, e))?;
            if got == 0 {
                if pending_meta {
                    return Err(self.fatal(
                        at,
                        None,
                        "the tar stream ends after an extended header, before its member",
                    ));
                }
                self.done = true;
                return Ok(());
            }
            if at == 0 && (got < BLOCK || !checksum_ok(&block)) {
                if let Some((name, tool)) = compressed(&block[..got]) {
                    return Err(self.fatal(
                        0,
                        None,
                        format!(
                            "the input is {name}-compressed; ptar reads uncompressed tar: decompress it first (pipe it through `{tool}`)"
                        ),
                    ));
                }
            }
            if got < BLOCK {
                if !pending_meta && block[..got].iter().all(|&b| b == 0) {
                    self.done = true;
                    return Ok(());
                }
                return Err(self.fatal(
                    at,
                    None,
                    format!("the tar stream ends inside a header ({got} of 512 bytes)"),
                ));
            }
            if block.iter().all(|&b| b == 0) {
                if pending_meta {
                    return Err(self.fatal(
                        at,
                        None,
                        "an extended header is followed by the end of the archive",
                    ));
                }
                zeros += 1;
                continue;
            }
            if !checksum_ok(&block) {
                if zeros > 0 && !pending_meta {
                    self.queue.push_back(Pending::Notice(
                        self.name.clone(),
                        format!(
                            "the bytes from byte {at} on follow an end-of-archive marker and are not a tar header; ignored"
                        ),
                    ));
                    self.done = true;
                    return Ok(());
                }
                let detail = if at == 0 {
                    "this does not look like a tar archive (the first header's checksum does not match)".to_string()
                } else {
                    "header checksum does not match; the archive is damaged".to_string()
                };
                return Err(self.fatal(at, None, detail));
            }
            zeros = 0;
            let typeflag = block[156];
            let Some(size) = unsigned(&block[124..136]) else {
                return Err(self.fatal(at, None, "the size field is not a number"));
            };
            match typeflag {
                b'x' | b'X' | b'g' => {
                    let global = typeflag == b'g';
                    let limit = if global {
                        MAX_PAX_HEADER_LEN
                    } else {
                        MAX_PAX_HEADER_LEN - local_len
                    };
                    let data = self.meta_data(at, size, limit, "pax extended header")?;
                    let records = match pax_records(&data) {
                        Ok(r) => r,
                        Err(m) => return Err(self.fatal(at, None, m)),
                    };
                    if global {
                        self.globals_len += size;
                        if self.globals_len > MAX_PAX_HEADER_LEN {
                            return Err(self.fatal(
                                at,
                                None,
                                format!(
                                    "global pax records of {} bytes in all are over the limit of {MAX_PAX_HEADER_LEN} bytes",
                                    self.globals_len
                                ),
                            ));
                        }
                        let mut unused = Vec::new();
                        for (k, v) in records {
                            self.globals.apply(&k, &v, true, &mut unused);
                        }
                    } else {
                        local_len += size;
                        pending_meta = true;
                        for (k, v) in records {
                            local.apply(&k, &v, false, &mut problems);
                        }
                    }
                }
                b'L' | b'K' => {
                    let what = if typeflag == b'L' {
                        "GNU long name"
                    } else {
                        "GNU long link"
                    };
                    let data = self.meta_data(at, size, MAX_LONG_NAME_LEN, what)?;
                    let name = text(&data).to_vec();
                    pending_meta = true;
                    if typeflag == b'L' {
                        long_name = Some(name);
                    } else {
                        long_link = Some(name);
                    }
                }
                _ => {
                    return self.member(at, &block, size, local, problems, long_name, long_link);
                }
            }
        }
    }

    /// Prepares the member whose header is `b` (at `at`), with the pax
    /// records and long names before it.
    #[allow(clippy::too_many_arguments)]
    fn member(
        &mut self,
        at: u64,
        b: &[u8; BLOCK],
        header_size: u64,
        local: Pax,
        mut problems: Vec<String>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<()> {
        let flavor = match &b[257..263] {
            b"ustar\0" => Flavor::Ustar,
            b"ustar " => Flavor::Gnu,
            _ => Flavor::V7,
        };
        let typeflag = b[156];
        // The records in force: globals, then this member's.
        let pick = |l: &Option<Vec<u8>>, g: &Option<Vec<u8>>| l.clone().or_else(|| g.clone());
        let sparse_name = local.sparse_value(b"GNU.sparse.name").map(<[u8]>::to_vec);
        let name = sparse_name
            .or_else(|| local.path.clone())
            .or(long_name)
            .unwrap_or_else(|| {
                let n = text(&b[0..100]);
                // star keeps times after a shorter prefix.
                let prefix = if &b[508..512] == b"tar\0" {
                    text(&b[345..476])
                } else {
                    text(&b[345..500])
                };
                if flavor == Flavor::Ustar && !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(n);
                    p
                } else {
                    n.to_vec()
                }
            });
        let link = local
            .linkpath
            .clone()
            .or(long_link)
            .unwrap_or_else(|| text(&b[157..257]).to_vec());
        let size = match &local.size {
            Some(v) => match decimal(v) {
                Some(n) => n,
                None => return Err(self.fatal(at, Some(&name), "the pax size is not a number")),
            },
            None => header_size,
        };
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        if size.checked_add(pad).is_none() {
            return Err(self.fatal(at, Some(&name), "the member's size overflows"));
        }
        self.member_at = at;
        self.member_name = name.clone();
        self.body.left = size;
        self.body.pad = pad;
        self.body.len = size;

        // The sparse map, read now whatever happens to the member: the old
        // GNU extension blocks come before the data.
        let map_kind = if typeflag == b'S' && flavor == Flavor::Gnu {
            Some(SparseMap::OldGnu)
        } else if local.sparse_value(b"GNU.sparse.major") == Some(b"1") {
            Some(SparseMap::Pax1)
        } else if local.sparse_value(b"GNU.sparse.map").is_some()
            || local.sparse_value(b"GNU.sparse.offset").is_some()
        {
            Some(SparseMap::Pax0)
        } else {
            None
        };
        if let Some(kind) = map_kind {
            let (real, segments) = match kind {
                SparseMap::OldGnu => self.old_gnu_map(at, b)?,
                SparseMap::Pax0 => self.pax0_map(at, &local)?,
                SparseMap::Pax1 => self.pax1_map(at, &local)?,
            };
            let stored = self.body.left;
            let mut end = 0u64;
            let mut sum = 0u64;
            for &(off, len) in &segments {
                let seg_end = off.checked_add(len);
                match seg_end {
                    Some(e) if off >= end && e <= real => {
                        end = e;
                        sum += len;
                    }
                    _ => {
                        return Err(self.fatal(
                            at,
                            Some(&name),
                            format!(
                                "the sparse map's segment at {off} of {len} bytes overlaps the one before it or ends past the file's size of {real} bytes"
                            ),
                        ))
                    }
                }
            }
            if sum != stored {
                return Err(self.fatal(
                    at,
                    Some(&name),
                    format!("the sparse map covers {sum} bytes but the member stores {stored}"),
                ));
            }
            if real > i64::MAX as u64 {
                return Err(self.fatal(at, Some(&name), "the sparse file's size is too large"));
            }
            self.body.len = real;
            self.body.segments = Some(segments.into_iter().filter(|s| s.1 > 0).collect());
        }

        // Member names.
        let original = name.clone();
        let mut normalized = match normalize(&name) {
            Ok((n, slash)) => {
                if slash && !self.noticed_slash {
                    self.noticed_slash = true;
                    self.queue.push_back(Pending::Notice(
                        original.clone(),
                        "removing leading '/' from member names".into(),
                    ));
                }
                Some(n)
            }
            Err(m) => {
                problems.push(m);
                None
            }
        };
        if normalized
            .as_ref()
            .is_some_and(|n| n.len() > MAX_TARGET_LEN)
        {
            problems.push(format!(
                "the member name is longer than {MAX_TARGET_LEN} bytes; skipped"
            ));
            normalized = None;
        }

        // The type.
        let mut kind = match typeflag {
            b'0' | 0 | b'7' | b'S' => EntryType::File,
            b'1' => EntryType::Hardlink,
            b'2' => EntryType::Symlink,
            b'3' => EntryType::CharDevice,
            b'4' => EntryType::BlockDevice,
            b'5' | b'D' => EntryType::Dir,
            b'6' => EntryType::Fifo,
            b'V' => return Ok(()),
            b'M' | b'N' => {
                let what = if typeflag == b'M' {
                    "continues a member of another volume (multi-volume archives are not read)"
                } else {
                    "uses old GNU long names, which are not read"
                };
                self.queue
                    .push_back(Pending::Problem(original, format!("{what}; skipped")));
                return Ok(());
            }
            t => {
                self.queue.push_back(Pending::Notice(
                    original.clone(),
                    format!(
                        "unknown member type '{}'; read as a regular file",
                        (t as char).escape_default()
                    ),
                ));
                EntryType::File
            }
        };
        if kind == EntryType::File && matches!(typeflag, b'0' | 0) && name.ends_with(b"/") {
            kind = EntryType::Dir;
        }
        if kind != EntryType::File {
            // Only a regular file's data is its content.
            self.body.segments = None;
            self.body.len = 0;
        }
        let num = |pax: &Option<Vec<u8>>, field: &[u8]| -> Option<i128> {
            match pax {
                Some(v) => decimal(v).map(|n| n as i128),
                None => number(field),
            }
        };
        let g = &self.globals;
        let mut bad = Vec::new();
        let id = |what: &str, pax: Option<Vec<u8>>, field: &[u8], bad: &mut Vec<String>| -> u32 {
            match num(&pax, field).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    bad.push(format!("the {what} is not a number that fits 32 bits"));
                    0
                }
            }
        };
        let mode = match number(&b[100..108]) {
            Some(m) if m >= 0 => (m as u64 & 0o7777) as u32,
            _ => {
                bad.push("the mode is not a number".into());
                0
            }
        };
        let uid = id("uid", pick(&local.uid, &g.uid), &b[108..116], &mut bad);
        let gid = id("gid", pick(&local.gid, &g.gid), &b[116..124], &mut bad);
        let (major, minor) = if matches!(kind, EntryType::CharDevice | EntryType::BlockDevice) {
            (
                id(
                    "device major",
                    pick(&local.devmajor, &g.devmajor),
                    &b[329..337],
                    &mut bad,
                ),
                id(
                    "device minor",
                    pick(&local.devminor, &g.devminor),
                    &b[337..345],
                    &mut bad,
                ),
            )
        } else {
            (0, 0)
        };
        let header_time = |field: &[u8]| -> Option<Timestamp> {
            number(field)
                .and_then(|n| i64::try_from(n).ok())
                .map(|sec| Timestamp { sec, nsec: 0 })
        };
        let time = |pax: Option<Vec<u8>>, bad: &mut Vec<String>, what: &str| match pax {
            Some(v) => {
                let t = pax_time(&v);
                if t.is_none() {
                    bad.push(format!("the pax {what} is not a time"));
                }
                t
            }
            None => None,
        };
        let mtime = match time(pick(&local.mtime, &g.mtime), &mut bad, "mtime") {
            Some(t) => t,
            None => header_time(&b[136..148]).unwrap_or_else(|| {
                bad.push("the mtime is not a number".into());
                Timestamp::default()
            }),
        };
        let gnu_time = |field: &[u8]| {
            (flavor == Flavor::Gnu)
                .then(|| header_time(field))
                .flatten()
                .filter(|t| t.sec != 0)
        };
        let atime = time(pick(&local.atime, &g.atime), &mut bad, "atime")
            .or_else(|| gnu_time(&b[345..357]))
            .unwrap_or(mtime);
        let ctime = time(pick(&local.ctime, &g.ctime), &mut bad, "ctime")
            .or_else(|| gnu_time(&b[357..369]))
            .unwrap_or(mtime);
        let owner = |pax: Option<Vec<u8>>, field: &[u8], what: &str, bad: &mut Vec<String>| {
            let v = pax.unwrap_or_else(|| text(field).to_vec());
            if v.len() > 255 {
                bad.push(format!("the {what} name is over 255 bytes; not stored"));
                Vec::new()
            } else {
                v
            }
        };
        let user = owner(pick(&local.uname, &g.uname), &b[265..297], "user", &mut bad);
        let group = owner(
            pick(&local.gname, &g.gname),
            &b[297..329],
            "group",
            &mut bad,
        );

        // Extended attributes and ACLs.
        let mut xattrs: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (k, v) in g.xattrs.iter().chain(local.xattrs.iter()) {
            match v {
                Some(v) => {
                    xattrs.insert(k.clone(), v.clone());
                }
                None => {
                    xattrs.remove(k);
                }
            }
        }
        for (text, default) in [
            (pick(&local.acl_access, &g.acl_access), false),
            (pick(&local.acl_default, &g.acl_default), true),
        ] {
            let Some(text) = text else { continue };
            let key: &[u8] = if default {
                b"system.posix_acl_default"
            } else {
                b"system.posix_acl_access"
            };
            match acl_to_binary(&text, default) {
                Ok(Some(bin)) => {
                    xattrs.insert(key.to_vec(), bin);
                }
                Ok(None) => {}
                Err(m) => problems.push(format!("{m}; the ACL is not stored")),
            }
        }
        let mut attrs = Vec::with_capacity(xattrs.len());
        for (k, v) in xattrs {
            if k.is_empty() || k.len() > MAX_XATTR_NAME_LEN || k.contains(&0) {
                problems.push(format!(
                    "extended attribute name '{}' is empty, too long or holds NUL; not stored",
                    String::from_utf8_lossy(&k)
                ));
            } else if v.len() > MAX_XATTR_VALUE_LEN {
                problems.push(format!(
                    "extended attribute '{}' is over {MAX_XATTR_VALUE_LEN} bytes; not stored",
                    String::from_utf8_lossy(&k)
                ));
            } else {
                attrs.push((k, v));
            }
        }

        let payload = match kind {
            EntryType::File => Payload::File(Content::Inline(Vec::new())),
            EntryType::Dir => Payload::Dir(Id::ZERO),
            EntryType::Symlink => {
                if link.is_empty() || link.len() > MAX_TARGET_LEN || link.contains(&0) {
                    problems.push(format!(
                        "the symlink target is empty, over {MAX_TARGET_LEN} bytes or holds NUL; skipped"
                    ));
                    normalized = None;
                }
                Payload::Symlink(link.clone())
            }
            EntryType::Hardlink => match normalize(&link) {
                Ok((t, _)) if !t.is_empty() && t.len() <= MAX_TARGET_LEN => Payload::Hardlink(t),
                Ok(_) => {
                    problems.push("the hard link has no usable target; skipped".into());
                    normalized = None;
                    Payload::None
                }
                Err(m) => {
                    problems.push(format!("hard link target: {m}"));
                    normalized = None;
                    Payload::None
                }
            },
            EntryType::CharDevice | EntryType::BlockDevice => Payload::Device { major, minor },
            _ => Payload::None,
        };
        if !bad.is_empty() {
            problems.extend(bad.into_iter().map(|m| format!("{m}; skipped")));
            normalized = None;
        }
        if problems.len() > MAX_PROBLEMS_PER_MEMBER {
            let more = problems.len() - MAX_PROBLEMS_PER_MEMBER;
            problems.truncate(MAX_PROBLEMS_PER_MEMBER);
            problems.push(format!("and {more} more problems with this member"));
        }
        let Some(path) = normalized else {
            // Report each problem once, under the name as the tar has it.
            for p in problems {
                self.queue.push_back(Pending::Problem(original.clone(), p));
            }
            return Ok(());
        };
        for p in problems {
            self.queue.push_back(Pending::Problem(path.clone(), p));
        }
        if path.is_empty() {
            // The archive root (`./`): the format keeps no entry for it.
            if kind != EntryType::Dir {
                self.queue.push_back(Pending::Problem(
                    original,
                    "a non-directory member names the archive root; skipped".into(),
                ));
            }
            return Ok(());
        }
        let name = path.rsplit(|&c| c == b'/').next().unwrap_or(&path);
        let entry = Entry::new(name, kind, payload)
            .with_mode(mode)
            .with_owner(uid, user)
            .with_group(gid, group)
            .with_times(mtime, atime, ctime)
            .with_xattrs(attrs);
        self.ready = Some(match kind {
            EntryType::File => Ready::File { path, entry },
            EntryType::Dir => Ready::Dir { path, entry },
            _ => Ready::Other { path, entry },
        });
        Ok(())
    }

    /// The old GNU sparse map: four slots in the header, 21 in each
    /// extension block after it.
    fn old_gnu_map(&mut self, at: u64, b: &[u8; BLOCK]) -> Result<(u64, Vec<(u64, u64)>)> {
        let name = self.member_name.clone();
        let bad = |s: &mut Self| s.fatal(at, Some(&name), "the old GNU sparse map is not numbers");
        let Some(real) = unsigned(&b[483..495]) else {
            return Err(bad(self));
        };
        let mut segments = Vec::new();
        let slots = |s: &mut Self, area: &[u8], segs: &mut Vec<(u64, u64)>| -> Result<()> {
            for slot in area.chunks_exact(24) {
                if slot.iter().all(|&c| c == 0) {
                    break;
                }
                let (Some(off), Some(len)) = (unsigned(&slot[..12]), unsigned(&slot[12..])) else {
                    return Err(bad(s));
                };
                if segs.len() >= MAX_SPARSE_SEGMENTS {
                    return Err(s.fatal(
                        at,
                        Some(&name),
                        format!("the sparse map has more than {MAX_SPARSE_SEGMENTS} segments"),
                    ));
                }
                segs.push((off, len));
            }
            Ok(())
        };
        slots(self, &b[386..482], &mut segments)?;
        let mut extended = b[482] != 0;
        let mut ext = [0u8; BLOCK];
        while extended {
            let ext_at = self.body.offset;
            if self
                .body
                .fill(&mut ext)
                .map_err(|e| input_error(&self.name, e))?
                < BLOCK
            {
                return Err(self.fatal(
                    ext_at,
                    Some(&name),
                    "the tar stream ends inside a sparse map extension block",
                ));
            }
            slots(self, &ext[..504], &mut segments)?;
            extended = ext[504] != 0;
        }
        Ok((real, segments))
    }

    /// The pax 0.0 (offset/numbytes pairs) or 0.1 (`GNU.sparse.map`) map.
    fn pax0_map(&mut self, at: u64, pax: &Pax) -> Result<(u64, Vec<(u64, u64)>)> {
        let name = self.member_name.clone();
        let real = pax
            .sparse_value(b"GNU.sparse.size")
            .or_else(|| pax.sparse_value(b"GNU.sparse.realsize"))
            .and_then(decimal);
        let Some(real) = real else {
            return Err(self.fatal(at, Some(&name), "the sparse member has no size record"));
        };
        let mut numbers: Vec<u64> = Vec::new();
        let mut bad = false;
        if let Some(map) = pax.sparse_value(b"GNU.sparse.map") {
            if !map.is_empty() {
                for n in map.split(|&c| c == b',') {
                    match decimal(n) {
                        Some(v) => numbers.push(v),
                        None => bad = true,
                    }
                }
            }
        } else {
            for (k, v) in &pax.sparse {
                if k == b"GNU.sparse.offset" || k == b"GNU.sparse.numbytes" {
                    let want_offset = numbers.len() % 2 == 0;
                    if want_offset != (k == b"GNU.sparse.offset") {
                        bad = true;
                    }
                    match decimal(v) {
                        Some(v) => numbers.push(v),
                        None => bad = true,
                    }
                }
            }
        }
        if bad || numbers.len() % 2 != 0 {
            return Err(self.fatal(at, Some(&name), "the pax sparse map is malformed"));
        }
        if numbers.len() / 2 > MAX_SPARSE_SEGMENTS {
            return Err(self.fatal(
                at,
                Some(&name),
                format!("the sparse map has more than {MAX_SPARSE_SEGMENTS} segments"),
            ));
        }
        if let Some(n) = pax.sparse_value(b"GNU.sparse.numblocks") {
            if decimal(n) != Some(numbers.len() as u64 / 2) {
                return Err(self.fatal(
                    at,
                    Some(&name),
                    "GNU.sparse.numblocks does not match the sparse map",
                ));
            }
        }
        Ok((
            real,
            numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
        ))
    }

    /// The pax 1.0 map: decimal lines at the start of the data, padded to
    /// a block.
    fn pax1_map(&mut self, at: u64, pax: &Pax) -> Result<(u64, Vec<(u64, u64)>)> {
        let name = self.member_name.clone();
        if pax
            .sparse_value(b"GNU.sparse.minor")
            .is_some_and(|m| m != b"0")
        {
            return Err(self.fatal(
                at,
                Some(&name),
                "unknown pax sparse format version (only 0.0, 0.1 and 1.0 are read)",
            ));
        }
        let real = pax
            .sparse_value(b"GNU.sparse.realsize")
            .or_else(|| pax.sparse_value(b"GNU.sparse.size"))
            .and_then(decimal);
        let Some(real) = real else {
            return Err(self.fatal(at, Some(&name), "the sparse member has no size record"));
        };
        let mut block = [0u8; BLOCK];
        let mut pos = BLOCK;
        let mut numbers: Vec<u64> = Vec::new();
        let mut want: Option<u64> = None;
        loop {
            if let Some(n) = want {
                if numbers.len() as u64 == n * 2 {
                    break;
                }
            }
            // One decimal number up to a newline.
            let mut digits: Vec<u8> = Vec::new();
            loop {
                if pos == BLOCK {
                    if self.body.left < BLOCK as u64 {
                        return Err(self.fatal(
                            at,
                            Some(&name),
                            "the sparse map runs past the member's data",
                        ));
                    }
                    if self
                        .body
                        .fill(&mut block)
                        .map_err(|e| input_error(&self.name, e))?
                        < BLOCK
                    {
                        return Err(self.fatal(
                            at,
                            Some(&name),
                            "the tar stream ends inside the sparse map",
                        ));
                    }
                    self.body.left -= BLOCK as u64;
                    pos = 0;
                }
                let c = block[pos];
                pos += 1;
                if c == b'\n' {
                    break;
                }
                if !c.is_ascii_digit() || digits.len() >= 20 {
                    return Err(self.fatal(at, Some(&name), "the sparse map is malformed"));
                }
                digits.push(c);
            }
            let Some(v) = decimal(&digits) else {
                return Err(self.fatal(at, Some(&name), "the sparse map is malformed"));
            };
            match want {
                None => {
                    if v > MAX_SPARSE_SEGMENTS as u64 {
                        return Err(self.fatal(
                            at,
                            Some(&name),
                            format!(
                                "the sparse map has {v} segments, more than {MAX_SPARSE_SEGMENTS}"
                            ),
                        ));
                    }
                    want = Some(v);
                }
                Some(_) => numbers.push(v),
            }
        }
        Ok((
            real,
            numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
        ))
    }
}

/// An I/O error reading the tar stream, naming the stream.
fn input_error(name: &[u8], source: io::Error) -> Error {
    use std::os::unix::ffi::OsStrExt;
    Error::Io {
        path: Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name))),
        source,
    }
}

/// A member name as stored: leading `/` removed (the flag says so), `.`
/// components and empty ones dropped; an error for `..`.
fn normalize(name: &[u8]) -> std::result::Result<(Vec<u8>, bool), String> {
    let slash = name.first() == Some(&b'/');
    let mut out = Vec::with_capacity(name.len());
    for c in name.split(|&b| b == b'/') {
        if c.is_empty() || c == b"." {
            continue;
        }
        if c == b".." {
            return Err("member name contains '..'; skipped".into());
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    Ok((out, slash))
}

impl<R: Read> EntrySource for TarSource<R> {
    fn next(&mut self) -> Result<Option<SourceItem<'_>>> {
        loop {
            if let Some(p) = self.queue.pop_front() {
                return Ok(Some(match p {
                    Pending::Problem(path, message) => SourceItem::Problem { path, message },
                    Pending::Notice(path, message) => SourceItem::Notice { path, message },
                }));
            }
            if let Some(r) = self.ready.take() {
                return Ok(Some(match r {
                    Ready::File { path, entry } => SourceItem::File {
                        path,
                        entry,
                        data: &mut self.body,
                    },
                    Ready::Dir { path, entry } => SourceItem::EnterDir { path, entry },
                    Ready::Other { path, entry } => SourceItem::Other { path, entry },
                }));
            }
            if self.done {
                return Ok(None);
            }
            self.advance()?;
        }
    }

    fn ordered(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::Extent;
    use crate::{Archive, CreateOptions, SnapshotMeta, Writer};
    use proptest::prelude::*;

    /// A ustar header block with a valid checksum.
    fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name);
        b[100..107].copy_from_slice(b"0000644");
        b[108..115].copy_from_slice(b"0001750");
        b[116..123].copy_from_slice(b"0001750");
        b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        b[136..147].copy_from_slice(b"14000000000");
        b[156] = typeflag;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        seal(&mut b);
        b
    }

    fn seal(b: &mut [u8; BLOCK]) {
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|&x| x as u32).sum();
        b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    }

    fn member(name: &[u8], typeflag: u8, data: &[u8]) -> Vec<u8> {
        let mut v = header(name, typeflag, data.len() as u64).to_vec();
        v.extend_from_slice(data);
        v.resize(v.len().div_ceil(BLOCK) * BLOCK, 0);
        v
    }

    fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = [b" ", k.as_bytes(), b"=", v, b"\n"].concat();
            let mut n = body.len() + 1;
            while format!("{n}").len() + body.len() != n {
                n += 1;
            }
            data.extend_from_slice(format!("{n}").as_bytes());
            data.extend_from_slice(&body);
        }
        member(b"PaxHeaders/x", b'x', &data)
    }

    /// An in-memory archive file the writer can hand back after commit.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl crate::store::Sink for Shared {}

    #[test]
    fn numbers_octal_base256_and_garbage() {
        assert_eq!(number(b"0000644\0"), Some(0o644));
        assert_eq!(number(b"  644 \0"), Some(0o644));
        assert_eq!(number(b"\0\0\0\0"), Some(0));
        assert_eq!(number(b"64x\0"), None);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(number(&[0xff; 8]), Some(-1));
        assert_eq!(
            number(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }

    #[test]
    fn pax_times_keep_nanoseconds_and_negatives() {
        assert_eq!(
            pax_time(b"1796134947.016760868"),
            Some(Timestamp {
                sec: 1796134947,
                nsec: 16760868
            })
        );
        assert_eq!(pax_time(b"12"), Some(Timestamp { sec: 12, nsec: 0 }));
        assert_eq!(
            pax_time(b"-1.25"),
            Some(Timestamp {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(pax_time(b"1.x"), None);
        assert_eq!(pax_time(b""), None);
    }

    #[test]
    fn base64_and_url_decoding() {
        assert_eq!(base64(b"aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64(b"aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(base64(b"AA=="), Some(vec![0]));
        assert_eq!(base64(b"a"), None);
        assert_eq!(base64(b"a=b="), None);
        assert_eq!(url_decode(b"user.a%20b%3d"), b"user.a b=".to_vec());
        assert_eq!(url_decode(b"100%"), b"100%".to_vec());
    }

    #[test]
    fn gnu_and_star_acl_texts_become_the_kernel_form() {
        // What GNU tar 1.34 --acls writes, and star's form with ids.
        let gnu = acl_to_binary(
            b"user::rw-\nuser:1001:r--\ngroup::r--\nmask::r--\nother::---\n",
            false,
        )
        .unwrap()
        .unwrap();
        let star = acl_to_binary(
            b"user::rw-,user:1001:r--:1001,group::r--,mask::r--,other::---",
            false,
        )
        .unwrap()
        .unwrap();
        let mut want = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 1001),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            want.extend_from_slice(&tag.to_le_bytes());
            want.extend_from_slice(&perm.to_le_bytes());
            want.extend_from_slice(&id.to_le_bytes());
        }
        assert_eq!(gnu, want);
        assert_eq!(star, want);
        // Only the permission bits: no attribute; a default ACL is kept.
        assert_eq!(
            acl_to_binary(b"user::rwx\ngroup::r-x\nother::r-x\n", false),
            Ok(None)
        );
        assert!(acl_to_binary(b"user::rwx\ngroup::r-x\nother::r-x\n", true)
            .unwrap()
            .is_some());
        assert!(acl_to_binary(b"user::rwx\nother::r-x\n", false).is_err());
        assert!(acl_to_binary(
            b"user:nosuchuser-xyz:rwx\nuser::rwx\ngroup::r-x\nother::r-x",
            false
        )
        .is_err());
    }

    #[test]
    fn pax_records_are_bounded_by_their_header() {
        assert_eq!(
            pax_records(b"11 path=ab\n").unwrap(),
            vec![(b"path".to_vec(), b"ab".to_vec())]
        );
        assert!(pax_records(b"99999999999999999999999 path=x\n").is_err());
        assert!(pax_records(b"50 path=x\n").is_err());
        assert!(pax_records(b"3 p\n").is_err());
        assert!(pax_records(b"11 path=abX").is_err());
    }

    /// The snapshot's (path, entry) list in walk order, the problems, and
    /// the archive.
    type Imported = (Vec<(Vec<u8>, Entry)>, Vec<(Vec<u8>, String)>, Archive);

    fn entries(tar: &[u8]) -> Result<Imported> {
        let file = Shared::default();
        let mut w = Writer::create_stream(file.clone(), CreateOptions::default())?;
        let mut src = TarSource::new(tar);
        let (_, out) = w.add_snapshot_from(
            &mut src,
            vec![b"t".to_vec()],
            &SnapshotMeta::default(),
            &crate::progress::NoProgress,
        )?;
        w.commit()?;
        let bytes = std::mem::take(&mut *file.0.lock().unwrap());
        let a = Archive::from_vec(bytes, None)?;
        let snap = a.find_snapshot("latest")?;
        let mut list = Vec::new();
        a.walk(&snap, |p, e| {
            list.push((p.to_vec(), e.clone()));
            Ok(())
        })?;
        Ok((list, out.errors, a))
    }

    fn content(a: &Archive, e: &Entry) -> Vec<u8> {
        let Payload::File(c) = &e.payload else {
            panic!("not a file")
        };
        let mut v = Vec::new();
        for x in a.extents(c, e.size).unwrap() {
            match x {
                Extent::Data { id, .. } => v.extend(a.read_chunk(&id).unwrap()),
                Extent::Hole { len } => v.resize(v.len() + len as usize, 0),
            }
        }
        v
    }

    #[test]
    fn sparse_pax_1_0_becomes_holes() {
        let mut data = b"2\n4096\n5\n10000\n0\n".to_vec();
        data.resize(BLOCK, 0);
        data.extend_from_slice(b"hello");
        let mut tar = pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"dir/sparse"),
            ("GNU.sparse.realsize", b"10000"),
        ]);
        let mut m = header(b"dir/GNUSparseFile.1/sparse", b'0', data.len() as u64).to_vec();
        m.extend_from_slice(&data);
        m.resize(m.len().div_ceil(BLOCK) * BLOCK, 0);
        tar.extend(m);
        tar.extend([0u8; 1024]);
        let (list, errors, a) = entries(&tar).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].0, b"dir/sparse");
        let e = &list[1].1;
        assert_eq!(e.size, 10000);
        let body = content(&a, e);
        let mut want = vec![0u8; 10000];
        want[4096..4101].copy_from_slice(b"hello");
        assert_eq!(body, want);
        let Payload::File(Content::Inline(x)) = &e.payload else {
            panic!()
        };
        assert!(matches!(x[0], Extent::Hole { len: 4096 }), "{x:?}");
    }

    #[test]
    fn a_sparse_map_past_the_real_size_is_an_error_naming_the_member() {
        let mut tar = pax(&[
            ("GNU.sparse.size", b"10"),
            ("GNU.sparse.numblocks", b"1"),
            ("GNU.sparse.map", b"0,100"),
        ]);
        tar.extend(member(b"sp", b'0', &[7u8; 100]));
        tar.extend([0u8; 1024]);
        let e = entries(&tar).err().expect("refused").to_string();
        assert!(
            e.contains("member 'sp'") && e.contains("past the file's size"),
            "{e}"
        );
    }

    /// A small valid tar with a pax header, a directory, a file, a
    /// symlink, a hard link and an old GNU sparse member.
    fn sample() -> Vec<u8> {
        let mut t = pax(&[("mtime", b"1.5"), ("SCHILY.xattr.user.k", b"v")]);
        t.extend(member(b"d/", b'5', b""));
        t.extend(member(b"d/f", b'0', b"content"));
        let mut l = header(b"d/l", b'2', 0);
        l[157..158].copy_from_slice(b"f");
        seal(&mut l);
        t.extend(l);
        let mut h = header(b"d/h", b'1', 0);
        h[157..160].copy_from_slice(b"d/f");
        seal(&mut h);
        t.extend(h);
        let mut s = header(b"d/s", b'S', 3);
        s[257..265].copy_from_slice(b"ustar  \0");
        s[386..397].copy_from_slice(b"00000000010");
        s[398..409].copy_from_slice(b"00000000003");
        s[483..494].copy_from_slice(b"00000000020");
        seal(&mut s);
        t.extend(s);
        let mut d = b"abc".to_vec();
        d.resize(BLOCK, 0);
        t.extend(d);
        t.extend([0u8; 1024]);
        t
    }

    #[test]
    fn the_sample_reads_back() {
        let (list, errors, a) = entries(&sample()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&[u8]> = list.iter().map(|(p, _)| p.as_slice()).collect();
        assert_eq!(names, [&b"d"[..], b"d/f", b"d/h", b"d/l", b"d/s"]);
        let f = &list[1].1;
        assert_eq!(content(&a, f), b"content");
        // d/f sorts before d/h: d/f is the file, d/h the link.
        assert_eq!(list[2].1.payload, Payload::Hardlink(b"d/f".to_vec()));
        assert_eq!(f.nlink, 2);
        assert_eq!(list[3].1.payload, Payload::Symlink(b"f".to_vec()));
        let mut s = vec![0u8; 16];
        s[8..11].copy_from_slice(b"abc");
        assert_eq!(content(&a, &list[4].1), s);
        let dir = &list[0].1;
        assert_eq!(
            dir.mtime,
            Timestamp {
                sec: 1,
                nsec: 500_000_000
            }
        );
        assert_eq!(dir.xattrs, vec![(b"user.k".to_vec(), b"v".to_vec())]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = entries(&bytes);
        }

        #[test]
        fn mutated_tars_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
            reseal in any::<bool>(),
        ) {
            let mut t = sample();
            for (at, v) in edits {
                let i = at % t.len();
                t[i] = v;
                if reseal {
                    // Repair the checksum of the block hit, so the edit
                    // reaches the fields behind it.
                    let start = i / BLOCK * BLOCK;
                    let mut b = [0u8; BLOCK];
                    b.copy_from_slice(&t[start..start + BLOCK]);
                    seal(&mut b);
                    t[start..start + BLOCK].copy_from_slice(&b);
                }
            }
            t.truncate(cut % (t.len() + 1));
            let _ = entries(&t);
        }
    }
}
