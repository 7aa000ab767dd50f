//! Helpers shared by ptar's end-to-end tests, and the test-vector generator.

pub mod fidelity;
pub mod forge;
pub mod gnutar;
pub mod strace;
pub mod vectors;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path of the `ptar` binary, built once per test process with the same
/// cargo that runs the tests, so it is never stale.
pub fn ptar_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // PTAR_TEST_BIN runs the suite against another build (an older
        // binary, to see a new test fail on the code it is meant to catch).
        if let Some(p) = std::env::var_os("PTAR_TEST_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>/ptar
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile directory");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "ptar-cli", "--bin", "ptar"]);
        if profile_dir.file_name() == Some(OsStr::new("release")) {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("running cargo build for the ptar binary");
        assert!(status.success(), "cargo build -p ptar-cli failed");
        let bin = profile_dir.join("ptar");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

/// Runs `ptar` with `args` and the given environment, no stdin.
pub fn ptar(args: &[&OsStr], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(ptar_bin());
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .env_remove("PTAR_PASSPHRASE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running ptar")
}

/// Runs `ptar` with string arguments in `dir`, no stdin, no passphrase.
pub fn ptar_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(ptar_bin())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .env_remove("PTAR_PASSPHRASE")
        .output()
        .expect("running ptar")
}

/// Shorthand for string arguments.
pub fn ptar_s(args: &[&str], env: &[(&str, &str)]) -> Output {
    let a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    ptar(&a, env)
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: &[u8], n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    let mut h = blake3::Hasher::new_derive_key("ptar tests random bytes");
    h.update(seed);
    h.finalize_xof().fill(&mut v);
    v
}

/// What a test tree holds at one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory with permission bits.
    Dir { mode: u32 },
    /// A regular file.
    File { mode: u32, content: Vec<u8> },
    /// A symlink.
    Symlink { target: Vec<u8> },
}

/// A tree described by relative path → node (parents before children).
pub type Tree = BTreeMap<Vec<u8>, Node>;

/// Writes `tree` under `root`, setting modes and the given mtimes.
pub fn write_tree(root: &Path, tree: &Tree, mtimes: &BTreeMap<Vec<u8>, (i64, u32)>) {
    std::fs::create_dir_all(root).unwrap();
    for (rel, node) in tree {
        let p = root.join(OsStr::from_bytes(rel));
        match node {
            Node::Dir { .. } => std::fs::create_dir_all(&p).unwrap(),
            Node::File { content, .. } => std::fs::write(&p, content).unwrap(),
            Node::Symlink { target } => {
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).unwrap()
            }
        }
    }
    // Modes and times after all content, deepest first, so directories keep theirs.
    for (rel, node) in tree.iter().rev() {
        let p = root.join(OsStr::from_bytes(rel));
        match node {
            Node::Dir { mode } | Node::File { mode, .. } => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap()
            }
            Node::Symlink { .. } => {}
        }
        if let Some((s, ns)) = mtimes.get(rel) {
            let t = filetime::FileTime::from_unix_time(*s, *ns);
            filetime::set_symlink_file_times(&p, t, t).unwrap();
        }
    }
}

/// Reads a directory back as a [`Tree`] with mtimes (symlink times ignored).
pub fn read_tree(root: &Path) -> (Tree, BTreeMap<Vec<u8>, (i64, u32)>) {
    let mut tree = Tree::new();
    let mut times = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for de in std::fs::read_dir(&dir).unwrap() {
            let de = de.unwrap();
            let r = rel.join(de.file_name());
            let key = r.as_os_str().as_bytes().to_vec();
            let md = std::fs::symlink_metadata(de.path()).unwrap();
            let ft = md.file_type();
            if ft.is_symlink() {
                let t = std::fs::read_link(de.path()).unwrap();
                tree.insert(
                    key,
                    Node::Symlink {
                        target: t.as_os_str().as_bytes().to_vec(),
                    },
                );
                continue;
            }
            times.insert(key.clone(), (md.mtime(), md.mtime_nsec() as u32));
            if ft.is_dir() {
                tree.insert(
                    key,
                    Node::Dir {
                        mode: md.mode() & 0o7777,
                    },
                );
                stack.push(r);
            } else {
                tree.insert(
                    key,
                    Node::File {
                        mode: md.mode() & 0o7777,
                        content: std::fs::read(de.path()).unwrap(),
                    },
                );
            }
        }
    }
    (tree, times)
}

/// Prefixes every path of `tree` with `prefix/`.
pub fn prefixed(prefix: &str, tree: &Tree) -> Tree {
    tree.iter()
        .map(|(k, v)| {
            let mut p = prefix.as_bytes().to_vec();
            p.push(b'/');
            p.extend_from_slice(k);
            (p, v.clone())
        })
        .collect()
}

/// Creates `archive` (with `opts`) holding one snapshot of `src`.
pub fn create_snapshot(archive: &Path, src: &Path, opts: ptar::CreateOptions) -> ptar::Id {
    let w = ptar::Writer::create(archive, opts).unwrap();
    add_and_commit(w, src)
}

/// Appends a snapshot of `src` to `archive`.
///
/// A test that spawns a process while another test of the same binary has
/// just closed an archive can make that archive look busy for a moment: the
/// child holds a copy of every descriptor of the test process (the archive's
/// locked one included) until it executes its program. An append refused as
/// busy is therefore tried again a few times, as nothing else in these
/// tests writes to an archive another test made.
pub fn append_snapshot(archive: &Path, src: &Path, passphrase: Option<&[u8]>) -> ptar::Id {
    let mut tries = 0;
    let w = loop {
        match ptar::Writer::append(archive, passphrase) {
            Err(ptar::Error::Busy(_)) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            w => break w.unwrap(),
        }
    };
    add_and_commit(w, src)
}

fn add_and_commit<W: ptar::store::Sink>(mut w: ptar::Writer<W>, src: &Path) -> ptar::Id {
    let meta = ptar::SnapshotMeta::default();
    let (id, out) = w
        .add_snapshot(&[src.to_path_buf()], &meta, &ptar::progress::NoProgress)
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    w.commit().unwrap();
    id
}

/// Runs `ptar` with `args` in `dir` (stdin from /dev/null, stdout and
/// stderr to files) through `peak_rss` (the `peak-rss` binary of this
/// crate, `env!("CARGO_BIN_EXE_peak-rss")` in a test) and returns its exit
/// code, stdout, stderr and peak resident memory in bytes, as the kernel
/// measured it for that one process: a deterministic figure, independent of
/// timing and of the test process's own memory.
pub fn ptar_peak_rss(peak_rss: &Path, dir: &Path, args: &[&str]) -> (i32, String, String, u64) {
    let out = tempfile_in(dir, "stdout");
    let err = tempfile_in(dir, "stderr");
    let rss = tempfile_in(dir, "rss");
    let status = Command::new(peak_rss)
        .arg(&rss)
        .arg(ptar_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("PTAR_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .status()
        .expect("running peak-rss");
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    let (o, e, r) = (read(&out), read(&err), read(&rss));
    for p in [out, err, rss] {
        let _ = std::fs::remove_file(p);
    }
    let peak = r
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("peak-rss wrote no figure: {e}"));
    (status.code().expect("peak-rss exits"), o, e, peak)
}

fn tempfile_in(dir: &Path, what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!(".ptar-test-{what}-{}-{n}", std::process::id()))
}
