//! Running GNU tar (and bsdtar) from the tests, and GNU tar's listing of a
//! tar in a form two tars can be compared by.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const GNU_TAR: &str = "/usr/bin/tar";
pub const BSDTAR: &str = "/usr/bin/bsdtar";

/// GNU tar, or `None` with the reason printed.
pub fn gnu_tar() -> Option<&'static Path> {
    let p = Path::new(GNU_TAR);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: GNU tar is not installed at {GNU_TAR}");
        None
    }
}

/// Runs `prog` in `dir`; its output, whatever its exit status.
pub fn run_any(dir: &Path, prog: &Path, args: &[&OsStr]) -> Output {
    Command::new(prog)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `prog` in `dir`, asserting success; its output.
pub fn run(dir: &Path, prog: &Path, args: &[&OsStr]) -> Output {
    let out = run_any(dir, prog, args);
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        prog.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn os(args: &[&str]) -> Vec<&'static OsStr> {
    args.iter()
        .map(|a| OsStr::new(Box::leak(a.to_string().into_boxed_str())))
        .collect()
}

/// GNU tar's long listing with xattrs, ACLs and full-resolution times.
/// GNU tar writes a file's xattrs in the order the file system lists them
/// and ptar stores them sorted by name, so each member's `x:` lines are
/// sorted: the only normalization.
pub fn listing(dir: &Path, tar: &Path, archive: &Path) -> Vec<Vec<u8>> {
    let out = run(
        dir,
        tar,
        &[
            OsStr::new("--xattrs"),
            OsStr::new("--xattrs-include=*"),
            OsStr::new("--acls"),
            OsStr::new("--full-time"),
            OsStr::new("--quoting-style=literal"),
            OsStr::new("-tvv"),
            OsStr::new("-f"),
            archive.as_os_str(),
        ],
    );
    // Each member: its line, then its indented `a:` and `x:` lines.
    let mut members: Vec<Vec<Vec<u8>>> = Vec::new();
    for l in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match members.last_mut() {
            Some(m) if l.starts_with(b"  ") => m.push(l.to_vec()),
            _ => members.push(vec![l.to_vec()]),
        }
    }
    for m in &mut members {
        m[1..].sort();
    }
    members.concat()
}

/// The kernel source tree the ignored kernel tests use: `PTAR_KERNEL_TREE`,
/// else `/work/corpus/kernel-v1` (built by `shared/bench/make-corpus.sh`);
/// `None`, with the reason printed, when it is not there.
pub fn kernel_tree() -> Option<PathBuf> {
    let tree = std::env::var_os("PTAR_KERNEL_TREE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/corpus/kernel-v1"));
    if tree.is_dir() {
        Some(tree)
    } else {
        eprintln!("skipped: no kernel tree at {}", tree.display());
        None
    }
}

/// `tar -tv --full-time` of `archive`, names as they are.
pub fn long_listing(dir: &Path, tar: &Path, archive: &Path) -> Vec<u8> {
    run(
        dir,
        tar,
        &[
            OsStr::new("--full-time"),
            OsStr::new("--quoting-style=literal"),
            OsStr::new("-tv"),
            OsStr::new("-f"),
            archive.as_os_str(),
        ],
    )
    .stdout
}

/// `tar --xattrs --acls -d -f ARCHIVE -C TREE`, which must succeed: what
/// GNU tar finds different between the tar and the tree (empty when nothing).
pub fn compare(dir: &Path, tar: &Path, archive: &Path, tree: &str) -> Vec<u8> {
    run(
        dir,
        tar,
        &[
            OsStr::new("--xattrs"),
            OsStr::new("--xattrs-include=*"),
            OsStr::new("--acls"),
            OsStr::new("-d"),
            OsStr::new("-f"),
            archive.as_os_str(),
            OsStr::new("-C"),
            OsStr::new(tree),
        ],
    )
    .stdout
}
