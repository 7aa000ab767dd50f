//! On-disk structures of the ptar format, v2: byte layouts only.
//!
//! Everything here parses from and serializes to byte slices. There is no I/O,
//! no cryptography and no policy: those live in `crypto`, `codec`, `store` and
//! above. Every layout below is described in `spec/ptar-format.md`; the section
//! numbers in the module docs point there.
//!
//! An archive is, in file order:
//!
//! ```text
//! header | generation 1 | generation 2 | ... | generation G
//! generation = frames: blob records | index run | snapshot run | [key slots]
//!              then the footer: manifest frame | trailer
//! ```
//!
//! All integers are little-endian. Parsers never trust a length before checking
//! it against the bytes actually present and against the limits in [`limits`].

pub mod filemap;
pub mod frame;
pub mod header;
pub mod manifest;
pub mod record;
pub mod run;
pub mod snapshot;
pub mod tree;

use std::fmt;

use byteorder::{ByteOrder, LittleEndian, WriteBytesExt};

/// The major format version this library reads and writes.
pub const FORMAT_MAJOR: u16 = 2;
/// The minor format version this library writes.
pub const FORMAT_MINOR: u16 = 0;

/// Limits every reader enforces (spec §12).
pub mod limits {
    /// Largest plaintext of one blob or one record, in bytes (16 MiB).
    pub const MAX_BLOB_LEN: u32 = 16 * 1024 * 1024;
    /// Longest name of a directory entry, in bytes.
    pub const MAX_NAME_LEN: usize = 4096;
    /// Longest symlink or hard-link target, in bytes.
    pub const MAX_TARGET_LEN: usize = 65536;
    /// Longest extended-attribute name, in bytes.
    pub const MAX_XATTR_NAME_LEN: usize = 1024;
    /// Largest extended-attribute value, in bytes.
    pub const MAX_XATTR_VALUE_LEN: usize = 1024 * 1024;
    /// Deepest directory nesting a reader follows.
    pub const MAX_TREE_DEPTH: usize = 8192;
    /// Deepest page nesting inside one directory or one file map.
    pub const MAX_PAGE_LEVELS: u8 = 6;
    /// Most items in one tree page or file-map page.
    pub const MAX_PAGE_ITEMS: u32 = 1 << 20;
    /// Most key slots in a header or key-slot table.
    pub const MAX_KEY_SLOTS: u16 = 64;
    /// Largest header.
    pub const MAX_HEADER_LEN: u32 = 64 * 1024;
    /// Most snapshots in an archive.
    pub const MAX_SNAPSHOTS: u32 = 1 << 24;
    /// Most generations in one archive.
    pub const MAX_GENERATIONS: u64 = 1 << 24;
    /// Argon2id caps, checked before any key is derived.
    pub const MAX_ARGON2_M_KIB: u32 = 2 * 1024 * 1024;
    /// Argon2id time cost cap.
    pub const MAX_ARGON2_T: u32 = 16;
    /// Argon2id parallelism cap.
    pub const MAX_ARGON2_P: u32 = 16;
    /// Most Argon2id work the whole set of key slots in force may ask for,
    /// in KiB·passes (the sum of `m·t` over its slots): 2^23, 8 GiB·passes,
    /// about ten slots at the default costs (spec §5.2).
    pub const MAX_ARGON2_SET_WORK: u64 = 1 << 23;
}

/// A 32-byte content id (BLAKE3 output).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The all-zero id, used where a field is absent.
    pub const ZERO: Id = Id([0; 32]);

    /// Lower-case hex of all 32 bytes.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The first 4 bytes in hex: the short form shown to users.
    pub fn short(&self) -> String {
        hex(&self.0[..4])
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Id> {
        let bytes = unhex(s)?;
        Some(Id(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Lower-case hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex decoding (either case); `None` on odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// What a blob holds (spec §3). The kind is part of the id's input and of the
/// record's associated data, so file content can never pass for metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A piece of file content cut by the chunker.
    Chunk = 1,
    /// A page of a file's extent list.
    FileMap = 2,
    /// A page of a directory.
    Tree = 3,
    /// A snapshot record.
    Snapshot = 4,
}

impl Kind {
    /// Parses the kind byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Chunk,
            2 => Kind::FileMap,
            3 => Kind::Tree,
            4 => Kind::Snapshot,
            _ => return None,
        })
    }

    /// The kind's name as shown to users.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chunk => "chunk",
            Kind::FileMap => "file-map",
            Kind::Tree => "tree",
            Kind::Snapshot => "snapshot",
        }
    }
}

