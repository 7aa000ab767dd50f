//! The import side: a tree of entries read from somewhere (the file system,
//! a tar stream, another archive) and built into a snapshot.
//!
//! An [`EntrySource`] yields the tree depth-first: `EnterDir`, the
//! directory's entries, `LeaveDir`. [`build`] turns the stream into stored
//! chunks, file maps and tree pages, and returns the root tree id. Entries
//! of one directory may come in any order (they are sorted); a name that
//! comes twice keeps its first entry.
//!
//! A source whose paths come in any order (a tar stream) says so with
//! [`EntrySource::ordered`] returning `false`. Every item's `path` is then
//! the whole path from the snapshot root, `EnterDir` announces one
//! directory and no `LeaveDir` follows. The builder stores each file's
//! content as it arrives (a stream cannot be read twice) and keeps the tree
//! of entries in memory, about 200 bytes per entry plus its name, never file
//! contents; when the source ends it writes the directories bottom-up. On
//! the way it:
//!
//! - makes up the directories no item names (`a/b/c.txt` alone gives `a`
//!   and `a/b`): permission bits `0755`, the importing process's effective
//!   user and group (ids and names), and as modification, access and change
//!   time the newest modification time of anything stored beneath them, so
//!   the same input always gives the same tree;
//! - lets a path that comes again replace what it held, as tar extraction
//!   does, except that a directory met twice keeps its entries and takes the
//!   later metadata, a non-directory cannot replace a directory that holds
//!   entries, and nothing can be stored below a non-directory (both are
//!   problems for the later item, as with GNU tar);
//! - resolves hard links (`Other` items of type [`EntryType::Hardlink`]
//!   whose payload is the target's path) against what the tree holds when
//!   the link arrives, and stores each set of names of one file as the
//!   format wants it: the name first in depth-first name order is the
//!   regular file, every other one a hard link to it, all of them with the
//!   set's size as link count. A link to a path that holds nothing yet, or
//!   a directory, is a problem; a link to a symlink, device or fifo stores
//!   a copy of it.

use std::io::Read;

use crate::chunker::{ChunkStream, Chunker};
use crate::format::snapshot::Summary;
use crate::format::tree::{Entry, EntryType, Extent, Payload};
use crate::format::{Id, Kind};
use crate::progress::Progress;
use crate::store::{GenerationWriter, Sink, Store};
use crate::tree::{read_directory, write_content, write_directory};
use crate::Result;

/// Extended attributes: (name, value), sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// A file's content as a source offers it.
pub trait FileData {
    /// The ranges `[start, end)` that hold data, in order, when the source
    /// knows where the holes are: what lies between and after them (up to
    /// [`FileData::len`]) is a hole. `None` (the default): all data, read to
    /// the end.
    fn data_ranges(&mut self) -> Option<Vec<(u64, u64)>> {
        None
    }
    /// A reader positioned at `start`.
    fn reader_at(&mut self, start: u64) -> std::io::Result<&mut dyn Read>;
    /// The length the source expects (used to place a trailing hole).
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Called once the content was read whole and stored (`total` bytes,
    /// holes included). Returns a message when the file changed meanwhile.
    fn finish(&mut self, _total: u64) -> Option<String> {
        None
    }
    /// Called instead of reading when the builder reuses the content the
    /// parent snapshot stored for this file (`total` bytes, holes included).
    fn reused(&mut self, _total: u64) {}
    /// Whether the entry's extended attributes are left to
    /// [`FileData::late_xattrs`] (read with the content, or taken over from
    /// the parent snapshot with it). `false` (the default): the entry
    /// carries its own.
    fn defers_xattrs(&self) -> bool {
        false
    }
    /// The extended attributes, read once the content was read, and a
    /// message for each problem. Called only when [`FileData::defers_xattrs`].
    fn late_xattrs(&mut self) -> (Xattrs, Vec<String>) {
        (Vec::new(), Vec::new())
    }
}

/// One step of a source's walk.
pub enum SourceItem<'a> {
    /// A directory begins. Its entry's payload is filled in by the builder.
    /// From an unordered source ([`EntrySource::ordered`]): a directory,
    /// with no `LeaveDir` after it.
    EnterDir {
        /// Member path.
        path: Vec<u8>,
        /// The directory's entry.
        entry: Entry,
    },
    /// The directory entered last ends.
    LeaveDir,
    /// A regular file; its size and content are filled in by the builder.
    File {
        /// Member path.
        path: Vec<u8>,
        /// The file's entry.
        entry: Entry,
        /// The content.
        data: &'a mut dyn FileData,
    },
    /// Anything else, complete (symlink, hard link, device, fifo). A hard
    /// link's payload is the path of its target from the snapshot root.
    Other {
        /// Member path.
        path: Vec<u8>,
        /// The entry.
        entry: Entry,
    },
    /// A problem with one path, kept in the snapshot's error list.
    Problem {
        /// Member path.
        path: Vec<u8>,
        /// What went wrong.
        message: String,
    },
    /// A notice about one path, reported but not kept ("socket ignored").
    Notice {
        /// Member path.
        path: Vec<u8>,
        /// The notice.
        message: String,
    },
}

