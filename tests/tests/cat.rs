//! `ptar cat`: members of a snapshot on standard output, read in place.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use ptar_tests::{ptar, ptar_in, random_bytes};

fn setup() -> (tempfile::TempDir, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d/e")).unwrap();
    let big = random_bytes(b"cat", 3 << 20);
    std::fs::write(src.join("d/e/big"), &big).unwrap();
    std::fs::write(src.join("one.txt"), "one\n").unwrap();
    std::fs::write(src.join(OsStr::from_bytes(b"odd-\xff")), "odd\n").unwrap();
    std::fs::hard_link(src.join("one.txt"), src.join("d/hard")).unwrap();
    std::os::unix::fs::symlink("../one.txt", src.join("d/up")).unwrap();
    std::os::unix::fs::symlink("up", src.join("d/up2")).unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", src.join("d/escape")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("d/abs")).unwrap();
    std::os::unix::fs::symlink("loop", src.join("loop")).unwrap();
    let out = ptar_in(tmp.path(), &["-c", "-f", "a.ptar", "-C", "src", "."]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, big)
}

#[test]
fn members_come_out_in_the_order_asked_following_links_inside_the_snapshot() {
    let (tmp, big) = setup();
    let out = ptar_in(
        tmp.path(),
        &[
            "cat", "-f", "a.ptar", "one.txt", "d/e/big", "d/hard", "d/up2", "/one.txt",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = b"one\n".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"one\none\none\n");
    assert!(out.stdout == want, "{} bytes", out.stdout.len());
    let odd = ptar(
        &[
            OsStr::new("cat"),
            OsStr::new("-f"),
            tmp.path().join("a.ptar").as_os_str(),
            OsStr::from_bytes(b"odd-\xff"),
        ],
        &[],
    );
    assert_eq!(odd.stdout, b"odd\n");
}

#[test]
fn a_member_that_cannot_be_read_is_named_and_the_others_still_come_out() {
    let (tmp, _) = setup();
    let out = ptar_in(
        tmp.path(),
        &[
            "cat", "-f", "a.ptar", "missing", "d", "one.txt", "d/escape", "d/abs", "loop",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stdout, b"one\n");
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        "ptar: missing: no such member in the snapshot",
        "ptar: d: is a directory",
        "ptar: d/escape: is a symbolic link leading outside the snapshot",
        "ptar: d/abs: is a symbolic link to an absolute path (/etc/passwd), outside the snapshot",
        "ptar: loop: too many levels of symbolic links",
    ] {
        assert!(err.contains(line), "{line} in {err}");
    }
}

#[test]
fn an_older_snapshot_and_an_encrypted_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(tmp.path().join("pass"), "pw\n").unwrap();
    std::fs::write(src.join("v"), "first\n").unwrap();
    let enc = [
        "--encrypt",
        "--passphrase-file",
        "pass",
        "--kdf-params",
        "1024,1,1",
    ];
    let mut args = vec!["-c", "-f", "e.ptar"];
    args.extend(enc);
    args.extend(["-C", "src", "."]);
    assert!(ptar_in(tmp.path(), &args).status.success());
    std::fs::write(src.join("v"), "second\n").unwrap();
    let out = ptar_in(
        tmp.path(),
        &[
            "-r",
            "-f",
            "e.ptar",
            "--passphrase-file",
            "pass",
            "-C",
            "src",
            ".",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cat = |snap: &str| {
        ptar_in(
            tmp.path(),
            &[
                "cat",
                "-f",
                "e.ptar",
                "--passphrase-file",
                "pass",
                "--snapshot",
                snap,
                "v",
            ],
        )
    };
    assert_eq!(cat("latest").stdout, b"second\n");
    assert_eq!(cat("2").stdout, b"first\n");
    let none = ptar_in(tmp.path(), &["cat", "-f", "e.ptar", "v"]);
    assert_eq!(none.status.code(), Some(2));
}
