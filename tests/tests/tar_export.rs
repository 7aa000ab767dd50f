//! `ptar --to-tar`: a snapshot as a POSIX pax tar stream that GNU tar (and
//! bsdtar, when installed) read back with everything they keep from a tar
//! GNU tar writes itself.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ptar::format::tree::{Extent, Payload};
use ptar::fs::Source;
use ptar::progress::NoProgress;
use ptar::store::writer::PackOptions;
use ptar::{Archive, CreateOptions, SnapshotMeta, Writer};
use ptar_tests::fidelity::{build, fields};
use ptar_tests::gnutar::{compare, gnu_tar, kernel_tree, listing, os, run, run_any, BSDTAR};
use ptar_tests::{ptar_bin, random_bytes, read_tree};

/// `ptar --to-tar -f ARCHIVE EXTRA...` with its stdout in `tar`; the
/// process output (stdout empty).
fn to_tar(dir: &Path, archive: &Path, extra: &[&str], tar: &Path) -> Output {
    let out = std::fs::File::create(tar).unwrap();
    Command::new(ptar_bin())
        .arg("--to-tar")
        .arg("-f")
        .arg(archive)
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .env_remove("PTAR_PASSPHRASE")
        .output()
        .unwrap()
}

#[test]
fn gnu_tar_reads_back_the_fidelity_tree_as_from_its_own_tar() {
    let as_root = rustix::process::geteuid().is_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = build(&dir.join("src"), as_root);
    let want = fields(&t.root);
    run(
        dir,
        ptar_bin(),
        &os(&["-c", "-f", "f.ptar", "-C", "src", "dir"]),
    );
    let ours = dir.join("ours.tar");
    let o = to_tar(dir, Path::new("f.ptar"), &[], &ours);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let Some(tar) = gnu_tar() else { return };
    // GNU tar's own tar of the same tree, in the same (name) order.
    run(
        dir,
        tar,
        &os(&[
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--sparse",
            "--format=posix",
            "--sort=name",
            "-cf",
            "gnu.tar",
            "-C",
            "src",
            "dir",
        ]),
    );
    let gnu = dir.join("gnu.tar");

    // (a) The same listing: names, types, modes, owners, sizes, times with
    // nanoseconds, link targets, ACLs and xattrs.
    let ours_list = listing(dir, tar, &ours);
    let gnu_list = listing(dir, tar, &gnu);
    assert_eq!(
        String::from_utf8_lossy(&ours_list.join(&b'\n')),
        String::from_utf8_lossy(&gnu_list.join(&b'\n'))
    );
    assert!(ours_list.len() >= want.len(), "every path is listed");

    // (b) GNU tar finds nothing that differs from the source tree.
    let d = compare(dir, tar, Path::new("ours.tar"), "src");
    assert!(d.is_empty(), "{}", String::from_utf8_lossy(&d));

    // (c) Extracted by GNU tar, the tree keeps every field GNU tar keeps
    // from its own tar.
    let extract = |from: &str, to: &str| {
        std::fs::create_dir(dir.join(to)).unwrap();
        run(
            dir,
            tar,
            &os(&[
                "-xp",
                "--xattrs",
                "--xattrs-include=*",
                "--acls",
                "-f",
                from,
                "-C",
                to,
            ]),
        );
        fields(&dir.join(to))
    };
    let got = extract("ours.tar", "out-ours");
    let by_gnu = extract("gnu.tar", "out-gnu");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    let mut kept = Vec::new();
    for (path, w) in &want {
        for (field, value) in w {
            if by_gnu[path].get(field) == Some(value) {
                assert_eq!(
                    got[path].get(field),
                    Some(value),
                    "GNU tar keeps {field} of {} from its own tar, not from ptar's",
                    path.display()
                );
                kept.push(format!("{} {field}", path.display()));
            }
        }
    }
    // What a user relies on is among what both keep.
    let mut must = vec![
        "dir/plain.txt content",
        "dir/plain.txt links",
        "dir/hard links",
        "dir/sparse.img content",
        "dir/sparse.img sparse",
        "dir/sparse.img mtime",
        "dir/plain.txt mode",
        "dir/rel-link target",
        "dir/fifo type",
    ];
    if t.xattrs {
        must.push("dir/plain.txt xattr user.origin");
    }
    if t.acls {
        must.push("dir/exec xattr system.posix_acl_access");
        must.push("dir/setgid xattr system.posix_acl_default");
    }
    for m in must {
        assert!(kept.iter().any(|k| k == m), "{m} not kept: {kept:?}");
    }
    // Nanosecond mtimes: the tree has some.
    assert!(want
        .values()
        .any(|m| m.get("mtime").is_some_and(|t| !t.ends_with("000000000"))));
    eprintln!(
        "GNU tar keeps {} fields from ptar's tar as from its own; xattrs: {}, ACLs: {}, as root: {as_root}",
        kept.len(),
        t.xattrs,
        t.acls
    );

    // bsdtar, when installed: what it keeps from GNU tar's tar, it keeps
    // from ptar's. (It extracts the name that is not UTF-8, but warns
    // and exits 1 on both tars: GNU tar writes such a name as raw bytes
    // without `hdrcharset=BINARY`, which GNU tar 1.34 does not know and
    // warns about, and ptar writes what GNU tar writes.)
    if !Path::new(BSDTAR).exists() {
        eprintln!("bsdtar is not installed at {BSDTAR}: its check is skipped");
        return;
    }
    let bsd = |from: &str, to: &str| {
        std::fs::create_dir(dir.join(to)).unwrap();
        run_any(
            dir,
            Path::new(BSDTAR),
            &os(&["-xp", "--acls", "--xattrs", "-f", from, "-C", to]),
        );
        fields(&dir.join(to))
    };
    let got = bsd("ours.tar", "bsd-ours");
    let by_bsd = bsd("gnu.tar", "bsd-gnu");
    let mut bsd_kept = 0;
    for (path, w) in &want {
        for (field, value) in w {
            if by_bsd.get(path).and_then(|m| m.get(field)) == Some(value) {
                bsd_kept += 1;
                assert_eq!(
                    got.get(path).and_then(|m| m.get(field)),
                    Some(value),
                    "bsdtar keeps {field} of {} from GNU tar's tar, not from ptar's",
                    path.display()
                );
            }
        }
    }
    assert!(bsd_kept > want.len(), "bsdtar kept only {bsd_kept} fields");
}

