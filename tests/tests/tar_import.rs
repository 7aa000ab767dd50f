//! `ptar --from-tar`: tar streams (GNU tar's own, and hostile ones built
//! byte by byte here) become snapshots.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ptar::format::tree::{Entry, EntryType, Payload, Timestamp};
use ptar_tests::fidelity::{build, fields};
use ptar_tests::gnutar::gnu_tar;
use ptar_tests::ptar_bin;

/// Runs `prog ARGS` in `dir`, asserting success.
fn run_ok(dir: &Path, prog: &Path, args: &[&str]) {
    ptar_tests::gnutar::run(dir, prog, &ptar_tests::gnutar::os(args));
}

/// `ptar --from-tar TAR -f ARCHIVE` in `dir`, the tar given by name or on
/// standard input.
fn import(dir: &Path, tar: &Path, archive: &str, stdin: bool, extra: &[&str]) -> Output {
    let mut cmd = Command::new(ptar_bin());
    cmd.current_dir(dir).env_remove("PTAR_PASSPHRASE");
    if stdin {
        cmd.args(["--from-tar", "-", "-f", archive])
            .stdin(std::fs::File::open(dir.join(tar)).unwrap());
    } else {
        cmd.arg("--from-tar")
            .arg(tar)
            .args(["-f", archive])
            .stdin(Stdio::null());
    }
    let out = cmd.args(extra).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    out
}

