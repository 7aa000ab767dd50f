//! Writing one generation (spec §15.1): blob records, then the generation's
//! index run and snapshot run (merged as the base-4 counter says), an
//! optional key-slot table, the manifest and the trailer.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};

use crate::codec::{Compression, Compressor};
use crate::crypto::{self, Entropy, Keys};
use crate::format::frame::{self, EnvelopeHeader, FrameType};
use crate::format::header::{keyslots_to_bytes, KeySlot};
use crate::format::limits::MAX_BLOB_LEN;
use crate::format::manifest::{FrameSpan, Manifest, RunRef, Trailer, TRAILER_LEN};
use crate::format::run::{
    self, snapshot_directory_bytes, snapshot_page_bytes, BlobLocation, IndexDirectory, IndexPage,
    PageRef, SnapshotEntry,
};
use crate::format::{Codec, Id, Kind, Put, FORMAT_MINOR};
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
    /// Chunks shorter than this are packed, in the order they come, into
    /// solid records of about this many bytes (spec §8.3); longer ones get a
    /// record each. 0 or 1 gives every blob its own record.
    pub record_target: u32,
    /// Threads that compress records while the caller goes on reading; 0
    /// compresses on the caller's thread. The bytes written are the same
    /// either way.
    pub threads: usize,
}

/// The solid-record size writers use by default (spec §8.3, Appendix A).
pub const DEFAULT_RECORD_TARGET: u32 = 8 * 1024 * 1024;

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

/// A blob stored in this generation: its id, the record that holds it
/// (an index into [`GenerationWriter::records`], `PENDING` until the record
/// is written) and its ordinal there. 40 bytes a blob, the bulk of a
/// writer's memory.
#[derive(Clone, Copy)]
struct BlobRow {
    id: Id,
    record: u32,
    ordinal: u32,
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
}

/// A record written by this writer: where its frame is.
#[derive(Clone, Copy)]
struct RecordRow {
    offset: u64,
    body_len: u32,
}

/// A record being filled: its blobs' kinds, lengths and bytes, and their rows.
#[derive(Default)]
struct OpenRecord {
    kinds: Vec<u8>,
    lens: Vec<u32>,
    data: Vec<u8>,
    blobs: Vec<u32>,
}

/// A record handed to compression, waiting for its turn to be written.
struct Queued {
    content_len: u32,
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

/// Why finishing a generation failed, with the trailer when its writing had
/// begun (some of its bytes may be in the file).
pub(crate) type FinishError = (Error, Option<Box<Committed>>);

/// A committed (or being committed) generation: where the archive ends and
/// the trailer that ends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The generation's number.
    pub generation: u64,
    /// The archive's length once the trailer is written.
    pub end: u64,
    /// The trailer's bytes.
    pub trailer: [u8; TRAILER_LEN],
}

/// Where the entries of a run in force come from, for merging.
#[derive(Clone)]
enum RunEntries {
    /// A run of the archive being appended to: `store.runs()[i]`.
    Existing(usize),
    /// A run this writer wrote in a checkpoint generation, held in memory.
    Own {
        index: Arc<Vec<(Id, BlobLocation)>>,
        snapshots: Arc<Vec<SnapshotEntry>>,
    },
}

/// A run in force, as the writer sees it.
#[derive(Clone)]
struct RunState {
    first: u64,
    refs: RunRef,
    entries: RunEntries,
}

/// Uncommitted bytes after which a writer commits a *checkpoint
/// generation* (spec §15.1), so that an interrupted append leaves a tail
/// readers find by scanning back at most
/// [`crate::store::reader::MAX_TAIL_SCAN`] bytes.
pub const CHECKPOINT_BYTES: u64 = 1 << 30;

