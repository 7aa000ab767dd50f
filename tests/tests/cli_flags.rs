//! The remaining tar flags, one behaviour each.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    ptar_tests::ptar_in(dir, args)
}

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn names(dir: &Path, archive: &str) -> String {
    String::from_utf8(ok(run_in(dir, &["-tf", archive])).stdout).unwrap()
}

#[test]
fn one_file_system_stops_at_mount_points() {
    let (dev, shm) = (std::fs::metadata("/dev"), std::fs::metadata("/dev/shm"));
    let (Ok(dev), Ok(shm)) = (dev, shm) else {
        eprintln!("no /dev/shm here; not checked");
        return;
    };
    if dev.dev() == shm.dev() {
        eprintln!("/dev/shm is not a separate mount here; not checked");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let marker = format!("/dev/shm/ptar-one-fs-{}", std::process::id());
    std::fs::write(&marker, "x").unwrap();
    let both = ok(run_in(
        tmp.path(),
        &["-cf", "a.ptar", "--no-xattrs", "/dev/shm"],
    ));
    drop(both);
    let one = ok(run_in(
        tmp.path(),
        &["-cf", "b.ptar", "--one-file-system", "/dev"],
    ));
    drop(one);
    let _ = std::fs::remove_file(&marker);
    let m = marker.trim_start_matches('/');
    assert!(
        names(tmp.path(), "a.ptar").contains(m),
        "the mount named as an operand is read"
    );
    let b = names(tmp.path(), "b.ptar");
    assert!(b.contains("dev/shm/"), "the mount point itself is stored");
    assert!(!b.contains(m), "--one-file-system descended into /dev/shm");
}

#[test]
fn dereference_archives_what_links_point_to() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("real")).unwrap();
    std::fs::write(tmp.path().join("real/f"), "target content").unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    std::os::unix::fs::symlink("../real/f", tmp.path().join("src/link")).unwrap();
    std::os::unix::fs::symlink("../real", tmp.path().join("src/dirlink")).unwrap();
    ok(run_in(tmp.path(), &["-chf", "x.ptar", "src"]));
    ok(run_in(tmp.path(), &["-xf", "x.ptar", "-C", "out"]));
    let l = std::fs::symlink_metadata(tmp.path().join("out/src/link")).unwrap();
    assert!(l.is_file(), "-h stores the file, not the link");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/src/dirlink/f")).unwrap(),
        "target content"
    );
}

#[test]
fn totals_and_max_output() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    std::fs::write(tmp.path().join("src/big"), vec![7u8; 200_000]).unwrap();
    let out = ok(run_in(tmp.path(), &["-cf", "x.ptar", "--totals", "src"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Total bytes written:"));
    let out = run_in(
        tmp.path(),
        &["-xf", "x.ptar", "--max-output", "1000", "-C", "o"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("output budget"));
    assert!(!tmp.path().join("o/src/big").exists());
}

#[test]
fn ownership_and_permission_flags() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: ownership flags not checked");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    let f = tmp.path().join("src/f");
    std::fs::write(&f, "x").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4775)).unwrap();
    // An entry stored as uid 4321 with the user name "root": names win by
    // default, the number with --numeric-owner.
    let forged = ptar_tests::forge::forge_with(&ptar_tests::forge::header(None), None, |w| {
        let id = w.put_blob(ptar::format::Kind::Chunk, b"x").unwrap();
        let extents = vec![ptar::format::tree::Extent::Data { len: 1, id }];
        let mut e = ptar_tests::forge::entry(
            b"owned",
            ptar::format::tree::EntryType::File,
            ptar::format::tree::Payload::File(ptar::format::tree::Content::Inline(extents)),
            1,
        );
        e.uid = 4321;
        e.user = b"root".to_vec();
        vec![e]
    });
    std::fs::write(tmp.path().join("forged.ptar"), forged).unwrap();
    ok(run_in(tmp.path(), &["-xf", "forged.ptar", "-C", "n1"]));
    assert_eq!(
        std::fs::metadata(tmp.path().join("n1/owned"))
            .unwrap()
            .uid(),
        0,
        "the name wins"
    );
    ok(run_in(
        tmp.path(),
        &["-xf", "forged.ptar", "--numeric-owner", "-C", "n2"],
    ));
    assert_eq!(
        std::fs::metadata(tmp.path().join("n2/owned"))
            .unwrap()
            .uid(),
        4321,
        "--numeric-owner uses the number"
    );
    ok(run_in(tmp.path(), &["-cf", "x.ptar", "src"]));
    // --no-same-permissions applies the umask and clears special and write bits even for root.
    ok(run_in(
        tmp.path(),
        &["-xf", "x.ptar", "--no-same-permissions", "-C", "b"],
    ));
    let mode = std::fs::metadata(tmp.path().join("b/src/f"))
        .unwrap()
        .mode()
        & 0o7777;
    assert_eq!(mode & 0o6022, 0, "mode {mode:o}");
    // --no-same-owner: files belong to the extracting user even when stored otherwise.
    std::os::unix::fs::chown(&f, Some(4321), Some(4321)).unwrap();
    ok(run_in(tmp.path(), &["-cf", "y.ptar", "src"]));
    ok(run_in(
        tmp.path(),
        &["-xf", "y.ptar", "--no-same-owner", "-C", "c"],
    ));
    assert_eq!(
        std::fs::metadata(tmp.path().join("c/src/f")).unwrap().uid(),
        0
    );
    ok(run_in(tmp.path(), &["-xf", "y.ptar", "-C", "d"]));
    assert_eq!(
        std::fs::metadata(tmp.path().join("d/src/f")).unwrap().uid(),
        4321
    );
}

