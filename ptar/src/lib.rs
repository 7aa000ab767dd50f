//! ptar: a single-file, deduplicating, optionally encrypted, appendable archive.
//!
//! To read an archive, open it with [`Archive::open`], list its snapshots
//! with [`Archive::snapshots`], walk one with [`Archive::walk`], or extract
//! it with [`Archive::extract`]. To write one, start a [`Writer`] with
//! [`Writer::create`] or [`Writer::append`], add snapshots with
//! [`Writer::add_snapshot`], and [`Writer::commit`].
//!
//! The byte layout is specified in `spec/ptar-format.md`; the [`format`](mod@format)
//! module holds exactly those layouts and nothing else. The library never
//! prints: progress and per-file problems reach the caller through
//! [`progress::Progress`].

pub mod archive;
pub mod chunker;
pub mod codec;
pub mod crypto;
pub mod error;
pub mod format;
pub mod fs;
pub mod pattern;
pub mod progress;
pub mod signing;
pub mod sink;
pub mod source;
pub mod store;
pub mod sync;
pub mod tar;
pub mod tree;
pub mod verify;

pub use archive::{
    probe, probe_file, Archive, CommitInfo, CreateOptions, Encryption, Snapshot, SnapshotMeta,
    Writer,
};
pub use error::{Error, Region, Result};
pub use format::header::{ChunkerParams, KdfParams};
pub use format::Id;
pub use verify::{DamagedPath, VerifyOptions, VerifyReport};
