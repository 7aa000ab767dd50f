//! Output that cannot be written never crashes ptar nor changes what it
//! did: with standard error on a full device (`2>/dev/full`) or standard
//! output and error on a closed pipe (`2>&1 | head -0`), a command still
//! commits what it would have committed and exits with the code that says
//! so. (Before, the first diagnostic that failed to print panicked: exit 101
//! after `passwd` or `sync` had committed, or before `-c` had.)

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use ptar::Archive;
use ptar_tests::ptar_bin;

fn full() -> File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
}

/// A pipe whose reading end is already closed: every write to it fails
/// with EPIPE, from the first byte on, whatever the timing.
fn closed_pipe() -> OwnedFd {
    let (r, w) = rustix::pipe::pipe().expect("pipe");
    drop(r);
    w
}

fn run(dir: &Path, args: &[&str], stdout: Stdio, stderr: Stdio) -> Output {
    Command::new(ptar_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .env_remove("PTAR_PASSPHRASE")
        .output()
        .expect("running ptar")
}

fn no_crash(out: &Output, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_ne!(out.status.code(), Some(101), "{what}: ptar panicked");
    assert_eq!(out.status.signal(), None, "{what}: ptar died of a signal");
}

fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("src/sub")).unwrap();
    for i in 0..5 {
        std::fs::write(dir.join(format!("src/sub/f{i}.txt")), format!("file {i}\n")).unwrap();
    }
}

#[test]
fn a_full_stderr_changes_neither_the_commit_nor_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree(dir);

    // Listing a missing archive: the error is lost, the code is not.
    let out = run(
        dir,
        &["-t", "-f", "missing.ptar"],
        Stdio::null(),
        full().into(),
    );
    no_crash(&out, "-t of a missing file");
    assert_eq!(out.status.code(), Some(2), "-t of a missing file");

    // Create with an operand missing: committed, with the missing operand
    // recorded; the warning could not be printed.
    let out = run(
        dir,
        &["-c", "-f", "a.ptar", "src", "no-such-dir"],
        Stdio::null(),
        full().into(),
    );
    no_crash(&out, "-c with a warning");
    assert_eq!(
        out.status.code(),
        Some(3),
        "-c that committed with an unreadable operand"
    );
    let a = Archive::open(&dir.join("a.ptar"), None).unwrap();
    assert_eq!(a.snapshots().unwrap().len(), 1);
    drop(a);

    // passwd commits, then reports on stderr.
    std::fs::write(dir.join("old"), "old passphrase").unwrap();
    std::fs::write(dir.join("new"), "new passphrase").unwrap();
    let out = run(
        dir,
        &[
            "-c",
            "--encrypt",
            "--kdf-params",
            "8,1,1",
            "--passphrase-file",
            "old",
            "-f",
            "e.ptar",
            "src",
        ],
        Stdio::null(),
        Stdio::piped(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        dir,
        &[
            "passwd",
            "-f",
            "e.ptar",
            "--passphrase-file",
            "old",
            "--new-passphrase-file",
            "new",
            "--kdf-params",
            "8,1,1",
        ],
        Stdio::null(),
        full().into(),
    );
    no_crash(&out, "passwd");
    assert_eq!(out.status.code(), Some(0), "passwd committed");
    assert!(Archive::open(&dir.join("e.ptar"), Some(b"new passphrase")).is_ok());

    // sync commits, then reports.
    let out = run(
        dir,
        &["sync", "-f", "a.ptar", "copy.ptar"],
        Stdio::null(),
        full().into(),
    );
    no_crash(&out, "sync");
    assert_eq!(out.status.code(), Some(0), "sync committed");
    let c = Archive::open(&dir.join("copy.ptar"), None).unwrap();
    assert_eq!(c.snapshots().unwrap().len(), 1);
}

#[test]
fn a_closed_pipe_on_stdout_and_stderr_still_commits_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree(dir);
    // A socket makes ptar print a notice ("socket ignored") on stderr, and
    // -v a listing on stdout: both go to the closed pipe, as with
    // `ptar -cvf a.ptar src 2>&1 | head -0`.
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("src/sock")).unwrap();
    let pipe = closed_pipe();
    let out = run(
        dir,
        &["-cv", "-f", "a.ptar", "src"],
        pipe.try_clone().unwrap().into(),
        pipe.into(),
    );
    no_crash(&out, "-cv into a closed pipe");
    assert_eq!(out.status.code(), Some(0));
    let a = Archive::open(&dir.join("a.ptar"), None).unwrap();
    assert_eq!(a.snapshots().unwrap().len(), 1);
}

#[test]
fn completions_and_the_manual_into_a_closed_pipe_end_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["completions", "zsh"][..],
        &["completions", "bash"],
        &["man"],
    ] {
        let out = run(tmp.path(), args, closed_pipe().into(), Stdio::piped());
        no_crash(&out, &args.join(" "));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