#[test]
fn overwrite_and_unlink_first_replace_existing_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    std::fs::write(tmp.path().join("src/f"), "archived").unwrap();
    ok(run_in(tmp.path(), &["-cf", "x.ptar", "src"]));
    for flag in ["-U", "--overwrite"] {
        std::fs::create_dir_all(tmp.path().join("o/src")).unwrap();
        std::fs::write(tmp.path().join("o/src/f"), "old").unwrap();
        // A hard link to the old file must not be written through.
        let _ = std::fs::remove_file(tmp.path().join("o/keep"));
        std::fs::hard_link(tmp.path().join("o/src/f"), tmp.path().join("o/keep")).unwrap();
        ok(run_in(tmp.path(), &["-xf", "x.ptar", flag, "-C", "o"]));
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("o/src/f")).unwrap(),
            "archived",
            "{flag}"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("o/keep")).unwrap(),
            "old",
            "{flag} wrote through a hard link"
        );
    }
}

#[test]
fn xattrs_can_be_left_out_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    let f = tmp.path().join("src/f");
    std::fs::write(&f, "x").unwrap();
    if xattr::set(&f, "user.k", b"v").is_err() {
        eprintln!("user xattrs unsupported here; not checked");
        return;
    }
    ok(run_in(tmp.path(), &["-cf", "with.ptar", "src"]));
    ok(run_in(
        tmp.path(),
        &["-cf", "without.ptar", "--no-xattrs", "src"],
    ));
    ok(run_in(tmp.path(), &["-xf", "with.ptar", "-C", "a"]));
    ok(run_in(
        tmp.path(),
        &["-xf", "with.ptar", "--no-xattrs", "-C", "b"],
    ));
    ok(run_in(tmp.path(), &["-xf", "without.ptar", "-C", "c"]));
    assert_eq!(
        xattr::get(tmp.path().join("a/src/f"), "user.k").unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(
        xattr::get(tmp.path().join("b/src/f"), "user.k").unwrap(),
        None
    );
    assert_eq!(
        xattr::get(tmp.path().join("c/src/f"), "user.k").unwrap(),
        None
    );
}

#[test]
fn append_reports_unchanged_files_and_force_read_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    for i in 0..5 {
        std::fs::write(tmp.path().join(format!("src/f{i}")), format!("file {i}")).unwrap();
    }
    ok(run_in(tmp.path(), &["-cf", "x.ptar", "src"]));
    let unchanged = |args: &[&str]| -> u64 {
        let out = ok(run_in(tmp.path(), args));
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        v["files_unchanged"].as_u64().unwrap()
    };
    assert_eq!(unchanged(&["-rf", "x.ptar", "--json", "src"]), 5);
    std::fs::write(tmp.path().join("src/f2"), "changed!").unwrap();
    assert_eq!(unchanged(&["-rf", "x.ptar", "--json", "src"]), 4);
    assert_eq!(
        unchanged(&["-rf", "x.ptar", "--json", "--force-read", "src"]),
        0
    );
    let out = ok(run_in(tmp.path(), &["-xf", "x.ptar", "-C", "o"]));
    assert!(out.stderr.is_empty());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("o/src/f2")).unwrap(),
        "changed!"
    );
}