fn listing(dir: &Path, archive: &str) -> String {
    let out = Command::new(ptar_bin())
        .args(["-t", "-f", archive])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every entry of the latest snapshot, by path.
fn entries(archive: &Path) -> std::collections::BTreeMap<Vec<u8>, Entry> {
    let a = ptar::Archive::open(archive, None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let mut m = std::collections::BTreeMap::new();
    a.walk(&s, |p, e| {
        m.insert(p.to_vec(), e.clone());
        Ok(())
    })
    .unwrap();
    m
}

// ---- a tiny tar writer -------------------------------------------------

const BLOCK: usize = 512;

fn seal(b: &mut [u8]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b[..BLOCK].iter().map(|&x| x as u32).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// A ustar header: `name` (≤ 100 bytes), type, size, mode, mtime, link target.
fn header(name: &[u8], typeflag: u8, size: u64, mode: u32, mtime: u64, link: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    b[..name.len()].copy_from_slice(name);
    b[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
    b[108..115].copy_from_slice(b"0000000");
    b[116..123].copy_from_slice(b"0000000");
    b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    b[136..147].copy_from_slice(format!("{mtime:011o}").as_bytes());
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[265..269].copy_from_slice(b"root");
    b[297..301].copy_from_slice(b"root");
    seal(&mut b);
    b
}

fn padded(mut v: Vec<u8>) -> Vec<u8> {
    v.resize(v.len().div_ceil(BLOCK) * BLOCK, 0);
    v
}

const T0: u64 = 1_700_000_000;

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut v = header(name.as_bytes(), b'0', data.len() as u64, 0o644, T0, b"");
    v.extend_from_slice(data);
    padded(v)
}

fn dir(name: &str, mode: u32, mtime: u64) -> Vec<u8> {
    header(name.as_bytes(), b'5', 0, mode, mtime, b"")
}

fn hardlink(name: &str, target: &str) -> Vec<u8> {
    header(name.as_bytes(), b'1', 0, 0o644, T0, target.as_bytes())
}

fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = [b" ", k.as_bytes(), b"=", v, b"\n"].concat();
        let mut n = body.len() + 1;
        while format!("{n}").len() + body.len() != n {
            n += 1;
        }
        data.extend_from_slice(format!("{n}").as_bytes());
        data.extend_from_slice(&body);
    }
    pax_raw(&data)
}

fn pax_raw(data: &[u8]) -> Vec<u8> {
    let mut v = header(b"PaxHeaders/x", b'x', data.len() as u64, 0o644, T0, b"");
    v.extend_from_slice(data);
    padded(v)
}

fn tar(members: &[Vec<u8>]) -> Vec<u8> {
    let mut v = members.concat();
    v.extend_from_slice(&[0u8; 2 * BLOCK]);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    PathBuf::from(name)
}

// ---- GNU tar's own archives ---------------------------------------------

#[test]
fn gnu_tar_archives_come_back_with_every_field_gnu_tar_extracts() {
    let Some(tar) = gnu_tar() else { return };
    let as_root = rustix::process::geteuid().is_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = build(&tmp.path().join("src"), as_root);
    let want = fields(&t.root);
    let formats: [(&str, &[&str], &[&str]); 2] = [
        (
            "posix",
            &[
                "--format=posix",
                "--xattrs",
                "--xattrs-include=*",
                "--acls",
                "--sparse",
            ],
            &["--xattrs", "--xattrs-include=*", "--acls"],
        ),
        ("gnu", &["--format=gnu", "--sparse"], &[]),
    ];
    for (format, create, extract) in formats {
        let name = format!("{format}.tar");
        let mut args = create.to_vec();
        args.extend(["-cf", &name, "-C", "src", "dir"]);
        run_ok(tmp.path(), tar, &args);
        let by_tar_dir = format!("out-tar-{format}");
        std::fs::create_dir(tmp.path().join(&by_tar_dir)).unwrap();
        let mut args = extract.to_vec();
        args.extend(["-xpf", &name, "-C", &by_tar_dir]);
        run_ok(tmp.path(), tar, &args);
        let by_tar = fields(&tmp.path().join(&by_tar_dir));
        for stdin in [false, true] {
            let archive = format!("{format}-{stdin}.ptar");
            let out = import(tmp.path(), Path::new(&name), &archive, stdin, &[]);
            assert!(out.status.success(), "{format}: {}", stderr(&out));
            let dest = format!("out-ptar-{format}-{stdin}");
            run_ok(
                tmp.path(),
                ptar_bin(),
                &["-x", "-p", "-f", &archive, "-C", &dest],
            );
            let got = fields(&tmp.path().join(&dest));
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{format}: the same paths"
            );
            let (mut tar_kept, mut ptar_kept) = (0, 0);
            for (path, w) in &want {
                for (field, value) in w {
                    let g = got[path].get(field);
                    if g == Some(value) {
                        ptar_kept += 1;
                    }
                    if by_tar.get(path).and_then(|m| m.get(field)) == Some(value) {
                        tar_kept += 1;
                        assert_eq!(
                            g,
                            Some(value),
                            "{format} (stdin: {stdin}): GNU tar keeps {field} of {}, ptar does not",
                            path.display()
                        );
                    }
                }
            }
            eprintln!("{format}, stdin {stdin}: GNU tar kept {tar_kept} fields, ptar {ptar_kept}");
            // What each format is known to carry, checked directly.
            let f = |p: &str, k: &str| got[Path::new(p)].get(k).cloned();
            let w = |p: &str, k: &str| want[Path::new(p)].get(k).cloned();
            for k in ["content", "size", "sparse"] {
                assert_eq!(
                    f("dir/sparse.img", k),
                    w("dir/sparse.img", k),
                    "{format}: {k}"
                );
            }
            assert_eq!(f("dir/sparse.img", "sparse").as_deref(), Some("true"));
            assert_eq!(f("dir/hard", "links"), w("dir/hard", "links"), "{format}");
            assert_eq!(f("dir/exec", "mode"), w("dir/exec", "mode"), "{format}");
            assert_eq!(f("dir/sticky", "mode"), w("dir/sticky", "mode"), "{format}");
            if format == "posix" {
                assert_eq!(f("dir/plain.txt", "mtime"), w("dir/plain.txt", "mtime"));
                if t.xattrs {
                    let k = "xattr user.origin";
                    assert_eq!(f("dir/plain.txt", k), w("dir/plain.txt", k));
                }
                if t.acls {
                    let k = "xattr system.posix_acl_access";
                    assert_eq!(f("dir/exec", k), w("dir/exec", k));
                    let k = "xattr system.posix_acl_default";
                    assert_eq!(f("dir/setgid", k), w("dir/setgid", k));
                }
            }
            if as_root {
                assert_eq!(f("dir/plain.txt", "owner"), w("dir/plain.txt", "owner"));
                assert_eq!(f("dir/null", "rdev"), w("dir/null", "rdev"));
            }
        }
    }
}

