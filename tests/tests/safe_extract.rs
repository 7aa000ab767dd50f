//! Extraction that harms nothing around it and leaves no partial file:
//! symlinks created as stored but never written through, selections that
//! honour --exclude, -X and -T, tar's modes for the directories leading to
//! selected members, the archive being read never replaced, and clean
//! interruptions (signals, I/O errors and EINTR injected with strace).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use ptar_tests::{ptar_bin, ptar_in, random_bytes};

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Every path below `root` (relative), sorted.
fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        go(root, root, &mut out);
    }
    out.sort();
    out
}

#[test]
fn symlinks_are_created_as_stored_and_never_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // What the links point at, outside the destination.
    let victim = t.join("victim");
    write(&victim.join("passwd"), b"original");
    write(&victim.join("abs-target"), b"original");
    // Snapshot one: a system-like tree with an absolute link and one that
    // climbs out of the destination (t/x/o/up -> t/victim).
    let one = t.join("one");
    std::fs::create_dir_all(one.join("etc")).unwrap();
    std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", one.join("etc/localtime")).unwrap();
    std::os::unix::fs::symlink("../../victim", one.join("up")).unwrap();
    std::os::unix::fs::symlink(victim.join("abs-target"), one.join("abs")).unwrap();
    ok(&ptar_in(t, &["-cf", "one.ptar", "-C", "one", "."]));
    // Snapshot two has a directory where the link `up` is, and a file where
    // the link `abs` is: extracted over the first, nothing may go through.
    let two = t.join("two");
    write(&two.join("up/passwd"), b"from the archive");
    write(&two.join("abs"), b"from the archive");
    ok(&ptar_in(t, &["-cf", "two.ptar", "-C", "two", "."]));

    let dest = t.join("x/o");
    let out = ptar_in(t, &["-xf", "one.ptar", "-C", "x/o"]);
    ok(&out);
    assert_eq!(
        std::fs::read_link(dest.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/UTC")
    );
    assert_eq!(
        std::fs::read_link(dest.join("up")).unwrap(),
        Path::new("../../victim")
    );
    assert_eq!(
        std::fs::read_link(dest.join("abs")).unwrap(),
        victim.join("abs-target")
    );

    let out = ptar_in(t, &["-xf", "two.ptar", "-C", "x/o"]);
    ok(&out);
    assert_eq!(std::fs::read(victim.join("passwd")).unwrap(), b"original");
    assert_eq!(
        std::fs::read(victim.join("abs-target")).unwrap(),
        b"original"
    );
    assert_eq!(
        walk(&victim),
        ["abs-target", "passwd"],
        "nothing added outside"
    );
    assert!(std::fs::symlink_metadata(dest.join("up")).unwrap().is_dir());
    assert_eq!(
        std::fs::read(dest.join("up/passwd")).unwrap(),
        b"from the archive"
    );
    assert!(std::fs::symlink_metadata(dest.join("abs"))
        .unwrap()
        .is_file());
    assert!(
        stderr(&out).contains("up: a symlink was in the way"),
        "the replaced link is reported: {}",
        stderr(&out)
    );
}

/// A small tree: text and markdown files, a directory of each.
fn mixed_tree(src: &Path) {
    write(&src.join("dir/docs/doc1.md"), b"doc1");
    write(&src.join("dir/docs/doc1.txt"), b"doc1 text");
    write(&src.join("dir/docs/doc2.md"), b"doc2");
    write(&src.join("notes.txt"), b"notes");
    write(&src.join("skip/inner.md"), b"inner");
    write(&src.join("keep.md"), b"keep");
}

