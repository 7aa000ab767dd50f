//! Opening an archive: header, footer chain, keys, snapshot table, blob reads.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::codec;
use crate::crypto::{self, Keys, RecordContext};
use crate::format::footer::{Footer, FOOTER_LEN};
use crate::format::header::{
    check_key_slot_set_work, keyslots_parse, Header, HeaderError, KeySlot,
};
use crate::format::index::{IndexEntry, IndexView};
use crate::format::limits::MAX_GENERATIONS;
use crate::format::table::{self, TableEntry};
use crate::format::{Id, Kind, FORMAT_MAJOR};
use crate::retry::eintr;
use crate::{Error, Region, Result};

use super::tail::{refuse_damaged_tail, OpenOptions, Tail};

/// Where an archive's bytes come from, read at positions: a file, bytes in
/// memory, or a caller's own store (an object in a remote store, a cache).
///
/// A store opened over a `ReadAt` ([`Store::from_reader`]) reads the
/// header, footers, indexes and key-slot tables once when it opens and keeps
/// them; the newest snapshot table is checked then and read again a slice
/// at a time when asked for; blob records are read when asked for, one
/// positional read each. Many threads may read at once.
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

/// The bytes of an archive.
enum Bytes {
    /// A mapped file, and the file for positional reads of records.
    Map(memmap2::Mmap, File),
    /// Bytes in memory.
    Owned(Vec<u8>),
    /// A caller's source, and the sections read from it when it was opened.
    Sections(Box<dyn ReadAt>, Sections),
}

impl Bytes {
    /// Everything, when it is at hand as one slice.
    fn whole(&self) -> Option<&[u8]> {
        match self {
            Bytes::Map(m, _) => Some(m),
            Bytes::Owned(v) => Some(v),
            Bytes::Sections(..) => None,
        }
    }

    /// Where records are read from with positional reads (rather than
    /// borrowed in place).
    fn positional(&self) -> Option<&dyn ReadAt> {
        match self {
            Bytes::Map(_, f) => Some(f),
            Bytes::Owned(_) => None,
            Bytes::Sections(r, _) => Some(&**r),
        }
    }

    /// `len` bytes at `offset`, which lie in the mapped or owned bytes, or
    /// in a section read at open.
    fn slice(&self, offset: u64, len: u64) -> &[u8] {
        match self.whole() {
            Some(b) => &b[offset as usize..(offset + len) as usize],
            None => match self {
                Bytes::Sections(_, s) => s.get(offset, len),
                _ => unreachable!("whole() covers the other forms"),
            },
        }
    }
}

/// Byte ranges of a positional source held in memory: each generation's
/// index, and its key slots and footer (which lie back to back, spec §10),
/// read once when the archive is opened. Snapshot tables are not held:
/// they are read a slice at a time (see [`SnapshotTable`]).
#[derive(Default)]
struct Sections(Vec<(u64, Vec<u8>)>);

impl Sections {
    /// The held bytes `[offset, offset + len)`. Every range the store asks
    /// for lies in one section: the footers' offsets were checked to tile
    /// each generation before the sections were read.
    fn get(&self, offset: u64, len: u64) -> &[u8] {
        let i = self.0.partition_point(|(start, _)| *start <= offset);
        let (start, bytes) = &self.0[i.checked_sub(1).expect("a section holds the range")];
        let at = (offset - start) as usize;
        &bytes[at..at + len as usize]
    }
}

/// Bytes of a snapshot table read at once: 1638 entries (a multiple of
/// the entry length, under 64 KiB).
const TABLE_SLICE: u64 = 1638 * table::ENTRY_LEN as u64;

/// A snapshot table of an open archive, read from the archive a slice at
/// a time with positional reads: a table may list 2^24 snapshots (640 MiB),
/// and reading it never holds more than one slice. Its hash, prefix and
/// entries were checked when the archive was opened; an entry is checked
/// again as it is read.
#[derive(Clone, Copy)]
pub struct SnapshotTable<'a> {
    store: &'a Store,
    /// Offset of the first entry.
    entries: u64,
    len: usize,
    /// The generation whose table this is.
    generation: u64,
}

