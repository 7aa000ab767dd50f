//! `ptar`: the command-line archiver.
//!
//! `main` calls `run`, which returns the exit code. Reading commands: 0
//! success, 1 some file changed while it was read (or, with `-d`, differs),
//! 2 a fatal error or per-file errors (reported as they happen, prefixed
//! `ptar: `, while work goes on). Writing commands say what state the
//! archive is in: 0 or 1 committed, 2 not committed (the archive as it
//! was), 3 committed, but with files that could not be read or a failure
//! after the commit. A SIGINT, SIGTERM or SIGHUP that stops a command ends
//! the process by the same signal, after the command has undone its work.

// `eprintln!` and `println!` of the standard library panic when the write
// fails ("failed printing to stderr"): with `2>/dev/full`, or a closed pipe,
// a diagnostic printed after a commit turned a committed archive into exit
// 101. These two, defined before the modules so that they shadow the
// standard ones everywhere in this crate, drop a line that cannot be
// written: a lost message must not change what was done or the exit code.
// Output that *is* the result (listings, tar streams) is written with
// `write!` and its errors are handled where it is written.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

macro_rules! println {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout(), $($arg)*);
    }};
}

mod cat;
mod cli;
mod commands;
mod diff;
mod json;
mod mount;
mod output;
mod passphrase;
mod signals;
mod sync;

use std::process::ExitCode;

fn main() -> ExitCode {
    signals::install();
    match cli::parse(std::env::args_os().collect()) {
        Ok(cmd) => match commands::run(cmd) {
            Ok(code) => code,
            Err(e) => {
                if output::is_broken_pipe(&e) {
                    return ExitCode::SUCCESS;
                }
                if let Some(sig) = signals::received() {
                    // Stopped by the user: what the command wrote was
                    // undone as on any error; end by the same signal.
                    if e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<ptar::Error>(),
                            Some(ptar::Error::Cancelled)
                        )
                    }) {
                        signals::die_by(sig);
                    }
                }
                eprintln!("ptar: {}", output::describe(&e));
                ExitCode::from(2)
            }
        },
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            ExitCode::from(code)
        }
    }
}
