//! Extracting a snapshot into a directory.
//!
//! Every path is resolved relative to an open directory handle, one name at
//! a time, never following a symlink: a file is created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` inside the handle of its parent,
//! directories are opened with `O_NOFOLLOW | O_DIRECTORY`, and metadata is
//! set through file descriptors or `AT_SYMLINK_NOFOLLOW`. Entry names were
//! already checked by the tree parser (no '/', '.', '..' or NUL), so no entry
//! can name a place outside the destination, and the destination root itself
//! cannot be named by any entry.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, CWD};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::format::tree::{Entry, EntryType, Extent, Payload, Timestamp};
use crate::format::Id;
use crate::progress::Progress;
use crate::sink::{EntrySink, FileContent, Flow};
use crate::store::Store;
use crate::{Error, Region, Result};

use super::owners;

/// What to do when a file is already where an entry goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Existing {
    /// Replace it (unlink, then create): tar's default, and `-U`.
    #[default]
    Replace,
    /// Keep it and report an error (`-k`).
    KeepOld,
    /// Keep it when it is newer than the archived copy (`--keep-newer-files`).
    KeepNewer,
}

/// Which members to extract.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Member names or shell patterns (`*`, `?`, `[...]`); a directory
    /// selects everything under it. Empty: everything.
    pub patterns: Vec<Vec<u8>>,
}

impl Selection {
    fn is_pattern(p: &[u8]) -> bool {
        p.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
    }

    /// Index of the first pattern that selects `path`.
    pub fn selects(&self, path: &[u8]) -> Option<usize> {
        self.patterns.iter().position(|p| {
            let p = p.strip_suffix(b"/").unwrap_or(p);
            if Selection::is_pattern(p) {
                // The pattern may name the entry or any directory above it.
                std::iter::once(path.len())
                    .chain(
                        path.iter()
                            .enumerate()
                            .filter(|(_, &b)| b == b'/')
                            .map(|(i, _)| i),
                    )
                    .any(|end| crate::pattern::glob_match(p, &path[..end]))
            } else {
                path == p || (path.len() > p.len() && path.starts_with(p) && path[p.len()] == b'/')
            }
        })
    }

    /// Whether a directory at `path` may hold selected entries.
    pub fn may_hold(&self, path: &[u8]) -> bool {
        self.patterns.iter().any(|p| {
            Selection::is_pattern(p)
                || (p.len() > path.len() && p.starts_with(path) && p[path.len()] == b'/')
        })
    }
}

/// Extraction policy, in the manner of tar's options.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Restore every permission bit, ignoring the umask (tar's `-p`; the
    /// default for root). setuid/setgid are kept only for root. Otherwise
    /// setuid/setgid and group/other write are cleared and the umask applies.
    pub preserve_permissions: bool,
    /// Restore modification and access times (tar: on unless `-m`).
    pub restore_times: bool,
    /// Restore ownership (`--same-owner`; the default for root).
    pub same_owner: bool,
    /// Use the stored uid/gid, not the user and group names (`--numeric-owner`).
    pub numeric_owner: bool,
    /// Restore extended attributes: `user.*` always, `trusted.*` and
    /// `security.*` as root (`--xattrs`, on by default).
    pub xattrs: bool,
    /// Restore POSIX ACLs (`--acls`, on by default).
    pub acls: bool,
    /// Create device nodes (only possible as root; the default for root).
    pub devices: bool,
    /// Allow symlinks and hard links whose targets lie outside the destination (`-P`).
    pub allow_outside_links: bool,
    /// What to do about files already there.
    pub existing: Existing,
    /// Drop this many leading components of every member name.
    pub strip_components: usize,
    /// Members to extract.
    pub selection: Selection,
    /// Most content bytes to write; by default what the snapshot declares.
    pub max_bytes: Option<u64>,
    /// Most entries to create; by default what the snapshot declares.
    pub max_entries: Option<u64>,
    /// Threads that write file contents while the snapshot is walked (1 or
    /// 0: write on the calling thread). Default: one per core.
    pub threads: usize,
}

