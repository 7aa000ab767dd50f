//! Reading files and directories into a snapshot tree.
//!
//! Operands are named as on a tar command line. Each becomes a member path
//! (leading `/`, `.` and `..` components dropped), read relative to its own
//! base directory (tar's positional `-C`). Directories are read depth-first
//! in name order with an explicit stack, so depth is bounded by memory, not
//! by the call stack.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

use crate::format::limits::{MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN};
use crate::format::tree::{Content, Entry, EntryType, Payload, Timestamp};
use crate::format::Id;
use crate::pattern::{exclude_match, CACHEDIR_SIGNATURE, VCS_NAMES};
use crate::retry::eintr_rustix;
use crate::source::{EntrySource, FileData, SourceItem, Xattrs};
use crate::walk::join;
use crate::Result;

use super::owners;

/// One operand: a path as the user gave it, and the directory it is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Base directory (empty: the current directory). Ignored for absolute paths.
    pub dir: PathBuf,
    /// The operand; its member name is this path, normalized.
    pub path: PathBuf,
}

impl Source {
    /// Where the operand is on the file system.
    pub fn fs_path(&self) -> PathBuf {
        if self.path.is_absolute() || self.dir.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.dir.join(&self.path)
        }
    }
}

impl From<PathBuf> for Source {
    fn from(path: PathBuf) -> Source {
        Source {
            dir: PathBuf::new(),
            path,
        }
    }
}

impl From<&Path> for Source {
    fn from(path: &Path) -> Source {
        Source {
            dir: PathBuf::new(),
            path: path.to_path_buf(),
        }
    }
}

/// What to leave out and how to walk (tar's create options).
#[derive(Clone, Debug, Default)]
pub struct CreatePolicy {
    /// Exclusion patterns (GNU tar `--exclude`): unanchored wildcards where
    /// `*` matches `/`; an excluded directory loses its whole subtree.
    pub exclude: Vec<Vec<u8>>,
    /// Leave out version-control files and directories (`--exclude-vcs`).
    pub exclude_vcs: bool,
    /// Keep only `CACHEDIR.TAG` of directories it marks (`--exclude-caches`).
    pub exclude_caches: bool,
    /// Do not descend into directories named as operands (`--no-recursion`).
    pub no_recursion: bool,
    /// Do not descend into directories on other file systems (`--one-file-system`).
    pub one_file_system: bool,
    /// Archive what symlinks point to instead of the links (`-h`).
    pub follow_symlinks: bool,
    /// Do not record extended attributes (and so ACLs) (`--no-xattrs`).
    pub no_xattrs: bool,
    /// On append, read every file, even those the parent snapshot says are
    /// unchanged (`--force-read`).
    pub force_read: bool,
}

/// What reading the sources produced.
pub type CreateOutcome = crate::source::BuildOutcome;

/// The message recorded for a file that changed while it was read.
pub const CHANGED: &str = "file changed as we read it";

/// A node of the virtual tree the operands describe.
#[derive(Default)]
struct VNode {
    children: BTreeMap<Vec<u8>, VNode>,
    /// The file-system path this node stands for.
    fs_path: PathBuf,
    /// Whether the node was named as an operand (so it is read recursively).
    operand: bool,
}

