//! The archive as a whole: opening one to read, creating one, appending to one.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::chunker::Chunker;
use crate::crypto::{self, Entropy, Keys, OsEntropy};
use crate::format::header::{
    check_key_slot_set_for_writing, ChunkerParams, Header, KdfParams, KeySlot, FLAG_ENCRYPTED,
};
use crate::format::run::SnapshotEntry;
use crate::format::snapshot::SnapshotRecord;
use crate::format::tree::{Content, Entry, Extent};
use crate::format::{Id, Kind, FORMAT_MAJOR, FORMAT_MINOR};
use crate::fs::CreateOutcome;
use crate::progress::Progress;
use crate::retry::{eintr, eintr_rustix};
use crate::store::writer::{ArchiveContext, PackOptions, WriteStats};
use crate::store::{GenerationWriter, Sink, Store};
use crate::{Error, Region, Result};

/// A snapshot as listed by an archive.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Snapshot {
    /// Its id (the id of its snapshot blob).
    pub id: Id,
    /// The generation that added it.
    pub generation: u64,
    /// Its record.
    pub record: SnapshotRecord,
}

impl Snapshot {
    /// The id of its root directory's tree.
    pub fn root(&self) -> &Id {
        &self.record.root
    }
}

/// An archive opened for reading. It is `Send + Sync`: share it (for
/// instance in an `Arc`) and read from many threads at once.
pub struct Archive {
    store: Arc<Store>,
}

/// The components of a member path: `/`, `./` and empty components are
/// dropped (`""`, `"."` and `"/"` name the root); `..` is refused.
fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::InvalidInput(format!(
                    "'{}': member paths may not hold '..'",
                    String::from_utf8_lossy(path)
                )))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Reads just the header of the file at `path`: whether it is a ptar
/// archive, and whether it is encrypted.
pub fn probe(path: &Path) -> Result<Header> {
    let f = crate::retry::eintr(|| File::open(path)).map_err(|e| Error::io_at(path, e))?;
    crate::store::reader::archive_file_len(&f, path)?;
    probe_file(&f).map_err(|e| match e {
        Error::Io { path: None, source } => Error::io_at(path, source),
        e => e,
    })
}

/// Like [`probe`], for an open file (read with positional reads). A read
/// that fails is reported as the I/O error it is; only a file too short or
/// holding other bytes is "not a ptar archive" or a damaged header.
pub fn probe_file(f: &File) -> Result<Header> {
    use std::os::unix::fs::FileExt;
    let mut prefix = [0u8; 16];
    match f.read_exact_at(&mut prefix, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Error::NotPtar),
        Err(e) => return Err(e.into()),
    }
    let len = Header::peek_len(&prefix).map_err(header_err)?;
    let mut buf = vec![0u8; len];
    match f.read_exact_at(&mut buf, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(Error::corrupt(
                Region::Header,
                "file ends inside the header",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    Header::parse(&buf).map_err(header_err)
}

/// Whether `prefix` (lowercase hex digits) begins the hex form of `id`,
/// compared without writing the id out.
fn hex_prefix_of(id: &Id, prefix: &[u8]) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    prefix.len() <= 64
        && prefix.iter().enumerate().all(|(i, &c)| {
            let byte = id.0[i / 2];
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 15 };
            HEX[nibble as usize] == c
        })
}

fn header_err(e: crate::format::header::HeaderError) -> Error {
    use crate::format::header::HeaderError as H;
    match e {
        H::NotPtar => Error::NotPtar,
        H::Version { major, minor } => Error::UnsupportedVersion {
            major,
            minor,
            supported: FORMAT_MAJOR,
        },
        H::Unsupported(s) => Error::Unsupported(s),
        H::Malformed(m) => m.at(Region::Header),
    }
}

impl Archive {
    /// Opens the archive at `path`; `passphrase` is needed when it is
    /// encrypted. An archive whose newest footer is damaged is refused
    /// ([`Error::DamagedTail`]); [`Archive::open_with`] can allow it.
    pub fn open(path: &Path, passphrase: Option<&[u8]>) -> Result<Archive> {
        Archive::open_with(path, passphrase, &crate::store::OpenOptions::default())
    }

    /// [`Archive::open`] with options (for instance, to read the last good
    /// generation of an archive with a damaged tail).
    pub fn open_with(
        path: &Path,
        passphrase: Option<&[u8]>,
        opts: &crate::store::OpenOptions,
    ) -> Result<Archive> {
        Ok(Archive {
            store: Arc::new(Store::open_with(path, passphrase, opts)?),
        })
    }

    /// [`Archive::from_file`] with options.
    pub fn from_file_with(
        file: File,
        name: &Path,
        passphrase: Option<&[u8]>,
        opts: &crate::store::OpenOptions,
    ) -> Result<Archive> {
        Ok(Archive {
            store: Arc::new(Store::from_file_with(file, name, passphrase, opts)?),
        })
    }

    /// [`Archive::from_vec`] with options.
    pub fn from_vec_with(
        bytes: Vec<u8>,
        passphrase: Option<&[u8]>,
        opts: &crate::store::OpenOptions,
    ) -> Result<Archive> {
        Ok(Archive {
            store: Arc::new(Store::from_vec_with(bytes, passphrase, opts)?),
        })
    }

    /// [`Archive::from_reader`] with options.
    pub fn from_reader_with(
        source: impl crate::store::ReadAt + 'static,
        passphrase: Option<&[u8]>,
        opts: &crate::store::OpenOptions,
    ) -> Result<Archive> {
        Ok(Archive {
            store: Arc::new(Store::from_reader_with(source, passphrase, opts)?),
        })
    }

    /// Opens an archive from an open file (for instance a spooled standard
    /// input); `name` is used in error messages.
    pub fn from_file(file: File, name: &Path, passphrase: Option<&[u8]>) -> Result<Archive> {
        Ok(Archive {
            store: Arc::new(Store::from_file(file, name, passphrase)?),
        })
    }

    /// Opens an archive held in memory.
    pub fn from_vec(bytes: Vec<u8>, passphrase: Option<&[u8]>) -> Result<Archive> {
        Ok(Archive {
            store: Arc::new(Store::from_vec(bytes, passphrase)?),
        })
    }