// ---- members in any order ------------------------------------------------

#[test]
fn missing_directories_are_made_up_from_what_lies_beneath() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = header(b"a/b/c.txt", b'0', 2, 0o600, T0 + 99, b"");
    c.extend_from_slice(b"hi");
    let t = write(
        tmp.path(),
        "t.tar",
        &tar(&[padded(c), file("a/z.txt", b"z")]),
    );
    let out = import(tmp.path(), &t, "a.ptar", false, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        listing(tmp.path(), "a.ptar"),
        "a/\na/b/\na/b/c.txt\na/z.txt\n"
    );
    let e = entries(&tmp.path().join("a.ptar"));
    let newest = Timestamp {
        sec: (T0 + 99) as i64,
        nsec: 0,
    };
    for d in [&b"a"[..], b"a/b"] {
        let d = &e[d];
        assert_eq!(d.kind, EntryType::Dir);
        assert_eq!(d.mode, 0o755);
        assert_eq!(d.uid, rustix::process::geteuid().as_raw());
        assert_eq!(d.mtime, newest, "the newest mtime beneath");
    }
}

#[test]
fn a_directory_after_its_contents_keeps_them_and_its_own_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(
        tmp.path(),
        "t.tar",
        &tar(&[file("d/f", b"x"), dir("d/", 0o700, T0 - 5)]),
    );
    let out = import(tmp.path(), &t, "a.ptar", true, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(tmp.path(), "a.ptar"), "d/\nd/f\n");
    let d = &entries(&tmp.path().join("a.ptar"))[&b"d"[..]];
    assert_eq!((d.mode, d.mtime.sec), (0o700, (T0 - 5) as i64));
}

#[test]
fn a_path_that_comes_again_takes_the_later_member() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(
        tmp.path(),
        "t.tar",
        &tar(&[
            file("f", b"old"),
            dir("x/", 0o755, T0),
            file("x/in", b"inside"),
            file("f", b"new"),
            dir("x/", 0o750, T0),
        ]),
    );
    let out = import(tmp.path(), &t, "a.ptar", false, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(tmp.path(), "a.ptar"), "f\nx/\nx/in\n");
    run_ok(tmp.path(), ptar_bin(), &["-x", "-f", "a.ptar", "-C", "out"]);
    assert_eq!(std::fs::read(tmp.path().join("out/f")).unwrap(), b"new");
    assert_eq!(
        std::fs::read(tmp.path().join("out/x/in")).unwrap(),
        b"inside"
    );
    let x = &entries(&tmp.path().join("a.ptar"))[&b"x"[..]];
    assert_eq!(x.mode, 0o750);
}

#[test]
fn nothing_replaces_a_full_directory_or_goes_under_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(
        tmp.path(),
        "t.tar",
        &tar(&[
            file("d/f", b"x"),
            file("d", b"file"),
            file("f", b"x"),
            file("f/g", b"y"),
        ]),
    );
    let out = import(tmp.path(), &t, "a.ptar", false, &[]);
    // Committed without the members that could not be stored: 3.
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("ptar: d: a directory holding entries"),
        "{err}"
    );
    assert!(err.contains("ptar: f/g: 'f' is not a directory"), "{err}");
    assert_eq!(listing(tmp.path(), "a.ptar"), "d/\nd/f\nf\n");
}

