//! Writing a snapshot as a POSIX pax tar stream.
