//! A stand-in for another program that reads `.ptar` archives: it uses
//! nothing but the `ptar` library's public API. Given an archive and the
//! directory it was made from, it reads every regular file of a snapshot at
//! seeded random offsets (seek, then read) from several threads sharing one
//! [`Archive`], and compares each read with the original file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use ptar::format::tree::EntryType;
use ptar::{Archive, Snapshot};

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Regular files (and hard links) read.
    pub files: u64,
    /// Reads made.
    pub reads: u64,
    /// Bytes read and compared.
    pub bytes: u64,
    /// Reads that differed from the original: (path, offset, detail).
    pub mismatches: Vec<(String, u64, String)>,
}

/// A small seeded generator (xorshift64*), so runs repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Reads every regular file of `snapshot` at `reads` random offsets each
/// (always including the first and the last byte), in random lengths up to
/// 256 KiB, with `threads` threads, and compares with the file under `dir`.
pub fn check_random_reads(
    archive: &Archive,
    snapshot: &Snapshot,
    dir: &Path,
    reads: usize,
    threads: usize,
    seed: u64,
) -> ptar::Result<Report> {
    let mut files = Vec::new();
    archive.walk(snapshot, |path, entry| {
        if matches!(entry.kind, EntryType::File | EntryType::Hardlink) {
            files.push((path.to_vec(), entry.clone()));
        }
        Ok(())
    })?;
    let report = Mutex::new(Report::default());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for t in 0..threads.max(1) {
            let (files, report, next) = (&files, &report, &next);
            s.spawn(move || loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some((path, entry)) = files.get(i) else {
                    return;
                };
                let name = String::from_utf8_lossy(path).into_owned();
                let mut rng =
                    Rng(seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ t as u64);
                let got = read_one(archive, snapshot, dir, path, entry, reads, &mut rng);
                let mut r = report.lock().unwrap();
                r.files += 1;
                match got {
                    Ok((n, bytes, bad)) => {
                        r.reads += n;
                        r.bytes += bytes;
                        r.mismatches
                            .extend(bad.into_iter().map(|(o, d)| (name.clone(), o, d)));
                    }
                    Err(e) => r.mismatches.push((name, 0, e.to_string())),
                }
            });
        }
    });
    Ok(report.into_inner().unwrap())
}

/// One file's reads, bytes, and mismatches as (offset, detail).
type FileResult = (u64, u64, Vec<(u64, String)>);

/// Reads one file at random offsets and compares with the original.
fn read_one(
    archive: &Archive,
    snapshot: &Snapshot,
    dir: &Path,
    path: &[u8],
    entry: &ptar::format::tree::Entry,
    reads: usize,
    rng: &mut Rng,
) -> ptar::Result<FileResult> {
    let original = File::open(dir.join(std::ffi::OsStr::from_bytes(path)))?;
    let size = original.metadata()?.len();
    let mut reader = archive.file_reader(snapshot, entry)?;
    let mut bad = Vec::new();
    if reader.len() != size {
        bad.push((
            0,
            format!("length {} in the archive, {size} on disk", reader.len()),
        ));
        return Ok((0, 0, bad));
    }
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut offsets = vec![0, size.saturating_sub(1)];
    offsets.extend((0..reads).map(|_| rng.below(size)));
    for off in offsets {
        let want_len = (1 + rng.below(256 * 1024)).min(size - off.min(size)) as usize;
        let mut got = vec![0u8; want_len];
        reader.seek(SeekFrom::Start(off))?;
        reader.read_exact(&mut got)?;
        let mut want = vec![0u8; want_len];
        original.read_exact_at(&mut want, off)?;
        n += 1;
        bytes += want_len as u64;
        if got != want {
            let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
            bad.push((off, format!("{want_len} bytes differ from byte {at} on")));
        }
    }
    // Past the end: nothing more.
    reader.seek(SeekFrom::End(0))?;
    if reader.read(&mut [0u8; 16])? != 0 {
        bad.push((size, "bytes after the end".into()));
    }
    Ok((n, bytes, bad))
}
