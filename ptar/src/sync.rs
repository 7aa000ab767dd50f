//! Copying snapshots from one archive into another (`ptar sync`).
//!
//! Each snapshot is rebuilt in the destination's id space: its trees are
//! walked bottom-up, every chunk the destination lacks is read from the
//! source and stored, file maps and tree pages are written again with the
//! destination's ids, and the snapshot record is stored with the new root
//! and every other field as it was (times, host, user, name, tags, paths,
//! command line, counters, errors). Chunk boundaries stay as they are:
//! nothing is chunked again.
//!
//! When both archives compute the same content ids (both plain, or both
//! encrypted under the same master key) a chunk the destination already
//! holds is not even read; otherwise its destination id is only known once
//! its bytes are hashed with the destination's key, so every chunk of a
//! snapshot is read (each distinct one once per run).
//!
//! Within one run, the translation of every tree, file map and chunk is
//! remembered by id: a subtree met again (in the next snapshot, or twice in
//! one) costs a map lookup. A tree the destination already holds is *not*
//! taken to be complete: the format does not promise that a stored tree's
//! children are stored too (only trees reachable from a snapshot are checked
//! by a full verification, and a hand-built generation may hold any blob),
//! so its chunks are still looked up one by one.
//!
//! Memory grows with the number of distinct blobs met (one map entry each)
//! and with the largest directory listing and file extent list, never with
//! file contents: chunks are copied one at a time.

use std::collections::HashMap;

use crate::archive::{Archive, Snapshot, Writer};
use crate::crypto::{self, Keys};
use crate::format::tree::{Content, Entry, Extent, Payload};
use crate::format::{Id, Kind};
use crate::progress::Progress;
use crate::store::{GenerationWriter, Sink, Store};
use crate::tree::{read_extents, write_content, write_directory};
use crate::walk::{check_depth, Step, Visit, Walker};
use crate::{Error, Region, Result};

/// What happened to one snapshot asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncedSnapshot {
    /// Its id in the source archive.
    pub source: Id,
    /// Its id in the destination archive.
    pub dest: Id,
    /// Whether it was added (`false`: the destination already held it).
    pub copied: bool,
}

/// What a sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncOutcome {
    /// Snapshots added to the destination.
    pub snapshots_copied: u64,
    /// Snapshots the destination already held (nothing stored for them).
    pub snapshots_skipped: u64,
    /// Distinct chunks stored into the destination.
    pub chunks_copied: u64,
    /// Distinct chunks the destination already held.
    pub chunks_present: u64,
    /// Chunk bytes read (decoded) from the source.
    pub bytes_read: u64,
    /// Record bytes written to the destination (chunks, file maps, tree
    /// pages and snapshot records; not the index, table and footer the
    /// commit adds).
    pub bytes_stored: u64,
    /// Every snapshot asked for, in the order given.
    pub snapshots: Vec<SyncedSnapshot>,
}

/// Copies `snapshots` (read from `src`) into the generation `dst` is
/// writing, storing only the blobs the destination lacks. The caller
/// commits `dst` (or drops it, leaving the destination as it was); when
/// [`SyncOutcome::snapshots_copied`] is 0 there is nothing to commit.
///
/// Fails on the first blob of the source that is missing or damaged, naming
/// it; what was stored into `dst` until then is not committed. Stops with
/// [`Error::Cancelled`] between entries and chunks when `progress` asks.
pub fn sync<W: Sink>(
    src: &Archive,
    snapshots: &[Snapshot],
    dst: &mut Writer<W>,
    progress: &dyn Progress,
) -> Result<SyncOutcome> {
    let store = src.store();
    let (start_bytes, shared) = {
        let gen = dst.generation_writer();
        (gen.stats().bytes, same_ids(store.keys(), gen.keys()))
    };
    let mut t = Translator {
        store,
        shared,
        progress,
        trees: HashMap::new(),
        maps: HashMap::new(),
        chunks: HashMap::new(),
        out: SyncOutcome::default(),
    };
    for snap in snapshots {
        // With shared ids the record is the same blob in both archives.
        if shared && dst.holds_snapshot(&snap.id) {
            t.out.snapshots_skipped += 1;
            t.out.snapshots.push(SyncedSnapshot {
                source: snap.id,
                dest: snap.id,
                copied: false,
            });
            continue;
        }
        let root = t.tree(dst.generation_writer(), &snap.record.root)?;
        let mut record = snap.record.clone();
        record.root = root;
        let id = crypto::content_id(
            dst.generation_writer().keys(),
            Kind::Snapshot,
            &record.to_bytes(),
        );
        let copied = !dst.holds_snapshot(&id);
        if copied {
            let stored = dst.add_snapshot_record(&record)?;
            debug_assert_eq!(stored, id);
            t.out.snapshots_copied += 1;
        } else {
            t.out.snapshots_skipped += 1;
        }
        t.out.snapshots.push(SyncedSnapshot {
            source: snap.id,
            dest: id,
            copied,
        });
    }
    if progress.cancelled() {
        return Err(Error::Cancelled);
    }
    let gen = dst.generation_writer();
    gen.flush()?;
    t.out.bytes_stored = gen.stats().bytes - start_bytes;
    Ok(t.out)
}

/// Whether two archives (by their keys) give the same bytes the same id.
fn same_ids(a: Option<&Keys>, b: Option<&Keys>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same_content_ids(b),
        _ => false,
    }
}

/// One directory being rebuilt: its source tree id, its entry in the
/// parent (none for the root), the entries translated so far, and the
/// levels of directories met below it.
struct Frame {
    old: Id,
    entry: Option<Entry>,
    done: Vec<Entry>,
    height: usize,
}