#[test]
fn exclude_x_and_t_apply_to_list_and_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    mixed_tree(&t.join("src"));
    ok(&ptar_in(t, &["-cf", "a.ptar", "-C", "src", "."]));
    let listed = |args: &[&str]| {
        let mut a = vec!["-tf", "a.ptar"];
        a.extend_from_slice(args);
        let out = ptar_in(t, &a);
        ok(&out);
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        listed(&["--exclude", "*.txt", "--exclude", "skip"]),
        [
            "dir/",
            "dir/docs/",
            "dir/docs/doc1.md",
            "dir/docs/doc2.md",
            "keep.md"
        ]
    );
    std::fs::write(t.join("ex"), "*.md\n").unwrap();
    assert_eq!(
        listed(&["-X", "ex"]),
        [
            "dir/",
            "dir/docs/",
            "dir/docs/doc1.txt",
            "notes.txt",
            "skip/"
        ]
    );
    std::fs::write(t.join("names"), "dir/docs/doc2.md\nkeep.md\n").unwrap();
    assert_eq!(listed(&["-T", "names"]), ["dir/docs/doc2.md", "keep.md"]);

    ok(&ptar_in(
        t,
        &["-xf", "a.ptar", "-C", "o1", "--exclude", "*.txt"],
    ));
    assert_eq!(
        walk(&t.join("o1")),
        [
            "dir",
            "dir/docs",
            "dir/docs/doc1.md",
            "dir/docs/doc2.md",
            "keep.md",
            "skip",
            "skip/inner.md"
        ]
    );
    ok(&ptar_in(
        t,
        &["-xf", "a.ptar", "-C", "o2", "-T", "names", "-X", "ex"],
    ));
    assert_eq!(walk(&t.join("o2")), Vec::<String>::new(), "-X wins over -T");
    ok(&ptar_in(t, &["-xf", "a.ptar", "-C", "o3", "-T", "names"]));
    assert_eq!(
        walk(&t.join("o3")),
        ["dir", "dir/docs", "dir/docs/doc2.md", "keep.md"]
    );
    // -O writes only what is selected.
    let out = ptar_in(t, &["-xOf", "a.ptar", "--exclude", "*.md"]);
    ok(&out);
    assert_eq!(out.stdout, b"doc1 textnotes");
    // A -T name that matches nothing is reported, as an operand is.
    std::fs::write(t.join("missing"), "nope\n").unwrap();
    let out = ptar_in(t, &["-tf", "a.ptar", "-T", "missing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope: not found"), "{}", stderr(&out));
}