impl Default for ExtractOptions {
    fn default() -> ExtractOptions {
        let root = rustix::process::geteuid().is_root();
        ExtractOptions {
            preserve_permissions: root,
            restore_times: true,
            same_owner: root,
            numeric_owner: false,
            xattrs: true,
            acls: true,
            devices: root,
            allow_outside_links: false,
            existing: Existing::Replace,
            strip_components: 0,
            selection: Selection::default(),
            max_bytes: None,
            max_entries: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// What an extraction did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ExtractOutcome {
    /// Regular files written.
    pub files: u64,
    /// Directories created or reused.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Fifos and device nodes created.
    pub others: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Per-entry failures: (path, message).
    pub errors: Vec<(Vec<u8>, String)>,
    /// Selection patterns that matched nothing.
    pub unmatched: Vec<Vec<u8>>,
}

fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec as _,
    }
}

fn errno(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Drops `n` leading components; `None` when nothing is left.
fn strip(path: &[u8], n: usize) -> Option<&[u8]> {
    let mut rest = path;
    for _ in 0..n {
        let i = rest.iter().position(|&b| b == b'/')?;
        rest = &rest[i + 1..];
    }
    (!rest.is_empty()).then_some(rest)
}

/// Whether a relative symlink target, read from the directory `dir_depth`
/// levels below the destination, stays inside it.
fn target_stays_inside(target: &[u8], dir_depth: usize) -> bool {
    if target.first() == Some(&b'/') {
        return false;
    }
    let mut depth = dir_depth as i64;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

/// One open directory of the extraction.
struct Frame {
    fd: Arc<OwnedFd>,
    /// The directory's own entry, applied when it is done; `None` for the
    /// destination, for directories removed by --strip-components, and for
    /// directories that only lead to selected members.
    own: Option<Entry>,
    /// (device, inode) → name of what this extraction created here, to catch
    /// names the file system folds together (case, Unicode normalization).
    created: HashMap<(u64, u64), Vec<u8>>,
}

/// How metadata is applied: the part of the options a writer thread needs.
#[derive(Clone, Copy)]
struct Meta<'a> {
    opts: &'a ExtractOptions,
    mask: u32,
    is_root: bool,
}

impl Meta<'_> {
    fn mode_of(&self, e: &Entry) -> Mode {
        let m = if self.opts.preserve_permissions {
            if self.is_root {
                e.mode & 0o7777
            } else {
                e.mode & 0o1777
            }
        } else {
            e.mode & 0o1755 & !self.mask
        };
        Mode::from_raw_mode(m)
    }
    fn times(&self, e: &Entry) -> Option<Timestamps> {
        self.opts.restore_times.then(|| Timestamps {
            last_access: timespec(e.atime),
            last_modification: timespec(e.mtime),
        })
    }
    fn owner(&self, e: &Entry) -> (Uid, Gid) {
        let uid = if self.opts.numeric_owner || e.user.is_empty() {
            None
        } else {
            owners::user_id(&e.user)
        };
        let gid = if self.opts.numeric_owner || e.group.is_empty() {
            None
        } else {
            owners::group_id(&e.group)
        };
        (
            Uid::from_raw(uid.unwrap_or(e.uid)),
            Gid::from_raw(gid.unwrap_or(e.gid)),
        )
    }
    /// Sets ownership, mode, xattrs and times through an open descriptor.
    fn apply_fd(&self, fd: &OwnedFd, e: &Entry) -> std::io::Result<()> {
        if self.opts.same_owner {
            let (u, g) = self.owner(e);
            rustix::fs::fchown(fd, Some(u), Some(g)).map_err(errno)?;
        }
        rustix::fs::fchmod(fd, self.mode_of(e)).map_err(errno)?;
        self.apply_xattrs(fd, e)?;
        if let Some(t) = self.times(e) {
            rustix::fs::futimens(fd, &t).map_err(errno)?;
        }
        Ok(())
    }
    /// Sets ownership, optionally the mode, and times by name in `parent`,
    /// for what cannot be opened (symlinks, device nodes). Ownership and times
    /// do not follow a symlink; the mode is only set on device nodes, just
    /// created in a directory handle of ours.
    fn apply_by_name(&self, parent: &OwnedFd, e: &Entry, chmod: bool) -> std::io::Result<()> {
        let name = e.name.as_slice();
        if self.opts.same_owner {
            let (u, g) = self.owner(e);
            rustix::fs::chownat(parent, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(errno)?;
        }
        if chmod {
            rustix::fs::chmodat(parent, name, self.mode_of(e), AtFlags::empty()).map_err(errno)?;
        }
        if let Some(t) = self.times(e) {
            rustix::fs::utimensat(parent, name, &t, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        }
        Ok(())
    }
    fn apply_xattrs(&self, fd: &OwnedFd, e: &Entry) -> std::io::Result<()> {
        if e.xattrs.is_empty() || !(self.opts.xattrs || self.opts.acls) {
            return Ok(());
        }
        let f = File::from(fd.try_clone()?);
        for (k, v) in &e.xattrs {
            let wanted = if k.starts_with(b"system.posix_acl_") {
                self.opts.acls
            } else if k.starts_with(b"user.") {
                self.opts.xattrs
            } else if k.starts_with(b"trusted.") || k.starts_with(b"security.") {
                self.opts.xattrs && self.is_root
            } else {
                false
            };
            if wanted {
                use xattr::FileExt;
                f.set_xattr(std::ffi::OsStr::from_bytes(k), v)
                    .map_err(|err| {
                        std::io::Error::new(
                            err.kind(),
                            format!(
                                "cannot set extended attribute {}: {err}",
                                String::from_utf8_lossy(k)
                            ),
                        )
                    })?;
            }
        }
        Ok(())
    }
}

/// A regular file created by the sink, handed to a writer thread to fill
/// and finish (content, then ownership, mode, attributes and times).
struct FileJob {
    file: File,
    dir: Arc<OwnedFd>,
    entry: Entry,
    path: Vec<u8>,
    extents: Vec<Extent>,
}

/// What writer threads report back.
#[derive(Default)]
struct Written {
    files: AtomicU64,
    bytes: AtomicU64,
    failures: Mutex<Vec<(Vec<u8>, String)>>,
}

/// Writes the data extents and seeks over holes, then sets the length if
/// the file ends in a hole. Returns the bytes written.
fn fill(
    file: &mut File,
    content: &FileContent<'_>,
    extents: &[Extent],
    size: u64,
    progress: &dyn Progress,
    buf: &mut Vec<u8>,
) -> Result<u64> {
    // Chunks are gathered into `buf` (the caller's, reused from file to
    // file) and written WRITE_BUF at a time; a chunk that large goes
    // straight from its record to the file.
    buf.clear();
    let mut written = 0;
    for ext in extents {
        match *ext {
            Extent::Data { len, id } => {
                content.with_chunk(&id, len, |data| -> std::io::Result<()> {
                    if buf.len() + data.len() > WRITE_BUF {
                        file.write_all(buf)?;
                        buf.clear();
                    }
                    if data.len() >= WRITE_BUF {
                        file.write_all(data)
                    } else {
                        buf.extend_from_slice(data);
                        Ok(())
                    }
                })??;
                written += len as u64;
                progress.bytes(len as u64);
            }
            Extent::Hole { len } => {
                file.write_all(buf)?;
                buf.clear();
                file.seek(SeekFrom::Current(len as i64))?;
            }
        }
    }
    file.write_all(buf)?;
    buf.clear();
    // A trailing hole needs the length set; data to the end already has it.
    if !matches!(extents.last(), Some(Extent::Data { .. })) {
        file.set_len(size)?;
    }
    Ok(written)
}

/// Bytes gathered before a write to an extracted file.
const WRITE_BUF: usize = 1 << 20;

/// Fills a created file and applies its metadata; a file whose content
/// cannot be written whole is removed again.
fn finish_file(
    store: &Store,
    meta: Meta<'_>,
    job: FileJob,
    progress: &dyn Progress,
    buf: &mut Vec<u8>,
) -> Result<u64> {
    let FileJob {
        mut file,
        dir,
        entry,
        extents,
        ..
    } = job;
    let content = FileContent::new(store, &entry);
    let written = match fill(&mut file, &content, &extents, entry.size, progress, buf) {
        Ok(n) => n,
        Err(err) => {
            drop(file);
            let _ = rustix::fs::unlinkat(&*dir, entry.name.as_slice(), AtFlags::empty());
            return Err(err);
        }
    };
    meta.apply_fd(&OwnedFd::from(file), &entry)?;
    Ok(written)
}

/// The file-system sink: writes entries below a destination directory.
pub struct FsSink<'a> {
    root: OwnedFd,
    opts: &'a ExtractOptions,
    mask: u32,
    is_root: bool,
    progress: &'a dyn Progress,
    out: ExtractOutcome,
    /// Stripped paths of regular files written in this run.
    files_done: HashSet<Vec<u8>>,
    budget: u64,
    entries_left: u64,
    matched: Vec<bool>,
    frames: Vec<Frame>,
    /// Writer threads that fill and finish regular files, when extracting
    /// with more than one thread.
    jobs: Option<mpsc::SyncSender<FileJob>>,
    /// Where this thread gathers a file's chunks before writing them.
    write_buf: Vec<u8>,
}

impl<'a> FsSink<'a> {
    /// A sink writing below `dest` (created if missing). `declared` is the
    /// default output budget: the content size and the number of entries the
    /// snapshot declares.
    pub fn new(
        dest: &Path,
        declared: (u64, u64),
        opts: &'a ExtractOptions,
        progress: &'a dyn Progress,
    ) -> Result<FsSink<'a>> {
        std::fs::create_dir_all(dest).map_err(|e| Error::io_at(dest, e))?;
        let root = rustix::fs::openat(
            CWD,
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io_at(dest, errno(e)))?;
        let frames = vec![Frame {
            fd: Arc::new(root.try_clone()?),
            own: None,
            created: HashMap::new(),
        }];
        Ok(FsSink {
            root,
            opts,
            mask: umask(),
            is_root: rustix::process::geteuid().is_root(),
            progress,
            out: ExtractOutcome::default(),
            files_done: HashSet::new(),
            budget: opts.max_bytes.unwrap_or(declared.0),
            entries_left: opts.max_entries.unwrap_or(declared.1),
            matched: vec![false; opts.selection.patterns.len()],
            frames,
            jobs: None,
            write_buf: Vec::new(),
        })
    }

    /// What was done; per-entry failures are added by the caller.
    pub fn finish(mut self) -> ExtractOutcome {
        self.jobs = None;
        self.out.unmatched = self
            .opts
            .selection
            .patterns
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| !**m)
            .map(|(p, _)| p.clone())
            .collect();
        self.out
    }

    fn selected(&mut self, path: &[u8]) -> bool {
        if self.opts.selection.patterns.is_empty() {
            return true;
        }
        match self.opts.selection.selects(path) {
            Some(i) => {
                self.matched[i] = true;
                true
            }
            None => false,
        }
    }

    /// Whether a non-directory at `path` is extracted: selected, not above
    /// the --strip-components cut, and within the entry budget. Returns the
    /// path it gets in the destination.
    fn admit(&mut self, path: &[u8]) -> Result<Option<Vec<u8>>> {
        if !self.selected(path) {
            return Ok(None);
        }
        let Some(out_path) = strip(path, self.opts.strip_components) else {
            return Ok(None);
        };
        let out_path = out_path.to_vec();
        self.count_entry()?;
        Ok(Some(out_path))
    }

    /// Takes one entry from the entry budget.
    fn count_entry(&mut self) -> Result<()> {
        if self.entries_left == 0 {
            return Err(Error::LimitExceeded(
                "more entries than the snapshot declares (--max-entries sets another limit); extraction stopped".into(),
            ));
        }
        self.entries_left -= 1;
        Ok(())
    }

    fn parent(&self) -> std::io::Result<Arc<OwnedFd>> {
        Ok(self
            .frames
            .last()
            .expect("the destination frame stays")
            .fd
            .clone())
    }

    /// The metadata policy, for this thread or a writer thread.
    fn meta(&self) -> Meta<'a> {
        Meta {
            opts: self.opts,
            mask: self.mask,
            is_root: self.is_root,
        }
    }

    /// Makes room for a new entry at `name`. A directory in the way is an
    /// error; anything else is removed unless the policy keeps it. Returns
    /// false when the entry must be skipped.
    fn make_room(&mut self, dir: &OwnedFd, name: &[u8], e: &Entry, rel: &[u8]) -> Result<bool> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(true),
            Err(err) => return Err(errno(err).into()),
        };
        self.check_collision(name, &st)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(Error::InvalidInput("a directory is in the way".into()));
        }
        match self.opts.existing {
            Existing::KeepOld => {
                return Err(Error::InvalidInput(
                    "already exists; not replaced (-k)".into(),
                ))
            }
            Existing::KeepNewer => {
                let theirs = (st.st_mtime as i64, st.st_mtime_nsec as u32);
                if theirs >= (e.mtime.sec, e.mtime.nsec) {
                    self.progress
                        .warning(rel, "is newer or as old as the archived copy; not replaced");
                    return Ok(false);
                }
            }
            Existing::Replace => {}
        }
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno)?;
        Ok(true)
    }
    /// Refuses a name that the file system resolves to something this
    /// extraction already created in the same directory under another name
    /// (a case-insensitive or normalizing file system folding two entries).
    fn check_collision(&self, name: &[u8], st: &rustix::fs::Stat) -> Result<()> {
        let created = &self
            .frames
            .last()
            .expect("the destination frame stays")
            .created;
        match created.get(&(st.st_dev, st.st_ino)) {
            Some(other) if other.as_slice() != name => Err(Error::InvalidInput(format!(
                "collides with '{}' on this file system (names folded together); not extracted",
                String::from_utf8_lossy(other)
            ))),
            _ => Ok(()),
        }
    }

    /// Remembers what was just created as `name` in the current directory.
    fn record(&mut self, parent: &OwnedFd, name: &[u8]) {
        if let Ok(st) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            let frame = self.frames.last_mut().expect("the destination frame stays");
            frame.created.insert((st.st_dev, st.st_ino), name.to_vec());
        }
    }

    fn make_dir(&self, parent: &OwnedFd, name: &[u8]) -> std::io::Result<OwnedFd> {
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(errno(e)),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                // A non-directory (or a symlink) is in the way: replace it.
                rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(errno)?;
                rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)).map_err(errno)?;
                rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(errno)
            }
            Err(e) => Err(errno(e)),
        }
    }
    fn link_target_dir(&self, target: &[u8]) -> Result<(OwnedFd, Vec<u8>)> {
        let (dir, base) = match target.iter().rposition(|&b| b == b'/') {
            Some(i) => (&target[..i], &target[i + 1..]),
            None => (&b""[..], target),
        };
        let oflags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let dfd = if dir.is_empty() {
            rustix::fs::openat(&self.root, ".", oflags, Mode::empty()).map_err(errno)?
        } else {
            rustix::fs::openat2(&self.root, dir, oflags, Mode::empty(), resolve).map_err(errno)?
        };
        Ok((dfd, base.to_vec()))
    }

    fn write_file(
        &mut self,
        dir: &Arc<OwnedFd>,
        e: &Entry,
        rel: &[u8],
        content: &mut FileContent<'_>,
    ) -> Result<bool> {
        content.extents()?;
        if e.size > self.budget {
            return Err(Error::LimitExceeded(format!(
                "writing {} more bytes would exceed the output budget (what the snapshot declares, or --max-output); extraction stopped",
                e.size
            )));
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let create =
            || rustix::fs::openat(dir, e.name.as_slice(), flags, Mode::from_raw_mode(0o600));
        // Into an empty place the exclusive create is all it takes; only a
        // name already there (a file to replace or keep, a directory or a
        // symlink in the way, or a folded name) goes through make_room.
        let fd = match create() {
            Err(Errno::EXIST) => {
                if !self.make_room(dir, &e.name, e, rel)? {
                    return Ok(false);
                }
                create().map_err(errno)?
            }
            other => other.map_err(errno)?,
        };
        let file = File::from(fd);
        self.budget -= e.size;
        let job = FileJob {
            file,
            dir: dir.clone(),
            entry: e.clone(),
            path: rel.to_vec(),
            extents: content.extents()?.to_vec(),
        };
        match &self.jobs {
            Some(tx) => {
                tx.send(job).map_err(|_| Error::Io {
                    path: None,
                    source: std::io::Error::other("the extraction's writer threads stopped"),
                })?;
            }
            None => {
                let mut buf = std::mem::take(&mut self.write_buf);
                let n = finish_file(content.store(), self.meta(), job, self.progress, &mut buf);
                self.write_buf = buf;
                let n = n?;
                self.out.bytes += n;
                self.out.files += 1;
            }
        }
        Ok(true)
    }
}