#[test]
fn appended_and_concatenated_tars_read_whole() {
    let Some(gnu) = gnu_tar() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let d = tmp.path().to_str().unwrap();
    // GNU tar -r: the second copy of a.txt wins.
    std::fs::write(src.join("a.txt"), "one").unwrap();
    run_ok(&src, gnu, &["-cf", &format!("{d}/r.tar"), "a.txt"]);
    std::fs::write(src.join("a.txt"), "two").unwrap();
    std::fs::write(src.join("b.txt"), "bee").unwrap();
    run_ok(&src, gnu, &["-rf", &format!("{d}/r.tar"), "a.txt", "b.txt"]);
    let out = import(tmp.path(), Path::new("r.tar"), "r.ptar", false, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(tmp.path(), "r.ptar"), "a.txt\nb.txt\n");
    run_ok(tmp.path(), ptar_bin(), &["-x", "-f", "r.ptar", "-C", "r"]);
    assert_eq!(std::fs::read(tmp.path().join("r/a.txt")).unwrap(), b"two");
    // Two whole archives one after the other (end blocks and record
    // padding between them), as `cat x.tar y.tar` makes.
    std::fs::write(src.join("x.txt"), "x").unwrap();
    std::fs::write(src.join("y.txt"), "y").unwrap();
    run_ok(&src, gnu, &["-cf", &format!("{d}/x.tar"), "x.txt"]);
    run_ok(&src, gnu, &["-cf", &format!("{d}/y.tar"), "y.txt"]);
    let mut both = std::fs::read(tmp.path().join("x.tar")).unwrap();
    both.extend(std::fs::read(tmp.path().join("y.tar")).unwrap());
    let t = write(tmp.path(), "xy.tar", &both);
    let out = import(tmp.path(), &t, "xy.ptar", true, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(tmp.path(), "xy.ptar"), "x.txt\ny.txt\n");
}

#[test]
fn a_hard_link_sorting_before_its_target_becomes_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(
        tmp.path(),
        "t.tar",
        &tar(&[file("z/file", b"shared"), hardlink("a/link", "z/file")]),
    );
    let out = import(tmp.path(), &t, "a.ptar", false, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = entries(&tmp.path().join("a.ptar"));
    assert_eq!(e[&b"a/link"[..]].kind, EntryType::File);
    assert_eq!(e[&b"a/link"[..]].nlink, 2);
    assert_eq!(
        e[&b"z/file"[..]].payload,
        Payload::Hardlink(b"a/link".to_vec())
    );
    run_ok(tmp.path(), ptar_bin(), &["-x", "-f", "a.ptar", "-C", "out"]);
    let a = std::fs::metadata(tmp.path().join("out/a/link")).unwrap();
    let z = std::fs::metadata(tmp.path().join("out/z/file")).unwrap();
    assert_eq!(a.ino(), z.ino(), "one file, two names");
    assert_eq!(
        std::fs::read(tmp.path().join("out/z/file")).unwrap(),
        b"shared"
    );
}

// ---- hostile input -------------------------------------------------------

#[test]
fn dotdot_names_are_skipped_and_absolute_ones_made_relative() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(
        tmp.path(),
        "t.tar",
        &tar(&[
            file("../escape", b"no"),
            file("/abs/path", b"abs"),
            file("./ok", b"ok"),
        ]),
    );
    let out = import(tmp.path(), &t, "a.ptar", false, &[]);
    let err = stderr(&out);
    // Committed without the members that could not be stored: 3.
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("ptar: ../escape: member name contains '..'; skipped"),
        "{err}"
    );
    assert!(
        err.contains("ptar: /abs/path: removing leading '/' from member names"),
        "{err}"
    );
    assert_eq!(listing(tmp.path(), "a.ptar"), "abs/\nabs/path\nok\n");
    // A leading '/' alone is a notice, not a failure.
    let t = write(tmp.path(), "abs.tar", &tar(&[file("/abs/path", b"abs")]));
    let out = import(tmp.path(), &t, "b.ptar", false, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("removing leading '/'"));
    assert_eq!(listing(tmp.path(), "b.ptar"), "abs/\nabs/path\n");
}

#[test]
fn a_hard_link_to_a_missing_target_is_a_problem_for_that_member() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(
        tmp.path(),
        "t.tar",
        &tar(&[hardlink("l", "nothere"), file("ok", b"ok")]),
    );
    let out = import(tmp.path(), &t, "a.ptar", false, &[]);
    let err = stderr(&out);
    // Committed without the members that could not be stored: 3.
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("ptar: l: hard link to 'nothere'"), "{err}");
    assert_eq!(listing(tmp.path(), "a.ptar"), "ok\n");
}