/// Runs ptar under `sh` with umask 022.
fn ptar_umask(dir: &Path, args: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("umask 022; exec \"$0\" {args}"))
        .arg(ptar_bin())
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn directories_leading_to_selected_members_get_tars_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    mixed_tree(&t.join("src"));
    std::fs::set_permissions(t.join("src/dir"), std::fs::Permissions::from_mode(0o700)).unwrap();
    ok(&ptar_in(t, &["-cf", "a.ptar", "-C", "src", "."]));
    for (dest, extra) in [("o1", ""), ("o2", "--no-same-permissions")] {
        ok(&ptar_umask(
            t,
            &format!("-xf a.ptar -C {dest} {extra} 'dir/docs/doc1*.md'"),
        ));
        for d in ["dir", "dir/docs"] {
            let mode = std::fs::metadata(t.join(dest).join(d)).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o755, "{dest}/{d}: {mode:o}");
        }
        assert_eq!(walk(&t.join(dest)), ["dir", "dir/docs", "dir/docs/doc1.md"]);
    }
    // A directory that is extracted gets its stored mode.
    ok(&ptar_umask(t, "-xf a.ptar -C o3 dir"));
    let mode = std::fs::metadata(t.join("o3/dir")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

#[test]
fn the_archive_being_read_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let w = t.join("w");
    write(&w.join("f"), b"a file");
    write(&w.join("self.ptar"), b"an older archive of this name");
    ok(&ptar_in(&w, &["-cf", "../a.ptar", "f", "self.ptar"]));
    std::fs::copy(t.join("a.ptar"), w.join("self.ptar")).unwrap();
    let before = std::fs::read(w.join("self.ptar")).unwrap();
    let ino = std::fs::metadata(w.join("self.ptar")).unwrap().ino();
    // Extracted where it lies, the archive holds a member of its own name.
    let out = ptar_in(&w, &["-xf", "self.ptar"]);
    ok(&out);
    assert!(
        stderr(&out).contains("self.ptar: file is the archive; not extracted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(w.join("self.ptar")).unwrap(), before);
    assert_eq!(std::fs::metadata(w.join("self.ptar")).unwrap().ino(), ino);
    assert_eq!(std::fs::read(w.join("f")).unwrap(), b"a file");
    // Through a symlink to it, and as standard input, the same.
    std::os::unix::fs::symlink("self.ptar", w.join("link.ptar")).unwrap();
    ok(&ptar_in(&w, &["-xf", "link.ptar"]));
    let out = Command::new(ptar_bin())
        .args(["-xf", "-"])
        .current_dir(&w)
        .stdin(std::fs::File::open(w.join("self.ptar")).unwrap())
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(std::fs::read(w.join("self.ptar")).unwrap(), before);
    assert_eq!(std::fs::metadata(w.join("self.ptar")).unwrap().ino(), ino);
}

fn have_strace() -> bool {
    let found = ptar_tests::strace::works();
    if !found {
        eprintln!("strace is missing or cannot trace here: skipping the fault-injection part of this test");
    }
    found
}

/// A tree of small files, two files of several megabytes (many blocks),
/// a symlink and a hard link, in directories of mode 0755 and 0750.
fn big_tree(src: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..40 {
        let data = random_bytes(format!("small{i}").as_bytes(), 500 + i * 97);
        files.insert(format!("d1/f{i:02}"), data);
    }
    files.insert("d1/d2/large".into(), random_bytes(b"large", 3 << 20));
    files.insert("e/large2".into(), random_bytes(b"large2", 5 << 19));
    files.insert("e/z".into(), b"last".to_vec());
    for (p, d) in &files {
        write(&src.join(p), d);
    }
    std::fs::hard_link(src.join("e/z"), src.join("e/z-link")).unwrap();
    files.insert("e/z-link".into(), b"last".to_vec());
    std::os::unix::fs::symlink("../d1/f01", src.join("e/sym")).unwrap();
    for d in ["d1", "d1/d2", "e"] {
        std::fs::set_permissions(src.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(src.join("d1/d2"), std::fs::Permissions::from_mode(0o750)).unwrap();
    files
}

/// What an interrupted or failed extraction must leave: every file under
/// its final name complete, no temporary file, no directory left at the
/// 0700 it was created with.
fn check_leftovers(dest: &Path, files: &BTreeMap<String, Vec<u8>>, trial: &str) {
    for p in walk(dest) {
        let path = dest.join(&p);
        let md = std::fs::symlink_metadata(&path).unwrap();
        assert!(
            !p.contains(".ptar-part-"),
            "{trial}: temporary file left: {p}"
        );
        if md.is_file() {
            let want = files
                .get(&p)
                .unwrap_or_else(|| panic!("{trial}: unexpected file {p}"));
            assert!(
                &std::fs::read(&path).unwrap() == want,
                "{trial}: {p} is there with the wrong content ({} bytes)",
                md.len()
            );
        }
        if md.is_dir() {
            assert_ne!(md.mode() & 0o777, 0o700, "{trial}: {p} left drwx------");
        }
    }
}

fn strace(args: &[&str], ptar_args: &[&str], dir: &Path) -> Output {
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .args(args)
        .arg(ptar_bin())
        .args(ptar_args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn died_by(out: &Output, sig: i32) -> bool {
    out.status.signal() == Some(sig) || out.status.code() == Some(128 + sig)
}

#[test]
fn an_interrupted_extraction_leaves_no_partial_file() {
    if !have_strace() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let files = big_tree(&t.join("src"));
    ok(&ptar_in(t, &["-cf", "a.ptar", "-C", "src", "."]));
    let mut killed = 0;
    // One signal at the N-th call of a thread (strace counts per thread,
    // and a second signal ends ptar at once, by design): at a write of the
    // single thread (early, in the small files, in the large ones), or at
    // an openat of the walking thread while writer threads fill the files
    // it began.
    for (call, n, sig, name, threads) in [
        ("write", 2, 2, "SIGINT", "1"),
        ("write", 6, 2, "SIGINT", "1"),
        ("write", 15, 15, "SIGTERM", "1"),
        ("write", 3, 1, "SIGHUP", "1"),
        ("write", 41, 2, "SIGINT", "1"),
        ("openat", 12, 2, "SIGINT", "2"),
        ("openat", 30, 15, "SIGTERM", "2"),
        ("openat", 45, 2, "SIGINT", "2"),
    ] {
        let trial = format!("{name} at {call} {n}, {threads} threads");
        let dest = format!("o-{call}-{n}");
        // The destination exists with an older copy of one file: it must
        // be either that copy or the archived content, never a mix.
        write(&t.join(&dest).join("d1/f03"), b"an older copy");
        let mut old = files.clone();
        let out = strace(
            &[
                "-e",
                &format!("trace={call}"),
                "-e",
                &format!("inject={call}:signal={name}:when={n}"),
            ],
            &["-xf", "a.ptar", "-C", &dest, "--threads", threads],
            t,
        );
        if died_by(&out, sig) {
            killed += 1;
        } else {
            ok(&out);
        }
        let got = std::fs::read(t.join(&dest).join("d1/f03")).unwrap();
        if got == b"an older copy" {
            old.insert("d1/f03".into(), got);
        }
        check_leftovers(&t.join(&dest), &old, &trial);
    }
    assert!(
        killed >= 4,
        "only {killed} trials were stopped by the signal"
    );
}

#[test]
fn a_failed_write_or_rename_leaves_no_partial_file() {
    if !have_strace() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let files = big_tree(&t.join("src"));
    ok(&ptar_in(t, &["-cf", "a.ptar", "-C", "src", "."]));
    // The first two linkat calls of the walking thread try the two ways of
    // linking an unnamed file in: failing both (as without /proc and
    // without the privilege) makes ptar write under temporary names.
    let named = "inject=linkat:error=ENOENT:when=1..2";
    for (i, (injects, threads, over)) in [
        (&["inject=write:error=EIO:when=3"][..], "1", false),
        (&["inject=write:error=ENOSPC:when=30"], "1", false),
        (&["inject=write:error=EIO:when=2+5"], "2", false),
        (&["inject=utimensat:error=EIO:when=7"], "1", false),
        // The link of a new file, and of a file that replaces one.
        (&["inject=linkat:error=EIO:when=2"], "1", false),
        (&["inject=linkat:error=ENOSPC:when=3"], "2", false),
        (&["inject=linkat:error=EIO:when=3"], "2", true),
        // The rename over a file that was there.
        (&["inject=renameat:error=EIO:when=2"], "2", true),
        (&["inject=renameat:error=ENOSPC:when=5"], "1", true),
        // Named temporary files.
        (&[named, "inject=write:error=EIO:when=3"], "1", false),
        (&[named, "inject=renameat2:error=EIO:when=4"], "2", false),
        (&[named, "inject=renameat:error=EIO:when=3"], "2", true),
    ]
    .iter()
    .enumerate()
    {
        let dest = format!("o{i}");
        if *over {
            ok(&ptar_in(t, &["-xf", "a.ptar", "-C", &dest]));
        }
        let mut args = vec!["-e", "trace=write,renameat,renameat2,linkat,utimensat"];
        for inject in *injects {
            args.extend(["-e", inject]);
        }
        let out = strace(
            &args,
            &["-xf", "a.ptar", "-C", &dest, "--threads", threads],
            t,
        );
        let trial = injects.join(" ");
        assert_eq!(out.status.code(), Some(2), "{trial}: {}", stderr(&out));
        check_leftovers(&t.join(&dest), &files, &trial);
    }
}

/// Every way a file can be put in place extracts the whole tree, into an
/// empty directory and over an earlier copy, and leaves no temporary file:
/// unnamed and linked with `AT_EMPTY_PATH` (where permitted), unnamed and
/// linked through `/proc/self/fd` (the first way denied), and under a
/// temporary name, renamed (both denied).
#[test]
fn every_way_of_putting_files_in_place_extracts_the_tree() {
    if !have_strace() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let files = big_tree(&t.join("src"));
    ok(&ptar_in(t, &["-cf", "a.ptar", "-C", "src", "."]));
    // strace counts calls per thread: denying only the first way would deny
    // the first link of each writer thread too, so that one runs on one
    // thread.
    for (way, inject, threads) in [
        ("default", None, &["1", "3"][..]),
        ("proc", Some("inject=linkat:error=ENOENT:when=1"), &["1"]),
        (
            "named",
            Some("inject=linkat:error=ENOENT:when=1..2"),
            &["1", "3"],
        ),
    ] {
        for &threads in threads {
            let dest = t.join(format!("o-{way}-{threads}"));
            // An older copy of some files, and a symlink where a file goes.
            write(&dest.join("d1/f03"), b"an older copy");
            write(&dest.join("e/large2"), b"an older copy");
            std::os::unix::fs::symlink("../d1/f04", dest.join("e/z")).unwrap();
            let log = t.join(format!("log-{way}-{threads}"));
            let mut args = vec![
                "-o".to_string(),
                log.display().to_string(),
                "-e".into(),
                "trace=openat,linkat,renameat,renameat2".into(),
            ];
            if let Some(i) = inject {
                args.extend(["-e".into(), i.into()]);
            }
            let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let out = Command::new("strace")
                .args(["-f", "-qq"])
                .args(&args)
                .arg(ptar_bin())
                .args(["-xf", "a.ptar", "-C"])
                .arg(&dest)
                .args(["--threads", threads])
                .current_dir(t)
                .output()
                .unwrap();
            ok(&out);
            let trial = format!("{way}, {threads} threads");
            for (p, d) in &files {
                assert!(&std::fs::read(dest.join(p)).unwrap() == d, "{trial}: {p}");
            }
            assert_eq!(
                std::fs::metadata(dest.join("e/z")).unwrap().ino(),
                std::fs::metadata(dest.join("e/z-link")).unwrap().ino(),
                "{trial}"
            );
            check_leftovers(&dest, &files, &trial);
            // The way taken is the one meant.
            let log = std::fs::read_to_string(&log).unwrap();
            let tmpfile = log.contains("O_TMPFILE");
            let proc_link = log.lines().any(|l| {
                l.contains("linkat(AT_FDCWD, \"/proc/self/fd/") && l.trim_end().ends_with("= 0")
            });
            let named_open = log
                .lines()
                .any(|l| l.contains("openat(") && l.contains(".ptar-part-"));
            match way {
                "default" => assert!(tmpfile && !named_open, "{trial}:\n{log}"),
                "proc" => assert!(tmpfile && proc_link && !named_open, "{trial}:\n{log}"),
                _ => assert!(named_open && !proc_link, "{trial}:\n{log}"),
            }
        }
    }
}

/// `kill -9` cannot be handled, yet it leaves no temporary file of a new
/// file and no file under its final name with partial content: a file is
/// unnamed until it is complete.
#[test]
fn kill_9_during_extraction_leaves_no_partial_or_temporary_file() {
    if !have_strace() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let files = big_tree(&t.join("src"));
    ok(&ptar_in(t, &["-cf", "a.ptar", "-C", "src", "."]));
    let mut killed = 0;
    for (call, n, threads) in [
        ("write", 3, "1"),
        ("write", 30, "1"),
        ("write", 45, "1"),
        ("write", 4, "2"),
        ("write", 12, "2"),
        ("utimensat", 10, "1"),
        ("openat", 20, "2"),
    ] {
        let trial = format!("SIGKILL at {call} {n}, {threads} threads");
        let dest = format!("k-{call}-{n}-{threads}");
        let out = strace(
            &[
                "-e",
                &format!("trace={call}"),
                "-e",
                &format!("inject={call}:signal=SIGKILL:when={n}"),
            ],
            &["-xf", "a.ptar", "-C", &dest, "--threads", threads],
            t,
        );
        if died_by(&out, 9) {
            killed += 1;
        } else {
            ok(&out);
        }
        // Directories may be left at 0700 (nothing ran after the kill):
        // check the files only.
        for p in walk(&t.join(&dest)) {
            let path = t.join(&dest).join(&p);
            assert!(
                !p.contains(".ptar-part-"),
                "{trial}: temporary file left: {p}"
            );
            if std::fs::symlink_metadata(&path).unwrap().is_file() {
                assert!(
                    files.get(&p) == Some(&std::fs::read(&path).unwrap()),
                    "{trial}: {p} has the wrong content"
                );
            }
        }
    }
    assert!(killed >= 5, "only {killed} trials were killed");
}

#[test]
fn interrupted_system_calls_are_retried() {
    if !have_strace() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let files = big_tree(&t.join("src"));
    ok(&ptar_in(t, &["-cf", "a.ptar", "-C", "src", "."]));
    // EINTR on every other call of each (openat from the 8th on: the
    // dynamic loader's come first).
    let out = strace(
        &[
            "-e",
            "trace=openat,mkdirat,renameat,renameat2,symlinkat,linkat,fchmod,fchown,utimensat,unlinkat",
            "-e",
            "inject=openat:error=EINTR:when=8+2",
            "-e",
            "inject=mkdirat,renameat,renameat2,symlinkat,linkat,fchmod,fchown,utimensat:error=EINTR:when=1+2",
        ],
        &["-xf", "a.ptar", "-C", "o"],
        t,
    );
    ok(&out);
    let dest = t.join("o");
    for (p, d) in &files {
        assert!(&std::fs::read(dest.join(p)).unwrap() == d, "{p}");
    }
    assert_eq!(
        std::fs::read_link(dest.join("e/sym")).unwrap(),
        Path::new("../d1/f01")
    );
    assert_eq!(
        std::fs::metadata(dest.join("e/z")).unwrap().ino(),
        std::fs::metadata(dest.join("e/z-link")).unwrap().ino()
    );
    assert_eq!(
        std::fs::metadata(dest.join("d1/d2")).unwrap().mode() & 0o777,
        0o750
    );
    check_leftovers(&dest, &files, "EINTR");
}

/// Without unnamed files (`ExtractOptions::unnamed_files` off: the way
/// taken where the system has none), files are written under temporary
/// names and renamed into place: the tree comes out whole, over an older
/// copy and into an empty directory, and no temporary file is left. (Runs
/// without strace.)
#[test]
fn named_temporary_files_extract_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let files = big_tree(&t.join("src"));
    ok(&ptar_in(t, &["-cf", "a.ptar", "-C", "src", "."]));
    let ar = ptar::Archive::open(&t.join("a.ptar"), None).unwrap();
    let snap = ar.snapshots().unwrap()[0].clone();
    for threads in [1, 3] {
        for over in [false, true] {
            let dest = t.join(format!("o-{threads}-{over}"));
            if over {
                write(&dest.join("d1/f03"), b"an older copy");
                write(&dest.join("e/large2"), b"an older copy");
                std::os::unix::fs::symlink("../d1/f04", dest.join("e/z")).unwrap();
            }
            let opts = ptar::fs::ExtractOptions {
                unnamed_files: false,
                threads,
                ..Default::default()
            };
            let r = ar
                .extract(&snap, &dest, &opts, &ptar::progress::NoProgress)
                .unwrap();
            let trial = format!("{threads} threads, over an older copy: {over}");
            assert!(r.errors.is_empty(), "{trial}: {:?}", r.errors);
            for (p, d) in &files {
                assert!(&std::fs::read(dest.join(p)).unwrap() == d, "{trial}: {p}");
            }
            check_leftovers(&dest, &files, &trial);
        }
    }
}
