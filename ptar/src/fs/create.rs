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

use crate::chunker::{ChunkStream, Chunker};
use crate::format::limits::{MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN};
use crate::format::snapshot::Summary;
use crate::format::tree::{Entry, EntryType, Extent, Payload, Timestamp};
use crate::format::{Id, Kind};
use crate::pattern::{exclude_match, CACHEDIR_SIGNATURE, VCS_NAMES};
use crate::progress::Progress;
use crate::store::{GenerationWriter, Sink};
use crate::tree::{write_content, write_directory};
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
}

/// What reading the sources produced.
#[derive(Debug, Default)]
pub struct CreateOutcome {
    /// Root tree id.
    pub root: Id,
    /// Counts.
    pub summary: Summary,
    /// Per-entry problems: (path, message). They are also kept in the snapshot.
    pub errors: Vec<(Vec<u8>, String)>,
    /// Whether some file changed while it was read.
    pub changed: bool,
}

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
        let st = match self {
            Loc::Path(p) => rustix::fs::statat(CWD, p, flags),
            Loc::At { dir, name } => rustix::fs::statat(dir, name.as_slice(), flags),
        };
        Ok(Meta(st?))
    }

    fn open(&self, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        match self {
            Loc::Path(p) => rustix::fs::openat(CWD, p, flags, Mode::empty()),
            Loc::At { dir, name } => rustix::fs::openat(dir, name.as_slice(), flags, Mode::empty()),
        }
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

    fn open_dir(&self, follow: bool) -> std::io::Result<OwnedFd> {
        let base = OFlags::RDONLY | OFlags::DIRECTORY;
        Ok(self.open(if follow {
            base
        } else {
            base | OFlags::NOFOLLOW
        })?)
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
    Entry {
        name,
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        user: owners::user_name(md.uid()),
        group: owners::group_name(md.gid()),
        mtime: ts(md.mtime(), md.mtime_nsec()),
        atime: ts(md.atime(), md.atime_nsec()),
        ctime: ts(md.ctime(), md.ctime_nsec()),
        dev: md.dev(),
        ino: md.ino(),
        nlink: md.nlink().min(u32::MAX as u64) as u32,
        size: 0,
        xattrs: Vec::new(),
        payload,
    }
}

fn synthetic_dir(name: Vec<u8>) -> Entry {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let t = Timestamp {
        sec: now.as_secs() as i64,
        nsec: now.subsec_nanos(),
    };
    Entry {
        name,
        kind: EntryType::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        user: Vec::new(),
        group: Vec::new(),
        mtime: t,
        atime: t,
        ctime: t,
        dev: 0,
        ino: 0,
        nlink: 1,
        size: 0,
        xattrs: Vec::new(),
        payload: Payload::Dir(Id::ZERO),
    }
}

/// A child waiting to be visited: name, file-system path, operand node if any.
type Todo = (Vec<u8>, Loc, Option<VNode>);

struct Frame {
    /// The directory's own entry (payload filled in when done); `None` for the root.
    entry: Option<Entry>,
    /// Path from the snapshot root.
    rel: Vec<u8>,
    /// (device, inode) of the directory, to stop symlink loops under `-h`.
    id: (u64, u64),
    /// Children still to visit, reversed so `pop` yields name order.
    todo: Vec<Todo>,
    built: Vec<Entry>,
}

struct Walker<'a, 'p, W: Sink> {
    w: &'a mut GenerationWriter<W>,
    chunker: &'a Chunker,
    policy: &'a CreatePolicy,
    progress: &'p dyn Progress,
    out: CreateOutcome,
    /// (device, inode) → (path of the first stored name, its size).
    links: HashMap<(u64, u64), (Vec<u8>, u64)>,
    skip: &'a [(u64, u64)],
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        let mut p = rel.to_vec();
        p.push(b'/');
        p.extend_from_slice(name);
        p
    }
}

enum Visit {
    Dir(Frame),
    Entry(Vec<u8>, Entry),
    Skip,
}

impl<W: Sink> Walker<'_, '_, W> {
    fn error(&mut self, path: &[u8], msg: String) {
        self.progress.warning(path, &msg);
        self.out.errors.push((path.to_vec(), msg));
    }

    fn excluded(&self, rel: &[u8], name: &[u8]) -> bool {
        (self.policy.exclude_vcs && VCS_NAMES.iter().any(|v| v.as_bytes() == name))
            || self.policy.exclude.iter().any(|p| exclude_match(p, rel))
    }