    /// Opens an archive over any positional source: bytes in memory, a
    /// file, or a caller's [`ReadAt`](crate::store::ReadAt) serving a
    /// remote object. The header, the last trailer, its manifest and the
    /// directories of the runs in force are read now; index pages, snapshot
    /// pages and blob records when they are asked for.
    pub fn from_reader(
        source: impl crate::store::ReadAt + 'static,
        passphrase: Option<&[u8]>,
    ) -> Result<Archive> {
        Ok(Archive {
            store: Arc::new(Store::from_reader(source, passphrase)?),
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// All snapshots, oldest first. This holds every snapshot record in
    /// memory; [`Archive::for_each_snapshot`] reads them one at a time.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let mut all = Vec::new();
        self.for_each_snapshot(|s| {
            all.push(s);
            Ok(())
        })?;
        Ok(all)
    }

    /// Number of snapshots.
    pub fn snapshot_count(&self) -> usize {
        self.store.snapshot_list().len()
    }

    /// Calls `f` on every snapshot, oldest first, reading the snapshot
    /// table a slice at a time and one record at a time: memory stays
    /// bounded however many snapshots the archive lists. Stops at the first
    /// error, from reading or from `f`.
    pub fn for_each_snapshot(&self, f: impl FnMut(Snapshot) -> Result<()>) -> Result<()> {
        self.for_each_snapshot_from(0, f)
    }

    /// [`Archive::for_each_snapshot`] from position `start` on (0 is the
    /// oldest): the `n` newest are `snapshot_count() - n` on.
    pub fn for_each_snapshot_from(
        &self,
        start: usize,
        mut f: impl FnMut(Snapshot) -> Result<()>,
    ) -> Result<()> {
        for t in self.store.snapshot_list().iter_from(start) {
            f(self.load_snapshot(&t?)?)?;
        }
        Ok(())
    }

    /// Reads the snapshot an entry of the snapshot list names (its record
    /// is read where the entry says, with no index lookup).
    pub fn load_snapshot(&self, t: &SnapshotEntry) -> Result<Snapshot> {
        let region = Region::Blob {
            id: t.id.short(),
            kind: Kind::Snapshot.name(),
        };
        let b = self
            .store
            .with_blob_at(&t.location, &t.id, Kind::Snapshot, <[u8]>::to_vec)?;
        let record = SnapshotRecord::parse(&b).map_err(|m| m.at(region))?;
        Ok(Snapshot {
            id: t.id,
            generation: t.generation,
            record,
        })
    }

    /// Finds a snapshot by `latest`, a position from the end (`1` is the
    /// latest), or a hex prefix of its id.
    ///
    /// The table is read a slice at a time: `latest` and a position read
    /// one entry, a prefix streams through the table.
    pub fn find_snapshot(&self, selector: &str) -> Result<Snapshot> {
        let table = self.store.snapshot_list();
        if table.is_empty() {
            return Err(Error::NotFound("the archive holds no snapshot".into()));
        }
        let pick = if selector == "latest" {
            table.last()?
        } else if let Ok(n) = selector.parse::<usize>() {
            if n == 0 || n > table.len() {
                None
            } else {
                table.get(table.len() - n)?
            }
        } else {
            let sel = selector.to_ascii_lowercase();
            let mut found: Option<SnapshotEntry> = None;
            for t in table.iter() {
                let t = t?;
                if !hex_prefix_of(&t.id, sel.as_bytes()) {
                    continue;
                }
                match found {
                    Some(f) if f.id != t.id => {
                        return Err(Error::InvalidInput(format!(
                            "snapshot id prefix '{selector}' is ambiguous"
                        )));
                    }
                    _ => found = Some(t),
                }
            }
            found
        };
        let t = pick.ok_or_else(|| Error::NotFound(format!("snapshot '{selector}'")))?;
        self.load_snapshot(&t)
    }

    /// A snapshot by selector: `latest`, a position from the end (`1` is
    /// the latest), or a hex prefix of its id (same as [`Archive::find_snapshot`]).
    pub fn snapshot(&self, selector: &str) -> Result<Snapshot> {
        self.find_snapshot(selector)
    }

    /// Entries of a directory, by its tree id, sorted by name.
    pub fn read_dir(&self, tree: &Id) -> Result<Vec<Entry>> {
        crate::tree::read_directory(&self.store, tree)
    }

    /// The entry at `path` in `snapshot` (`a/b/c`; `""` or `/` is the root,
    /// returned as a directory entry with an empty name and the snapshot's
    /// time), or `None` when there is none. Symlinks are not followed; each
    /// directory on the way costs one tree page per level of its B-tree.
    pub fn lookup(&self, snapshot: &Snapshot, path: impl AsRef<[u8]>) -> Result<Option<Entry>> {
        let parts = components(path.as_ref())?;
        let Some((last, dirs)) = parts.split_last() else {
            return Ok(Some(root_entry(snapshot)));
        };
        let mut dir = *snapshot.root();
        for name in dirs {
            match crate::tree::find_in_directory(&self.store, &dir, name)? {
                Some(Entry {
                    payload: crate::format::tree::Payload::Dir(id),
                    ..
                }) => dir = id,
                _ => return Ok(None),
            }
        }
        crate::tree::find_in_directory(&self.store, &dir, last)
    }

    /// [`Archive::lookup`], with a [`Error::NotFound`] when nothing is there.
    pub fn metadata(&self, snapshot: &Snapshot, path: impl AsRef<[u8]>) -> Result<Entry> {
        let path = path.as_ref();
        self.lookup(snapshot, path)?.ok_or_else(|| {
            Error::NotFound(format!(
                "'{}' in snapshot {}",
                String::from_utf8_lossy(path),
                snapshot.id.short()
            ))
        })
    }

    /// The entries of the directory at `path` in `snapshot`, sorted by name.
    pub fn read_dir_at(&self, snapshot: &Snapshot, path: impl AsRef<[u8]>) -> Result<Vec<Entry>> {
        let path = path.as_ref();
        match self.metadata(snapshot, path)? {
            Entry {
                payload: crate::format::tree::Payload::Dir(id),
                ..
            } => self.read_dir(&id),
            _ => Err(Error::InvalidInput(format!(
                "'{}' is not a directory",
                String::from_utf8_lossy(path)
            ))),
        }
    }

    /// Opens the regular file at `path` in `snapshot` for reading in place,
    /// with `Read + Seek` (a hard link opens the file it names). See
    /// [`FileReader`](crate::file::FileReader).
    pub fn open_file(
        &self,
        snapshot: &Snapshot,
        path: impl AsRef<[u8]>,
    ) -> Result<crate::file::FileReader> {
        let entry = self.metadata(snapshot, path)?;
        self.file_reader(snapshot, &entry)
    }

    /// A reader of a file entry found in `snapshot` (by [`Archive::walk`],
    /// [`Archive::read_dir`], ...); a hard link reads the file it names.
    pub fn file_reader(
        &self,
        snapshot: &Snapshot,
        entry: &Entry,
    ) -> Result<crate::file::FileReader> {
        match &entry.payload {
            crate::format::tree::Payload::Hardlink(target) => {
                let first = self.metadata(snapshot, target)?;
                if !matches!(first.payload, crate::format::tree::Payload::File(_)) {
                    return Err(Error::corrupt(
                        Region::Blob {
                            id: snapshot.id.short(),
                            kind: Kind::Snapshot.name(),
                        },
                        format!(
                            "hard link '{}' names '{}', which is not a regular file",
                            String::from_utf8_lossy(&entry.name),
                            String::from_utf8_lossy(target)
                        ),
                    ));
                }
                crate::file::FileReader::new(self.store.clone(), &first)
            }
            _ => crate::file::FileReader::new(self.store.clone(), entry),
        }
    }

    /// Extents of a file entry's content.
    pub fn extents(&self, content: &Content, size: u64) -> Result<Vec<Extent>> {
        crate::tree::read_extents(&self.store, content, size)
    }

    /// Reads one chunk.
    pub fn read_chunk(&self, id: &Id) -> Result<Vec<u8>> {
        self.store.read_blob(id, Kind::Chunk)
    }

    /// Walks a snapshot depth-first in name order, calling `f(path, entry)`
    /// for every entry (directories before their contents). The walk stops
    /// at the first error: from `f`, a directory that cannot be read, or
    /// one nested deeper than [`crate::format::limits::MAX_TREE_DEPTH`]
    /// (spec §12).
    pub fn walk(
        &self,
        snapshot: &Snapshot,
        mut f: impl FnMut(&[u8], &Entry) -> Result<()>,
    ) -> Result<()> {
        let mut walker = crate::walk::Walker::new(&self.store, snapshot.record.root);
        while let Some(step) = walker.next() {
            match step? {
                crate::walk::Step::Entry(v) => f(&v.path, &v.entry)?,
                crate::walk::Step::Unreadable { error, .. } => return Err(error),
                crate::walk::Step::Leave(_) => {}
            }
        }
        Ok(())
    }

    /// Extracts a snapshot into `dest`.
    pub fn extract(
        &self,
        snapshot: &Snapshot,
        dest: &Path,
        opts: &crate::fs::ExtractOptions,
        progress: &dyn Progress,
    ) -> Result<crate::fs::ExtractOutcome> {
        let s = &snapshot.record.summary;
        let entries = s.files + s.dirs + s.symlinks + s.hardlinks + s.others;
        crate::fs::extract(
            &self.store,
            &snapshot.record.root,
            (s.total_size, entries),
            dest,
            opts,
            progress,
        )
    }

    /// Hands every entry of a snapshot to `sink`, depth-first in name order
    /// (see [`crate::sink`]); returns the entries that failed.
    pub fn export(
        &self,
        snapshot: &Snapshot,
        sink: &mut dyn crate::sink::EntrySink,
        progress: &dyn Progress,
    ) -> Result<crate::sink::Failures> {
        crate::sink::export(&self.store, &snapshot.record.root, sink, progress)
    }

    /// Compares a snapshot's selected entries with the files under `base`
    /// (tar's `--diff`).
    pub fn compare(
        &self,
        snapshot: &Snapshot,
        base: &Path,
        selection: &crate::fs::Selection,
    ) -> Result<Vec<crate::fs::Difference>> {
        crate::fs::compare(&self.store, &snapshot.record.root, base, selection)
    }

    /// Checks the archive; see [`crate::verify`].
    pub fn verify(&self, opts: &crate::verify::VerifyOptions) -> crate::verify::VerifyReport {
        crate::verify::verify(self, opts)
    }

    /// [`Archive::verify`] with progress (record bytes read by a full check).
    pub fn verify_with_progress(
        &self,
        opts: &crate::verify::VerifyOptions,
        progress: &dyn Progress,
    ) -> crate::verify::VerifyReport {
        crate::verify::verify_with_progress(self, opts, progress)
    }
}

/// The root directory of a snapshot as an entry: no name, mode 0755, owned
/// by root, timed at the snapshot's start.
fn root_entry(snapshot: &Snapshot) -> Entry {
    let time = crate::format::tree::Timestamp::from_ns(snapshot.record.time_ns);
    let mut root = Entry::synthetic_dir(Vec::new(), time);
    root.payload = crate::format::tree::Payload::Dir(*snapshot.root());
    root
}

/// How to encrypt a new archive.
pub struct Encryption {
    /// The passphrase.
    pub passphrase: Zeroizing<Vec<u8>>,
    /// Argon2id costs.
    pub kdf: KdfParams,
}

/// Options for creating an archive.
pub struct CreateOptions {
    /// Encrypt with a passphrase (plain when `None`).
    pub encryption: Option<Encryption>,
    /// Chunker sizes.
    pub chunker: ChunkerParams,
    /// Randomness; the OS by default. Tests and vectors pass a seeded stream.
    pub entropy: Box<dyn Entropy>,
    /// Clock override in ns since the epoch, for reproducible vectors.
    pub time_ns: Option<i64>,
    /// Codec, solid-record size and compression threads.
    pub pack: PackOptions,
}

impl Default for CreateOptions {
    fn default() -> CreateOptions {
        CreateOptions {
            encryption: None,
            chunker: ChunkerParams::DEFAULT,
            entropy: Box::new(OsEntropy),
            time_ns: None,
            pack: PackOptions::default(),
        }
    }
}

/// Facts about a snapshot when it is added.
#[derive(Clone, Debug, Default)]
pub struct SnapshotMeta {
    /// Name (may be empty).
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The command line that made it.
    pub command_line: Vec<Vec<u8>>,
}

/// What a commit wrote.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CommitInfo {
    /// The generation number.
    pub generation: u64,
    /// Bytes in the archive now.
    pub archive_len: u64,
    /// Blob counters.
    pub stats: WriteStats,
}

enum Target {
    /// A temp file renamed over `dest` on commit, removed otherwise. `held`
    /// is the temp file, kept open (and so locked) until then; `replaced`
    /// the existing file at `dest`, locked as an append locks it.
    Create {
        tmp: PathBuf,
        dest: PathBuf,
        held: File,
        replaced: Option<File>,
    },
    /// An existing archive, locked; truncated back to `committed` if not committed.
    Append {
        file: File,
        committed: u64,
        path: PathBuf,
    },
    /// A stream (no cleanup possible).
    Stream,
}

/// Writes one new generation: creating an archive or appending to one.
pub struct Writer<W: Sink> {
    gen: Option<GenerationWriter<W>>,
    chunker: Chunker,
    snapshots: Vec<Id>,
    keyslots: Option<Vec<KeySlot>>,
    signer: Option<ed25519_dalek::SigningKey>,
    target: Target,
    time_ns: Option<i64>,
    /// (device, inode) of the archive file itself, never read into a snapshot.
    own_file: Vec<(u64, u64)>,
    policy: crate::fs::CreatePolicy,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Builds a new header (and the keys) for `opts`.
fn new_header(opts: &mut CreateOptions) -> Result<(Header, Option<Arc<Keys>>)> {
    opts.chunker
        .validate()
        .map_err(|m| Error::InvalidInput(m.0))?;
    let mut uuid = [0u8; 16];
    opts.entropy.fill(&mut uuid);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let created = opts.time_ns.unwrap_or_else(now_ns) / 1_000_000_000;
    let mut header = Header {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
        flags: 0,
        uuid,
        chunker: opts.chunker,
        default_codec: match opts.pack.compression {
            crate::codec::Compression::None => 0,
            crate::codec::Compression::Lz4 => 1,
            crate::codec::Compression::Zstd(_) => 2,
        },
        created,
        key_check: [0; 32],
        key_slots: Vec::new(),
    };
    let mut keys = None;
    if let Some(enc) = &opts.encryption {
        if enc.passphrase.is_empty() {
            return Err(Error::InvalidInput("an empty passphrase is refused".into()));
        }
        check_key_slot_set_for_writing([&enc.kdf]).map_err(Error::ExcessiveWork)?;
        let mut mk = Zeroizing::new([0u8; 32]);
        opts.entropy.fill(mk.as_mut());
        let slot =
            crypto::wrap_master_key(&mk, &enc.passphrase, enc.kdf, &uuid, opts.entropy.as_mut())?;
        header.flags |= FLAG_ENCRYPTED;
        header.key_check = crypto::key_check(&mk, &uuid);
        header.key_slots = vec![slot];
        keys = Some(Arc::new(Keys::from_master(mk)));
    }
    Ok((header, keys))
}

impl Writer<BufWriter<File>> {
    /// Creates a new archive at `path`. A missing path or a regular file
    /// (after following symlinks, even a dangling one, to the file they
    /// name) is written as a temporary file beside it, `.NAME.ptar-tmp-PID`,
    /// renamed into place on commit and removed otherwise; anything else (a
    /// device, a FIFO, `/dev/fd/N`) is written in place, as a stream.
    ///
    /// An existing ptar archive is not replaced: that fails with
    /// [`Error::ArchiveExists`] (see [`Writer::create_replacing`]). An
    /// existing file that is not a ptar archive is replaced, as tar does.
    pub fn create(path: &Path, opts: CreateOptions) -> Result<Self> {
        Writer::create_at(path, opts, false)
    }

