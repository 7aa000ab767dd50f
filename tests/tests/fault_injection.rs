//! Fault injection: every writing command, and extraction, meets a failing
//! system call at each call number N and still leaves the archive in a state
//! its exit code names.
//!
//! For each scenario (create, create over an existing archive, append,
//! passwd, sync into a new and into an existing archive, extract, and
//! extract where files cannot be made unnamed and linked in) the test
//! first traces one clean run to count the calls of each system call that
//! ptar makes after its start-up (the dynamic loader's calls, made before
//! `main`, are counted with `ptar --version` and skipped). It then runs the
//! command again under `strace -e inject=SYSCALL:error=ERRNO:when=N` for
//! EIO, ENOSPC and EINTR at a sample of call numbers N: every call when a
//! syscall is made few times, otherwise the first calls, the last calls
//! densely (the commit happens at the end), and evenly spread ones between.
//! strace counts calls per thread, so call N of every thread fails; that is
//! still one fault at one moment of the run, and the assertions hold for any
//! thread interleaving.
//!
//! After each trial:
//! - the command did not panic (no exit 101, no abort, no "panicked");
//! - the archive opens at exactly the previous generation or the new one
//!   (for a new archive: it is absent, or complete), and its bytes up to the
//!   previous committed end are unchanged;
//! - the exit code agrees: 2 when nothing was committed; 0, 1 or 3 when the
//!   new generation is there; an EINTR is retried, so the command succeeds;
//! - `--verify --full` passes and the earlier snapshot extracts
//!   byte-identical;
//! - the next append succeeds;
//! - no temporary file (`.ptar-tmp-`, `.ptar-part-`) is left anywhere.
//!
//! Extraction is checked the same way: no file under its final name has
//! content other than the old or the new version, no directory is left
//! `drwx------`, exit 0 means the whole tree came out.
//!
//! `mmap` faults are injected only at the calls that map a file (found in the
//! traced run); anonymous mappings are the allocator's and thread stacks'
//! (their failure is running out of memory, which Rust aborts on by design),
//! and the allocator is told (`GLIBC_TUNABLES`) not to use mmap at all so
//! that the call numbers stay those of file mappings.
//!
//! The test is skipped, saying so, when strace is missing or cannot trace
//! here (`.ci/run` installs it). `PTAR_FAULT_SAMPLES=N` changes how many
//! call numbers are tried per syscall (default 0: every call).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::{Archive, VerifyOptions};
use ptar_tests::{ptar_bin, random_bytes, strace};

/// The system calls faults are injected into.
const SYSCALLS: &[&str] = &[
    "write",
    "fsync",
    "fdatasync",
    "ftruncate",
    "rename",
    "renameat",
    "renameat2",
    "linkat",
    "openat",
    "pread64",
    "flock",
    "mmap",
];

const ERRNOS: &[&str] = &["EIO", "ENOSPC", "EINTR"];

const OLD_PASS: &str = "old passphrase";
const NEW_PASS: &str = "new passphrase";
/// Argon2id at its cheapest, so that passwd trials take milliseconds.
const KDF: &str = "8,1,1";

/// Environment that keeps glibc's allocator off mmap (see the module doc).
const TUNABLES: (&str, &str) = (
    "GLIBC_TUNABLES",
    "glibc.malloc.mmap_max=0:glibc.malloc.arena_max=1",
);

/// A tree as path -> description (type, mode bits for directories and
/// files, content hash or link target).
type Digest = BTreeMap<Vec<u8>, String>;

fn digest(root: &Path) -> Digest {
    let mut out = Digest::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for de in rd {
            let de = de.unwrap();
            let r = rel.join(de.file_name());
            let md = std::fs::symlink_metadata(de.path()).unwrap();
            let v = if md.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(de.path()).unwrap().display())
            } else if md.is_dir() {
                stack.push(r.clone());
                "dir".to_string()
            } else {
                let content = std::fs::read(de.path()).unwrap();
                format!(
                    "file {:o} {}",
                    md.mode() & 0o777,
                    blake3::hash(&content).to_hex()
                )
            };
            out.insert(r.as_os_str().as_bytes().to_vec(), v);
        }
    }
    out
}

