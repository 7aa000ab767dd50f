//! Opening an archive: header, last trailer, keys, manifest, the runs in
//! force, and blob reads (spec §8.5, §9.4, §10.5).

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::codec;
use crate::crypto::{self, Keys};
use crate::format::frame::{self, FrameType};
use crate::format::header::check_key_slot_set_work;
use crate::format::header::{keyslots_parse, Header, HeaderError, KeySlot};
use crate::format::manifest::{Manifest, Trailer, TRAILER_LEN};
use crate::format::record::RecordLayout;
use crate::format::run::{
    self, parse_snapshot_directory, parse_snapshot_page, BlobLocation, IndexDirectory, IndexPage,
    PageRef, SnapshotEntry,
};
use crate::format::{Id, Kind, FORMAT_MAJOR};
use crate::retry::eintr;
use crate::{Error, Region, Result};

use super::tail::{refuse_damaged_tail, OpenOptions, Tail};

/// Where an archive's bytes come from, read at positions: a file, bytes in
/// memory, or a caller's own store (an object in a remote store, a cache).
///
/// A store reads the header, the last trailer, its manifest and the
/// directories of the runs in force when it opens, and everything else
/// (index pages, snapshot pages, blob records) with one positional read
/// each when asked for. Many threads may read at once.
pub trait ReadAt: Send + Sync {
    /// The source's length in bytes.
    fn size(&self) -> std::io::Result<u64>;
    /// Fills `buf` with the bytes at `offset`, failing when the source ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl ReadAt for File {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// Bytes in memory.
fn slice_read_at(bytes: &[u8], buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let src = usize::try_from(offset)
        .ok()
        .and_then(|start| bytes.get(start..start.checked_add(buf.len())?))
        .ok_or(std::io::ErrorKind::UnexpectedEof)?;
    buf.copy_from_slice(src);
    Ok(())
}

macro_rules! read_at_for_bytes {
    ($($t:ty),*) => {$(
        impl ReadAt for $t {
            fn size(&self) -> std::io::Result<u64> {
                Ok(self.len() as u64)
            }
            fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
                slice_read_at(self, buf, offset)
            }
        }
    )*};
}
read_at_for_bytes!(Vec<u8>, Box<[u8]>, Arc<[u8]>, &'static [u8]);

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn size(&self) -> std::io::Result<u64> {
        (**self).size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn size(&self) -> std::io::Result<u64> {
        (**self).size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

/// The bytes of an archive: in memory, or read at positions from a file or
/// a caller's source.
enum Bytes {
    /// Bytes in memory (the committed part).
    Owned(Vec<u8>),
    /// A file or a caller's source, read with positional reads.
    Source(Box<dyn ReadAt>),
}

impl Bytes {
    /// `len` committed bytes at `offset`.
    fn read(&self, offset: u64, len: u64) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            Bytes::Owned(v) => {
                let r = usize::try_from(offset)
                    .ok()
                    .and_then(|o| v.get(o..o.checked_add(usize::try_from(len).ok()?)?))
                    .ok_or_else(|| {
                        Error::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
                    })?;
                Ok(std::borrow::Cow::Borrowed(r))
            }
            Bytes::Source(s) => {
                let mut buf = vec![
                    0u8;
                    usize::try_from(len).map_err(|_| Error::corrupt(
                        Region::Frame { offset },
                        "length overflows"
                    ))?
                ];
                s.read_exact_at(&mut buf, offset)?;
                Ok(std::borrow::Cow::Owned(buf))
            }
        }
    }

    /// Reads `buf.len()` committed bytes at `offset` into `buf`.
    fn read_into(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match self {
            Bytes::Owned(v) => Ok(slice_read_at(v, buf, offset)?),
            Bytes::Source(s) => Ok(s.read_exact_at(buf, offset)?),
        }
    }
}

/// One run in force (spec §9.3): the generations it covers and its
/// directories, read when the archive was opened.
#[derive(Clone, Debug)]
pub struct Run {
    /// The generation that wrote it.
    pub generation: u64,
    /// The first generation it covers.
    pub first: u64,
    /// Its index directory, if it indexes any blob.
    pub index: Option<IndexDirectory>,
    /// Its snapshot pages, in order.
    pub snapshot_pages: Vec<PageRef>,
    /// Snapshots listed before each of its pages, within the run.
    snapshot_starts: Vec<usize>,
    /// Snapshots it lists.
    pub snapshot_count: usize,
}

/// Record-sized buffers, handed from one record read to the next, so that
/// reading an archive end to end allocates its few record buffers once.
#[derive(Default)]
struct Spares(Mutex<Vec<Vec<u8>>>);

impl Spares {
    /// Idle buffers kept: enough for the records in flight on a few threads
    /// (8 MiB each: more would make idle memory outgrow the work).
    const KEPT: usize = 4;
    /// Larger buffers (from an unusually large record) are freed.
    const LARGEST: usize = 9 << 20;

    fn take(&self) -> Vec<u8> {
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        v.pop().unwrap_or_default()
    }

    fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > Self::LARGEST {
            return;
        }
        buf.clear();
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if v.len() < Self::KEPT {
            v.push(buf);
        }
    }
}

/// A decoded blob record; its buffer goes back to the spares when the last
/// reader lets go of it, on whichever thread that is.
struct Record {
    buf: Vec<u8>,
    layout: RecordLayout,
    spares: Arc<Spares>,
}

impl Drop for Record {
    fn drop(&mut self) {
        self.spares.give(std::mem::take(&mut self.buf));
    }
}

/// The last few decoded records, keyed by frame offset and body length
/// within this opened archive (spec §8.5), so that reading the blobs of one
/// record one after another decodes it once.
#[derive(Default)]
struct RecordCache {
    entries: VecDeque<((u64, u32), Arc<Record>)>,
}

impl RecordCache {
    /// Records kept, within a bound on their bytes: a few of the reference
    /// writer's 8 MiB chunk records and its small metadata records (the
    /// most recent is always kept).
    const RECORDS_KEPT: usize = 8;
    const BYTES_KEPT: usize = 16 << 20;

    fn get(&mut self, key: (u64, u32)) -> Option<Arc<Record>> {
        let i = self.entries.iter().position(|e| e.0 == key)?;
        let e = self.entries.remove(i).expect("found");
        let v = e.1.clone();
        self.entries.push_back(e);
        Some(v)
    }

