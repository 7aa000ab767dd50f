//! Comparing two snapshots of one archive: which entries were added,
//! removed, modified, or changed only in their metadata.
//!
//! Both trees are walked together in name order (a merge of the two sorted
//! listings of each directory), depth-first, directories before their
//! contents, held to the same depth limit as every other walk (spec §12).
//! A directory whose tree id is the same in both snapshots is not read:
//! tree ids are content ids of the tree pages, so the same id means the
//! same entries all the way down. Nothing is decided by reading chunks:
//! a file's content is the same when its extents are (the same inline
//! extent list, or the same file-map id, and the same size).
//!
//! Fields that change without anybody changing the file are ignored:
//! the access time (every read may set it), the change time (set by the
//! kernel on every metadata write, and by copying or restoring a tree),
//! the device, inode and link count (they describe where the source file
//! happened to live, and differ for every copy of a tree). The change time
//! can be compared with [`DiffOptions::ctime`].
//!
//! ```no_run
//! # fn main() -> ptar::Result<()> {
//! let a = ptar::Archive::open("b.ptar".as_ref(), None)?;
//! let (old, new) = (a.find_snapshot("2")?, a.find_snapshot("latest")?);
//! let stats = ptar::diff::diff(&a, &old, &new, &Default::default(), |c| {
//!     println!("{:?} {}", c.kind, String::from_utf8_lossy(&c.path));
//!     Ok(())
//! })?;
//! println!("{} added, {} removed", stats.added, stats.removed);
//! # Ok(()) }
//! ```

use std::fmt;
use std::iter::Peekable;
use std::ops::{BitOr, BitOrAssign};

use crate::format::tree::{Entry, EntryType, Payload};
use crate::format::Id;
use crate::sink::Failures;
use crate::walk::{check_depth, join};
use crate::{Archive, Error, Result, Snapshot};

/// A set of entry fields that differ between two snapshots.
///
/// [`Fields::TYPE`], [`Fields::CONTENT`], [`Fields::TARGET`] and
/// [`Fields::DEVICE`] are what the entry *is* (a change of any makes a
/// [`ChangeKind::Modified`]); the others are its metadata.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fields(u16);

impl Fields {
    /// No field.
    pub const NONE: Fields = Fields(0);
    /// The entry type changed, neither side being a directory (file to symlink, ...).
    pub const TYPE: Fields = Fields(1);
    /// A regular file's content (its size or its extents).
    pub const CONTENT: Fields = Fields(1 << 1);
    /// A symlink's target, or the path a hard link points to.
    pub const TARGET: Fields = Fields(1 << 2);
    /// A device node's major or minor number.
    pub const DEVICE: Fields = Fields(1 << 3);
    /// Permission bits.
    pub const MODE: Fields = Fields(1 << 4);
    /// Owner: user id or user name.
    pub const OWNER: Fields = Fields(1 << 5);
    /// Group: group id or group name.
    pub const GROUP: Fields = Fields(1 << 6);
    /// Modification time.
    pub const MTIME: Fields = Fields(1 << 7);
    /// Extended attributes (POSIX ACLs included).
    pub const XATTRS: Fields = Fields(1 << 8);
    /// Status change time (compared only with [`DiffOptions::ctime`]).
    pub const CTIME: Fields = Fields(1 << 9);

    /// The fields that make a change a modification rather than metadata.
    const DATA: Fields = Fields(0b1111);