/// Yields a tree of entries, depth-first.
pub trait EntrySource {
    /// The next step, or `None` at the end of the root directory.
    fn next(&mut self) -> Result<Option<SourceItem<'_>>>;
    /// Whether the items come depth-first with `EnterDir`/`LeaveDir` (the
    /// default). `false`: each item carries its whole path from the snapshot
    /// root and the paths come in any order (see the module documentation).
    fn ordered(&self) -> bool {
        true
    }
    /// Whether, at the end, the source found none of what it was asked to
    /// read (every operand named was missing): then no snapshot is made.
    fn nothing_found(&self) -> bool {
        false
    }
}

/// [`crate::Error::Cancelled`] when the caller asked to stop.
fn check_cancelled(progress: &dyn Progress) -> Result<()> {
    if progress.cancelled() {
        Err(crate::Error::Cancelled)
    } else {
        Ok(())
    }
}

/// What building a tree produced.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BuildOutcome {
    /// Root tree id.
    pub root: Id,
    /// Counts.
    pub summary: Summary,
    /// Problems: (path, message). They are also kept in the snapshot.
    pub errors: Vec<(Vec<u8>, String)>,
    /// Whether some file changed while it was read.
    pub changed: bool,
    /// Files whose content was taken over from the parent snapshot unread.
    pub reused: u64,
}

fn read_content<W: Sink>(
    w: &mut GenerationWriter<W>,
    chunker: &Chunker,
    data: &mut dyn FileData,
    buf: &mut Vec<u8>,
    progress: &dyn Progress,
) -> Result<std::result::Result<(Vec<Extent>, u64), String>> {
    let mut extents = Vec::new();
    let mut total = 0u64;
    let ranges = data.data_ranges();
    let sparse = ranges.is_some();
    for (start, end) in ranges.unwrap_or_else(|| vec![(0, u64::MAX)]) {
        if start > total {
            extents.push(Extent::Hole { len: start - total });
            total = start;
        }
        let reader = match data.reader_at(start) {
            Ok(r) => r,
            // A source's own message ("cannot open: ...") stands as it is.
            Err(e) if e.get_ref().is_some() => return Ok(Err(e.to_string())),
            Err(e) => return Ok(Err(format!("read error: {e}"))),
        };
        let mut stream =
            ChunkStream::with_buffer(chunker, reader.take(end - start), std::mem::take(buf));
        let done = loop {
            if progress.cancelled() {
                *buf = stream.into_buffer();
                return Err(crate::Error::Cancelled);
            }
            let chunk = match stream.next_chunk() {
                Ok(Some(c)) => c,
                Ok(None) => break Ok(()),
                Err(e) => break Err(format!("read error: {e}")),
            };
            let len = chunk.len() as u32;
            let id = match w.put_blob(Kind::Chunk, chunk) {
                Ok(id) => id,
                Err(e) => {
                    *buf = stream.into_buffer();
                    return Err(e);
                }
            };
            progress.bytes(len as u64);
            total += len as u64;
            extents.push(Extent::Data { len, id });
        };
        *buf = stream.into_buffer();
        if let Err(message) = done {
            return Ok(Err(message));
        }
    }
    let expected = data.len();
    if sparse && total < expected {
        extents.push(Extent::Hole {
            len: expected - total,
        });
        total = expected;
    }
    Ok(Ok((extents, total)))
}

