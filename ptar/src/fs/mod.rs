//! The file-system side: reading a tree of files into a snapshot, and
//! extracting a snapshot into a directory.

pub mod compare;
pub mod create;
pub mod extract;
pub(crate) mod owners;

pub use compare::{compare, Difference};
pub use create::{CreateOutcome, CreatePolicy, FsSource, Source};
pub use extract::{extract, Existing, ExtractOptions, ExtractOutcome, FsSink, Selection};