/// How a record's plaintext was compressed (spec §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// Stored as is.
    Stored = 0,
    /// LZ4 block format (no frame, no size prefix).
    Lz4 = 1,
    /// One Zstandard frame (RFC 8878).
    Zstd = 2,
}

impl Codec {
    /// Parses the codec byte.
    pub fn from_u8(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Stored),
            1 => Some(Codec::Lz4),
            2 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// A parse failure inside one structure; callers attach the [`crate::Region`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl Malformed {
    /// Wraps the detail in a `Corrupt` error at `region`.
    pub fn at(self, region: crate::Region) -> crate::Error {
        crate::Error::Corrupt {
            region,
            detail: self.0,
        }
    }
}

pub(crate) fn malformed<T>(msg: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(msg.into()))
}

/// A bounds-checked little-endian reader over a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes, or fails naming `what`.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        if n > self.remaining() {
            return malformed(format!(
                "{what}: needs {n} bytes, {} left",
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Malformed> {
        Ok(self.take(N, what)?.try_into().expect("length checked"))
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }

    /// Reads a little-endian u16.
    pub fn u16(&mut self, what: &str) -> Result<u16, Malformed> {
        Ok(LittleEndian::read_u16(self.take(2, what)?))
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self, what: &str) -> Result<u32, Malformed> {
        Ok(LittleEndian::read_u32(self.take(4, what)?))
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self, what: &str) -> Result<u64, Malformed> {
        Ok(LittleEndian::read_u64(self.take(8, what)?))
    }

    /// Reads a little-endian i64.
    pub fn i64(&mut self, what: &str) -> Result<i64, Malformed> {
        Ok(LittleEndian::read_i64(self.take(8, what)?))
    }

    /// Reads a 32-byte id.
    pub fn id(&mut self, what: &str) -> Result<Id, Malformed> {
        Ok(Id(self.array(what)?))
    }

    /// Reads a u16 length, checks it against `max`, then takes that many bytes.
    pub fn bytes16(&mut self, max: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let n = self.u16(what)? as usize;
        if n > max {
            return malformed(format!("{what}: length {n} exceeds the limit {max}"));
        }
        self.take(n, what)
    }

    /// Reads a u32 length, checks it against `max`, then takes that many bytes.
    pub fn bytes32(&mut self, max: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let n = self.u32(what)? as usize;
        if n > max {
            return malformed(format!("{what}: length {n} exceeds the limit {max}"));
        }
        self.take(n, what)
    }

    /// Like [`Reader::bytes32`], for UTF-8 text.
    pub fn string32(&mut self, max: usize, what: &str) -> Result<String, Malformed> {
        let b = self.bytes32(max, what)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => malformed(format!("{what}: not valid UTF-8")),
        }
    }

    /// Reads a u32 item count and checks that at least `min_item_len` bytes
    /// per item remain, so a hostile count cannot cause a huge allocation.
    pub fn count(&mut self, min_item_len: usize, max: u32, what: &str) -> Result<usize, Malformed> {
        let n = self.u32(what)?;
        if n > max {
            return malformed(format!("{what}: count {n} exceeds the limit {max}"));
        }
        let n = n as usize;
        if n.saturating_mul(min_item_len) > self.remaining() {
            return malformed(format!("{what}: count {n} does not fit in the bytes left"));
        }
        Ok(n)
    }

    /// Fails unless `n` bytes that are all zero follow.
    pub fn zeros(&mut self, n: usize, what: &str) -> Result<(), Malformed> {
        if self.take(n, what)?.iter().any(|&b| b != 0) {
            return malformed(format!("{what}: reserved bytes are not zero"));
        }
        Ok(())
    }

    /// Reads an extension list (u16 count; per extension u16 tag, u32 length,
    /// bytes). Tags are strictly increasing (spec §13.2): one out of order or
    /// repeated makes the structure invalid. Version 1 defines none: unknown
    /// extensions are skipped unless their tag has bit 15 (critical) set,
    /// which makes the structure invalid.
    pub fn extensions(&mut self) -> Result<(), Malformed> {
        let count = self.u16("extension count")?;
        let mut previous: Option<u16> = None;
        for _ in 0..count {
            let tag = self.u16("extension tag")?;
            if previous.is_some_and(|p| tag <= p) {
                return malformed(format!(
                    "extension tag {tag:#x} is not above the tag before it"
                ));
            }
            previous = Some(tag);
            let len = self.u32("extension length")? as usize;
            self.take(len, "extension")?;
            if tag & 0x8000 != 0 {
                return malformed(format!("unknown critical extension {tag:#x}"));
            }
        }
        Ok(())
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self, what: &str) -> Result<(), Malformed> {
        if self.remaining() != 0 {
            return malformed(format!("{what}: {} trailing bytes", self.remaining()));
        }
        Ok(())
    }
}

