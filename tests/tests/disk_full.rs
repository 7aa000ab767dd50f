//! Running out of room: a write that fails (here EFBIG from a file-size
//! limit, as a full disk fails with ENOSPC) ends the command with an error;
//! a failed create leaves no file behind, a failed append leaves the
//! archive at its previous generation, and the next append succeeds.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use ptar::{Archive, VerifyOptions};
use ptar_tests::{ptar_bin, random_bytes, read_tree};

/// Runs ptar with a file-size limit of `limit_kib` KiB. SIGXFSZ is ignored
/// (an ignored signal stays ignored across exec), so a write past the limit
/// fails with EFBIG instead of killing the process.
fn ptar_limited(dir: &Path, limit_kib: u64, args: &[&str]) -> Output {
    let mut script = format!("trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(ptar_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ptar_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(ptar_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.as_bytes().windows(8).any(|w| w == b"ptar-tmp"))
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_failed_create_leaves_nothing_and_a_failed_append_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..20u8 {
        std::fs::write(src.join(format!("sub/f{i}.txt")), format!("file {i}\n")).unwrap();
    }
    std::fs::write(src.join("big.bin"), random_bytes(b"big", 3 << 20)).unwrap();

    // Create: 1 MiB is too small for 3 MiB of random data.
    let out = ptar_limited(dir, 1024, &["-c", "-f", "b.ptar", "src"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "create under the limit succeeded");
    assert!(
        stderr.starts_with("ptar: not committed: b.ptar: "),
        "{stderr}"
    );
    assert!(
        !dir.join("b.ptar").exists(),
        "a failed create left its archive"
    );
    assert_eq!(leftovers(dir), Vec::<String>::new(), "temporary file left");

    // A good first generation, then an append that runs out of room.
    let ok = ptar_in(dir, &["-c", "-f", "a.ptar", "src"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (tree1, _) = read_tree(&src);
    let before = std::fs::read(dir.join("a.ptar")).unwrap();
    std::fs::write(src.join("more.bin"), random_bytes(b"more", 3 << 20)).unwrap();
    let limit = before.len() as u64 / 1024 + 512; // half a MiB more
    let out = ptar_limited(dir, limit, &["-r", "-f", "a.ptar", "src"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "append under the limit succeeded");
    assert!(
        stderr.starts_with("ptar: not committed: a.ptar: "),
        "{stderr}"
    );

    // Still generation 1, whole: whatever the failed append wrote is an
    // uncommitted tail at most.
    let a = Archive::open(&dir.join("a.ptar"), None).unwrap();
    assert_eq!(a.store().generation_count(), 1);
    assert_eq!(a.snapshots().unwrap().len(), 1);
    let after = std::fs::read(dir.join("a.ptar")).unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "committed bytes changed"
    );
    let report = a.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
    assert!(report.ok(), "{:?}", report.problems);
    let x = ptar_in(dir, &["-x", "-f", "a.ptar", "-C", "out1"]);
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    assert_eq!(read_tree(&dir.join("out1/src")).0, tree1);

    // With room again, the next append succeeds and holds the new file.
    let ok = ptar_in(dir, &["-r", "-f", "a.ptar", "src"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let a = Archive::open(&dir.join("a.ptar"), None).unwrap();
    assert_eq!(a.snapshots().unwrap().len(), 2);
    assert!(a.store().tail().is_none());
    let x = ptar_in(dir, &["-x", "-f", "a.ptar", "-C", "out2"]);
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    assert_eq!(read_tree(&dir.join("out2/src")).0, read_tree(&src).0);
}
