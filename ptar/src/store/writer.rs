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
        let blobs = std::mem::take(&mut self.blobs);
        let mut first = [0u32; 256];
        for b in blobs.iter() {
            first[b.id.0[0] as usize] += 1;
        }
        let mut hasher = blake3::Hasher::new();
        let mut buf = index::prefix_bytes(blobs.len() as u64, &first);
        for b in blobs.into_sorted() {
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

    fn write_section(&mut self, b: &[u8]) -> Result<(u64, [u8; 32])> {
        let off = self.pos;
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok((off, *blake3::hash(b).as_bytes()))
    }

    /// Writes index, snapshot table, optional key slots and the footer, with
    /// the data made durable before the footer is written. Returns the sink
    /// and the footer.
    pub fn finish(
        self,
        snapshots: &[TableEntry],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> Result<(W, Footer)> {
        self.finish_reporting(snapshots, keyslots, signer, time_ns)
            .map_err(|(e, _)| e)
    }

    /// [`GenerationWriter::finish`]; an error comes with the footer when
    /// its writing had begun (some of its bytes may be in the file), so the
    /// caller can tell by reading back whether it was committed.
    pub(crate) fn finish_reporting(
        mut self,
        snapshots: &[TableEntry],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> std::result::Result<(W, Footer), FinishError> {
        let f = self
            .write_sections(snapshots, keyslots, signer, time_ns)
            .map_err(|e| (e, None))?;
        let written = self
            .out
            .write_all(&f.to_bytes())
            .and_then(|()| self.out.sync_data());
        match written {
            Ok(()) => Ok((self.out, f)),
            Err(e) => {
                // Whatever the sink still buffers goes (or fails to go) now,
                // before the caller looks at the file.
                drop(self.out);
                Err((e.into(), Some(Box::new(f))))
            }
        }
    }

    /// Writes index, snapshot table and key slots, makes them durable, and
    /// returns the footer that commits them (not yet written).
    fn write_sections(
        &mut self,
        snapshots: &[TableEntry],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> Result<Footer> {
        self.flush()?;
        self.workers = None;
        let index_offset = self.pos;
        let packfile_hash = *self.packfile_hash.finalize().as_bytes();
        let index_hash = self.write_index()?;
        let index_len = self.pos - index_offset;
        let (table_offset, table_hash) = self.write_section(&table::to_bytes(snapshots))?;
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
        let (prev_footer_offset, prev_footer_hash) =
            match existing.and_then(|s| s.generations().last()) {
                Some(g) => {
                    let s = existing.expect("has generations");
                    let b = s.slice(g.footer_offset, FOOTER_LEN as u64);
                    (g.footer_offset, *blake3::hash(b).as_bytes())
                }
                None => (0, [0; 32]),
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