/// Splits an operand into member-name components: drops leading '/', '.'
/// components, and '..' components (as tar does).
fn member_components(p: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in p.as_os_str().as_bytes().split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

/// Where a file is: a path (operands and the directories leading to them),
/// or a name inside an open directory (everything found by walking, so that
/// paths longer than PATH_MAX work and a directory swapped for a symlink
/// mid-walk is never followed).
#[derive(Clone)]
enum Loc {
    Path(PathBuf),
    At { dir: Arc<OwnedFd>, name: Vec<u8> },
}

impl Loc {
    fn stat(&self, follow: bool) -> std::io::Result<Meta> {
        let flags = if follow {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        let st = eintr_rustix(|| match self {
            Loc::Path(p) => rustix::fs::statat(CWD, p, flags),
            Loc::At { dir, name } => rustix::fs::statat(dir, name.as_slice(), flags),
        });
        Ok(Meta(st?))
    }

    /// Opens the file, again when a signal interrupted the call.
    fn open(&self, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        eintr_rustix(|| match self {
            Loc::Path(p) => rustix::fs::openat(CWD, p, flags, Mode::empty()),
            Loc::At { dir, name } => rustix::fs::openat(dir, name.as_slice(), flags, Mode::empty()),
        })
    }

    /// Opens a regular file to read, without updating its access time when
    /// the kernel allows it, and without following a symlink put in its place.
    fn open_file(&self, follow: bool) -> std::io::Result<File> {
        let base = if follow {
            OFlags::RDONLY
        } else {
            OFlags::RDONLY | OFlags::NOFOLLOW
        };
        let fd = match self.open(base | OFlags::NOATIME) {
            Err(rustix::io::Errno::PERM) => self.open(base)?,
            other => other?,
        };
        Ok(File::from(fd))
    }

    /// Opens a directory to list, without updating its access time when the
    /// kernel allows it: a listing that changed the time would make every
    /// directory differ from the parent snapshot on the next append.
    fn open_dir(&self, follow: bool) -> std::io::Result<OwnedFd> {
        let mut base = OFlags::RDONLY | OFlags::DIRECTORY;
        if !follow {
            base |= OFlags::NOFOLLOW;
        }
        match self.open(base | OFlags::NOATIME) {
            Err(rustix::io::Errno::PERM) => Ok(self.open(base)?),
            other => Ok(other?),
        }
    }

    fn read_link(&self) -> std::io::Result<Vec<u8>> {
        let t = match self {
            Loc::Path(p) => rustix::fs::readlinkat(CWD, p, Vec::new()),
            Loc::At { dir, name } => rustix::fs::readlinkat(dir, name.as_slice(), Vec::new()),
        };
        Ok(t?.into_bytes())
    }

    /// A path naming the same file for path-only calls (extended
    /// attributes): through /proc for names inside a directory handle, so it
    /// stays short whatever the depth.
    fn path(&self) -> PathBuf {
        match self {
            Loc::Path(p) => p.clone(),
            Loc::At { dir, name } => {
                let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
                p.push(std::ffi::OsStr::from_bytes(name));
                p
            }
        }
    }
}

/// File status, with the accessors of `std::os::unix::fs::MetadataExt`.
struct Meta(rustix::fs::Stat);

#[allow(clippy::unnecessary_cast)]
impl Meta {
    fn mode(&self) -> u32 {
        self.0.st_mode as u32
    }
    fn uid(&self) -> u32 {
        self.0.st_uid
    }
    fn gid(&self) -> u32 {
        self.0.st_gid
    }
    fn dev(&self) -> u64 {
        self.0.st_dev as u64
    }
    fn ino(&self) -> u64 {
        self.0.st_ino as u64
    }
    fn nlink(&self) -> u64 {
        self.0.st_nlink as u64
    }
    fn len(&self) -> u64 {
        self.0.st_size as u64
    }
    fn blocks(&self) -> u64 {
        self.0.st_blocks as u64
    }
    fn rdev(&self) -> u64 {
        self.0.st_rdev as u64
    }
    fn mtime(&self) -> i64 {
        self.0.st_mtime as i64
    }
    fn mtime_nsec(&self) -> i64 {
        self.0.st_mtime_nsec as i64
    }
    fn atime(&self) -> i64 {
        self.0.st_atime as i64
    }
    fn atime_nsec(&self) -> i64 {
        self.0.st_atime_nsec as i64
    }
    fn ctime(&self) -> i64 {
        self.0.st_ctime as i64
    }
    fn ctime_nsec(&self) -> i64 {
        self.0.st_ctime_nsec as i64
    }
    fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.0.st_mode as _)
    }
}

fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

fn entry_from(name: Vec<u8>, kind: EntryType, md: &Meta, payload: Payload) -> Entry {
    Entry::new(name, kind, payload)
        .with_mode(md.mode() & 0o7777)
        .with_owner(md.uid(), owners::user_name(md.uid()))
        .with_group(md.gid(), owners::group_name(md.gid()))
        .with_times(
            ts(md.mtime(), md.mtime_nsec()),
            ts(md.atime(), md.atime_nsec()),
            ts(md.ctime(), md.ctime_nsec()),
        )
        .with_source(md.dev(), md.ino(), md.nlink().min(u32::MAX as u64) as u32)
}