    /// [`Writer::create`], replacing an existing ptar archive (and so
    /// discarding its snapshots). The existing archive is locked as an
    /// append locks it until the new one is renamed over it, so a concurrent
    /// append fails as busy instead of landing in a file about to vanish.
    pub fn create_replacing(path: &Path, opts: CreateOptions) -> Result<Self> {
        Writer::create_at(path, opts, true)
    }

    fn create_at(path: &Path, opts: CreateOptions, replace: bool) -> Result<Self> {
        let dest = match destination(path)? {
            Destination::InPlace(file) => {
                let own = file_id(&file);
                let mut w = Writer::start(
                    BufWriter::with_capacity(1 << 20, file),
                    opts,
                    Target::Stream,
                )?;
                w.own_file.extend(own);
                return Ok(w);
            }
            Destination::Replace(dest) => dest,
        };
        let replaced = match lock_existing(&dest)? {
            Some(existing) => {
                if !replace && is_ptar(&existing).map_err(|e| Error::io_at(&dest, e))? {
                    return Err(Error::ArchiveExists {
                        snapshots: snapshot_count(&existing),
                        generations: generation_count(&existing),
                        path: dest,
                    });
                }
                Some(existing)
            }
            None => None,
        };
        let (tmp, file) = create_temp(&dest)?;
        let own = file_id(&file);
        let held = file.try_clone().map_err(|e| Error::io_at(&tmp, e))?;
        let target = Target::Create {
            tmp,
            dest,
            held,
            replaced,
        };
        let mut w = Writer::start(BufWriter::with_capacity(1 << 20, file), opts, target)?;
        w.own_file.extend(own);
        // An archive being replaced is not read into the new one either.
        if let Target::Create {
            replaced: Some(f), ..
        } = &w.target
        {
            w.own_file.extend(file_id(f));
        }
        Ok(w)
    }

