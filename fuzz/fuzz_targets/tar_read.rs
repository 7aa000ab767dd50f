//! Tar import (`ptar::tar::read::TarSource`, and the snapshot builder's
//! any-order path in `ptar::source`): the input is a tar stream, built into
//! a snapshot of an in-memory archive, committed, opened again and walked.
//! Nothing may panic; when the stream is accepted, the snapshot must walk,
//! hold exactly the entry counts its summary declares (extraction budgets
//! rely on them), resolve every file's extents to its size, and every hard
//! link must name a regular file with several names that comes before it.
#![no_main]

use std::io::Write;
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use ptar::codec::Compression;
use ptar::crypto::SeededEntropy;
use ptar::format::header::ChunkerParams;
use ptar::format::tree::{EntryType, Payload};
use ptar::progress::NoProgress;
use ptar::store::writer::PackOptions;
use ptar::tar::read::TarSource;
use ptar::{Archive, CreateOptions, SnapshotMeta, Writer};

/// An archive file in memory that outlives the writer.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ptar::store::Sink for Shared {}

fuzz_target!(|data: &[u8]| {
    let file = Shared::default();
    let opts = CreateOptions {
        chunker: ChunkerParams {
            min: 64,
            avg: 256,
            max: 1024,
        },
        entropy: Box::new(SeededEntropy::new(b"tar_read")),
        time_ns: Some(1_700_000_000_000_000_000),
        pack: PackOptions {
            compression: Compression::None,
            record_target: 4096,
            threads: 0,
        },
        ..CreateOptions::default()
    };
    let mut w = Writer::create_stream(file.clone(), opts).expect("create");
    let mut src = TarSource::new(data);
    let Ok((_, outcome)) = w.add_snapshot_from(
        &mut src,
        vec![b"fuzz".to_vec()],
        &SnapshotMeta::default(),
        &NoProgress,
    ) else {
        return;
    };
    w.commit().expect("commit");
    let bytes = std::mem::take(&mut *file.0.lock().expect("lock"));
    let a = Archive::from_vec(bytes, None).expect("a committed archive opens");
    let snap = a.find_snapshot("latest").expect("the snapshot");
    let s = &snap.record.summary;
    assert_eq!(s.files, outcome.summary.files);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut files_with_links: std::collections::HashSet<Vec<u8>> = Default::default();
    let (mut files, mut dirs, mut symlinks, mut hardlinks, mut others, mut total) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    a.walk(&snap, |path, e| {
        if let Some(prev) = seen.last() {
            assert_ne!(prev.as_slice(), path, "a path listed twice");
        }
        seen.push(path.to_vec());
        match (&e.kind, &e.payload) {
            (EntryType::File, Payload::File(c)) => {
                files += 1;
                total += e.size;
                let covered: u64 = a.extents(c, e.size)?.iter().map(|x| x.len()).sum();
                assert_eq!(covered, e.size, "extents add up to the size");
                if e.nlink > 1 {
                    files_with_links.insert(path.to_vec());
                }
            }
            (EntryType::Dir, _) => dirs += 1,
            (EntryType::Symlink, _) => symlinks += 1,
            (EntryType::Hardlink, Payload::Hardlink(t)) => {
                hardlinks += 1;
                assert!(
                    files_with_links.contains(t),
                    "a hard link names a regular file with other names before it"
                );
            }
            _ => others += 1,
        }
        Ok(())
    })
    .expect("the snapshot walks");
    assert_eq!(
        (files, dirs, symlinks, hardlinks, others, total),
        (
            s.files,
            s.dirs,
            s.symlinks,
            s.hardlinks,
            s.others,
            s.total_size
        ),
        "the summary counts what the snapshot holds"
    );
});
