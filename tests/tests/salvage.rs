//! Salvage: when a record is damaged, `--verify --full` names every file it
//! takes with it, snapshot by snapshot, and extraction writes every other
//! file whole and names the one it skipped.

use std::path::{Path, PathBuf};

use ptar::format::tree::{Extent, Payload};
use ptar::fs::{ExtractOptions, Source};
use ptar::progress::NoProgress;
use ptar::store::writer::PackOptions;
use ptar::{Archive, CreateOptions, SnapshotMeta, VerifyOptions, Writer};
use ptar_tests::{ptar_s, random_bytes, read_tree};

fn operand(src: &Path) -> Source {
    Source {
        dir: src.parent().unwrap().to_path_buf(),
        path: PathBuf::from(src.file_name().unwrap()),
    }
}

/// Two snapshots of a tree of distinct files, one record per chunk (a small
/// record target), so that damaging one record damages one file.
fn build(dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..12 {
        let name = if i == 5 {
            "sub/victim.bin".to_string()
        } else {
            format!("file{i}.bin")
        };
        std::fs::write(src.join(name), random_bytes(&[i], 20_000 + i as usize)).unwrap();
    }
    let archive = dir.join("a.ptar");
    let opts = CreateOptions {
        pack: PackOptions {
            record_target: 1024,
            ..PackOptions::default()
        },
        ..CreateOptions::default()
    };
    let mut w = Writer::create(&archive, opts).unwrap();
    w.add_snapshot(&[operand(&src)], &SnapshotMeta::default(), &NoProgress)
        .unwrap();
    w.commit().unwrap();
    std::fs::write(src.join("added.txt"), "only in the second snapshot\n").unwrap();
    let mut w = Writer::append(&archive, None).unwrap();
    w.add_snapshot(&[operand(&src)], &SnapshotMeta::default(), &NoProgress)
        .unwrap();
    w.commit().unwrap();
    (archive, src)
}

/// The archive's bytes with one byte flipped in the middle of the record
/// holding the first chunk of `src/sub/victim.bin`.
fn damage_victim(archive: &Path) -> Vec<u8> {
    let a = Archive::open(archive, None).unwrap();
    let snap = a.find_snapshot("latest").unwrap();
    let mut chunk = None;
    a.walk(&snap, |path, e| {
        if path == b"src/sub/victim.bin" {
            if let Payload::File(content) = &e.payload {
                let extents = a.extents(content, e.size)?;
                if let Some(Extent::Data { id, .. }) = extents.first() {
                    chunk = Some(*id);
                }
            }
        }
        Ok(())
    })
    .unwrap();
    let chunk = chunk.expect("victim.bin has a chunk");
    let info = a.store().describe_blob(&chunk).unwrap().unwrap();
    assert_eq!(info.record_blobs, 1, "the chunk has its own record");
    let mut bytes = std::fs::read(archive).unwrap();
    let at = (info.location.offset + 4 + u64::from(info.location.body_len) / 2) as usize;
    bytes[at] ^= 0x10;
    bytes
}

#[test]
fn verify_names_every_damaged_file_and_extraction_saves_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, src) = build(tmp.path());
    let bytes = damage_victim(&archive);

    let a = Archive::from_vec(bytes.clone(), None).unwrap();
    let report = a.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
    assert!(!report.ok());
    // Both snapshots hold the file; nothing else is damaged.
    let snaps = a.snapshots().unwrap();
    assert_eq!(snaps.len(), 2);
    let mut damaged: Vec<_> = report
        .damaged
        .iter()
        .map(|d| (d.snapshot, d.path.clone()))
        .collect();
    damaged.sort();
    let mut want: Vec<_> = snaps
        .iter()
        .map(|s| (s.id, b"src/sub/victim.bin".to_vec()))
        .collect();
    want.sort();
    assert_eq!(damaged, want, "{:?}", report.damaged);
    assert!(report.damaged[0].problem.contains("chunk"));

    // Extraction writes every other file whole and names the one it skipped.
    let dest = tmp.path().join("out");
    let snap = a.find_snapshot("latest").unwrap();
    let out = a
        .extract(&snap, &dest, &ExtractOptions::default(), &NoProgress)
        .unwrap();
    let failed: Vec<_> = out.errors.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        failed,
        vec![b"src/sub/victim.bin".to_vec()],
        "{:?}",
        out.errors
    );
    let (mut want_tree, _) = read_tree(&src);
    want_tree.remove(b"sub/victim.bin".as_slice());
    let (got_tree, _) = read_tree(&dest.join("src"));
    assert_eq!(got_tree, want_tree);

    // The CLI lists the damaged paths and fails.
    let broken = tmp.path().join("broken.ptar");
    std::fs::write(&broken, &bytes).unwrap();
    let v = ptar_s(&["--verify", "--full", "-f", broken.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("damaged: 2 path(s)"), "{stdout}");
    assert_eq!(stdout.matches("src/sub/victim.bin").count(), 2, "{stdout}");
    let j = ptar_s(
        &[
            "--verify",
            "--full",
            "--json",
            "-f",
            broken.to_str().unwrap(),
        ],
        &[],
    );
    let jout = String::from_utf8_lossy(&j.stdout);
    assert_eq!(
        jout.lines()
            .filter(|l| l.contains("\"message_type\":\"damaged\""))
            .count(),
        2,
        "{jout}"
    );
    assert!(jout.contains("\"damaged_paths\":2"), "{jout}");

    let x = ptar_s(
        &[
            "-x",
            "-f",
            broken.to_str().unwrap(),
            "-C",
            tmp.path().join("cli-out").to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&x.stderr);
    assert_eq!(x.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("src/sub/victim.bin"), "{stderr}");
    assert!(
        stderr.contains("1 entries could not be extracted"),
        "{stderr}"
    );
    assert_eq!(read_tree(&tmp.path().join("cli-out/src")).0, want_tree);

    // The pristine archive lists nothing.
    let clean = Archive::open(&archive, None)
        .unwrap()
        .verify(&VerifyOptions {
            full: true,
            trusted_key: None,
        });
    assert!(clean.ok() && clean.damaged.is_empty());
}