    /// Adds a record, returning the records it pushed out (to be dropped
    /// once the lock is released).
    fn put(&mut self, key: (u64, u32), record: Arc<Record>) -> Vec<Arc<Record>> {
        self.entries.push_back((key, record));
        let mut total: usize = self.entries.iter().map(|e| e.1.buf.len()).sum();
        let mut evicted = Vec::new();
        while self.entries.len() > 1
            && (self.entries.len() > Self::RECORDS_KEPT || total > Self::BYTES_KEPT)
        {
            let (_, old) = self.entries.pop_front().expect("non-empty");
            total -= old.buf.len();
            evicted.push(old);
        }
        evicted
    }
}

/// Decoded index pages, keyed by frame offset, up to a byte budget; when
/// over it, the least recently used half is dropped.
#[derive(Default)]
struct PageCache {
    pages: std::collections::HashMap<u64, (Arc<IndexPage>, u64)>,
    tick: u64,
    bytes: usize,
}

impl PageCache {
    /// Decoded index pages kept: 32 MiB, about 700,000 blobs' entries.
    const BYTES_KEPT: usize = 32 << 20;

    fn get(&mut self, offset: u64) -> Option<Arc<IndexPage>> {
        self.tick += 1;
        let tick = self.tick;
        self.pages.get_mut(&offset).map(|e| {
            e.1 = tick;
            e.0.clone()
        })
    }

    fn put(&mut self, offset: u64, page: Arc<IndexPage>) {
        self.tick += 1;
        self.bytes += page.ids.len() * run::INDEX_ENTRY_LEN;
        if let Some(old) = self.pages.insert(offset, (page, self.tick)) {
            self.bytes -= old.0.ids.len() * run::INDEX_ENTRY_LEN;
        }
        if self.bytes > Self::BYTES_KEPT {
            let mut ticks: Vec<u64> = self.pages.values().map(|e| e.1).collect();
            ticks.sort_unstable();
            let cut = ticks[ticks.len() / 2];
            self.pages.retain(|_, e| e.1 > cut);
            self.bytes = self
                .pages
                .values()
                .map(|e| e.0.ids.len() * run::INDEX_ENTRY_LEN)
                .sum();
        }
    }
}

/// A read-only view of an archive.
pub struct Store {
    bytes: Bytes,
    header: Header,
    header_len: u64,
    header_hash: [u8; 32],
    keys: Option<Arc<Keys>>,
    trailer: Trailer,
    manifest: Manifest,
    /// The runs in force, newest first.
    runs: Vec<Run>,
    snapshot_count: usize,
    /// BLAKE3 of the newest footer.
    footer_hash: [u8; 32],
    committed_end: u64,
    tail: Option<Tail>,
    records: Mutex<RecordCache>,
    pages: Mutex<PageCache>,
    spares: Arc<Spares>,
}

fn header_error(e: HeaderError) -> Error {
    match e {
        HeaderError::NotPtar => Error::NotPtar,
        HeaderError::Version { major, minor } => Error::UnsupportedVersion {
            major,
            minor,
            supported: FORMAT_MAJOR,
        },
        HeaderError::Unsupported(s) => Error::Unsupported(s),
        HeaderError::Malformed(m) => m.at(Region::Header),
    }
}

/// Finds the last occurrence of `needle` ending at or before `end`.
fn rfind(hay: &[u8], needle: &[u8], end: usize) -> Option<usize> {
    let n = needle.len();
    let mut i = end.checked_sub(n)?;
    loop {
        if hay[i] == needle[0] && &hay[i..i + n] == needle {
            return Some(i);
        }
        if i == 0 {
            return None;
        }
        i -= 1;
    }
}

/// Names `path` in an I/O error that names no path.
fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Io { path: None, source } => Error::io_at(path, source),
        e => e,
    }
}