#[test]
fn long_and_odd_names_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    // A 300-byte path, a 150-byte one (ustar prefix and name), a 200-byte
    // symlink target, a name that is not UTF-8.
    let deep = [
        "d".repeat(60),
        "e".repeat(60),
        "f".repeat(60),
        "g".repeat(60),
    ]
    .join("/");
    std::fs::create_dir_all(src.join(&deep)).unwrap();
    let long = format!("{deep}/{}", "h".repeat(52));
    assert_eq!(format!("src/{long}").len(), 300);
    std::fs::write(src.join(&long), "deep\n").unwrap();
    let mid = format!("{}/{}", "d".repeat(60), "m".repeat(85));
    std::fs::write(src.join(&mid), "middle\n").unwrap();
    let target = "t".repeat(200);
    std::os::unix::fs::symlink(&target, src.join("long-link")).unwrap();
    let odd = OsStr::from_bytes(b"not-utf8-\xff\xfe");
    std::fs::write(src.join(odd), "odd\n").unwrap();

    run(dir, ptar_bin(), &os(&["-c", "-f", "a.ptar", "src"]));
    let tar_path = dir.join("out.tar");
    let o = to_tar(dir, Path::new("a.ptar"), &[], &tar_path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let Some(tar) = gnu_tar() else { return };
    let names = run(
        dir,
        tar,
        &[
            OsStr::new("--quoting-style=literal"),
            OsStr::new("-tf"),
            tar_path.as_os_str(),
        ],
    )
    .stdout;
    let names: Vec<&[u8]> = names.split(|&b| b == b'\n').collect();
    for want in [
        format!("src/{long}").as_bytes(),
        format!("src/{mid}").as_bytes(),
        b"src/not-utf8-\xff\xfe",
        b"src/long-link",
    ] {
        assert!(
            names.contains(&want),
            "{} not listed",
            String::from_utf8_lossy(want)
        );
    }
    std::fs::create_dir(dir.join("out")).unwrap();
    run(
        dir,
        tar,
        &[
            OsStr::new("-xf"),
            tar_path.as_os_str(),
            OsStr::new("-C"),
            OsStr::new("out"),
        ],
    );
    assert_eq!(read_tree(&dir.join("out/src")), read_tree(&src));
    assert_eq!(
        std::fs::read_link(dir.join("out/src/long-link")).unwrap(),
        PathBuf::from(&target)
    );
    if Path::new(BSDTAR).exists() {
        // It warns about the name that is not UTF-8 (see the fidelity test)
        // and extracts it as it is.
        std::fs::create_dir(dir.join("bsd")).unwrap();
        run_any(
            dir,
            Path::new(BSDTAR),
            &[
                OsStr::new("-xf"),
                tar_path.as_os_str(),
                OsStr::new("-C"),
                OsStr::new("bsd"),
            ],
        );
        assert_eq!(read_tree(&dir.join("bsd/src")), read_tree(&src));
    } else {
        eprintln!("bsdtar is not installed at {BSDTAR}: its check is skipped");
    }
}