/// A child waiting to be visited: name, file-system path, operand node if any.
type Todo = (Vec<u8>, Loc, Option<VNode>);

struct Frame {
    /// Path from the snapshot root.
    rel: Vec<u8>,
    /// (device, inode) of the directory, to stop symlink loops under `-h`.
    id: (u64, u64),
    /// The device below which --one-file-system keeps the walk.
    dev: Option<u64>,
    /// Children still to visit, reversed so `pop` yields name order.
    todo: Vec<Todo>,
}

/// Extended attributes from a listing and a getter (by path or by open
/// file), sorted, with a message for each one that cannot be stored.
fn read_xattrs<L: Iterator<Item = std::ffi::OsString>>(
    names: std::io::Result<L>,
    get: impl Fn(&std::ffi::OsStr) -> std::io::Result<Option<Vec<u8>>>,
) -> (Xattrs, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let names = match names {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => {
            return (out, problems)
        }
        Err(e) => {
            problems.push(format!("cannot list extended attributes: {e}"));
            return (out, problems);
        }
    };
    for n in names {
        let name = n.into_vec();
        match get(std::ffi::OsStr::from_bytes(&name)) {
            Ok(Some(v))
                if name.len() <= MAX_XATTR_NAME_LEN
                    && v.len() <= MAX_XATTR_VALUE_LEN
                    && !name.is_empty() =>
            {
                out.push((name, v))
            }
            Ok(Some(_)) => problems.push(format!(
                "extended attribute {} is too large to store",
                String::from_utf8_lossy(&name)
            )),
            Ok(None) => {}
            Err(e) => problems.push(format!(
                "cannot read extended attribute {}: {e}",
                String::from_utf8_lossy(&name)
            )),
        }
    }
    out.sort();
    (out, problems)
}

/// A regular file being read by the builder, opened only when its content
/// is read (an unchanged file taken over from the parent snapshot never is).
/// Its extended attributes are read through the open file, or taken over
/// with the content.
struct FsFile {
    loc: Loc,
    follow: bool,
    file: Option<File>,
    /// Whether the file was just opened (at offset 0, no seek needed).
    fresh: bool,
    /// Whether extended attributes are to be read (not `--no-xattrs`).
    xattrs: bool,
    meta: Meta,
    /// Set when the builder stored the content whole.
    stored: Option<u64>,
    /// (device, inode, member path) when other names may link to it.
    link: Option<((u64, u64), Vec<u8>)>,
}

impl FsFile {
    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let f = self
                .loc
                .open_file(self.follow)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open: {e}")))?;
            self.file = Some(f);
            self.fresh = true;
        }
        Ok(self.file.as_mut().expect("just opened"))
    }
}

impl FileData for FsFile {
    fn data_ranges(&mut self) -> Option<Vec<(u64, u64)>> {
        // A file with fewer allocated blocks than its length has holes.
        if self.meta.blocks().saturating_mul(512) < self.meta.len() {
            let len = self.meta.len();
            let ranges = FsSource::data_ranges(self.file().ok()?, len).ok();
            // SEEK_DATA and SEEK_HOLE moved the file offset: the first read
            // must seek, even to 0.
            self.fresh = false;
            ranges
        } else {
            None
        }
    }

    fn reader_at(&mut self, start: u64) -> std::io::Result<&mut dyn Read> {
        self.file()?;
        let fresh = std::mem::take(&mut self.fresh);
        let f = self.file.as_mut().expect("open");
        if !(fresh && start == 0) {
            f.seek(SeekFrom::Start(start))?;
        }
        Ok(f)
    }

    fn defers_xattrs(&self) -> bool {
        self.xattrs
    }

