//! `ptar repair` (spec §15.6): a newest footer damaged only in its trailer
//! is rebuilt from its manifest, byte for byte as it was; any other damage
//! is refused and nothing is written.

use std::path::Path;

use ptar::format::manifest::TRAILER_LEN;
use ptar_tests::{append_snapshot, create_snapshot, ptar_s};

fn two_generations(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "first\n").unwrap();
    let archive = dir.join("a.ptar");
    create_snapshot(&archive, &src, ptar::CreateOptions::default());
    std::fs::write(src.join("b.txt"), "second\n").unwrap();
    append_snapshot(&archive, &src, None);
    archive
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_damaged_trailer_is_rebuilt_from_its_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = two_generations(tmp.path());
    let pristine = std::fs::read(&archive).unwrap();
    for at in [0, 40, 100, 150, TRAILER_LEN - 1] {
        let mut b = pristine.clone();
        let n = b.len();
        b[n - TRAILER_LEN + at] ^= 0x04;
        std::fs::write(&archive, &b).unwrap();
        // Readers refuse it as damage.
        let o = ptar_s(&["snapshots", "-f", s(&archive)], &[]);
        assert_eq!(o.status.code(), Some(2), "byte {at}");
        // Without --yes: says what it would restore, writes nothing.
        let o = ptar_s(&["repair", "-f", s(&archive)], &[]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "byte {at}: {out}");
        assert!(out.contains("2 snapshot(s) listed instead of 1"), "{out}");
        assert_eq!(std::fs::read(&archive).unwrap(), b, "a dry run wrote");
        // With --yes: the archive is as it was before the damage.
        let o = ptar_s(&["repair", "--yes", "-f", s(&archive)], &[]);
        assert_eq!(o.status.code(), Some(0), "byte {at}");
        assert!(
            std::fs::read(&archive).unwrap() == pristine,
            "byte {at}: the repaired archive differs from the original"
        );
    }
    let o = ptar_s(&["--verify", "--full", "-f", s(&archive)], &[]);
    assert_eq!(o.status.code(), Some(0));
    // An intact archive: nothing to do.
    let o = ptar_s(&["repair", "--yes", "-f", s(&archive)], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing to repair"));
}

#[test]
fn damage_beyond_the_trailer_is_not_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = two_generations(tmp.path());
    let pristine = std::fs::read(&archive).unwrap();
    let a = ptar::Archive::open(&archive, None).unwrap();
    let newest = *a.store().generation_spans().unwrap().last().unwrap();
    drop(a);
    // The trailer and, with it, a byte of the manifest or of a record.
    for other in [newest.manifest + 20, newest.start + 10] {
        let mut b = pristine.clone();
        let n = b.len();
        b[n - 100] ^= 0x01;
        b[other as usize] ^= 0x01;
        std::fs::write(&archive, &b).unwrap();
        let o = ptar_s(&["repair", "--yes", "-f", s(&archive)], &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("cannot repair"), "{err}");
        assert_eq!(
            std::fs::read(&archive).unwrap(),
            b,
            "a refused repair wrote"
        );
    }
}