    const NAMES: [(Fields, &'static str); 10] = [
        (Fields::TYPE, "type"),
        (Fields::CONTENT, "content"),
        (Fields::TARGET, "target"),
        (Fields::DEVICE, "device"),
        (Fields::MODE, "mode"),
        (Fields::OWNER, "owner"),
        (Fields::GROUP, "group"),
        (Fields::MTIME, "mtime"),
        (Fields::XATTRS, "xattrs"),
        (Fields::CTIME, "ctime"),
    ];

    /// Whether every field of `other` is in `self`.
    pub fn contains(self, other: Fields) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no field is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the entry itself changed (type, content, link target or
    /// device numbers), not only its metadata.
    pub fn is_data(self) -> bool {
        self.0 & Fields::DATA.0 != 0
    }

    /// The fields' names in a fixed order: `type`, `content`, `target`,
    /// `device`, `mode`, `owner`, `group`, `mtime`, `xattrs`, `ctime`.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Fields::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl BitOr for Fields {
    type Output = Fields;
    fn bitor(self, rhs: Fields) -> Fields {
        Fields(self.0 | rhs.0)
    }
}

impl BitOrAssign for Fields {
    fn bitor_assign(&mut self, rhs: Fields) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// What happened to an entry between the old and the new snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Only in the new snapshot (also every entry under an added directory).
    Added,
    /// Only in the old snapshot (also every entry under a removed directory).
    Removed,
    /// The same name, but another type, content, link target or device
    /// ([`Fields::is_data`]); metadata may have changed too.
    Modified,
    /// The same entry with other metadata only (mode, owner, mtime, xattrs, ...).
    Metadata,
}

/// One difference between two snapshots.
///
/// A path that is a directory on one side and something else on the other
/// is reported as [`ChangeKind::Removed`] (with everything under the old
/// directory) followed by [`ChangeKind::Added`] (with everything under the
/// new one).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// Member path from the snapshot root.
    pub path: Vec<u8>,
    /// What happened.
    pub kind: ChangeKind,
    /// For [`ChangeKind::Modified`] and [`ChangeKind::Metadata`], the fields
    /// that differ; empty for additions and removals.
    pub fields: Fields,
    /// The entry in the old snapshot (`None` when added).
    pub old: Option<Entry>,
    /// The entry in the new snapshot (`None` when removed).
    pub new: Option<Entry>,
}

impl Change {
    /// The type of the entry as it is now (the old one for a removal).
    pub fn entry_type(&self) -> EntryType {
        self.new
            .as_ref()
            .or(self.old.as_ref())
            .map(|e| e.kind)
            .expect("a change has an entry on at least one side")
    }
}

/// What to compare.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Also report a different status change time ([`Fields::CTIME`]). Off
    /// by default: the kernel sets it on every metadata write, so a copied,
    /// restored or merely re-tagged tree differs everywhere.
    pub ctime: bool,
}

impl DiffOptions {
    /// Options with the change time compared or not.
    pub fn with_ctime(mut self, ctime: bool) -> DiffOptions {
        self.ctime = ctime;
        self
    }
}

/// Counts of a diff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiffStats {
    /// Entries added.
    pub added: u64,
    /// Entries removed.
    pub removed: u64,
    /// Entries modified (type, content, target or device).
    pub modified: u64,
    /// Entries whose metadata alone changed.
    pub metadata: u64,
    /// Directories present in both snapshots whose listings were both read
    /// and compared (the root included).
    pub dirs_compared: u64,
    /// Directories present in both snapshots with the same tree id, not read
    /// (the root included when the snapshots are the same tree).
    pub dirs_skipped: u64,
    /// Directories that could not be read (path, message); what is under
    /// them is not compared. Not empty means the diff is incomplete.
    pub failures: Failures,
}

impl DiffStats {
    /// All changes reported.
    pub fn changes(&self) -> u64 {
        self.added + self.removed + self.modified + self.metadata
    }
}

