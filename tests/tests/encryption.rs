//! Encrypted archives: passphrases, confidentiality of names and content, keyed ids and cut points.

use std::collections::HashSet;
use std::path::Path;

use ptar::format::tree::{Extent, Payload};
use ptar::Archive;
use ptar_tests::{ptar_s, random_bytes};

const FAST_KDF: &str = "1024,1,1";

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("MARKER-DIRNAME-7f3a")).unwrap();
    let marker = b"MARKER-CONTENT-c0ffee-visible-only-inside ".repeat(2000);
    std::fs::write(root.join("MARKER-DIRNAME-7f3a/notes.txt"), &marker).unwrap();
    std::fs::write(root.join("random.bin"), random_bytes(b"enc", 2 << 20)).unwrap();
    std::os::unix::fs::symlink("MARKER-LINKTARGET-beef", root.join("link")).unwrap();
}

fn create(dir: &Path, name: &str, pass: &str) -> std::path::PathBuf {
    let archive = dir.join(name);
    let out = ptar_s(
        &[
            "-c",
            "--encrypt",
            "--kdf-params",
            FAST_KDF,
            "-f",
            archive.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
            "src",
        ],
        &[("PTAR_PASSPHRASE", pass)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    archive
}

#[test]
fn markers_never_appear_in_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    let archive = create(tmp.path(), "e.ptar", "right horse");
    let bytes = std::fs::read(&archive).unwrap();
    for marker in [
        &b"MARKER-CONTENT-c0ffee"[..],
        b"MARKER-DIRNAME-7f3a",
        b"MARKER-LINKTARGET-beef",
        b"notes.txt",
        b"right horse",
    ] {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{} is visible in the archive",
            String::from_utf8_lossy(marker)
        );
    }
    // Control: a plain archive does show the names.
    let plain = tmp.path().join("p.ptar");
    let out = ptar_s(
        &[
            "-c",
            "-f",
            plain.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "src",
        ],
        &[],
    );
    assert!(out.status.success());
    let pbytes = std::fs::read(&plain).unwrap();
    assert!(pbytes
        .windows(18)
        .any(|w| w == b"MARKER-DIRNAME-7f3a"[..18].as_ref()));
}

#[test]
fn wrong_passphrase_is_named_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    let archive = create(tmp.path(), "e.ptar", "right horse");
    let a = archive.to_str().unwrap();
    let out_dir = tmp.path().join("out");
    let out = ptar_s(
        &["-x", "-f", a, "-C", out_dir.to_str().unwrap()],
        &[("PTAR_PASSPHRASE", "wrong horse")],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out_dir.exists(), "extraction wrote something");

    let before = std::fs::read(&archive).unwrap();
    let out = ptar_s(
        &["-r", "-f", a, "-C", tmp.path().to_str().unwrap(), "src"],
        &[("PTAR_PASSPHRASE", "wrong horse")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        before,
        "a failed append changed the archive"
    );

    for args in [
        &["-t", "-f", a][..],
        &["--verify", "-f", a],
        &["snapshots", "-f", a],
    ] {
        let out = ptar_s(args, &[("PTAR_PASSPHRASE", "wrong horse")]);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
            "{args:?}"
        );
    }
    // No passphrase and no terminal: a clear message.
    let out = ptar_s(&["-t", "-f", a], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("passphrase"));
    // The right one works.
    let out = ptar_s(
        &["-x", "-f", a, "-C", out_dir.to_str().unwrap()],
        &[("PTAR_PASSPHRASE", "right horse")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(out_dir.join("src/random.bin")).unwrap(),
        random_bytes(b"enc", 2 << 20)
    );
}

#[test]
fn empty_passphrase_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    let archive = tmp.path().join("e.ptar");
    let out = ptar_s(
        &[
            "-c",
            "--encrypt",
            "-f",
            archive.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "src",
        ],
        &[("PTAR_PASSPHRASE", "")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty passphrase"));
    assert!(!archive.exists());
}

fn chunks_of(archive: &Path, pass: &str, file: &[u8]) -> (Vec<u64>, HashSet<ptar::Id>) {
    let a = Archive::open(archive, Some(pass.as_bytes())).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let mut lens = Vec::new();
    let mut ids = HashSet::new();
    a.walk(&s, |path, e| {
        if let Payload::File(c) = &e.payload {
            for x in a.extents(c, e.size)? {
                if let Extent::Data { len, id } = x {
                    ids.insert(id);
                    if path == file {
                        lens.push(len as u64);
                    }
                }
            }
        }
        Ok(())
    })
    .unwrap();
    (lens, ids)
}

#[test]
fn same_tree_gets_different_ids_and_cut_points_per_archive() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    let a1 = create(tmp.path(), "one.ptar", "same passphrase");
    let a2 = create(tmp.path(), "two.ptar", "same passphrase");
    let (l1, ids1) = chunks_of(&a1, "same passphrase", b"src/random.bin");
    let (l2, ids2) = chunks_of(&a2, "same passphrase", b"src/random.bin");
    assert!(l1.len() > 4 && l2.len() > 4);
    assert_eq!(l1.iter().sum::<u64>(), l2.iter().sum::<u64>());
    assert_ne!(l1, l2, "chunk boundaries must depend on the archive's key");
    assert!(
        ids1.is_disjoint(&ids2),
        "content ids must depend on the archive's key"
    );
}

