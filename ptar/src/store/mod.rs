//! The store: frames of blob records, index and snapshot runs, and footers in one file.
//!
//! [`reader::Store`] opens an archive read-only with positional reads;
//! [`writer::GenerationWriter`] appends one generation to any byte sink.

pub mod reader;
pub mod writer;

pub use reader::{
    BlobInfo, GenerationSpan, OpenOptions, ReadAt, Run, SnapshotIter, SnapshotList, Store, Tail,
};
pub use writer::{Committed, GenerationWriter, Sink};
