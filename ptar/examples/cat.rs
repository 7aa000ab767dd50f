//! Writes one file of an archive to standard output, read in place: with an
//! offset, only the chunks from there on are read.
//!
//! `cargo run -p ptar --example cat -- ARCHIVE PATH [OFFSET]`
//! (set `PTAR_PASSPHRASE` for an encrypted archive).

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: cat ARCHIVE PATH [OFFSET]";
    let path = PathBuf::from(args.next().ok_or(usage)?);
    let member = args.next().ok_or(usage)?;
    let offset: u64 = args.next().map(|o| o.parse()).transpose()?.unwrap_or(0);
    let pass = std::env::var("PTAR_PASSPHRASE").ok();
    let archive = ptar::Archive::open(&path, pass.as_deref().map(str::as_bytes))?;
    let snapshot = archive.snapshot("latest")?;
    let mut file = archive.open_file(&snapshot, &member)?;
    file.seek(SeekFrom::Start(offset))?;
    std::io::copy(&mut file, &mut std::io::stdout().lock())?;
    Ok(())
}