#[test]
fn passphrase_change_and_addition_reencrypt_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    let archive = create(tmp.path(), "e.ptar", "old horse");
    let a = archive.to_str().unwrap();
    let before = std::fs::metadata(&archive).unwrap().len();
    let out = ptar_s(
        &["passwd", "--kdf-params", FAST_KDF, "-f", a],
        &[
            ("PTAR_PASSPHRASE", "old horse"),
            ("PTAR_NEW_PASSPHRASE", "new horse"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let growth = std::fs::metadata(&archive).unwrap().len() - before;
    assert!(
        growth < 4096,
        "changing the passphrase grew the archive by {growth} bytes"
    );
    let old = ptar_s(&["-t", "-f", a], &[("PTAR_PASSPHRASE", "old horse")]);
    assert!(String::from_utf8_lossy(&old.stderr).contains("wrong passphrase"));
    let new = ptar_s(&["-t", "-f", a], &[("PTAR_PASSPHRASE", "new horse")]);
    assert!(new.status.success());
    assert!(String::from_utf8_lossy(&new.stdout).contains("src/random.bin"));
    // --add keeps the current one working.
    let out = ptar_s(
        &["passwd", "--add", "--kdf-params", FAST_KDF, "-f", a],
        &[
            ("PTAR_PASSPHRASE", "new horse"),
            ("PTAR_NEW_PASSPHRASE", "third horse"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in ["new horse", "third horse"] {
        let out = ptar_s(&["--verify", "--full", "-f", a], &[("PTAR_PASSPHRASE", p)]);
        assert!(
            out.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = ptar_s(&["-t", "-f", a], &[("PTAR_PASSPHRASE", "old horse")]);
    assert!(!out.status.success());
}

/// Runs `ptar` with string arguments and a passphrase, its address space
/// limited to 1 GiB: an Argon2id derivation of a 2 GiB slot cannot run in
/// it (the allocation fails and the process aborts), so a clean exit with
/// ptar's own message proves that nothing was derived.
fn ptar_without_room_for_a_2_gib_slot(args: &[&str], pass: &str) -> std::process::Output {
    let mut script = String::from("ulimit -v 1048576 && exec \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(ptar_tests::ptar_bin())
        .args(args)
        .env("PTAR_PASSPHRASE", pass)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running ptar under sh")
}

#[test]
fn a_header_whose_slots_together_exceed_the_work_cap_is_refused_before_any_derivation() {
    use ptar::format::header::KdfParams;
    let tmp = tempfile::tempdir().unwrap();
    // 64 slots of 2 GiB and one pass: each within the per-slot caps
    // (m <= 2 GiB, t <= 16, p <= 16), 2^27 KiB·passes together, 16 times
    // the whole-set cap of 2^23.
    let mk = [7u8; 32];
    let slot_kdf = KdfParams {
        m_kib: 1 << 21,
        t: 1,
        p: 1,
    };
    assert!(slot_kdf.check_limits().is_ok());
    let mut h = ptar_tests::forge::header(Some((&mk, slot_kdf)));
    h.key_slots = vec![h.key_slots[0].clone(); 64];
    let keys = std::sync::Arc::new(ptar::crypto::Keys::from_master(zeroize::Zeroizing::new(mk)));
    let bytes = ptar_tests::forge::forge(&h, Some(keys), vec![]);
    let archive = tmp.path().join("hostile.ptar");
    std::fs::write(&archive, &bytes).unwrap();
    let a = archive.to_str().unwrap();
    // Control: the same limit leaves room for an ordinary command.
    make_tree(&tmp.path().join("src"));
    let plain = create(tmp.path(), "ok.ptar", "horse");
    let out = ptar_without_room_for_a_2_gib_slot(&["-t", "-f", plain.to_str().unwrap()], "horse");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        vec!["-t", "-f", a],
        vec!["snapshots", "-f", a],
        vec!["--verify", "-f", a],
    ] {
        let out = ptar_without_room_for_a_2_gib_slot(&args, "horse");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("excessive work"), "{args:?}: {err}");
        assert!(err.contains("64 key slot(s)"), "{args:?}: {err}");
        assert!(err.contains(&(64u64 << 21).to_string()), "{args:?}: {err}");
        assert!(err.contains("8388608"), "{args:?}: {err}");
        assert!(!err.contains("wrong passphrase"), "{args:?}: {err}");
    }
}

#[test]
fn passwd_refuses_a_key_slot_set_over_the_work_cap() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    let archive = create(tmp.path(), "e.ptar", "old horse");
    let a = archive.to_str().unwrap();
    let before = std::fs::read(&archive).unwrap();
    // 2 GiB and 4 passes is 2^23 KiB·passes, the cap: alone it fits, but
    // added to the slot in force the set is over.
    let out = ptar_without_room_for_a_2_gib_slot(
        &["passwd", "--add", "--kdf-params", "2097152,4,1", "-f", a],
        "old horse",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot add a key slot"), "{err}");
    assert!(err.contains("excessive work"), "{err}");
    assert!(err.contains(&((1u64 << 23) + 1024).to_string()), "{err}");
    assert!(err.contains("8388608"), "{err}");
    // A single slot over the cap is refused as the costs are parsed, even
    // though each cost is within its own bound.
    let out = ptar_s(
        &["passwd", "--kdf-params", "2097152,16,1", "-f", a],
        &[
            ("PTAR_PASSPHRASE", "old horse"),
            ("PTAR_NEW_PASSPHRASE", "new horse"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("excessive work"), "{err}");
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        before,
        "a refused passwd changed the archive"
    );
    // Control: adding a cheap slot to the same archive works.
    let out = ptar_s(
        &["passwd", "--add", "--kdf-params", FAST_KDF, "-f", a],
        &[
            ("PTAR_PASSPHRASE", "old horse"),
            ("PTAR_NEW_PASSPHRASE", "new horse"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