    /// Opens the archive at `path` to append a generation. Holds an exclusive
    /// lock until commit or drop; truncates an interrupted append's tail.
    pub fn append(path: &Path, passphrase: Option<&[u8]>) -> Result<Self> {
        Writer::append_with(path, passphrase, Box::new(OsEntropy), None)
    }

    /// [`Writer::append`] with the randomness and clock given (for reproducible vectors).
    pub fn append_with(
        path: &Path,
        passphrase: Option<&[u8]>,
        entropy: Box<dyn Entropy>,
        time_ns: Option<i64>,
    ) -> Result<Self> {
        let file = lock_path(path, true)?.ok_or_else(|| {
            Error::io_at(path, std::io::Error::from(std::io::ErrorKind::NotFound))
        })?;
        // Opened with a damaged tail allowed, so that it is refused here,
        // as an append, with its own message.
        let store = Store::from_file_with(
            file.try_clone().map_err(|e| Error::io_at(path, e))?,
            path,
            passphrase,
            &crate::store::OpenOptions::new().allow_damaged_tail(true),
        )?;
        if let Some(t) = store.tail() {
            if t.damaged {
                return Err(Error::corrupt(
                    Region::Tail { offset: t.offset },
                    format!(
                        "the archive ends in a damaged footer (bytes {}..{}: {}); refusing to \
                         append, which would bury it",
                        t.offset,
                        t.end(),
                        t.detail
                    ),
                ));
            }
        }
        let committed = store.committed_end();
        eintr(|| file.set_len(committed)).map_err(|e| Error::io_at(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file.try_clone()?);
        use std::io::Seek;
        out.seek(std::io::SeekFrom::Start(committed))?;
        let keys = store.keys_arc();
        // The existing snapshots stay in their runs (spec §11.2).
        let snapshots = Vec::new();
        let chunker = Chunker::new(
            store.header().chunker,
            keys.as_deref().map(|k| k.gear_key()),
        );
        let store = Arc::new(store);
        let ctx = ArchiveContext {
            uuid: store.header().uuid,
            header_minor: store.header().minor,
            header_hash: *store.header_hash(),
            keys,
            existing: Some(store.clone()),
        };
        let gen = GenerationWriter::new(out, committed, ctx, entropy);
        let own_file = file_id(&file).into_iter().collect();
        Ok(Writer {
            gen: Some(gen),
            chunker,
            snapshots,
            keyslots: None,
            signer: None,
            target: Target::Append {
                file,
                committed,
                path: path.to_path_buf(),
            },
            time_ns,
            own_file,
            policy: Default::default(),
        })
    }
}

/// Where [`Writer::create`] writes.
enum Destination {
    /// A temporary file beside this path (a regular file or nothing yet,
    /// symlinks followed), renamed over it on commit.
    Replace(PathBuf),
    /// Not a regular file: written in place, front to back.
    InPlace(File),
}

/// The most symlinks followed to find a new archive's file (as the kernel).
const MAX_SYMLINK_HOPS: usize = 40;

/// Decides how a new archive at `path` is written (see [`Writer::create`]).
fn destination(path: &Path) -> Result<Destination> {
    match eintr(|| std::fs::metadata(path)) {
        Ok(md) if md.is_dir() => Err(Error::io_at(
            path,
            std::io::Error::from_raw_os_error(rustix::io::Errno::ISDIR.raw_os_error()),
        )),
        Ok(md) if md.is_file() => Ok(Destination::Replace(final_target(path)?)),
        Ok(_) => {
            // A device, a FIFO (the open waits for its reader, as tar's
            // does), a socket: written where it is, never replaced.
            let file = eintr(|| OpenOptions::new().write(true).open(path))
                .map_err(|e| Error::io_at(path, e))?;
            Ok(Destination::InPlace(file))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Destination::Replace(final_target(path)?))
        }
        Err(e) => Err(Error::io_at(path, e)),
    }
}

/// `path` with every symlink at its end followed, even when the last one
/// dangles: the file a write through `path` would create or replace.
fn final_target(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() => {
                let t = std::fs::read_link(&p).map_err(|e| Error::io_at(&p, e))?;
                p = if t.is_absolute() {
                    t
                } else {
                    p.parent().unwrap_or(Path::new("")).join(t)
                };
            }
            _ => return Ok(p),
        }
    }
    Err(Error::io_at(
        path,
        std::io::Error::from_raw_os_error(rustix::io::Errno::LOOP.raw_os_error()),
    ))
}

