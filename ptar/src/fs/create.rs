//! Reading files and directories into a snapshot tree.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::chunker::{ChunkStream, Chunker};
use crate::format::snapshot::Summary;
use crate::format::tree::{Entry, EntryType, Extent, Payload, Timestamp};
use crate::format::{Id, Kind};
use crate::progress::Progress;
use crate::store::{GenerationWriter, Sink};
use crate::tree::{write_content, write_directory};
use crate::Result;

use super::owners;

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

fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

fn entry_from(name: Vec<u8>, kind: EntryType, md: &Metadata, payload: Payload) -> Entry {
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

struct Frame {
    /// The directory's own entry (payload filled in when done); `None` for the root.
    entry: Option<Entry>,
    /// Path from the snapshot root.
    rel: Vec<u8>,
    /// Children still to visit: (name, fs path, virtual node if any).
    todo: Vec<(Vec<u8>, PathBuf, Option<VNode>)>,
    built: Vec<Entry>,
}

struct Walker<'a, 'p, W: Sink> {
    w: &'a mut GenerationWriter<W>,
    chunker: &'a Chunker,
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

impl<W: Sink> Walker<'_, '_, W> {
    fn error(&mut self, path: &[u8], msg: String) {
        self.progress.warning(path, &msg);
        self.out.errors.push((path.to_vec(), msg));
    }

    /// Lists a directory's children, sorted by name, merged with operand nodes.
    fn children(
        &mut self,
        rel: &[u8],
        dir: &Path,
        recurse: bool,
        virt: BTreeMap<Vec<u8>, VNode>,
    ) -> Vec<(Vec<u8>, PathBuf, Option<VNode>)> {
        let mut map: BTreeMap<Vec<u8>, (PathBuf, Option<VNode>)> = BTreeMap::new();
        if recurse {
            match fs::read_dir(dir) {
                Ok(rd) => {
                    for de in rd {
                        match de {
                            Ok(de) => {
                                let name: OsString = de.file_name();
                                map.insert(name.into_vec(), (de.path(), None));
                            }
                            Err(e) => self.error(rel, format!("cannot read directory: {e}")),
                        }
                    }
                }
                Err(e) => self.error(rel, format!("cannot read directory: {e}")),
            }
        }
        for (name, node) in virt {
            let p = node.fs_path.clone();
            map.insert(name, (p, Some(node)));
        }
        // Visited in reverse so popping from the end yields name order.
        map.into_iter().rev().map(|(n, (p, v))| (n, p, v)).collect()
    }

    fn read_file(
        &mut self,
        rel: &[u8],
        path: &Path,
        md: &Metadata,
    ) -> Result<Option<(Vec<Extent>, u64)>> {
        let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(noatime)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
                match File::open(path) {
                    Ok(f) => f,
                    Err(e) => {
                        self.error(rel, format!("cannot open: {e}"));
                        return Ok(None);
                    }
                }
            }
            Err(e) => {
                self.error(rel, format!("cannot open: {e}"));
                return Ok(None);
            }
        };
        let mut extents = Vec::new();
        let mut total = 0u64;
        let mut stream = ChunkStream::new(self.chunker, &file);
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
        if let Ok(after) = file.metadata() {
            if after.len() != md.len()
                || after.mtime() != md.mtime()
                || after.mtime_nsec() != md.mtime_nsec()
                || total != md.len()
            {
                self.out.changed = true;
                self.error(rel, "file changed as we read it".into());
            }
        }
        Ok(Some((extents, total)))
    }

    /// Builds the entry for one child; directories return a new frame instead.
    fn visit(
        &mut self,
        rel: Vec<u8>,
        name: Vec<u8>,
        path: PathBuf,
        node: Option<VNode>,
    ) -> Result<Visit> {
        let recurse = node.as_ref().is_none_or(|n| n.operand);
        let md = match fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(e) => {
                if let Some(n) = node.filter(|n| !n.operand) {
                    // An intermediate directory of an operand we cannot stat.
                    let todo = self.children(&rel, &path, false, n.children);
                    return Ok(Visit::Dir(Frame {
                        entry: Some(synthetic_dir(name)),
                        rel,
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
        use std::os::unix::fs::FileTypeExt;
        if ft.is_dir() {
            let virt = node.map(|n| n.children).unwrap_or_default();
            let todo = self.children(&rel, &path, recurse, virt);
            let e = entry_from(name, EntryType::Dir, &md, Payload::Dir(Id::ZERO));
            return Ok(Visit::Dir(Frame {
                entry: Some(e),
                rel,
                todo,
                built: Vec::new(),
            }));
        }
        let entry = if ft.is_file() {
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
            let Some((extents, total)) = self.read_file(&rel, &path, &md)? else {
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
            match fs::read_link(&path) {
                Ok(t) if !t.as_os_str().is_empty() => {
                    self.out.summary.symlinks += 1;
                    entry_from(
                        name,
                        EntryType::Symlink,
                        &md,
                        Payload::Symlink(t.into_os_string().into_vec()),
                    )
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
            } else if ft.is_fifo() {
                entry_from(name, EntryType::Fifo, &md, Payload::None)
            } else {
                entry_from(name, EntryType::Socket, &md, Payload::None)
            }
        };
        Ok(Visit::Entry(rel, entry))
    }
}

enum Visit {
    Dir(Frame),
    Entry(Vec<u8>, Entry),
    Skip,
}

/// Reads `paths` (files or directories, named as on a tar command line) into
/// a tree stored through `w`, returning its root id and what was seen.
/// Files whose (device, inode) is in `skip` (the archive being written) are
/// left out with a warning.
pub fn add_paths<W: Sink>(
    w: &mut GenerationWriter<W>,
    chunker: &Chunker,
    paths: &[PathBuf],
    skip: &[(u64, u64)],
    progress: &dyn Progress,
) -> Result<CreateOutcome> {
    let mut root = VNode::default();
    let mut root_sources: Vec<PathBuf> = Vec::new();
    for p in paths {
        let comps = member_components(p);
        if comps.is_empty() {
            root_sources.push(p.clone());
            continue;
        }
        let mut node = &mut root;
        let mut prefix = PathBuf::new();
        let bytes = p.as_os_str().as_bytes();
        let absolute = bytes.first() == Some(&b'/');
        if absolute {
            prefix.push("/");
        }
        // Intermediate nodes stand for the operand's own prefixes.
        let raw: Vec<&[u8]> = bytes
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        let mut walked = 0;
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
                node.fs_path = p.clone();
            }
        }
    }
    let mut walker = Walker {
        w,
        chunker,
        progress,
        out: CreateOutcome::default(),
        links: HashMap::new(),
        skip,
    };
    let mut todo = Vec::new();
    for src in &root_sources {
        todo.extend(walker.children(b"", src, true, BTreeMap::new()));
    }
    let virt_children = std::mem::take(&mut root.children);
    let mut merged: BTreeMap<Vec<u8>, (PathBuf, Option<VNode>)> =
        todo.into_iter().map(|(n, p, v)| (n, (p, v))).collect();
    for (n, v) in virt_children {
        let p = v.fs_path.clone();
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
        todo,
        built: Vec::new(),
    }];
    loop {
        let top = stack.last_mut().expect("root frame stays until the end");
        if let Some((name, path, node)) = top.todo.pop() {
            let rel = join(&top.rel, &name);
            match walker.visit(rel, name, path, node)? {
                Visit::Dir(f) => {
                    if let Some(e) = &f.entry {
                        walker.progress.entry(&f.rel, e);
                    }
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
}
