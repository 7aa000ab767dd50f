//! Comparing a snapshot with the file system (tar's `--diff`).

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::format::tree::{Entry, EntryType, Extent, Payload};
use crate::format::{Id, Kind};
use crate::store::Store;
use crate::tree::{read_directory, read_extents};
use crate::Result;

use super::extract::Selection;

/// One way a file on disk differs from its snapshot entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Member path.
    pub path: Vec<u8>,
    /// What differs, in GNU tar's words ("Size differs", "Contents differ", ...).
    pub what: String,
}

fn type_matches(kind: EntryType, ft: std::fs::FileType) -> bool {
    match kind {
        EntryType::File | EntryType::Hardlink => ft.is_file(),
        EntryType::Dir => ft.is_dir(),
        EntryType::Symlink => ft.is_symlink(),
        EntryType::CharDevice => ft.is_char_device(),
        EntryType::BlockDevice => ft.is_block_device(),
        EntryType::Fifo => ft.is_fifo(),
        EntryType::Socket => ft.is_socket(),
    }
}

fn same_content(store: &Store, path: &Path, extents: &[Extent]) -> Result<bool> {
    let mut f = File::open(path)?;
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
    let mut out = Vec::new();
    let mut stack: Vec<(Vec<u8>, std::vec::IntoIter<Entry>)> =
        vec![(Vec::new(), read_directory(store, root)?.into_iter())];
    while let Some((prefix, iter)) = stack.last_mut() {
        let Some(e) = iter.next() else {
            stack.pop();
            continue;
        };
        let mut rel = prefix.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&e.name);
        if let Payload::Dir(id) = &e.payload {
            if stack.len() < crate::format::limits::MAX_TREE_DEPTH {
                let kids = read_directory(store, id)?;
                stack.push((rel.clone(), kids.into_iter()));
            }
        }
        if !selection.patterns.is_empty() && selection.selects(&rel).is_none() {
            continue;
        }
        let path: PathBuf = base.join(std::ffi::OsStr::from_bytes(&rel));
        let mut differ = |what: &str| {
            out.push(Difference {
                path: rel.clone(),
                what: what.to_string(),
            })
        };
        let md = match fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(err) => {
                differ(&format!("Warning: Cannot stat: {err}"));
                continue;
            }
        };
        if !type_matches(e.kind, md.file_type()) {
            differ("File type differs");
            continue;
        }
        if e.kind != EntryType::Symlink && md.mode() & 0o7777 != e.mode {
            differ("Mode differs");
        }
        if md.uid() != e.uid {
            differ("Uid differs");
        }
        if md.gid() != e.gid {
            differ("Gid differs");
        }
        match &e.payload {
            Payload::File(content) => {
                if (md.mtime(), md.mtime_nsec() as u32) != (e.mtime.sec, e.mtime.nsec) {
                    differ("Mod time differs");
                }
                if md.len() != e.size {
                    differ("Size differs");
                } else if !same_content(store, &path, &read_extents(store, content, e.size)?)? {
                    differ("Contents differ");
                }
            }
            Payload::Symlink(target) => match fs::read_link(&path) {
                Ok(t) if t.as_os_str().as_bytes() == target.as_slice() => {}
                _ => differ("Symlink differs"),
            },
            Payload::Hardlink(target) => {
                let linked = fs::symlink_metadata(base.join(std::ffi::OsStr::from_bytes(target)))
                    .map(|t| (t.dev(), t.ino()) == (md.dev(), md.ino()))
                    .unwrap_or(false);
                if !linked {
                    differ(&format!(
                        "Not linked to {}",
                        String::from_utf8_lossy(target)
                    ));
                }
            }
            Payload::Device { major, minor } => {
                if md.rdev() != rustix::fs::makedev(*major, *minor) {
                    differ("Device number differs");
                }
            }
            Payload::Dir(_) | Payload::None => {}
        }
    }
    Ok(out)
}
