//! Directories: tree pages holding sorted entries (spec §13).
//!
//! A directory is one tree page, or, when large, a small B-tree of pages. A
//! page starts with:
//!
//! ```text
//!   1  level (0 = leaf page of entries; 1.. = interior page of child pages)
//!   3  reserved (MUST be 0)
//!   4  item count
//! ```
//!
//! A leaf page then holds `count` entries sorted by name (bytewise, strictly
//! increasing). An interior page holds `count` children, each
//! `u16 length, first name of the child, 32-byte child page id, u64 entries below`,
//! sorted by first name.
//!
//! Entry:
//!
//! ```text
//!   2+n  name (u16 length, bytes; no '/', no NUL, not "." or "..", not empty)
//!   1    type (1 file, 2 directory, 3 symlink, 4 hard link, 5 char device,
//!              6 block device, 7 fifo, 8 socket)
//!   1    reserved (MUST be 0)
//!   4    permission bits (mode & 0o7777; higher bits MUST be 0)
//!   4    uid          4 gid
//!   2+n  user name    2+n group name   (u16 length, at most 255 bytes each)
//!   12   mtime (i64 seconds, u32 nanoseconds < 10^9)
//!   12   atime        12 ctime
//!   8    device       8 inode        4 link count   (as seen on the source)
//!   8    size (regular files: content length; others: 0)
//!   4    xattr count, then per xattr: u16 name length, name, u32 value length, value
//!        (sorted by name, strictly increasing; POSIX ACLs travel as
//!        system.posix_acl_access / system.posix_acl_default)
//!   ...  payload by type:
//!        file:       1 form (0 = extents inline: u32 count, extents; 1 = file map: 32-byte id)
//!        directory:  32-byte id of the directory's top tree page
//!        symlink:    u32 length, target bytes (not empty, no NUL)
//!        hard link:  u32 length, path of the first link relative to the snapshot root
//!        devices:    u32 major, u32 minor
//!        fifo, socket: nothing
//!   2    extension count, then per extension: u16 tag (bit 15 = critical), u32 length, bytes
//! ```
//!
//! An extent is `u8 0, u32 length, 32-byte chunk id` (data) or `u8 1, u64 length` (hole,
//! at most 2^63 - 1 bytes).

use super::{limits::*, malformed, Id, Malformed, Put, Reader};

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryType {
    /// Regular file.
    File = 1,
    /// Directory.
    Dir = 2,
    /// Symbolic link.
    Symlink = 3,
    /// Another name of a file stored earlier in the same snapshot.
    Hardlink = 4,
    /// Character device.
    CharDevice = 5,
    /// Block device.
    BlockDevice = 6,
    /// Named pipe.
    Fifo = 7,
    /// Unix socket (recorded, never recreated).
    Socket = 8,
}

impl EntryType {
    /// Parses the type byte.
    pub fn from_u8(b: u8) -> Option<EntryType> {
        Some(match b {
            1 => EntryType::File,
            2 => EntryType::Dir,
            3 => EntryType::Symlink,
            4 => EntryType::Hardlink,
            5 => EntryType::CharDevice,
            6 => EntryType::BlockDevice,
            7 => EntryType::Fifo,
            8 => EntryType::Socket,
            _ => return None,
        })
    }

    /// The `ls -l` type letter.
    pub fn letter(self) -> char {
        match self {
            EntryType::File | EntryType::Hardlink => '-',
            EntryType::Dir => 'd',
            EntryType::Symlink => 'l',
            EntryType::CharDevice => 'c',
            EntryType::BlockDevice => 'b',
            EntryType::Fifo => 'p',
            EntryType::Socket => 's',
        }
    }
}

/// A time with nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub sec: i64,
    /// Nanoseconds, below 10^9.
    pub nsec: u32,
}

/// A piece of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// Bytes stored as a chunk blob.
    Data {
        /// Length of the chunk.
        len: u32,
        /// Chunk id.
        id: Id,
    },
    /// A run of zeros not stored (a hole of a sparse file).
    Hole {
        /// Length of the hole.
        len: u64,
    },
}

