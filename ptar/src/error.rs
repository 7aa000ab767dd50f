//! The library's error type: one matchable enum, no printing.

use std::fmt;
use std::path::PathBuf;

/// Where in the archive a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Region {
    /// The header at offset 0 (magic, version, parameters, key slots).
    Header,
    /// A generation's key-slot table.
    KeySlots { generation: u64 },
    /// A generation's index.
    Index { generation: u64 },
    /// A generation's snapshot run (its pages and directory).
    SnapshotTable { generation: u64 },
    /// A generation's footer.
    Footer { generation: u64 },
    /// Bytes after the last footer that could be a footer but do not verify.
    Tail { offset: u64 },
    /// A blob, found through the index, whose content does not decode or match its id.
    Blob { id: String, kind: &'static str },
    /// The frame at an absolute offset (spec §8.1).
    Frame { offset: u64 },
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Header => write!(f, "header"),
            Region::KeySlots { generation } => write!(f, "key slots (generation {generation})"),
            Region::Index { generation } => write!(f, "index run (generation {generation})"),
            Region::SnapshotTable { generation } => {
                write!(f, "snapshot run (generation {generation})")
            }
            Region::Footer { generation } => write!(f, "footer (generation {generation})"),
            Region::Tail { offset } => write!(f, "footer at end of file (offset {offset})"),
            Region::Blob { id, kind } => write!(f, "{kind} blob {id}"),
            Region::Frame { offset } => write!(f, "frame at offset {offset}"),
        }
    }
}

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not start with the ptar magic.
    #[error("not a ptar archive (the header does not start with the ptar magic)")]
    NotPtar,
    /// The archive's major version is not one this library reads.
    #[error("unknown format version {major}.{minor} in the header (this ptar reads major version {supported})")]
    UnsupportedVersion {
        major: u16,
        minor: u16,
        supported: u16,
    },
    /// The archive uses a feature this library does not implement.
    #[error("unsupported feature: {0}")]
    Unsupported(String),
    /// The archive is encrypted and no passphrase was given.
    #[error("the archive is encrypted: a passphrase is required")]
    PassphraseRequired,
    /// No key slot opens with the given passphrase.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A key slot demands more work than readers allow.
    #[error("key derivation parameters exceed the limits ({0})")]
    ExcessiveWork(String),
    /// Bytes do not match what the format or a commitment says.
    #[error("corrupt {region}: {detail}")]
    Corrupt { region: Region, detail: String },
    /// The archive ends in a damaged footer (spec §10.3): bytes
    /// `offset..end` end in something shaped like a footer that does not
    /// verify, so the generation written there is lost to readers. Opening
    /// is refused unless the caller allows the damaged tail
    /// ([`crate::store::OpenOptions::allow_damaged_tail`]), which reads
    /// `last_good_generation`.
    #[error(
        "damaged footer at the end of the archive: bytes {offset}..{end} ({} bytes after \
         generation {last_good_generation}, the last valid one) end in a footer that does not \
         verify ({detail}): the generation written there, and the snapshots it added, cannot be \
         read. Reading the last good generation ({last_good_generation}) must be asked for; to \
         append again, copy the file, then truncate it to {offset} bytes",
        .end - .offset
    )]
    DamagedTail {
        /// Offset just past the last valid footer.
        offset: u64,
        /// The file's length.
        end: u64,
        /// The newest generation that verifies.
        last_good_generation: u64,
        /// Why the footer-shaped end does not verify.
        detail: String,
    },
    /// A signature is missing, invalid, or made with another key.
    #[error("signature check failed: {0}")]
    Signature(String),
    /// Another process holds the archive's write lock.
    #[error("{}: archive is busy (another ptar is writing to it)", .0.display())]
    Busy(PathBuf),
    /// An extraction would write more than its budget allows (entries or
    /// bytes): the archive describes far more than it declares.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// A snapshot, path or blob asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller asked for something the library refuses.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A tar stream being imported is malformed, truncated or over a limit
    /// (see [`crate::tar::read`]): `offset` is the byte offset, in the
    /// stream, of the header concerned; `member` names the member when its
    /// header was read.
    #[error("tar input, header at byte {offset}{}: {detail}", .member.as_ref().map(|m| format!(" (member '{m}')")).unwrap_or_default())]
    TarInput {
        offset: u64,
        member: Option<String>,
        detail: String,
    },
    /// Creating an archive would replace an existing ptar archive (and
    /// discard its snapshots): refused unless the caller asks to replace it
    /// ([`crate::Writer::create_replacing`]). `snapshots` is the count its
    /// snapshot runs list, when they can be read without a passphrase;
    /// `generations` the count its last trailer gives.
    #[error("{}: is a ptar archive holding {}; creating would discard {}", .path.display(), match (.snapshots, .generations) { (Some(n), _) => format!("{n} snapshot(s)"), (None, Some(g)) => format!("{g} generation(s) (the snapshot count of an encrypted archive needs its passphrase)"), (None, None) => "an unknown number of snapshots (the count cannot be read)".to_string() }, if .snapshots == &Some(1) { "it" } else { "them" })]
    ArchiveExists {
        path: PathBuf,
        snapshots: Option<u64>,
        generations: Option<u64>,
    },
    /// The generation was committed (readers see it), but a step after the
    /// commit failed, for instance making the directory entry of a new
    /// archive durable.
    #[error("committed, but {source}")]
    CommittedBut {
        /// The generation committed.
        generation: u64,
        /// What failed after the commit.
        #[source]
        source: Box<Error>,
    },
    /// The caller asked, through [`crate::progress::Progress::cancelled`],
    /// for the operation to stop.
    #[error("interrupted")]
    Cancelled,
    /// An I/O error, with the path it concerns when there is one.
    #[error("{}{source}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Io {
        path: Option<PathBuf>,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn corrupt(region: Region, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            region,
            detail: detail.into(),
        }
    }

    pub(crate) fn io_at(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: Some(path.into()),
            source,
        }
    }

    /// The region named by a `Corrupt` error.
    pub fn region(&self) -> Option<&Region> {
        match self {
            Error::Corrupt { region, .. } => Some(region),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Error {
        Error::Io { path: None, source }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
