//! Two writers at once: the archive's exclusive lock lets exactly one
//! append through; the other fails at once with "busy" and changes nothing.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use ptar::progress::NoProgress;
use ptar::{Archive, SnapshotMeta, Writer};
use ptar_tests::{ptar_bin, random_bytes};

fn append_cmd(archive: &Path, base: &Path) -> Command {
    let mut c = Command::new(ptar_bin());
    c.arg("-r")
        .arg("-f")
        .arg(archive)
        .arg("-C")
        .arg(base)
        .arg("tree")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("PTAR_PASSPHRASE");
    c
}

fn setup(base: &Path, archive: &Path) {
    let src = base.join("tree");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..50 {
        std::fs::write(
            src.join(format!("sub/f{i:02}.txt")),
            format!("file {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    let out = Command::new(ptar_bin())
        .arg("-c")
        .arg("-f")
        .arg(archive)
        .arg("-C")
        .arg(base)
        .arg("tree")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn snapshot_count(archive: &Path) -> usize {
    Archive::open(archive, None)
        .unwrap()
        .snapshots()
        .unwrap()
        .len()
}

fn verify_full(archive: &Path) {
    let out = Command::new(ptar_bin())
        .args(["--verify", "--full", "-f"])
        .arg(archive)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("interrupted append"),
        "a loser left bytes behind: {stdout}"
    );
}

fn assert_busy(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: the second writer succeeded");
    assert_ne!(out.status.code(), Some(0), "{what}");
    assert!(out.status.code().is_some(), "{what}: {:?}", out.status);
    assert!(
        err.contains("busy"),
        "{what}: stderr does not say busy: {err}"
    );
}

#[test]
fn a_writer_holding_the_lock_makes_cli_appends_fail_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let archive = tmp.path().join("a.ptar");
    setup(&base, &archive);
    std::fs::write(base.join("tree/new.txt"), "added while locked\n").unwrap();
    let len = std::fs::metadata(&archive).unwrap().len();

    let mut w = Writer::append(&archive, None).unwrap();
    for i in 0..3 {
        let out = append_cmd(&archive, &base).output().unwrap();
        assert_busy(
            &out,
            &format!("attempt {i} while the library writer holds the lock"),
        );
    }
    assert_eq!(
        std::fs::metadata(&archive).unwrap().len(),
        len,
        "a refused append changed the file"
    );
    // Readers take no lock: the archive can be verified meanwhile.
    verify_full(&archive);
    // A second writer in this process is refused the same way.
    match Writer::append(&archive, None) {
        Err(e @ ptar::Error::Busy(_)) => assert!(e.to_string().contains("busy"), "{e}"),
        Err(e) => panic!("second in-process writer: {e}"),
        Ok(_) => panic!("a second in-process writer got the lock"),
    }
    let src = ptar::fs::Source {
        dir: base.clone(),
        path: "tree".into(),
    };
    w.add_snapshot(&[src], &SnapshotMeta::default(), &NoProgress)
        .unwrap();
    w.commit().unwrap();

    assert_eq!(snapshot_count(&archive), 2);
    verify_full(&archive);
    // The lock went with the writer: the CLI may append now.
    let out = append_cmd(&archive, &base).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot_count(&archive), 3);
    verify_full(&archive);
}

#[test]
fn two_simultaneous_cli_appends_exactly_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let archive = tmp.path().join("a.ptar");
    setup(&base, &archive);
    let rounds = 5;
    let mut first_won = 0;
    for round in 0..rounds {
        // New content to store, so that each append holds the lock for a
        // while (tens of milliseconds) rather than finishing before the
        // other process has started.
        std::fs::write(
            base.join("tree/big.bin"),
            random_bytes(format!("race {round}").as_bytes(), 16 << 20),
        )
        .unwrap();
        let before = snapshot_count(&archive);
        let t0 = Instant::now();
        let a = append_cmd(&archive, &base).spawn().unwrap();
        let b = append_cmd(&archive, &base).spawn().unwrap();
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let took = t0.elapsed();
        let what = format!("round {round} ({} ms)", took.as_millis());
        match (a.status.success(), b.status.success()) {
            (true, false) => {
                first_won += 1;
                assert_busy(&b, &what);
            }
            (false, true) => assert_busy(&a, &what),
            (true, true) => panic!("{what}: both appends succeeded"),
            (false, false) => panic!(
                "{what}: both appends failed:\n{}\n{}",
                String::from_utf8_lossy(&a.stderr),
                String::from_utf8_lossy(&b.stderr)
            ),
        }
        verify_full(&archive);
        assert_eq!(
            snapshot_count(&archive),
            before + 1,
            "{what}: exactly one new snapshot"
        );
    }
    println!("concurrent appends: {rounds} rounds, the first-spawned won {first_won}");
}
