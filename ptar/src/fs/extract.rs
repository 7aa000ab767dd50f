//! Extracting a snapshot into a directory.
//!
//! Every path is resolved relative to an open directory handle, one name at
//! a time, never following a symlink: directories are opened with
//! `O_NOFOLLOW | O_DIRECTORY`, new names are created inside the handle of
//! their parent, and metadata is set through file descriptors or
//! `AT_SYMLINK_NOFOLLOW`. Entry names were already checked by the tree
//! parser (no '/', '.', '..' or NUL), so no entry can name a place outside
//! the destination, and the destination root itself cannot be named by any
//! entry. Symlinks are created as stored, whatever their targets: nothing
//! this extraction does goes through one.
//!
//! A regular file is written unnamed (`O_TMPFILE` in its directory), given
//! its metadata, and linked to its final name only when complete (`linkat`,
//! which never replaces anything). Where a file is already at that name, the
//! complete file is linked to a temporary name (`.NAME.ptar-part-PID-N`) and
//! renamed over it. Where unnamed files cannot be made or linked (a file
//! system without `O_TMPFILE`, neither `/proc` nor the privilege to link a
//! descriptor), the file is written under the temporary name (created
//! `O_EXCL`) and renamed into place. Either way an interrupted or failed
//! extraction leaves every name either as it was or with the archived
//! content, and removes its temporary files (an unnamed file vanishes with
//! its descriptor, even after `kill -9`). Directories get their own metadata
//! once everything inside them is in place, also on the way out of a failed
//! or cancelled extraction.
//!
//! Regular files are filled by writer threads while the walk goes on; when a
//! later member has the name of a file still being written (two members
//! folded together by `--strip-components`, or a tar import that holds a
//! name twice), the walk waits for that file to be in place first, so that
//! the later member wins, as in tar.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps, CWD,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::format::tree::{Entry, EntryType, Extent, Payload, Timestamp};
use crate::format::Id;
use crate::progress::Progress;
use crate::retry::eintr_rustix as retry;
use crate::sink::{EntrySink, FileContent, Flow};
use crate::store::Store;
use crate::{Error, Region, Result};

use super::owners;

/// What to do when a file is already where an entry goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Existing {
    /// Replace it: tar's default, and `-U`. A regular file is replaced by a
    /// rename, so the name never holds a partial file.
    #[default]
    Replace,
    /// Keep it and report an error (`-k`).
    KeepOld,
    /// Keep it when it is newer than the archived copy (`--keep-newer-files`).
    KeepNewer,
}

/// Which members to extract, list or export.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Member names or shell patterns (`*`, `?`, `[...]`); a directory
    /// selects everything under it. Empty: everything.
    pub patterns: Vec<Vec<u8>>,
    /// Exclusion patterns (tar's `--exclude`, `-X`), matched as on create
    /// ([`crate::pattern::exclude_match`]): unanchored, `*` matches `/`, and
    /// an excluded directory loses its whole subtree. They win over
    /// `patterns`.
    pub exclude: Vec<Vec<u8>>,
}

impl Selection {
    fn is_pattern(p: &[u8]) -> bool {
        p.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
    }

    /// Index of the first pattern that selects `path` (exclusions aside).
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

    /// Whether an exclusion pattern matches `path` (or a directory above it).
    pub fn excluded(&self, path: &[u8]) -> bool {
        self.exclude
            .iter()
            .any(|p| crate::pattern::exclude_match(p, path))
    }

    /// Whether `path` is taken: `None` when it is excluded or no pattern
    /// selects it; else `Some` of the index of the pattern that selects it
    /// (`Some(None)` when there are no patterns: everything is selected).
    pub fn pick(&self, path: &[u8]) -> Option<Option<usize>> {
        if self.excluded(path) {
            return None;
        }
        if self.patterns.is_empty() {
            return Some(None);
        }
        self.selects(path).map(Some)
    }

    /// Whether `path` is taken (not excluded, and selected by a pattern or
    /// there are none), recording in `matched` the pattern that selects it
    /// even when an exclusion then leaves it out: as with tar, a member
    /// operand that names excluded members is not "not found".
    pub fn take(&self, path: &[u8], matched: &mut [bool]) -> bool {
        let by = if self.patterns.is_empty() {
            None
        } else {
            match self.selects(path) {
                Some(i) => Some(i),
                None => return false,
            }
        };
        if let Some(i) = by {
            if let Some(m) = matched.get_mut(i) {
                *m = true;
            }
        }
        !self.excluded(path)
    }