/// A snapshot already in the archive whose unchanged files are taken over
/// without reading them (restic's parent snapshot).
#[derive(Clone, Copy)]
pub struct Parent<'a> {
    /// The archive holding it.
    pub store: &'a Store,
    /// Its root tree.
    pub root: Id,
}

impl Parent<'_> {
    /// A directory of the parent, sorted by name; empty when it cannot be
    /// read (a damaged parent only costs the shortcut, never the backup).
    fn listing(&self, tree: &Id) -> Vec<Entry> {
        read_directory(self.store, tree).unwrap_or_default()
    }
}

/// The parent's entry for `name` in a listing sorted by name.
fn find_old<'e>(old: &'e [Entry], name: &[u8]) -> Option<&'e Entry> {
    old.binary_search_by(|e| e.name.as_slice().cmp(name))
        .ok()
        .map(|i| &old[i])
}

/// Whether `old` describes the same unchanged file as `new` (of `len`
/// bytes): same device and inode, size, and modification and change times.
/// The change time catches a file whose modification time was set back, the
/// inode a file replaced by another.
fn unchanged(old: &Entry, new: &Entry, len: u64) -> bool {
    old.kind == EntryType::File
        && new.ino != 0
        && old.ino == new.ino
        && old.dev == new.dev
        && old.size == len
        && old.mtime == new.mtime
        && old.ctime == new.ctime
}

/// One directory being built: its entry (none for the root), the entries
/// built so far, and the parent snapshot's entries of the same
/// directory.
struct Frame {
    entry: Option<Entry>,
    built: Vec<Entry>,
    old: Vec<Entry>,
}

/// Builds the tree `source` yields, storing its blobs through `w`.
pub fn build<W: Sink>(
    w: &mut GenerationWriter<W>,
    chunker: &Chunker,
    source: &mut dyn EntrySource,
    progress: &dyn Progress,
) -> Result<BuildOutcome> {
    build_with_parent(w, chunker, source, None, progress)
}

