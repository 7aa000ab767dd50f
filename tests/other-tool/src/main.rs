//! `ptar-other-tool ARCHIVE DIR [SNAPSHOT]`: reads every file of a snapshot
//! (the latest by default) at random offsets and compares with DIR.
//! Exit 0 when everything matches, 1 on a mismatch, 2 on an error.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: ptar-other-tool ARCHIVE DIR [SNAPSHOT]");
        return ExitCode::from(2);
    }
    let pass = std::env::var("PTAR_PASSPHRASE").ok();
    let run = || -> ptar::Result<ptar_other_tool::Report> {
        let archive =
            ptar::Archive::open(&PathBuf::from(&args[1]), pass.as_deref().map(str::as_bytes))?;
        let snapshot = archive.snapshot(args.get(3).map_or("latest", String::as_str))?;
        ptar_other_tool::check_random_reads(&archive, &snapshot, &PathBuf::from(&args[2]), 16, 4, 1)
    };
    match run() {
        Ok(r) => {
            println!(
                "{} files, {} reads, {} bytes, {} mismatches",
                r.files,
                r.reads,
                r.bytes,
                r.mismatches.len()
            );
            for (p, o, d) in &r.mismatches {
                eprintln!("ptar-other-tool: {p} at {o}: {d}");
            }
            ExitCode::from(u8::from(!r.mismatches.is_empty()))
        }
        Err(e) => {
            eprintln!("ptar-other-tool: {e}");
            ExitCode::from(2)
        }
    }
}