    /// Whether a directory at `path` may hold selected entries.
    pub fn may_hold(&self, path: &[u8]) -> bool {
        !self.excluded(path)
            && self.patterns.iter().any(|p| {
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
    /// Create symlinks whose targets are absolute or climb out of the
    /// destination (on by default, as tar does: nothing is ever written
    /// through a symlink, so creating one is safe). Off: such symlinks are
    /// reported and skipped. Hard links always stay inside the destination.
    pub outside_symlinks: bool,
    /// The (device, inode) of the archive being read: a member that would
    /// replace it is skipped with a notice ("file is the archive").
    pub archive: Option<(u64, u64)>,
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
    /// Write regular files unnamed (`O_TMPFILE`) and link them into place
    /// where the system allows it (the default). Off: always write them
    /// under a temporary name and rename them into place, as is done where
    /// unnamed files are not available (this switch lets tests reach that
    /// way).
    pub unnamed_files: bool,
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
            outside_symlinks: true,
            archive: None,
            existing: Existing::Replace,
            strip_components: 0,
            selection: Selection::default(),
            max_bytes: None,
            max_entries: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            unnamed_files: true,
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

/// The marker in the names of files being written.
const PART: &[u8] = b".ptar-part-";

/// The temporary name a file is written under before it is renamed to
/// `name`: `.NAME.ptar-part-PID-N`, with NAME shortened so the whole stays
/// within the 255 bytes a file name may have.
fn part_name(name: &[u8], pid: u32, n: u64) -> Vec<u8> {
    let tail = format!("{pid}-{n}");
    let keep = name.len().min(255 - 1 - PART.len() - tail.len());
    let mut t = Vec::with_capacity(255);
    t.push(b'.');
    t.extend_from_slice(&name[..keep]);
    t.extend_from_slice(PART);
    t.extend_from_slice(tail.as_bytes());
    t
}

/// Numbers for temporary names, unique within the process.
static PARTS: AtomicU64 = AtomicU64::new(0);

/// A temporary name for `name` not used yet by this process.
fn next_part_name(name: &[u8]) -> Vec<u8> {
    part_name(
        name,
        std::process::id(),
        PARTS.fetch_add(1, Ordering::Relaxed) + 1,
    )
}

/// How an unnamed file (`O_TMPFILE`) is given a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Linker {
    /// `linkat(fd, "", dir, name, AT_EMPTY_PATH)`: for a process with
    /// `CAP_DAC_READ_SEARCH`, or (Linux 6.10 and later) the credentials the
    /// file was opened with.
    EmptyPath,
    /// `linkat(AT_FDCWD, "/proc/self/fd/FD", dir, name, AT_SYMLINK_FOLLOW)`:
    /// needs no privilege, only `/proc`.
    Proc,
}

/// Gives the unnamed file `fd` the name `name` in `dir`; never replaces
/// what is there (`EEXIST`).
fn link_unnamed(
    fd: BorrowedFd<'_>,
    via: Linker,
    dir: &OwnedFd,
    name: &[u8],
) -> rustix::io::Result<()> {
    match via {
        Linker::EmptyPath => retry(|| rustix::fs::linkat(fd, c"", dir, name, AtFlags::EMPTY_PATH)),
        Linker::Proc => {
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            retry(|| rustix::fs::linkat(CWD, path.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW))
        }
    }
}

/// Finds how the unnamed file `fd`, just made in `dir`, can be given a
/// name, without giving it one: linking to "." fails with `EEXIST` only
/// after the source was found and accepted, and fails with `ENOENT` when
/// the source may not be named that way (no privilege, no `/proc`).
fn probe_linker(fd: BorrowedFd<'_>, dir: &OwnedFd) -> Option<Linker> {
    [Linker::EmptyPath, Linker::Proc]
        .into_iter()
        .find(|&via| link_unnamed(fd, via, dir, b".") == Err(Errno::EXIST))
}

/// Whether unnamed files are used, once the first one was tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unnamed {
    /// Not tried yet.
    Untried,
    /// They can be made and linked this way.
    Via(Linker),
    /// They cannot (or are not to be) used: named temporary files instead.
    Off,
}

/// Where a file being written is, until it is in place.
#[derive(Debug)]
enum Temp {
    /// Unnamed (`O_TMPFILE`), to be linked in with this.
    Unnamed(Linker),
    /// Under this temporary name in its directory.
    Named(Vec<u8>),
}

/// A directory's identity, (device, inode): one directory may be reached
/// through several frames (`--strip-components`, a directory listed twice).
type DirId = (u64, u64);

/// A name in a directory, as (directory, hash of the name): what the walk
/// waits for when a later member has the name of a file still being
/// written. Two names with the same hash only make it wait for nothing.
type NameKey = (DirId, u64);

fn name_key(dir: DirId, name: &[u8]) -> NameKey {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    (dir, h.finish())
}

/// Names whose files writer threads have not put in place yet, with how
/// many files each is waiting for.
#[derive(Default)]
struct InFlight {
    state: Mutex<InFlightState>,
    done: Condvar,
}

#[derive(Default)]
struct InFlightState {
    names: HashMap<NameKey, usize>,
    /// The walk is waiting for a name to be released.
    waiting: bool,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, InFlightState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a file named `key` is being written.
    fn holds(&self, key: NameKey) -> bool {
        self.lock().names.contains_key(&key)
    }

    /// Waits until no file named `key` is being written, then, with `add`,
    /// counts one more.
    fn wait_then(&self, key: NameKey, add: bool) {
        let mut st = self.lock();
        while st.names.contains_key(&key) {
            st.waiting = true;
            st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiting = false;
        if add {
            *st.names.entry(key).or_default() += 1;
        }
    }

    /// One file named `key` is in place, or given up.
    fn release(&self, key: NameKey) {
        let mut st = self.lock();
        if let Some(n) = st.names.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                st.names.remove(&key);
                if st.waiting {
                    self.done.notify_all();
                }
            }
        }
    }
}

/// A file handed to a writer thread: when it is dropped (done, failed, or
/// never taken), its directory's count of pending files goes down and its
/// name is released for later members.
struct Ticket {
    pending: Arc<AtomicUsize>,
    in_flight: Arc<InFlight>,
    key: NameKey,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
        self.in_flight.release(self.key);
    }
}

/// What this extraction created in one directory: (device, inode) → name,
/// to catch names the file system folds together (case, Unicode
/// normalization). Shared with the writer threads, which check it when a
/// name they rename to appeared while the file was written.
type Created = Arc<Mutex<HashMap<(u64, u64), Vec<u8>>>>;

