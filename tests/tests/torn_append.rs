//! An append cut short anywhere leaves the previous generation readable,
//! verifiable, and appendable.

use std::path::PathBuf;

use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::{Archive, CreateOptions, VerifyOptions};
use ptar_tests::{append_snapshot, create_snapshot, ptar_s, random_bytes, read_tree};

#[test]
fn truncation_inside_the_last_generation_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&two).unwrap();
    std::fs::write(one.join("a.txt"), "first generation\n").unwrap();
    std::fs::write(one.join("r.bin"), random_bytes(b"one", 300_000)).unwrap();
    std::fs::write(two.join("b.bin"), random_bytes(b"two", 900_000)).unwrap();
    let archive = tmp.path().join("a.ptar");
    let first_id = create_snapshot(&archive, &one, CreateOptions::default());
    let gen1_end = std::fs::metadata(&archive).unwrap().len();
    append_snapshot(&archive, &two, None);
    let full = std::fs::read(&archive).unwrap();
    let (want_one, _) = read_tree(&one);

    let n = 60u64;
    let span = full.len() as u64 - gen1_end;
    let mut points: Vec<u64> = (0..n).map(|i| gen1_end + i * span / n).collect();
    points.extend([
        gen1_end + 1,
        full.len() as u64 - 1,
        full.len() as u64 - 8,
        full.len() as u64 - 511,
    ]);
    for (i, cut) in points.iter().enumerate() {
        let path = tmp.path().join(format!("cut{i}.ptar"));
        std::fs::write(&path, &full[..*cut as usize]).unwrap();
        let a = Archive::open(&path, None).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(a.store().generation_count(), 1, "cut at {cut}");
        let snaps = a.snapshots().unwrap();
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].id, first_id);
        let report = a.verify(&VerifyOptions {
            full: true,
            trusted_key: None,
        });
        assert!(report.ok(), "cut at {cut}: {:?}", report.problems);
        assert_eq!(
            report.tail.as_ref().map(|t| t.len).unwrap_or(0),
            cut - gen1_end
        );
        drop(a);
        // A new append truncates the torn tail and succeeds.
        append_snapshot(&path, &two, None);
        let a = Archive::open(&path, None).unwrap();
        assert!(a.store().tail().is_none());
        assert_eq!(a.snapshots().unwrap().len(), 2);
        assert!(a
            .verify(&VerifyOptions {
                full: true,
                trusted_key: None
            })
            .ok());
        if i % 10 == 0 {
            let dest = tmp.path().join(format!("x{i}"));
            let s = a.find_snapshot(&first_id.to_hex()).unwrap();
            a.extract(&s, &dest, &ExtractOptions::default(), &NoProgress)
                .unwrap();
            let (got, _) = read_tree(&dest.join(one.strip_prefix("/").unwrap()));
            assert_eq!(got, want_one);
        }
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn cli_reports_the_interrupted_append() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(b"f", 100_000)).unwrap();
    let archive: PathBuf = tmp.path().join("a.ptar");
    let a = archive.to_str().unwrap();
    assert!(ptar_s(
        &["-c", "-f", a, "-C", tmp.path().to_str().unwrap(), "src"],
        &[]
    )
    .status
    .success());
    let good = std::fs::read(&archive).unwrap();
    std::fs::write(src.join("g"), random_bytes(b"g", 100_000)).unwrap();
    assert!(ptar_s(
        &["-r", "-f", a, "-C", tmp.path().to_str().unwrap(), "src"],
        &[]
    )
    .status
    .success());
    let all = std::fs::read(&archive).unwrap();
    let cut = good.len() + (all.len() - good.len()) / 2;
    std::fs::write(&archive, &all[..cut]).unwrap();
    let out = ptar_s(&["--verify", "-f", a], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{} bytes of an interrupted append after generation 1",
            cut - good.len()
        )),
        "{stdout}"
    );
    let out = ptar_s(
        &["-r", "-f", a, "-C", tmp.path().to_str().unwrap(), "src"],
        &[],
    );
    assert!(out.status.success());
    let out = ptar_s(&["snapshots", "-f", a], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        3,
        "header + 2 snapshots"
    );
}

#[test]
fn the_archive_never_reads_itself() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f.txt"), "some data\n").unwrap();
    for mode in ["-c", "-r", "-r"] {
        let out = std::process::Command::new(ptar_tests::ptar_bin())
            .args([mode, "-f", "self.ptar", "."])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("file is the archive; not dumped"),
            "{mode}: {err}"
        );
        let list = ptar_s(
            &["-t", "-f", tmp.path().join("self.ptar").to_str().unwrap()],
            &[],
        );
        let names = String::from_utf8_lossy(&list.stdout).to_string();
        assert!(
            names.contains("f.txt") && !names.contains("self.ptar") && !names.contains("ptar-tmp"),
            "{names}"
        );
    }
}
