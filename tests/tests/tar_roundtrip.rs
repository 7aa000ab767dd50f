//! tar → ptar → tar: a tar GNU tar made comes back out of ptar as a tar GNU
//! tar lists the same way, member for member, and finds no difference from
//! the tree it was made of.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ptar_tests::fidelity::build;
use ptar_tests::gnutar::{compare, gnu_tar, kernel_tree, listing, long_listing, os, run};
use ptar_tests::ptar_bin;

/// `ptar ARGS` in `dir` with standard output into `out` (or discarded).
fn ptar_to(dir: &Path, args: &[&OsStr], out: Option<&Path>) {
    let stdout = match out {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    let o = Command::new(ptar_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .env_remove("PTAR_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ptar {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// GNU tar's tar of `src/dir` in `format`, through ptar and back.
fn round_trip(dir: &Path, tar: &Path, format: &str) -> (PathBuf, PathBuf) {
    let mut args = vec!["--sort=name", "--sparse", "-cf"];
    let name = format!("in-{format}.tar");
    args.push(&name);
    args.extend(["-C", "src", "dir"]);
    let fmt = format!("--format={format}");
    args.insert(0, &fmt);
    if format == "posix" {
        args.splice(0..0, ["--xattrs", "--xattrs-include=*", "--acls"]);
    }
    run(dir, tar, &os(&args));
    let archive = format!("{format}.ptar");
    ptar_to(dir, &os(&["--from-tar", &name, "-f", &archive]), None);
    let back = dir.join(format!("out-{format}.tar"));
    ptar_to(dir, &os(&["--to-tar", "-f", &archive]), Some(&back));
    (dir.join(name), back)
}

#[test]
fn gnu_tar_lists_and_compares_the_round_trip_as_its_own_tar() {
    let Some(tar) = gnu_tar() else { return };
    let as_root = rustix::process::geteuid().is_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = build(&dir.join("src"), as_root);
    let (gnu, ours) = round_trip(dir, tar, "posix");
    // Every member, with type, mode, owner, size, time to the nanosecond,
    // link target, xattrs and ACLs.
    let (want, got) = (listing(dir, tar, &gnu), listing(dir, tar, &ours));
    assert_eq!(
        String::from_utf8_lossy(&got.join(&b'\n')),
        String::from_utf8_lossy(&want.join(&b'\n'))
    );
    let text = String::from_utf8_lossy(&want.join(&b'\n')).into_owned();
    assert!(text.contains("dir/sparse.img"), "{text}");
    if t.xattrs {
        assert!(text.contains("user.origin"), "xattrs are listed: {text}");
    }
    if t.acls {
        assert!(text.contains("user:1001:r--"), "ACLs are listed: {text}");
    }
    // GNU tar finds nothing that differs from the tree.
    let d = compare(dir, tar, &ours, "src");
    assert!(d.is_empty(), "{}", String::from_utf8_lossy(&d));
}

#[test]
fn a_gnu_format_tar_round_trips_too() {
    let Some(tar) = gnu_tar() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(&dir.join("src"), rustix::process::geteuid().is_root());
    // GNU format keeps whole seconds: make the tree's times whole, so that
    // comparing with it is fair to both tars.
    use std::os::unix::fs::MetadataExt;
    let mut all: Vec<_> = ptar_tests::fidelity::walk(&dir.join("src"))
        .into_iter()
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0));
    for (rel, md) in all {
        filetime::set_symlink_file_times(
            dir.join("src").join(rel),
            filetime::FileTime::from_unix_time(md.atime(), 0),
            filetime::FileTime::from_unix_time(md.mtime(), 0),
        )
        .unwrap();
    }
    let (gnu, ours) = round_trip(dir, tar, "gnu");
    // GNU format keeps whole seconds and no xattrs: the plain long listing.
    let list = |p: &Path| long_listing(dir, tar, p);
    assert_eq!(
        String::from_utf8_lossy(&list(&ours)),
        String::from_utf8_lossy(&list(&gnu))
    );
    let d = run(
        dir,
        tar,
        &os(&["-d", "-f", ours.to_str().unwrap(), "-C", "src"]),
    );
    assert!(
        d.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&d.stdout)
    );
}

/// GNU tar's tar of the kernel tree (`/work/corpus/kernel-v1`, or
/// `PTAR_KERNEL_TREE`), piped into `ptar --from-tar -`, then `--to-tar`
/// piped into GNU tar: the same long listing as GNU tar's own tar, and
/// `tar --compare` against the tree finds nothing. Run with `--ignored`.
#[test]
#[ignore]
fn the_kernel_tree_round_trips_through_gnu_tar() {
    let Some(tree) = kernel_tree() else { return };
    let Some(tar) = gnu_tar() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (parent, base) = (tree.parent().unwrap(), tree.file_name().unwrap());
    let gnu = dir.join("k.tar");
    run(
        dir,
        tar,
        &[
            OsStr::new("--format=posix"),
            OsStr::new("--sort=name"),
            OsStr::new("-cf"),
            gnu.as_os_str(),
            OsStr::new("-C"),
            parent.as_os_str(),
            base,
        ],
    );
    // From standard input, as a pipe would give it.
    let o = Command::new(ptar_bin())
        .args(["--from-tar", "-", "-f", "k.ptar"])
        .current_dir(dir)
        .stdin(std::fs::File::open(&gnu).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = dir.join("back.tar");
    ptar_to(dir, &os(&["--to-tar", "-f", "k.ptar"]), Some(&ours));
    let list = |p: &Path| long_listing(dir, tar, p);
    let (want, got) = (list(&gnu), list(&ours));
    assert!(want.len() > 1 << 20, "a listing of the whole tree");
    assert!(got == want, "the listings differ");
    let d = run(
        dir,
        tar,
        &[
            OsStr::new("-d"),
            OsStr::new("-f"),
            ours.as_os_str(),
            OsStr::new("-C"),
            parent.as_os_str(),
        ],
    );
    assert!(
        d.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&d.stdout)
    );
    eprintln!(
        "kernel: {} members listed the same; tar -d finds no difference",
        want.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    );
}
