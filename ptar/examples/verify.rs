//! Checks an archive in full (every blob decoded and re-hashed), printing
//! progress, and exits 1 when it finds a problem.
//!
//! `cargo run -p ptar --example verify -- ARCHIVE`
//! (set `PTAR_PASSPHRASE` for an encrypted archive).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts the record bytes a full check has read, and prints each 64 MiB.
struct Dots(AtomicU64);

impl ptar::progress::Progress for Dots {
    fn bytes(&self, n: u64) {
        let before = self.0.fetch_add(n, Ordering::Relaxed);
        if (before + n) >> 26 != before >> 26 {
            eprint!(".");
        }
    }
}

fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let path = PathBuf::from(std::env::args().nth(1).ok_or("usage: verify ARCHIVE")?);
    let pass = std::env::var("PTAR_PASSPHRASE").ok();
    // A damaged newest footer is opened past, so that the report names it
    // (with what it loses) rather than the open failing.
    let opts = ptar::OpenOptions::new().allow_damaged_tail(true);
    let archive = ptar::Archive::open_with(&path, pass.as_deref().map(str::as_bytes), &opts)?;
    let progress = Dots(AtomicU64::new(0));
    let report = archive.verify_with_progress(
        &ptar::VerifyOptions {
            full: true,
            ..Default::default()
        },
        &progress,
    );
    eprintln!();
    println!(
        "{} generations, {} snapshots, {} bytes read",
        report.generations,
        report.snapshots,
        progress.0.load(Ordering::Relaxed)
    );
    for p in &report.problems {
        println!("problem: {p}");
    }
    for d in &report.damaged {
        println!("damaged: {}", String::from_utf8_lossy(&d.path));
    }
    Ok(std::process::ExitCode::from(u8::from(!report.ok())))
}