#[test]
fn an_empty_snapshot_is_an_empty_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("empty")).unwrap();
    run(
        dir,
        ptar_bin(),
        &os(&["-c", "-f", "e.ptar", "-C", "empty", "."]),
    );
    let tar_path = dir.join("e.tar");
    let o = to_tar(dir, Path::new("e.ptar"), &[], &tar_path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Nothing but the end-of-archive marker: two zero blocks.
    assert_eq!(std::fs::read(&tar_path).unwrap(), vec![0u8; 1024]);
    let Some(tar) = gnu_tar() else { return };
    let l = run(dir, tar, &[OsStr::new("-tvf"), tar_path.as_os_str()]);
    assert!(l.stdout.is_empty());
}

#[test]
fn members_select_as_extraction_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a/sub")).unwrap();
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("a/sub/x"), "x").unwrap();
    std::fs::write(src.join("a/y"), "y").unwrap();
    std::fs::write(src.join("b/z"), "z").unwrap();
    // The first name of the inode is a/y; b/link is left without it.
    std::fs::hard_link(src.join("a/y"), src.join("b/link")).unwrap();
    run(dir, ptar_bin(), &os(&["-c", "-f", "s.ptar", "src"]));
    let Some(tar) = gnu_tar() else { return };
    let names = |tar_path: &Path| -> Vec<String> {
        let out = run(dir, tar, &[OsStr::new("-tf"), tar_path.as_os_str()]);
        let mut v: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let t1 = dir.join("1.tar");
    let o = to_tar(dir, Path::new("s.ptar"), &["src/a/sub", "src/b/z"], &t1);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Directories above a selected member are not members (tar -c a/sub/x).
    assert_eq!(names(&t1), ["src/a/sub/", "src/a/sub/x", "src/b/z"]);

    // A hard link whose first name is not selected, and a name that
    // selects nothing: reported, exit 2, the stream still whole.
    let t2 = dir.join("2.tar");
    let o = to_tar(dir, Path::new("s.ptar"), &["src/b", "src/nope"], &t2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("ptar: src/b/link: "), "{err}");
    assert!(
        err.contains("ptar: src/nope: not found in the snapshot"),
        "{err}"
    );
    assert_eq!(names(&t2), ["src/b/", "src/b/z"]);
}

