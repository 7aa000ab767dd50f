//! Lists an archive: every snapshot, then every entry of the chosen one.
//!
//! `cargo run -p ptar --example list -- ARCHIVE [SNAPSHOT]`
//! (set `PTAR_PASSPHRASE` for an encrypted archive).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: list ARCHIVE [SNAPSHOT]")?);
    let selector = args.next().unwrap_or_else(|| "latest".into());
    let pass = std::env::var("PTAR_PASSPHRASE").ok();
    let archive = ptar::Archive::open(&path, pass.as_deref().map(str::as_bytes))?;
    for s in archive.snapshots()? {
        println!(
            "snapshot {} (generation {}): {} files, {} bytes",
            s.id.short(),
            s.generation,
            s.record.summary.files,
            s.record.summary.total_size
        );
    }
    let snapshot = archive.snapshot(&selector)?;
    archive.walk(&snapshot, |path, entry| {
        println!(
            "{} {:o} {:>10} {}",
            entry.kind.letter(),
            entry.mode,
            entry.size,
            String::from_utf8_lossy(path)
        );
        Ok(())
    })?;
    Ok(())
}