/// A checkpoint's commit time: now.
fn checkpoint_time() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Appends one generation to a sink positioned at the end of the archive.
pub struct GenerationWriter<W: Sink> {
    out: W,
    pos: u64,
    ctx: ArchiveContext,
    generation: u64,
    generation_start: u64,
    generation_hash: blake3::Hasher,
    /// Every blob of this writer, in the order stored.
    blobs: Rows,
    /// Positions in `blobs`, by id.
    lookup: hashbrown::HashTable<u32>,
    records: Vec<RecordRow>,
    entropy: Box<dyn Entropy>,
    stats: WriteStats,
    opts: PackOptions,
    /// The record being filled with chunks, and the one with everything else.
    open: [OpenRecord; 2],
    /// Records sealed but not yet written, in write order; the first has
    /// sequence number `next_seq - queue.len()`.
    queue: VecDeque<Queued>,
    next_seq: u64,
    compressor: Compressor,
    workers: Option<Workers>,
    spares: Spares,
    /// The runs in force after the last committed generation, newest first.
    runs: Vec<RunState>,
    /// BLAKE3 of the last committed footer (zero before generation 1).
    previous_footer_hash: [u8; 32],
    /// The key-slot table in force after the last committed generation,
    /// and the BLAKE3 of its stored bytes.
    key_slots: FrameSpan,
    key_slots_hash: [u8; 32],
    /// Uncommitted bytes that trigger a checkpoint (0: never).
    checkpoint_threshold: u64,
    /// This generation's first record in `records`: earlier ones belong to
    /// checkpoint generations already committed.
    first_record: u32,
    /// Snapshots noted (see [`GenerationWriter::note_snapshot`]) and not yet
    /// listed by a committed generation, in order.
    snapshots: Vec<Id>,
    /// Snapshot entries listed as given (see [`GenerationWriter::list_entry`]).
    forged: Vec<SnapshotEntry>,
    /// Index entries written as given (see [`GenerationWriter::set_index_entry`]).
    forged_index: Vec<(Id, BlobLocation)>,
}