    fn late_xattrs(&mut self) -> (Xattrs, Vec<String>) {
        if !self.xattrs {
            return (Vec::new(), Vec::new());
        }
        use xattr::FileExt;
        match self.file() {
            Ok(f) => {
                let f: &File = f;
                read_xattrs(f.list_xattr(), |n| f.get_xattr(n))
            }
            Err(e) => (Vec::new(), vec![e.to_string()]),
        }
    }

    fn reused(&mut self, total: u64) {
        self.stored = Some(total);
    }

    fn len(&self) -> u64 {
        self.meta.len()
    }

    fn finish(&mut self, total: u64) -> Option<String> {
        self.stored = Some(total);
        let md = &self.meta;
        let Some(file) = &self.file else {
            return None;
        };
        match file.metadata() {
            Ok(after)
                if after.len() != md.len()
                    || after.mtime() != md.mtime()
                    || after.mtime_nsec() != md.mtime_nsec()
                    || total != md.len() =>
            {
                Some(CHANGED.into())
            }
            _ => None,
        }
    }
}

enum Visit {
    Dir(Frame, Entry),
    File(Vec<u8>, Entry, FsFile),
    Other(Vec<u8>, Entry),
    Skip,
}

/// The file system as an [`EntrySource`]: the operands, walked through
/// directory handles.
pub struct FsSource<'a> {
    policy: &'a CreatePolicy,
    /// (device, inode) → (path of the first stored name, its size).
    links: HashMap<(u64, u64), (Vec<u8>, u64)>,
    skip: &'a [(u64, u64)],
    stack: Vec<Frame>,
    /// Problems and notices found while visiting, handed out first.
    pending: std::collections::VecDeque<(Vec<u8>, String, bool)>,
    current: Option<FsFile>,
    /// Operands met so far (named paths, not `.` or `/`), and those of them
    /// that could not be found.
    operands: usize,
    missing: usize,
    /// Whether an operand names the root (`.`, `/`): read by listing.
    root_operand: bool,
}