impl<'a> SnapshotTable<'a> {
    /// Number of snapshots listed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table lists no snapshot.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn region(&self) -> Region {
        Region::SnapshotTable {
            generation: self.generation,
        }
    }

    /// The entry at position `i` (0 is the oldest), or `None` past the end.
    pub fn get(&self, i: usize) -> Result<Option<TableEntry>> {
        if i >= self.len {
            return Ok(None);
        }
        let b = self.store.read_at(
            self.entries + (i * table::ENTRY_LEN) as u64,
            table::ENTRY_LEN as u64,
        )?;
        table::parse_entry(&b, self.generation)
            .map(Some)
            .map_err(|m| m.at(self.region()))
    }

    /// The newest entry.
    pub fn last(&self) -> Result<Option<TableEntry>> {
        match self.len {
            0 => Ok(None),
            n => self.get(n - 1),
        }
    }

    /// The entries from the oldest, read a slice at a time.
    pub fn iter(&self) -> TableIter<'a> {
        self.iter_from(0)
    }

    /// The entries from position `start` on.
    pub fn iter_from(&self, start: usize) -> TableIter<'a> {
        TableIter {
            table: *self,
            next: start.min(self.len),
            slice: Vec::new(),
            at: 0,
        }
    }

    /// The position of the entry for snapshot `id`, if listed.
    pub fn position(&self, id: &Id) -> Result<Option<usize>> {
        for (i, e) in self.iter().enumerate() {
            if e?.id == *id {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Every entry, in memory: only for tables known to be small (this
    /// holds 40 bytes per snapshot).
    pub fn to_vec(&self) -> Result<Vec<TableEntry>> {
        self.iter().collect()
    }

    /// The raw bytes of entries `[first, first + count)`, a slice at most
    /// [`TABLE_SLICE`] long.
    pub(crate) fn raw(&self, first: usize, count: usize) -> Result<std::borrow::Cow<'a, [u8]>> {
        self.store.read_at(
            self.entries + (first * table::ENTRY_LEN) as u64,
            (count * table::ENTRY_LEN) as u64,
        )
    }
}

/// Entries of a [`SnapshotTable`], oldest first, each a `Result` (a read
/// can fail).
pub struct TableIter<'a> {
    table: SnapshotTable<'a>,
    /// Position of the next entry not yet in `slice`.
    next: usize,
    /// Entries read and not yet returned.
    slice: Vec<TableEntry>,
    /// Next entry of `slice` to return.
    at: usize,
}

impl Iterator for TableIter<'_> {
    type Item = Result<TableEntry>;

    fn next(&mut self) -> Option<Result<TableEntry>> {
        if self.at == self.slice.len() {
            if self.next >= self.table.len {
                return None;
            }
            let per = TABLE_SLICE as usize / table::ENTRY_LEN;
            let count = (self.table.len - self.next).min(per);
            let parsed: Result<Vec<TableEntry>> = self.table.raw(self.next, count).and_then(|b| {
                b.chunks_exact(table::ENTRY_LEN)
                    .map(|e| {
                        table::parse_entry(e, self.table.generation)
                            .map_err(|m| m.at(self.table.region()))
                    })
                    .collect()
            });
            match parsed {
                Ok(v) => {
                    self.slice = v;
                    self.at = 0;
                    self.next += count;
                }
                Err(e) => {
                    // Stop after reporting the error.
                    self.next = self.table.len;
                    self.slice.clear();
                    self.at = 0;
                    return Some(Err(e));
                }
            }
        }
        let e = self.slice[self.at];
        self.at += 1;
        Some(Ok(e))
    }
}

/// One committed generation.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Its footer.
    pub footer: Footer,
    /// Where its footer starts.
    pub footer_offset: u64,
}

/// A read-only view of an archive.
pub struct Store {
    bytes: Bytes,
    header: Header,
    header_len: u64,
    header_hash: [u8; 32],
    keys: Option<Arc<Keys>>,
    generations: Vec<Generation>,
    /// The newest snapshot table: where its entries start, and how many.
    table: (u64, usize),
    committed_end: u64,
    tail: Option<Tail>,
    /// Plaintexts of the solid records read last.
    records: Mutex<RecordCache>,
    /// Record-sized buffers to read and decode into.
    spares: Arc<Spares>,
    /// Bytes of every generation's index.
    index_bytes: u64,
    /// Index size up to which lookups search the map in place.
    mapped_index_limit: std::sync::atomic::AtomicU64,
}

/// Indexes up to this size are searched in place, through the map. In
/// larger ones a lookup reads one or two 4 KiB windows of entries with a
/// positional read: searched in place, every lookup would leave a page and
/// the kernel's fault-around neighbours (64 KiB) resident, until looking up
/// every blob of a large archive had made its whole index resident. Read in
/// windows, memory stays flat however large the archive grows.
const MAPPED_INDEX_BYTES: u64 = 8 << 20;

/// Record-sized buffers, handed from one record read to the next. Reading an
/// archive end to end then allocates its few record buffers once: freeing
/// them and allocating anew, on several threads, had spread records through
/// the allocator's per-thread arenas and grown extraction's resident memory
/// with the archive's size.
#[derive(Default)]
struct Spares(Mutex<Vec<Vec<u8>>>);

impl Spares {
    /// Idle buffers kept: more than the records cached and in flight.
    const KEPT: usize = 12;
    /// Larger buffers (from an unusually large record) are freed.
    const LARGEST: usize = 8 << 20;

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

/// Everything an index entry says about its record: two entries that differ
/// in any of it (a damaged index) never share a cached plaintext.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RecordKey {
    offset: u64,
    stored_len: u32,
    raw_len: u32,
    kind: Kind,
    codec: crate::format::Codec,
}

impl RecordKey {
    fn of(e: &IndexEntry) -> RecordKey {
        RecordKey {
            offset: e.record_offset,
            stored_len: e.record_len,
            raw_len: e.raw_len,
            kind: e.kind,
            codec: e.codec,
        }
    }
}

/// A cached record's plaintext; its buffer goes back to the spares when the
/// last reader lets go of it, on whichever thread that is.
struct Plaintext {
    buf: Vec<u8>,
    spares: Arc<Spares>,
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.spares.give(std::mem::take(&mut self.buf));
    }
}

