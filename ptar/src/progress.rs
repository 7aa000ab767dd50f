//! Progress and per-entry reports: the library calls, the caller draws.

use crate::format::tree::Entry;

/// Receives progress from long operations. Every method has a no-op default.
pub trait Progress: Sync {
    /// An entry is being stored or extracted; `path` is relative to the
    /// snapshot root. Directories are reported before their contents.
    fn entry(&self, _path: &[u8], _entry: &Entry) {}
    /// `n` more bytes of file content were processed.
    fn bytes(&self, _n: u64) {}
    /// A problem with one entry; work goes on.
    fn warning(&self, _path: &[u8], _message: &str) {}
    /// A notice about one entry that is not a failure ("socket ignored",
    /// "removing leading '/' from member names"). By default it is reported
    /// as a [`Progress::warning`].
    fn notice(&self, path: &[u8], message: &str) {
        self.warning(path, message)
    }
    /// Whether the caller wants the operation stopped (the user pressed
    /// Ctrl-C, a signal arrived). Long operations ask between entries and
    /// between blocks of data; when it says yes they stop with
    /// [`crate::Error::Cancelled`], leaving what they write as an error
    /// would (nothing committed, no temporary files).
    fn cancelled(&self) -> bool {
        false
    }
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