/// How many times a lock is retried when the path is replaced under it
/// before the archive is reported busy.
const LOCK_RETRIES: usize = 8;

/// Opens the file at `path` (for reading, and writing when `write`) and
/// takes the archive's exclusive lock on it, the lock `-r` holds: `None`
/// when there is no file. After locking, the path must still name the
/// inode locked: a writer that replaced the archive meanwhile (a
/// `-c --replace-archive` renaming a new file over it) would otherwise
/// leave this one writing into an unlinked inode. The lock is retried on
/// the new file a few times, then reported busy.
fn lock_path(path: &Path, write: bool) -> Result<Option<File>> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..LOCK_RETRIES {
        let file = match eintr(|| OpenOptions::new().read(true).write(write).open(path)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io_at(path, e)),
        };
        match eintr_rustix(|| {
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        }) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(Error::Busy(path.to_path_buf())),
            Err(e) => return Err(Error::io_at(path, e.into())),
        }
        let locked = file.metadata().map_err(|e| Error::io_at(path, e))?;
        match eintr(|| std::fs::metadata(path)) {
            Ok(now) if (now.dev(), now.ino()) == (locked.dev(), locked.ino()) => {
                return Ok(Some(file))
            }
            // Replaced (or removed) between the open and the lock: the
            // lock is on a file no longer at `path`. Look again.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io_at(path, e)),
        }
    }
    Err(Error::Busy(path.to_path_buf()))
}

/// The archive at `path`, opened for writing and locked as an appender
/// locks it (see [`lock_path`]), for a repair.
pub(crate) fn lock_for_repair(path: &Path) -> Result<File> {
    lock_path(path, true)?
        .ok_or_else(|| Error::io_at(path, std::io::Error::from(std::io::ErrorKind::NotFound)))
}

/// The existing regular file a new archive will replace, locked (see
/// [`lock_path`]); `None` when there is none.
fn lock_existing(dest: &Path) -> Result<Option<File>> {
    lock_path(dest, false)
}