/// The last few decoded records that hold several blobs, so that reading
/// their blobs one after another decodes each record once.
#[derive(Default)]
struct RecordCache {
    /// (record, plaintext), most recently used last.
    entries: VecDeque<(RecordKey, Arc<Plaintext>)>,
}

impl RecordCache {
    /// Records kept, within a bound on their bytes: a few of the reference
    /// writer's 4 MiB chunk records and 256 KiB metadata records, or one of
    /// the largest a record may be (the most recent is always kept).
    const RECORDS_KEPT: usize = 6;
    const BYTES_KEPT: usize = 12 * 1024 * 1024;

    fn get(&mut self, key: &RecordKey) -> Option<Arc<Plaintext>> {
        let i = self.entries.iter().position(|e| e.0 == *key)?;
        let e = self.entries.remove(i).expect("found");
        let v = e.1.clone();
        self.entries.push_back(e);
        Some(v)
    }

    /// Adds a record, returning the plaintexts it pushed out (to be
    /// dropped once the lock is released).
    fn put(&mut self, key: RecordKey, plaintext: Arc<Plaintext>) -> Vec<Arc<Plaintext>> {
        self.entries.push_back((key, plaintext));
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

impl Store {
    /// Opens the archive at `path`. `passphrase` is needed for encrypted
    /// archives. A damaged tail is refused ([`Store::open_with`] can allow it).
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
        Store::from_file_inner(file, path, passphrase, opts).map_err(|e| with_path(e, path))
    }

    fn from_file_inner(
        file: File,
        path: &Path,
        passphrase: Option<&[u8]>,
        opts: &OpenOptions,
    ) -> Result<Store> {
        let len = archive_file_len(&file, path)?;
        // The footers (and any torn tail) are read with positional reads,
        // not through the map: a concurrent appender may truncate the bytes
        // after the last valid footer at any moment.
        let located = locate_chain(
            len,
            &|off, buf| ReadAt::read_exact_at(&file, buf, off),
            Some(&file),
            opts,
        )?;
        // SAFETY: only bytes up to the last valid footer are mapped. ptar
        // writers never modify or truncate bytes below the last valid footer
        // (they append, or truncate an uncommitted tail beyond it), so the
        // mapped bytes cannot change or vanish while we hold them. Another
        // program truncating the file below that point would fault the
        // process; the spec (§15.3) says archives must not be modified that way.
        let map = eintr(|| unsafe {
            memmap2::MmapOptions::new()
                .len(located.committed_end as usize)
                .map(&file)
        })
        .map_err(|e| Error::io_at(path, e))?;
        Store::assemble(Bytes::Map(map, file), located, passphrase)
    }

    /// Opens an archive over a caller's positional source (see [`ReadAt`]).
    /// The header, footers, indexes and key slots are read now and kept;
    /// the snapshot table is checked now and read in slices when asked
    /// for; blob records are read when asked for.
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
        let located = locate_chain(
            source.size()?,
            &|off, buf| source.read_exact_at(buf, off),
            None,
            opts,
        )?;
        let mut sections = Vec::with_capacity(2 * located.generations.len());
        for g in &located.generations {
            // The index; then key slots and footer, which lie back to back
            // after the snapshot table (read when needed, not kept).
            let f = &g.footer;
            let mut b = vec![0u8; f.index_len as usize];
            source.read_exact_at(&mut b, f.index_offset)?;
            sections.push((f.index_offset, b));
            let table_end = f.table_offset + f.table_len;
            let mut b = vec![0u8; (f.footer_end - table_end) as usize];
            source.read_exact_at(&mut b, table_end)?;
            sections.push((table_end, b));
        }
        Store::assemble(
            Bytes::Sections(source, Sections(sections)),
            located,
            passphrase,
        )
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
        let located = locate_chain(
            bytes.len() as u64,
            &|off, buf| slice_read_at(&bytes, buf, off),
            None,
            opts,
        )?;
        bytes.truncate(located.committed_end as usize);
        Store::assemble(Bytes::Owned(bytes), located, passphrase)
    }

    fn assemble(bytes: Bytes, located: Located, passphrase: Option<&[u8]>) -> Result<Store> {
        let Located {
            header,
            header_len,
            header_hash,
            generations,
            committed_end,
            tail,
        } = located;
        let index_bytes = generations.iter().map(|g| g.footer.index_len).sum();
        let mut store = Store {
            header,
            header_len,
            header_hash,
            keys: None,
            generations,
            table: (0, 0),
            committed_end,
            tail,
            bytes,
            records: Mutex::default(),
            spares: Arc::default(),
            index_bytes,
            mapped_index_limit: MAPPED_INDEX_BYTES.into(),
        };
        if store.header.encrypted() {
            let Some(pass) = passphrase else {
                return Err(Error::PassphraseRequired);
            };
            store.keys = Some(Arc::new(store.unlock(pass)?));
        }
        for g in &store.generations {
            let tag = crypto::footer_tag(store.keys.as_deref(), &g.footer.committed_bytes());
            if tag != g.footer.tag {
                return Err(Error::corrupt(
                    Region::Footer {
                        generation: g.footer.generation,
                    },
                    "footer tag does not verify",
                ));
            }
        }
        if let Some(last) = store.generations.last() {
            let f = last.footer.clone();
            let n = store.check_table(&f)?;
            store.table = (f.table_offset + table::PREFIX_LEN as u64, n);
        }
        for g in &store.generations {
            store.index(g)?;
        }
        Ok(store)
    }