/// A snapshot of `src`, one record per chunk (a tiny record target), so
/// that damaging one record damages one chunk.
fn one_record_per_chunk(src: &Path, archive: &Path) {
    let opts = CreateOptions {
        pack: PackOptions {
            record_target: 1024,
            ..PackOptions::default()
        },
        ..CreateOptions::default()
    };
    let mut w = Writer::create(archive, opts).unwrap();
    let operand = Source {
        dir: src.parent().unwrap().to_path_buf(),
        path: PathBuf::from(src.file_name().unwrap()),
    };
    let (_, out) = w
        .add_snapshot(&[operand], &SnapshotMeta::default(), &NoProgress)
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    w.commit().unwrap();
}

/// Flips a byte in the middle of the record of the first or last chunk of `path`.
fn damage(archive: &Path, bytes: &mut [u8], path: &[u8], last: bool) {
    let a = Archive::open(archive, None).unwrap();
    let snap = a.find_snapshot("latest").unwrap();
    let mut chunks = Vec::new();
    a.walk(&snap, |p, e| {
        if p == path {
            if let Payload::File(content) = &e.payload {
                for x in a.extents(content, e.size)? {
                    if let Extent::Data { id, .. } = x {
                        chunks.push(id);
                    }
                }
            }
        }
        Ok(())
    })
    .unwrap();
    assert!(chunks.len() > usize::from(last), "{chunks:?}");
    let chunk = if last { chunks.last() } else { chunks.first() }.unwrap();
    let info = a.store().describe_blob(chunk).unwrap().unwrap();
    assert_eq!(info.record_blobs, 1, "the chunk has its own record");
    let at = (info.location.offset + 4 + u64::from(info.location.body_len) / 2) as usize;
    bytes[at] ^= 0x10;
}

#[test]
fn a_damaged_file_is_left_out_and_the_stream_stays_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..6u8 {
        std::fs::write(
            src.join(format!("file{i}.bin")),
            random_bytes(&[i], 20_000 + i as usize),
        )
        .unwrap();
    }
    // A small file (read whole before its header) and one past 8 MiB
    // (checked chunk by chunk first), damaged in its last chunk, after all
    // the bytes a streaming writer would already have sent.
    std::fs::write(src.join("sub/small.bin"), random_bytes(b"small", 30_000)).unwrap();
    std::fs::write(src.join("sub/large.bin"), random_bytes(b"large", 9 << 20)).unwrap();
    // A later name of the damaged small file.
    std::fs::hard_link(src.join("sub/small.bin"), src.join("zz-link")).unwrap();
    let archive = dir.join("a.ptar");
    one_record_per_chunk(&src, &archive);
    let mut bytes = std::fs::read(&archive).unwrap();
    damage(&archive, &mut bytes, b"src/sub/small.bin", false);
    damage(&archive, &mut bytes, b"src/sub/large.bin", true);
    std::fs::write(dir.join("broken.ptar"), &bytes).unwrap();

    let tar_path = dir.join("out.tar");
    let o = to_tar(dir, Path::new("broken.ptar"), &[], &tar_path);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for p in ["src/sub/small.bin", "src/sub/large.bin", "src/zz-link"] {
        assert!(
            err.contains(&format!("ptar: {p}: ")),
            "{p} not named: {err}"
        );
    }
    assert!(
        err.contains("3 entries could not be written to the tar stream"),
        "{err}"
    );
    // No more than the 6 small files, their directories and the headers:
    // nothing of the 9 MiB file.
    assert!(std::fs::metadata(&tar_path).unwrap().len() < 1 << 20);

    let Some(tar) = gnu_tar() else { return };
    let l = run(dir, tar, &[OsStr::new("-tf"), tar_path.as_os_str()]);
    let mut names: Vec<String> = String::from_utf8(l.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..6).map(|i| format!("src/file{i}.bin")).collect();
    want.extend(["src/".into(), "src/sub/".into()]);
    want.sort();
    assert_eq!(names, want);
    std::fs::create_dir(dir.join("out")).unwrap();
    run(
        dir,
        tar,
        &[
            OsStr::new("-xf"),
            tar_path.as_os_str(),
            OsStr::new("-C"),
            OsStr::new("out"),
        ],
    );
    let (mut want_tree, _) = read_tree(&src);
    for p in ["sub/small.bin", "sub/large.bin", "zz-link"] {
        want_tree.remove(p.as_bytes());
    }
    assert_eq!(read_tree(&dir.join("out/src")).0, want_tree);
}

