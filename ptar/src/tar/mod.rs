//! Tar interoperability: any tar stream becomes a snapshot ([`read`](mod@read)), and
//! any snapshot becomes a POSIX pax tar stream ([`write`](mod@write)).
//!
//! Both go through the crate's own traits: the reader is an
//! [`crate::source::EntrySource`], the writer an [`crate::sink::EntrySink`].

pub mod read;
pub mod write;