/// [`build`], taking over from `parent` the content of every regular file
/// whose device, inode, size, modification time and change time are those
/// the parent recorded for the same path.
pub fn build_with_parent<W: Sink>(
    w: &mut GenerationWriter<W>,
    chunker: &Chunker,
    source: &mut dyn EntrySource,
    parent: Option<Parent<'_>>,
    progress: &dyn Progress,
) -> Result<BuildOutcome> {
    if !source.ordered() {
        return build_any_order(w, chunker, source, progress);
    }
    let mut out = BuildOutcome::default();
    let mut buf = Vec::new();
    let mut stack: Vec<Frame> = vec![Frame {
        entry: None,
        built: Vec::new(),
        old: parent.map(|p| p.listing(&p.root)).unwrap_or_default(),
    }];
    loop {
        check_cancelled(progress)?;
        let item = source.next()?;
        match item {
            Some(SourceItem::EnterDir { path, entry }) => {
                progress.entry(&path, &entry);
                // The directory entered is at depth `stack.len()` (the
                // root's frame is the first).
                if !crate::walk::depth_allowed(stack.len()) {
                    return Err(crate::Error::InvalidInput(format!(
                        "'{}' nests deeper than the format allows",
                        String::from_utf8_lossy(&path)
                    )));
                }
                let old = match (
                    parent,
                    stack.last().and_then(|f| find_old(&f.old, &entry.name)),
                ) {
                    (
                        Some(p),
                        Some(Entry {
                            payload: Payload::Dir(id),
                            ..
                        }),
                    ) => p.listing(id),
                    _ => Vec::new(),
                };
                stack.push(Frame {
                    entry: Some(entry),
                    built: Vec::new(),
                    old,
                });
            }
            Some(SourceItem::LeaveDir) | None => {
                let done = item.is_none();
                let Frame {
                    entry, mut built, ..
                } = stack.pop().expect("a frame per directory");
                built.sort_by(|a, b| a.name.cmp(&b.name));
                built.dedup_by(|a, b| a.name == b.name);
                let id = write_directory(w, built)?;
                match (entry, stack.last_mut()) {
                    (Some(mut e), Some(up)) => {
                        e.payload = Payload::Dir(id);
                        out.summary.dirs += 1;
                        up.built.push(e);
                    }
                    (None, None) if done => {
                        out.root = id;
                        return Ok(out);
                    }
                    _ => {
                        return Err(crate::Error::InvalidInput(
                            "the source's directories do not nest".into(),
                        ))
                    }
                }
            }
            Some(SourceItem::File {
                path,
                mut entry,
                data,
            }) => {
                let frame = stack.last_mut().expect("frame");
                let len = data.len();
                if let Some(old) =
                    find_old(&frame.old, &entry.name).filter(|o| unchanged(o, &entry, len))
                {
                    data.reused(old.size);
                    if data.defers_xattrs() {
                        // Setting an attribute changes the change time.
                        entry.xattrs = old.xattrs.clone();
                    }
                    entry.payload = old.payload.clone();
                    entry.size = old.size;
                    out.summary.files += 1;
                    out.summary.total_size += old.size;
                    out.reused += 1;
                    progress.entry(&path, &entry);
                    frame.built.push(entry);
                    continue;
                }
                match read_content(w, chunker, data, &mut buf, progress)? {
                    Ok((extents, total)) => {
                        if data.defers_xattrs() {
                            let (xattrs, problems) = data.late_xattrs();
                            entry.xattrs = xattrs;
                            for message in problems {
                                progress.warning(&path, &message);
                                out.errors.push((path.clone(), message));
                            }
                        }
                        if let Some(message) = data.finish(total) {
                            out.changed = true;
                            progress.warning(&path, &message);
                            out.errors.push((path.clone(), message));
                        }
                        entry.payload = Payload::File(write_content(w, extents)?);
                        entry.size = total;
                        out.summary.files += 1;
                        out.summary.total_size += total;
                        progress.entry(&path, &entry);
                        stack.last_mut().expect("frame").built.push(entry);
                    }
                    Err(message) => {
                        progress.warning(&path, &message);
                        out.errors.push((path, message));
                    }
                }
            }
            Some(SourceItem::Other { path, entry }) => {
                match entry.kind {
                    EntryType::Symlink => out.summary.symlinks += 1,
                    EntryType::Hardlink => out.summary.hardlinks += 1,
                    _ => out.summary.others += 1,
                }
                progress.entry(&path, &entry);
                stack.last_mut().expect("frame").built.push(entry);
            }
            Some(SourceItem::Problem { path, message }) => {
                progress.warning(&path, &message);
                out.errors.push((path, message));
            }
            Some(SourceItem::Notice { path, message }) => progress.notice(&path, &message),
        }
    }
}

/// Marks a node that belongs to no set of hard-linked names.
const NO_GROUP: u32 = u32::MAX;

/// One path of a tree built from a source of paths in any order.
struct Node {
    /// The entry; its name is left empty here (it is the key in the
    /// parent's map) and set when the tree is written. The root's is unused.
    entry: Entry,
    /// Children by name, for directories (`None` for everything else).
    children: Option<std::collections::BTreeMap<Vec<u8>, u32>>,
    /// The set of hard-linked names this file belongs to, or [`NO_GROUP`].
    group: u32,
    /// A directory that no item named: its metadata is made up when the
    /// tree is written.
    made_up: bool,
}

/// The tree of entries kept in memory by [`build_any_order`]: nodes in an
/// arena (so dropping a deep tree recurses nowhere), children by index.
struct AnyTree {
    nodes: Vec<Node>,
    groups: u32,
}

/// The components of an item's path: empty and `.` components dropped,
/// each remaining one a valid entry name, not too deep (spec §12: a
/// directory, the item itself when `dir`, at most
/// [`MAX_TREE_DEPTH`](crate::format::limits::MAX_TREE_DEPTH) levels down).
fn components(path: &[u8], dir: bool) -> std::result::Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        if c.is_empty() || c == b"." {
            continue;
        }
        if c == b".." {
            return Err("the path contains '..'; not stored".into());
        }
        crate::format::tree::check_name(c)
            .map_err(|m| format!("cannot store this name: {}", m.0))?;
        out.push(c);
    }
    let deepest_dir = if dir {
        out.len()
    } else {
        out.len().saturating_sub(1)
    };
    if !crate::walk::depth_allowed(deepest_dir) {
        return Err("the path nests deeper than the format allows".into());
    }
    Ok(out)
}