impl Extent {
    /// Bytes this extent covers.
    pub fn len(&self) -> u64 {
        match self {
            Extent::Data { len, .. } => *len as u64,
            Extent::Hole { len } => *len,
        }
    }

    /// Whether the extent covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn write(&self, b: &mut Vec<u8>) {
        match self {
            Extent::Data { len, id } => {
                b.put_u8(0);
                b.put_u32(*len);
                b.put(&id.0);
            }
            Extent::Hole { len } => {
                b.put_u8(1);
                b.put_u64(*len);
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Extent, Malformed> {
        match r.u8("extent tag")? {
            0 => {
                let len = r.u32("extent length")?;
                if len == 0 || len > MAX_BLOB_LEN {
                    return malformed("data extent length out of range");
                }
                Ok(Extent::Data {
                    len,
                    id: r.id("chunk id")?,
                })
            }
            1 => {
                let len = r.u64("hole length")?;
                if len == 0 || len > i64::MAX as u64 {
                    return malformed("hole length out of range");
                }
                Ok(Extent::Hole { len })
            }
            t => malformed(format!("unknown extent tag {t}")),
        }
    }
}

/// Where a file's content is described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// The extents, in the entry itself.
    Inline(Vec<Extent>),
    /// A file map blob (for files with many extents).
    Map(Id),
}

/// What follows the common fields of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// File content.
    File(Content),
    /// The directory's top tree page.
    Dir(Id),
    /// A symlink target.
    Symlink(Vec<u8>),
    /// Path (from the snapshot root) of the entry this is a hard link to.
    Hardlink(Vec<u8>),
    /// A device node.
    Device {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// Nothing (fifo, socket).
    None,
}

/// One directory entry with all its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Name within the directory.
    pub name: Vec<u8>,
    /// Type.
    pub kind: EntryType,
    /// Permission bits (0o7777).
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name (may be empty).
    pub user: Vec<u8>,
    /// Group name (may be empty).
    pub group: Vec<u8>,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time.
    pub atime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Device of the source file system.
    pub dev: u64,
    /// Inode on the source file system.
    pub ino: u64,
    /// Link count on the source.
    pub nlink: u32,
    /// Content length (regular files and hard links to them), else 0.
    pub size: u64,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Type-specific payload.
    pub payload: Payload,
}

/// Checks a name against spec §13.2.
pub fn check_name(name: &[u8]) -> Result<(), Malformed> {
    if name.is_empty() || name == b"." || name == b".." {
        return malformed("empty, '.' or '..' entry name");
    }
    if name.len() > MAX_NAME_LEN {
        return malformed("entry name too long");
    }
    if name.iter().any(|&c| c == b'/' || c == 0) {
        return malformed("entry name contains '/' or NUL");
    }
    Ok(())
}

/// Checks a hard-link target path: valid names joined by '/'.
pub fn check_link_path(path: &[u8]) -> Result<(), Malformed> {
    if path.is_empty() || path.len() > MAX_TARGET_LEN {
        return malformed("hard-link target length out of range");
    }
    for c in path.split(|&b| b == b'/') {
        check_name(c)?;
    }
    Ok(())
}

fn write_time(b: &mut Vec<u8>, t: Timestamp) {
    b.put_i64(t.sec);
    b.put_u32(t.nsec);
}

fn read_time(r: &mut Reader<'_>, what: &str) -> Result<Timestamp, Malformed> {
    let sec = r.i64(what)?;
    let nsec = r.u32(what)?;
    if nsec >= 1_000_000_000 {
        return malformed(format!("{what}: nanoseconds out of range"));
    }
    Ok(Timestamp { sec, nsec })
}

impl Timestamp {
    /// The time `ns` nanoseconds after the Unix epoch (before it when
    /// negative).
    pub fn from_ns(ns: i64) -> Timestamp {
        Timestamp {
            sec: ns.div_euclid(1_000_000_000),
            nsec: ns.rem_euclid(1_000_000_000) as u32,
        }
    }

    /// The current time (the epoch if the clock is set before it).
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }
}