/// Three versions of a small tree: a second with edits, additions and a
/// removal, and a third for the append made after each trial.
fn write_trees(base: &Path) -> [PathBuf; 3] {
    let mut roots = Vec::new();
    for v in 1..=3u8 {
        let root = base.join(format!("src{v}"));
        let tree = root.join("tree");
        std::fs::create_dir_all(tree.join("docs/deep")).unwrap();
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        for i in 0..12u8 {
            let changed = v > 1 && i % 4 == 0;
            let text = format!("document {i} version {}\n", if changed { v } else { 1 });
            std::fs::write(tree.join(format!("docs/doc{i}.txt")), text.repeat(40)).unwrap();
        }
        if v < 3 {
            std::fs::write(tree.join("docs/deep/only-early.txt"), b"early\n").unwrap();
        }
        if v > 1 {
            std::fs::write(
                tree.join(format!("docs/deep/new{v}.txt")),
                format!("new in {v}\n"),
            )
            .unwrap();
        }
        // Several chunks, so that reading and writing it takes many calls.
        let mut big = random_bytes(b"big file", 600 << 10);
        if v > 1 {
            big[300 << 10] ^= v;
        }
        std::fs::write(tree.join("bin/big.bin"), big).unwrap();
        std::os::unix::fs::symlink("docs/doc1.txt", tree.join("readme")).unwrap();
        roots.push(root);
    }
    [roots[0].clone(), roots[1].clone(), roots[2].clone()]
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    srcs: [PathBuf; 3],
    digests: [Digest; 3],
    /// Plain, two generations: src1 then src2.
    plain: PathBuf,
    /// Encrypted with OLD_PASS, one generation: src1.
    encrypted: PathBuf,
    /// Plain, one generation: src1 (a sync destination).
    single: PathBuf,
    old_pass: PathBuf,
    new_pass: PathBuf,
    /// How many calls of each syscall `ptar --version` makes (start-up).
    startup: BTreeMap<String, usize>,
}

fn run_ok(args: &[&std::ffi::OsStr], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(ptar_bin());
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("PTAR_PASSPHRASE");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "ptar {:?}: {:?}\n{}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn os(s: impl AsRef<std::ffi::OsStr>) -> OsString {
    s.as_ref().to_os_string()
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let srcs = write_trees(&dir);
        let digests = [
            digest(&srcs[0].join("tree")),
            digest(&srcs[1].join("tree")),
            digest(&srcs[2].join("tree")),
        ];
        let plain = dir.join("plain.ptar");
        let encrypted = dir.join("encrypted.ptar");
        let single = dir.join("single.ptar");
        let old_pass = dir.join("old.pass");
        let new_pass = dir.join("new.pass");
        std::fs::write(&old_pass, OLD_PASS).unwrap();
        std::fs::write(&new_pass, NEW_PASS).unwrap();
        for (mode, archive, src) in [
            ("-c", &plain, &srcs[0]),
            ("-r", &plain, &srcs[1]),
            ("-c", &single, &srcs[0]),
        ] {
            let a: Vec<OsString> = vec![
                os(mode),
                os("-f"),
                os(archive),
                os("-C"),
                os(src),
                os("tree"),
            ];
            let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
            run_ok(&a, &dir, &[]);
        }
        let a: Vec<OsString> = vec![
            os("-c"),
            os("--encrypt"),
            os("--kdf-params"),
            os(KDF),
            os("--passphrase-file"),
            os(&old_pass),
            os("-f"),
            os(&encrypted),
            os("-C"),
            os(&srcs[0]),
            os("tree"),
        ];
        let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        run_ok(&a, &dir, &[]);
        let startup = strace::count_calls(ptar_bin(), &["--version"], &dir, &[], SYSCALLS)
            .into_iter()
            .map(|(k, v)| (k, v.per_thread_max))
            .collect();
        Fixture {
            _tmp: tmp,
            dir,
            srcs,
            digests,
            plain,
            encrypted,
            single,
            old_pass,
            new_pass,
            startup,
        }
    }
}