impl EntrySink for FsSink<'_> {
    fn enter_dir(&mut self, path: &[u8], e: &Entry) -> Result<Flow> {
        let selected = self.selected(path);
        if !selected && !self.opts.selection.may_hold(path) {
            return Ok(Flow::Skip);
        }
        // --strip-components: directories above the cut are not created;
        // their entries go into the destination itself.
        if strip(path, self.opts.strip_components).is_none() {
            self.frames.push(Frame {
                fd: Arc::new(self.root.try_clone()?),
                own: None,
                created: HashMap::new(),
            });
            return Ok(Flow::Take);
        }
        self.count_entry()?;
        let parent = self.parent()?;
        if let Ok(st) = rustix::fs::statat(&parent, e.name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            self.check_collision(&e.name, &st)?;
        }
        let fd = self.make_dir(&parent, &e.name)?;
        self.record(&parent, &e.name);
        self.out.dirs += 1;
        // A directory that only leads to selected members gets no metadata of its own.
        self.frames.push(Frame {
            fd: Arc::new(fd),
            own: selected.then(|| e.clone()),
            created: HashMap::new(),
        });
        Ok(Flow::Take)
    }

    fn leave_dir(&mut self, _path: &[u8], _e: &Entry) -> Result<()> {
        let frame = self.frames.pop().expect("pushed by enter_dir");
        if let Some(own) = frame.own {
            self.meta().apply_fd(&frame.fd, &own).map_err(|err| {
                Error::InvalidInput(format!("cannot set directory metadata: {err}"))
            })?;
        }
        Ok(())
    }

    fn file(&mut self, path: &[u8], e: &Entry, content: &mut FileContent<'_>) -> Result<Flow> {
        let Some(out_path) = self.admit(path)? else {
            return Ok(Flow::Skip);
        };
        let parent = self.parent()?;
        if !self.write_file(&parent, e, path, content)? {
            return Ok(Flow::Skip);
        }
        self.record(&parent, &e.name);
        // Only a file with other names can be a hard link's target (the
        // writer stores a hard link to the first name of a file whose link
        // count is above 1); remembering just those keeps memory flat.
        if e.nlink > 1 {
            self.files_done.insert(out_path);
        }
        Ok(Flow::Take)
    }

    fn other(&mut self, path: &[u8], e: &Entry) -> Result<Flow> {
        let Some(out_path) = self.admit(path)? else {
            return Ok(Flow::Skip);
        };
        let parent = self.parent()?;
        let parent = &parent;
        let rel = path;
        match (&e.kind, &e.payload) {
            (EntryType::Symlink, Payload::Symlink(target)) => {
                let depth = out_path.iter().filter(|&&b| b == b'/').count();
                if !self.opts.allow_outside_links && !target_stays_inside(target, depth) {
                    return Err(Error::InvalidInput(format!(
                        "symlink to '{}' points outside the destination; not created (-P allows it)",
                        String::from_utf8_lossy(target)
                    )));
                }
                if !self.make_room(parent, &e.name, e, rel)? {
                    return Ok(Flow::Skip);
                }
                rustix::fs::symlinkat(target.as_slice(), parent, e.name.as_slice())
                    .map_err(errno)?;
                self.record(parent, &e.name);
                self.meta().apply_by_name(parent, e, false)?;
                self.out.symlinks += 1;
            }
            (EntryType::Hardlink, Payload::Hardlink(target)) => {
                let target = strip(target, self.opts.strip_components).unwrap_or(b"");
                if !self.files_done.contains(target) {
                    return Err(Error::InvalidInput(format!(
                        "hard link to '{}', which this extraction did not write as a regular file",
                        String::from_utf8_lossy(target)
                    )));
                }
                let (dfd, base) = self.link_target_dir(target)?;
                if !self.make_room(parent, &e.name, e, rel)? {
                    return Ok(Flow::Skip);
                }
                rustix::fs::linkat(
                    &dfd,
                    base.as_slice(),
                    parent,
                    e.name.as_slice(),
                    AtFlags::empty(),
                )
                .map_err(errno)?;
                self.out.hardlinks += 1;
            }
            (EntryType::Fifo, _) | (EntryType::CharDevice, _) | (EntryType::BlockDevice, _) => {
                let (ft, dev) = match (&e.kind, &e.payload) {
                    (EntryType::Fifo, _) => (FileType::Fifo, 0),
                    (EntryType::CharDevice, Payload::Device { major, minor }) => (
                        FileType::CharacterDevice,
                        rustix::fs::makedev(*major, *minor),
                    ),
                    (EntryType::BlockDevice, Payload::Device { major, minor }) => {
                        (FileType::BlockDevice, rustix::fs::makedev(*major, *minor))
                    }
                    _ => {
                        return Err(Error::corrupt(
                            Region::Blob {
                                id: String::new(),
                                kind: "tree",
                            },
                            "device entry without numbers",
                        ))
                    }
                };
                if ft != FileType::Fifo && !(self.opts.devices && self.is_root) {
                    self.progress
                        .warning(rel, "device node not created (only root creates devices)");
                    return Ok(Flow::Skip);
                }
                if !self.make_room(parent, &e.name, e, rel)? {
                    return Ok(Flow::Skip);
                }
                rustix::fs::mknodat(
                    parent,
                    e.name.as_slice(),
                    ft,
                    Mode::from_raw_mode(0o600),
                    dev,
                )
                .map_err(errno)?;
                self.record(parent, &e.name);
                if ft == FileType::Fifo {
                    // A fifo opens without blocking and without following;
                    // its metadata is then set through the descriptor.
                    let flags =
                        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let fd = rustix::fs::openat(parent, e.name.as_slice(), flags, Mode::empty())
                        .map_err(errno)?;
                    self.meta().apply_fd(&fd, e)?;
                } else {
                    // Opening a device node can have side effects: set its
                    // metadata by name (it was created just now, in a
                    // directory handle of ours).
                    self.meta().apply_by_name(parent, e, true)?;
                }
                self.out.others += 1;
            }
            (EntryType::Socket, _) => {
                self.progress.warning(rel, "socket not recreated");
                return Ok(Flow::Skip);
            }
            (k, _) => {
                return Err(Error::corrupt(
                    Region::Blob {
                        id: String::new(),
                        kind: "tree",
                    },
                    format!("{k:?} entry with a mismatched payload"),
                ));
            }
        }
        Ok(Flow::Take)
    }
}