    /// The key slots in force: the newest generation's table, else the header's.
    pub fn key_slots(&self) -> Result<Vec<KeySlot>> {
        for g in self.generations.iter().rev() {
            let f = &g.footer;
            if f.keyslots_len > 0 {
                let region = Region::KeySlots {
                    generation: f.generation,
                };
                let b = self.slice(f.keyslots_offset, f.keyslots_len);
                if blake3::hash(b).as_bytes() != &f.keyslots_hash {
                    return Err(Error::corrupt(
                        region,
                        "key-slot table hash does not match the footer",
                    ));
                }
                return keyslots_parse(b).map_err(|m| m.at(region));
            }
        }
        Ok(self.header.key_slots.clone())
    }

    fn unlock(&self, passphrase: &[u8]) -> Result<Keys> {
        let slots = self.key_slots()?;
        // The whole set is capped before any slot is tried (spec §5.2).
        check_key_slot_set_work(slots.iter().map(|s| &s.kdf)).map_err(Error::ExcessiveWork)?;
        let mut refused = None;
        for slot in slots {
            // A slot beyond the caps is skipped, not fatal: a hostile first
            // slot must not hide the others.
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

    /// The whole archive's bytes up to the last valid footer, when it is
    /// mapped or in memory (not when opened over a [`ReadAt`]).
    pub fn data(&self) -> Option<&[u8]> {
        Some(&self.bytes.whole()?[..self.committed_end as usize])
    }

    pub(crate) fn slice(&self, offset: u64, len: u64) -> &[u8] {
        self.bytes.slice(offset, len)
    }

    /// Committed bytes read with a positional read rather than through the
    /// map, for data read once (records, the packfile hash): the pages then
    /// stay in the page cache instead of adding to the process's resident
    /// memory as an archive is read from end to end.
    pub(crate) fn read_at(&self, offset: u64, len: u64) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self.bytes.positional() {
            Some(source) => {
                debug_assert!(offset + len <= self.committed_end);
                let mut buf = vec![0u8; len as usize];
                source.read_exact_at(&mut buf, offset)?;
                Ok(std::borrow::Cow::Owned(buf))
            }
            None => Ok(std::borrow::Cow::Borrowed(self.slice(offset, len))),
        }
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

    /// Committed generations, oldest first.
    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// Snapshots listed by the newest snapshot table, read from the archive
    /// a slice at a time (a table may list 2^24 snapshots: it is never held
    /// whole).
    pub fn snapshot_table(&self) -> SnapshotTable<'_> {
        let generation = self.generations.last().map_or(0, |g| g.footer.generation);
        SnapshotTable {
            store: self,
            entries: self.table.0,
            len: self.table.1,
            generation,
        }
    }

    /// The snapshot table of generation `g` (older tables are checked by
    /// verification only; see [`Store::check_table`]).
    pub(crate) fn table_of(&self, f: &Footer, len: usize) -> SnapshotTable<'_> {
        SnapshotTable {
            store: self,
            entries: f.table_offset + table::PREFIX_LEN as u64,
            len,
            generation: f.generation,
        }
    }

    /// Checks the snapshot table of the generation whose footer is `f`
    /// (spec §11.2) in one pass of bounded reads: its hash against the
    /// footer, its prefix, and every entry's generation. Returns the count.
    pub(crate) fn check_table(&self, f: &Footer) -> Result<usize> {
        let region = Region::SnapshotTable {
            generation: f.generation,
        };
        let mut hasher = blake3::Hasher::new();
        let mut at = f.table_offset;
        let end = f.table_offset + f.table_len;
        if f.table_len < table::PREFIX_LEN as u64 {
            return Err(Error::corrupt(region, "shorter than its prefix"));
        }
        let prefix = self.read_at(at, table::PREFIX_LEN as u64)?;
        hasher.update(&prefix);
        let n = table::parse_prefix(&prefix, f.table_len).map_err(|m| m.at(region.clone()))?;
        at += table::PREFIX_LEN as u64;
        let mut bad = None;
        while at < end {
            let len = (end - at).min(TABLE_SLICE);
            let b = self.read_at(at, len)?;
            hasher.update(&b);
            if bad.is_none() {
                bad = b
                    .chunks_exact(table::ENTRY_LEN)
                    .find_map(|e| table::parse_entry(e, f.generation).err());
            }
            at += len;
        }
        if hasher.finalize().as_bytes() != &f.table_hash {
            return Err(Error::corrupt(
                region,
                "snapshot table hash does not match the footer",
            ));
        }
        match bad {
            Some(m) => Err(m.at(region)),
            None => Ok(n),
        }
    }

