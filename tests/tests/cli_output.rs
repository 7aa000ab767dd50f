//! Exit codes, JSON output, diff, completions and the manual page.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use ptar_tests::ptar_bin;

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    ptar_tests::ptar_in(dir, args)
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn diff_reports_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    std::fs::write(tmp.path().join("d/same.txt"), "same").unwrap();
    std::fs::write(tmp.path().join("d/edit.txt"), "abcd").unwrap();
    std::fs::write(tmp.path().join("d/gone.txt"), "x").unwrap();
    assert!(run_in(tmp.path(), &["-cf", "x.ptar", "d"]).status.success());
    let out = run_in(tmp.path(), &["-df", "x.ptar"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Same size, same mtime, other bytes: only the content comparison sees it.
    let md = std::fs::metadata(tmp.path().join("d/edit.txt")).unwrap();
    std::fs::write(tmp.path().join("d/edit.txt"), "abcX").unwrap();
    filetime::set_file_mtime(
        tmp.path().join("d/edit.txt"),
        filetime::FileTime::from_last_modification_time(&md),
    )
    .unwrap();
    std::fs::remove_file(tmp.path().join("d/gone.txt")).unwrap();
    let out = run_in(tmp.path(), &["-d", "-f", "x.ptar"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("d/edit.txt: Contents differ"), "{text}");
    assert!(text.contains("d/gone.txt: Warning: Cannot stat"), "{text}");
    assert!(!text.contains("same.txt"), "{text}");
    let j = json_lines(&run_in(tmp.path(), &["-d", "--json", "-f", "x.ptar"]).stdout);
    assert!(j
        .iter()
        .any(|v| v["path"] == "d/edit.txt" && v["what"] == "Contents differ"));
}

#[test]
fn json_output_parses_back() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    std::fs::write(tmp.path().join("d/a"), "hello").unwrap();
    std::os::unix::fs::symlink("a", tmp.path().join("d/l")).unwrap();
    let out = run_in(
        tmp.path(),
        &["-c", "--json", "--tag", "t1", "-f", "x.ptar", "d"],
    );
    let s = &json_lines(&out.stdout)[0];
    assert_eq!(s["message_type"], "summary");
    assert_eq!(s["files"], 1);
    assert_eq!(s["symlinks"], 1);
    assert_eq!(s["ptar_json"], 1);
    let id = s["snapshot"].as_str().unwrap().to_string();
    let list = json_lines(&run_in(tmp.path(), &["-t", "--json", "-f", "x.ptar"]).stdout);
    assert_eq!(list.len(), 3);
    assert!(list.iter().any(|v| v["path"] == "d/a"
        && v["type"] == "file"
        && v["size"] == 5
        && v["mode"] == "0644"));
    assert!(list
        .iter()
        .any(|v| v["path"] == "d/l" && v["link_target"] == "a"));
    let snaps = json_lines(&run_in(tmp.path(), &["snapshots", "--json", "-f", "x.ptar"]).stdout);
    assert_eq!(snaps[0]["id"], id.as_str());
    assert_eq!(snaps[0]["tags"][0], "t1");
    let v = json_lines(
        &run_in(
            tmp.path(),
            &["--verify", "--full", "--json", "-f", "x.ptar"],
        )
        .stdout,
    );
    assert_eq!(v[0]["ok"], true);
    assert!(v[0]["blobs_checked"].as_u64().unwrap() >= 3);
}

#[test]
fn a_file_that_changes_while_read_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    // /proc files report size 0 but have content: ptar sees the change.
    let out = run_in(tmp.path(), &["-cf", "x.ptar", "/proc/self/stat"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("file changed as we read it"));
    let out = run_in(tmp.path(), &["-cf", "y.ptar", "/nonexistent-path-for-ptar"]);
    assert_eq!(out.status.code(), Some(2), "a missing operand is an error");
}

#[test]
fn a_broken_pipe_exits_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    for i in 0..4000 {
        std::fs::write(
            tmp.path().join(format!("d/file-with-a-long-name-{i:05}")),
            "",
        )
        .unwrap();
    }
    assert!(run_in(tmp.path(), &["-cf", "x.ptar", "d"]).status.success());
    let mut child = Command::new(ptar_bin())
        .args(["-tf", "x.ptar"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn names_that_are_not_utf8_survive_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.txt");
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    std::fs::write(tmp.path().join("d").join(odd), "bytes").unwrap();
    assert!(run_in(tmp.path(), &["-cf", "x.ptar", "d"]).status.success());
    assert!(run_in(tmp.path(), &["-xf", "x.ptar", "-C", "out"])
        .status
        .success());
    assert_eq!(
        std::fs::read(tmp.path().join("out/d").join(odd)).unwrap(),
        b"bytes"
    );
}

#[test]
fn completions_and_manual_page() {
    let tmp = tempfile::tempdir().unwrap();
    let bash = run_in(tmp.path(), &["completions", "bash"]);
    assert!(bash.status.success());
    let text = String::from_utf8_lossy(&bash.stdout);
    assert!(text.contains("--strip-components") && text.contains("snapshots"));
    let man = run_in(tmp.path(), &["man"]);
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(
        text.starts_with(".ie") || text.contains(".TH ptar 1"),
        "{}",
        &text[..100.min(text.len())]
    );
    assert!(text.contains("exclude"));
}

#[test]
fn paths_longer_than_path_max_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    // 25 levels of 200-byte names: about 5 KB, past PATH_MAX (4096). Built
    // with directory handles, since the path cannot be named whole.
    let name = "d".repeat(200);
    let mut dir = rustix::fs::openat(
        rustix::fs::CWD,
        tmp.path(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    for _ in 0..25 {
        rustix::fs::mkdirat(&dir, name.as_str(), rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(
            &dir,
            name.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }
    let leaf = rustix::fs::openat(
        &dir,
        "leaf.txt",
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&leaf, b"deep\n").unwrap();
    let out = run_in(tmp.path(), &["-cf", "x.ptar", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = run_in(tmp.path(), &["-tf", "x.ptar"]);
    let longest = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::len)
        .max()
        .unwrap();
    assert!(longest > 5000, "longest member name is {longest} bytes");
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    let out = run_in(tmp.path(), &["-xf", "x.ptar", "-C", "out"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_in(&tmp.path().join("out"), &["-df", "../x.ptar"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Read the leaf back through handles too.
    let mut d = rustix::fs::openat(
        rustix::fs::CWD,
        tmp.path().join("out"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    for _ in 0..25 {
        d = rustix::fs::openat(
            &d,
            name.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }
    let f = rustix::fs::openat(
        &d,
        "leaf.txt",
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut buf = [0u8; 16];
    let n = rustix::io::read(&f, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"deep\n");
}

#[test]
fn a_progress_bar_only_on_a_terminal_and_not_with_q() {
    let Ok(script) = which("script") else {
        eprintln!("no `script` here to give ptar a terminal; not checked");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    std::fs::write(
        tmp.path().join("d/f"),
        ptar_tests::random_bytes(b"bar", 64 << 20),
    )
    .unwrap();
    let on_tty = |args: &str| {
        let log = tmp.path().join("typescript");
        let cmd = format!("{} {args}", ptar_bin().display());
        let status = Command::new(&script)
            .args(["-qfc", &cmd])
            .arg(&log)
            .current_dir(tmp.path())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned()
    };
    assert!(
        on_tty("-cf a.ptar d").contains("archiving"),
        "no bar on a terminal"
    );
    assert!(
        !on_tty("-cqf b.ptar d").contains("archiving"),
        "-q still drew a bar"
    );
    assert!(
        on_tty("--verify --full -f a.ptar").contains("verifying"),
        "no bar for verify --full"
    );
    assert!(
        on_tty("-xf a.ptar -C out").contains("extracting"),
        "no bar for extract"
    );
    // Not a terminal: no bar.
    let out = run_in(tmp.path(), &["-cf", "c.ptar", "d"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("archiving"));
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}