/// A directory no item describes (its owner and times are set when it is
/// written), and the placeholder left where an entry is taken out.
fn made_up_entry() -> Entry {
    Entry::synthetic_dir(Vec::new(), Default::default())
}

impl AnyTree {
    fn new() -> AnyTree {
        AnyTree {
            nodes: vec![Node {
                entry: made_up_entry(),
                children: Some(Default::default()),
                group: NO_GROUP,
                made_up: false,
            }],
            groups: 0,
        }
    }

    fn child(&self, node: u32, name: &[u8]) -> Option<u32> {
        self.nodes[node as usize]
            .children
            .as_ref()
            .and_then(|c| c.get(name).copied())
    }

    /// The node at `comps`, if the tree holds one.
    fn lookup(&self, comps: &[&[u8]]) -> Option<u32> {
        let mut at = 0u32;
        for c in comps {
            at = self.child(at, c)?;
        }
        Some(at)
    }

    /// Whether an entry (a directory when `dir`) can be stored at `comps`:
    /// no parent may be a non-directory, and a directory holding entries
    /// is not replaced by a non-directory.
    fn check(&self, comps: &[&[u8]], dir: bool) -> std::result::Result<(), String> {
        let mut at = 0u32;
        for (i, c) in comps.iter().enumerate() {
            let Some(next) = self.child(at, c) else {
                return Ok(());
            };
            let node = &self.nodes[next as usize];
            let last = i + 1 == comps.len();
            match &node.children {
                None if !last => {
                    return Err(format!(
                        "'{}' is not a directory; nothing can be stored under it",
                        String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                    ))
                }
                Some(kids) if last && !dir && !kids.is_empty() => {
                    return Err(
                        "a directory holding entries has this name; it is not replaced".into(),
                    )
                }
                _ => {}
            }
            at = next;
        }
        Ok(())
    }