    /// End of the last valid footer.
    pub fn committed_end(&self) -> u64 {
        self.committed_end
    }

    /// Bytes after the last valid footer, if any.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// The index of generation `g`, in place.
    pub fn index(&self, g: &Generation) -> Result<IndexView<'_>> {
        let f = &g.footer;
        IndexView::new(self.slice(f.index_offset, f.index_len)).map_err(|m| {
            m.at(Region::Index {
                generation: f.generation,
            })
        })
    }

    /// Finds a blob: newest generation first.
    pub fn find(&self, id: &Id) -> Result<Option<(IndexEntry, &Generation)>> {
        for g in self.generations.iter().rev() {
            // Every index's fan-out table was checked when the archive was opened.
            let f = &g.footer;
            let view =
                IndexView::for_lookup(self.slice(f.index_offset, f.index_len)).map_err(|m| {
                    m.at(Region::Index {
                        generation: f.generation,
                    })
                })?;
            let found = match &self.bytes {
                Bytes::Map(_, file)
                    if self.index_bytes
                        > self
                            .mapped_index_limit
                            .load(std::sync::atomic::Ordering::Relaxed) =>
                {
                    view.find_by_reading(id, |first, buf| {
                        ReadAt::read_exact_at(
                            file,
                            buf,
                            f.index_offset + IndexView::entry_offset(first),
                        )
                    })?
                }
                _ => view.find(id),
            };
            if let Some(e) = found.map_err(|m| {
                m.at(Region::Index {
                    generation: g.footer.generation,
                })
            })? {
                return Ok(Some((e, g)));
            }
        }
        Ok(None)
    }

    /// Sets the total index size up to which lookups search the mapped
    /// indexes in place; larger ones are read a window at a time (the
    /// default is 8 MiB). Lookups give the same answers either way.
    pub fn set_mapped_index_limit(&self, bytes: u64) {
        self.mapped_index_limit
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a blob is stored.
    pub fn contains(&self, id: &Id) -> Result<bool> {
        Ok(self.find(id)?.is_some())
    }

    /// Decodes the record an index entry points to, returning its plaintext.
    pub fn read_record(&self, e: &IndexEntry, g: &Generation) -> Result<Vec<u8>> {
        self.read_record_into(e, g, Vec::new())
    }

    /// [`Store::read_record`] into `out`'s allocation, reading the stored
    /// bytes through a spare buffer.
    fn read_record_into(&self, e: &IndexEntry, g: &Generation, out: Vec<u8>) -> Result<Vec<u8>> {
        let f = &g.footer;
        let region = Region::Packfile {
            generation: f.generation,
            offset: e.record_offset,
        };
        let end = e.record_offset + e.record_len as u64;
        if e.record_offset < f.packfile_offset || end > f.index_offset {
            return Err(Error::corrupt(
                Region::Index {
                    generation: f.generation,
                },
                "an entry points outside its packfile",
            ));
        }
        if let (Some(source), None, crate::format::Codec::Stored) =
            (self.bytes.positional(), &self.keys, e.codec)
        {
            // Plain stored bytes are the plaintext: read them straight in.
            if e.record_len != e.raw_len {
                return Err(Error::corrupt(
                    region,
                    format!(
                        "stored payload is {} bytes, expected {}",
                        e.record_len, e.raw_len
                    ),
                ));
            }
            let mut out = out;
            out.clear();
            out.resize(e.record_len as usize, 0);
            source.read_exact_at(&mut out, e.record_offset)?;
            return Ok(out);
        }
        let mut spare = Vec::new();
        let stored: &[u8] = match self.bytes.positional() {
            Some(source) => {
                spare = self.spares.take();
                spare.resize(e.record_len as usize, 0);
                source.read_exact_at(&mut spare, e.record_offset)?;
                &spare
            }
            None => self.slice(e.record_offset, e.record_len as u64),
        };
        let payload;
        let body: &[u8] = match &self.keys {
            Some(keys) => {
                let ctx = RecordContext {
                    uuid: &self.header.uuid,
                    minor: self.header.minor,
                    kind: e.kind,
                    codec: e.codec,
                    raw_len: e.raw_len,
                    offset: e.record_offset,
                };
                payload =
                    Zeroizing::new(crypto::open_record(keys, &ctx, stored).ok_or_else(|| {
                        Error::corrupt(region.clone(), "record does not authenticate")
                    })?);
                &payload
            }
            None => stored,
        };
        let mut out = out;
        let decoded = codec::decompress_into(e.codec, body, e.raw_len, &mut out);
        self.spares.give(spare);
        match decoded {
            Ok(()) => Ok(out),
            Err(d) => {
                self.spares.give(out);
                Err(Error::corrupt(region, d))
            }
        }
    }

    /// Reads a blob and checks its id and kind.
    pub fn read_blob(&self, id: &Id, kind: Kind) -> Result<Vec<u8>> {
        self.with_blob(id, kind, <[u8]>::to_vec)
    }

    /// Calls `f` on a blob's bytes once its id and kind are checked, without
    /// copying it out of its record.
    pub fn with_blob<R>(&self, id: &Id, kind: Kind, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let Some((e, g)) = self.find(id)? else {
            return Err(Error::corrupt(
                Region::Blob {
                    id: id.short(),
                    kind: kind.name(),
                },
                "missing from every index",
            ));
        };
        if e.kind != kind {
            return Err(Error::corrupt(
                Region::Blob {
                    id: id.short(),
                    kind: kind.name(),
                },
                format!("indexed as a {} blob", e.kind.name()),
            ));
        }
        let mismatch = || {
            Error::corrupt(
                Region::Packfile {
                    generation: g.footer.generation,
                    offset: e.record_offset,
                },
                format!("{} blob {} does not match its id", kind.name(), id.short()),
            )
        };
        if e.blob_offset == 0 && e.blob_len == e.raw_len {
            let blob = self.read_record_into(&e, g, self.spares.take())?;
            let r = if crypto::content_id(self.keys.as_deref(), kind, &blob) == *id {
                Ok(f(&blob))
            } else {
                Err(mismatch())
            };
            self.spares.give(blob);
            return r;
        }
        // A record holding several blobs: decode it once for all of them.
        // The lock is held while a missing record is decoded, so
        // threads reading neighbouring blobs wait for one decode
        // instead of each decoding the same record.
        let key = RecordKey::of(&e);
        let mut cache = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut evicted = Vec::new();
        let plaintext = match cache.get(&key) {
            Some(p) => p,
            None => {
                let p = Arc::new(Plaintext {
                    buf: self.read_record_into(&e, g, self.spares.take())?,
                    spares: self.spares.clone(),
                });
                evicted = cache.put(key, p.clone());
                p
            }
        };
        drop(cache);
        drop(evicted);
        let blob = &plaintext.buf[e.blob_offset as usize..(e.blob_offset + e.blob_len) as usize];
        if crypto::content_id(self.keys.as_deref(), kind, blob) != *id {
            return Err(mismatch());
        }
        Ok(f(blob))
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks one footer candidate (`buf`, ending at `end`) against the header.
fn check_footer(
    buf: &[u8],
    end: u64,
    header_len: u64,
    header: &Header,
    header_hash: &[u8; 32],
) -> Result<Footer, String> {
    let f = Footer::parse(buf).map_err(|m| m.0)?;
    if f.footer_end != end {
        return Err(format!(
            "footer says it ends at {}, it ends at {end}",
            f.footer_end
        ));
    }
    if f.major != FORMAT_MAJOR {
        return Err(format!("footer of major version {}", f.major));
    }
    if f.uuid != header.uuid {
        return Err("footer belongs to another archive".into());
    }
    if &f.header_hash != header_hash {
        return Err("footer commits to another header".into());
    }
    if f.generation == 0 || f.generation > MAX_GENERATIONS {
        return Err("generation number out of range".into());
    }
    if !header.encrypted() && f.keyslots_len != 0 {
        return Err("a plain archive's footer names a key-slot table".into());
    }
    if (f.flags & crate::format::footer::FLAG_MAC != 0) != header.encrypted() {
        return Err("footer MAC flag disagrees with the header".into());
    }
    // The sections tile the generation exactly.
    let footer_offset = end - FOOTER_LEN as u64;
    let table_end = f
        .table_offset
        .checked_add(f.table_len)
        .ok_or("table overflows")?;
    let sections_end = if f.keyslots_len > 0 {
        if f.keyslots_offset != table_end {
            return Err("key-slot table does not follow the snapshot table".into());
        }
        f.keyslots_offset
            .checked_add(f.keyslots_len)
            .ok_or("key slots overflow")?
    } else {
        table_end
    };
    let index_end = f
        .index_offset
        .checked_add(f.index_len)
        .ok_or("index overflows")?;
    if f.packfile_offset < header_len
        || f.index_offset < f.packfile_offset
        || index_end != f.table_offset
        || sections_end != footer_offset
    {
        return Err("footer offsets do not tile the generation".into());
    }
    if f.generation == 1 && f.packfile_offset != header_len {
        return Err("generation 1 does not start after the header".into());
    }
    if f.generation > 1
        && f.prev_footer_offset.checked_add(FOOTER_LEN as u64) != Some(f.packfile_offset)
    {
        return Err("generation does not start after the previous footer".into());
    }
    Ok(f)
}

/// The last valid footer, the committed end, and what follows it.
type Found = (Footer, u64, Option<Tail>);

/// A positional read of exactly `buf.len()` bytes at an offset.
type PositionalRead<'a> = dyn Fn(u64, &mut [u8]) -> std::io::Result<()> + 'a;

/// What opening an archive finds before any key is used: the header, and
/// the chain of generations up to the last valid footer.
struct Located {
    header: Header,
    header_len: u64,
    header_hash: [u8; 32],
    generations: Vec<Generation>,
    committed_end: u64,
    tail: Option<Tail>,
}

/// Reads the header, finds the last valid footer and walks the chain back.
/// `file`, when the bytes are a file's, lets the backward scan skip holes.
/// A damaged tail is refused here, before any key is derived, unless
/// `opts` allows it.
fn locate_chain(
    len: u64,
    read_at: &PositionalRead<'_>,
    file: Option<&File>,
    opts: &OpenOptions,
) -> Result<Located> {
    let (header, header_len, header_hash, (last, committed_end, tail)) =
        locate(len, read_at, file)?;
    refuse_damaged_tail(tail.as_ref(), last.generation, opts)?;
    let generations = walk_chain(
        read_at,
        committed_end,
        last,
        header_len,
        &header,
        &header_hash,
    )?;
    Ok(Located {
        header,
        header_len,
        header_hash,
        generations,
        committed_end,
        tail,
    })
}

/// Reads and checks the header, then finds the last valid footer.
fn locate(
    len: u64,
    read_at: &PositionalRead<'_>,
    file: Option<&File>,
) -> Result<(Header, u64, [u8; 32], Found)> {
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
    let found = find_last_footer(
        len,
        read_at,
        file,
        header_len,
        &header,
        &header_hash,
        crate::format::footer::MAX_TAIL_SCAN,
    )?;
    Ok((header, header_len, header_hash, found))
}

/// Reads the 512 bytes ending at `end` and checks them as a footer: the
/// outer error is a failed read, the inner one why the bytes are not a
/// valid footer.
fn footer_ending_at(
    read_at: &PositionalRead<'_>,
    len: u64,
    end: u64,
    header_len: u64,
    header: &Header,
    header_hash: &[u8; 32],
) -> Result<Result<Footer, String>> {
    if end < header_len + FOOTER_LEN as u64 || end > len {
        return Ok(Err("no room for a footer".into()));
    }
    let mut buf = [0u8; FOOTER_LEN];
    // A read that fails is an I/O error, not a verdict on the candidate.
    read_at(end - FOOTER_LEN as u64, &mut buf)?;
    Ok(check_footer(&buf, end, header_len, header, header_hash))
}

/// Finds the last footer that verifies: at the end of the file, or, after a
/// torn append, by scanning back for the end magic (spec §10.3).
fn find_last_footer(
    len: u64,
    read_at: &PositionalRead<'_>,
    file: Option<&File>,
    header_len: u64,
    header: &Header,
    header_hash: &[u8; 32],
    max_scan: u64,
) -> Result<Found> {
    if len == header_len {
        return Err(Error::corrupt(
            Region::Tail { offset: len },
            "the archive has a header but no committed generation",
        ));
    }
    let why = match footer_ending_at(read_at, len, len, header_len, header, header_hash)? {
        Ok(f) => return Ok((f, len, None)),
        Err(why) => why,
    };
    let mut last = [0u8; FOOTER_LEN];
    let damaged = len >= header_len + FOOTER_LEN as u64 && {
        read_at(len - FOOTER_LEN as u64, &mut last)?;
        Footer::looks_like_footer(&last)
    };
    // Scan back in windows that overlap by the magic's length minus one.
    const WINDOW: u64 = 1 << 20;
    let magic = &crate::format::footer::END_MAGIC;
    let mlen = magic.len() as u64;
    // The earliest place a footer's end magic can start.
    let floor = header_len + FOOTER_LEN as u64 - mlen;
    // Candidates must end before the file's end (that one already failed).
    let mut hi = len - 1;
    let mut buf = vec![0u8; WINDOW as usize];
    // Data bytes read so far: a writer never leaves an uncommitted tail
    // near MAX_TAIL_SCAN (spec §10.3), so the scan stops there.
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
        // A hole reads as zeros and holds no footer: skip it without reading.
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
            if let Ok(f) = footer_ending_at(read_at, len, cand, header_len, header, header_hash)? {
                let detail = if damaged { why } else { String::new() };
                let tail = Tail {
                    offset: cand,
                    len: len - cand,
                    damaged,
                    detail,
                };
                return Ok((f, cand, Some(tail)));
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

/// Walks the footer chain from the last footer back to generation 1; `len`
/// is the committed length.
fn walk_chain(
    read_at: &PositionalRead<'_>,
    len: u64,
    last: Footer,
    header_len: u64,
    header: &Header,
    header_hash: &[u8; 32],
) -> Result<Vec<Generation>> {
    let mut gens = Vec::new();
    let mut cur = last;
    loop {
        let generation = cur.generation;
        let footer_offset = cur.footer_end - FOOTER_LEN as u64;
        let prev_offset = cur.prev_footer_offset;
        let prev_hash = cur.prev_footer_hash;
        gens.push(Generation {
            footer: cur,
            footer_offset,
        });
        if generation == 1 {
            break;
        }
        if gens.len() as u64 > MAX_GENERATIONS {
            return Err(Error::corrupt(
                Region::Footer { generation },
                "too many generations",
            ));
        }
        let region = Region::Footer {
            generation: generation - 1,
        };
        let prev_end = prev_offset + FOOTER_LEN as u64;
        let prev = footer_ending_at(read_at, len, prev_end, header_len, header, header_hash)?
            .map_err(|d| Error::corrupt(region.clone(), d))?;
        let mut bytes = [0u8; FOOTER_LEN];
        read_at(prev_offset, &mut bytes)?;
        if blake3::hash(&bytes).as_bytes() != &prev_hash {
            return Err(Error::corrupt(
                region,
                "footer hash does not match the next footer's chain link",
            ));
        }
        if prev.generation != generation - 1 {
            return Err(Error::corrupt(
                region,
                "generation numbers are not consecutive",
            ));
        }
        cur = prev;
    }
    gens.reverse();
    Ok(gens)
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
        let hash = *blake3::hash(hb).as_bytes();
        find_last_footer(
            bytes.len() as u64,
            &read_at,
            None,
            header_len,
            &header,
            &hash,
            max_scan,
        )
    }

    /// An encrypted archive whose second generation's key-slot table holds
    /// 64 slots, each within the per-slot caps; `m_kib` is written into
    /// every slot afterwards (the table's hash in the footer follows, the
    /// footer's tag does not: it is checked only after unlocking).
    fn sixty_four_slots(pass: &[u8], m_kib: Option<u32>) -> Vec<u8> {
        let fast = crate::KdfParams {
            m_kib: 8,
            t: 1,
            p: 1,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.ptar");
        let opts = crate::CreateOptions {
            encryption: Some(crate::Encryption {
                passphrase: Zeroizing::new(pass.to_vec()),
                kdf: fast,
            }),
            ..crate::CreateOptions::default()
        };
        let mut w = crate::Writer::create(&path, opts).expect("writer");
        w.add_snapshot_record(&crate::format::snapshot::SnapshotRecord::default())
            .expect("snapshot");
        w.commit().expect("commit");
        let mut w = crate::Writer::append(&path, Some(pass)).expect("append");
        let slots = (0..64)
            .map(|_| w.new_key_slot(pass, fast).expect("slot"))
            .collect();
        w.set_key_slots(slots).expect("64 cheap slots fit the cap");
        w.commit().expect("commit");
        let mut bytes = std::fs::read(&path).expect("archive");
        let Some(m_kib) = m_kib else {
            return bytes;
        };
        let end = bytes.len();
        let f = Footer::parse(&bytes[end - FOOTER_LEN..]).expect("footer");
        let table = f.keyslots_offset as usize;
        for i in 0..64 {
            let m = table + 16 + 104 * i + 4;
            bytes[m..m + 4].copy_from_slice(&m_kib.to_le_bytes());
        }
        let hash = *blake3::hash(&bytes[table..table + f.keyslots_len as usize]).as_bytes();
        bytes[end - FOOTER_LEN + 288..end - FOOTER_LEN + 320].copy_from_slice(&hash);
        bytes
    }

    #[test]
    fn a_key_slot_set_over_the_work_cap_is_refused_before_any_derivation() {
        let pass = b"pass";
        let runs = || crypto::ARGON2_RUNS.with(|n| n.get());
        // Control: the cheap table opens, and the counter sees its derivation.
        let cheap = sixty_four_slots(pass, None);
        let before = runs();
        Store::from_vec(cheap, Some(pass)).expect("the cheap set opens");
        assert!(runs() > before, "the counter counts derivations");
        // 64 slots of 2 GiB and one pass: each within the per-slot caps,
        // 2^27 KiB·passes together, 16 times the cap.
        let hostile = sixty_four_slots(pass, Some(1 << 21));
        let before = runs();
        let e = match Store::from_vec(hostile, Some(pass)) {
            Err(Error::ExcessiveWork(e)) => e,
            Err(e) => panic!("expected excessive work, got: {e}"),
            Ok(_) => panic!("a set over the cap opened"),
        };
        assert_eq!(runs(), before, "Argon2id ran before the refusal");
        assert!(e.contains("excessive work"), "{e}");
        assert!(e.contains("64 key slot(s)"), "{e}");
        assert!(e.contains(&(64u64 << 21).to_string()), "{e}");
        assert!(
            e.contains(&crate::format::limits::MAX_ARGON2_SET_WORK.to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_writer_refuses_a_key_slot_set_over_the_work_cap() {
        let pass = b"pass";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.ptar");
        std::fs::write(&path, sixty_four_slots(pass, None)).expect("write");
        let mut w = crate::Writer::append(&path, Some(pass)).expect("append");
        let slot = w
            .new_key_slot(
                pass,
                crate::KdfParams {
                    m_kib: 8,
                    t: 1,
                    p: 1,
                },
            )
            .expect("slot");
        let heavy = |m_kib| KeySlot {
            kdf: crate::KdfParams { m_kib, t: 1, p: 1 },
            ..slot.clone()
        };
        // Each slot within the per-slot caps, together over the whole cap.
        let e = w.set_key_slots(vec![heavy(1 << 21); 5]).unwrap_err();
        assert!(matches!(e, Error::ExcessiveWork(_)), "{e}");
        assert!(e.to_string().contains("excessive work"), "{e}");
        // A slot beyond a per-slot cap is refused too.
        let e = w.set_key_slots(vec![heavy(1 << 22)]).unwrap_err();
        assert!(matches!(e, Error::ExcessiveWork(_)), "{e}");
        // At the cap: accepted.
        w.set_key_slots(vec![heavy(1 << 21); 4])
            .expect("four 2 GiB slots make 8 GiB·passes, the cap");
    }

    #[test]
    fn the_footer_scan_stops_after_its_bound() {
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
