//! Comparing a snapshot with the file system (tar's `--diff`).
//!
//! Paths are resolved through directory handles, one name at a time and
//! never following a symlink, so depth is not limited by PATH_MAX.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

use crate::format::tree::{EntryType, Extent, Payload};
use crate::format::{Id, Kind};
use crate::store::Store;
use crate::tree::read_extents;
use crate::walk::{Step, Walker};
use crate::Result;

use super::extract::Selection;

/// One way a file on disk differs from its snapshot entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Difference {
    /// Member path.
    pub path: Vec<u8>,
    /// What differs, in GNU tar's words ("Size differs", "Contents differ", ...).
    pub what: String,
}

fn type_matches(kind: EntryType, ft: FileType) -> bool {
    match kind {
        EntryType::File | EntryType::Hardlink => ft == FileType::RegularFile,
        EntryType::Dir => ft == FileType::Directory,
        EntryType::Symlink => ft == FileType::Symlink,
        EntryType::CharDevice => ft == FileType::CharacterDevice,
        EntryType::BlockDevice => ft == FileType::BlockDevice,
        EntryType::Fifo => ft == FileType::Fifo,
        EntryType::Socket => ft == FileType::Socket,
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory holding `path` (a member path) below `root`, one
/// component at a time, never following a symlink.
fn open_parent(root: &OwnedFd, path: &[u8]) -> std::io::Result<(OwnedFd, Vec<u8>)> {
    let mut dir = root.try_clone()?;
    let mut parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let name = parts.pop().unwrap_or_default().to_vec();
    for p in parts {
        dir = rustix::fs::openat(&dir, p, DIR_FLAGS, Mode::empty())?;
    }
    Ok((dir, name))
}

fn same_content(store: &Store, dir: &OwnedFd, name: &[u8], extents: &[Extent]) -> Result<bool> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut f = File::from(
        rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(std::io::Error::from)?,
    );
    let mut buf = Vec::new();
    for x in extents {
        let (want, len): (Option<Vec<u8>>, u64) = match x {
            Extent::Data { id, len } => (Some(store.read_blob(id, Kind::Chunk)?), *len as u64),
            Extent::Hole { len } => (None, *len),
        };
        let mut left = len;
        let mut at = 0usize;
        while left > 0 {
            let n = left.min(1 << 20) as usize;
            buf.resize(n, 0);
            if f.read_exact(&mut buf).is_err() {
                return Ok(false);
            }
            let same = match &want {
                Some(w) => w[at..at + n] == buf[..],
                None => buf.iter().all(|&b| b == 0),
            };
            if !same {
                return Ok(false);
            }
            at += n;
            left -= n as u64;
        }
    }
    Ok(f.read(&mut [0u8; 1])? == 0)
}

/// Compares the entries of tree `root` that `selection` picks with the files
/// under `base`. Files only on disk are not reported (as with tar).
pub fn compare(
    store: &Store,
    root: &Id,
    base: &Path,
    selection: &Selection,
) -> Result<Vec<Difference>> {
    let base_fd = rustix::fs::openat(
        CWD,
        base,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| crate::Error::io_at(base, e.into()))?;
    let mut out = Vec::new();
    // Handles of the directories open in the walk, the root's first; `None`
    // where the directory is not on disk.
    let mut dirs: Vec<Option<OwnedFd>> = vec![Some(base_fd.try_clone()?)];
    let mut walker = Walker::new(store, *root);
    while let Some(step) = walker.next() {
        let (rel, e, depth) = match step? {
            Step::Entry(v) => (v.path, v.entry, v.depth),
            Step::Unreadable { error, .. } => return Err(error),
            Step::Leave(_) => {
                dirs.pop();
                continue;
            }
        };
        let parent = dirs[depth - 1].as_ref().and_then(|d| d.try_clone().ok());
        let st = match &parent {
            Some(p) => rustix::fs::statat(p, e.name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(std::io::Error::from),
            None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        if let Payload::Dir(_) = &e.payload {
            if selection.excluded(&rel) {
                walker.skip();
            } else {
                dirs.push(parent.as_ref().and_then(|p| {
                    rustix::fs::openat(p, e.name.as_slice(), DIR_FLAGS, Mode::empty()).ok()
                }));
            }
        }
        if selection.pick(&rel).is_none() {
            continue;
        }
        let mut differ = |what: &str| {
            out.push(Difference {
                path: rel.clone(),
                what: what.to_string(),
            })
        };
        let st = match st {
            Ok(st) => st,
            Err(err) => {
                differ(&format!("Warning: Cannot stat: {err}"));
                continue;
            }
        };
        let parent = parent.expect("stat succeeded inside an open directory");
        let ft = FileType::from_raw_mode(st.st_mode);
        if !type_matches(e.kind, ft) {
            differ("File type differs");
            continue;
        }
        if e.kind != EntryType::Symlink && st.st_mode & 0o7777 != e.mode {
            differ("Mode differs");
        }
        if st.st_uid != e.uid {
            differ("Uid differs");
        }
        if st.st_gid != e.gid {
            differ("Gid differs");
        }
        match &e.payload {
            Payload::File(content) => {
                if (st.st_mtime, st.st_mtime_nsec as u32) != (e.mtime.sec, e.mtime.nsec) {
                    differ("Mod time differs");
                }
                if st.st_size as u64 != e.size {
                    differ("Size differs");
                } else if !same_content(
                    store,
                    &parent,
                    &e.name,
                    &read_extents(store, content, e.size)?,
                )? {
                    differ("Contents differ");
                }
            }
            Payload::Symlink(target) => {
                match rustix::fs::readlinkat(&parent, e.name.as_slice(), Vec::new()) {
                    Ok(t) if t.as_bytes() == target.as_slice() => {}
                    _ => differ("Symlink differs"),
                }
            }
            Payload::Hardlink(target) => {
                let linked = open_parent(&base_fd, target)
                    .and_then(|(d, n)| {
                        Ok(rustix::fs::statat(
                            &d,
                            n.as_slice(),
                            AtFlags::SYMLINK_NOFOLLOW,
                        )?)
                    })
                    .map(|t| (t.st_dev, t.st_ino) == (st.st_dev, st.st_ino))
                    .unwrap_or(false);
                if !linked {
                    differ(&format!(
                        "Not linked to {}",
                        String::from_utf8_lossy(target)
                    ));
                }
            }
            Payload::Device { major, minor } => {
                if st.st_rdev != rustix::fs::makedev(*major, *minor) {
                    differ("Device number differs");
                }
            }
            Payload::Dir(_) | Payload::None => {}
        }
    }
    Ok(out)
}