    /// Stores `entry` at `comps` (which [`AnyTree::check`] accepted),
    /// making up missing parents; a directory met again keeps its entries.
    fn insert(&mut self, comps: &[&[u8]], entry: Entry, group: u32) -> Result<()> {
        let dir = entry.kind == EntryType::Dir;
        let mut at = 0u32;
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let next = match self.child(at, c) {
                Some(n) => n,
                None => {
                    let n = u32::try_from(self.nodes.len())
                        .ok()
                        .filter(|&n| n < u32::MAX)
                        .ok_or_else(|| {
                            crate::Error::LimitExceeded("more entries than a snapshot holds".into())
                        })?;
                    self.nodes.push(Node {
                        entry: made_up_entry(),
                        children: Some(Default::default()),
                        group: NO_GROUP,
                        made_up: true,
                    });
                    self.nodes[at as usize]
                        .children
                        .as_mut()
                        .expect("parents are directories")
                        .insert(c.to_vec(), n);
                    n
                }
            };
            if last {
                let node = &mut self.nodes[next as usize];
                let mut entry = entry;
                // The name is the key in the parent's map; keep one copy.
                entry.name = Vec::new();
                if let Payload::File(crate::format::tree::Content::Inline(x)) = &mut entry.payload {
                    x.shrink_to_fit();
                }
                node.entry = entry;
                node.made_up = false;
                node.group = group;
                if !dir {
                    node.children = None;
                } else if node.children.is_none() {
                    node.children = Some(Default::default());
                }
                return Ok(());
            }
            at = next;
        }
        Ok(())
    }

    /// Writes every directory bottom-up and returns the root tree's id.
    fn write<W: Sink>(mut self, w: &mut GenerationWriter<W>, out: &mut BuildOutcome) -> Result<Id> {
        struct Frame {
            node: u32,
            kids: std::vec::IntoIter<(Vec<u8>, u32)>,
            built: Vec<Entry>,
            newest: Option<crate::format::tree::Timestamp>,
            path_len: usize,
        }
        let mut sizes: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        for n in &self.nodes {
            if n.group != NO_GROUP {
                *sizes.entry(n.group).or_default() += 1;
            }
        }
        let mut heads: std::collections::HashMap<u32, Vec<u8>> = std::collections::HashMap::new();
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let (user, group) = (
            crate::fs::owners::user_name(uid),
            crate::fs::owners::group_name(gid),
        );
        let mut path: Vec<u8> = Vec::new();
        let kids = |n: &mut Node| -> std::vec::IntoIter<(Vec<u8>, u32)> {
            n.children
                .take()
                .unwrap_or_default()
                .into_iter()
                .collect::<Vec<_>>()
                .into_iter()
        };
        let mut stack = vec![Frame {
            node: 0,
            kids: kids(&mut self.nodes[0]),
            built: Vec::new(),
            newest: None,
            path_len: 0,
        }];
        loop {
            let top = stack.last_mut().expect("the root frame is popped last");
            if let Some((name, idx)) = top.kids.next() {
                let node = &mut self.nodes[idx as usize];
                if node.children.is_some() {
                    let kids = kids(node);
                    let path_len = path.len();
                    if !path.is_empty() {
                        path.push(b'/');
                    }
                    path.extend_from_slice(&name);
                    node.entry.name = name;
                    stack.push(Frame {
                        node: idx,
                        kids,
                        built: Vec::new(),
                        newest: None,
                        path_len,
                    });
                    continue;
                }
                let mut entry = std::mem::replace(&mut node.entry, made_up_entry());
                let names = sizes.get(&node.group).copied().unwrap_or(1);
                if names > 1 {
                    let full = crate::walk::join(&path, &name);
                    entry.nlink = names;
                    match heads.get(&node.group) {
                        Some(head) if head.len() <= crate::format::limits::MAX_TARGET_LEN => {
                            entry.kind = EntryType::Hardlink;
                            entry.payload = Payload::Hardlink(head.clone());
                        }
                        // A head too deep to be named by a link: each name
                        // is a file of its own (sharing the chunks).
                        Some(_) => {}
                        None => {
                            heads.insert(node.group, full);
                        }
                    }
                }
                entry.name = name;
                match entry.kind {
                    EntryType::File => {
                        out.summary.files += 1;
                        out.summary.total_size += entry.size;
                    }
                    EntryType::Symlink => out.summary.symlinks += 1,
                    EntryType::Hardlink => out.summary.hardlinks += 1,
                    _ => out.summary.others += 1,
                }
                top.newest = top.newest.max(Some(entry.mtime));
                top.built.push(entry);
                continue;
            }
            let frame = stack.pop().expect("a frame");
            let id = write_directory(w, frame.built)?;
            let Some(up) = stack.last_mut() else {
                return Ok(id);
            };
            let node = &mut self.nodes[frame.node as usize];
            let mut e = std::mem::replace(&mut node.entry, made_up_entry());
            if node.made_up {
                let t = frame.newest.unwrap_or_else(|| {
                    let d = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    crate::format::tree::Timestamp {
                        sec: d.as_secs() as i64,
                        nsec: d.subsec_nanos(),
                    }
                });
                e.uid = uid;
                e.gid = gid;
                e.user = user.clone();
                e.group = group.clone();
                e.mtime = t;
                e.atime = t;
                e.ctime = t;
            }
            e.payload = Payload::Dir(id);
            out.summary.dirs += 1;
            up.newest = up.newest.max(frame.newest).max(Some(e.mtime));
            up.built.push(e);
            path.truncate(frame.path_len);
        }
    }
}

fn report(out: &mut BuildOutcome, progress: &dyn Progress, path: Vec<u8>, message: String) {
    progress.warning(&path, &message);
    out.errors.push((path, message));
}