/// Which fields differ between two entries of the same name, neither or
/// both of which are directories (a directory's contents are compared by
/// walking it, not here).
pub fn compare_entries(old: &Entry, new: &Entry, opts: &DiffOptions) -> Fields {
    let mut f = Fields::NONE;
    if old.kind != new.kind {
        f |= Fields::TYPE;
    } else {
        let differs = match (&old.payload, &new.payload) {
            (Payload::File(a), Payload::File(b)) => {
                (old.size != new.size || a != b).then_some(Fields::CONTENT)
            }
            (Payload::Symlink(a), Payload::Symlink(b))
            | (Payload::Hardlink(a), Payload::Hardlink(b)) => (a != b).then_some(Fields::TARGET),
            (Payload::Device { .. }, Payload::Device { .. }) => {
                (old.payload != new.payload).then_some(Fields::DEVICE)
            }
            _ => None,
        };
        f |= differs.unwrap_or(Fields::NONE);
    }
    if old.mode != new.mode {
        f |= Fields::MODE;
    }
    if old.uid != new.uid || old.user != new.user {
        f |= Fields::OWNER;
    }
    if old.gid != new.gid || old.group != new.group {
        f |= Fields::GROUP;
    }
    if old.mtime != new.mtime {
        f |= Fields::MTIME;
    }
    if old.xattrs != new.xattrs {
        f |= Fields::XATTRS;
    }
    if opts.ctime && old.ctime != new.ctime {
        f |= Fields::CTIME;
    }
    f
}

type Listing = Peekable<std::vec::IntoIter<Entry>>;

/// One directory level of the walk: the two listings being merged.
struct Frame {
    /// Member path of the directory ("" for the root).
    prefix: Vec<u8>,
    /// 1 for the root.
    depth: usize,
    old: Listing,
    new: Listing,
}

fn listing(entries: Vec<Entry>) -> Listing {
    entries.into_iter().peekable()
}

/// Entries a snapshot's record declares: the walk of its trees may not
/// meet more (a tree that names one directory a million times would
/// otherwise make the walk endless).
fn declared(s: &Snapshot) -> u64 {
    let m = &s.record.summary;
    m.files
        .saturating_add(m.dirs)
        .saturating_add(m.symlinks)
        .saturating_add(m.hardlinks)
        .saturating_add(m.others)
}

/// Reads directory listings of one snapshot, counting entries against the
/// count its record declares.
struct Side<'a> {
    archive: &'a Archive,
    snapshot: &'a Snapshot,
    limit: u64,
    seen: u64,
}

impl<'a> Side<'a> {
    fn new(archive: &'a Archive, snapshot: &'a Snapshot) -> Side<'a> {
        Side {
            archive,
            snapshot,
            limit: declared(snapshot),
            seen: 0,
        }
    }

    fn read(&mut self, id: &Id) -> Result<Vec<Entry>> {
        let entries = self.archive.read_dir(id)?;
        self.seen = self.seen.saturating_add(entries.len() as u64);
        if self.seen > self.limit {
            return Err(Error::LimitExceeded(format!(
                "snapshot {} holds more entries than the {} its record declares",
                self.snapshot.id.short(),
                self.limit
            )));
        }
        Ok(entries)
    }
}

/// Why a directory could not be read: fatal (the walk stops) or recorded
/// as a failure of that path (the walk goes on).
fn fatal(e: &Error) -> bool {
    matches!(e, Error::LimitExceeded(_) | Error::Io { .. })
}

struct Walk<'a, F> {
    old: Side<'a>,
    new: Side<'a>,
    opts: &'a DiffOptions,
    stats: DiffStats,
    stack: Vec<Frame>,
    report: F,
}