impl<'a> FsSource<'a> {
    /// A source for `sources`, leaving out files whose (device, inode) is in
    /// `skip` (the archive being written).
    pub fn new(
        sources: &[Source],
        policy: &'a CreatePolicy,
        skip: &'a [(u64, u64)],
    ) -> FsSource<'a> {
        let (mut root, root_sources) = operand_tree(sources);
        let mut me = FsSource {
            policy,
            links: HashMap::new(),
            skip,
            stack: Vec::new(),
            pending: Default::default(),
            current: None,
            operands: 0,
            missing: 0,
            root_operand: !root_sources.is_empty(),
        };
        let mut merged: BTreeMap<Vec<u8>, (Loc, Option<VNode>)> = BTreeMap::new();
        for src in &root_sources {
            for (n, p, v) in me.children(
                b"",
                &Loc::Path(src.clone()),
                !policy.no_recursion,
                true,
                BTreeMap::new(),
            ) {
                merged.insert(n, (p, v));
            }
        }
        for (n, v) in std::mem::take(&mut root.children) {
            let p = Loc::Path(v.fs_path.clone());
            merged.insert(n, (p, Some(v)));
        }
        let todo = merged
            .into_iter()
            .rev()
            .map(|(n, (p, v))| (n, p, v))
            .collect();
        me.stack.push(Frame {
            rel: Vec::new(),
            id: (0, 0),
            dev: None,
            todo,
        });
        me
    }

    fn error(&mut self, path: &[u8], msg: String) {
        self.pending.push_back((path.to_vec(), msg, true));
    }

    /// Whether every operand was missing (none could even be looked at),
    /// once the walk is over: a snapshot of nothing is not worth a
    /// generation, and a typo must not make one.
    pub fn no_operand_found(&self) -> bool {
        !self.root_operand && self.operands > 0 && self.missing == self.operands
    }

    fn notice(&mut self, path: &[u8], msg: &str) {
        self.pending
            .push_back((path.to_vec(), msg.to_string(), false));
    }

    fn excluded(&self, rel: &[u8], name: &[u8]) -> bool {
        (self.policy.exclude_vcs && VCS_NAMES.iter().any(|v| v.as_bytes() == name))
            || self.policy.exclude.iter().any(|p| exclude_match(p, rel))
    }
    fn is_cache_dir(dir: &OwnedFd) -> bool {
        let mut buf = [0u8; 43];
        eintr_rustix(|| {
            rustix::fs::openat(
                dir,
                "CACHEDIR.TAG",
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        })
        .map(File::from)
        .map_err(std::io::Error::from)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
            && buf[..] == *CACHEDIR_SIGNATURE
    }
    /// Lists a directory's children, sorted by name, merged with operand nodes.
    fn children(
        &mut self,
        rel: &[u8],
        dir: &Loc,
        recurse: bool,
        follow: bool,
        virt: BTreeMap<Vec<u8>, VNode>,
    ) -> Vec<Todo> {
        let mut map: BTreeMap<Vec<u8>, (Loc, Option<VNode>)> = BTreeMap::new();
        if recurse {
            match dir
                .open_dir(follow)
                // Dir::read_from opens "." again relative to `fd`: an
                // openat of its own, retried like the others.
                .and_then(|fd| Ok((eintr_rustix(|| rustix::fs::Dir::read_from(&fd))?, fd)))
            {
                Ok((listing, fd)) => {
                    let caches = self.policy.exclude_caches && FsSource::is_cache_dir(&fd);
                    let fd = Arc::new(fd);
                    for de in listing {
                        match de {
                            Ok(de) => {
                                let name = de.file_name().to_bytes();
                                if name == b"."
                                    || name == b".."
                                    || (caches && name != b"CACHEDIR.TAG")
                                {
                                    continue;
                                }
                                if !self.excluded(&join(rel, name), name) {
                                    map.insert(
                                        name.to_vec(),
                                        (
                                            Loc::At {
                                                dir: fd.clone(),
                                                name: name.to_vec(),
                                            },
                                            None,
                                        ),
                                    );
                                }
                            }
                            Err(e) => self.error(rel, format!("cannot read directory: {e}")),
                        }
                    }
                }
                Err(e) => self.error(rel, format!("cannot read directory: {e}")),
            }
        }
        for (name, node) in virt {
            let p = Loc::Path(node.fs_path.clone());
            map.insert(name, (p, Some(node)));
        }
        map.into_iter().rev().map(|(n, (p, v))| (n, p, v)).collect()
    }
    fn xattrs(&mut self, rel: &[u8], loc: &Loc, follow: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        if self.policy.no_xattrs {
            return Vec::new();
        }
        let path = &loc.path();
        let (out, problems) = if follow {
            read_xattrs(xattr::list_deref(path), |n| xattr::get_deref(path, n))
        } else {
            read_xattrs(xattr::list(path), |n| xattr::get(path, n))
        };
        for p in problems {
            self.error(rel, p);
        }
        out
    }
    /// Data ranges of a sparse file, by SEEK_DATA / SEEK_HOLE.
    fn data_ranges(file: &File, len: u64) -> std::io::Result<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < len {
            let start = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(pos)) {
                Ok(s) => s,
                Err(rustix::io::Errno::NXIO) => break,
                Err(e) => return Err(e.into()),
            };
            let end = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(start))
                .map_err(std::io::Error::from)?
                .min(len);
            if end > start {
                out.push((start, end));
            }
            pos = end.max(start + 1);
        }
        Ok(out)
    }

    /// Looks at one child; directories become a new frame.
    fn visit(
        &mut self,
        rel: Vec<u8>,
        name: Vec<u8>,
        loc: Loc,
        node: Option<VNode>,
        dev: Option<u64>,
    ) -> Visit {
        // Operands and the directories that lead to them are filtered too.
        if node.is_some() && self.excluded(&rel, &name) {
            return Visit::Skip;
        }
        // A directory that only leads to an operand (`/proc/self` in
        // `/proc/self/stat`) is followed like the operand's path is.
        let leads_to_operand = node.as_ref().is_some_and(|n| !n.operand);
        let is_operand = node.as_ref().is_some_and(|n| n.operand);
        let follow = self.policy.follow_symlinks || leads_to_operand;
        let stat = if follow {
            loc.stat(true).or_else(|_| loc.stat(false))
        } else {
            loc.stat(false)
        };
        if is_operand {
            self.operands += 1;
        }
        let md = match stat {
            Ok(md) => md,
            Err(e) => {
                if is_operand {
                    self.missing += 1;
                }
                if let Some(n) = node.filter(|n| !n.operand) {
                    // An intermediate directory of an operand we cannot stat.
                    let todo = self.children(&rel, &loc, false, true, n.children);
                    return Visit::Dir(
                        Frame {
                            rel,
                            id: (0, 0),
                            dev,
                            todo,
                        },
                        Entry::synthetic_dir(name, Timestamp::now()),
                    );
                }
                self.error(&rel, format!("cannot stat: {e}"));
                return Visit::Skip;
            }
        };
        if self.skip.contains(&(md.dev(), md.ino())) {
            self.notice(&rel, "file is the archive; not dumped");
            return Visit::Skip;
        }
        let ft = md.file_type();
        // A regular file's attributes are read with its content, through the
        // open file (or taken over with it); a second name of a hard link
        // has no content to read.
        let first_name =
            ft.is_file() && !(md.nlink() > 1 && self.links.contains_key(&(md.dev(), md.ino())));
        let xattrs = if first_name {
            Vec::new()
        } else {
            self.xattrs(&rel, &loc, follow)
        };
        if ft.is_dir() {
            let id = (md.dev(), md.ino());
            if follow && self.stack.iter().any(|f| f.id == id) {
                self.error(
                    &rel,
                    "directory loop through a followed symlink; not descended".into(),
                );
                return Visit::Skip;
            }
            // Operands always descend unless --no-recursion; below them,
            // --one-file-system stops at other devices.
            let recurse = match &node {
                Some(n) if n.operand => !self.policy.no_recursion,
                Some(_) => false,
                None => !(self.policy.one_file_system && dev.is_some_and(|d| d != md.dev())),
            };
            let virt = node.map(|n| n.children).unwrap_or_default();
            let todo = self.children(&rel, &loc, recurse, follow, virt);
            let mut e = entry_from(name, EntryType::Dir, &md, Payload::Dir(Id::ZERO));
            e.xattrs = xattrs;
            // The device an operand lives on bounds --one-file-system below it.
            let frame_dev = if is_operand || dev.is_none() {
                Some(md.dev())
            } else {
                dev
            };
            return Visit::Dir(
                Frame {
                    rel,
                    id,
                    dev: frame_dev,
                    todo,
                },
                e,
            );
        }
        let mut entry = if ft.is_file() {
            if md.nlink() > 1 {
                if let Some((first, size)) = self.links.get(&(md.dev(), md.ino())) {
                    let mut e = entry_from(
                        name,
                        EntryType::Hardlink,
                        &md,
                        Payload::Hardlink(first.clone()),
                    );
                    e.size = *size;
                    e.xattrs = xattrs;
                    return Visit::Other(rel, e);
                }
            }
            let link = (md.nlink() > 1).then(|| ((md.dev(), md.ino()), rel.clone()));
            let mut e = entry_from(
                name,
                EntryType::File,
                &md,
                Payload::File(Content::Inline(Vec::new())),
            );
            e.xattrs = xattrs;
            return Visit::File(
                rel,
                e,
                FsFile {
                    loc,
                    follow,
                    file: None,
                    fresh: false,
                    xattrs: !self.policy.no_xattrs,
                    meta: md,
                    stored: None,
                    link,
                },
            );
        } else if ft.is_symlink() {
            match loc.read_link() {
                Ok(t) if !t.is_empty() => {
                    entry_from(name, EntryType::Symlink, &md, Payload::Symlink(t))
                }
                Ok(_) => {
                    self.error(&rel, "symlink with an empty target".into());
                    return Visit::Skip;
                }
                Err(e) => {
                    self.error(&rel, format!("cannot read link: {e}"));
                    return Visit::Skip;
                }
            }
        } else if ft.is_socket() {
            self.notice(&rel, "socket ignored");
            return Visit::Skip;
        } else {
            let dev = Payload::Device {
                major: rustix::fs::major(md.rdev()),
                minor: rustix::fs::minor(md.rdev()),
            };
            if ft.is_char_device() {
                entry_from(name, EntryType::CharDevice, &md, dev)
            } else if ft.is_block_device() {
                entry_from(name, EntryType::BlockDevice, &md, dev)
            } else {
                entry_from(name, EntryType::Fifo, &md, Payload::None)
            }
        };
        entry.xattrs = xattrs;
        Visit::Other(rel, entry)
    }
}

