//! `peak-rss OUT CMD [ARGS...]`: runs CMD with ARGS (standard streams
//! inherited), writes its peak resident memory in bytes to the file OUT,
//! and exits with its exit status (128 + N when killed by signal N).
//!
//! The figure is the kernel's for that one child (`wait4`). It is taken in
//! a process of its own because a child's peak counts the memory of the
//! process it was forked from, up to its exec: a test process that has
//! built a large archive would count in the figure of every child it
//! started directly.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), Some(cmd)) = (args.next(), args.next()) else {
        eprintln!("usage: peak-rss OUT CMD [ARGS...]");
        return ExitCode::from(125);
    };
    let child = match Command::new(&cmd).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peak-rss: {}: {e}", cmd.to_string_lossy());
            return ExitCode::from(125);
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data that wait4 fills in; it is zeroed
    // first so it is never read uninitialised.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std's `Child` is
        // never waited on); the pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            eprintln!("peak-rss: wait4: {e}");
            return ExitCode::from(125);
        }
    }
    drop(child);
    // ru_maxrss is in KiB on Linux.
    let bytes = usage.ru_maxrss as u64 * 1024;
    if let Err(e) = std::fs::write(&out, format!("{bytes}\n")) {
        eprintln!("peak-rss: {}: {e}", out.to_string_lossy());
        return ExitCode::from(125);
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    ExitCode::from(code as u8)
}
