//! tar's habits: bundled keys, positional -C, -T, excludes, -f -, rejected
//! compression flags.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use ptar_tests::{ptar_bin, ptar_s};

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    ptar_tests::ptar_in(dir, args)
}

fn names(dir: &Path, archive: &str) -> Vec<String> {
    let out = run_in(dir, &["-t", "-f", archive]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn tree(dir: &Path) {
    for d in ["a/sub", "b", "c/.git", "cache", "proj/build"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for f in [
        "a/one.txt",
        "a/sub/two.txt",
        "a/skip.tmp",
        "b/three.txt",
        "c/.git/HEAD",
        "c/keep.txt",
        "cache/data.bin",
        "proj/main.c",
        "proj/build/main.o",
    ] {
        std::fs::write(dir.join(f), f).unwrap();
    }
    std::fs::write(
        dir.join("cache/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
}

#[test]
fn bundled_keys_work_like_tar() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let out = run_in(tmp.path(), &["cvf", "x.ptar", "a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("a/sub/two.txt"),
        "cv lists names"
    );
    let out = run_in(tmp.path(), &["tvf", "x.ptar"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("-rw-"),
        "tv is a long listing"
    );
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    let out = run_in(tmp.path(), &["xfC", "x.ptar", "out"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/a/one.txt")).unwrap(),
        "a/one.txt"
    );
}

#[test]
fn directory_option_is_positional() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let out = run_in(
        tmp.path(),
        &[
            "-c",
            "-f",
            "x.ptar",
            "-C",
            "a",
            "one.txt",
            "-C",
            "sub",
            "two.txt",
            "-C",
            "../../b",
            "three.txt",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        names(tmp.path(), "x.ptar"),
        vec!["one.txt", "three.txt", "two.txt"]
    );
}

#[test]
fn files_from_with_and_without_null() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    std::fs::write(tmp.path().join("list"), "a/one.txt\n-C b\nthree.txt\n").unwrap();
    let out = run_in(tmp.path(), &["-c", "-f", "x.ptar", "-T", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        names(tmp.path(), "x.ptar"),
        vec!["a/", "a/one.txt", "three.txt"]
    );
    // NUL-separated names may hold newlines.
    std::fs::write(tmp.path().join("odd\nname"), "x").unwrap();
    std::fs::write(tmp.path().join("nlist"), b"odd\nname\0b/three.txt\0").unwrap();
    let out = run_in(tmp.path(), &["-c", "-f", "y.ptar", "--null", "-T", "nlist"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = ptar::Archive::open(&tmp.path().join("y.ptar"), None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let mut got = Vec::new();
    a.walk(&s, |p, _| {
        got.push(p.to_vec());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        got,
        vec![
            b"b".to_vec(),
            b"b/three.txt".to_vec(),
            b"odd\nname".to_vec()
        ]
    );
}

#[test]
fn exclusions_beat_inclusions() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    std::fs::write(tmp.path().join("xlist"), "build\n").unwrap();
    let out = run_in(
        tmp.path(),
        &[
            "-c",
            "-f",
            "x.ptar",
            "--exclude",
            "*.tmp",
            "--exclude",
            "a/sub",
            "-X",
            "xlist",
            "--exclude-vcs",
            "--exclude-caches",
            "a",
            "c",
            "cache",
            "proj",
            "a/sub/two.txt",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = names(tmp.path(), "x.ptar");
    assert_eq!(
        got,
        vec![
            "a/",
            "a/one.txt",
            "c/",
            "c/keep.txt",
            "cache/",
            "cache/CACHEDIR.TAG",
            "proj/",
            "proj/main.c"
        ],
        "{got:?}"
    );
}

#[test]
fn no_recursion_keeps_only_the_named_directory() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let out = run_in(
        tmp.path(),
        &["-c", "-f", "x.ptar", "--no-recursion", "a", "b/three.txt"],
    );
    assert!(out.status.success());
    assert_eq!(names(tmp.path(), "x.ptar"), vec!["a/", "b/", "b/three.txt"]);
}

#[test]
fn archive_through_a_pipe_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let create = run_in(tmp.path(), &["-cv", "-f", "-", "a"]);
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    assert!(
        String::from_utf8_lossy(&create.stderr).contains("a/one.txt"),
        "-v goes to stderr when the archive is on stdout"
    );
    let bytes = create.stdout;
    assert!(bytes.starts_with(b"\x89PTAR"));
    let mut child = Command::new(ptar_bin())
        .args(["-x", "-f", "-", "-C", "out"])
        .current_dir(tmp.path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/a/sub/two.txt")).unwrap(),
        "a/sub/two.txt"
    );
    let out = run_in(tmp.path(), &["-r", "-f", "-", "a"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compression_flags_are_refused() {
    for flag in ["-z", "-j", "-J", "--zstd"] {
        let out = ptar_s(&["-c", flag, "-f", "/nonexistent/x.ptar", "."], &[]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("compresses archives itself"),
            "{flag}"
        );
    }
    let out = ptar_s(&["czf", "/nonexistent/x.ptar", "."], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("compresses archives itself"));
}

#[test]
fn sparse_files_and_xattrs_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let sparse = src.join("sparse.img");
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"middle", 32 << 20).unwrap();
    drop(f);
    let with_xattr = src.join("tagged.txt");
    std::fs::write(&with_xattr, "x").unwrap();
    let xattrs_work = xattr::set(&with_xattr, "user.ptar.test", b"value").is_ok();
    let out = run_in(tmp.path(), &["-c", "-f", "x.ptar", "src"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let len = std::fs::metadata(tmp.path().join("x.ptar")).unwrap().len();
    assert!(len < 1 << 20, "a 64 MiB sparse file took {len} bytes");
    let a = ptar::Archive::open(&tmp.path().join("x.ptar"), None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let mut holes = 0u64;
    let mut tagged = None;
    a.walk(&s, |p, e| {
        if p == b"src/sparse.img" {
            if let ptar::format::tree::Payload::File(c) = &e.payload {
                holes = a
                    .extents(c, e.size)?
                    .iter()
                    .filter_map(|x| match x {
                        ptar::format::tree::Extent::Hole { len } => Some(*len),
                        _ => None,
                    })
                    .sum();
            }
        }
        if p == b"src/tagged.txt" {
            tagged = Some(e.xattrs.clone());
        }
        Ok(())
    })
    .unwrap();
    assert!(holes >= 60 << 20, "only {holes} bytes of holes recorded");
    if xattrs_work {
        assert_eq!(
            tagged.unwrap(),
            vec![(b"user.ptar.test".to_vec(), b"value".to_vec())]
        );
    } else {
        eprintln!("user xattrs are not supported on this file system; not checked");
    }
}