/// Constructors and setters. Every entry is made by [`Entry::new`], so a new
/// field gets its default in one place; the `with_*` setters fill in the
/// rest.
impl Entry {
    /// An entry called `name` of type `kind` carrying `payload`, every other
    /// field empty: mode 0, uid and gid 0 without names, every time at the
    /// epoch, no source device, inode or link count, size 0, no extended
    /// attributes.
    pub fn new(name: impl Into<Vec<u8>>, kind: EntryType, payload: Payload) -> Entry {
        Entry {
            name: name.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: Vec::new(),
            group: Vec::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            dev: 0,
            ino: 0,
            nlink: 0,
            size: 0,
            xattrs: Vec::new(),
            payload,
        }
    }

    /// A regular file of `size` bytes whose extents are `content`.
    pub fn file(name: impl Into<Vec<u8>>, size: u64, content: Content) -> Entry {
        Entry::new(name, EntryType::File, Payload::File(content)).with_size(size)
    }

    /// A directory whose top tree page is `tree`.
    pub fn directory(name: impl Into<Vec<u8>>, tree: Id) -> Entry {
        Entry::new(name, EntryType::Dir, Payload::Dir(tree))
    }

    /// A symlink to `target`.
    pub fn symlink(name: impl Into<Vec<u8>>, target: impl Into<Vec<u8>>) -> Entry {
        Entry::new(name, EntryType::Symlink, Payload::Symlink(target.into()))
    }

    /// A directory no source describes (the snapshot root, a parent made up
    /// for an entry whose parents were not given): mode 0755, owned by
    /// root, one link, every time `time`. Its tree is [`Id::ZERO`] until
    /// the directory is written.
    pub fn synthetic_dir(name: impl Into<Vec<u8>>, time: Timestamp) -> Entry {
        Entry::directory(name, Id::ZERO)
            .with_mode(0o755)
            .with_times(time, time, time)
            .with_source(0, 0, 1)
    }

    /// Sets the permission bits.
    pub fn with_mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    /// Sets the owner: user id and user name.
    pub fn with_owner(mut self, uid: u32, user: impl Into<Vec<u8>>) -> Entry {
        self.uid = uid;
        self.user = user.into();
        self
    }

    /// Sets the group: group id and group name.
    pub fn with_group(mut self, gid: u32, group: impl Into<Vec<u8>>) -> Entry {
        self.gid = gid;
        self.group = group.into();
        self
    }

    /// Sets the modification, access and status change times.
    pub fn with_times(mut self, mtime: Timestamp, atime: Timestamp, ctime: Timestamp) -> Entry {
        self.mtime = mtime;
        self.atime = atime;
        self.ctime = ctime;
        self
    }

    /// Sets where the entry was found: device, inode and link count on the
    /// source file system.
    pub fn with_source(mut self, dev: u64, ino: u64, nlink: u32) -> Entry {
        self.dev = dev;
        self.ino = ino;
        self.nlink = nlink;
        self
    }

    /// Sets the content length.
    pub fn with_size(mut self, size: u64) -> Entry {
        self.size = size;
        self
    }

    /// Sets the extended attributes (sorted by name).
    pub fn with_xattrs(mut self, xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Entry {
        self.xattrs = xattrs;
        self
    }
}

impl Entry {
    /// Serializes the entry.
    pub fn write(&self, b: &mut Vec<u8>) {
        b.put_bytes16(&self.name);
        b.put_u8(self.kind as u8);
        b.put_u8(0);
        b.put_u32(self.mode);
        b.put_u32(self.uid);
        b.put_u32(self.gid);
        b.put_bytes16(&self.user);
        b.put_bytes16(&self.group);
        write_time(b, self.mtime);
        write_time(b, self.atime);
        write_time(b, self.ctime);
        b.put_u64(self.dev);
        b.put_u64(self.ino);
        b.put_u32(self.nlink);
        b.put_u64(self.size);
        b.put_u32(self.xattrs.len() as u32);
        for (k, v) in &self.xattrs {
            b.put_bytes16(k);
            b.put_bytes32(v);
        }
        match &self.payload {
            Payload::File(Content::Inline(extents)) => {
                b.put_u8(0);
                b.put_u32(extents.len() as u32);
                for e in extents {
                    e.write(b);
                }
            }
            Payload::File(Content::Map(id)) => {
                b.put_u8(1);
                b.put(&id.0);
            }
            Payload::Dir(id) => b.put(&id.0),
            Payload::Symlink(t) | Payload::Hardlink(t) => b.put_bytes32(t),
            Payload::Device { major, minor } => {
                b.put_u32(*major);
                b.put_u32(*minor);
            }
            Payload::None => {}
        }
        b.put_u16(0);
    }