/// Call numbers to try out of `first..=last`: all of them when there are
/// few, else some at the start, many at the end, and some between.
fn sample(first: usize, last: usize, samples: usize) -> Vec<usize> {
    if last < first {
        return Vec::new();
    }
    let n = last - first + 1;
    if samples == 0 || n <= samples {
        return (first..=last).collect();
    }
    let mut set = BTreeSet::new();
    let head = samples / 4;
    let tail = samples / 2;
    let middle = samples - head - tail;
    for i in 0..head {
        set.insert(first + i);
    }
    for i in 0..tail {
        set.insert(last - i);
    }
    for k in 1..=middle {
        set.insert(first + k * n / (middle + 1));
    }
    set.into_iter().collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scenario {
    Create,
    CreateOver,
    Append,
    Passwd,
    SyncNew,
    SyncExisting,
    Extract,
    /// Extraction where files cannot be made unnamed and linked in (as
    /// without /proc and without the privilege to link a descriptor): they
    /// are written under temporary names and renamed.
    ExtractNamed,
}

const SCENARIOS: &[Scenario] = &[
    Scenario::Create,
    Scenario::CreateOver,
    Scenario::Append,
    Scenario::Passwd,
    Scenario::SyncNew,
    Scenario::SyncExisting,
    Scenario::Extract,
    Scenario::ExtractNamed,
];

/// The injections a scenario always runs under: for `ExtractNamed`, the
/// walking thread's first two `linkat` calls (ptar's tries of the two ways
/// to link an unnamed file in) fail.
fn base_injects(s: Scenario) -> &'static [&'static str] {
    match s {
        Scenario::ExtractNamed => &["linkat:error=ENOENT:when=1..2"],
        _ => &[],
    }
}

/// One trial's working directory, laid out for its scenario, and the
/// command line to run there.
fn prepare(fx: &Fixture, s: Scenario, d: &Path) -> Vec<OsString> {
    std::fs::create_dir_all(d).unwrap();
    let a = d.join("a.ptar");
    let tree = |i: usize| vec![os("-C"), os(&fx.srcs[i]), os("tree")];
    let mut args: Vec<OsString> = Vec::new();
    match s {
        Scenario::Create => {
            args.extend([os("-c"), os("-f"), os(&a)]);
            args.extend(tree(1));
        }
        Scenario::CreateOver => {
            std::fs::copy(&fx.plain, &a).unwrap();
            args.extend([os("-c"), os("--replace-archive"), os("-f"), os(&a)]);
            args.extend(tree(2));
        }
        Scenario::Append => {
            std::fs::copy(&fx.plain, &a).unwrap();
            args.extend([os("-r"), os("-f"), os(&a)]);
            args.extend(tree(2));
        }
        Scenario::Passwd => {
            std::fs::copy(&fx.encrypted, &a).unwrap();
            args.extend([
                os("passwd"),
                os("-f"),
                os(&a),
                os("--passphrase-file"),
                os(&fx.old_pass),
                os("--new-passphrase-file"),
                os(&fx.new_pass),
                os("--kdf-params"),
                os(KDF),
            ]);
        }
        Scenario::SyncNew => {
            std::fs::copy(&fx.plain, d.join("src.ptar")).unwrap();
            args.extend([os("sync"), os("-f"), os(d.join("src.ptar")), os(&a)]);
        }
        Scenario::SyncExisting => {
            std::fs::copy(&fx.plain, d.join("src.ptar")).unwrap();
            std::fs::copy(&fx.single, &a).unwrap();
            args.extend([os("sync"), os("-f"), os(d.join("src.ptar")), os(&a)]);
        }
        Scenario::Extract | Scenario::ExtractNamed => {
            std::fs::copy(&fx.plain, &a).unwrap();
            // The destination holds the older version: a failed extraction
            // must leave each file old or new, never cut short.
            let out = d.join("out");
            copy_tree(&fx.srcs[0].join("tree"), &out.join("tree"));
            args.extend([os("-x"), os("-f"), os(&a), os("-C"), os(&out)]);
        }
    }
    args
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for de in std::fs::read_dir(from).unwrap() {
        let de = de.unwrap();
        let ft = de.file_type().unwrap();
        let t = to.join(de.file_name());
        if ft.is_dir() {
            copy_tree(&de.path(), &t);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(de.path()).unwrap(), &t).unwrap();
        } else {
            std::fs::copy(de.path(), &t).unwrap();
        }
    }
}

/// Every entry under `d`, at any depth (symlinks not followed).
fn entries_under(d: &Path) -> Vec<std::fs::DirEntry> {
    let mut out = Vec::new();
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for de in rd {
            let de = de.unwrap();
            if de.file_type().unwrap().is_dir() {
                stack.push(de.path());
            }
            out.push(de);
        }
    }
    out
}

