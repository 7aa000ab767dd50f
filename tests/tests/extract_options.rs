//! tar's extraction options, and metadata fidelity on the way back.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    ptar_tests::ptar_in(dir, args)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sample(dir: &Path) {
    std::fs::create_dir_all(dir.join("top/sub")).unwrap();
    std::fs::write(dir.join("top/a.txt"), "alpha\n").unwrap();
    std::fs::write(dir.join("top/sub/b.txt"), "beta\n").unwrap();
    std::fs::write(dir.join("top/c.log"), "gamma\n").unwrap();
}

#[test]
fn members_strip_and_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    sample(tmp.path());
    ok(&run_in(tmp.path(), &["-cf", "x.ptar", "top"]));
    ok(&run_in(
        tmp.path(),
        &["-xf", "x.ptar", "-C", "o1", "top/sub", "*.log"],
    ));
    assert!(
        tmp.path().join("o1/top/sub/b.txt").exists() && tmp.path().join("o1/top/c.log").exists()
    );
    assert!(!tmp.path().join("o1/top/a.txt").exists());
    ok(&run_in(
        tmp.path(),
        &["-xf", "x.ptar", "-C", "o2", "--strip-components", "1"],
    ));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("o2/sub/b.txt")).unwrap(),
        "beta\n"
    );
    assert!(!tmp.path().join("o2/top").exists());
    let out = run_in(tmp.path(), &["-xOf", "x.ptar", "top/a.txt", "top/sub"]);
    ok(&out);
    assert_eq!(out.stdout, b"alpha\nbeta\n");
    let out = run_in(tmp.path(), &["-xf", "x.ptar", "-C", "o3", "top/missing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("top/missing: not found"));
    let out = run_in(tmp.path(), &["-tf", "x.ptar", "top/sub"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "top/sub/\ntop/sub/b.txt\n"
    );
}

#[test]
fn existing_files_keep_old_keep_newer_and_touch() {
    let tmp = tempfile::tempdir().unwrap();
    sample(tmp.path());
    let old = filetime::FileTime::from_unix_time(1_500_000_000, 0);
    filetime::set_file_mtime(tmp.path().join("top/a.txt"), old).unwrap();
    ok(&run_in(tmp.path(), &["-cf", "x.ptar", "top"]));
    let dest = tmp.path().join("d");
    std::fs::create_dir_all(dest.join("top")).unwrap();
    std::fs::write(dest.join("top/a.txt"), "mine").unwrap();
    let out = run_in(tmp.path(), &["-xkf", "x.ptar", "-C", "d"]);
    assert_eq!(out.status.code(), Some(2), "-k reports the clash");
    assert_eq!(
        std::fs::read_to_string(dest.join("top/a.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("top/c.log")).unwrap(),
        "gamma\n",
        "the rest is extracted"
    );
    // The existing file is newer than the archived one: kept.
    let out = run_in(
        tmp.path(),
        &["-xf", "x.ptar", "--keep-newer-files", "-C", "d"],
    );
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(dest.join("top/a.txt")).unwrap(),
        "mine"
    );
    // Default: replaced, with the archived mtime; -m leaves "now".
    ok(&run_in(tmp.path(), &["-xf", "x.ptar", "-C", "d"]));
    assert_eq!(
        std::fs::read_to_string(dest.join("top/a.txt")).unwrap(),
        "alpha\n"
    );
    assert_eq!(
        std::fs::metadata(dest.join("top/a.txt")).unwrap().mtime(),
        1_500_000_000
    );
    ok(&run_in(tmp.path(), &["-xmf", "x.ptar", "-C", "d2"]));
    assert!(
        std::fs::metadata(tmp.path().join("d2/top/a.txt"))
            .unwrap()
            .mtime()
            > 1_600_000_000
    );
}

#[test]
fn escaping_symlinks_are_created_as_stored() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("src/abs")).unwrap();
    std::os::unix::fs::symlink("../../outside", tmp.path().join("src/up")).unwrap();
    std::os::unix::fs::symlink("../src/abs", tmp.path().join("src/fine")).unwrap();
    ok(&run_in(tmp.path(), &["-cf", "x.ptar", "src"]));
    // As tar does, with or without -P: nothing is ever written through them.
    for (flags, dest) in [("-xf", "o"), ("-xPf", "p")] {
        ok(&run_in(tmp.path(), &[flags, "x.ptar", "-C", dest]));
        let d = tmp.path().join(dest);
        assert_eq!(
            std::fs::read_link(d.join("src/abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            std::fs::read_link(d.join("src/up")).unwrap(),
            Path::new("../../outside")
        );
        assert_eq!(
            std::fs::read_link(d.join("src/fine")).unwrap(),
            Path::new("../src/abs")
        );
    }
    assert!(!tmp.path().join("outside").exists());
}

#[test]
fn snapshots_by_tag_and_name() {
    let tmp = tempfile::tempdir().unwrap();
    sample(tmp.path());
    ok(&run_in(
        tmp.path(),
        &[
            "-cf",
            "x.ptar",
            "--tag",
            "daily",
            "--name",
            "first",
            "top/a.txt",
        ],
    ));
    ok(&run_in(
        tmp.path(),
        &["-rf", "x.ptar", "--tag", "weekly", "top/c.log"],
    ));
    let list = |args: &[&str]| String::from_utf8(run_in(tmp.path(), args).stdout).unwrap();
    assert_eq!(
        list(&["-tf", "x.ptar", "--tag", "daily"]),
        "top/\ntop/a.txt\n"
    );
    assert_eq!(
        list(&["-tf", "x.ptar", "--name", "first"]),
        "top/\ntop/a.txt\n"
    );
    assert_eq!(list(&["-tf", "x.ptar"]), "top/\ntop/c.log\n");
    assert_eq!(
        list(&["-tf", "x.ptar", "--snapshot", "2"]),
        "top/\ntop/a.txt\n"
    );
}

#[test]
fn metadata_comes_back() {
    let root = rustix::process::geteuid().is_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let f = src.join("f.txt");
    std::fs::write(&f, "data").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4751)).unwrap();
    filetime::set_file_times(
        &f,
        filetime::FileTime::from_unix_time(1_400_000_000, 123_456_789),
        filetime::FileTime::from_unix_time(1_450_000_000, 987_654_321),
    )
    .unwrap();
    let xattrs = xattr::set(&f, "user.color", b"blue").is_ok();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let sparse = src.join("sparse");
    let s = std::fs::File::create(&sparse).unwrap();
    s.set_len(32 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    s.write_all_at(b"x", 16 << 20).unwrap();
    drop(s);
    std::fs::hard_link(&f, src.join("f-link")).unwrap();
    if root {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        std::os::unix::fs::lchown(&f, Some(1234), Some(2345)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4751)).unwrap();
    }
    ok(&run_in(tmp.path(), &["-cf", "x.ptar", "src"]));
    ok(&run_in(tmp.path(), &["-xpf", "x.ptar", "-C", "out"]));
    let o = tmp.path().join("out/src");
    let b = std::fs::metadata(o.join("f.txt")).unwrap();
    assert_eq!((b.mtime(), b.mtime_nsec()), (1_450_000_000, 987_654_321));
    assert_eq!((b.atime(), b.atime_nsec()), (1_400_000_000, 123_456_789));
    if root {
        assert_eq!(b.mode() & 0o7777, 0o4751, "setuid kept for root with -p");
        assert_eq!((b.uid(), b.gid()), (1234, 2345));
        let n = std::fs::metadata(o.join("null")).unwrap();
        assert!(n.file_type().is_char_device());
        assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
    } else {
        assert_eq!(b.mode() & 0o7777, 0o751);
    }
    assert_eq!(b.nlink(), 2, "hard link restored");
    assert_eq!(std::fs::metadata(o.join("f-link")).unwrap().ino(), b.ino());
    assert!(std::fs::metadata(o.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        std::fs::metadata(o.join("pipe")).unwrap().mode() & 0o777,
        0o640
    );
    let sp = std::fs::metadata(o.join("sparse")).unwrap();
    assert_eq!(sp.len(), 32 << 20);
    assert!(
        sp.blocks() * 512 < 1 << 20,
        "sparse file restored with {} allocated bytes",
        sp.blocks() * 512
    );
    if xattrs {
        assert_eq!(
            xattr::get(o.join("f.txt"), "user.color").unwrap(),
            Some(b"blue".to_vec())
        );
    }
}

/// When two members get the same name (here `--strip-components 1` folds
/// `a/N` and `b/N` into `N`), the later one in archive order wins, as in
/// tar, whichever writer thread finishes first: the earlier members are
/// large (their writers take long), the later ones small, a symlink, and a
/// directory.
#[test]
fn the_later_member_of_a_folded_name_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = t.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::create_dir_all(src.join("b/z")).unwrap();
    for n in ["w", "x", "y", "z"] {
        let big = ptar_tests::random_bytes(n.as_bytes(), 6 << 20);
        std::fs::write(src.join("a").join(n), big).unwrap();
    }
    std::fs::write(src.join("b/w"), "later w\n").unwrap();
    std::fs::write(src.join("b/x"), "later x\n").unwrap();
    std::os::unix::fs::symlink("later-y-target", src.join("b/y")).unwrap();
    std::fs::write(src.join("b/z/inner"), "inside the later z\n").unwrap();
    ok(&run_in(t, &["-cf", "f.ptar", "-C", "src", "a", "b"]));
    let listed = run_in(t, &["-tf", "f.ptar"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let pos = |m: &str| listed.lines().position(|l| l == m).unwrap();
    assert!(pos("a/x") < pos("b/x"), "a/ comes first:\n{listed}");

    for threads in ["4", "2", "1"] {
        let o = format!("o{threads}");
        let out = run_in(
            t,
            &[
                "-xf",
                "f.ptar",
                "-C",
                &o,
                "--strip-components",
                "1",
                "--threads",
                threads,
            ],
        );
        ok(&out);
        let o = t.join(&o);
        assert_eq!(
            std::fs::read(o.join("w")).unwrap(),
            b"later w\n",
            "{threads} threads"
        );
        assert_eq!(
            std::fs::read(o.join("x")).unwrap(),
            b"later x\n",
            "{threads} threads"
        );
        assert_eq!(
            std::fs::read_link(o.join("y")).unwrap(),
            Path::new("later-y-target"),
            "{threads} threads"
        );
        assert_eq!(
            std::fs::read(o.join("z/inner")).unwrap(),
            b"inside the later z\n",
            "{threads} threads"
        );
        let mut names: Vec<String> = std::fs::read_dir(&o)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["w", "x", "y", "z"],
            "{threads} threads: no temporary file"
        );
    }
}
