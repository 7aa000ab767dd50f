//! ptar: a single-file, deduplicating, optionally encrypted, appendable archive.
//!
//! A `.ptar` file holds snapshots of directory trees. Files are cut into
//! chunks by content, each chunk stored once, compressed and optionally
//! encrypted; every generation appended ends in a footer that commits to
//! everything before it. The byte layout is specified in
//! `spec/ptar-format.md`; the [`format`](mod@format) module holds exactly
//! those layouts and nothing else.
//!
//! # To list an archive
//!
//! [`Archive::open`] reads the header, the footer chain and the indexes;
//! [`Archive::snapshots`] lists the snapshots, and [`Archive::walk`] visits
//! every entry of one, directories before their contents:
//!
//! ```
//! # fn main() -> ptar::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::create_dir_all(dir.path().join("src/docs"))?;
//! # std::fs::write(dir.path().join("src/docs/readme.txt"), "hello, archive\n")?;
//! # let path = dir.path().join("x.ptar");
//! # let mut w = ptar::Writer::create(&path, Default::default())?;
//! # let src = ptar::fs::Source { dir: dir.path().join("src"), path: ".".into() };
//! # w.add_snapshot(&[src], &Default::default(), &ptar::progress::NoProgress)?;
//! # w.commit()?;
//! use ptar::Archive;
//!
//! let archive = Archive::open(&path, None)?;
//! for snapshot in archive.snapshots()? {
//!     println!("{} {} files", snapshot.id.short(), snapshot.record.summary.files);
//! }
//! let latest = archive.snapshot("latest")?;
//! let mut names = Vec::new();
//! archive.walk(&latest, |path, entry| {
//!     names.push(String::from_utf8_lossy(path).into_owned());
//!     Ok(())
//! })?;
//! assert_eq!(names, ["docs", "docs/readme.txt"]);
//! # Ok(())
//! # }
//! ```
//!
//! # To read one file
//!
//! [`Archive::open_file`] gives a [`file::FileReader`], which implements
//! `Read + Seek` and reads in place: a seek then a read decodes just the
//! chunk under the position, however large the file and the archive.
//! [`Archive::lookup`] and [`Archive::metadata`] stat an entry by path,
//! [`Archive::read_dir_at`] lists a directory.
//!
//! ```
//! # fn main() -> ptar::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::create_dir_all(dir.path().join("src/docs"))?;
//! # std::fs::write(dir.path().join("src/docs/readme.txt"), "hello, archive\n")?;
//! # let path = dir.path().join("x.ptar");
//! # let mut w = ptar::Writer::create(&path, Default::default())?;
//! # let src = ptar::fs::Source { dir: dir.path().join("src"), path: ".".into() };
//! # w.add_snapshot(&[src], &Default::default(), &ptar::progress::NoProgress)?;
//! # w.commit()?;
//! use std::io::{Read, Seek, SeekFrom};
//!
//! let archive = ptar::Archive::open(&path, None)?;
//! let snapshot = archive.snapshot("latest")?;
//! let entry = archive.metadata(&snapshot, "docs/readme.txt")?;
//! assert_eq!(entry.size, 15);
//! let mut file = archive.open_file(&snapshot, "docs/readme.txt")?;
//! file.seek(SeekFrom::Start(7))?;
//! let mut word = String::new();
//! file.read_to_string(&mut word)?;
//! assert_eq!(word, "archive\n");
//! # Ok(())
//! # }
//! ```
//!
//! # To open an archive that is not a local file
//!
//! [`Archive::from_reader`] opens an archive over anything implementing
//! [`store::ReadAt`] (positional reads): bytes in memory, a file, or a
//! caller's type serving an object from a remote store. Only the header,
//! the last footer and the directories of the index and snapshot runs are
//! read at once; index pages and blob records are read when a file or
//! directory needs them. [`Archive`] is
//! `Send + Sync`: share one between threads.
//!
//! # To check an archive
//!
//! [`Archive::verify`] checks the structure, the footer chain, every run's
//! pages and signatures; with [`VerifyOptions::full`] it also decodes and re-hashes
//! every blob and names the files a damaged blob belongs to.
//! [`Archive::verify_with_progress`] reports progress through a
//! [`progress::Progress`].
//!
//! ```
//! # fn main() -> ptar::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::create_dir_all(dir.path().join("src"))?;
//! # std::fs::write(dir.path().join("src/a.txt"), "a")?;
//! # let path = dir.path().join("x.ptar");
//! # let mut w = ptar::Writer::create(&path, Default::default())?;
//! # let src = ptar::fs::Source { dir: dir.path().join("src"), path: ".".into() };
//! # w.add_snapshot(&[src], &Default::default(), &ptar::progress::NoProgress)?;
//! # w.commit()?;
//! let archive = ptar::Archive::open(&path, None)?;
//! let report = archive.verify(&ptar::VerifyOptions { full: true, ..Default::default() });
//! assert!(report.ok(), "{:?}", report.problems);
//! # Ok(())
//! # }
//! ```
//!
//! # To compare snapshots, or search them
//!
//! [`diff::diff`] walks two snapshots together and reports what was added,
//! removed, modified or changed only in its metadata, skipping every
//! subtree whose tree id is the same in both; [`find::find`] searches
//! snapshots for names matching shell patterns. Neither reads file data.
//!
//! # To convert between tar and ptar
//!
//! A tar stream is an [`source::EntrySource`] ([`tar::read::TarSource`],
//! from any `Read`, members in any order) and a snapshot can be handed to
//! an [`sink::EntrySink`] ([`tar::write::TarWriter`], a POSIX pax stream
//! to any `Write`):
//!
//! ```
//! # fn main() -> ptar::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::create_dir_all(dir.path().join("src/docs"))?;
//! # std::fs::write(dir.path().join("src/docs/readme.txt"), "hello, archive\n")?;
//! # let path = dir.path().join("x.ptar");
//! # let mut w = ptar::Writer::create(&path, Default::default())?;
//! # let src = ptar::fs::Source { dir: dir.path().join("src"), path: ".".into() };
//! # w.add_snapshot(&[src], &Default::default(), &ptar::progress::NoProgress)?;
//! # w.commit()?;
//! use ptar::progress::NoProgress;
//!
//! // A snapshot out as tar...
//! let archive = ptar::Archive::open(&path, None)?;
//! let mut tar = ptar::tar::write::TarWriter::new(Vec::new());
//! let failures = archive.export(&archive.snapshot("latest")?, &mut tar, &NoProgress)?;
//! assert!(failures.is_empty());
//! let tar_bytes = tar.finish()?;
//!
//! // ...and back in, as a snapshot of a new archive.
//! let copy = dir.path().join("copy.ptar");
//! let mut w = ptar::Writer::create(&copy, Default::default())?;
//! let mut source = ptar::tar::read::TarSource::new(tar_bytes.as_slice());
//! w.add_snapshot_from(&mut source, vec![b"-".to_vec()], &Default::default(), &NoProgress)?;
//! w.commit()?;
//! let copy = ptar::Archive::open(&copy, None)?;
//! let snapshot = copy.snapshot("latest")?;
//! assert_eq!(copy.metadata(&snapshot, "docs/readme.txt")?.size, 15);
//! # Ok(())
//! # }
//! ```
//!
//! # To write an archive
//!
//! Start a [`Writer`] with [`Writer::create`] or [`Writer::append`], add
//! snapshots of file-system paths with [`Writer::add_snapshot`] or of any
//! [`source::EntrySource`] with [`Writer::add_snapshot_from`], then
//! [`Writer::commit`]. Nothing is visible to readers until the commit; an
//! interrupted append leaves every earlier snapshot readable.
//!
//! # Errors
//!
//! Every function returns [`Result`] with the matchable [`Error`]: a
//! damaged archive is [`Error::Corrupt`] naming the [`Region`] (header,
//! frame offset, index run, blob...), a missing path [`Error::NotFound`],
//! a wrong passphrase [`Error::WrongPassphrase`]. The library never prints
//! and never exits: progress and per-file problems reach the caller through
//! [`progress::Progress`].
//!
//! # What is stable
//!
//! The modules documented here are the library's API. A few building
//! blocks (`chunker`, `codec`, `crypto`, `tree`) are public only so the
//! fuzz targets, benchmarks and test-vector generator can reach them; they
//! are hidden from these docs and may change in any release.
//!
//! `examples/` holds three small programs: `list`, `cat` and `verify`
//! (`cargo run -p ptar --example cat -- x.ptar docs/readme.txt`).

pub mod archive;
#[doc(hidden)]
pub mod chunker;
#[doc(hidden)]
pub mod codec;
#[doc(hidden)]
pub mod crypto;
pub mod diff;
pub mod error;
pub mod file;
pub mod find;
pub mod format;
pub mod fs;
pub mod pattern;
pub mod progress;
pub mod repair;
#[doc(hidden)]
pub mod retry;
pub mod signing;
pub mod sink;
pub mod source;
pub mod store;
pub mod sync;
pub mod tar;
#[doc(hidden)]
pub mod tree;
pub mod verify;
pub(crate) mod walk;

pub use archive::{
    probe, probe_file, Archive, CommitInfo, CreateOptions, Encryption, Snapshot, SnapshotMeta,
    Writer,
};
pub use error::{Error, Region, Result};
pub use format::header::{ChunkerParams, KdfParams};
pub use format::Id;
pub use store::{OpenOptions, TailKind};
pub use verify::{DamagedPath, VerifyOptions, VerifyReport};