impl Frame {
    fn new(old: Id, entry: Option<Entry>) -> Frame {
        Frame {
            old,
            entry,
            done: Vec::new(),
            height: 0,
        }
    }
}

/// Source ids to destination ids, remembered for one run.
struct Translator<'a> {
    store: &'a Store,
    shared: bool,
    progress: &'a dyn Progress,
    /// Source tree id → destination tree id, and the levels of directories
    /// under it (so a tree met again deeper is held to the depth limit).
    trees: HashMap<Id, (Id, usize)>,
    /// Source file-map id → destination content.
    maps: HashMap<Id, Content>,
    /// Source chunk id → destination chunk id.
    chunks: HashMap<Id, Id>,
    out: SyncOutcome,
}

impl Translator<'_> {
    /// Rebuilds the directory whose top page is `root` in the destination,
    /// depth-first, and returns its destination id.
    fn tree<W: Sink>(&mut self, gen: &mut GenerationWriter<W>, root: &Id) -> Result<Id> {
        if let Some((id, _)) = self.trees.get(root) {
            return Ok(*id);
        }
        let mut stack = vec![Frame::new(*root, None)];
        let mut walker = Walker::new(self.store, *root);
        loop {
            if self.progress.cancelled() {
                return Err(Error::Cancelled);
            }
            let Some(step) = walker.next() else {
                break;
            };
            let Visit {
                path,
                mut entry,
                depth,
            } = match step? {
                Step::Entry(v) => v,
                Step::Unreadable { error, .. } => return Err(error),
                Step::Leave(_) => {
                    let frame = stack.pop().expect("a frame per open directory");
                    let id = write_directory(gen, frame.done)?;
                    self.trees.insert(frame.old, (id, frame.height));
                    let mut entry = frame
                        .entry
                        .expect("a directory below the root has an entry");
                    entry.payload = Payload::Dir(id);
                    let up = stack.last_mut().expect("the root's frame is closed last");
                    up.done.push(entry);
                    up.height = up.height.max(frame.height + 1);
                    continue;
                }
            };
            self.progress.entry(&path, &entry);
            let top = stack.last_mut().expect("a frame per open directory");
            match &entry.payload {
                Payload::Dir(old) => {
                    let old = *old;
                    let Some(&(id, height)) = self.trees.get(&old) else {
                        stack.push(Frame::new(old, Some(entry)));
                        continue;
                    };
                    walker.skip();
                    check_depth(depth + height, &old)?;
                    entry.payload = Payload::Dir(id);
                    top.done.push(entry);
                    top.height = top.height.max(height + 1);
                }
                Payload::File(content) => {
                    let content = self.content(gen, content, entry.size)?;
                    entry.payload = Payload::File(content);
                    top.done.push(entry);
                }
                _ => top.done.push(entry),
            }
        }
        let frame = stack.pop().expect("the root's frame");
        let id = write_directory(gen, frame.done)?;
        self.trees.insert(frame.old, (id, frame.height));
        Ok(id)
    }

    /// A file's content with destination chunk ids (and file maps stored
    /// in the destination).
    fn content<W: Sink>(
        &mut self,
        gen: &mut GenerationWriter<W>,
        content: &Content,
        size: u64,
    ) -> Result<Content> {
        if let Content::Map(id) = content {
            if let Some(c) = self.maps.get(id) {
                return Ok(c.clone());
            }
        }
        let mut extents = read_extents(self.store, content, size)?;
        for x in &mut extents {
            if let Extent::Data { len, id } = x {
                *id = self.chunk(gen, id, *len)?;
            }
        }
        let new = write_content(gen, extents)?;
        if let Content::Map(id) = content {
            self.maps.insert(*id, new.clone());
        }
        Ok(new)
    }

    /// The destination id of a chunk, copying it when the destination
    /// lacks it.
    fn chunk<W: Sink>(&mut self, gen: &mut GenerationWriter<W>, old: &Id, len: u32) -> Result<Id> {
        if let Some(id) = self.chunks.get(old) {
            self.progress.bytes(len as u64);
            return Ok(*id);
        }
        if self.shared && gen.has_blob(old)? {
            self.out.chunks_present += 1;
            self.chunks.insert(*old, *old);
            self.progress.bytes(len as u64);
            return Ok(*old);
        }
        if self.progress.cancelled() {
            return Err(Error::Cancelled);
        }
        let before = gen.stats().blobs;
        // Damage found in a record names the record: say which chunk too.
        let named = |e: Error| match e.region() {
            Some(_) if e.to_string().contains(&old.short()) => e,
            Some(_) => Error::corrupt(
                Region::Blob {
                    id: old.short(),
                    kind: Kind::Chunk.name(),
                },
                format!("cannot be read from the source archive: {e}"),
            ),
            None => e,
        };
        let stored = self
            .store
            .with_blob(old, Kind::Chunk, |data| {
                if data.len() != len as usize {
                    return Err(Error::corrupt(
                        Region::Blob {
                            id: old.short(),
                            kind: Kind::Chunk.name(),
                        },
                        format!(
                            "the chunk holds {} bytes, the file's extent says {len}",
                            data.len()
                        ),
                    ));
                }
                if self.shared {
                    // Read with its id checked: the same id here.
                    gen.put_blob_with_id(Kind::Chunk, data, *old)
                } else {
                    gen.put_blob(Kind::Chunk, data)
                }
            })
            .map_err(named)??;
        self.out.bytes_read += len as u64;
        if gen.stats().blobs > before {
            self.out.chunks_copied += 1;
        } else {
            self.out.chunks_present += 1;
        }
        self.chunks.insert(*old, stored);
        self.progress.bytes(len as u64);
        Ok(stored)
    }
}