    /// Parses and validates one entry.
    pub fn read(r: &mut Reader<'_>) -> Result<Entry, Malformed> {
        let name = r.bytes16(MAX_NAME_LEN, "name")?.to_vec();
        check_name(&name)?;
        let t = r.u8("type")?;
        let Some(kind) = EntryType::from_u8(t) else {
            return malformed(format!("unknown entry type {t}"));
        };
        r.zeros(1, "entry reserved")?;
        let mode = r.u32("mode")?;
        if mode & !0o7777 != 0 {
            return malformed("mode has bits above 0o7777");
        }
        let uid = r.u32("uid")?;
        let gid = r.u32("gid")?;
        let user = r.bytes16(255, "user name")?.to_vec();
        let group = r.bytes16(255, "group name")?.to_vec();
        let mtime = read_time(r, "mtime")?;
        let atime = read_time(r, "atime")?;
        let ctime = read_time(r, "ctime")?;
        let dev = r.u64("device")?;
        let ino = r.u64("inode")?;
        let nlink = r.u32("link count")?;
        let size = r.u64("size")?;
        let nx = r.count(6, u32::MAX, "xattr count")?;
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(nx);
        for _ in 0..nx {
            let k = r.bytes16(MAX_XATTR_NAME_LEN, "xattr name")?.to_vec();
            let v = r.bytes32(MAX_XATTR_VALUE_LEN, "xattr value")?.to_vec();
            if k.is_empty() || k.contains(&0) {
                return malformed("bad xattr name");
            }
            if let Some((prev, _)) = xattrs.last() {
                if *prev >= k {
                    return malformed("xattrs are not sorted");
                }
            }
            xattrs.push((k, v));
        }
        let payload = match kind {
            EntryType::File => match r.u8("content form")? {
                0 => {
                    let n = r.count(9, MAX_PAGE_ITEMS, "extent count")?;
                    let mut extents = Vec::with_capacity(n);
                    let mut total: u64 = 0;
                    for _ in 0..n {
                        let e = Extent::read(r)?;
                        total = total
                            .checked_add(e.len())
                            .ok_or_else(|| Malformed("extent lengths overflow".into()))?;
                        extents.push(e);
                    }
                    if total != size {
                        return malformed("extents do not add up to the file size");
                    }
                    Payload::File(Content::Inline(extents))
                }
                1 => Payload::File(Content::Map(r.id("file map id")?)),
                f => return malformed(format!("unknown content form {f}")),
            },
            EntryType::Dir => Payload::Dir(r.id("tree id")?),
            EntryType::Symlink => {
                let t = r.bytes32(MAX_TARGET_LEN, "symlink target")?.to_vec();
                if t.is_empty() || t.contains(&0) {
                    return malformed("symlink target is empty or has NUL");
                }
                Payload::Symlink(t)
            }
            EntryType::Hardlink => {
                let t = r.bytes32(MAX_TARGET_LEN, "hard-link target")?.to_vec();
                check_link_path(&t)?;
                Payload::Hardlink(t)
            }
            EntryType::CharDevice | EntryType::BlockDevice => Payload::Device {
                major: r.u32("major")?,
                minor: r.u32("minor")?,
            },
            EntryType::Fifo | EntryType::Socket => Payload::None,
        };
        if !matches!(kind, EntryType::File | EntryType::Hardlink) && size != 0 {
            return malformed("only files have a size");
        }
        r.extensions()?;
        Ok(Entry::new(name, kind, payload)
            .with_mode(mode)
            .with_owner(uid, user)
            .with_group(gid, group)
            .with_times(mtime, atime, ctime)
            .with_source(dev, ino, nlink)
            .with_size(size)
            .with_xattrs(xattrs))
    }
}

/// A reference from an interior page to a child page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRef {
    /// Name of the first entry under the child.
    pub first_name: Vec<u8>,
    /// Child page id.
    pub id: Id,
    /// Entries under the child.
    pub entries: u64,
}