impl EntrySource for FsSource<'_> {
    fn nothing_found(&self) -> bool {
        self.no_operand_found()
    }

    fn next(&mut self) -> Result<Option<SourceItem<'_>>> {
        // A file the builder stored whole can now be the target of hard links.
        if let Some(f) = self.current.take() {
            if let (Some(total), Some((key, path))) = (f.stored, f.link) {
                self.links.insert(key, (path, total));
            }
        }
        loop {
            if let Some((path, message, recorded)) = self.pending.pop_front() {
                return Ok(Some(if recorded {
                    SourceItem::Problem { path, message }
                } else {
                    SourceItem::Notice { path, message }
                }));
            }
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some((name, loc, node)) = top.todo.pop() else {
                let frame = self.stack.pop().expect("non-empty");
                if self.stack.is_empty() {
                    debug_assert!(frame.rel.is_empty(), "the root is the last frame");
                    return Ok(None);
                }
                return Ok(Some(SourceItem::LeaveDir));
            };
            let rel = join(&top.rel, &name);
            let dev = top.dev;
            match self.visit(rel, name, loc, node, dev) {
                Visit::Dir(frame, entry) => {
                    let path = frame.rel.clone();
                    self.stack.push(frame);
                    // Problems found while listing come after the entry.
                    return Ok(Some(SourceItem::EnterDir { path, entry }));
                }
                Visit::File(path, entry, file) => {
                    let data = self.current.insert(file);
                    return Ok(Some(SourceItem::File { path, entry, data }));
                }
                Visit::Other(path, entry) => return Ok(Some(SourceItem::Other { path, entry })),
                Visit::Skip => {}
            }
        }
    }
}

