//! The store: blob records, indexes, snapshot tables and footers in one file.
//!
//! [`reader::Store`] opens an archive read-only over a memory map;
//! [`writer::GenerationWriter`] appends one generation to any byte sink.

pub mod reader;
pub mod tail;
pub mod writer;

pub use reader::{Generation, ReadAt, SnapshotTable, Store, TableIter};
pub use tail::{OpenOptions, Tail, TailKind};
pub use writer::{GenerationWriter, Sink};
