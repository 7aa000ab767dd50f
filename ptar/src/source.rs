//! The import side: a tree of entries read from somewhere (the file system,
//! a tar stream, another archive) and built into a snapshot.
//!
//! An [`EntrySource`] yields the tree depth-first: `EnterDir`, the
//! directory's entries, `LeaveDir`. [`build`] turns the stream into stored
//! chunks, file maps and tree pages, and returns the root tree id. Entries
//! of one directory may come in any order (they are sorted); a name that
//! comes twice keeps its first entry.

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
    /// Anything else, complete (symlink, hard link, device, fifo).
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
    let mut out = BuildOutcome::default();
    let mut buf = Vec::new();
    let mut stack: Vec<Frame> = vec![Frame {
        entry: None,
        built: Vec::new(),
        old: parent.map(|p| p.listing(&p.root)).unwrap_or_default(),
    }];
    loop {
        let item = source.next()?;
        match item {
            Some(SourceItem::EnterDir { path, entry }) => {
                progress.entry(&path, &entry);
                if stack.len() > crate::format::limits::MAX_TREE_DEPTH {
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
            Some(SourceItem::Notice { path, message }) => progress.warning(&path, &message),
        }
    }
}