/// Temporary files left anywhere under `d`.
fn litter(d: &Path) -> Vec<PathBuf> {
    entries_under(d)
        .into_iter()
        .filter(|de| {
            let name = de.file_name();
            let n = name.as_bytes();
            n.windows(10).any(|w| w == b".ptar-tmp-") || n.windows(11).any(|w| w == b".ptar-part-")
        })
        .map(|de| de.path())
        .collect()
}

/// Directories under `d` left with no permission for group and others.
fn locked_dirs(d: &Path) -> Vec<PathBuf> {
    entries_under(d)
        .into_iter()
        .filter(|de| {
            de.file_type().unwrap().is_dir() && de.metadata().unwrap().mode() & 0o777 == 0o700
        })
        .map(|de| de.path())
        .collect()
}

struct Trial {
    scenario: Scenario,
    syscall: &'static str,
    errno: &'static str,
    n: usize,
}

/// How a trial's process ended.
#[derive(Debug)]
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
}

fn run_trial(fx: &Fixture, t: &Trial, d: &Path) -> Result<(), String> {
    let args = prepare(fx, t.scenario, d);
    let a = d.join("a.ptar");
    let before: Option<Vec<u8>> = std::fs::read(&a).ok();
    let src_before = std::fs::read(d.join("src.ptar")).ok();
    let inject = format!("{}:error={}:when={}", t.syscall, t.errno, t.n);
    let mut injects = base_injects(t.scenario).to_vec();
    injects.push(&inject);
    let mut c = strace::command_injecting(ptar_bin(), &[t.syscall, "linkat"], &injects, None);
    c.args(&args)
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .env_remove("PTAR_PASSPHRASE")
        .env(TUNABLES.0, TUNABLES.1);
    let out = c.output().unwrap();
    let ended = Ended {
        code: out.status.code(),
        signal: out.status.signal(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let fail = |what: String| Err(format!("{what}\n  ended: {ended:?}"));
    if ended.code == Some(101) || ended.signal.is_some() || ended.stderr.contains("panicked") {
        return fail("the command panicked or died".into());
    }
    let code = ended.code.unwrap_or(-1);
    if !matches!(code, 0..=3) {
        return fail(format!("exit code {code} is not one ptar documents"));
    }
    let left = litter(d);
    if !left.is_empty() {
        return fail(format!("temporary files left: {left:?}"));
    }
    if let Some(sb) = &src_before {
        if std::fs::read(d.join("src.ptar")).ok().as_ref() != Some(sb) {
            return fail("sync changed its source archive".into());
        }
    }

    if matches!(t.scenario, Scenario::Extract | Scenario::ExtractNamed) {
        return check_extract(fx, t, d, code).or_else(fail);
    }

    // Which state is the archive in?
    let (pass, prev_gens, committed) = match t.scenario {
        Scenario::Create | Scenario::SyncNew => {
            if !a.exists() {
                (None, 0, false)
            } else {
                (None, 0, true)
            }
        }
        Scenario::Passwd => {
            let prev = 1;
            let before = before.as_ref().unwrap();
            let now = std::fs::read(&a).unwrap_or_default();
            if now.len() < before.len() || now[..before.len()] != before[..] {
                return fail("bytes of the previous generations changed".into());
            }
            match Archive::open(&a, Some(NEW_PASS.as_bytes())) {
                Ok(ar) if ar.store().generation_count() == prev + 1 => (Some(NEW_PASS), prev, true),
                _ => (Some(OLD_PASS), prev, false),
            }
        }
        _ => {
            let prev = if t.scenario == Scenario::SyncExisting {
                1
            } else {
                2
            };
            let before = before.as_ref().unwrap();
            let now = std::fs::read(&a).unwrap_or_default();
            let same_prefix = now.len() >= before.len() && now[..before.len()] == before[..];
            if t.scenario == Scenario::CreateOver && !same_prefix {
                // A new archive replaced the old one.
                (None, 0, true)
            } else if !same_prefix {
                return fail("bytes of the previous generations changed".into());
            } else {
                let ar = Archive::open(&a, None).map_err(|e| format!("does not open: {e}"));
                let gens = match ar {
                    Ok(ar) => ar.store().generation_count(),
                    Err(e) => return fail(e),
                };
                if gens == prev {
                    (None, prev, false)
                } else if gens == prev + 1 {
                    (None, prev, true)
                } else {
                    return fail(format!("{gens} generations after the trial, {prev} before"));
                }
            }
        }
    };
    if committed && !matches!(code, 0 | 1 | 3) {
        return fail("committed, but the exit code says it was not".into());
    }
    if !committed && code != 2 {
        return fail("not committed, but the exit code says it was".into());
    }
    if !committed {
        if let (Some(b), Scenario::CreateOver) = (&before, t.scenario) {
            if std::fs::read(&a).ok().as_ref() != Some(b) {
                return fail("a failed create changed the archive it was to replace".into());
            }
        }
        // The message says what state the archive is in, unless the fault
        // took the message itself (a failed write to standard error).
        if t.syscall != "write" && !ended.stderr.contains("not committed") {
            return fail("the message does not say \"not committed\"".into());
        }
    }
    if t.errno == "EINTR" && (!committed || code != 0) {
        return fail("an interrupted call was not retried".into());
    }
    if !a.exists() {
        return Ok(());
    }

    // The archive reads, verifies and extracts what it held.
    let ar = Archive::open(&a, pass.map(str::as_bytes)).map_err(|e| format!("open: {e}"));
    let ar = match ar {
        Ok(ar) => ar,
        Err(e) => return fail(e),
    };
    let gens = ar.store().generation_count();
    let expected_gens = if committed { prev_gens + 1 } else { prev_gens };
    if gens != expected_gens {
        return fail(format!("{gens} generations, expected {expected_gens}"));
    }
    let report = ar.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
    if !report.ok() {
        return fail(format!("verify --full: {:?}", report.problems));
    }
    // The first snapshot extracts as it was stored.
    let snaps = ar.snapshots().map_err(|e| e.to_string());
    let snaps = match snaps {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // A snapshot this trial made is complete unless the exit code says
    // some files could not be read (3): then what it holds is still exact.
    let (snap, want, complete) = match t.scenario {
        Scenario::Create | Scenario::CreateOver if committed => {
            let i = if t.scenario == Scenario::Create { 1 } else { 2 };
            (snaps[0].clone(), &fx.digests[i], code != 3)
        }
        _ => (snaps[0].clone(), &fx.digests[0], true),
    };
    let x = d.join("check");
    let o = ExtractOptions {
        preserve_permissions: true,
        ..ExtractOptions::default()
    };
    match ar.extract(&snap, &x, &o, &NoProgress) {
        Ok(r) if r.errors.is_empty() => {}
        Ok(r) => return fail(format!("extracting the first snapshot: {:?}", r.errors)),
        Err(e) => return fail(format!("extracting the first snapshot: {e}")),
    }
    let got = digest(&x.join("tree"));
    if complete && got != *want {
        return fail("the first snapshot does not extract byte-identical".into());
    }
    if let Some((p, v)) = got
        .iter()
        .find(|(p, v)| v.as_str() != "dir" && want.get(*p) != Some(*v))
    {
        return fail(format!(
            "{} extracts as {v}, not as it was stored",
            String::from_utf8_lossy(p)
        ));
    }
    std::fs::remove_dir_all(&x).unwrap();
    drop(ar);

    // The next append succeeds.
    let mut next = Command::new(ptar_bin());
    next.arg("-r").arg("-f").arg(&a);
    if let Some(p) = pass {
        let f = d.join("pass");
        std::fs::write(&f, p).unwrap();
        next.arg("--passphrase-file").arg(f);
    }
    let nout = next
        .arg("-C")
        .arg(&fx.srcs[2])
        .arg("tree")
        .stdin(Stdio::null())
        .env_remove("PTAR_PASSPHRASE")
        .output()
        .unwrap();
    if !nout.status.success() {
        return fail(format!(
            "the next append failed: {}",
            String::from_utf8_lossy(&nout.stderr)
        ));
    }
    let ar = Archive::open(&a, pass.map(str::as_bytes)).map_err(|e| e.to_string());
    match ar {
        Ok(ar) if ar.store().generation_count() == expected_gens + 1 => Ok(()),
        Ok(_) => fail("the next append added no generation".into()),
        Err(e) => fail(format!("after the next append: {e}")),
    }
}

fn check_extract(fx: &Fixture, _t: &Trial, d: &Path, code: i32) -> Result<(), String> {
    if code != 0 && code != 2 {
        return Err(format!("extraction exit code {code}"));
    }
    if _t.errno == "EINTR" && code != 0 {
        return Err("an interrupted call was not retried".into());
    }
    let out = d.join("out").join("tree");
    let got = digest(&out);
    let (old, new) = (&fx.digests[0], &fx.digests[1]);
    for (path, v) in &got {
        let ok = old.get(path) == Some(v) || new.get(path) == Some(v);
        // A directory's mode may still be on its way (a file inside failed).
        if !ok {
            return Err(format!(
                "{} is neither the old nor the new version: {v}",
                String::from_utf8_lossy(path)
            ));
        }
    }
    if code == 0 {
        for (path, v) in new {
            if got.get(path) != Some(v) {
                return Err(format!(
                    "exit 0 but {} did not come out",
                    String::from_utf8_lossy(path)
                ));
            }
        }
    }
    let locked = locked_dirs(&d.join("out"));
    if !locked.is_empty() {
        return Err(format!("directories left drwx------: {locked:?}"));
    }
    Ok(())
}

#[test]
fn every_fault_leaves_the_state_the_exit_code_names() {
    if !strace::works() {
        println!("SKIPPED: strace is missing or cannot trace here; install strace to run the fault-injection test");
        return;
    }
    let samples: usize = std::env::var("PTAR_FAULT_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // PTAR_FAULT_ONLY=Append,Extract runs some scenarios (for debugging).
    let only: Option<String> = std::env::var("PTAR_FAULT_ONLY").ok();
    let fx = Fixture::new();

    // Plan the trials from one clean traced run per scenario.
    let mut trials = Vec::new();
    for &s in SCENARIOS {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|x| x == format!("{s:?}")))
        {
            continue;
        }
        let d = fx.dir.join(format!("plan-{s:?}"));
        let args = prepare(&fx, s, &d);
        let counts = strace::count_calls_injecting(
            ptar_bin(),
            &args,
            &d,
            &[TUNABLES],
            SYSCALLS,
            base_injects(s),
        );
        // Each extraction scenario takes the way it is meant to: unnamed
        // files linked in (a rename only for files replaced), or named
        // temporary files renamed with RENAME_NOREPLACE.
        let renames = |sys: &str| counts.get(sys).map_or(0, |c| c.per_thread_max);
        match s {
            Scenario::Extract => assert!(
                renames("linkat") > 0 && renames("renameat2") == 0,
                "{s:?}: {counts:?}"
            ),
            Scenario::ExtractNamed => {
                assert!(renames("renameat2") > 0, "{s:?}: {counts:?}")
            }
            _ => {}
        }
        for &sys in SYSCALLS {
            let Some(calls) = counts.get(sys) else {
                continue;
            };
            // The scenario's own injection owns this call.
            if base_injects(s)
                .iter()
                .any(|i| i.split(':').next() == Some(sys))
            {
                continue;
            }
            let skip = fx.startup.get(sys).copied().unwrap_or(0);
            let ns: Vec<usize> = if sys == "mmap" {
                calls
                    .file_maps
                    .iter()
                    .copied()
                    .filter(|&n| n > skip)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            } else {
                sample(skip + 1, calls.per_thread_max, samples)
            };
            for &n in &ns {
                for &errno in ERRNOS {
                    trials.push(Trial {
                        scenario: s,
                        syscall: sys,
                        errno,
                        n,
                    });
                }
            }
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let tally: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (fx, trials, next, failures, tally) = (&fx, &trials, &next, &failures, &tally);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(t) = trials.get(i) else { break };
                let d = fx.dir.join(format!("trial-{w}"));
                let _ = std::fs::remove_dir_all(&d);
                if let Err(e) = run_trial(fx, t, &d) {
                    failures.lock().unwrap().push(format!(
                        "{:?} {}={} at call {}: {e}",
                        t.scenario, t.syscall, t.errno, t.n
                    ));
                }
                *tally
                    .lock()
                    .unwrap()
                    .entry(format!("{:?}", t.scenario))
                    .or_default() += 1;
                let _ = std::fs::remove_dir_all(&d);
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    println!(
        "fault injection: {} trials ({} call numbers at most per syscall): {tally:?}",
        trials.len(),
        samples
    );
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} trials failed:\n{}",
        failures.len(),
        trials.len(),
        failures.join("\n")
    );
    // Every scenario met faults in its writes, opens and renames or syncs.
    for &s in SCENARIOS {
        if only.is_some() {
            break;
        }
        assert!(
            tally.get(&format!("{s:?}")).copied().unwrap_or(0) >= 9,
            "{s:?}: too few trials"
        );
    }
}
