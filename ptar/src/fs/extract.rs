//! Extracting a snapshot into a directory.
//!
//! Every path is resolved relative to an open directory handle, one name at
//! a time, never following a symlink: a file is created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` inside the handle of its parent, and
//! directories are opened with `O_NOFOLLOW | O_DIRECTORY`. Entry names were
//! already checked by the tree parser (no '/', '.', '..' or NUL), so no
//! entry can name a place outside the destination.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, CWD};
use rustix::io::Errno;

use crate::format::limits::MAX_TREE_DEPTH;
use crate::format::tree::{Entry, EntryType, Extent, Payload, Timestamp};
use crate::format::{Id, Kind};
use crate::progress::Progress;
use crate::store::Store;
use crate::tree::{read_directory, read_extents};
use crate::{Error, Result};

/// Extraction policy, in the manner of tar's options.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Restore every permission bit, setuid/setgid/sticky included, ignoring
    /// the umask (tar's `-p`; the default for root).
    pub preserve_permissions: bool,
    /// Restore modification (and access) times (tar: on unless `-m`).
    pub restore_times: bool,
}

impl Default for ExtractOptions {
    fn default() -> ExtractOptions {
        ExtractOptions {
            preserve_permissions: rustix::process::geteuid().is_root(),
            restore_times: true,
        }
    }
}

/// What an extraction did.
#[derive(Debug, Default)]
pub struct ExtractOutcome {
    /// Regular files written.
    pub files: u64,
    /// Directories created or reused.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Per-entry failures: (path, message).
    pub errors: Vec<(Vec<u8>, String)>,
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

struct DirFrame {
    fd: OwnedFd,
    rel: Vec<u8>,
    /// Entries still to extract, reversed so `pop` yields name order.
    todo: Vec<Entry>,
    /// The directory's own entry, applied when it is done.
    own: Option<Entry>,
}

struct Extractor<'a> {
    store: &'a Store,
    root: OwnedFd,
    opts: &'a ExtractOptions,
    mask: u32,
    progress: &'a dyn Progress,
    out: ExtractOutcome,
    files_done: HashSet<Vec<u8>>,
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = rel.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn errno(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

impl Extractor<'_> {
    fn mode_of(&self, e: &Entry) -> Mode {
        let m = if self.opts.preserve_permissions {
            e.mode & 0o7777
        } else {
            e.mode & 0o777 & !self.mask
        };
        Mode::from_raw_mode(m)
    }

    fn times(&self, e: &Entry) -> Option<Timestamps> {
        self.opts.restore_times.then(|| Timestamps {
            last_access: timespec(e.atime),
            last_modification: timespec(e.mtime),
        })
    }

    /// Removes whatever non-directory is at `name`, so a new entry can take
    /// its place (tar's default overwrite). A directory in the way is an error.
    fn clear(&self, dir: &OwnedFd, name: &[u8]) -> std::io::Result<()> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Err(std::io::Error::other("a directory is in the way"))
            }
            Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(errno(e)),
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

