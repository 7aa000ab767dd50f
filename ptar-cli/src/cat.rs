//! `ptar cat`: files of a snapshot on standard output, read in place.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use ptar::format::tree::{Entry, Payload};
use ptar::{Archive, Snapshot};

/// Symlinks followed at most, as the kernel's limit on nested links.
const MAX_LINKS: usize = 40;

/// The entry a member path names, following symlinks whose targets stay
/// inside the snapshot.
fn resolve(archive: &Archive, snap: &Snapshot, path: &[u8]) -> Result<Entry, String> {
    let mut path = path.to_vec();
    for _ in 0..=MAX_LINKS {
        let entry = archive
            .lookup(snap, &path)
            .map_err(|e| e.to_string())?
            .ok_or("no such member in the snapshot")?;
        let Payload::Symlink(target) = &entry.payload else {
            return Ok(entry);
        };
        if target.starts_with(b"/") {
            return Err(format!(
                "is a symbolic link to an absolute path ({}), outside the snapshot",
                String::from_utf8_lossy(target)
            ));
        }
        // The target, relative to the link's directory, with `..` resolved
        // by name: it may not climb above the snapshot root.
        let mut parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        parts.pop();
        for c in target.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err("is a symbolic link leading outside the snapshot".into());
                    }
                }
                c => parts.push(c),
            }
        }
        path = parts.join(&b'/');
    }
    Err("too many levels of symbolic links".into())
}

/// Writes each member to `out`; a member that cannot be read is reported
/// and the others still written. Errors writing `out` end the command.
pub fn cat(
    file: &Path,
    selector: &str,
    from: crate::commands::ReadFrom<'_>,
    paths: &[PathBuf],
) -> Result<ExitCode> {
    let archive = crate::commands::open_archive(file, from)?;
    let snap = archive.snapshot(selector)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut failed = false;
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        let name = p.as_os_str().as_bytes();
        let shown = String::from_utf8_lossy(name);
        let entry = match resolve(&archive, &snap, name) {
            Ok(e) => e,
            Err(msg) => {
                eprintln!("ptar: {shown}: {msg}");
                failed = true;
                continue;
            }
        };
        if matches!(entry.payload, Payload::Dir(_)) {
            eprintln!("ptar: {shown}: is a directory");
            failed = true;
            continue;
        }
        let mut reader = match archive.file_reader(&snap, &entry) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ptar: {shown}: {e}");
                failed = true;
                continue;
            }
        };
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    eprintln!("ptar: {shown}: {e}");
                    failed = true;
                    break;
                }
            };
            out.write_all(&buf[..n])?;
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