impl<F: FnMut(&Change) -> Result<()>> Walk<'_, F> {
    fn emit(
        &mut self,
        path: Vec<u8>,
        kind: ChangeKind,
        fields: Fields,
        old: Option<Entry>,
        new: Option<Entry>,
    ) -> Result<()> {
        match kind {
            ChangeKind::Added => self.stats.added += 1,
            ChangeKind::Removed => self.stats.removed += 1,
            ChangeKind::Modified => self.stats.modified += 1,
            ChangeKind::Metadata => self.stats.metadata += 1,
        }
        (self.report)(&Change {
            path,
            kind,
            fields,
            old,
            new,
        })
    }

    /// Reads the directory `id` of one side (`old`), or records a failure.
    fn read(&mut self, old: bool, id: &Id, path: &[u8]) -> Result<Option<Vec<Entry>>> {
        let side = if old { &mut self.old } else { &mut self.new };
        match side.read(id) {
            Ok(e) => Ok(Some(e)),
            Err(e) if fatal(&e) => Err(e),
            Err(e) => {
                self.stats.failures.push((path.to_vec(), e.to_string()));
                Ok(None)
            }
        }
    }

    /// Reports an entry only one side has; a directory's contents follow.
    fn one_sided(&mut self, old: bool, path: Vec<u8>, e: Entry, depth: usize) -> Result<()> {
        let dir = match &e.payload {
            Payload::Dir(id) => Some(*id),
            _ => None,
        };
        if old {
            self.emit(
                path.clone(),
                ChangeKind::Removed,
                Fields::NONE,
                Some(e),
                None,
            )?;
        } else {
            self.emit(path.clone(), ChangeKind::Added, Fields::NONE, None, Some(e))?;
        }
        if let Some(id) = dir {
            check_depth(depth, &id)?;
            if let Some(kids) = self.read(old, &id, &path)? {
                let (o, n) = if old {
                    (kids, Vec::new())
                } else {
                    (Vec::new(), kids)
                };
                self.stack.push(Frame {
                    prefix: path,
                    depth: depth + 1,
                    old: listing(o),
                    new: listing(n),
                });
            }
        }
        Ok(())
    }

    /// Compares two entries of the same name at `path` (whose first
    /// `parent_len` bytes are the directory holding them).
    fn both(
        &mut self,
        path: Vec<u8>,
        parent_len: usize,
        o: Entry,
        n: Entry,
        depth: usize,
    ) -> Result<()> {
        match (&o.payload, &n.payload) {
            (Payload::Dir(a), Payload::Dir(b)) => {
                let (a, b) = (*a, *b);
                let fields = compare_entries(&o, &n, self.opts);
                if !fields.is_empty() {
                    self.emit(path.clone(), ChangeKind::Metadata, fields, Some(o), Some(n))?;
                }
                if a == b {
                    self.stats.dirs_skipped += 1;
                    return Ok(());
                }
                check_depth(depth, &b)?;
                let Some(old) = self.read(true, &a, &path)? else {
                    return Ok(());
                };
                let Some(new) = self.read(false, &b, &path)? else {
                    return Ok(());
                };
                self.stats.dirs_compared += 1;
                self.stack.push(Frame {
                    prefix: path,
                    depth: depth + 1,
                    old: listing(old),
                    new: listing(new),
                });
                Ok(())
            }
            (Payload::Dir(_), _) | (_, Payload::Dir(_)) => {
                // Removed (with its subtree), then added (with its subtree):
                // the addition waits in a frame of its own below the
                // removal's, so it comes after everything removed.
                self.stack.push(Frame {
                    prefix: path[..parent_len].to_vec(),
                    depth,
                    old: listing(Vec::new()),
                    new: listing(vec![n]),
                });
                self.one_sided(true, path, o, depth)
            }
            _ => {
                let fields = compare_entries(&o, &n, self.opts);
                if fields.is_data() {
                    self.emit(path, ChangeKind::Modified, fields, Some(o), Some(n))
                } else if !fields.is_empty() {
                    self.emit(path, ChangeKind::Metadata, fields, Some(o), Some(n))
                } else {
                    Ok(())
                }
            }
        }
    }

    fn run(mut self) -> Result<DiffStats> {
        while let Some(top) = self.stack.last_mut() {
            let take_old = match (top.old.peek(), top.new.peek()) {
                (None, None) => {
                    self.stack.pop();
                    continue;
                }
                (Some(_), None) => Some(true),
                (None, Some(_)) => Some(false),
                (Some(o), Some(n)) => match o.name.cmp(&n.name) {
                    std::cmp::Ordering::Less => Some(true),
                    std::cmp::Ordering::Greater => Some(false),
                    std::cmp::Ordering::Equal => None,
                },
            };
            let depth = top.depth;
            let parent_len = top.prefix.len();
            match take_old {
                Some(old) => {
                    let e = if old { top.old.next() } else { top.new.next() };
                    let e = e.expect("peeked");
                    let path = join(&top.prefix, &e.name);
                    self.one_sided(old, path, e, depth)?;
                }
                None => {
                    let o = top.old.next().expect("peeked");
                    let n = top.new.next().expect("peeked");
                    let path = join(&top.prefix, &o.name);
                    self.both(path, parent_len, o, n, depth)?;
                }
            }
        }
        Ok(self.stats)
    }
}