impl<W: Sink> GenerationWriter<W> {
    /// Starts a generation at byte `pos` (the header's end when creating, the
    /// committed end when appending), packing as [`PackOptions::default`].
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
        let (generation, runs, previous_footer_hash, key_slots, key_slots_hash) =
            match ctx.existing.as_deref() {
                Some(s) => {
                    let runs = s
                        .runs()
                        .iter()
                        .zip(&s.manifest().runs)
                        .enumerate()
                        .map(|(i, (r, refs))| RunState {
                            first: r.first,
                            refs: *refs,
                            entries: RunEntries::Existing(i),
                        })
                        .collect();
                    (
                        s.generation_count() + 1,
                        runs,
                        s.last_footer_hash(),
                        s.trailer().key_slots,
                        s.trailer().key_slots_hash,
                    )
                }
                None => (1, Vec::new(), [0; 32], None, [0; 32]),
            };
        GenerationWriter {
            out,
            pos,
            ctx,
            generation,
            generation_start: pos,
            generation_hash: blake3::Hasher::new(),
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
            runs,
            previous_footer_hash,
            key_slots,
            key_slots_hash,
            checkpoint_threshold: CHECKPOINT_BYTES,
            first_record: 0,
            snapshots: Vec::new(),
            forged: Vec::new(),
            forged_index: Vec::new(),
        }
    }

    /// Sets the uncommitted bytes after which a checkpoint generation is
    /// committed (default [`CHECKPOINT_BYTES`]; 0 never commits one). For
    /// tests: a writer that sets it above [`CHECKPOINT_BYTES`] can leave
    /// tails that readers refuse.
    #[doc(hidden)]
    pub fn set_checkpoint_bytes(&mut self, bytes: u64) {
        self.checkpoint_threshold = bytes;
    }

    /// Records that the snapshot blob `id`, just stored, is to be listed: a
    /// checkpoint generation lists the noted snapshots whose records are
    /// written, the generation that ends the write the rest.
    pub fn note_snapshot(&mut self, id: Id) {
        self.snapshots.push(id);
    }

    /// Where this writer stored blob `id`, once every record is written
    /// (this flushes the records being filled).
    pub fn stored_location(&mut self, id: &Id) -> Result<Option<BlobLocation>> {
        self.flush()?;
        Ok(self.location_of(id))
    }

    /// Lists a snapshot entry exactly as given, before the snapshots the
    /// generation adds: for tests of readers, which must cope with entries
    /// that name no snapshot (a normal writer never writes one).
    #[doc(hidden)]
    pub fn list_entry(&mut self, e: SnapshotEntry) {
        self.forged.push(e);
    }

    /// Makes the index run of the generation being written say that blob
    /// `id` is at `location`, whatever it holds: for tests of readers, which
    /// must refuse an index that lies (a normal writer never writes one).
    #[doc(hidden)]
    pub fn set_index_entry(&mut self, id: Id, location: BlobLocation) {
        self.forged_index.push((id, location));
    }

    /// Makes the manifest name the runs of earlier generations without their
    /// snapshot lists, as a writer that drops snapshots would: for tests of
    /// verifiers (a normal writer never writes one).
    #[doc(hidden)]
    pub fn drop_earlier_snapshot_lists(&mut self) {
        for r in &mut self.runs {
            r.refs.snapshots = None;
        }
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

    /// The archive as committed before this writer began (when appending).
    pub fn existing(&self) -> Option<&Arc<Store>> {
        self.ctx.existing.as_ref()
    }

    /// The archive UUID.
    pub fn uuid(&self) -> [u8; 16] {
        self.ctx.uuid
    }

    /// Byte offset the next frame will be written at, once the records
    /// still being filled or compressed are written.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether the archive (committed or this writer's) holds `id`.
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
        self.put_as(kind, data, None, true)
    }

    /// Stores a blob even when an earlier generation already holds it (this
    /// writer still holds each id once). For repair tools and for tests of
    /// readers; normal writers use [`GenerationWriter::put_blob`].
    pub fn put_blob_again(&mut self, kind: Kind, data: &[u8]) -> Result<Id> {
        self.put_as(kind, data, None, false)
    }

    /// [`GenerationWriter::put_blob`] of a blob whose id the caller has just
    /// computed (or checked) under this archive's keys.
    pub(crate) fn put_blob_with_id(&mut self, kind: Kind, data: &[u8], id: Id) -> Result<Id> {
        debug_assert_eq!(id, crypto::content_id(self.ctx.keys.as_deref(), kind, data));
        self.put_as(kind, data, Some(id), true)
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
        // A record's content also holds its count and the blob's kind and
        // length: 9 bytes.
        if data.len() > MAX_BLOB_LEN as usize - 9 {
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
        let slot = usize::from(kind != Kind::Chunk);
        let target = self.target(kind) as usize;
        if data.len() >= target {
            // A record of its own.
            let row = self.add_row(id, 0);
            let mut r = OpenRecord {
                data: self.spares.plain.pop().unwrap_or_default(),
                ..OpenRecord::default()
            };
            r.kinds.push(kind as u8);
            r.lens.push(data.len() as u32);
            r.data.extend_from_slice(data);
            r.blobs.push(row);
            self.seal(r)?;
            return Ok(id);
        }
        let open_len = {
            let o = &self.open[slot];
            4 + 5 * o.kinds.len() + o.data.len()
        };
        if open_len + 5 + data.len() > MAX_BLOB_LEN as usize {
            self.seal_open(slot)?;
        }
        let ordinal = self.open[slot].kinds.len() as u32;
        let row = self.add_row(id, ordinal);
        let o = &mut self.open[slot];
        if o.data.capacity() == 0 {
            o.data = self.spares.plain.pop().unwrap_or_default();
            o.data.reserve_exact(target + 256 * 1024);
        }
        o.kinds.push(kind as u8);
        o.lens.push(data.len() as u32);
        o.data.extend_from_slice(data);
        o.blobs.push(row);
        if o.data.len() >= target {
            self.seal_open(slot)?;
            if slot == 0 {
                // Directory pages follow the files they list closely, so a
                // cut archive loses few of them (spec §8.3, §19).
                self.seal_open(1)?;
            }
        }
        Ok(id)
    }

    fn id_hash(id: &Id) -> u64 {
        // Ids are BLAKE3 outputs: any 8 of their bytes are a good hash.
        u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))
    }

    /// Whether this writer already stored `id`.
    fn written(&self, id: &Id) -> bool {
        let blobs = &self.blobs;
        self.lookup
            .find(Self::id_hash(id), |&i| blobs.get(i).id == *id)
            .is_some()
    }

    /// Where this writer stored `id`, once its record is written.
    fn location_of(&self, id: &Id) -> Option<BlobLocation> {
        let blobs = &self.blobs;
        let i = *self
            .lookup
            .find(Self::id_hash(id), |&i| blobs.get(i).id == *id)?;
        let b = self.blobs.get(i);
        (b.record != PENDING).then(|| self.row_location(b))
    }

    fn row_location(&self, b: &BlobRow) -> BlobLocation {
        let r = self.records[b.record as usize];
        BlobLocation {
            offset: r.offset,
            body_len: r.body_len,
            ordinal: b.ordinal,
        }
    }

    fn add_row(&mut self, id: Id, ordinal: u32) -> u32 {
        let i = self.blobs.push(BlobRow {
            id,
            record: PENDING,
            ordinal,
        });
        let blobs = &self.blobs;
        self.lookup
            .insert_unique(Self::id_hash(&id), i, |&j| Self::id_hash(&blobs.get(j).id));
        i
    }

    /// Keeps a buffer for reuse: a few per compression thread.
    fn give(&mut self, mut buf: Vec<u8>, plain: bool) {
        let pool = if plain {
            &mut self.spares.plain
        } else {
            &mut self.spares.packed
        };
        if pool.is_empty() && buf.capacity() <= 2 * MAX_BLOB_LEN as usize {
            buf.clear();
            pool.push(buf);
        }
    }

    /// The record target for a kind: metadata records are kept small, since
    /// readers visit directories in another order than they were written
    /// (parents first) and a small record is cheap to decode again.
    fn target(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Chunk => self.opts.record_target,
            _ => self.opts.record_target.min(METADATA_RECORD_TARGET),
        }
        .max(1)
    }

    fn seal_open(&mut self, slot: usize) -> Result<()> {
        let open = std::mem::take(&mut self.open[slot]);
        if open.blobs.is_empty() {
            return Ok(());
        }
        self.seal(open)
    }

    /// Lays out a full record's content, hands it to compression and writes
    /// whatever is ready.
    fn seal(&mut self, r: OpenRecord) -> Result<()> {
        // The record's head (count, kinds, lengths) goes in front of its
        // blobs in the same buffer: moving 8 MiB costs less than holding a
        // second record-sized buffer per record in flight.
        let mut head = Vec::with_capacity(4 + 5 * r.kinds.len());
        head.put_u32(r.kinds.len() as u32);
        head.put(&r.kinds);
        for l in &r.lens {
            head.put_u32(*l);
        }
        let mut content = r.data;
        content.splice(0..0, head);
        let content_len = content.len() as u32;
        let seq = self.next_seq;
        self.next_seq += 1;
        let packed = if self.opts.threads == 0 {
            let mut payload = self.spares.packed.pop().unwrap_or_default();
            let codec = self.compressor.compress_into(&content, &mut payload);
            self.give(content, true);
            Some((codec, payload))
        } else {
            let threads = self.opts.threads;
            let compression = self.opts.compression;
            let w = self
                .workers
                .get_or_insert_with(|| Workers::start(threads, compression));
            let jobs = w.jobs.as_ref().expect("running workers");
            let payload = self.spares.packed.pop().unwrap_or_default();
            if jobs.send((seq, content, payload)).is_err() {
                return Err(stopped());
            }
            None
        };
        self.queue.push_back(Queued {
            content_len,
            blobs: r.blobs,
            packed,
        });
        // Bound the records in flight (and so memory) to a few per thread.
        let limit = self.opts.threads;
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

    /// Writes one frame at the current position: `LE32 body length || body`,
    /// where the body is the envelope, sealed and padded when encrypted.
    /// Returns the frame's offset and body length.
    fn write_frame(
        &mut self,
        frame_type: FrameType,
        codec: Codec,
        content_len: u32,
        payload: &[u8],
    ) -> Result<(u64, u32)> {
        let offset = self.pos;
        let h = EnvelopeHeader {
            frame_type,
            codec,
            content_len,
        };
        if self.ctx.keys.is_some() {
            let body = self.sealed_body(offset, h, payload);
            let body_len = body.len() as u32;
            self.write_raw(&body_len.to_le_bytes())?;
            self.write_raw(&body)?;
            return Ok((offset, body_len));
        }
        // Plain: the envelope's head, then the payload as it is.
        let body_len = (frame::ENVELOPE_HEADER_LEN + payload.len()) as u32;
        let mut head = Vec::with_capacity(4 + frame::ENVELOPE_HEADER_LEN);
        head.put_u32(body_len);
        head.put(&frame::envelope_head(h, payload.len()));
        self.write_raw(&head)?;
        self.write_raw(payload)?;
        Ok((offset, body_len))
    }

    /// The sealed, padded body of the frame at `offset` (encrypted archives).
    fn sealed_body(&mut self, offset: u64, h: EnvelopeHeader, payload: &[u8]) -> Vec<u8> {
        let keys = self.ctx.keys.clone().expect("an encrypted archive");
        let envelope = frame::envelope(h, payload, true);
        let mut nonce = [0u8; 24];
        self.entropy.fill(&mut nonce);
        crypto::seal_frame(&keys, &self.ctx.uuid, offset, &nonce, &envelope)
    }

    /// Compresses `content` and writes it as a frame.
    fn write_content(&mut self, frame_type: FrameType, content: &[u8]) -> Result<(u64, u32)> {
        let (codec, payload) = self.compressor.compress(content);
        self.write_frame(frame_type, codec, content.len() as u32, &payload)
    }

    fn write_record(&mut self, q: Queued) -> Result<()> {
        if self.checkpoint_threshold > 0 && self.pos > self.generation_start {
            let payload = q.packed.as_ref().map_or(0, |p| p.1.len() as u64) + 64;
            // What the index run of the rows written so far will take.
            let index = (self.blobs.len() as u64) * run::INDEX_ENTRY_LEN as u64;
            if self.pos - self.generation_start + payload + index > self.checkpoint_threshold {
                self.checkpoint()?;
            }
        }
        let (codec, payload) = q.packed.expect("compressed");
        let (offset, body_len) =
            self.write_frame(FrameType::BlobRecord, codec, q.content_len, &payload)?;
        self.give(payload, false);
        let r = self.records.len() as u32;
        self.records.push(RecordRow { offset, body_len });
        for i in q.blobs {
            self.blobs.get_mut(i).record = r;
        }
        self.stats.bytes += 4 + u64::from(body_len);
        Ok(())
    }

    /// Seals the records being filled and writes every record still queued.
    pub fn flush(&mut self) -> Result<()> {
        self.seal_open(0)?;
        self.seal_open(1)?;
        self.drain(0)
    }

    fn write_raw(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.generation_hash.update(b);
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Whether the archive being appended to lists snapshot `id` (a snapshot
    /// whose blob no index holds is not listed by a sound archive, so the
    /// list is read only for a blob already stored).
    pub fn existing_lists_snapshot(&self, id: &Id) -> Result<bool> {
        match self.ctx.existing.as_deref() {
            Some(s) if s.contains(id)? => Ok(s.snapshot_list().position(id)?.is_some()),
            _ => Ok(false),
        }
    }

    /// Commits the records written so far as a generation of their own,
    /// listing the noted snapshots whose records are written.
    fn checkpoint(&mut self) -> Result<()> {
        let listed: Vec<Id> = self
            .snapshots
            .iter()
            .take_while(|id| self.location_of(id).is_some())
            .copied()
            .collect();
        let c = self.write_generation_end(&listed, None, None, checkpoint_time())?;
        self.write_trailer(&c.1, &c.2)?;
        self.snapshots.drain(..listed.len());
        Ok(())
    }

    /// Writes the runs, key slots and footer; the generation is committed.
    /// `added` are the snapshots this generation adds (noted or not).
    pub fn finish(
        self,
        added: &[Id],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> Result<(W, Committed)> {
        self.finish_reporting(added, keyslots, signer, time_ns)
            .map_err(|(e, _)| e)
    }

    /// [`GenerationWriter::finish`]; an error comes with the trailer when
    /// its writing had begun (some of its bytes may be in the file), so the
    /// caller can tell by reading back whether it was committed.
    pub(crate) fn finish_reporting(
        mut self,
        added: &[Id],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> std::result::Result<(W, Committed), FinishError> {
        self.flush().map_err(|e| (e, None))?;
        self.workers = None;
        // Snapshots a checkpoint already listed are not listed again.
        let pending: Vec<Id> = added
            .iter()
            .filter(|id| self.snapshots.contains(id) || !self.listed_by_checkpoint(id))
            .copied()
            .collect();
        let (committed, manifest_frame, trailer) = self
            .write_generation_end(&pending, keyslots, signer, time_ns)
            .map_err(|e| (e, None))?;
        match self.write_trailer(&manifest_frame, &trailer) {
            Ok(()) => Ok((self.out, committed)),
            Err(e) => {
                // Whatever the sink still buffers goes (or fails to go) now,
                // before the caller looks at the file.
                drop(self.out);
                Err((e, Some(Box::new(committed))))
            }
        }
    }

    /// Whether a checkpoint of this writer already listed snapshot `id`.
    fn listed_by_checkpoint(&self, id: &Id) -> bool {
        self.runs.iter().any(|r| match &r.entries {
            RunEntries::Own { snapshots, .. } => snapshots.iter().any(|s| s.id == *id),
            RunEntries::Existing(_) => false,
        })
    }

    /// The entries of this generation's records, sorted by id.
    fn own_entries(&self) -> Vec<(Id, BlobLocation)> {
        let mut v: Vec<(Id, BlobLocation)> = self
            .blobs
            .iter()
            .filter(|b| b.record != PENDING && b.record >= self.first_record)
            .map(|b| (b.id, self.row_location(b)))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    }

    /// Every entry of a run in force, in id order.
    fn run_entries(&self, r: &RunState) -> Result<Vec<(Id, BlobLocation)>> {
        match &r.entries {
            RunEntries::Own { index, .. } => Ok(index.to_vec()),
            RunEntries::Existing(i) => {
                let store = self.ctx.existing.as_deref().expect("an existing run");
                let run = &store.runs()[*i];
                let mut out = Vec::new();
                if let Some(dir) = &run.index {
                    out.reserve(dir.entry_count() as usize);
                    for p in 0..dir.pages.len() {
                        let page = store.index_page(run, p)?;
                        out.extend(page.ids.iter().copied().zip(page.locations.iter().copied()));
                    }
                }
                Ok(out)
            }
        }
    }

    /// Every snapshot of a run in force, in order.
    fn run_snapshots(&self, r: &RunState) -> Result<Vec<SnapshotEntry>> {
        match &r.entries {
            RunEntries::Own { snapshots, .. } => Ok(snapshots.to_vec()),
            RunEntries::Existing(i) => {
                let store = self.ctx.existing.as_deref().expect("an existing run");
                store.snapshot_list().run_entries(*i)
            }
        }
    }

    /// Writes the index run, snapshot run and key slots of the generation
    /// being written, makes them durable, and writes its manifest frame.
    /// Returns what the trailer commits, the manifest frame's bytes and the
    /// trailer, not yet written.
    fn write_generation_end(
        &mut self,
        added: &[Id],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> Result<(Committed, Vec<u8>, Trailer)> {
        let g = self.generation;
        let cover = run::coverage(g);
        let first = g - cover + 1;
        // The runs this generation merges: those in force whose coverage
        // lies within its own (spec §9.3).
        let merged: Vec<RunState> = self
            .runs
            .iter()
            .filter(|r| r.first >= first)
            .cloned()
            .collect();
        let kept: Vec<RunState> = self
            .runs
            .iter()
            .filter(|r| r.first < first)
            .cloned()
            .collect();

        // Index entries: this generation's, then the merged runs', newest
        // first, keeping the newest of an id stored twice.
        let mut entries = self.own_entries();
        for r in &merged {
            entries.extend(self.run_entries(r)?);
        }
        if !self.forged_index.is_empty() {
            let mut forged = std::mem::take(&mut self.forged_index);
            forged.extend(entries);
            entries = forged;
        }
        entries.sort_by_key(|e| e.0); // stable: the newest of equal ids stays first
        entries.dedup_by_key(|e| e.0);
        let index_ref = self.write_index_run(&entries)?;

        // Snapshots: the merged runs', oldest first, then this generation's.
        let mut snaps = Vec::new();
        for r in merged.iter().rev() {
            snaps.extend(self.run_snapshots(r)?);
        }
        snaps.append(&mut self.forged);
        for id in added {
            let location = self.location_of(id).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "snapshot {} is listed but its record was not stored by this writer",
                    id.short()
                ))
            })?;
            snaps.push(SnapshotEntry {
                id: *id,
                generation: g,
                location,
            });
        }
        if snaps.len() > crate::format::limits::MAX_SNAPSHOTS as usize {
            return Err(Error::InvalidInput(format!(
                "the archive would list {} snapshots, more than the format's {}",
                snaps.len(),
                crate::format::limits::MAX_SNAPSHOTS
            )));
        }
        let snapshot_ref = self.write_snapshot_run(&snaps)?;

        if let Some(slots) = keyslots {
            let body = keyslots_to_bytes(slots);
            let offset = self.pos;
            let mut stored = (body.len() as u32).to_le_bytes().to_vec();
            stored.extend_from_slice(&body);
            self.write_raw(&stored)?;
            self.key_slots = Some((offset, stored.len() as u32));
            self.key_slots_hash = *blake3::hash(&stored).as_bytes();
        }
        // Everything the footer commits to is durable before the footer exists.
        self.out.sync_data()?;

        let own = RunState {
            first,
            refs: RunRef {
                index: index_ref,
                snapshots: snapshot_ref,
            },
            entries: RunEntries::Own {
                index: Arc::new(entries),
                snapshots: Arc::new(snaps),
            },
        };
        let mut runs = vec![own];
        runs.extend(kept);
        let generation_hash = *std::mem::take(&mut self.generation_hash)
            .finalize()
            .as_bytes();
        let mut m = Manifest {
            minor: FORMAT_MINOR,
            encrypted: self.ctx.keys.is_some(),
            uuid: self.ctx.uuid,
            generation: g,
            generation_start: self.generation_start,
            commit_time: time_ns,
            header_hash: self.ctx.header_hash,
            previous_footer_hash: self.previous_footer_hash,
            generation_hash,
            key_slots: self.key_slots,
            runs: runs.iter().map(|r| r.refs).collect(),
            signature: None,
        };
        if let Some(sk) = signer {
            use ed25519_dalek::Signer;
            let sig = sk.sign(&{
                let mut unsigned = m.clone();
                unsigned.signature = Some(([0; 32], [0; 64]));
                unsigned.signature_message()
            });
            m.signature = Some((sk.verifying_key().to_bytes(), sig.to_bytes()));
        }
        let content = m.to_bytes();
        let manifest_offset = self.pos;
        // The manifest frame is kept: the trailer holds its hash.
        let (codec, payload) = self.compressor.compress(&content);
        let h = EnvelopeHeader {
            frame_type: FrameType::Manifest,
            codec,
            content_len: content.len() as u32,
        };
        let body = if self.ctx.keys.is_some() {
            self.sealed_body(manifest_offset, h, &payload)
        } else {
            frame::envelope(h, &payload, false)
        };
        let mut frame_bytes = Vec::with_capacity(4 + body.len());
        frame_bytes.put_u32(body.len() as u32);
        frame_bytes.put(&body);
        let trailer = Trailer {
            encrypted: self.ctx.keys.is_some(),
            uuid: self.ctx.uuid,
            generation: g,
            generation_start: self.generation_start,
            manifest_offset,
            manifest_len: frame_bytes.len() as u32,
            key_slots: self.key_slots,
            manifest_hash: *blake3::hash(&frame_bytes).as_bytes(),
            key_slots_hash: if self.key_slots.is_some() {
                self.key_slots_hash
            } else {
                [0; 32]
            },
        };
        self.runs = runs;
        let end = self.pos + frame_bytes.len() as u64 + TRAILER_LEN as u64;
        Ok((
            Committed {
                generation: g,
                end,
                trailer: trailer.to_bytes(),
            },
            frame_bytes,
            trailer,
        ))
    }

    /// Writes the footer (manifest frame and trailer) and makes it durable:
    /// the generation is committed. The writer then stands at the start of
    /// the next generation.
    fn write_trailer(&mut self, manifest_frame: &[u8], trailer: &Trailer) -> Result<()> {
        let t = trailer.to_bytes();
        self.out.write_all(manifest_frame)?;
        self.out.write_all(&t)?;
        self.out.sync_data()?;
        let mut h = blake3::Hasher::new();
        h.update(manifest_frame);
        h.update(&t);
        self.previous_footer_hash = *h.finalize().as_bytes();
        self.pos += (manifest_frame.len() + t.len()) as u64;
        self.generation += 1;
        self.generation_start = self.pos;
        self.generation_hash = blake3::Hasher::new();
        self.first_record = self.records.len() as u32;
        Ok(())
    }

    /// Writes an index run's pages and directory; `None` when it is empty.
    fn write_index_run(&mut self, entries: &[(Id, BlobLocation)]) -> Result<Option<(u64, u32)>> {
        if entries.is_empty() {
            return Ok(None);
        }
        let mut dir = IndexDirectory::default();
        for chunk in entries.chunks(run::INDEX_PAGE_ENTRIES) {
            let page = IndexPage {
                ids: chunk.iter().map(|e| e.0).collect(),
                locations: chunk.iter().map(|e| e.1).collect(),
            };
            let (offset, body_len) = self.write_content(FrameType::IndexPage, &page.to_bytes())?;
            dir.first_ids.push(chunk[0].0);
            dir.pages.push(PageRef {
                offset,
                body_len,
                count: chunk.len() as u32,
            });
        }
        Ok(Some(self.write_content(
            FrameType::IndexDirectory,
            &dir.to_bytes(),
        )?))
    }

    /// Writes a snapshot run's pages and directory; `None` when it is empty.
    fn write_snapshot_run(&mut self, snaps: &[SnapshotEntry]) -> Result<Option<(u64, u32)>> {
        if snaps.is_empty() {
            return Ok(None);
        }
        let mut pages = Vec::new();
        for chunk in snaps.chunks(run::MAX_PAGE_ENTRIES) {
            let (offset, body_len) =
                self.write_content(FrameType::SnapshotPage, &snapshot_page_bytes(chunk))?;
            pages.push(PageRef {
                offset,
                body_len,
                count: chunk.len() as u32,
            });
        }
        Ok(Some(self.write_content(
            FrameType::SnapshotDirectory,
            &snapshot_directory_bytes(&pages),
        )?))
    }
}