/// Whether `file` starts with the ptar magic.
fn is_ptar(file: &File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 8];
    match file.read_exact_at(&mut magic, 0) {
        Ok(()) => Ok(magic == crate::format::header::MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The number of snapshots of an existing plain archive, or `None` when it
/// cannot be read without a passphrase.
fn snapshot_count(file: &File) -> Option<u64> {
    let last_good = crate::store::OpenOptions::new().allow_damaged_tail(true);
    let store =
        Store::from_file_with(file.try_clone().ok()?, Path::new(""), None, &last_good).ok()?;
    Some(store.snapshot_list().len() as u64)
}

/// The number of generations of an existing archive, read from its last
/// trailer without a passphrase, or `None` when it cannot be read.
fn generation_count(file: &File) -> Option<u64> {
    use crate::format::manifest::{Trailer, TRAILER_LEN};
    use std::os::unix::fs::FileExt;
    let len = file.metadata().ok()?.len();
    let mut buf = vec![0u8; TRAILER_LEN];
    file.read_exact_at(&mut buf, len.checked_sub(TRAILER_LEN as u64)?)
        .ok()?;
    Trailer::parse(&buf).ok().map(|t| t.generation)
}

/// The temporary file names of writers creating `dest`: `.NAME.ptar-tmp-`.
fn temp_prefix(dest: &Path) -> Result<(PathBuf, std::ffi::OsString)> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = dest
        .file_name()
        .ok_or_else(|| Error::InvalidInput(format!("{} is not a file name", dest.display())))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".ptar-tmp-");
    Ok((dir, prefix))
}

/// Creates the temporary file a new archive is written to, beside `dest`,
/// and locks it for as long as it is open: a later create sweeps the
/// temporary files of the same name whose lock it can take (their writer
/// is gone: killed, or a crash), never one whose writer still runs, even
/// if a new process got the old one's PID.
fn create_temp(dest: &Path) -> Result<(PathBuf, File)> {
    use std::os::unix::fs::MetadataExt;
    let (dir, prefix) = temp_prefix(dest)?;
    sweep_stale_temps(&dir, &prefix);
    let mut name = prefix;
    name.push(std::process::id().to_string());
    let tmp = dir.join(name);
    for _ in 0..LOCK_RETRIES {
        let file = eintr(|| OpenOptions::new().write(true).create_new(true).open(&tmp))
            .map_err(|e| Error::io_at(&tmp, e))?;
        match eintr_rustix(|| {
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        }) {
            Ok(()) => {}
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io_at(&tmp, e.into()));
            }
        }
        // A sweep in another process may have removed the file between its
        // creation and the lock: then make it again.
        let mine = file.metadata().map_err(|e| Error::io_at(&tmp, e))?;
        match std::fs::symlink_metadata(&tmp) {
            Ok(md) if (md.dev(), md.ino()) == (mine.dev(), mine.ino()) => return Ok((tmp, file)),
            _ => continue,
        }
    }
    Err(Error::Busy(tmp))
}