/// The length of an archive file: a regular file or a block device. A
/// directory is refused as such, and so is anything that cannot be read at
/// positions (a FIFO, a pipe, a character device, a socket): callers that
/// read such a stream copy it to a file first.
pub(crate) fn archive_file_len(file: &File, path: &Path) -> Result<u64> {
    use std::os::unix::fs::FileTypeExt;
    let md = file.metadata().map_err(|e| Error::io_at(path, e))?;
    let t = md.file_type();
    if t.is_file() {
        return Ok(md.len());
    }
    if t.is_dir() {
        return Err(Error::io_at(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    if t.is_block_device() {
        let end = rustix::fs::seek(file, rustix::fs::SeekFrom::End(0))
            .map_err(|e| Error::io_at(path, e.into()))?;
        return Ok(end);
    }
    let what = if t.is_fifo() {
        "a FIFO or pipe"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(Error::io_at(
        path,
        std::io::Error::new(
            std::io::ErrorKind::NotSeekable,
            format!(
                "cannot seek: {what} (an archive is read at positions; copy it to a file first)"
            ),
        ),
    ))
}

/// Opens and decodes a frame body read from the file (spec §8.1, §8.4):
/// authenticates it when `keys` are given, checks the envelope and its
/// type, and decodes the content into `out`.
pub(crate) fn decode_frame(
    keys: Option<&Keys>,
    uuid: &[u8; 16],
    offset: u64,
    body: &[u8],
    want: FrameType,
    out: &mut Vec<u8>,
) -> Result<()> {
    let found = decode_any_frame(keys, uuid, offset, body, out)?;
    if found != want {
        return Err(Error::corrupt(
            Region::Frame { offset },
            format!("a {} where a {} belongs", found.name(), want.name()),
        ));
    }
    Ok(())
}

/// [`decode_frame`] of a frame of any type: returns its type. The content is
/// decoded only after the type is known, so callers that refuse the type
/// still get the error from here first when the frame does not open.
pub(crate) fn decode_any_frame(
    keys: Option<&Keys>,
    uuid: &[u8; 16],
    offset: u64,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<FrameType> {
    let region = Region::Frame { offset };
    let opened;
    let envelope: &[u8] = match keys {
        Some(k) => {
            opened =
                Zeroizing::new(crypto::open_frame(k, uuid, offset, body).ok_or_else(|| {
                    Error::corrupt(region.clone(), "frame does not authenticate")
                })?);
            &opened
        }
        None => body,
    };
    let (h, payload) =
        frame::parse_envelope(envelope, keys.is_none()).map_err(|m| m.at(region.clone()))?;
    codec::decompress_into(h.codec, payload, h.content_len, out)
        .map_err(|d| Error::corrupt(region, d))?;
    Ok(h.frame_type)
}

impl Store {
    /// Opens the archive at `path`. `passphrase` is needed for encrypted archives.
    pub fn open(path: &Path, passphrase: Option<&[u8]>) -> Result<Store> {
        Store::open_with(path, passphrase, &OpenOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(path: &Path, passphrase: Option<&[u8]>, opts: &OpenOptions) -> Result<Store> {
        let file = eintr(|| File::open(path)).map_err(|e| Error::io_at(path, e))?;
        Store::from_file_with(file, path, passphrase, opts)
    }

    /// Opens an archive from an open file; `path` names it in errors.
    pub fn from_file(file: File, path: &Path, passphrase: Option<&[u8]>) -> Result<Store> {
        Store::from_file_with(file, path, passphrase, &OpenOptions::default())
    }

    /// [`Store::from_file`] with options.
    pub fn from_file_with(
        file: File,
        path: &Path,
        passphrase: Option<&[u8]>,
        opts: &OpenOptions,
    ) -> Result<Store> {
        let inner = || -> Result<Store> {
            let len = archive_file_len(&file, path)?;
            let located = locate(
                len,
                &|off, buf| ReadAt::read_exact_at(&file, buf, off),
                Some(&file),
            )?;
            Store::assemble(
                Bytes::Source(Box::new(file.try_clone()?)),
                located,
                passphrase,
                opts,
            )
        };
        inner().map_err(|e| with_path(e, path))
    }

    /// Opens an archive over a caller's positional source (see [`ReadAt`]).
    pub fn from_reader(source: impl ReadAt + 'static, passphrase: Option<&[u8]>) -> Result<Store> {
        Store::from_reader_with(source, passphrase, &OpenOptions::default())
    }

    /// [`Store::from_reader`] with options.
    pub fn from_reader_with(
        source: impl ReadAt + 'static,
        passphrase: Option<&[u8]>,
        opts: &OpenOptions,
    ) -> Result<Store> {
        let source: Box<dyn ReadAt> = Box::new(source);
        let located = locate(
            source.size()?,
            &|off, buf| source.read_exact_at(buf, off),
            None,
        )?;
        Store::assemble(Bytes::Source(source), located, passphrase, opts)
    }

    /// Opens an archive held in memory.
    pub fn from_vec(bytes: Vec<u8>, passphrase: Option<&[u8]>) -> Result<Store> {
        Store::from_vec_with(bytes, passphrase, &OpenOptions::default())
    }

    /// [`Store::from_vec`] with options.
    pub fn from_vec_with(
        mut bytes: Vec<u8>,
        passphrase: Option<&[u8]>,
        opts: &OpenOptions,
    ) -> Result<Store> {
        let located = locate(
            bytes.len() as u64,
            &|off, buf| slice_read_at(&bytes, buf, off),
            None,
        )?;
        bytes.truncate(located.committed_end as usize);
        Store::assemble(Bytes::Owned(bytes), located, passphrase, opts)
    }

    fn assemble(
        bytes: Bytes,
        located: Located,
        passphrase: Option<&[u8]>,
        opts: &OpenOptions,
    ) -> Result<Store> {
        let Located {
            header,
            header_len,
            header_hash,
            trailer,
            committed_end,
            tail,
        } = located;
        // Before any key is derived.
        refuse_damaged_tail(tail.as_ref(), trailer.generation, opts)?;
        let mut store = Store {
            bytes,
            header,
            header_len,
            header_hash,
            keys: None,
            trailer,
            manifest: Manifest {
                minor: 0,
                encrypted: false,
                uuid: [0; 16],
                generation: 0,
                generation_start: 0,
                commit_time: 0,
                header_hash: [0; 32],
                previous_footer_hash: [0; 32],
                generation_hash: [0; 32],
                key_slots: None,
                runs: Vec::new(),
                signature: None,
            },
            runs: Vec::new(),
            snapshot_count: 0,
            footer_hash: [0; 32],
            committed_end,
            tail,
            records: Mutex::default(),
            pages: Mutex::default(),
            spares: Arc::default(),
        };
        if store.header.encrypted() {
            let Some(pass) = passphrase else {
                return Err(Error::PassphraseRequired);
            };
            store.keys = Some(Arc::new(store.unlock(pass)?));
        }
        store.manifest = store.read_manifest(&store.trailer)?;
        let footer = store.read_at(
            store.trailer.manifest_offset,
            store.committed_end - store.trailer.manifest_offset,
        )?;
        store.footer_hash = *blake3::hash(&footer).as_bytes();
        store.runs = store.read_runs()?;
        store.snapshot_count = store.runs.iter().map(|r| r.snapshot_count).sum();
        Ok(store)
    }

    /// Reads, opens and checks the manifest a trailer names, against the
    /// trailer and the header (spec §10.5 step 4).
    pub fn read_manifest(&self, t: &Trailer) -> Result<Manifest> {
        let region = Region::Footer {
            generation: t.generation,
        };
        let raw = self.read_hashed_frame(
            (t.manifest_offset, t.manifest_len),
            &t.manifest_hash,
            &region,
            "manifest frame",
        )?;
        let body = &raw[frame::LENGTH_LEN..];
        let mut content = Vec::new();
        decode_frame(
            self.keys.as_deref(),
            &self.header.uuid,
            t.manifest_offset,
            body,
            FrameType::Manifest,
            &mut content,
        )?;
        let m = Manifest::parse(&content).map_err(|e| e.at(region.clone()))?;
        let bad = |what: &str| {
            Err(Error::corrupt(
                region.clone(),
                format!("manifest and trailer disagree on {what}"),
            ))
        };
        if m.encrypted != self.header.encrypted() {
            return bad("encryption");
        }
        if m.uuid != self.header.uuid {
            return bad("the archive UUID");
        }
        if m.generation != t.generation {
            return bad("the generation number");
        }
        if m.generation_start != t.generation_start {
            return bad("where the generation starts");
        }
        if m.key_slots != t.key_slots {
            return bad("the key slots in force");
        }
        if m.header_hash != self.header_hash {
            return Err(Error::corrupt(region, "manifest commits to another header"));
        }
        Ok(m)
    }

    /// Reads the directories of the runs in force (spec §10.5 step 5).
    fn read_runs(&self) -> Result<Vec<Run>> {
        let g = self.manifest.generation;
        let mut runs = Vec::with_capacity(self.manifest.runs.len());
        for ((generation, first), r) in run::runs_in_force(g).into_iter().zip(&self.manifest.runs) {
            let region = Region::Index { generation };
            let index = match r.index {
                Some((offset, body_len)) => {
                    let c = self.read_frame(offset, body_len, FrameType::IndexDirectory)?;
                    Some(IndexDirectory::parse(&c).map_err(|m| m.at(region.clone()))?)
                }
                None => None,
            };
            let (mut pages, mut starts, mut count) = (Vec::new(), Vec::new(), 0usize);
            if let Some((offset, body_len)) = r.snapshots {
                let c = self.read_frame(offset, body_len, FrameType::SnapshotDirectory)?;
                pages = parse_snapshot_directory(&c)
                    .map_err(|m| m.at(Region::SnapshotTable { generation }))?;
                for p in &pages {
                    starts.push(count);
                    count += p.count as usize;
                }
            }
            runs.push(Run {
                generation,
                first,
                index,
                snapshot_pages: pages,
                snapshot_starts: starts,
                snapshot_count: count,
            });
        }
        if runs.iter().map(|r| r.snapshot_count).sum::<usize>()
            > crate::format::limits::MAX_SNAPSHOTS as usize
        {
            return Err(Error::corrupt(
                Region::Footer { generation: g },
                "the runs list more snapshots than the format allows",
            ));
        }
        Ok(runs)
    }

    /// Reads a frame that must lie after the header and before the newest
    /// manifest, and decodes its content (spec §8.5 steps 2–5).
    pub(crate) fn read_frame(
        &self,
        offset: u64,
        body_len: u32,
        want: FrameType,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_frame_into(offset, body_len, want, &mut out)?;
        Ok(out)
    }

    fn read_frame_into(
        &self,
        offset: u64,
        body_len: u32,
        want: FrameType,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let region = Region::Frame { offset };
        frame::check_body_len(body_len).map_err(|m| m.at(region.clone()))?;
        let end = offset
            .checked_add(frame::LENGTH_LEN as u64 + u64::from(body_len))
            .ok_or_else(|| Error::corrupt(region.clone(), "frame offset overflows"))?;
        if offset < self.header_len || end > self.trailer.manifest_offset {
            return Err(Error::corrupt(
                region,
                format!(
                    "a {} named at [{offset}, {end}) lies outside the generations before the manifest",
                    want.name()
                ),
            ));
        }
        let mut raw = self.spares.take();
        raw.resize(frame::LENGTH_LEN + body_len as usize, 0);
        let r = self.bytes.read_into(&mut raw, offset).and_then(|()| {
            let stated = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes"));
            if stated != body_len {
                return Err(Error::corrupt(
                    region.clone(),
                    format!("frame length is {stated}, expected {body_len}"),
                ));
            }
            decode_frame(
                self.keys.as_deref(),
                &self.header.uuid,
                offset,
                &raw[frame::LENGTH_LEN..],
                want,
                out,
            )
        });
        self.spares.give(raw);
        r
    }

    /// The key slots in force: the table the last trailer names, else the header's.
    pub fn key_slots(&self) -> Result<Vec<KeySlot>> {
        self.key_slots_named(self.trailer.key_slots)
    }

    fn key_slots_named(&self, span: Option<(u64, u32)>) -> Result<Vec<KeySlot>> {
        let Some((offset, len)) = span else {
            return Ok(self.header.key_slots.clone());
        };
        let region = Region::KeySlots {
            generation: self.trailer.generation,
        };
        let raw = self.read_hashed_frame(
            (offset, len),
            &self.trailer.key_slots_hash,
            &region,
            "key-slot table",
        )?;
        keyslots_parse(&raw[4..]).map_err(|m| m.at(region))
    }

    /// The stored bytes of a frame a trailer names by place and hash
    /// (manifest, key-slot table), checked against both.
    fn read_hashed_frame(
        &self,
        (offset, stored_len): (u64, u32),
        hash: &[u8; 32],
        region: &Region,
        what: &str,
    ) -> Result<std::borrow::Cow<'_, [u8]>> {
        let raw = self.bytes.read(offset, u64::from(stored_len))?;
        if blake3::hash(&raw).as_bytes() != hash {
            return Err(Error::corrupt(
                region.clone(),
                format!("the {what} does not match its trailer's hash"),
            ));
        }
        let stated = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes"));
        if u64::from(stated) + 4 != u64::from(stored_len) {
            return Err(Error::corrupt(
                region.clone(),
                format!("{what} length does not match its trailer"),
            ));
        }
        Ok(raw)
    }

    fn unlock(&self, passphrase: &[u8]) -> Result<Keys> {
        let slots = self.key_slots()?;
        // The whole set is capped before any slot is tried (spec §5.2).
        check_key_slot_set_work(slots.iter().map(|s| &s.kdf)).map_err(Error::ExcessiveWork)?;
        let mut refused = None;
        for slot in slots {
            let opened = match crypto::unwrap_slot(&slot, passphrase, &self.header.uuid) {
                Ok(k) => k,
                Err(e @ Error::ExcessiveWork(_)) => {
                    refused = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(mk) = opened {
                let check = crypto::key_check(&mk, &self.header.uuid);
                if !constant_time_eq(&check, &self.header.key_check) {
                    return Err(Error::corrupt(
                        Region::Header,
                        "a key slot opened but the key check does not match",
                    ));
                }
                return Ok(Keys::from_master(mk));
            }
        }
        Err(refused.unwrap_or(Error::WrongPassphrase))
    }

    /// The trailer ending at `end`, checked as when opening (spec §10.3):
    /// the outer error is a failed read, the inner one why the bytes are
    /// not a valid trailer.
    pub(crate) fn trailer_ending_at(
        &self,
        end: u64,
    ) -> Result<std::result::Result<Trailer, String>> {
        let read = |off: u64, buf: &mut [u8]| -> std::io::Result<()> {
            self.bytes.read_into(buf, off).map_err(|e| match e {
                Error::Io { source, .. } => source,
                e => std::io::Error::other(e.to_string()),
            })
        };
        trailer_ending_at(
            &read,
            self.committed_end,
            end,
            self.header_len,
            &self.header,
        )
    }

    /// Where every generation lies, oldest first, found by walking the
    /// trailers back from the newest (one read each; the manifests are not
    /// opened, see [`Store::read_manifest`] and verification for that).
    pub fn generation_spans(&self) -> Result<Vec<GenerationSpan>> {
        let mut out = Vec::new();
        let mut t = self.trailer;
        let mut end = self.committed_end;
        loop {
            out.push(GenerationSpan {
                generation: t.generation,
                start: t.generation_start,
                manifest: t.manifest_offset,
                end,
            });
            if t.generation == 1 || out.len() as u64 > crate::format::manifest::MAX_GENERATIONS {
                break;
            }
            end = t.generation_start;
            t = self.trailer_ending_at(end)?.map_err(|why| {
                Error::corrupt(
                    Region::Footer {
                        generation: t.generation - 1,
                    },
                    why,
                )
            })?;
        }
        out.reverse();
        Ok(out)
    }

    /// The frames of a generation before its manifest, walked from its
    /// start (spec §19 step 2), each with what it holds: `None` for a
    /// key-slot table. Decodes every frame (for tools and tests).
    pub fn frames(&self, span: &GenerationSpan) -> Result<Vec<(u64, u64, Option<FrameType>)>> {
        let mut out = Vec::new();
        let mut content = Vec::new();
        self.walk_frames(span.start, span.manifest, |at, raw| {
            let what = if self.is_key_slot_frame(raw) {
                None
            } else {
                Some(self.decode_raw_frame(at, raw, &mut content)?)
            };
            out.push((at, raw.len() as u64, what));
            Ok(())
        })?;
        Ok(out)
    }

    /// Walks the frames that tile `[start, end)` (spec §19 step 2), calling
    /// `f` with each frame's offset and stored bytes (length prefix
    /// included); fails where they do not tile it.
    pub(crate) fn walk_frames(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut at = start;
        while at < end {
            let b = self.read_at(at, 4)?;
            let len = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
            let stored = 4 + u64::from(len);
            if len == 0 || len > frame::MAX_BODY_LEN || at + stored > end {
                return Err(Error::corrupt(
                    Region::Frame { offset: at },
                    "frames do not tile the generation up to its manifest",
                ));
            }
            f(at, &self.read_at(at, stored)?)?;
            at += stored;
        }
        Ok(())
    }

    /// Whether the stored frame `raw` is a key-slot table: a clear body in
    /// an encrypted archive (spec §5.4).
    pub(crate) fn is_key_slot_frame(&self, raw: &[u8]) -> bool {
        self.keys.is_some() && raw[frame::LENGTH_LEN..].starts_with(b"PTARKEYS")
    }

    /// Decodes the frame whose stored bytes are `raw` (length prefix
    /// included) at `offset`, of any type; for verifiers.
    pub(crate) fn decode_raw_frame(
        &self,
        offset: u64,
        raw: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<FrameType> {
        decode_any_frame(
            self.keys.as_deref(),
            &self.header.uuid,
            offset,
            &raw[frame::LENGTH_LEN..],
            out,
        )
    }

    /// Committed bytes at `offset`, with a positional read.
    pub(crate) fn read_at(&self, offset: u64, len: u64) -> Result<std::borrow::Cow<'_, [u8]>> {
        debug_assert!(offset + len <= self.committed_end);
        self.bytes.read(offset, len)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Length of the header.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// BLAKE3 of the header bytes.
    pub fn header_hash(&self) -> &[u8; 32] {
        &self.header_hash
    }

    /// Keys, when encrypted and unlocked.
    pub fn keys(&self) -> Option<&Keys> {
        self.keys.as_deref()
    }

    /// Shared handle on the keys, when encrypted and unlocked.
    pub fn keys_arc(&self) -> Option<Arc<Keys>> {
        self.keys.clone()
    }

    /// The last valid trailer.
    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    /// The newest generation's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// BLAKE3 of the newest footer: its manifest frame and its trailer.
    pub fn last_footer_hash(&self) -> [u8; 32] {
        self.footer_hash
    }

    /// Number of committed generations.
    pub fn generation_count(&self) -> u64 {
        self.manifest.generation
    }

    /// The runs in force, newest first.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The archive's snapshots, oldest first, read a page at a time.
    pub fn snapshot_list(&self) -> SnapshotList<'_> {
        SnapshotList { store: self }
    }

    /// End of the last valid trailer.
    pub fn committed_end(&self) -> u64 {
        self.committed_end
    }

    /// Bytes after the last valid trailer, if any.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// An index page of a run, decoded and cached.
    pub fn index_page(&self, run: &Run, page: usize) -> Result<Arc<IndexPage>> {
        let dir = run.index.as_ref().expect("a run with pages");
        let p = dir.pages[page];
        if let Some(found) = self
            .pages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(p.offset)
        {
            return Ok(found);
        }
        let region = Region::Index {
            generation: run.generation,
        };
        let c = self.read_frame(p.offset, p.body_len, FrameType::IndexPage)?;
        let parsed = IndexPage::parse(&c).map_err(|m| m.at(region.clone()))?;
        if parsed.ids.len() != p.count as usize || parsed.ids[0] != dir.first_ids[page] {
            return Err(Error::corrupt(
                region,
                "an index page does not match its directory",
            ));
        }
        if let Some(next) = dir.first_ids.get(page + 1) {
            if parsed.ids.last().is_some_and(|l| l >= next) {
                return Err(Error::corrupt(region, "index pages overlap"));
            }
        }
        let page_arc = Arc::new(parsed);
        self.pages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(p.offset, page_arc.clone());
        Ok(page_arc)
    }

    /// Finds a blob: the runs in force, newest first (spec §9.4).
    pub fn find(&self, id: &Id) -> Result<Option<BlobLocation>> {
        for run in &self.runs {
            let Some(dir) = &run.index else { continue };
            let Some(page) = dir.page_for(id) else {
                continue;
            };
            if let Some(l) = self.index_page(run, page)?.find(id) {
                return Ok(Some(l));
            }
        }
        Ok(None)
    }

    /// Where blob `id` is and what its record says of it: its kind, and how
    /// many blobs the record holds. Decodes the record.
    pub fn describe_blob(&self, id: &Id) -> Result<Option<BlobInfo>> {
        let Some(location) = self.find(id)? else {
            return Ok(None);
        };
        let rec = self.record(location.offset, location.body_len)?;
        let Some((kind, range)) = rec.layout.blob(location.ordinal) else {
            return Err(Error::corrupt(
                Region::Frame {
                    offset: location.offset,
                },
                format!("the record has no blob {}", location.ordinal),
            ));
        };
        Ok(Some(BlobInfo {
            location,
            kind,
            len: range.len(),
            record_blobs: rec.layout.len(),
        }))
    }

    /// Every index entry of the runs in force, read a page at a time and
    /// collected (48 bytes a blob): for tools and tests.
    pub fn all_blobs(&self) -> Result<Vec<(Id, BlobLocation)>> {
        let mut out = Vec::new();
        for run in &self.runs {
            let Some(dir) = &run.index else { continue };
            for p in 0..dir.pages.len() {
                let page = self.index_page(run, p)?;
                out.extend(page.ids.iter().copied().zip(page.locations.iter().copied()));
            }
        }
        Ok(out)
    }

    /// Whether a blob is stored.
    pub fn contains(&self, id: &Id) -> Result<bool> {
        Ok(self.find(id)?.is_some())
    }

    /// Decodes the blob record at `l` (cached).
    fn record(&self, offset: u64, body_len: u32) -> Result<Arc<Record>> {
        // The lock is held while a missing record is decoded, so threads
        // reading neighbouring blobs wait for one decode instead of each
        // decoding the same record.
        let key = (offset, body_len);
        let mut cache = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = cache.get(key) {
            return Ok(r);
        }
        let mut buf = self.spares.take();
        if let Err(e) = self.read_frame_into(offset, body_len, FrameType::BlobRecord, &mut buf) {
            self.spares.give(buf);
            return Err(e);
        }
        let layout = match RecordLayout::parse(&buf) {
            Ok(l) => l,
            Err(m) => {
                self.spares.give(buf);
                return Err(m.at(Region::Frame { offset }));
            }
        };
        let r = Arc::new(Record {
            buf,
            layout,
            spares: self.spares.clone(),
        });
        let evicted = cache.put(key, r.clone());
        drop(cache);
        drop(evicted);
        Ok(r)
    }

    /// Reads a blob and checks its id and kind.
    pub fn read_blob(&self, id: &Id, kind: Kind) -> Result<Vec<u8>> {
        self.with_blob(id, kind, <[u8]>::to_vec)
    }

    /// Calls `f` on a blob's bytes once its id and kind are checked, without
    /// copying it out of its record.
    pub fn with_blob<R>(&self, id: &Id, kind: Kind, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let Some(l) = self.find(id)? else {
            return Err(Error::corrupt(
                Region::Blob {
                    id: id.short(),
                    kind: kind.name(),
                },
                "missing from every index",
            ));
        };
        self.with_blob_at(&l, id, kind, f)
    }

    /// [`Store::with_blob`] of a blob whose place is known (a snapshot
    /// entry names its record): no index lookup.
    pub fn with_blob_at<R>(
        &self,
        l: &BlobLocation,
        id: &Id,
        kind: Kind,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let region = || Region::Frame { offset: l.offset };
        // A damaged record is reported as the blob the caller asked for,
        // with the place of its record.
        let rec = self.record(l.offset, l.body_len).map_err(|e| match e {
            Error::Corrupt {
                region: Region::Frame { offset },
                detail,
            } => Error::corrupt(
                Region::Blob {
                    id: id.short(),
                    kind: kind.name(),
                },
                format!("its record (frame at offset {offset}): {detail}"),
            ),
            e => e,
        })?;
        let Some((k, range)) = rec.layout.blob(l.ordinal) else {
            return Err(Error::corrupt(
                region(),
                format!("the record has no blob {}", l.ordinal),
            ));
        };
        if k != kind {
            return Err(Error::corrupt(
                region(),
                format!(
                    "{} blob {} is stored as a {} blob",
                    kind.name(),
                    id.short(),
                    k.name()
                ),
            ));
        }
        let blob = &rec.buf[range];
        if crypto::content_id(self.keys.as_deref(), kind, blob) != *id {
            return Err(Error::corrupt(
                region(),
                format!("{} blob {} does not match its id", kind.name(), id.short()),
            ));
        }
        Ok(f(blob))
    }
}

/// Where one generation lies (see [`Store::generation_spans`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationSpan {
    /// Its number.
    pub generation: u64,
    /// Offset of its first frame.
    pub start: u64,
    /// Offset of its manifest frame: its footer runs from here to `end`.
    pub manifest: u64,
    /// Offset just past its trailer.
    pub end: u64,
}

/// What [`Store::describe_blob`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlobInfo {
    /// Where the blob is.
    pub location: BlobLocation,
    /// Its kind, as its record says.
    pub kind: Kind,
    /// Its length.
    pub len: usize,
    /// How many blobs its record holds.
    pub record_blobs: usize,
}

/// The snapshots of an open archive, oldest first: the snapshot runs in
/// force, oldest run first, read a page at a time (spec §11.2).
#[derive(Clone, Copy)]
pub struct SnapshotList<'a> {
    store: &'a Store,
}

impl<'a> SnapshotList<'a> {
    /// Number of snapshots.
    pub fn len(&self) -> usize {
        self.store.snapshot_count
    }

    /// Whether the archive holds no snapshot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The runs, oldest first.
    fn runs(&self) -> impl DoubleEndedIterator<Item = &'a Run> {
        self.store.runs.iter().rev()
    }

    /// The entries of page `page` of `run`.
    fn page(&self, run: &Run, page: usize) -> Result<Vec<SnapshotEntry>> {
        let p = run.snapshot_pages[page];
        let region = Region::SnapshotTable {
            generation: run.generation,
        };
        let c = self
            .store
            .read_frame(p.offset, p.body_len, FrameType::SnapshotPage)?;
        let entries = parse_snapshot_page(&c, run.first..=run.generation)
            .map_err(|m| m.at(region.clone()))?;
        if entries.len() != p.count as usize {
            return Err(Error::corrupt(
                region,
                "a snapshot page does not match its directory",
            ));
        }
        Ok(entries)
    }

    /// The entry at position `i` (0 is the oldest), or `None` past the end.
    pub fn get(&self, i: usize) -> Result<Option<SnapshotEntry>> {
        let mut base = 0;
        for run in self.runs() {
            if i < base + run.snapshot_count {
                let within = i - base;
                let page = run.snapshot_starts.partition_point(|&s| s <= within) - 1;
                let entries = self.page(run, page)?;
                return Ok(Some(entries[within - run.snapshot_starts[page]]));
            }
            base += run.snapshot_count;
        }
        Ok(None)
    }

    /// The newest entry.
    pub fn last(&self) -> Result<Option<SnapshotEntry>> {
        match self.len() {
            0 => Ok(None),
            n => self.get(n - 1),
        }
    }

    /// The entries from the oldest, a page at a time.
    pub fn iter(&self) -> SnapshotIter<'a> {
        self.iter_from(0)
    }

    /// The entries from position `start` on (0 is the oldest), a page at a
    /// time: the pages before the one holding `start` are not read.
    pub fn iter_from(&self, start: usize) -> SnapshotIter<'a> {
        let mut pages = Vec::new();
        let mut skip = 0;
        let mut base = 0;
        for r in self.runs() {
            for (p, page) in r.snapshot_pages.iter().enumerate() {
                let first = base + r.snapshot_starts[p];
                let end = first + page.count as usize;
                if end <= start {
                    continue;
                }
                if pages.is_empty() {
                    skip = start.saturating_sub(first);
                }
                pages.push((r, p));
            }
            base += r.snapshot_count;
        }
        SnapshotIter {
            list: *self,
            pages: pages.into_iter(),
            current: Vec::new().into_iter(),
            skip,
            failed: false,
        }
    }

    /// The position of snapshot `id`, if listed.
    pub fn position(&self, id: &Id) -> Result<Option<usize>> {
        for (i, e) in self.iter().enumerate() {
            if e?.id == *id {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// The snapshots of the run `store.runs()[i]`, in order.
    pub(crate) fn run_entries(&self, i: usize) -> Result<Vec<SnapshotEntry>> {
        let run = &self.store.runs[i];
        let mut out = Vec::with_capacity(run.snapshot_count);
        for p in 0..run.snapshot_pages.len() {
            out.extend(self.page(run, p)?);
        }
        Ok(out)
    }

    /// Every entry, in memory (56 bytes a snapshot).
    pub fn to_vec(&self) -> Result<Vec<SnapshotEntry>> {
        self.iter().collect()
    }
}

/// Entries of a [`SnapshotList`], oldest first, each a `Result` (a read can fail).
pub struct SnapshotIter<'a> {
    list: SnapshotList<'a>,
    pages: std::vec::IntoIter<(&'a Run, usize)>,
    current: std::vec::IntoIter<SnapshotEntry>,
    /// Entries of the first page read to pass over.
    skip: usize,
    failed: bool,
}

impl Iterator for SnapshotIter<'_> {
    type Item = Result<SnapshotEntry>;

    fn next(&mut self) -> Option<Result<SnapshotEntry>> {
        loop {
            if let Some(e) = self.current.next() {
                return Some(Ok(e));
            }
            if self.failed {
                return None;
            }
            let (run, page) = self.pages.next()?;
            match self.list.page(run, page) {
                Ok(v) => {
                    let skip = std::mem::take(&mut self.skip).min(v.len());
                    self.current = v.into_iter();
                    if skip > 0 {
                        self.current.nth(skip - 1);
                    }
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A positional read of exactly `buf.len()` bytes at an offset.
type PositionalRead<'a> = dyn Fn(u64, &mut [u8]) -> std::io::Result<()> + 'a;

/// What opening an archive finds before any key is used: the header and
/// the last valid trailer.
struct Located {
    header: Header,
    header_len: u64,
    header_hash: [u8; 32],
    trailer: Trailer,
    committed_end: u64,
    tail: Option<Tail>,
}

/// Checks one trailer candidate (`buf`, ending at `end`) against the header
/// and the file (spec §10.3): the outer error is a failed read, the inner
/// one why the bytes are not a valid trailer.
pub(crate) fn check_trailer(
    buf: &[u8],
    end: u64,
    len: u64,
    header_len: u64,
    header: &Header,
) -> Result<std::result::Result<Trailer, String>> {
    let t = match Trailer::parse(buf) {
        Ok(t) => t,
        Err(m) => return Ok(Err(m.0)),
    };
    if end > len || end < header_len + TRAILER_LEN as u64 {
        return Ok(Err("no room for a trailer".into()));
    }
    if t.encrypted != header.encrypted() {
        return Ok(Err(
            "trailer encryption flag disagrees with the header".into()
        ));
    }
    if t.uuid != header.uuid {
        return Ok(Err("trailer belongs to another archive".into()));
    }
    if (t.generation == 1) != (t.generation_start == header_len) || t.generation_start < header_len
    {
        return Ok(Err("generation does not start where it should".into()));
    }
    let trailer_offset = end - TRAILER_LEN as u64;
    if t.manifest_len < 16 || u64::from(t.manifest_len) > 4 + u64::from(frame::MAX_BODY_LEN) {
        return Ok(Err(format!(
            "manifest length {} is out of range",
            t.manifest_len
        )));
    }
    if t.manifest_offset.checked_add(u64::from(t.manifest_len)) != Some(trailer_offset)
        || t.generation_start > t.manifest_offset
    {
        return Ok(Err("trailer offsets do not tile the generation".into()));
    }
    if let Some((o, l)) = t.key_slots {
        if !header.encrypted() {
            return Ok(Err(
                "a plain archive's trailer names a key-slot table".into()
            ));
        }
        if o < header_len
            || o.checked_add(u64::from(l))
                .is_none_or(|e| e > t.manifest_offset)
        {
            return Ok(Err("key-slot table lies outside the archive".into()));
        }
    }
    Ok(Ok(t))
}

/// Reads and checks the header, then finds the last valid trailer.
fn locate(len: u64, read_at: &PositionalRead<'_>, file: Option<&File>) -> Result<Located> {
    let mut prefix = [0u8; 16];
    if len < 16 {
        return Err(Error::NotPtar);
    }
    // A failed read is an I/O error, not a verdict on the bytes.
    read_at(0, &mut prefix)?;
    let header_len = Header::peek_len(&prefix).map_err(header_error)? as u64;
    if len < header_len {
        return Err(Error::corrupt(
            Region::Header,
            "file ends inside the header",
        ));
    }
    let mut hb = vec![0u8; header_len as usize];
    read_at(0, &mut hb)?;
    let header = Header::parse(&hb).map_err(header_error)?;
    let header_hash = *blake3::hash(&hb).as_bytes();
    let (trailer, committed_end, tail) =
        find_last_trailer(len, read_at, file, header_len, &header, MAX_TAIL_SCAN)?;
    Ok(Located {
        header,
        header_len,
        header_hash,
        trailer,
        committed_end,
        tail,
    })
}

/// Bytes of data (holes excluded) before the end of the file within which
/// readers look for the last valid trailer (spec §10.4): 4 GiB.
pub const MAX_TAIL_SCAN: u64 = 4 << 30;

/// Reads the 120 bytes ending at `end` and checks them as a trailer.
pub(crate) fn trailer_ending_at(
    read_at: &PositionalRead<'_>,
    len: u64,
    end: u64,
    header_len: u64,
    header: &Header,
) -> Result<std::result::Result<Trailer, String>> {
    if end < header_len + TRAILER_LEN as u64 || end > len {
        return Ok(Err("no room for a trailer".into()));
    }
    let mut buf = [0u8; TRAILER_LEN];
    read_at(end - TRAILER_LEN as u64, &mut buf)?;
    check_trailer(&buf, end, len, header_len, header)
}

/// The last valid trailer, the committed end, and what follows it.
type Found = (Trailer, u64, Option<Tail>);

/// Finds the last trailer that verifies: at the end of the file, or, after
/// a torn append, by scanning back for the end magic (spec §10.4).
fn find_last_trailer(
    len: u64,
    read_at: &PositionalRead<'_>,
    file: Option<&File>,
    header_len: u64,
    header: &Header,
    max_scan: u64,
) -> Result<Found> {
    if len == header_len {
        return Err(Error::corrupt(
            Region::Tail { offset: len },
            "the archive has a header but no committed generation",
        ));
    }
    let why = match trailer_ending_at(read_at, len, len, header_len, header)? {
        Ok(t) => return Ok((t, len, None)),
        Err(why) => why,
    };
    let mut last = [0u8; TRAILER_LEN];
    let damaged = len >= header_len + TRAILER_LEN as u64 && {
        read_at(len - TRAILER_LEN as u64, &mut last)?;
        Trailer::looks_like_trailer(&last)
    };
    // Scan back in windows that overlap by the magic's length minus one.
    const WINDOW: u64 = 1 << 20;
    let magic = &crate::format::manifest::END_MAGIC;
    let mlen = magic.len() as u64;
    // The earliest place a trailer's end magic can start.
    let floor = header_len + TRAILER_LEN as u64 - mlen;
    // Candidates must end before the file's end (that one already failed).
    let mut hi = len - 1;
    let mut buf = vec![0u8; WINDOW as usize];
    let mut scanned = 0u64;
    while hi >= floor + mlen {
        if scanned >= max_scan {
            return Err(Error::corrupt(
                Region::Tail { offset: hi },
                format!(
                    "no valid footer in the last {} MiB of data before the end of the file \
                     (from offset {hi} to {len}); a ptar writer never leaves an uncommitted \
                     tail that long, so the file was extended or damaged after its last generation",
                    max_scan >> 20,
                ),
            ));
        }
        // A hole reads as zeros and holds no trailer: skip it without reading.
        if let Some(f) = file {
            match data_end_before(f, floor, hi) {
                Some(end) => hi = end,
                None => break,
            }
            if hi < floor + mlen {
                break;
            }
        }
        let lo = hi.saturating_sub(WINDOW).max(floor);
        let w = &mut buf[..(hi - lo) as usize];
        read_at(lo, w)?;
        scanned += w.len() as u64;
        let mut end = w.len();
        while let Some(pos) = rfind(w, magic, end) {
            let cand = lo + pos as u64 + mlen;
            if let Ok(t) = trailer_ending_at(read_at, len, cand, header_len, header)? {
                let detail = if damaged { why } else { String::new() };
                let tail = Tail {
                    offset: cand,
                    len: len - cand,
                    damaged,
                    detail,
                };
                return Ok((t, cand, Some(tail)));
            }
            end = pos + magic.len() - 1;
        }
        if lo == floor {
            break;
        }
        hi = lo + mlen - 1;
    }
    Err(Error::corrupt(
        Region::Tail { offset: len },
        if damaged {
            format!("the last footer is damaged ({why}) and no earlier footer verifies")
        } else {
            "no complete generation: the file holds no valid footer".into()
        },
    ))
}

/// The end of the last data (not a hole) of `file` in `[floor, hi)`, or
/// `None` when that range is all hole. Filesystems without hole reporting
/// report everything as data, which gives `hi` back.
fn data_end_before(file: &File, floor: u64, hi: u64) -> Option<u64> {
    use rustix::fs::SeekFrom;
    // The first data at or after `x`, if before `hi`.
    let data_from = |x: u64| -> Option<u64> {
        match eintr_seek(file, SeekFrom::Data(x)) {
            Ok(d) if d < hi => Some(d),
            Ok(_) => None,
            // ENXIO: no data after `x`. Any other failure: assume data, so
            // the bytes are read (and a read error reported) as before.
            Err(rustix::io::Errno::NXIO) => None,
            Err(_) => Some(x),
        }
    };
    let last_window = hi.saturating_sub(1 << 20).max(floor);
    if data_from(last_window).is_some() {
        // The last window holds data: read it as usual.
        return Some(hi);
    }
    data_from(floor)?;
    // Binary search for the largest x with data in [x, hi); the hole that
    // follows it starts at the end of that data.
    let (mut lo, mut up) = (floor, last_window);
    while up - lo > 1 {
        let mid = lo + (up - lo) / 2;
        if data_from(mid).is_some() {
            lo = mid;
        } else {
            up = mid;
        }
    }
    // Data lies in [lo, hi) but not in [up, hi), with up = lo + 1: the
    // last data byte is at `lo`.
    Some(up)
}

fn eintr_seek(file: &File, to: rustix::fs::SeekFrom) -> rustix::io::Result<u64> {
    crate::retry::eintr_rustix(|| rustix::fs::seek(file, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-generation archive's bytes.
    fn archive() -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.ptar");
        let mut w = crate::Writer::create(&path, crate::CreateOptions::default()).expect("writer");
        w.add_snapshot_record(&crate::format::snapshot::SnapshotRecord::default())
            .expect("snapshot");
        w.commit().expect("commit");
        std::fs::read(&path).expect("archive")
    }

    fn scan(bytes: &[u8], max_scan: u64) -> Result<Found> {
        let read_at = |off: u64, buf: &mut [u8]| slice_read_at(bytes, buf, off);
        let mut prefix = [0u8; 16];
        read_at(0, &mut prefix).unwrap();
        let header_len = Header::peek_len(&prefix).unwrap() as u64;
        let hb = &bytes[..header_len as usize];
        let header = Header::parse(hb).unwrap();
        find_last_trailer(
            bytes.len() as u64,
            &read_at,
            None,
            header_len,
            &header,
            max_scan,
        )
    }

    #[test]
    fn the_trailer_scan_stops_after_its_bound() {
        let a = archive();
        let committed = a.len() as u64;
        // A torn tail of 1.5 MiB of written bytes, within a 4 MiB bound.
        let mut torn = a.clone();
        torn.resize(a.len() + (3 << 19), 0x55);
        let (_, end, tail) = scan(&torn, 4 << 20).expect("found");
        assert_eq!(end, committed);
        assert_eq!(tail.expect("a tail").len, 3 << 19);
        // 6 MiB of junk, beyond the bound: refused, naming the region.
        let mut junk = a.clone();
        junk.resize(a.len() + (6 << 20), 0x55);
        let e = scan(&junk, 4 << 20).map(|f| f.1).unwrap_err().to_string();
        assert!(e.contains("no valid footer in the last 4 MiB"), "{e}");
        assert!(e.contains(&format!("to {}", junk.len())), "{e}");
    }
}