/// A parsed tree page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreePage {
    /// Entries.
    Leaf(Vec<Entry>),
    /// Child pages, at `level` (>= 1).
    Interior {
        /// Height above the leaves.
        level: u8,
        /// Children in name order.
        children: Vec<ChildRef>,
    },
}

impl TreePage {
    /// Serializes a page.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            TreePage::Leaf(entries) => {
                b.put_u8(0);
                b.put(&[0; 3]);
                b.put_u32(entries.len() as u32);
                for e in entries {
                    e.write(&mut b);
                }
            }
            TreePage::Interior { level, children } => {
                b.put_u8(*level);
                b.put(&[0; 3]);
                b.put_u32(children.len() as u32);
                for c in children {
                    b.put_bytes16(&c.first_name);
                    b.put(&c.id.0);
                    b.put_u64(c.entries);
                }
            }
        }
        b
    }

    /// Parses a page; names must strictly increase.
    pub fn parse(buf: &[u8]) -> Result<TreePage, Malformed> {
        let mut r = Reader::new(buf);
        let level = r.u8("page level")?;
        r.zeros(3, "page reserved")?;
        if level > MAX_PAGE_LEVELS {
            return malformed(format!("page level {level} too deep"));
        }
        let page = if level == 0 {
            let n = r.count(60, MAX_PAGE_ITEMS, "entry count")?;
            let mut entries: Vec<Entry> = Vec::with_capacity(n);
            for _ in 0..n {
                let e = Entry::read(&mut r)?;
                if let Some(prev) = entries.last() {
                    if prev.name >= e.name {
                        return malformed("tree entries are not sorted or repeat a name");
                    }
                }
                entries.push(e);
            }
            TreePage::Leaf(entries)
        } else {
            let n = r.count(43, MAX_PAGE_ITEMS, "child count")?;
            if n == 0 {
                return malformed("empty interior page");
            }
            let mut children: Vec<ChildRef> = Vec::with_capacity(n);
            for _ in 0..n {
                let first_name = r.bytes16(MAX_NAME_LEN, "first name")?.to_vec();
                check_name(&first_name)?;
                let c = ChildRef {
                    first_name,
                    id: r.id("child id")?,
                    entries: r.u64("entry count")?,
                };
                if let Some(prev) = children.last() {
                    if prev.first_name >= c.first_name {
                        return malformed("child pages are not sorted");
                    }
                }
                children.push(c);
            }
            TreePage::Interior { level, children }
        };
        r.finish("tree page")?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn file(name: &str) -> Entry {
        let content = Content::Inline(vec![
            Extent::Data {
                len: 4,
                id: Id([1; 32]),
            },
            Extent::Hole { len: 6 },
        ]);
        Entry::file(name, 10, content)
            .with_mode(0o644)
            .with_owner(1000, "me")
            .with_group(1000, "us")
            .with_times(
                Timestamp { sec: 5, nsec: 6 },
                Timestamp::default(),
                Timestamp::default(),
            )
            .with_source(1, 2, 1)
            .with_xattrs(vec![(b"user.a".to_vec(), b"1".to_vec())])
    }

    #[test]
    fn page_round_trip() {
        let mut d = file("d");
        d.kind = EntryType::Dir;
        d.size = 0;
        d.payload = Payload::Dir(Id([3; 32]));
        let page = TreePage::Leaf(vec![file("a"), d]);
        assert_eq!(TreePage::parse(&page.to_bytes()).unwrap(), page);
    }

    #[test]
    fn rejects_bad_names_and_order() {
        for bad in ["..", ".", "a/b", ""] {
            let page = TreePage::Leaf(vec![file(bad)]);
            assert!(TreePage::parse(&page.to_bytes()).is_err(), "{bad:?}");
        }
        let page = TreePage::Leaf(vec![file("b"), file("a")]);
        assert!(TreePage::parse(&page.to_bytes()).is_err());
        let page = TreePage::Leaf(vec![file("a"), file("a")]);
        assert!(TreePage::parse(&page.to_bytes()).is_err());
    }

    /// One entry in a leaf page, its extension list replaced by `ext`.
    fn page_with_extensions(ext: &[(u16, &[u8])]) -> Vec<u8> {
        let mut e = Vec::new();
        file("a").write(&mut e);
        assert_eq!(e[e.len() - 2..], [0, 0], "an entry ends with no extensions");
        e.truncate(e.len() - 2);
        e.put_u16(ext.len() as u16);
        for (tag, body) in ext {
            e.put_u16(*tag);
            e.put_u32(body.len() as u32);
            e.put(body);
        }
        let mut page = vec![0, 0, 0, 0];
        page.put_u32(1);
        page.extend_from_slice(&e);
        page
    }

    #[test]
    fn entry_extension_tags_must_increase() {
        assert!(TreePage::parse(&page_with_extensions(&[(1, b"x"), (7, b"")])).is_ok());
        for bad in [
            &[(7, &b""[..]), (1, &b"x"[..])][..],
            &[(4, b"x"), (4, b"x")],
        ] {
            let e = TreePage::parse(&page_with_extensions(bad)).unwrap_err();
            assert!(e.0.contains("extension tag"), "{}", e.0);
        }
    }

    #[test]
    fn times_before_1970_keep_nanoseconds_non_negative() {
        // 1.25 s before the epoch: seconds rounded down, nanoseconds added.
        let mut f = file("a");
        f.mtime = Timestamp {
            sec: -2,
            nsec: 750_000_000,
        };
        let mut b = Vec::new();
        f.write(&mut b);
        // name "a", type, reserved, mode, uid, gid, user "me", group "us"
        let at = (2 + 1) + 1 + 1 + 4 + 4 + 4 + (2 + 2) + (2 + 2);
        assert_eq!(&b[at..at + 8], &(-2i64).to_le_bytes());
        assert_eq!(&b[at + 8..at + 12], &750_000_000u32.to_le_bytes());
        let page = TreePage::parse(&TreePage::Leaf(vec![f.clone()]).to_bytes()).unwrap();
        assert_eq!(page, TreePage::Leaf(vec![f]));
    }

    #[test]
    fn xattr_names_sort_as_unsigned_bytes() {
        // 0xff sorts after every ASCII byte, and a proper prefix first.
        let mut f = file("a");
        f.xattrs = vec![
            (b"user.a".to_vec(), vec![]),
            (b"user.ab".to_vec(), vec![]),
            (b"user.\xff".to_vec(), vec![]),
        ];
        let page = TreePage::Leaf(vec![f.clone()]);
        assert_eq!(TreePage::parse(&page.to_bytes()).unwrap(), page);
        f.xattrs.swap(1, 2);
        assert!(TreePage::parse(&TreePage::Leaf(vec![f.clone()]).to_bytes()).is_err());
        f.xattrs = vec![(b"user.ab".to_vec(), vec![]), (b"user.a".to_vec(), vec![])];
        assert!(TreePage::parse(&TreePage::Leaf(vec![f]).to_bytes()).is_err());
    }

    #[test]
    fn hard_link_target_form_is_checked_when_parsed() {
        let link = |target: &[u8]| {
            let mut e = file("l");
            e.kind = EntryType::Hardlink;
            e.payload = Payload::Hardlink(target.to_vec());
            TreePage::Leaf(vec![e]).to_bytes()
        };
        // Resolving is not parsing: a target no entry has is well formed.
        assert!(TreePage::parse(&link(b"no/such/file")).is_ok());
        for bad in [&b""[..], b"/a", b"a/", b"a//b", b"a/../b", b"./a", b"a\0b"] {
            assert!(TreePage::parse(&link(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_size_mismatch() {
        let mut f = file("a");
        f.size = 11;
        assert!(TreePage::parse(&TreePage::Leaf(vec![f]).to_bytes()).is_err());
    }
}