/// Builds the virtual tree of operands and the list of operands that name
/// the root itself (".", "/").
fn operand_tree(sources: &[Source]) -> (VNode, Vec<PathBuf>) {
    let mut root = VNode::default();
    let mut root_sources = Vec::new();
    for src in sources {
        let p = &src.path;
        let comps = member_components(p);
        if comps.is_empty() {
            root_sources.push(src.fs_path());
            continue;
        }
        let bytes = p.as_os_str().as_bytes();
        let mut prefix = if p.is_absolute() {
            PathBuf::from("/")
        } else {
            src.dir.clone()
        };
        // Intermediate nodes stand for the operand's own prefixes.
        let raw: Vec<&[u8]> = bytes
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        let mut walked = 0;
        let mut node = &mut root;
        for (i, c) in comps.iter().enumerate() {
            // Advance the fs prefix to the component that produced `c`.
            while walked < raw.len() {
                prefix.push(std::ffi::OsStr::from_bytes(raw[walked]));
                walked += 1;
                if raw[walked - 1] == c.as_slice() {
                    break;
                }
            }
            node = node.children.entry(c.clone()).or_default();
            node.fs_path = prefix.clone();
            if i == comps.len() - 1 {
                node.operand = true;
                node.fs_path = src.fs_path();
            }
        }
    }
    (root, root_sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_become_member_names() {
        let c = |s: &str| member_components(Path::new(s));
        assert_eq!(c("/a/b"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(c("./a//b/"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(c("../../x"), vec![b"x".to_vec()]);
        assert!(c(".").is_empty());
        assert!(c("/").is_empty());
    }

    #[test]
    fn operands_keep_their_base_directory() {
        let (root, _) = operand_tree(&[Source {
            dir: "/base".into(),
            path: "x/y".into(),
        }]);
        let x = &root.children[&b"x".to_vec()];
        assert_eq!(x.fs_path, PathBuf::from("/base/x"));
        assert_eq!(
            x.children[&b"y".to_vec()].fs_path,
            PathBuf::from("/base/x/y")
        );
        assert!(x.children[&b"y".to_vec()].operand);
    }
}