/// Removes `PREFIX*` files in `dir` (the temporary files of earlier
/// writers of the same archive name) that no writer holds locked. Best
/// effort: what cannot be removed stays.
fn sweep_stale_temps(dir: &Path, prefix: &std::ffi::OsStr) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for de in listing.flatten() {
        let name = de.file_name();
        // `PREFIX` and a process id: nothing else is a writer's temporary file.
        match name.as_bytes().strip_prefix(prefix.as_bytes()) {
            Some(pid) if !pid.is_empty() && pid.iter().all(u8::is_ascii_digit) => {}
            _ => continue,
        }
        let path = de.path();
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !md.file_type().is_file() {
            continue;
        }
        let Ok(f) = eintr(|| {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .read(true)
                .custom_flags(libc_nofollow())
                .open(&path)
        }) else {
            continue;
        };
        let unlocked = eintr_rustix(|| {
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        })
        .is_ok();
        let same = f
            .metadata()
            .is_ok_and(|m| (m.dev(), m.ino()) == (md.dev(), md.ino()));
        if unlocked && same {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// `O_NOFOLLOW`, as the raw flag `OpenOptionsExt::custom_flags` takes.
fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Whether `file` ends in exactly the trailer `c` names, at `c.end`: the
/// generation it closes is committed, whatever error the writing reported.
fn footer_in_place(file: &File, c: &crate::store::Committed) -> bool {
    use crate::format::manifest::TRAILER_LEN;
    use std::os::unix::fs::FileExt;
    let Ok(md) = file.metadata() else {
        return false;
    };
    if md.len() != c.end {
        return false;
    }
    let mut buf = vec![0u8; TRAILER_LEN];
    file.read_exact_at(&mut buf, c.end - TRAILER_LEN as u64)
        .is_ok()
        && buf == c.trailer
}

impl<W: Sink> Writer<W> {
    /// Creates a new archive on a stream (e.g. standard output).
    pub fn create_stream(out: W, opts: CreateOptions) -> Result<Self> {
        Writer::start(out, opts, Target::Stream)
    }

    fn start(mut out: W, mut opts: CreateOptions, target: Target) -> Result<Self> {
        let (header, keys) = new_header(&mut opts)?;
        let hb = header.to_bytes();
        out.write_all(&hb)?;
        let ctx = ArchiveContext {
            uuid: header.uuid,
            header_minor: header.minor,
            header_hash: *blake3::hash(&hb).as_bytes(),
            keys: keys.clone(),
            existing: None,
        };
        let chunker = Chunker::new(header.chunker, keys.as_deref().map(|k| k.gear_key()));
        let gen =
            GenerationWriter::with_options(out, hb.len() as u64, ctx, opts.entropy, opts.pack);
        Ok(Writer {
            gen: Some(gen),
            chunker,
            snapshots: Vec::new(),
            keyslots: None,
            signer: None,
            target,
            time_ns: opts.time_ns,
            own_file: Vec::new(),
            policy: Default::default(),
        })
    }

    /// Sets the codec, solid-record size and compression threads for the
    /// blobs stored from now on (on append, the archive's records so far keep
    /// theirs).
    pub fn set_pack_options(&mut self, opts: PackOptions) -> Result<()> {
        self.gen
            .as_mut()
            .expect("live writer")
            .set_pack_options(opts)
    }

    /// Signs the footer of this generation with `key`.
    pub fn sign_with(&mut self, key: ed25519_dalek::SigningKey) {
        self.signer = Some(key);
    }

    /// Replaces the key slots in force from this generation on (a new or
    /// changed passphrase). Only for encrypted archives.
    pub fn set_key_slots(&mut self, slots: Vec<KeySlot>) -> Result<()> {
        if self.gen.as_ref().expect("live writer").keys().is_none() {
            return Err(Error::InvalidInput("the archive is not encrypted".into()));
        }
        if slots.is_empty() || slots.len() > crate::format::limits::MAX_KEY_SLOTS as usize {
            return Err(Error::InvalidInput(format!(
                "{} key slots (1 to {} allowed)",
                slots.len(),
                crate::format::limits::MAX_KEY_SLOTS
            )));
        }
        check_key_slot_set_for_writing(slots.iter().map(|s| &s.kdf))
            .map_err(Error::ExcessiveWork)?;
        self.keyslots = Some(slots);
        Ok(())
    }

    /// Wraps this archive's master key for `passphrase`.
    pub fn new_key_slot(&self, passphrase: &[u8], kdf: KdfParams) -> Result<KeySlot> {
        let gen = self.gen.as_ref().expect("live writer");
        let keys = gen
            .keys()
            .ok_or_else(|| Error::InvalidInput("the archive is not encrypted".into()))?;
        if passphrase.is_empty() {
            return Err(Error::InvalidInput("an empty passphrase is refused".into()));
        }
        let uuid = self.uuid();
        crypto::wrap_master_key(keys.master(), passphrase, kdf, &uuid, &mut OsEntropy)
    }

    fn uuid(&self) -> [u8; 16] {
        self.gen.as_ref().expect("live writer").uuid()
    }

    fn clock(&self) -> i64 {
        self.time_ns.unwrap_or_else(now_ns)
    }

    /// The chunker configured for this archive.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Low-level access for building trees by hand (importers, test vectors):
    /// store blobs with [`GenerationWriter::put_blob`], directories with
    /// [`crate::tree::write_directory`], then call [`Writer::add_snapshot_record`].
    pub fn generation_writer(&mut self) -> &mut GenerationWriter<W> {
        self.gen.as_mut().expect("live writer")
    }

    /// Stores a snapshot record built by hand and lists it in the table.
    pub fn add_snapshot_record(&mut self, record: &SnapshotRecord) -> Result<Id> {
        let gen = self.gen.as_mut().expect("live writer");
        let id = gen.put_blob(Kind::Snapshot, &record.to_bytes())?;
        if self.snapshots.contains(&id) || gen.existing_lists_snapshot(&id)? {
            return Err(Error::InvalidInput(
                "an identical snapshot is already in the archive".into(),
            ));
        }
        gen.note_snapshot(id);
        self.snapshots.push(id);
        Ok(id)
    }

    /// Whether the snapshots this generation will list (the archive's
    /// snapshots so far and those added since) lists `id`.
    pub fn holds_snapshot(&self, id: &Id) -> bool {
        // A table that does not read fails the commit, which streams it.
        self.snapshots.contains(id)
            || self
                .gen
                .as_ref()
                .is_some_and(|g| g.existing_lists_snapshot(id).unwrap_or(false))
    }

    /// Sets what to leave out and how to walk when reading sources.
    pub fn set_create_policy(&mut self, policy: crate::fs::CreatePolicy) {
        self.policy = policy;
    }

    /// Reads `sources` (paths, or [`crate::fs::Source`]s with their own base
    /// directory) into a new snapshot.
    pub fn add_snapshot<S: Clone + Into<crate::fs::Source>>(
        &mut self,
        sources: &[S],
        meta: &SnapshotMeta,
        progress: &dyn Progress,
    ) -> Result<(Id, CreateOutcome)> {
        let sources: Vec<crate::fs::Source> = sources.iter().cloned().map(Into::into).collect();
        let paths: Vec<Vec<u8>> = sources
            .iter()
            .map(|s| std::os::unix::ffi::OsStrExt::as_bytes(s.path.as_os_str()).to_vec())
            .collect();
        let policy = self.policy.clone();
        let own = self.own_file.clone();
        let mut source = crate::fs::FsSource::new(&sources, &policy, &own);
        let existing = self.gen.as_ref().and_then(|g| g.existing().cloned());
        let parent = match &existing {
            Some(store) if !policy.force_read => parent_snapshot(store, &paths),
            _ => None,
        };
        let parent = parent.map(|root| crate::source::Parent {
            store: existing.as_deref().expect("parent from a store"),
            root,
        });
        self.add_snapshot_with_parent(&mut source, paths, meta, parent, progress)
    }

    /// Builds a new snapshot from any [`crate::source::EntrySource`] (an
    /// importer of another format, a generator); `paths` are recorded in the
    /// snapshot as its sources.
    pub fn add_snapshot_from(
        &mut self,
        source: &mut dyn crate::source::EntrySource,
        paths: Vec<Vec<u8>>,
        meta: &SnapshotMeta,
        progress: &dyn Progress,
    ) -> Result<(Id, CreateOutcome)> {
        self.add_snapshot_with_parent(source, paths, meta, None, progress)
    }

    fn add_snapshot_with_parent(
        &mut self,
        source: &mut dyn crate::source::EntrySource,
        paths: Vec<Vec<u8>>,
        meta: &SnapshotMeta,
        parent: Option<crate::source::Parent<'_>>,
        progress: &dyn Progress,
    ) -> Result<(Id, CreateOutcome)> {
        let start = self.clock();
        let t0 = std::time::Instant::now();
        let gen = self.gen.as_mut().expect("live writer");
        let before = gen.stats();
        let outcome =
            crate::source::build_with_parent(gen, &self.chunker, source, parent, progress)?;
        if source.nothing_found() {
            return Err(Error::NotFound(
                "none of the files named could be read; no snapshot was made".into(),
            ));
        }
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        // Write what is still being packed, so the counts below are whole.
        gen.flush()?;
        let after = gen.stats();
        let mut summary = outcome.summary;
        summary.new_blobs = after.blobs - before.blobs;
        summary.new_bytes = after.bytes - before.bytes;
        let record = SnapshotRecord {
            time_ns: start,
            duration_ns: if self.time_ns.is_some() {
                0
            } else {
                t0.elapsed().as_nanos() as u64
            },
            hostname: hostname(),
            username: std::env::var("USER").unwrap_or_default(),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            name: meta.name.clone(),
            command_line: meta.command_line.clone(),
            tags: meta.tags.clone(),
            paths,
            root: outcome.root,
            summary,
            errors: outcome.errors.clone(),
        };
        let id = self.add_snapshot_record(&record)?;
        Ok((id, outcome))
    }

    /// Writes the index run, snapshot run and footer: the generation is committed.
    ///
    /// On an error the archive is left as it was whenever that can be done
    /// (an append's new bytes truncated away, a new archive's temporary file
    /// removed) and the error says nothing was committed. When the footer
    /// may have reached the file and the new bytes cannot be taken back,
    /// the file is read back: if it ends in this generation's footer, the
    /// generation is committed and the error is [`Error::CommittedBut`];
    /// the same error reports a failure after the commit (making a new
    /// archive's directory entry durable).
    pub fn commit(mut self) -> Result<CommitInfo> {
        let gen = self.gen.take().expect("live writer");
        let stats = gen.stats();
        // The generation this commit writes (checkpoints may have
        // committed generations before it).
        let generation = gen.generation();
        let time = self.clock();
        let finished = gen.finish_reporting(
            &self.snapshots,
            self.keyslots.as_deref(),
            self.signer.as_ref(),
            time,
        );
        let footer = match finished {
            Ok((out, footer)) => {
                drop(out);
                footer
            }
            Err((e, footer)) => return Err(self.undo(e, footer.as_deref(), generation)),
        };
        let info = CommitInfo {
            generation,
            archive_len: footer.end,
            stats,
        };
        match std::mem::replace(&mut self.target, Target::Stream) {
            Target::Create {
                tmp,
                dest,
                held,
                replaced,
            } => {
                if let Err(e) = eintr(|| std::fs::rename(&tmp, &dest)) {
                    // The rename may have happened even so: look.
                    use std::os::unix::fs::MetadataExt;
                    let ours = held.metadata().ok().map(|m| (m.dev(), m.ino()));
                    let there = std::fs::symlink_metadata(&dest)
                        .ok()
                        .map(|m| (m.dev(), m.ino()));
                    if ours.is_none() || ours != there {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(Error::io_at(&dest, e));
                    }
                }
                drop(replaced);
                drop(held);
                let dir = dest
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let synced = eintr(|| File::open(dir)).and_then(|d| eintr(|| d.sync_all()));
                if let Err(e) = synced {
                    return Err(Error::CommittedBut {
                        generation,
                        source: Box::new(Error::io_at(
                            dir,
                            std::io::Error::new(
                                e.kind(),
                                format!("the directory could not be synced: {e}"),
                            ),
                        )),
                    });
                }
            }
            Target::Append { .. } | Target::Stream => {}
        }
        Ok(info)
    }

    /// After a failed commit: takes back what can be taken back, and says
    /// what state the archive is in.
    fn undo(
        &mut self,
        e: Error,
        footer: Option<&crate::store::Committed>,
        generation: u64,
    ) -> Error {
        match std::mem::replace(&mut self.target, Target::Stream) {
            Target::Create { tmp, .. } => {
                // Nothing is at the destination yet.
                let _ = std::fs::remove_file(tmp);
                e
            }
            Target::Append {
                file,
                committed,
                path,
            } => {
                let Some(footer) = footer else {
                    // No footer was written: readers see the previous
                    // generation whether or not the tail goes.
                    let _ = eintr(|| file.set_len(committed));
                    return e;
                };
                match eintr(|| file.set_len(committed)) {
                    Ok(()) => e,
                    Err(te) if footer_in_place(&file, footer) => Error::CommittedBut {
                        generation,
                        source: Box::new(Error::io_at(
                            &path,
                            std::io::Error::new(
                                te.kind(),
                                format!(
                                    "the commit reported an error ({e}) and the new generation could not be taken back ({te}); the file ends in its footer"
                                ),
                            ),
                        )),
                    },
                    // The tail has no valid footer: readers ignore it and
                    // the next append truncates it.
                    Err(_) => e,
                }
            }
            Target::Stream => e,
        }
    }
}

impl<W: Sink> Drop for Writer<W> {
    fn drop(&mut self) {
        // Not committed: leave no partial output behind.
        drop(self.gen.take());
        match std::mem::replace(&mut self.target, Target::Stream) {
            Target::Create { tmp, .. } => {
                let _ = std::fs::remove_file(tmp);
            }
            Target::Append {
                file, committed, ..
            } => {
                let _ = eintr(|| file.set_len(committed));
            }
            Target::Stream => {}
        }
    }
}

/// The root tree of the snapshot an append compares files with: the latest
/// one of the same source paths, else the latest one. Unchanged files are
/// recognised by device, inode, size and times, never by name alone, so a
/// parent of other paths can only cost the shortcut, not correctness.
fn parent_snapshot(store: &Store, paths: &[Vec<u8>]) -> Option<Id> {
    // Looking back this far is plenty for the shortcut, and bounds the
    // time spent on an archive whose table lists millions of snapshots.
    const LOOKED_AT: usize = 1 << 12;
    let mut latest = None;
    let table = store.snapshot_list();
    // The last pages, read once each, newest entry first.
    let recent: Vec<_> = table
        .iter_from(table.len().saturating_sub(LOOKED_AT))
        .map_while(std::result::Result::ok)
        .collect();
    for t in recent.iter().rev() {
        let Ok(b) = store.with_blob_at(&t.location, &t.id, Kind::Snapshot, <[u8]>::to_vec) else {
            continue;
        };
        let Ok(r) = SnapshotRecord::parse(&b) else {
            continue;
        };
        if r.paths == paths {
            return Some(r.root);
        }
        latest.get_or_insert(r.root);
    }
    latest
}

fn file_id(f: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