/// Little-endian append helpers for building structures.
pub trait Put {
    /// Appends one byte.
    fn put_u8(&mut self, v: u8);
    /// Appends a u16.
    fn put_u16(&mut self, v: u16);
    /// Appends a u32.
    fn put_u32(&mut self, v: u32);
    /// Appends a u64.
    fn put_u64(&mut self, v: u64);
    /// Appends an i64.
    fn put_i64(&mut self, v: i64);
    /// Appends raw bytes.
    fn put(&mut self, b: &[u8]);
    /// Appends a u16 length and the bytes. Callers check the limit first.
    fn put_bytes16(&mut self, b: &[u8]) {
        self.put_u16(u16::try_from(b.len()).expect("length checked by caller"));
        self.put(b);
    }
    /// Appends a u32 length and the bytes.
    fn put_bytes32(&mut self, b: &[u8]) {
        self.put_u32(u32::try_from(b.len()).expect("length checked by caller"));
        self.put(b);
    }
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.write_u16::<LittleEndian>(v)
            .expect("writing to a Vec cannot fail");
    }
    fn put_u32(&mut self, v: u32) {
        self.write_u32::<LittleEndian>(v)
            .expect("writing to a Vec cannot fail");
    }
    fn put_u64(&mut self, v: u64) {
        self.write_u64::<LittleEndian>(v)
            .expect("writing to a Vec cannot fail");
    }
    fn put_i64(&mut self, v: i64) {
        self.write_i64::<LittleEndian>(v)
            .expect("writing to a Vec cannot fail");
    }
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = Id([0xab; 32]);
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.short(), "abababab");
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }

    /// An extension list: count, then (tag, body) as u16 tag, u32 length, bytes.
    fn extension_list(items: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u16(items.len() as u16);
        for (tag, body) in items {
            b.put_u16(*tag);
            b.put_u32(body.len() as u32);
            b.put(body);
        }
        b
    }

    fn read_extensions(b: &[u8]) -> Result<(), Malformed> {
        let mut r = Reader::new(b);
        r.extensions()?;
        r.finish("extensions")
    }

    #[test]
    fn extension_tags_are_strictly_increasing() {
        // Unknown non-critical extensions in increasing order are skipped.
        read_extensions(&extension_list(&[(1, b"a"), (2, b""), (0x7fff, b"zz")])).unwrap();
        // Out of order, or the same tag twice: rejected, critical or not.
        for bad in [
            extension_list(&[(2, b"a"), (1, b"b")]),
            extension_list(&[(3, b"a"), (3, b"a")]),
            extension_list(&[(5, b""), (5, b"")]),
        ] {
            let e = read_extensions(&bad).unwrap_err();
            assert!(e.0.contains("not above"), "{}", e.0);
        }
        // A critical tag is still refused when it comes in order.
        let e = read_extensions(&extension_list(&[(1, b""), (0x8001, b"")])).unwrap_err();
        assert!(e.0.contains("critical"), "{}", e.0);
    }

    #[test]
    fn reader_refuses_oversized_counts() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0x00, 1, 2]);
        assert!(r.count(1, u32::MAX, "items").is_err());
    }
}
