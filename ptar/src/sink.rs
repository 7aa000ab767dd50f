//! The export side: a snapshot walked as a stream of entries and handed to
//! an [`EntrySink`].
//!
//! Extraction to a directory ([`crate::fs::FsSink`]) is one sink; writing
//! file contents to a stream (`ptar -O`) is another; a tar exporter is a
//! third. The walk is depth-first in name order, directories before their
//! contents, iterative (the library's one tree walk, bounded by
//! [`crate::format::limits::MAX_TREE_DEPTH`] as spec §12 says).

use std::io::Read;

use crate::format::tree::{Entry, Extent, Payload};
use crate::format::{Id, Kind};
use crate::progress::Progress;
use crate::store::Store;
use crate::tree::read_extents;
use crate::walk::{Step, Walker};
use crate::{Error, Region, Result};

/// What a sink did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Taken. For a directory: hand over its entries, then call
    /// [`EntrySink::leave_dir`].
    Take,
    /// Left out (not selected, kept as it was, ...); for a directory, its
    /// entries are not handed over and `leave_dir` is not called.
    Skip,
}

/// Receives a snapshot's entries. `path` is the member path from the
/// snapshot root. An error for one entry is reported and the walk goes on
/// (an error from `enter_dir` skips that directory).
pub trait EntrySink {
    /// A directory begins.
    fn enter_dir(&mut self, path: &[u8], entry: &Entry) -> Result<Flow>;
    /// A directory entered with [`Flow::Take`] ends: all its entries were handed over.
    fn leave_dir(&mut self, path: &[u8], entry: &Entry) -> Result<()>;
    /// A regular file and its content.
    fn file(&mut self, path: &[u8], entry: &Entry, content: &mut FileContent<'_>) -> Result<Flow>;
    /// Anything else: symlink, hard link, device, fifo, socket.
    fn other(&mut self, path: &[u8], entry: &Entry) -> Result<Flow>;
}

/// A file's content: its extents, and a reader that yields its bytes (holes
/// as zeros), each chunk checked against its id. Nothing is read until a
/// sink asks for it.
pub struct FileContent<'a> {
    store: &'a Store,
    entry: &'a Entry,
    extents: Option<Vec<Extent>>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    hole_left: u64,
}

impl<'a> FileContent<'a> {
    /// The content of a file entry.
    pub fn new(store: &'a Store, entry: &'a Entry) -> FileContent<'a> {
        FileContent {
            store,
            entry,
            extents: None,
            next: 0,
            buf: Vec::new(),
            pos: 0,
            hole_left: 0,
        }
    }

    /// The archive the content is read from.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// The extents (resolving file maps), for sinks that keep holes as holes.
    pub fn extents(&mut self) -> Result<&[Extent]> {
        if self.extents.is_none() {
            let Payload::File(content) = &self.entry.payload else {
                return Err(Error::InvalidInput("not a regular file".into()));
            };
            self.extents = Some(read_extents(self.store, content, self.entry.size)?);
        }
        Ok(self.extents.as_deref().expect("just resolved"))
    }

    /// One chunk, checked against its id and its extent's length.
    pub fn chunk(&self, id: &Id, len: u32) -> Result<Vec<u8>> {
        self.with_chunk(id, len, <[u8]>::to_vec)
    }

    /// Calls `f` on one chunk, checked against its id and its extent's
    /// length, without copying it out of its record.
    pub fn with_chunk<R>(&self, id: &Id, len: u32, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.store.with_blob(id, Kind::Chunk, |data| {
            if data.len() != len as usize {
                return Err(Error::corrupt(
                    Region::Blob {
                        id: id.short(),
                        kind: "chunk",
                    },
                    "chunk length differs from the extent",
                ));
            }
            Ok(f(data))
        })?
    }
}

impl Read for FileContent<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.hole_left > 0 {
                let n = (out.len() as u64).min(self.hole_left) as usize;
                out[..n].fill(0);
                self.hole_left -= n as u64;
                return Ok(n);
            }
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            let next = self.next;
            let Some(x) = self
                .extents()
                .map_err(std::io::Error::other)?
                .get(next)
                .copied()
            else {
                return Ok(0);
            };
            self.next += 1;
            match x {
                Extent::Data { id, len } => {
                    self.buf = self.chunk(&id, len).map_err(std::io::Error::other)?;
                    self.pos = 0;
                }
                Extent::Hole { len } => self.hole_left = len,
            }
        }
    }
}

/// Per-entry failures: (member path, message).
pub type Failures = Vec<(Vec<u8>, String)>;

/// Walks the tree `root` and hands every entry to `sink`. Entries the sink
/// accepts are reported to `progress`; failures are reported and returned.
/// A sink's [`Error::LimitExceeded`] or [`Error::Cancelled`] ends the walk
/// at once, and so does `progress` asking to stop (checked before every
/// entry).
pub fn export(
    store: &Store,
    root: &Id,
    sink: &mut dyn EntrySink,
    progress: &dyn Progress,
) -> Result<Failures> {
    let mut failures = Vec::new();
    let mut fail = |path: &[u8], err: Error| -> Result<()> {
        if matches!(err, Error::LimitExceeded(_) | Error::Cancelled) {
            return Err(err);
        }
        let msg = err.to_string();
        progress.warning(path, &msg);
        failures.push((path.to_vec(), msg));
        Ok(())
    };
    let mut walker = Walker::new(store, *root);
    loop {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        let Some(step) = walker.next() else {
            break;
        };
        let v = match step? {
            Step::Entry(v) => v,
            Step::Unreadable { path, error } if path.is_empty() => return Err(error),
            Step::Unreadable { path, error } => {
                fail(&path, error)?;
                continue;
            }
            Step::Leave(v) => {
                if let Err(err) = sink.leave_dir(&v.path, &v.entry) {
                    fail(&v.path, err)?;
                }
                continue;
            }
        };
        let (path, e) = (&v.path, &v.entry);
        let flow = match &e.payload {
            Payload::Dir(_) => sink.enter_dir(path, e),
            Payload::File(_) => sink.file(path, e, &mut FileContent::new(store, e)),
            _ => sink.other(path, e),
        };
        match flow {
            Ok(Flow::Take) => progress.entry(path, e),
            Ok(Flow::Skip) => walker.skip(),
            Err(err) => {
                walker.skip();
                fail(path, err)?;
            }
        }
    }
    Ok(failures)
}