/// Compares snapshot `old` with snapshot `new` of `archive`, calling `f`
/// for every change, depth-first in name order (a directory before its
/// contents). Directories with the same tree id in both are skipped
/// unread. An error from `f` ends the walk and is returned.
///
/// Directories that cannot be read are listed in [`DiffStats::failures`]
/// while the rest is compared; the walk stops on an I/O error, on
/// directories nested deeper than
/// [`MAX_TREE_DEPTH`](crate::format::limits::MAX_TREE_DEPTH), and when a
/// snapshot's trees hold more entries than its record declares.
pub fn diff(
    archive: &Archive,
    old: &Snapshot,
    new: &Snapshot,
    opts: &DiffOptions,
    f: impl FnMut(&Change) -> Result<()>,
) -> Result<DiffStats> {
    let mut walk = Walk {
        old: Side::new(archive, old),
        new: Side::new(archive, new),
        opts,
        stats: DiffStats::default(),
        stack: Vec::new(),
        report: f,
    };
    let (a, b) = (old.record.root, new.record.root);
    if a == b {
        walk.stats.dirs_skipped = 1;
        return Ok(walk.stats);
    }
    let o = walk.old.read(&a)?;
    let n = walk.new.read(&b)?;
    walk.stats.dirs_compared = 1;
    walk.stack.push(Frame {
        prefix: Vec::new(),
        depth: 1,
        old: listing(o),
        new: listing(n),
    });
    walk.run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::{Content, Extent, Timestamp};

    fn file(name: &str, chunk: u8) -> Entry {
        let t = Timestamp { sec: 10, nsec: 0 };
        let content = Content::Inline(vec![Extent::Data {
            len: 4,
            id: Id([chunk; 32]),
        }]);
        Entry::file(name, 4, content)
            .with_mode(0o644)
            .with_owner(1000, "u")
            .with_group(1000, "g")
            .with_times(t, t, t)
            .with_source(1, 2, 1)
    }

    #[test]
    fn volatile_fields_are_ignored_unless_asked() {
        let a = file("f", 1);
        let mut b = a.clone();
        b.atime.sec += 5;
        b.ctime.sec += 5;
        b.ino = 99;
        b.dev = 98;
        b.nlink = 3;
        assert!(compare_entries(&a, &b, &DiffOptions::default()).is_empty());
        let with = DiffOptions::default().with_ctime(true);
        assert_eq!(compare_entries(&a, &b, &with), Fields::CTIME);
    }

    #[test]
    fn content_is_decided_by_extents() {
        let a = file("f", 1);
        let b = file("f", 2);
        let f = compare_entries(&a, &b, &DiffOptions::default());
        assert_eq!(f, Fields::CONTENT);
        assert!(f.is_data());
        let mut c = a.clone();
        c.mode = 0o600;
        c.mtime.nsec = 1;
        c.user = b"other".to_vec();
        let f = compare_entries(&a, &c, &DiffOptions::default());
        assert!(!f.is_data());
        assert_eq!(f.names().collect::<Vec<_>>(), ["mode", "owner", "mtime"]);
    }

    #[test]
    fn type_change_without_directories_is_a_modification() {
        let a = file("f", 1);
        let mut b = a.clone();
        b.kind = EntryType::Symlink;
        b.size = 0;
        b.payload = Payload::Symlink(b"x".to_vec());
        let f = compare_entries(&a, &b, &DiffOptions::default());
        assert!(f.contains(Fields::TYPE) && f.is_data());
    }
}