/// One directory of the extraction.
struct Frame {
    /// Its handle; `None` for a directory that only leads to selected
    /// members while nothing was extracted into it yet: it is made when the
    /// first member goes there, so a selection creates no empty directories.
    fd: Option<Arc<OwnedFd>>,
    /// Its identity, once it is made.
    id: Option<DirId>,
    /// Its name in its parent and its member path (for a directory made late).
    name: Vec<u8>,
    path: Vec<u8>,
    /// The directory's own entry, applied when it is done; `None` for the
    /// destination, for directories removed by --strip-components, and for
    /// directories that only lead to selected members.
    own: Option<(Vec<u8>, Entry)>,
    created: Created,
    /// Files of this directory still being written by writer threads: its
    /// metadata waits for them (their renames change its times, and a
    /// read-only mode would stop them).
    pending: Arc<AtomicUsize>,
}

/// A directory left by the walk whose files are still being written.
struct Deferred {
    fd: Arc<OwnedFd>,
    path: Vec<u8>,
    entry: Entry,
    pending: Arc<AtomicUsize>,
}

/// Refuses a name that the file system resolves to something this
/// extraction already created in the same directory under another name.
fn check_collision(created: &Created, name: &[u8], st: &rustix::fs::Stat) -> Result<()> {
    let created = created.lock().unwrap_or_else(|e| e.into_inner());
    match created.get(&(st.st_dev, st.st_ino)) {
        Some(other) if other.as_slice() != name => Err(Error::InvalidInput(format!(
            "collides with '{}' on this file system (names folded together); not extracted",
            String::from_utf8_lossy(other)
        ))),
        _ => Ok(()),
    }
}

/// A new file's owner and permission bits, as `fstat` found them.
#[derive(Clone, Copy, Debug)]
struct Owned {
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Owned {
    fn of(st: &rustix::fs::Stat) -> Owned {
        Owned {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }
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
    /// Sets ownership, xattrs, mode and times through an open descriptor, in
    /// that order (spec §17 rule 9): changing the owner clears the setuid and
    /// setgid bits and file capabilities, so it comes first; a POSIX access
    /// ACL rewrites the group permission bits and `user.*` attributes need
    /// write permission, so the attributes come before the mode; the times
    /// come last.
    fn apply_fd(&self, fd: BorrowedFd<'_>, e: &Entry) -> std::io::Result<()> {
        self.apply_fd_over(fd, e, None)
    }
    /// [`Meta::apply_fd`] for a file whose owner and mode are known to be
    /// `now` (from `fstat` after it was created, nobody else having it
    /// open): what already is as wanted is not set again.
    fn apply_fd_over(
        &self,
        fd: BorrowedFd<'_>,
        e: &Entry,
        now: Option<Owned>,
    ) -> std::io::Result<()> {
        let mode = self.mode_of(e);
        if self.opts.same_owner {
            let (u, g) = self.owner(e);
            // Changing the owner would clear setuid and setgid bits, but a
            // mode is only taken as already right when it has none.
            if now.is_none_or(|n| (n.uid, n.gid) != (u.as_raw(), g.as_raw())) {
                retry(|| rustix::fs::fchown(fd, Some(u), Some(g))).map_err(errno)?;
            }
        }
        // An access ACL just set has rewritten the permission bits.
        let acl_set = self.apply_xattrs(fd, e)?;
        if acl_set
            || now.is_none_or(|n| n.mode & 0o7777 != mode.as_raw_mode() || n.mode & 0o7000 != 0)
        {
            retry(|| rustix::fs::fchmod(fd, mode)).map_err(errno)?;
        }
        if let Some(t) = self.times(e) {
            retry(|| rustix::fs::futimens(fd, &t)).map_err(errno)?;
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
            retry(|| {
                rustix::fs::chownat(parent, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            })
            .map_err(errno)?;
        }
        if chmod {
            retry(|| rustix::fs::chmodat(parent, name, self.mode_of(e), AtFlags::empty()))
                .map_err(errno)?;
        }
        if let Some(t) = self.times(e) {
            retry(|| rustix::fs::utimensat(parent, name, &t, AtFlags::SYMLINK_NOFOLLOW))
                .map_err(errno)?;
        }
        Ok(())
    }
    /// Sets the extended attributes this extraction restores (rule 9);
    /// returns whether it set a POSIX access ACL.
    fn apply_xattrs(&self, fd: BorrowedFd<'_>, e: &Entry) -> std::io::Result<bool> {
        if e.xattrs.is_empty() || !(self.opts.xattrs || self.opts.acls) {
            return Ok(false);
        }
        let mut acl_set = false;
        let f = File::from(fd.try_clone_to_owned()?);
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
                crate::retry::eintr(|| f.set_xattr(std::ffi::OsStr::from_bytes(k), v)).map_err(
                    |err| {
                        std::io::Error::new(
                            err.kind(),
                            format!(
                                "cannot set extended attribute {}: {err}",
                                String::from_utf8_lossy(k)
                            ),
                        )
                    },
                )?;
                acl_set |= k.as_slice() == b"system.posix_acl_access";
            }
        }
        Ok(acl_set)
    }

    /// Decides about something found at `name` in `dir` where a new entry
    /// goes: `Ok(true)` to replace it, `Ok(false)` to keep it and skip the
    /// entry (reported), an error for the entry otherwise.
    fn in_the_way(
        &self,
        created: &Created,
        name: &[u8],
        st: &rustix::fs::Stat,
        e: &Entry,
        rel: &[u8],
        progress: &dyn Progress,
    ) -> Result<bool> {
        check_collision(created, name, st)?;
        if self.opts.archive == Some((st.st_dev, st.st_ino)) {
            progress.notice(rel, "file is the archive; not extracted");
            return Ok(false);
        }
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(Error::InvalidInput("a directory is in the way".into()));
        }
        match self.opts.existing {
            Existing::KeepOld => Err(Error::InvalidInput(
                "already exists; not replaced (-k)".into(),
            )),
            Existing::KeepNewer => {
                let theirs = (st.st_mtime, st.st_mtime_nsec as u32);
                if theirs >= (e.mtime.sec, e.mtime.nsec) {
                    progress.warning(rel, "is newer or as old as the archived copy; not replaced");
                    return Ok(false);
                }
                Ok(true)
            }
            Existing::Replace => Ok(true),
        }
    }
}