    fn write_file(&mut self, dir: &OwnedFd, e: &Entry) -> Result<()> {
        let Payload::File(content) = &e.payload else {
            unreachable!("checked by the caller")
        };
        let extents = read_extents(self.store, content, e.size)?;
        self.clear(dir, &e.name)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, e.name.as_slice(), flags, Mode::from_raw_mode(0o600))
            .map_err(errno)?;
        let mut file = File::from(fd);
        let res = self.fill(&mut file, &extents, e.size);
        if let Err(err) = res {
            drop(file);
            let _ = rustix::fs::unlinkat(dir, e.name.as_slice(), AtFlags::empty());
            return Err(err);
        }
        rustix::fs::fchmod(&file, self.mode_of(e)).map_err(errno)?;
        if let Some(t) = self.times(e) {
            rustix::fs::futimens(&file, &t).map_err(errno)?;
        }
        Ok(())
    }

    fn fill(&mut self, file: &mut File, extents: &[Extent], size: u64) -> Result<()> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        for ext in extents {
            match ext {
                Extent::Data { len, id } => {
                    let data = self.store.read_blob(id, Kind::Chunk)?;
                    if data.len() != *len as usize {
                        return Err(Error::corrupt(
                            crate::Region::Blob {
                                id: id.short(),
                                kind: "chunk",
                            },
                            "chunk length differs from the extent",
                        ));
                    }
                    w.write_all(&data)?;
                    self.out.bytes += data.len() as u64;
                    self.progress.bytes(data.len() as u64);
                }
                Extent::Hole { len } => {
                    w.seek(SeekFrom::Current(*len as i64))?;
                }
            }
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.set_len(size)?;
        Ok(())
    }

    fn extract_entry(
        &mut self,
        parent: &OwnedFd,
        rel: &[u8],
        e: &Entry,
    ) -> Result<Option<DirFrame>> {
        match (&e.kind, &e.payload) {
            (EntryType::Dir, Payload::Dir(id)) => {
                let fd = self.make_dir(parent, &e.name)?;
                let mut todo = read_directory(self.store, id)?;
                todo.reverse();
                self.out.dirs += 1;
                return Ok(Some(DirFrame {
                    fd,
                    rel: rel.to_vec(),
                    todo,
                    own: Some(e.clone()),
                }));
            }
            (EntryType::File, Payload::File(_)) => {
                self.write_file(parent, e)?;
                self.files_done.insert(rel.to_vec());
                self.out.files += 1;
            }
            (EntryType::Symlink, Payload::Symlink(target)) => {
                self.clear(parent, &e.name)?;
                rustix::fs::symlinkat(target.as_slice(), parent, e.name.as_slice())
                    .map_err(errno)?;
                if let Some(t) = self.times(e) {
                    rustix::fs::utimensat(parent, e.name.as_slice(), &t, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(errno)?;
                }
                self.out.symlinks += 1;
            }
            (EntryType::Hardlink, Payload::Hardlink(target)) => {
                if !self.files_done.contains(target) {
                    return Err(Error::InvalidInput(format!(
                        "hard link to '{}', which this extraction did not write as a regular file",
                        String::from_utf8_lossy(target)
                    )));
                }
                let (dir, base) = match target.iter().rposition(|&b| b == b'/') {
                    Some(i) => (&target[..i], &target[i + 1..]),
                    None => (&b""[..], &target[..]),
                };
                let oflags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let resolve =
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
                let root = &self.root;
                let dfd = if dir.is_empty() {
                    rustix::fs::openat(root, ".", oflags, Mode::empty()).map_err(errno)?
                } else {
                    rustix::fs::openat2(root, dir, oflags, Mode::empty(), resolve).map_err(errno)?
                };
                self.clear(parent, &e.name)?;
                rustix::fs::linkat(&dfd, base, parent, e.name.as_slice(), AtFlags::empty())
                    .map_err(errno)?;
                self.out.hardlinks += 1;
            }
            (k, _) => {
                let msg = format!("{k:?} entries are not restored by this version; skipped");
                self.progress.warning(rel, &msg);
                return Ok(None);
            }
        }
        Ok(None)
    }
}

/// Extracts the tree `root` of `store` into `dest` (created if missing).
pub fn extract(
    store: &Store,
    root: &Id,
    dest: &Path,
    opts: &ExtractOptions,
    progress: &dyn Progress,
) -> Result<ExtractOutcome> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io_at(dest, e))?;
    let root_fd = rustix::fs::openat(
        CWD,
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io_at(dest, errno(e)))?;
    let root_dup = root_fd.try_clone()?;
    let mut x = Extractor {
        store,
        root: root_dup,
        opts,
        mask: umask(),
        progress,
        out: ExtractOutcome::default(),
        files_done: HashSet::new(),
    };
    let mut todo = read_directory(store, root)?;
    todo.reverse();
    let mut stack = vec![DirFrame {
        fd: root_fd,
        rel: Vec::new(),
        todo,
        own: None,
    }];
    while let Some(top) = stack.last_mut() {
        if let Some(e) = top.todo.pop() {
            let rel = join(&top.rel, &e.name);
            let parent = top.fd.try_clone()?;
            if stack.len() > MAX_TREE_DEPTH {
                return Err(Error::corrupt(
                    crate::Region::Blob {
                        id: root.short(),
                        kind: "tree",
                    },
                    "directories nest too deep",
                ));
            }
            match x.extract_entry(&parent, &rel, &e) {
                Ok(Some(frame)) => {
                    progress.entry(&rel, &e);
                    stack.push(frame)
                }
                Ok(None) => progress.entry(&rel, &e),
                Err(err) => {
                    let msg = err.to_string();
                    progress.warning(&rel, &msg);
                    x.out.errors.push((rel, msg));
                }
            }
            continue;
        }
        let frame = stack.pop().expect("non-empty");
        if let Some(e) = frame.own {
            let res =
                rustix::fs::fchmod(&frame.fd, x.mode_of(&e)).and_then(|_| match x.times(&e) {
                    Some(t) => rustix::fs::futimens(&frame.fd, &t),
                    None => Ok(()),
                });
            if let Err(err) = res {
                let msg = format!("cannot set directory metadata: {}", errno(err));
                progress.warning(&frame.rel, &msg);
                x.out.errors.push((frame.rel, msg));
            }
        }
    }
    Ok(x.out)
}