/// [`build`] for a source whose paths come in any order (see the module
/// documentation).
fn build_any_order<W: Sink>(
    w: &mut GenerationWriter<W>,
    chunker: &Chunker,
    source: &mut dyn EntrySource,
    progress: &dyn Progress,
) -> Result<BuildOutcome> {
    let mut out = BuildOutcome::default();
    let mut tree = AnyTree::new();
    let mut buf = Vec::new();
    loop {
        check_cancelled(progress)?;
        let Some(item) = source.next()? else {
            break;
        };
        match item {
            SourceItem::EnterDir { path, mut entry } => {
                let comps =
                    match components(&path, true).and_then(|c| tree.check(&c, true).map(|_| c)) {
                        Ok(c) => c,
                        Err(m) => {
                            report(&mut out, progress, path, m);
                            continue;
                        }
                    };
                // The snapshot root has no entry of its own.
                if comps.is_empty() {
                    continue;
                }
                entry.kind = EntryType::Dir;
                entry.payload = Payload::Dir(Id::ZERO);
                entry.size = 0;
                progress.entry(&path, &entry);
                tree.insert(&comps, entry, NO_GROUP)?;
            }
            SourceItem::LeaveDir => {
                return Err(crate::Error::InvalidInput(
                    "a source of paths in any order left a directory".into(),
                ))
            }
            SourceItem::File {
                path,
                mut entry,
                data,
            } => {
                let comps = match components(&path, false).and_then(|c| {
                    if c.is_empty() {
                        return Err("a file cannot stand for the snapshot root".into());
                    }
                    tree.check(&c, false).map(|_| c)
                }) {
                    Ok(c) => c,
                    Err(m) => {
                        report(&mut out, progress, path, m);
                        continue;
                    }
                };
                match read_content(w, chunker, data, &mut buf, progress)? {
                    Ok((extents, total)) => {
                        if data.defers_xattrs() {
                            let (xattrs, problems) = data.late_xattrs();
                            entry.xattrs = xattrs;
                            for message in problems {
                                report(&mut out, progress, path.clone(), message);
                            }
                        }
                        if let Some(message) = data.finish(total) {
                            out.changed = true;
                            report(&mut out, progress, path.clone(), message);
                        }
                        entry.kind = EntryType::File;
                        entry.payload = Payload::File(write_content(w, extents)?);
                        entry.size = total;
                        progress.entry(&path, &entry);
                        tree.insert(&comps, entry, NO_GROUP)?;
                    }
                    Err(message) => report(&mut out, progress, path, message),
                }
            }
            SourceItem::Other { path, entry } => {
                let comps = match components(&path, false).and_then(|c| {
                    if c.is_empty() {
                        return Err("only a directory can stand for the snapshot root".into());
                    }
                    tree.check(&c, false).map(|_| c)
                }) {
                    Ok(c) => c,
                    Err(m) => {
                        report(&mut out, progress, path, m);
                        continue;
                    }
                };
                if entry.kind == EntryType::Dir {
                    report(
                        &mut out,
                        progress,
                        path,
                        "a directory came as a non-directory item".into(),
                    );
                    continue;
                }
                if entry.kind != EntryType::Hardlink {
                    progress.entry(&path, &entry);
                    tree.insert(&comps, entry, NO_GROUP)?;
                    continue;
                }
                let target = match &entry.payload {
                    Payload::Hardlink(t) => t.clone(),
                    _ => Vec::new(),
                };
                let found = components(&target, false)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .and_then(|t| tree.lookup(&t));
                let Some(idx) = found else {
                    report(
                        &mut out,
                        progress,
                        path,
                        format!(
                            "hard link to '{}', which is not stored before it; not stored",
                            String::from_utf8_lossy(&target)
                        ),
                    );
                    continue;
                };
                let node = &mut tree.nodes[idx as usize];
                if node.children.is_some() {
                    report(
                        &mut out,
                        progress,
                        path,
                        format!(
                            "hard link to the directory '{}'; not stored",
                            String::from_utf8_lossy(&target)
                        ),
                    );
                    continue;
                }
                let copy = node.entry.clone();
                let group = if copy.kind == EntryType::File {
                    if node.group == NO_GROUP {
                        node.group = tree.groups;
                        tree.groups += 1;
                    }
                    node.group
                } else {
                    NO_GROUP
                };
                progress.entry(&path, &entry);
                tree.insert(&comps, copy, group)?;
            }
            SourceItem::Problem { path, message } => report(&mut out, progress, path, message),
            SourceItem::Notice { path, message } => progress.notice(&path, &message),
        }
    }
    out.root = tree.write(w, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::limits::MAX_TREE_DEPTH;

    #[test]
    fn paths_in_any_order_follow_the_depth_rule() {
        let deep = |n: usize| "d/".repeat(n - 1) + "d";
        // A directory at the limit, and a file in it.
        assert!(components(deep(MAX_TREE_DEPTH).as_bytes(), true).is_ok());
        assert!(components(deep(MAX_TREE_DEPTH + 1).as_bytes(), false).is_ok());
        // A directory one level deeper, or a file below one.
        assert!(components(deep(MAX_TREE_DEPTH + 1).as_bytes(), true).is_err());
        assert!(components(deep(MAX_TREE_DEPTH + 2).as_bytes(), false).is_err());
    }
}