/// Extracts the tree `root` of `store` into `dest` (created if missing).
/// `declared` is the content size and the number of entries the snapshot
/// declares: the default output budgets, against archives that reference one
/// chunk or one subtree a million times. Running out of either stops the
/// extraction with [`Error::LimitExceeded`].
pub fn extract(
    store: &Store,
    root: &Id,
    declared: (u64, u64),
    dest: &Path,
    opts: &ExtractOptions,
    progress: &dyn Progress,
) -> Result<ExtractOutcome> {
    let mut sink = FsSink::new(dest, declared, opts, progress)?;
    if opts.threads <= 1 {
        let failures = crate::sink::export(store, root, &mut sink, progress)?;
        let mut out = sink.finish();
        out.errors = failures;
        return Ok(out);
    }
    // This thread walks the snapshot and creates every entry (all checks on
    // names, links and budgets happen here, in order); writer threads fill
    // the regular files it created and set their metadata. Directories get
    // their own metadata when this thread leaves them, which writing into a
    // file already created there does not change.
    let written = Written::default();
    let meta = sink.meta();
    let (tx, rx) = mpsc::sync_channel::<FileJob>(opts.threads * 4);
    let rx = Mutex::new(rx);
    let (walked, mut out) = std::thread::scope(|scope| {
        for _ in 0..opts.threads {
            scope.spawn(|| {
                let mut buf = Vec::with_capacity(WRITE_BUF);
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let path = job.path.clone();
                    match finish_file(store, meta, job, progress, &mut buf) {
                        Ok(n) => {
                            written.bytes.fetch_add(n, Ordering::Relaxed);
                            written.files.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => {
                            let msg = err.to_string();
                            progress.warning(&path, &msg);
                            if let Ok(mut f) = written.failures.lock() {
                                f.push((path, msg));
                            }
                        }
                    }
                }
            });
        }
        sink.jobs = Some(tx);
        let walked = crate::sink::export(store, root, &mut sink, progress);
        // Dropping the sender lets the writers finish what is queued and stop.
        (walked, sink.finish())
    });
    let mut failures = walked?;
    out.files += written.files.into_inner();
    out.bytes += written.bytes.into_inner();
    failures.extend(written.failures.into_inner().unwrap_or_default());
    out.errors = failures;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_inside_or_out() {
        assert!(target_stays_inside(b"a/b", 0));
        assert!(target_stays_inside(b"../x", 1));
        assert!(!target_stays_inside(b"../x", 0));
        assert!(!target_stays_inside(b"/etc/passwd", 3));
        assert!(!target_stays_inside(b"a/../../x", 0));
        assert!(target_stays_inside(b"./a/./b/..", 0));
    }

    #[test]
    fn strip_and_select() {
        assert_eq!(strip(b"a/b/c", 1), Some(&b"b/c"[..]));
        assert_eq!(strip(b"a", 1), None);
        let s = Selection {
            patterns: vec![b"a/b".to_vec(), b"*.txt".to_vec()],
        };
        assert_eq!(s.selects(b"a/b/c"), Some(0));
        assert_eq!(s.selects(b"a/bc"), None);
        assert_eq!(s.selects(b"x/y.txt"), Some(1));
        assert!(s.may_hold(b"a"));
    }
}
