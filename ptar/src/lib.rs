//! ptar: a single-file, deduplicating, optionally encrypted, appendable archive.
pub mod error;
pub mod format;

pub use error::{Error, Region, Result};