/// Streams that must stop the import, and a piece of the message each gives.
fn fatal_cases() -> Vec<(&'static str, Vec<u8>, Vec<&'static str>)> {
    let mut bad_sum = tar(&[file("a", b"x"), file("b", b"y")]);
    bad_sum[1024 + 10] ^= 1;
    let mut truncated = header(b"big", b'0', 10_000, 0o644, T0, b"");
    truncated.extend_from_slice(&[1u8; 100]);
    let mut sparse = pax(&[
        ("GNU.sparse.size", b"10"),
        ("GNU.sparse.numblocks", b"1"),
        ("GNU.sparse.map", b"0,100"),
    ]);
    sparse.extend(file("sp", &[7u8; 100]));
    let mut huge_pax = header(b"PaxHeaders/x", b'x', 2 << 20, 0o644, T0, b"");
    huge_pax.extend(file("a", b"x"));
    let long_name = header(b"././@LongLink", b'L', 1 << 30, 0o644, T0, b"");
    let mut overflow = pax_raw(b"99999999999999999999999 path=x\n");
    overflow.extend(file("a", b"x"));
    let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gzip.resize(600, 0);
    vec![
        (
            "bad checksum",
            bad_sum,
            vec!["header at byte 1024", "checksum does not match"],
        ),
        (
            "truncated member",
            truncated,
            vec!["member 'big'", "ends inside this member"],
        ),
        (
            "sparse map beyond the real size",
            tar(&[sparse]),
            vec!["member 'sp'", "ends past the file's size of 10 bytes"],
        ),
        (
            "pax header over the limit",
            tar(&[huge_pax]),
            vec!["pax extended header of 2097152 bytes is over the limit of 1048576 bytes"],
        ),
        (
            "1 GiB long name",
            long_name,
            vec!["GNU long name of 1073741824 bytes is over the limit"],
        ),
        (
            "pax length overflow",
            tar(&[overflow]),
            vec!["header at byte 0", "pax record length does not fit 64 bits"],
        ),
        ("gzip", gzip, vec!["gzip-compressed", "gzip -dc"]),
    ]
}