/// A regular file created unnamed or under its temporary name, to be
/// filled and finished (content, then ownership, mode, attributes and
/// times) and put in place, by a writer thread or the walking thread.
struct FileJob {
    file: File,
    dir: Arc<OwnedFd>,
    entry: Entry,
    path: Vec<u8>,
    extents: Vec<Extent>,
    /// Where the file is until it is in place.
    temp: Temp,
    /// Nothing is known to be at the final name (nothing was looked up, or
    /// nothing was there): putting the file in place must not replace what
    /// is there without applying the policy to it.
    vacant: bool,
    created: Created,
    /// Held while on a writer thread: see [`Ticket`].
    ticket: Option<Ticket>,
    /// The file's owner and mode as created, when known.
    now: Option<Owned>,
    /// It is in place: nothing to remove when it is dropped.
    placed: bool,
}

impl Drop for FileJob {
    /// A file not put in place (failed, cancelled, kept out by the policy,
    /// or never handed to a writer) loses its temporary name; an unnamed
    /// one vanishes when its descriptor closes, just after.
    fn drop(&mut self) {
        if let (false, Temp::Named(part)) = (self.placed, &self.temp) {
            let _ = retry(|| rustix::fs::unlinkat(&*self.dir, part.as_slice(), AtFlags::empty()));
        }
    }
}

/// Files handed to writer threads at a time, and their most bytes: one
/// hand-over (a wake-up of a writer) per batch rather than per file.
const BATCH_FILES: usize = 32;
const BATCH_BYTES: u64 = 1 << 20;

/// What writer threads report back.
#[derive(Default)]
struct Written {
    files: AtomicU64,
    bytes: AtomicU64,
    failures: Mutex<Vec<(Vec<u8>, String)>>,
    cancelled: AtomicBool,
}

/// Writes the data extents and seeks over holes, then sets the length if
/// the file ends in a hole. Returns the bytes written. Stops with
/// [`Error::Cancelled`] between chunks when `progress` asks.
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
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
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
        crate::retry::eintr(|| file.set_len(size))?;
    }
    Ok(written)
}

/// Bytes gathered before a write to an extracted file.
const WRITE_BUF: usize = 1 << 20;

