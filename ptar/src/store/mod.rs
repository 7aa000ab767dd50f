//! The store: frames of blob records, index and snapshot runs, and footers in one file.
//!
//! [`reader::Store`] opens an archive read-only with positional reads;
//! [`writer::GenerationWriter`] appends one generation to any byte sink.

pub mod reader;
pub mod tail;
pub mod writer;

pub use reader::{BlobInfo, GenerationSpan, ReadAt, Run, SnapshotIter, SnapshotList, Store};
pub use tail::{OpenOptions, Tail, TailKind};
pub use writer::{Committed, GenerationWriter, Sink};
