//! Retrying system calls that a signal interrupted.
//!
//! A signal arriving during a slow system call can make it fail with
//! `EINTR` even when the process handles the signal and means to go on (a
//! progress redraw, SIGCHLD, a debugger, a fault injector). The standard
//! library retries `read`, `write` and their `_all`/`_exact` forms, but not
//! `open`, `rename`, `fsync`, `ftruncate` or `flock`: every such call that
//! ptar makes goes through [`eintr`], so an interrupted call is made again
//! instead of failing a file or a commit.

use std::io;

/// How many times one call is retried before `EINTR` is reported: a bound,
/// so a process that is being interrupted without pause still ends.
const MAX_RETRIES: usize = 1000;

/// Calls `f` until it does not fail with [`io::ErrorKind::Interrupted`].
pub fn eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < MAX_RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// [`eintr`] for calls that return a `rustix` result.
pub fn eintr_rustix<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) if tries < MAX_RETRIES => tries += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_interrupted_calls_and_passes_other_errors() {
        let mut n = 0;
        let r = eintr(|| {
            n += 1;
            if n < 3 {
                Err(io::Error::from(io::ErrorKind::Interrupted))
            } else {
                Ok(n)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: io::Result<()> = eintr(|| {
            calls += 1;
            Err(io::Error::from_raw_os_error(5))
        });
        assert_eq!(r.unwrap_err().raw_os_error(), Some(5));
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r: io::Result<()> = eintr(|| {
            calls += 1;
            Err(io::Error::from(io::ErrorKind::Interrupted))
        });
        assert!(r.is_err());
        assert_eq!(calls, MAX_RETRIES + 1);
        let r = eintr_rustix(|| Err::<(), _>(rustix::io::Errno::IO));
        assert_eq!(r.unwrap_err(), rustix::io::Errno::IO);
    }
}