    fn is_cache_dir(dir: &OwnedFd) -> bool {
        let mut buf = [0u8; 43];
        rustix::fs::openat(
            dir,
            "CACHEDIR.TAG",
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
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
                .and_then(|fd| Ok((rustix::fs::Dir::read_from(&fd)?, fd)))
            {
                Ok((listing, fd)) => {
                    let caches = self.policy.exclude_caches && Walker::<W>::is_cache_dir(&fd);
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
        let names = if follow {
            xattr::list_deref(path)
        } else {
            xattr::list(path)
        };
        let names = match names {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => {
                return Vec::new()
            }
            Err(e) => {
                self.error(rel, format!("cannot list extended attributes: {e}"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for n in names {
            let name = n.into_vec();
            let value = if follow {
                xattr::get_deref(path, std::ffi::OsStr::from_bytes(&name))
            } else {
                xattr::get(path, std::ffi::OsStr::from_bytes(&name))
            };
            match value {
                Ok(Some(v))
                    if name.len() <= MAX_XATTR_NAME_LEN
                        && v.len() <= MAX_XATTR_VALUE_LEN
                        && !name.is_empty() =>
                {
                    out.push((name, v))
                }
                Ok(Some(_)) => self.error(
                    rel,
                    format!(
                        "extended attribute {} is too large to store",
                        String::from_utf8_lossy(&name)
                    ),
                ),
                Ok(None) => {}
                Err(e) => self.error(
                    rel,
                    format!(
                        "cannot read extended attribute {}: {e}",
                        String::from_utf8_lossy(&name)
                    ),
                ),
            }
        }
        out.sort();
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

    fn read_file(
        &mut self,
        rel: &[u8],
        loc: &Loc,
        md: &Meta,
        follow: bool,
    ) -> Result<Option<(Vec<Extent>, u64)>> {
        let mut file = match loc.open_file(follow) {
            Ok(f) => f,
            Err(e) => {
                self.error(rel, format!("cannot open: {e}"));
                return Ok(None);
            }
        };
        // A file with fewer allocated blocks than its length has holes.
        let sparse = md.blocks().saturating_mul(512) < md.len();
        let ranges = if sparse {
            Walker::<W>::data_ranges(&file, md.len()).ok()
        } else {
            None
        };
        let ranges = ranges.unwrap_or_else(|| vec![(0, u64::MAX)]);
        let mut extents = Vec::new();
        let mut total = 0u64;
        for (start, end) in ranges {
            if start > total {
                extents.push(Extent::Hole { len: start - total });
                total = start;
            }
            if let Err(e) = file.seek(SeekFrom::Start(start)) {
                self.error(rel, format!("seek error: {e}"));
                return Ok(None);
            }
            let mut stream = ChunkStream::new(self.chunker, (&file).take(end - start));
            loop {
                let chunk = match stream.next_chunk() {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        self.error(rel, format!("read error: {e}"));
                        return Ok(None);
                    }
                };
                let len = chunk.len() as u32;
                let id = self.w.put_blob(Kind::Chunk, chunk)?;
                self.progress.bytes(len as u64);
                total += len as u64;
                extents.push(Extent::Data { len, id });
            }
        }
        if sparse && total < md.len() {
            extents.push(Extent::Hole {
                len: md.len() - total,
            });
            total = md.len();
        }
        if let Ok(after) = file.metadata() {
            if after.len() != md.len()
                || after.mtime() != md.mtime()
                || after.mtime_nsec() != md.mtime_nsec()
                || total != md.len()
            {
                self.out.changed = true;
                self.error(rel, CHANGED.into());
            }
        }
        Ok(Some((extents, total)))
    }

    /// Builds the entry for one child; directories return a new frame instead.
    fn visit(
        &mut self,
        rel: Vec<u8>,
        name: Vec<u8>,
        loc: Loc,
        node: Option<VNode>,
        dev: Option<u64>,
        ancestors: &[(u64, u64)],
    ) -> Result<Visit> {
        // Operands and the directories that lead to them are filtered too.
        if node.is_some() && self.excluded(&rel, &name) {
            return Ok(Visit::Skip);
        }
        // A directory that only leads to an operand (`/proc/self` in
        // `/proc/self/stat`) is followed like the operand's path is.
        let leads_to_operand = node.as_ref().is_some_and(|n| !n.operand);
        let follow = self.policy.follow_symlinks || leads_to_operand;
        let stat = if follow {
            loc.stat(true).or_else(|_| loc.stat(false))
        } else {
            loc.stat(false)
        };
        let md = match stat {
            Ok(md) => md,
            Err(e) => {
                if let Some(n) = node.filter(|n| !n.operand) {
                    // An intermediate directory of an operand we cannot stat.
                    let todo = self.children(&rel, &loc, false, true, n.children);
                    return Ok(Visit::Dir(Frame {
                        entry: Some(synthetic_dir(name)),
                        rel,
                        id: (0, 0),
                        todo,
                        built: Vec::new(),
                    }));
                }
                self.error(&rel, format!("cannot stat: {e}"));
                return Ok(Visit::Skip);
            }
        };
        if self.skip.contains(&(md.dev(), md.ino())) {
            self.progress
                .warning(&rel, "file is the archive; not dumped");
            return Ok(Visit::Skip);
        }
        let ft = md.file_type();
        let xattrs = self.xattrs(&rel, &loc, follow);
        if ft.is_dir() {
            let id = (md.dev(), md.ino());
            if follow && ancestors.contains(&id) {
                self.error(
                    &rel,
                    "directory loop through a followed symlink; not descended".into(),
                );
                return Ok(Visit::Skip);
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
            return Ok(Visit::Dir(Frame {
                entry: Some(e),
                rel,
                id,
                todo,
                built: Vec::new(),
            }));
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
                    self.out.summary.hardlinks += 1;
                    return Ok(Visit::Entry(rel, e));
                }
            }
            let Some((extents, total)) = self.read_file(&rel, &loc, &md, follow)? else {
                return Ok(Visit::Skip);
            };
            // Only a name whose content was stored can be linked to.
            if md.nlink() > 1 {
                self.links
                    .insert((md.dev(), md.ino()), (rel.clone(), total));
            }
            let content = write_content(self.w, extents)?;
            let mut e = entry_from(name, EntryType::File, &md, Payload::File(content));
            e.size = total;
            self.out.summary.files += 1;
            self.out.summary.total_size += total;
            e
        } else if ft.is_symlink() {
            match loc.read_link() {
                Ok(t) if !t.is_empty() => {
                    self.out.summary.symlinks += 1;
                    entry_from(name, EntryType::Symlink, &md, Payload::Symlink(t))
                }
                Ok(_) => {
                    self.error(&rel, "symlink with an empty target".into());
                    return Ok(Visit::Skip);
                }
                Err(e) => {
                    self.error(&rel, format!("cannot read link: {e}"));
                    return Ok(Visit::Skip);
                }
            }
        } else if ft.is_socket() {
            self.progress.warning(&rel, "socket ignored");
            return Ok(Visit::Skip);
        } else {
            self.out.summary.others += 1;
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
        Ok(Visit::Entry(rel, entry))
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

/// Reads `sources` into a tree stored through `w`, returning its root id and
/// what was seen. Files whose (device, inode) is in `skip` (the archive being
/// written) are left out with a warning.
pub fn add_paths<W: Sink>(
    w: &mut GenerationWriter<W>,
    chunker: &Chunker,
    sources: &[Source],
    policy: &CreatePolicy,
    skip: &[(u64, u64)],
    progress: &dyn Progress,
) -> Result<CreateOutcome> {
    let (mut root, root_sources) = operand_tree(sources);
    let mut walker = Walker {
        w,
        chunker,
        policy,
        progress,
        out: CreateOutcome::default(),
        links: HashMap::new(),
        skip,
    };
    let mut merged: BTreeMap<Vec<u8>, (Loc, Option<VNode>)> = BTreeMap::new();
    for src in &root_sources {
        for (n, p, v) in walker.children(
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
    let mut stack = vec![Frame {
        entry: None,
        rel: Vec::new(),
        id: (0, 0),
        todo,
        built: Vec::new(),
    }];
    // The device each operand lives on, for --one-file-system.
    let mut devs: Vec<Option<u64>> = vec![None];
    loop {
        let top = stack.last_mut().expect("root frame stays until the end");
        if let Some((name, path, node)) = top.todo.pop() {
            let rel = join(&top.rel, &name);
            let dev = *devs.last().expect("one per frame");
            let ancestors: Vec<(u64, u64)> = stack.iter().map(|f| f.id).collect();
            let is_operand = node.as_ref().is_some_and(|n| n.operand);
            match walker.visit(rel, name, path, node, dev, &ancestors)? {
                Visit::Dir(f) => {
                    if let Some(e) = &f.entry {
                        walker.progress.entry(&f.rel, e);
                    }
                    devs.push(if is_operand || dev.is_none() && f.id != (0, 0) {
                        Some(f.id.0)
                    } else {
                        dev
                    });
                    stack.push(f)
                }
                Visit::Entry(rel, e) => {
                    walker.progress.entry(&rel, &e);
                    stack.last_mut().expect("frame").built.push(e);
                }
                Visit::Skip => {}
            }
            continue;
        }
        let frame = stack.pop().expect("frame");
        devs.pop();
        let mut built = frame.built;
        built.sort_by(|a, b| a.name.cmp(&b.name));
        built.dedup_by(|a, b| a.name == b.name);
        let id = write_directory(walker.w, built)?;
        match frame.entry {
            Some(mut e) => {
                e.payload = Payload::Dir(id);
                walker.out.summary.dirs += 1;
                stack
                    .last_mut()
                    .expect("a directory frame has a parent")
                    .built
                    .push(e);
            }
            None => {
                walker.out.root = id;
                break;
            }
        }
    }
    Ok(walker.out)
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