/// Puts a finished file in place: links an unnamed file to its final name,
/// or renames a named one to it. Unless the policy was applied to what is at
/// the name when the file was begun, neither replaces what is there (an
/// older file, a symlink, a directory, the archive being read, another
/// member given the same name by a folding file system) before the policy
/// has been applied to it; then the file replaces it by a rename (an
/// unnamed file is first linked to a temporary name), so that the name
/// never goes missing. Returns false when the file was kept out by the
/// policy.
fn place(meta: Meta<'_>, job: &mut FileJob, progress: &dyn Progress) -> Result<bool> {
    let dir = &*job.dir;
    let name = job.entry.name.as_slice();
    if job.vacant {
        let r = match &job.temp {
            Temp::Unnamed(via) => link_unnamed(job.file.as_fd(), *via, dir, name),
            Temp::Named(part) => {
                match retry(|| {
                    rustix::fs::renameat_with(
                        dir,
                        part.as_slice(),
                        dir,
                        name,
                        RenameFlags::NOREPLACE,
                    )
                }) {
                    // RENAME_NOREPLACE is not supported here: check, then rename.
                    Err(Errno::INVAL) | Err(Errno::NOSYS) | Err(Errno::OPNOTSUPP) => {
                        Err(Errno::EXIST)
                    }
                    r => r,
                }
            }
        };
        match r {
            Ok(()) => return Ok(true),
            // The name is taken: decide as for a name taken before.
            Err(Errno::EXIST) => {}
            Err(e) => return Err(errno(e).into()),
        }
        match retry(|| rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)) {
            Ok(st) => {
                if !meta.in_the_way(&job.created, name, &st, &job.entry, &job.path, progress)? {
                    return Ok(false);
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(errno(e).into()),
        }
    }
    if let Temp::Unnamed(via) = job.temp {
        let part = loop {
            let part = next_part_name(name);
            match link_unnamed(job.file.as_fd(), via, dir, &part) {
                Ok(()) => break part,
                // Left by an earlier run of a process with our id: pick another.
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(errno(e).into()),
            }
        };
        // From here on a failure removes the temporary name.
        job.temp = Temp::Named(part);
    }
    let Temp::Named(part) = &job.temp else {
        unreachable!("linked to a temporary name above")
    };
    retry(|| rustix::fs::renameat(dir, part.as_slice(), dir, name)).map_err(errno)?;
    Ok(true)
}

/// Fills a file begun unnamed or under its temporary name, applies its
/// metadata and puts it in place. On any failure, or when cancelled, the
/// temporary name is removed (an unnamed file vanishes when it is closed)
/// and the final name is left as it was. Returns the bytes written, `None`
/// when the policy kept the file out.
fn finish_file(
    store: &Store,
    meta: Meta<'_>,
    mut job: FileJob,
    progress: &dyn Progress,
    buf: &mut Vec<u8>,
) -> Result<Option<u64>> {
    let r = (|| {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        let content = FileContent::new(store, &job.entry);
        let n = fill(
            &mut job.file,
            &content,
            &job.extents,
            job.entry.size,
            progress,
            buf,
        )?;
        meta.apply_fd_over(job.file.as_fd(), &job.entry, job.now)?;
        Ok(place(meta, &mut job, progress)?.then_some(n))
    })();
    job.placed = matches!(r, Ok(Some(_)));
    // Dropping the job removes its temporary name unless it is in place,
    // closes the file, then (its ticket) counts it done.
    drop(job);
    r
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
    /// Directories left whose files writer threads are still writing.
    deferred: Vec<Deferred>,
    /// Failures found after the walk passed the entry (directory metadata
    /// applied late).
    late: Vec<(Vec<u8>, String)>,
    /// Whether regular files are made unnamed, and linked in how.
    unnamed: Unnamed,
    /// The destination's identity.
    root_id: DirId,
    /// Names of files on writer threads (see [`InFlight`]).
    in_flight: Arc<InFlight>,
    /// Writer threads that fill and finish regular files, when extracting
    /// with more than one thread.
    jobs: Option<mpsc::SyncSender<Vec<FileJob>>>,
    /// Files for the writer threads not handed over yet, and their bytes.
    batch: Vec<FileJob>,
    batch_bytes: u64,
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
        crate::retry::eintr(|| std::fs::create_dir_all(dest)).map_err(|e| Error::io_at(dest, e))?;
        let root = retry(|| {
            rustix::fs::openat(
                CWD,
                dest,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        })
        .map_err(|e| Error::io_at(dest, errno(e)))?;
        let st = retry(|| rustix::fs::fstat(&root)).map_err(|e| Error::io_at(dest, errno(e)))?;
        let root_id = (st.st_dev, st.st_ino);
        let frames = vec![Frame {
            fd: Some(Arc::new(root.try_clone()?)),
            id: Some(root_id),
            name: Vec::new(),
            path: Vec::new(),
            own: None,
            created: Created::default(),
            pending: Arc::default(),
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
            deferred: Vec::new(),
            late: Vec::new(),
            unnamed: if opts.unnamed_files {
                Unnamed::Untried
            } else {
                Unnamed::Off
            },
            root_id,
            in_flight: Arc::default(),
            jobs: None,
            batch: Vec::new(),
            batch_bytes: 0,
            write_buf: Vec::new(),
        })
    }

    /// What was done; per-entry failures are added by the caller. Gives
    /// every directory still open or waiting (after a failure or a
    /// cancellation, or with writer threads done) its metadata first, so
    /// none is left at the `0700` it was created with.
    pub fn finish(mut self) -> ExtractOutcome {
        self.jobs = None;
        self.close_dirs();
        self.out.unmatched = self
            .opts
            .selection
            .patterns
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| !**m)
            .map(|(p, _)| p.clone())
            .collect();
        self.out.errors.append(&mut self.late);
        self.out
    }

    /// Applies the metadata of every directory left waiting for its files
    /// and of every directory still open (deepest first). Called when no
    /// writer thread is at work any more.
    fn close_dirs(&mut self) {
        let meta = self.meta();
        let late = &mut self.late;
        let progress = self.progress;
        let mut apply = |fd: &OwnedFd, path: &[u8], e: &Entry| {
            if let Err(err) = meta.apply_fd(fd.as_fd(), e) {
                let msg = format!("cannot set directory metadata: {err}");
                progress.warning(path, &msg);
                late.push((path.to_vec(), msg));
            }
        };
        for d in std::mem::take(&mut self.deferred) {
            apply(&d.fd, &d.path, &d.entry);
        }
        while self.frames.len() > 1 {
            let f = self.frames.pop().expect("more than one");
            if let (Some(fd), Some((path, own))) = (f.fd, f.own) {
                apply(&fd, &path, &own);
            }
        }
    }

    /// Applies the metadata of the directories left waiting whose files are
    /// all in place now.
    fn sweep_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let meta = self.meta();
        let mut keep = Vec::new();
        for d in std::mem::take(&mut self.deferred) {
            if d.pending.load(Ordering::Acquire) > 0 {
                keep.push(d);
            } else if let Err(err) = meta.apply_fd(d.fd.as_fd(), &d.entry) {
                let msg = format!("cannot set directory metadata: {err}");
                self.progress.warning(&d.path, &msg);
                self.late.push((d.path, msg));
            }
        }
        self.deferred = keep;
    }

    fn selected(&mut self, path: &[u8]) -> bool {
        self.opts.selection.take(path, &mut self.matched)
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

    fn frame(&self) -> &Frame {
        self.frames.last().expect("the destination frame stays")
    }

    /// The handle of the current directory, making first the directories
    /// leading to it that were not made yet (`0777` less the umask, as tar
    /// makes them).
    fn parent(&mut self) -> Result<Arc<OwnedFd>> {
        if let Some(first) = self.frames.iter().position(|f| f.fd.is_none()) {
            for j in first..self.frames.len() {
                self.count_entry()?;
                let up = self.frames[j - 1].fd.clone().expect("made before");
                let (name, path) = (self.frames[j].name.clone(), self.frames[j].path.clone());
                if let Some(up_id) = self.frames[j - 1].id {
                    self.wait_for_key(name_key(up_id, &name))?;
                }
                if let Ok(st) =
                    retry(|| rustix::fs::statat(&*up, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW))
                {
                    check_collision(&self.frames[j - 1].created, &name, &st)?;
                }
                let fd = self.make_dir(&up, &name, &path, false)?;
                let st = retry(|| rustix::fs::fstat(&fd)).map_err(errno)?;
                {
                    let mut created = self.frames[j - 1]
                        .created
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    created.insert((st.st_dev, st.st_ino), name.clone());
                }
                self.out.dirs += 1;
                self.frames[j].fd = Some(Arc::new(fd));
                self.frames[j].id = Some((st.st_dev, st.st_ino));
            }
        }
        Ok(self.frame().fd.clone().expect("made above"))
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
    /// An earlier member of that name still on a writer thread is waited
    /// for: the later member wins.
    fn make_room(&mut self, dir: &OwnedFd, name: &[u8], e: &Entry, rel: &[u8]) -> Result<bool> {
        self.wait_for_name(name)?;
        let st = match retry(|| rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(true),
            Err(err) => return Err(errno(err).into()),
        };
        if !self
            .meta()
            .in_the_way(&self.frame().created, name, &st, e, rel, self.progress)?
        {
            return Ok(false);
        }
        retry(|| rustix::fs::unlinkat(dir, name, AtFlags::empty())).map_err(errno)?;
        Ok(true)
    }

    /// Remembers what was just created as `name` in the current directory.
    fn record(&mut self, parent: &OwnedFd, name: &[u8]) {
        if let Ok(st) = retry(|| rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)) {
            self.record_stat(name, &st);
        }
    }

    fn record_stat(&mut self, name: &[u8], st: &rustix::fs::Stat) {
        let mut created = self
            .frame()
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        created.insert((st.st_dev, st.st_ino), name.to_vec());
    }

    /// Opens the directory `name` in `parent`, creating it if missing:
    /// `0700` until its own metadata is applied when `own` (it is
    /// extracted), else `0777` less the umask, as tar makes the directories
    /// that lead to selected members. A non-directory in the way (a symlink
    /// included) is replaced, never followed; the archive being read is not.
    fn make_dir(&self, parent: &OwnedFd, name: &[u8], rel: &[u8], own: bool) -> Result<OwnedFd> {
        let mode = Mode::from_raw_mode(if own { 0o700 } else { 0o777 });
        match retry(|| rustix::fs::mkdirat(parent, name, mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(errno(e).into()),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match retry(|| rustix::fs::openat(parent, name, flags, Mode::empty())) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                // A non-directory (or a symlink) is in the way: replace it.
                let st = retry(|| rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW))
                    .map_err(errno)?;
                if self.opts.archive == Some((st.st_dev, st.st_ino)) {
                    return Err(Error::InvalidInput(
                        "file is the archive; not extracted".into(),
                    ));
                }
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    self.progress.notice(
                        rel,
                        "a symlink was in the way; replaced by the directory (not followed)",
                    );
                }
                retry(|| rustix::fs::unlinkat(parent, name, AtFlags::empty())).map_err(errno)?;
                retry(|| rustix::fs::mkdirat(parent, name, mode)).map_err(errno)?;
                Ok(
                    retry(|| rustix::fs::openat(parent, name, flags, Mode::empty()))
                        .map_err(errno)?,
                )
            }
            Err(e) => Err(errno(e).into()),
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
            retry(|| rustix::fs::openat(&self.root, ".", oflags, Mode::empty())).map_err(errno)?
        } else {
            retry(|| rustix::fs::openat2(&self.root, dir, oflags, Mode::empty(), resolve))
                .map_err(errno)?
        };
        Ok((dfd, base.to_vec()))
    }

    /// Waits until no earlier member named `name` in the current directory
    /// is still on a writer thread.
    fn wait_for_name(&mut self, name: &[u8]) -> Result<()> {
        match self.frame().id {
            Some(id) => self.wait_for_key(name_key(id, name)),
            None => Ok(()),
        }
    }

    fn wait_for_key(&mut self, key: NameKey) -> Result<()> {
        if self.jobs.is_some() && self.in_flight.holds(key) {
            // The earlier file may still be in the batch not handed over.
            self.flush()?;
            self.in_flight.wait_then(key, false);
        }
        Ok(())
    }

    /// Hands the files gathered for the writer threads over to them.
    fn flush(&mut self) -> Result<()> {
        self.batch_bytes = 0;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        match &self.jobs {
            // Dropped, the files remove their temporary names.
            Some(tx) if tx.send(batch).is_ok() => Ok(()),
            _ => Err(Error::Io {
                path: None,
                source: std::io::Error::other("the extraction's writer threads stopped"),
            }),
        }
    }

    /// Creates the file for entry `e` in `dir`: unnamed where that works
    /// (tried with the first file), else under a temporary name not in use.
    /// An unnamed file, which nobody can open while it is written, is
    /// created with its final permission bits when they hold no setuid,
    /// setgid or sticky bit and, if the entry has extended attributes, give
    /// the owner write permission, which setting `user.*` attributes needs
    /// (the umask or a default ACL may still take some away: they are set
    /// again then); a named one `0600`.
    fn create_temp(&mut self, dir: &OwnedFd, e: &Entry) -> Result<(OwnedFd, Temp)> {
        let name = e.name.as_slice();
        if self.unnamed != Unnamed::Off {
            let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
            let mode = match self.meta().mode_of(e) {
                m if m.as_raw_mode() & 0o7000 == 0
                    && (e.xattrs.is_empty() || m.as_raw_mode() & 0o200 != 0) =>
                {
                    m
                }
                _ => Mode::from_raw_mode(0o600),
            };
            match retry(|| rustix::fs::openat(dir, c".", flags, mode)) {
                Ok(fd) => {
                    let via = match self.unnamed {
                        Unnamed::Via(via) => Some(via),
                        _ => probe_linker(fd.as_fd(), dir),
                    };
                    if let Some(via) = via {
                        self.unnamed = Unnamed::Via(via);
                        return Ok((fd, Temp::Unnamed(via)));
                    }
                    // It could not be named: it vanishes when closed.
                    self.unnamed = Unnamed::Off;
                }
                // No O_TMPFILE on this file system (EOPNOTSUPP) or kernel
                // (EISDIR, EINVAL).
                Err(Errno::OPNOTSUPP) | Err(Errno::ISDIR) | Err(Errno::INVAL) => {
                    self.unnamed = Unnamed::Off;
                }
                Err(err) => return Err(errno(err).into()),
            }
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        loop {
            let part = next_part_name(name);
            match retry(|| {
                rustix::fs::openat(dir, part.as_slice(), flags, Mode::from_raw_mode(0o600))
            }) {
                Ok(fd) => return Ok((fd, Temp::Named(part))),
                // Left by an earlier run of a process with our id: pick another.
                Err(Errno::EXIST) => continue,
                Err(err) => return Err(errno(err).into()),
            }
        }
    }

    /// Begins a regular file, unnamed or under a temporary name, and has it written:
    /// on a writer thread, or here when there are none or when the file has
    /// other names (a hard link to it must find it complete and in place).
    /// Returns false when the policy keeps what is there.
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
        // An earlier member of this name still on a writer thread goes in
        // place first: the later member wins.
        self.wait_for_name(&e.name)?;
        // By default the final name is not even looked at now: putting the
        // file in place does not replace what is there (linkat,
        // RENAME_NOREPLACE) and, when something is, the policy is applied to
        // it then (see `place`). Keeping an existing file (-k,
        // --keep-newer-files) is decided here, so that a kept file is not
        // written for nothing.
        let vacant = if self.opts.existing == Existing::Replace {
            true
        } else {
            match retry(|| rustix::fs::statat(&**dir, e.name.as_slice(), AtFlags::SYMLINK_NOFOLLOW))
            {
                Err(Errno::NOENT) => true,
                Err(err) => return Err(errno(err).into()),
                Ok(st) => {
                    if !self.meta().in_the_way(
                        &self.frame().created,
                        &e.name,
                        &st,
                        e,
                        rel,
                        self.progress,
                    )? {
                        return Ok(false);
                    }
                    false
                }
            }
        };
        let (fd, temp) = self.create_temp(dir, e)?;
        // The file's identity, to catch a name the file system folds onto
        // another this extraction created; its owner and mode, not to set
        // them again when they are right already.
        let now = match retry(|| rustix::fs::fstat(&fd)) {
            Ok(st) => {
                self.record_stat(&e.name, &st);
                Some(Owned::of(&st))
            }
            Err(_) => None,
        };
        self.budget -= e.size;
        let mut job = FileJob {
            file: File::from(fd),
            dir: dir.clone(),
            entry: e.clone(),
            path: rel.to_vec(),
            extents: content.extents()?.to_vec(),
            temp,
            vacant,
            created: self.frame().created.clone(),
            ticket: None,
            now,
            placed: false,
        };
        match (&self.jobs, self.frame().id) {
            (Some(_), Some(id)) if e.nlink <= 1 => {
                let pending = self.frame().pending.clone();
                pending.fetch_add(1, Ordering::AcqRel);
                let key = name_key(id, &e.name);
                self.in_flight.wait_then(key, true);
                job.ticket = Some(Ticket {
                    pending,
                    in_flight: self.in_flight.clone(),
                    key,
                });
                self.batch.push(job);
                self.batch_bytes += e.size;
                if self.batch.len() >= BATCH_FILES || self.batch_bytes >= BATCH_BYTES {
                    self.flush()?;
                }
            }
            _ => {
                let mut buf = std::mem::take(&mut self.write_buf);
                let n = finish_file(content.store(), self.meta(), job, self.progress, &mut buf);
                self.write_buf = buf;
                let Some(n) = n? else {
                    return Ok(false);
                };
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
                fd: Some(Arc::new(self.root.try_clone()?)),
                id: Some(self.root_id),
                name: Vec::new(),
                path: Vec::new(),
                own: None,
                created: Created::default(),
                pending: Arc::default(),
            });
            return Ok(Flow::Take);
        }
        if !selected {
            // Made only if a member is extracted into it.
            self.frames.push(Frame {
                fd: None,
                id: None,
                name: e.name.clone(),
                path: path.to_vec(),
                own: None,
                created: Created::default(),
                pending: Arc::default(),
            });
            return Ok(Flow::Take);
        }
        let parent = self.parent()?;
        self.count_entry()?;
        self.wait_for_name(&e.name)?;
        if let Ok(st) =
            retry(|| rustix::fs::statat(&*parent, e.name.as_slice(), AtFlags::SYMLINK_NOFOLLOW))
        {
            check_collision(&self.frame().created, &e.name, &st)?;
        }
        let fd = self.make_dir(&parent, &e.name, path, selected)?;
        let st = retry(|| rustix::fs::fstat(&fd)).map_err(errno)?;
        self.record_stat(&e.name, &st);
        self.out.dirs += 1;
        // A directory that only leads to selected members gets no metadata of its own.
        self.frames.push(Frame {
            fd: Some(Arc::new(fd)),
            id: Some((st.st_dev, st.st_ino)),
            name: e.name.clone(),
            path: path.to_vec(),
            own: Some((path.to_vec(), e.clone())),
            created: Created::default(),
            pending: Arc::default(),
        });
        Ok(Flow::Take)
    }

    fn leave_dir(&mut self, _path: &[u8], _e: &Entry) -> Result<()> {
        let frame = self.frames.pop().expect("pushed by enter_dir");
        self.sweep_deferred();
        if let (Some(fd), Some((path, own))) = (frame.fd, frame.own) {
            if frame.pending.load(Ordering::Acquire) > 0 {
                self.deferred.push(Deferred {
                    fd,
                    path,
                    entry: own,
                    pending: frame.pending,
                });
            } else {
                self.meta().apply_fd(fd.as_fd(), &own).map_err(|err| {
                    Error::InvalidInput(format!("cannot set directory metadata: {err}"))
                })?;
            }
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
        // Only a file with other names can be a hard link's target (the
        // writer stores a hard link to the first name of a file whose link
        // count is above 1); remembering just those keeps memory flat. Such
        // a file was written on this thread: it is complete and in place.
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
                if !self.opts.outside_symlinks && !target_stays_inside(target, depth) {
                    return Err(Error::InvalidInput(format!(
                        "symlink to '{}' points outside the destination; not created",
                        String::from_utf8_lossy(target)
                    )));
                }
                if !self.make_room(parent, &e.name, e, rel)? {
                    return Ok(Flow::Skip);
                }
                retry(|| rustix::fs::symlinkat(target.as_slice(), &**parent, e.name.as_slice()))
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
                // The link goes to what is at the target's name once any
                // later member of that name is in place, as in tar.
                if self.jobs.is_some() {
                    let st = retry(|| rustix::fs::fstat(&dfd)).map_err(errno)?;
                    self.wait_for_key(name_key((st.st_dev, st.st_ino), &base))?;
                }
                if !self.make_room(parent, &e.name, e, rel)? {
                    return Ok(Flow::Skip);
                }
                retry(|| {
                    rustix::fs::linkat(
                        &dfd,
                        base.as_slice(),
                        &**parent,
                        e.name.as_slice(),
                        AtFlags::empty(),
                    )
                })
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
                retry(|| {
                    rustix::fs::mknodat(
                        &**parent,
                        e.name.as_slice(),
                        ft,
                        Mode::from_raw_mode(0o600),
                        dev,
                    )
                })
                .map_err(errno)?;
                self.record(parent, &e.name);
                if ft == FileType::Fifo {
                    // A fifo opens without blocking and without following;
                    // its metadata is then set through the descriptor.
                    let flags =
                        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let fd = retry(|| {
                        rustix::fs::openat(&**parent, e.name.as_slice(), flags, Mode::empty())
                    })
                    .map_err(errno)?;
                    self.meta().apply_fd(fd.as_fd(), e)?;
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
        let walked = crate::sink::export(store, root, &mut sink, progress);
        // Directories already made get their metadata whatever happened.
        let mut out = sink.finish();
        let mut failures = walked?;
        failures.append(&mut out.errors);
        out.errors = failures;
        return Ok(out);
    }
    // This thread walks the snapshot and creates every entry (all checks on
    // names, links and budgets happen here, in order); writer threads fill
    // the regular files it created and set their metadata. Directories get
    // their own metadata once this thread has left them and the files
    // written there are in place (see `Frame::pending`); the ones still
    // waiting when the walk ends, or open when it fails, get it once the
    // writers are done.
    let written = Written::default();
    let meta = sink.meta();
    let (tx, rx) = mpsc::sync_channel::<Vec<FileJob>>(opts.threads * 2);
    let rx = Mutex::new(rx);
    let walked = std::thread::scope(|scope| {
        for _ in 0..opts.threads {
            scope.spawn(|| {
                let mut buf = Vec::with_capacity(WRITE_BUF);
                loop {
                    // A poisoned lock still hands out jobs: a writer that
                    // stopped must not leave the walk blocked on a full queue.
                    let batch = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(batch) = batch else { return };
                    for job in batch {
                        let path = job.path.clone();
                        match finish_file(store, meta, job, progress, &mut buf) {
                            Ok(Some(n)) => {
                                written.bytes.fetch_add(n, Ordering::Relaxed);
                                written.files.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(None) => {}
                            Err(Error::Cancelled) => {
                                written.cancelled.store(true, Ordering::Relaxed);
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
                }
            });
        }
        sink.jobs = Some(tx);
        let walked = crate::sink::export(store, root, &mut sink, progress);
        // The files gathered last are handed over too, also after a failure
        // (they were begun; when cancelled, the writers remove them).
        let flushed = sink.flush();
        // Dropping the sender lets the writers finish what is queued (or,
        // when cancelled, remove it) and stop; the scope waits for them.
        sink.jobs = None;
        match (walked, flushed) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(f), Ok(())) => Ok(f),
        }
    });
    // Every writer is done: the directories still waiting or open get their
    // metadata, also after a failure or a cancellation.
    let mut out = sink.finish();
    let mut failures = walked?;
    if written.cancelled.into_inner() {
        return Err(Error::Cancelled);
    }
    failures.append(&mut out.errors);
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
        // Through the destination's parent, though it ends inside (spec §17 rule 5).
        assert!(!target_stays_inside(b"../dest/x", 0));
        assert!(target_stays_inside(b"../dest/x", 1));
    }

    #[test]
    fn strip_and_select() {
        assert_eq!(strip(b"a/b/c", 1), Some(&b"b/c"[..]));
        assert_eq!(strip(b"a", 1), None);
        let s = Selection {
            patterns: vec![b"a/b".to_vec(), b"*.txt".to_vec()],
            exclude: vec![],
        };
        assert_eq!(s.selects(b"a/b/c"), Some(0));
        assert_eq!(s.selects(b"a/bc"), None);
        assert_eq!(s.selects(b"x/y.txt"), Some(1));
        assert!(s.may_hold(b"a"));
        let s = Selection {
            patterns: vec![],
            exclude: vec![b"*.txt".to_vec(), b"skip".to_vec()],
        };
        assert_eq!(s.pick(b"a/b.md"), Some(None));
        assert_eq!(s.pick(b"a/b.txt"), None);
        assert_eq!(
            s.pick(b"x/skip/y.md"),
            None,
            "an excluded directory drops its subtree"
        );
        assert!(!s.may_hold(b"x/skip"));
    }

    #[test]
    fn part_names_fit() {
        let long = vec![b'a'; 255];
        let p = part_name(&long, u32::MAX, u64::MAX);
        assert!(p.len() <= 255, "{}", p.len());
        assert!(p.starts_with(b".aaa"));
        assert_eq!(part_name(b"x", 12, 3), b".x.ptar-part-12-3");
    }
}
