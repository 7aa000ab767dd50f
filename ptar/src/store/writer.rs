//! Writing one generation: records, then index, snapshot table, optional
//! key-slot table, and the footer (spec §15).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};

use crate::codec::{Compression, Compressor};
use crate::crypto::{self, Entropy, Keys, RecordContext};
use crate::format::footer::{Footer, FLAG_MAC, FLAG_SIGNED, FOOTER_LEN};
use crate::format::header::{keyslots_to_bytes, KeySlot};
use crate::format::index::{self, IndexEntry};
use crate::format::limits::MAX_BLOB_LEN;
use crate::format::table::{self, TableEntry};
use crate::format::{Codec, Id, Kind, FORMAT_MAJOR, FORMAT_MINOR};
use crate::store::reader::Store;
use crate::{Error, Result};

/// Where a generation's bytes go. `sync_data` makes what was written durable
/// (a no-op for pipes and memory).
pub trait Sink: Write {
    /// Flushes and makes the written bytes durable.
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.flush()
    }
}

impl Sink for Vec<u8> {}
impl Sink for std::io::Stdout {}

impl Sink for std::io::BufWriter<std::fs::File> {
    /// Flushes, then `fdatasync`s a regular file. A FIFO, a terminal or a
    /// device an archive is written to in place cannot be synced (`EINVAL`):
    /// for those, flushing is all there is.
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.flush()?;
        let f = self.get_ref();
        match crate::retry::eintr(|| f.sync_data()) {
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
                    && !f.metadata().is_ok_and(|m| m.is_file()) =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

/// The archive-wide facts a generation writer needs.
pub struct ArchiveContext {
    /// Archive UUID.
    pub uuid: [u8; 16],
    /// Minor version in the header.
    pub header_minor: u16,
    /// BLAKE3 of the header bytes.
    pub header_hash: [u8; 32],
    /// Keys when encrypted.
    pub keys: Option<Arc<Keys>>,
    /// The archive as committed so far (for dedup and the footer chain), or
    /// `None` when creating.
    pub existing: Option<Arc<Store>>,
}

/// How a generation writer packs and compresses blobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackOptions {
    /// The codec family and level for records.
    pub compression: Compression,
    /// Blobs shorter than this are packed, in the order they come, into solid
    /// records of about this many bytes (spec §8.1); longer ones get a record
    /// each. 0 or 1 gives every blob its own record.
    pub record_target: u32,
    /// Threads that compress records while the caller goes on reading; 0
    /// compresses on the caller's thread. The bytes written are the same
    /// either way.
    pub threads: usize,
}

/// The solid-record size writers use by default (spec §8.1, Appendix A).
pub const DEFAULT_RECORD_TARGET: u32 = 4 * 1024 * 1024;

/// The largest record target for file maps, tree pages and snapshots.
pub const METADATA_RECORD_TARGET: u32 = 256 * 1024;

impl Default for PackOptions {
    fn default() -> PackOptions {
        PackOptions {
            compression: Compression::DEFAULT,
            record_target: DEFAULT_RECORD_TARGET,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Counters for one generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteStats {
    /// Blobs written.
    pub blobs: u64,
    /// Record bytes written.
    pub bytes: u64,
    /// Blobs not written because the archive already had them.
    pub deduplicated: u64,
}

/// A blob stored in this generation: its id and range in its record
/// (`record` indexes [`GenerationWriter::records`], `PENDING` until the
/// record is written; the record gives the kind). 44 bytes a blob, the bulk
/// of a writer's memory.
#[derive(Clone, Copy)]
struct BlobRow {
    id: Id,
    record: u32,
    offset: u32,
    len: u32,
}

const PENDING: u32 = u32::MAX;

/// The rows of a generation's new blobs, kept in segments of a fixed size:
/// growing never copies rows or frees a smaller block, so memory grows by
/// exactly the rows stored (one growing vector left each outgrown block
/// behind in the allocator's heap).
#[derive(Default)]
struct Rows {
    segments: Vec<Vec<BlobRow>>,
    len: usize,
}

impl Rows {
    const SEGMENT: usize = 1 << 14;

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, row: BlobRow) -> u32 {
        if self
            .segments
            .last()
            .is_none_or(|s| s.len() == Self::SEGMENT)
        {
            self.segments.push(Vec::with_capacity(Self::SEGMENT));
        }
        self.segments.last_mut().expect("just ensured").push(row);
        self.len += 1;
        (self.len - 1) as u32
    }

    fn get(&self, i: u32) -> &BlobRow {
        let i = i as usize;
        &self.segments[i / Self::SEGMENT][i % Self::SEGMENT]
    }

    fn get_mut(&mut self, i: u32) -> &mut BlobRow {
        let i = i as usize;
        &mut self.segments[i / Self::SEGMENT][i % Self::SEGMENT]
    }

    fn iter(&self) -> impl Iterator<Item = &BlobRow> {
        self.segments.iter().flatten()
    }

    /// Every row in id order: each segment is sorted in place, then the
    /// segments are merged.
    fn into_sorted(mut self) -> impl Iterator<Item = BlobRow> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        for s in &mut self.segments {
            s.sort_unstable_by_key(|b| b.id);
        }
        let mut cursors: Vec<std::vec::IntoIter<BlobRow>> =
            self.segments.into_iter().map(Vec::into_iter).collect();
        let mut heads = BinaryHeap::new();
        let mut next: Vec<Option<BlobRow>> = Vec::with_capacity(cursors.len());
        for (k, c) in cursors.iter_mut().enumerate() {
            let row = c.next();
            if let Some(r) = &row {
                heads.push(Reverse((r.id, k)));
            }
            next.push(row);
        }
        std::iter::from_fn(move || {
            let Reverse((_, k)) = heads.pop()?;
            let row = next[k].take().expect("a head has its row");
            next[k] = cursors[k].next();
            if let Some(r) = &next[k] {
                heads.push(Reverse((r.id, k)));
            }
            Some(row)
        })
    }
}

/// A record written in this generation.
#[derive(Clone, Copy)]
struct RecordRow {
    offset: u64,
    stored_len: u32,
    raw_len: u32,
    codec: Codec,
    /// The kind of every blob in it (records hold one kind).
    kind: Kind,
}

/// A record being filled with blobs of one kind (their rows' positions).
#[derive(Default)]
struct OpenRecord {
    plaintext: Vec<u8>,
    blobs: Vec<u32>,
}

/// A record handed to compression, waiting for its turn to be written.
struct Queued {
    kind: Kind,
    raw_len: u32,
    blobs: Vec<u32>,
    /// (codec, payload) once compressed.
    packed: Option<(Codec, Vec<u8>)>,
}

/// Buffers back from compression and writing, for the next records.
#[derive(Default)]
struct Spares {
    plain: Vec<Vec<u8>>,
    packed: Vec<Vec<u8>>,
}

/// A record for a compression worker: its number, its plaintext, and a
/// buffer to compress into.
type Job = (u64, Vec<u8>, Vec<u8>);

/// What a worker hands back: the number, the codec, the payload (in the
/// job's buffer) and the plaintext's buffer, for reuse.
type Packed = (u64, Codec, Vec<u8>, Vec<u8>);

/// Compression workers: records go in numbered, come out in any order.
/// Buffers travel with the records and come back to the writer, which
/// reuses them: record buffers are allocated once per run rather than once
/// per record on one thread and freed on another, which had spread them
/// through the allocator's per-thread arenas and grown memory with the
/// input.
struct Workers {
    jobs: Option<mpsc::SyncSender<Job>>,
    results: mpsc::Receiver<Packed>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(n: usize, compression: Compression) -> Workers {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(n * 2);
        let (res_tx, results) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let handles = (0..n)
            .map(|_| {
                let rx = job_rx.clone();
                let tx = res_tx.clone();
                std::thread::spawn(move || {
                    let mut c = Compressor::new(compression);
                    loop {
                        let job = rx.lock().map(|r| r.recv());
                        let Ok(Ok((seq, plaintext, mut payload))) = job else {
                            return;
                        };
                        let codec = c.compress_into(&plaintext, &mut payload);
                        if tx.send((seq, codec, payload, plaintext)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Workers {
            jobs: Some(jobs),
            results,
            handles,
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn stopped() -> Error {
    std::io::Error::other("a compression thread stopped").into()
}

/// Why finishing a generation failed, with its footer when the footer's
/// writing had begun (some of its bytes may be in the file).
pub(crate) type FinishError = (Error, Option<Box<Footer>>);

/// Appends one generation to a sink positioned at the end of the archive.
pub struct GenerationWriter<W: Sink> {
    out: W,
    pos: u64,
    ctx: ArchiveContext,
    generation: u64,
    packfile_offset: u64,
    packfile_hash: blake3::Hasher,
    /// Every blob of this generation, in the order stored.
    blobs: Rows,
    /// Positions in `blobs`, by id.
    lookup: hashbrown::HashTable<u32>,
    records: Vec<RecordRow>,
    entropy: Box<dyn Entropy>,
    stats: WriteStats,
    opts: PackOptions,
    /// One record being filled per kind.
    open: [OpenRecord; 4],
    /// Records sealed but not yet written, in write order; the first has
    /// sequence number `next_seq - queue.len()`.
    queue: VecDeque<Queued>,
    next_seq: u64,
    compressor: Compressor,
    workers: Option<Workers>,
    /// Record-sized buffers back from compression and writing.
    /// Kept apart: a plaintext buffer is filled to the record target, a
    /// payload buffer only as far as compressed bytes reach, so reusing one
    /// for the other would make every buffer resident in full.
    spares: Spares,
    /// Checkpoints (spec §10.3): the generations this writer committed
    /// before the one being written, and what it needs to go on.
    checkpoints: Checkpoints,
}

/// Uncommitted bytes (records and the index they need) after which a
/// writer commits a *checkpoint generation* (spec §10.3): an interrupted
/// append then leaves a tail of at most this much plus one snapshot table,
/// key-slot table and footer, which readers find by scanning back at most
/// [`crate::format::footer::MAX_TAIL_SCAN`] bytes (spec §10.3).
pub const CHECKPOINT_BYTES: u64 = 1 << 30;

/// Blobs per first byte of their id, for an index's fan-out.
fn fan_out<'a>(rows: impl Iterator<Item = &'a BlobRow>) -> [u32; 256] {
    let mut first = [0u32; 256];
    for b in rows {
        first[b.id.0[0] as usize] += 1;
    }
    first
}

/// A checkpoint's commit time: now.
fn checkpoint_time() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What a writer keeps to commit checkpoint generations.
struct Checkpoints {
    /// Uncommitted bytes that trigger one (0: never).
    threshold: u64,
    /// This generation's first record in `records`: earlier ones belong to
    /// checkpoint generations already committed.
    first_record: u32,
    /// Blobs in this generation's written records.
    rows: u64,
    /// (first record, generation) of every generation this writer began.
    starts: Vec<(u32, u64)>,
    /// Offset and BLAKE3 of the last footer this writer committed.
    last_footer: Option<(u64, [u8; 32])>,
    /// Snapshots added (see [`GenerationWriter::note_snapshot`]), in order.
    snapshots: Vec<Id>,
}

impl<W: Sink> GenerationWriter<W> {
    /// Starts a generation at byte `pos` (the header's end when creating, the
    /// last footer's end when appending), packing as [`PackOptions::default`].
    pub fn new(
        out: W,
        pos: u64,
        ctx: ArchiveContext,
        entropy: Box<dyn Entropy>,
    ) -> GenerationWriter<W> {
        GenerationWriter::with_options(out, pos, ctx, entropy, PackOptions::default())
    }

    /// [`GenerationWriter::new`] with packing options.
    pub fn with_options(
        out: W,
        pos: u64,
        ctx: ArchiveContext,
        entropy: Box<dyn Entropy>,
        opts: PackOptions,
    ) -> GenerationWriter<W> {
        let generation = ctx
            .existing
            .as_ref()
            .and_then(|s| s.generations().last())
            .map_or(1, |g| g.footer.generation + 1);
        GenerationWriter {
            out,
            pos,
            ctx,
            generation,
            packfile_offset: pos,
            packfile_hash: blake3::Hasher::new(),
            blobs: Rows::default(),
            lookup: hashbrown::HashTable::new(),
            records: Vec::new(),
            entropy,
            stats: WriteStats::default(),
            opts,
            open: Default::default(),
            queue: VecDeque::new(),
            next_seq: 0,
            compressor: Compressor::new(opts.compression),
            workers: None,
            spares: Spares::default(),
            checkpoints: Checkpoints {
                threshold: CHECKPOINT_BYTES,
                first_record: 0,
                rows: 0,
                starts: vec![(0, generation)],
                last_footer: None,
                snapshots: Vec::new(),
            },
        }
    }

    /// Sets the uncommitted bytes after which a checkpoint generation is
    /// committed (default [`CHECKPOINT_BYTES`]; 0 never commits one). For
    /// tests: a writer that sets it above [`CHECKPOINT_BYTES`] can leave
    /// tails that readers refuse.
    #[doc(hidden)]
    pub fn set_checkpoint_bytes(&mut self, bytes: u64) {
        self.checkpoints.threshold = bytes;
    }

    /// Records that the snapshot blob `id`, just stored, is to be listed in
    /// the table: a checkpoint generation lists the snapshots whose blobs
    /// it holds, so that every table lists each snapshot from the
    /// generation that holds it (spec §11.2).
    pub fn note_snapshot(&mut self, id: Id) {
        self.checkpoints.snapshots.push(id);
    }

    /// The generation whose packfile holds the blob `id` stored by this
    /// writer, once its record is written.
    fn generation_holding(&self, id: &Id) -> Option<u64> {
        let blobs = &self.blobs;
        let i = *self
            .lookup
            .find(Self::id_hash(id), |&i| blobs.get(i).id == *id)?;
        let r = self.blobs.get(i).record;
        if r == PENDING {
            return None;
        }
        let starts = &self.checkpoints.starts;
        let k = starts.partition_point(|(first, _)| *first <= r);
        Some(starts[k.checked_sub(1)?].1)
    }

    /// The snapshots this writer added whose blobs are written, as table
    /// entries naming the generation that holds each; `given` supplies the
    /// generation of a snapshot whose blob an earlier run stored.
    fn added_entries(&self, given: &[TableEntry]) -> Vec<TableEntry> {
        given
            .iter()
            .map_while(|e| {
                if !self.checkpoints.snapshots.contains(&e.id) || !self.written(&e.id) {
                    return Some(*e);
                }
                self.generation_holding(&e.id).map(|generation| TableEntry {
                    id: e.id,
                    generation,
                })
            })
            .collect()
    }

    /// Commits the records written so far as a generation of their own,
    /// with no snapshot of its own but the ones whose blobs it holds.
    fn checkpoint(&mut self) -> Result<()> {
        let listed: Vec<TableEntry> = self
            .checkpoints
            .snapshots
            .iter()
            .map_while(|id| {
                self.generation_holding(id).map(|generation| TableEntry {
                    id: *id,
                    generation,
                })
            })
            .collect();
        let f = self.write_sections(true, true, &listed, None, None, checkpoint_time())?;
        self.write_footer(&f)?;
        self.generation += 1;
        self.packfile_offset = self.pos;
        self.packfile_hash = blake3::Hasher::new();
        self.checkpoints.first_record = self.records.len() as u32;
        self.checkpoints.rows = 0;
        self.checkpoints
            .starts
            .push((self.records.len() as u32, self.generation));
        Ok(())
    }

    /// Changes how blobs stored from now on are packed and compressed.
    pub fn set_pack_options(&mut self, opts: PackOptions) -> Result<()> {
        self.flush()?;
        self.workers = None;
        self.compressor = Compressor::new(opts.compression);
        self.opts = opts;
        Ok(())
    }

    /// The generation number being written.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Counters so far (record bytes count once a record is written; see
    /// [`GenerationWriter::flush`]).
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Keys, when encrypted.
    pub fn keys(&self) -> Option<&Keys> {
        self.ctx.keys.as_deref()
    }

    /// The archive as committed before this generation (when appending).
    pub fn existing(&self) -> Option<&Arc<Store>> {
        self.ctx.existing.as_ref()
    }

    /// The archive UUID.
    pub fn uuid(&self) -> [u8; 16] {
        self.ctx.uuid
    }

    /// Byte offset the next record will be written at, once the records
    /// still being filled or compressed are written.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether the archive (committed or this generation) holds `id`.
    pub fn has_blob(&self, id: &Id) -> Result<bool> {
        if self.written(id) {
            return Ok(true);
        }
        match &self.ctx.existing {
            Some(s) => s.contains(id),
            None => Ok(false),
        }
    }

    /// Stores a blob unless the archive already has it; returns its id.
    pub fn put_blob(&mut self, kind: Kind, data: &[u8]) -> Result<Id> {
        self.put(kind, data, true)
    }

    /// Stores a blob even when an earlier generation already holds it (this
    /// generation still holds each id once). For repair tools and for tests
    /// of readers; normal writers use [`GenerationWriter::put_blob`].
    pub fn put_blob_again(&mut self, kind: Kind, data: &[u8]) -> Result<Id> {
        self.put(kind, data, false)
    }

    /// [`GenerationWriter::put_blob`] of a blob whose id the caller has just
    /// computed (or checked) under this archive's keys: `ptar sync` between
    /// archives that share content ids, which reads each blob with its id
    /// checked and would otherwise hash it a second time.
    pub(crate) fn put_blob_with_id(&mut self, kind: Kind, data: &[u8], id: Id) -> Result<Id> {
        debug_assert_eq!(id, crypto::content_id(self.ctx.keys.as_deref(), kind, data));
        self.put_as(kind, data, Some(id), true)
    }

    fn put(&mut self, kind: Kind, data: &[u8], dedup_committed: bool) -> Result<Id> {
        self.put_as(kind, data, None, dedup_committed)
    }

    fn put_as(
        &mut self,
        kind: Kind,
        data: &[u8],
        id: Option<Id>,
        dedup_committed: bool,
    ) -> Result<Id> {
        if data.is_empty() {
            return Err(Error::InvalidInput(format!(
                "an empty {} blob",
                kind.name()
            )));
        }
        if data.len() > MAX_BLOB_LEN as usize {
            return Err(Error::InvalidInput(format!(
                "a {} blob of {} bytes exceeds the limit",
                kind.name(),
                data.len()
            )));
        }
        let id = id.unwrap_or_else(|| crypto::content_id(self.ctx.keys.as_deref(), kind, data));
        let present = if dedup_committed {
            self.has_blob(&id)?
        } else {
            self.written(&id)
        };
        if present {
            self.stats.deduplicated += 1;
            return Ok(id);
        }
        self.stats.blobs += 1;
        let len = data.len() as u32;
        let target = self.target(kind);
        if len >= target {
            let row = self.add_row(id, 0, len);
            let mut plaintext = self.spares.plain.pop().unwrap_or_default();
            plaintext.extend_from_slice(data);
            self.seal(kind, plaintext, vec![row])?;
            return Ok(id);
        }
        let slot = kind as usize - 1;
        if self.open[slot].plaintext.len() + data.len() > MAX_BLOB_LEN as usize {
            self.seal_open(slot, kind)?;
        }
        let offset = self.open[slot].plaintext.len() as u32;
        let row = self.add_row(id, offset, len);
        let open = &mut self.open[slot];
        if open.plaintext.capacity() == 0 {
            open.plaintext = self.spares.plain.pop().unwrap_or_default();
            open.plaintext.reserve_exact(target as usize + 256 * 1024);
        }
        open.blobs.push(row);
        open.plaintext.extend_from_slice(data);
        if open.plaintext.len() >= target as usize {
            self.seal_open(slot, kind)?;
        }
        Ok(id)
    }

    fn id_hash(id: &Id) -> u64 {
        // Ids are BLAKE3 outputs: any 8 of their bytes are a good hash.
        u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))
    }

    /// Whether this generation already stored `id`.
    fn written(&self, id: &Id) -> bool {
        let blobs = &self.blobs;
        self.lookup
            .find(Self::id_hash(id), |&i| blobs.get(i).id == *id)
            .is_some()
    }

    fn add_row(&mut self, id: Id, offset: u32, len: u32) -> u32 {
        let i = self.blobs.push(BlobRow {
            id,
            record: PENDING,
            offset,
            len,
        });
        let blobs = &self.blobs;
        self.lookup
            .insert_unique(Self::id_hash(&id), i, |&j| Self::id_hash(&blobs.get(j).id));
        i
    }

    /// The record target for a kind: metadata records are kept small, since
    /// readers visit directories in another order than they were written
    /// (parents first) and a small record is cheap to decode again.
    /// Keeps a buffer for reuse: a few per compression thread.
    fn give(&mut self, mut buf: Vec<u8>, plain: bool) {
        let pool = if plain {
            &mut self.spares.plain
        } else {
            &mut self.spares.packed
        };
        if pool.len() < self.opts.threads + 2 && buf.capacity() <= 2 * MAX_BLOB_LEN as usize {
            buf.clear();
            pool.push(buf);
        }
    }

    fn target(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Chunk => self.opts.record_target,
            _ => self.opts.record_target.min(METADATA_RECORD_TARGET),
        }
    }

    fn seal_open(&mut self, slot: usize, kind: Kind) -> Result<()> {
        let open = std::mem::take(&mut self.open[slot]);
        if open.blobs.is_empty() {
            return Ok(());
        }
        self.seal(kind, open.plaintext, open.blobs)
    }

    /// Hands a full record to compression and writes whatever is ready.
    fn seal(&mut self, kind: Kind, plaintext: Vec<u8>, blobs: Vec<u32>) -> Result<()> {
        let raw_len = plaintext.len() as u32;
        let seq = self.next_seq;
        self.next_seq += 1;
        let packed = if self.opts.threads == 0 {
            let mut payload = self.spares.packed.pop().unwrap_or_default();
            let codec = self.compressor.compress_into(&plaintext, &mut payload);
            self.give(plaintext, true);
            Some((codec, payload))
        } else {
            let threads = self.opts.threads;
            let compression = self.opts.compression;
            let w = self
                .workers
                .get_or_insert_with(|| Workers::start(threads, compression));
            let jobs = w.jobs.as_ref().expect("running workers");
            let payload = self.spares.packed.pop().unwrap_or_default();
            if jobs.send((seq, plaintext, payload)).is_err() {
                return Err(stopped());
            }
            None
        };
        self.queue.push_back(Queued {
            kind,
            raw_len,
            blobs,
            packed,
        });
        // Bound the records in flight (and so memory) to a few per thread.
        let limit = self.opts.threads + 1;
        self.drain(limit)
    }

    /// Writes queued records in order until at most `keep` remain, waiting
    /// for compression where needed.
    fn drain(&mut self, keep: usize) -> Result<()> {
        loop {
            if let Some(w) = &self.workers {
                let first = self.next_seq - self.queue.len() as u64;
                let mut back = Vec::new();
                let queue = &mut self.queue;
                let mut take = |queue: &mut VecDeque<Queued>, r: Packed| {
                    queue[(r.0 - first) as usize].packed = Some((r.1, r.2));
                    back.push(r.3);
                };
                if queue.len() > keep && queue.front().is_some_and(|q| q.packed.is_none()) {
                    take(queue, w.results.recv().map_err(|_| stopped())?);
                }
                while let Ok(r) = w.results.try_recv() {
                    take(queue, r);
                }
                for b in back {
                    self.give(b, true);
                }
            }
            while self.queue.front().is_some_and(|q| q.packed.is_some()) {
                let q = self.queue.pop_front().expect("front");
                self.write_record(q)?;
            }
            if self.queue.len() <= keep {
                return Ok(());
            }
        }
    }

    fn write_record(&mut self, q: Queued) -> Result<()> {
        let c = &self.checkpoints;
        if c.threshold > 0 && self.pos > self.packfile_offset {
            let payload = q.packed.as_ref().map_or(0, |p| p.1.len() as u64) + 40;
            let index = (c.rows + q.blobs.len() as u64) * index::ENTRY_LEN as u64
                + index::PREFIX_LEN as u64;
            if self.pos - self.packfile_offset + payload + index > c.threshold {
                self.checkpoint()?;
            }
        }
        let (codec, payload) = q.packed.expect("compressed");
        let kind = q.kind;
        let raw_len = q.raw_len;
        let record = match self.ctx.keys.as_deref() {
            Some(keys) => {
                let mut nonce = [0u8; 24];
                self.entropy.fill(&mut nonce);
                let rc = RecordContext {
                    uuid: &self.ctx.uuid,
                    minor: self.ctx.header_minor,
                    kind,
                    codec,
                    raw_len,
                    offset: self.pos,
                };
                let sealed = crypto::seal_record(keys, &rc, &nonce, &payload);
                self.give(payload, false);
                sealed
            }
            None => payload,
        };
        let record_offset = self.pos;
        self.write_raw(&record)?;
        let r = self.records.len() as u32;
        self.records.push(RecordRow {
            offset: record_offset,
            stored_len: record.len() as u32,
            raw_len,
            codec,
            kind,
        });
        self.checkpoints.rows += q.blobs.len() as u64;
        for i in q.blobs {
            self.blobs.get_mut(i).record = r;
        }
        self.stats.bytes += record.len() as u64;
        self.give(record, false);
        Ok(())
    }

    /// Seals the records being filled and writes every record still queued.
    pub fn flush(&mut self) -> Result<()> {
        for (slot, kind) in [Kind::Chunk, Kind::FileMap, Kind::Tree, Kind::Snapshot]
            .into_iter()
            .enumerate()
        {
            self.seal_open(slot, kind)?;
        }
        self.drain(0)
    }

    fn write_raw(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.packfile_hash.update(b);
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Writes the index of this generation's blobs (sorted in place, a few
    /// thousand entries at a time, so no second copy of it is ever held).
    fn write_index(&mut self) -> Result<[u8; 32]> {
        self.lookup = hashbrown::HashTable::new();
        let mut blobs = std::mem::take(&mut self.blobs);
        let from = self.checkpoints.first_record;
        if from > 0 {
            // Blobs of checkpoint generations are in their indexes.
            for s in &mut blobs.segments {
                s.retain(|b| b.record >= from);
            }
            blobs.len = blobs.segments.iter().map(Vec::len).sum();
        }
        let first = fan_out(blobs.iter());
        self.write_index_rows(blobs.len(), first, blobs.into_sorted())
    }

    /// Writes the index of a checkpoint generation: the blobs of the
    /// records written since the last one. The blobs stay known to this
    /// writer, so later generations refer to them instead of storing them
    /// again.
    fn write_checkpoint_index(&mut self) -> Result<[u8; 32]> {
        let from = self.checkpoints.first_record;
        let mut rows: Vec<BlobRow> = self
            .blobs
            .iter()
            .filter(|b| b.record != PENDING && b.record >= from)
            .copied()
            .collect();
        rows.sort_unstable_by_key(|b| b.id);
        let first = fan_out(rows.iter());
        self.write_index_rows(rows.len(), first, rows.into_iter())
    }

    fn write_index_rows(
        &mut self,
        count: usize,
        first: [u32; 256],
        sorted: impl Iterator<Item = BlobRow>,
    ) -> Result<[u8; 32]> {
        let mut hasher = blake3::Hasher::new();
        let mut buf = index::prefix_bytes(count as u64, &first);
        for b in sorted {
            let r = self.records[b.record as usize];
            IndexEntry {
                id: b.id,
                record_offset: r.offset,
                record_len: r.stored_len,
                raw_len: r.raw_len,
                blob_offset: b.offset,
                blob_len: b.len,
                kind: r.kind,
                codec: r.codec,
            }
            .write(&mut buf);
            if buf.len() >= 1 << 16 {
                self.out.write_all(&buf)?;
                hasher.update(&buf);
                self.pos += buf.len() as u64;
                buf.clear();
            }
        }
        self.out.write_all(&buf)?;
        hasher.update(&buf);
        self.pos += buf.len() as u64;
        Ok(*hasher.finalize().as_bytes())
    }

    /// Writes a snapshot table: the existing archive's newest table (when
    /// `base`), streamed a slice at a time, then `added`. Returns its offset
    /// and hash.
    fn write_table(
        &mut self,
        base: Option<&Store>,
        added: &[TableEntry],
    ) -> Result<(u64, [u8; 32])> {
        let off = self.pos;
        let old = base.map(|s| s.snapshot_table());
        let n = old.map_or(0, |t| t.len()) + added.len();
        if n > crate::format::limits::MAX_SNAPSHOTS as usize {
            return Err(Error::InvalidInput(format!(
                "the snapshot table would list {n} snapshots, more than the format's {}",
                crate::format::limits::MAX_SNAPSHOTS
            )));
        }
        let mut hasher = blake3::Hasher::new();
        let mut put = |w: &mut Self, b: &[u8]| -> Result<()> {
            w.out.write_all(b)?;
            hasher.update(b);
            w.pos += b.len() as u64;
            Ok(())
        };
        put(self, &table::prefix_bytes(n))?;
        if let Some(t) = old {
            let per = (64 << 10) / table::ENTRY_LEN;
            let mut first = 0;
            while first < t.len() {
                let count = (t.len() - first).min(per);
                put(self, &t.raw(first, count)?)?;
                first += count;
            }
        }
        let mut b = Vec::with_capacity(table::ENTRY_LEN * added.len());
        for e in added {
            e.write(&mut b);
        }
        put(self, &b)?;
        Ok((off, *hasher.finalize().as_bytes()))
    }

    /// Whether the existing archive's newest snapshot table lists `id` (a
    /// snapshot whose blob no index holds is not listed by a sound table,
    /// so the table is read only for a blob already stored).
    pub fn existing_lists_snapshot(&self, id: &Id) -> Result<bool> {
        match self.ctx.existing.as_deref() {
            Some(s) if s.contains(id)? => Ok(s.snapshot_table().position(id)?.is_some()),
            _ => Ok(false),
        }
    }

    fn write_section(&mut self, b: &[u8]) -> Result<(u64, [u8; 32])> {
        let off = self.pos;
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok((off, *blake3::hash(b).as_bytes()))
    }

    /// Writes index, snapshot table, optional key slots and the footer, with
    /// the data made durable before the footer is written. Returns the sink
    /// and the footer. `snapshots` is the whole table to write.
    pub fn finish(
        self,
        snapshots: &[TableEntry],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> Result<(W, Footer)> {
        self.finish_reporting(false, snapshots, keyslots, signer, time_ns)
            .map_err(|(e, _)| e)
    }

    /// [`GenerationWriter::finish`] with a table that lists the existing
    /// archive's snapshots (read from its newest table a slice at a time,
    /// never held whole) followed by `added`.
    pub fn finish_appending(
        self,
        added: &[TableEntry],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> Result<(W, Footer)> {
        self.finish_reporting(true, added, keyslots, signer, time_ns)
            .map_err(|(e, _)| e)
    }

    /// [`GenerationWriter::finish`] (`keep_existing` false) or
    /// [`GenerationWriter::finish_appending`] (true); an error comes with
    /// the footer when its writing had begun (some of its bytes may be in
    /// the file), so the caller can tell by reading back whether it was
    /// committed.
    pub(crate) fn finish_reporting(
        mut self,
        keep_existing: bool,
        snapshots: &[TableEntry],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> std::result::Result<(W, Footer), FinishError> {
        self.flush().map_err(|e| (e, None))?;
        self.workers = None;
        let listed;
        let snapshots = if keep_existing {
            listed = self.added_entries(snapshots);
            &listed[..]
        } else {
            snapshots
        };
        let f = self
            .write_sections(false, keep_existing, snapshots, keyslots, signer, time_ns)
            .map_err(|e| (e, None))?;
        match self.write_footer(&f) {
            Ok(()) => Ok((self.out, f)),
            Err(e) => {
                // Whatever the sink still buffers goes (or fails to go) now,
                // before the caller looks at the file.
                drop(self.out);
                Err((e.into(), Some(Box::new(f))))
            }
        }
    }

    /// Writes the footer after its sections and makes it durable: the
    /// generation is committed.
    fn write_footer(&mut self, f: &Footer) -> std::io::Result<()> {
        let footer = f.to_bytes();
        self.out.write_all(&footer)?;
        self.out.sync_data()?;
        self.checkpoints.last_footer = Some((self.pos, *blake3::hash(&footer).as_bytes()));
        self.pos += FOOTER_LEN as u64;
        Ok(())
    }

    /// Writes index, table and key slots of the generation being written
    /// (the last one, `checkpoint` false, or a checkpoint), makes them
    /// durable, and returns the footer that commits them, not yet written.
    /// A table written with `keep_existing` (every checkpoint) starts with
    /// the existing archive's.
    fn write_sections(
        &mut self,
        checkpoint: bool,
        keep_existing: bool,
        snapshots: &[TableEntry],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> Result<Footer> {
        let index_offset = self.pos;
        let packfile_hash = *std::mem::take(&mut self.packfile_hash)
            .finalize()
            .as_bytes();
        let index_hash = if checkpoint {
            self.write_checkpoint_index()?
        } else {
            self.write_index()?
        };
        let index_len = self.pos - index_offset;
        let base = self.ctx.existing.clone().filter(|_| keep_existing);
        let (table_offset, table_hash) = self.write_table(base.as_deref(), snapshots)?;
        let table_len = self.pos - table_offset;
        let (mut keyslots_offset, mut keyslots_len, mut keyslots_hash) = (0, 0, [0; 32]);
        if let Some(slots) = keyslots {
            let (o, h) = self.write_section(&keyslots_to_bytes(slots))?;
            keyslots_offset = o;
            keyslots_len = self.pos - o;
            keyslots_hash = h;
        }
        // Everything the footer commits to is durable before the footer exists.
        self.out.sync_data()?;
        let existing = self.ctx.existing.as_deref();
        let (prev_footer_offset, prev_footer_hash) = match (
            self.checkpoints.last_footer,
            existing.and_then(|s| s.generations().last()),
        ) {
            (Some(last), _) => last,
            (None, Some(g)) => {
                let s = existing.expect("has generations");
                let b = s.slice(g.footer_offset, FOOTER_LEN as u64);
                (g.footer_offset, *blake3::hash(b).as_bytes())
            }
            (None, None) => (0, [0; 32]),
        };
        let mut flags = 0;
        if self.ctx.keys.is_some() {
            flags |= FLAG_MAC;
        }
        if signer.is_some() {
            flags |= FLAG_SIGNED;
        }
        let mut f = Footer {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            flags,
            uuid: self.ctx.uuid,
            generation: self.generation,
            packfile_offset: self.packfile_offset,
            index_offset,
            index_len,
            table_offset,
            table_len,
            keyslots_offset,
            keyslots_len,
            prev_footer_offset,
            footer_end: self.pos + FOOTER_LEN as u64,
            time_ns,
            header_hash: self.ctx.header_hash,
            prev_footer_hash,
            packfile_hash,
            index_hash,
            table_hash,
            keyslots_hash,
            ..Footer::default()
        };
        f.tag = crypto::footer_tag(self.ctx.keys.as_deref(), &f.committed_bytes());
        if let Some(sk) = signer {
            use ed25519_dalek::Signer;
            f.signer = sk.verifying_key().to_bytes();
            f.signature = sk.sign(&f.signed_message()).to_bytes();
        }
        Ok(f)
    }
}