#[test]
fn fatal_stream_errors_abort_and_leave_the_archive_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("seed.txt"), "seed").unwrap();
    run_ok(
        tmp.path(),
        ptar_bin(),
        &["-c", "-f", "base.ptar", "seed.txt"],
    );
    let before = std::fs::read(tmp.path().join("base.ptar")).unwrap();
    for (what, bytes, needles) in fatal_cases() {
        let t = write(tmp.path(), "bad.tar", &bytes);
        for stdin in [false, true] {
            // Appending: the archive keeps every byte.
            let started = std::time::Instant::now();
            let out = import(tmp.path(), &t, "base.ptar", stdin, &[]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{what}: {err}");
            for n in &needles {
                assert!(err.contains(n), "{what}: wanted '{n}' in: {err}");
            }
            assert!(err.starts_with("ptar: "), "{what}: {err}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{what}: took {:?}",
                started.elapsed()
            );
            assert_eq!(
                std::fs::read(tmp.path().join("base.ptar")).unwrap(),
                before,
                "{what}: the archive changed"
            );
            // Creating: no archive is left behind.
            let out = import(tmp.path(), &t, "new.ptar", stdin, &[]);
            assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
            assert!(!tmp.path().join("new.ptar").exists(), "{what}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ptar-tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn the_snapshot_names_the_tar_and_options_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(tmp.path(), "in.tar", &tar(&[file("f", b"data")]));
    let out = import(
        tmp.path(),
        &t,
        "a.ptar",
        false,
        &["--name", "imported", "--tag", "t1", "--fast"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = import(tmp.path(), &t, "a.ptar", true, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a = ptar::Archive::open(&tmp.path().join("a.ptar"), None).unwrap();
    let snaps = a.snapshots().unwrap();
    assert_eq!(snaps.len(), 2, "the second import appends");
    assert_eq!(snaps[0].record.paths, vec![b"in.tar".to_vec()]);
    assert_eq!(snaps[0].record.name, "imported");
    assert_eq!(snaps[0].record.tags, vec!["t1".to_string()]);
    assert_eq!(snaps[1].record.paths, vec![b"-".to_vec()]);
    // Operands make no sense with --from-tar.
    let out = import(tmp.path(), &t, "a.ptar", false, &["extra"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--from-tar takes no PATH operands"));
}

// ---- the kernel ----------------------------------------------------------

/// Run with `cargo test -p ptar-tests --test tar_import -- --ignored`: the
/// Linux source tarball (`/work/corpus/linux-source.tar.xz`, or the tar
/// named by `PTAR_KERNEL_TAR`) through `ptar --from-tar -` and GNU tar;
/// the extracted trees must be equal, and time and peak RSS are printed.
#[test]
#[ignore]
fn kernel_tarball_imports_like_gnu_tar_extracts() {
    let Some(gnu) = gnu_tar() else { return };
    let src = std::env::var_os("PTAR_KERNEL_TAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/corpus/linux-source.tar.xz"));
    if !src.exists() {
        eprintln!("{} not found; skipped", src.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("k.tar");
    if src.extension().is_some_and(|e| e == "xz") {
        let status = Command::new("xz")
            .arg("-dc")
            .arg(&src)
            .stdout(std::fs::File::create(&plain).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
    } else {
        std::fs::copy(&src, &plain).unwrap();
    }
    /// Runs `/usr/bin/time -v` on a command with `k.tar` on stdin: wall
    /// seconds and peak RSS in KiB.
    fn timed(dir: &Path, stdin: &Path, prog: &Path, args: &[&str]) -> (f64, u64) {
        let t0 = std::time::Instant::now();
        let out = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(prog)
            .args(args)
            .current_dir(dir)
            .stdin(std::fs::File::open(stdin).unwrap())
            .output()
            .unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", prog.display());
        let rss = err
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Maximum resident set size (kbytes): ")
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (secs, rss)
    }
    let d = tmp.path();
    std::fs::create_dir(d.join("by-tar")).unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (tar_s, tar_rss) = timed(d, &plain, gnu, &["-xf", "-", "-C", "by-tar"]);
    let (imp_s, imp_rss) = timed(d, &plain, ptar_bin(), &["--from-tar", "-", "-f", "k.ptar"]);
    let (ext_s, ext_rss) = timed(
        d,
        Path::new("/dev/null"),
        ptar_bin(),
        &["-x", "-f", "k.ptar", "-C", "by-ptar"],
    );
    eprintln!(
        "kernel: GNU tar -x {tar_s:.2} s, {tar_rss} KiB; ptar --from-tar {imp_s:.2} s, {imp_rss} KiB \
         (time {:.2}x, RSS {:.2}x); ptar -x {ext_s:.2} s, {ext_rss} KiB",
        imp_s / tar_s,
        imp_rss as f64 / tar_rss as f64
    );
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference", "by-tar", "by-ptar"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    // Metadata of every path: type, mode, size and mtime (directories too).
    let a = ptar_tests::fidelity::walk(&d.join("by-tar"));
    let b = ptar_tests::fidelity::walk(&d.join("by-ptar"));
    assert_eq!(a.len(), b.len());
    let mut tar_lost = 0;
    for (p, m) in &a {
        let n = &b[p];
        assert_eq!((m.mode(), m.len()), (n.mode(), n.len()), "{}", p.display());
        // GNU tar sets a directory's time when the members leave it; when
        // more of its members come later (the kernel tarball lists `perf/`,
        // then `perf-security.rst`, then `perf/*`) it keeps the time of
        // extraction. ptar has the tar's time for it.
        if m.is_dir() && m.mtime() >= started && n.mtime() < started {
            tar_lost += 1;
            continue;
        }
        assert_eq!(m.mtime(), n.mtime(), "{}", p.display());
    }
    eprintln!("directory times GNU tar did not restore: {tar_lost}");
    eprintln!("{} paths compared", a.len());
}
