//! `ptar`: the command-line archiver.
//!
//! `main` calls `run`, which returns the exit code: 0 success, 1 some file
//! changed while it was read, 2 a fatal error or per-file errors (reported
//! as they happen, prefixed `ptar: `, while work goes on).

mod cat;
mod cli;
mod commands;
mod diff;
mod json;
mod mount;
mod output;
mod passphrase;
mod sync;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().collect()) {
        Ok(cmd) => match commands::run(cmd) {
            Ok(code) => code,
            Err(e) => {
                if output::is_broken_pipe(&e) {
                    return ExitCode::SUCCESS;
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