#[test]
fn refuses_to_write_a_tar_stream_to_a_terminal() {
    let script = Path::new("/usr/bin/script");
    if !script.exists() {
        eprintln!(
            "skipped: {} is not installed to give ptar a terminal",
            script.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/f"), "secret contents\n").unwrap();
    run(dir, ptar_bin(), &os(&["-c", "-f", "a.ptar", "src"]));
    // script runs the command on a pseudo-terminal and copies what it
    // prints to our stdout.
    let cmd = format!("{} --to-tar -f a.ptar; echo exit=$?", ptar_bin().display());
    let out = Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ptar: refusing to write a tar stream to a terminal"),
        "{text}"
    );
    assert!(text.contains("exit=2"), "{text}");
    assert!(!text.contains("secret contents"), "{text}");
}

/// The kernel tree (`/work/corpus/kernel-v1`, or `PTAR_KERNEL_TREE`):
/// `ptar -c`, `--to-tar`, then `tar --compare` against the tree, and the
/// listing equals GNU tar's own. Run with `--ignored`.
#[test]
#[ignore]
fn kernel_tree_exports_as_gnu_tar_would_write_it() {
    let Some(tree) = kernel_tree() else { return };
    let Some(tar) = gnu_tar() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let parent = tree.parent().unwrap();
    let base = tree.file_name().unwrap();
    let archive = dir.join("k.ptar");
    let started = std::time::Instant::now();
    run(
        dir,
        ptar_bin(),
        &[
            OsStr::new("-c"),
            OsStr::new("-f"),
            archive.as_os_str(),
            OsStr::new("-C"),
            parent.as_os_str(),
            base,
        ],
    );
    let created = started.elapsed();
    // ptar --to-tar | tar ARGS, without the tar on disk.
    let piped = |tar_args: &[&OsStr]| -> (Output, Output) {
        let mut p = Command::new(ptar_bin())
            .arg("--to-tar")
            .arg("-f")
            .arg(&archive)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Command::new(tar)
            .args(tar_args)
            .current_dir(dir)
            .stdin(p.stdout.take().unwrap())
            .output()
            .unwrap();
        let p = p.wait_with_output().unwrap();
        (p, t)
    };
    let started = std::time::Instant::now();
    let (p, d) = piped(&[
        OsStr::new("-d"),
        OsStr::new("-f"),
        OsStr::new("-"),
        OsStr::new("-C"),
        parent.as_os_str(),
    ]);
    let compared = started.elapsed();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    assert!(
        d.status.success() && d.stdout.is_empty(),
        "tar -d: {}{}",
        String::from_utf8_lossy(&d.stdout),
        String::from_utf8_lossy(&d.stderr)
    );
    let list_args = [
        OsStr::new("--full-time"),
        OsStr::new("--quoting-style=literal"),
        OsStr::new("-tv"),
        OsStr::new("-f"),
        OsStr::new("-"),
    ];
    let (p, ours) = piped(&list_args);
    assert!(p.status.success() && ours.status.success());
    // GNU tar's own listing of the tree, piped the same way.
    let mut g = Command::new(tar)
        .args(["--format=posix", "--sort=name", "-cf", "-", "-C"])
        .arg(parent)
        .arg(base)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let theirs = Command::new(tar)
        .args(list_args)
        .stdin(g.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(g.wait().unwrap().success() && theirs.status.success());
    let (a, b) = (
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout),
    );
    let differing: Vec<(&str, &str)> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect();
    assert!(
        differing.is_empty() && a.lines().count() == b.lines().count(),
        "{} of {} lines differ, first: {:?}",
        differing.len(),
        b.lines().count(),
        differing.first()
    );
    eprintln!(
        "kernel tree: {} members; ptar -c {:.1} s, --to-tar | tar -d {:.1} s",
        b.lines().count(),
        created.as_secs_f64(),
        compared.as_secs_f64()
    );
}
