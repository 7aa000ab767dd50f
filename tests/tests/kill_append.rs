//! `kill -9` during `ptar -r`: whenever an append is killed, the archive
//! still opens, every snapshot committed before it is listed and extracts
//! byte for byte, verification passes (the torn tail is reported as an
//! interrupted append, not as damage), and the next append succeeds.
//!
//! The kills are placed, not timed: strace delivers SIGKILL at the N-th
//! call of a system call (`-e inject=write:signal=KILL:when=N`), with N
//! stepping through the calls a traced append makes: while it opens the
//! files it reads, while it writes records, and at each sync and write of
//! the commit. So the same kills land at the same moments on a loaded
//! machine as on an idle one. Skipped, saying so, without strace.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::{Archive, Id, VerifyOptions};
use ptar_tests::{ptar_bin, random_bytes, strace};

const TRIALS: usize = 42;
/// A complete (not killed) append runs after every this many trials.
const COMPLETE_EVERY: usize = 10;
const SMALL_DIRS: usize = 6;
const SMALL_PER_DIR: usize = 20;
const BIG_FILES: usize = 3;
const BIG_LEN: usize = 3 << 20;

/// A small deterministic generator for sizes and choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A tree as path -> type, permission bits and content hash (or link target).
type Digest = BTreeMap<Vec<u8>, String>;

fn digest(root: &Path) -> Digest {
    let mut out = Digest::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for de in std::fs::read_dir(root.join(&rel)).unwrap() {
            let de = de.unwrap();
            let r = rel.join(de.file_name());
            let md = std::fs::symlink_metadata(de.path()).unwrap();
            let mode = md.mode() & 0o7777;
            let v = if md.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(de.path()).unwrap().display())
            } else if md.is_dir() {
                stack.push(r.clone());
                format!("dir {mode:o}")
            } else {
                let content = std::fs::read(de.path()).unwrap();
                format!(
                    "file {mode:o} {} {}",
                    content.len(),
                    blake3::hash(&content).to_hex()
                )
            };
            out.insert(r.as_os_str().as_bytes().to_vec(), v);
        }
    }
    out
}

fn small_content(seed: &str, rng: &mut Rng) -> Vec<u8> {
    let n = 100 + rng.below(4000) as usize;
    if rng.below(2) == 0 {
        random_bytes(seed.as_bytes(), n)
    } else {
        format!("{seed} text line\n")
            .repeat(n / 20 + 1)
            .into_bytes()
    }
}

fn build_tree(src: &Path, rng: &mut Rng) {
    for d in 0..SMALL_DIRS {
        let dir = src.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..SMALL_PER_DIR {
            let seed = format!("small {d} {f} 0");
            std::fs::write(dir.join(format!("f{f:03}.txt")), small_content(&seed, rng)).unwrap();
        }
    }
    std::fs::create_dir_all(src.join("big")).unwrap();
    for b in 0..BIG_FILES {
        std::fs::write(
            src.join(format!("big/b{b}.bin")),
            random_bytes(format!("big {b} 0").as_bytes(), BIG_LEN),
        )
        .unwrap();
    }
}

/// Changes the tree a little: new content for the large files (so that an
/// append writes several MiB) and for a few small ones, sometimes a file
/// more or less. Every size changes, so no append mistakes a file for
/// unchanged.
fn mutate(src: &Path, round: usize, rng: &mut Rng) {
    for b in 0..BIG_FILES {
        let n = BIG_LEN + rng.below(64 << 10) as usize;
        std::fs::write(
            src.join(format!("big/b{b}.bin")),
            random_bytes(format!("big {b} {round}").as_bytes(), n),
        )
        .unwrap();
    }
    for _ in 0..3 {
        let (d, f) = (
            rng.below(SMALL_DIRS as u64),
            rng.below(SMALL_PER_DIR as u64),
        );
        let p = src.join(format!("d{d:02}/f{f:03}.txt"));
        let mut content = std::fs::read(&p).unwrap();
        content.extend_from_slice(format!("changed in round {round}\n").as_bytes());
        std::fs::write(&p, content).unwrap();
    }
    if round % 3 == 0 {
        let d = rng.below(SMALL_DIRS as u64);
        std::fs::write(
            src.join(format!("d{d:02}/extra-{round}.txt")),
            small_content(&format!("extra {round}"), rng),
        )
        .unwrap();
    }
    if round % 5 == 0 {
        // Remove one of the extra files, if there is one.
        for d in 0..SMALL_DIRS {
            let dir = src.join(format!("d{d:02}"));
            let extra = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().as_bytes().starts_with(b"extra-"));
            if let Some(p) = extra {
                std::fs::remove_file(p).unwrap();
                break;
            }
        }
    }
}

/// The system calls kills are placed at.
const KILL_AT: &[&str] = &["openat", "write", "fdatasync", "fsync", "ftruncate"];

fn append_args(archive: &Path, base: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "-r".into(),
        "-f".into(),
        archive.into(),
        "-C".into(),
        base.into(),
        "tree".into(),
    ]
}

fn append_cmd(archive: &Path, base: &Path) -> Command {
    let mut c = Command::new(ptar_bin());
    c.args(append_args(archive, base))
        .stdin(Stdio::null())
        .env_remove("PTAR_PASSPHRASE");
    c
}

fn run_ok(mut c: Command, what: &str) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn verify_cli(archive: &Path, full: bool) -> String {
    let mut c = Command::new(ptar_bin());
    c.arg("--verify");
    if full {
        c.arg("--full");
    }
    c.arg("-f").arg(archive).stdin(Stdio::null());
    let out = run_ok(c, if full { "verify --full" } else { "verify" });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extracts one snapshot into a fresh directory and digests what it wrote.
fn extracted(a: &Archive, id: &Id, scratch: &Path) -> Digest {
    let s = a.find_snapshot(&id.to_hex()).unwrap();
    let dest = scratch.join("x");
    let opts = ExtractOptions {
        preserve_permissions: true,
        ..ExtractOptions::default()
    };
    let out = a.extract(&s, &dest, &opts, &NoProgress).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let d = digest(&dest.join("tree"));
    std::fs::remove_dir_all(&dest).unwrap();
    d
}

/// Snapshots known good so far, oldest first, with what each extracted to.
struct Known(Vec<(Id, Digest)>);

impl Known {
    /// Takes in snapshots listed beyond the known ones (at most one new):
    /// it must extract to `source`, the tree as it was when appended.
    fn take_new(&mut self, a: &Archive, source: &Digest, scratch: &Path, what: &str) -> bool {
        let listed = a.snapshots().unwrap();
        let ids: Vec<Id> = listed.iter().map(|s| s.id).collect();
        let known: Vec<Id> = self.0.iter().map(|k| k.0).collect();
        assert!(
            ids.len() >= known.len() && ids[..known.len()] == known[..],
            "{what}: snapshots committed earlier are no longer listed in order"
        );
        assert!(
            ids.len() <= known.len() + 1,
            "{what}: more than one new snapshot"
        );
        if ids.len() == known.len() {
            return false;
        }
        let id = ids[known.len()];
        let got = extracted(a, &id, scratch);
        assert!(
            got == *source,
            "{what}: new snapshot {} does not extract to its source tree",
            id.short()
        );
        self.0.push((id, got));
        true
    }

    fn check(&self, a: &Archive, i: usize, scratch: &Path, what: &str) {
        let (id, want) = &self.0[i];
        let got = extracted(a, id, scratch);
        assert!(
            got == *want,
            "{what}: snapshot {} ({}) extracts differently now",
            i + 1,
            id.short()
        );
    }
}

#[derive(Default, Debug)]
struct Stats {
    finished_before_kill: usize,
    killed_after_commit: usize,
    killed_mid_write: usize,
    killed_before_writing: usize,
    tail_bytes_max: u64,
    complete_appends: usize,
}

#[test]
fn kill_9_during_append_never_loses_a_committed_snapshot() {
    if !strace::works() {
        println!("SKIPPED: strace is missing or cannot trace here; install strace to run the kill -9 test");
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let src = base.join("tree");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let archive = tmp.path().join("a.ptar");
    let mut rng = Rng(0x6b11_9a99);
    build_tree(&src, &mut rng);

    // Generation 1.
    let mut c = Command::new(ptar_bin());
    c.arg("-c")
        .arg("-f")
        .arg(&archive)
        .arg("-C")
        .arg(&base)
        .arg("tree")
        .stdin(Stdio::null());
    run_ok(c, "create");
    let mut known = Known(Vec::new());
    let a = Archive::open(&archive, None).unwrap();
    assert!(known.take_new(&a, &digest(&src), &scratch, "create"));
    drop(a);

    // Where a complete append makes its calls.
    let mut round = 1;
    mutate(&src, round, &mut rng);
    round += 1;
    let counts = strace::count_calls(
        ptar_bin(),
        &append_args(&archive, &base),
        tmp.path(),
        &[],
        KILL_AT,
    );
    let a = Archive::open(&archive, None).unwrap();
    assert!(known.take_new(&a, &digest(&src), &scratch, "traced append"));
    drop(a);
    let calls = |sys: &str| counts.get(sys).map_or(0, |c| c.per_thread_max);
    // Kill points, cycled through the trials: each syscall's calls are
    // stepped through in turn (writes most, since they carry the data).
    let mut points: Vec<(&str, usize)> = Vec::new();
    let writes = calls("write");
    assert!(writes >= 4, "a traced append made only {writes} writes");
    for &sys in KILL_AT {
        let n = calls(sys);
        let steps = if sys == "write" {
            n.min(TRIALS / 2)
        } else {
            n.min(6)
        };
        for k in 0..steps {
            // Spread over 1..=n, last call included.
            points.push((sys, n - k * n / steps.max(1)));
        }
    }
    points.sort();
    points.dedup();

    let mut st = Stats::default();
    for trial in 0..TRIALS {
        let what = format!("trial {trial}");
        mutate(&src, round, &mut rng);
        round += 1;
        let source = digest(&src);
        let before = known.0.len();
        let len_before = std::fs::metadata(&archive).unwrap().len();
        let (sys, n) = points[trial % points.len()];
        let what = format!("{what} (SIGKILL at {sys} call {n})");

        let inject = format!("{sys}:signal=KILL:when={n}");
        let mut child = strace::command(ptar_bin(), &[sys], Some(&inject), None)
            .args(append_args(&archive, &base))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("PTAR_PASSPHRASE")
            .spawn()
            .unwrap();
        let status = child.wait().unwrap();
        let stderr = {
            use std::io::Read;
            let mut s = String::new();
            child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
            s
        };

        let a = Archive::open(&archive, None)
            .unwrap_or_else(|e| panic!("{what}: the archive does not open after the kill: {e}"));
        let tail = a.store().tail().cloned();
        if let Some(t) = &tail {
            assert!(!t.damaged, "{what}: the torn tail is seen as damage: {t:?}");
        }
        let committed = known.take_new(&a, &source, &scratch, &what);
        let len_after = std::fs::metadata(&archive).unwrap().len();
        if status.success() {
            st.finished_before_kill += 1;
            assert!(
                committed,
                "{what}: ptar succeeded but no snapshot was added"
            );
        } else if status.signal() == Some(9) {
            if committed {
                st.killed_after_commit += 1;
            } else if tail.is_some() && len_after != len_before {
                st.killed_mid_write += 1;
            } else {
                st.killed_before_writing += 1;
            }
        } else {
            panic!("{what}: ptar ended with {status:?}: {stderr}");
        }
        if committed {
            assert!(tail.is_none(), "{what}: a committed append left a tail");
        }
        if let Some(t) = &tail {
            st.tail_bytes_max = st.tail_bytes_max.max(t.len);
        }

        // The first snapshot and the latest one from before this trial.
        known.check(&a, 0, &scratch, &what);
        if before > 1 {
            known.check(&a, before - 1, &scratch, &what);
        }
        drop(a);
        let out = verify_cli(&archive, false);
        if let Some(t) = &tail {
            assert!(
                out.contains(&format!("{} bytes of an interrupted append", t.len)),
                "{what}: verify does not report the tail: {out}"
            );
        }

        if trial % COMPLETE_EVERY == COMPLETE_EVERY - 1 {
            verify_cli(&archive, true);
            // The next append truncates the tail and commits.
            run_ok(append_cmd(&archive, &base), &what);
            st.complete_appends += 1;
            let a = Archive::open(&archive, None).unwrap();
            assert!(a.store().tail().is_none(), "{what}: tail left after append");
            assert!(
                known.take_new(&a, &source, &scratch, &what),
                "{what}: the complete append added no snapshot"
            );
        }
    }

    // At the end, every snapshot, and a full check.
    let a = Archive::open(&archive, None).unwrap();
    assert_eq!(a.snapshots().unwrap().len(), known.0.len());
    for i in 0..known.0.len() {
        known.check(&a, i, &scratch, "final check");
    }
    let report = a.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
    assert!(report.ok(), "{:?}", report.problems);
    let mid_append = st.killed_mid_write + st.killed_before_writing;
    println!("kill -9: {TRIALS} trials at {} kill points", points.len());
    println!(
        "  killed mid-append: {mid_append} ({} with a torn tail written, largest {} bytes; {} before writing)",
        st.killed_mid_write, st.tail_bytes_max, st.killed_before_writing
    );
    println!(
        "  after completion: {} (killed after the commit: {}, finished before the kill: {})",
        st.killed_after_commit + st.finished_before_kill,
        st.killed_after_commit,
        st.finished_before_kill
    );
    println!(
        "  complete appends between trials: {}; snapshots at the end: {}; archive {} bytes; {:.1} s",
        st.complete_appends,
        known.0.len(),
        std::fs::metadata(&archive).unwrap().len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        mid_append >= TRIALS / 4,
        "only {mid_append} of {TRIALS} kills landed mid-append: {st:?}"
    );
    assert!(
        st.killed_mid_write >= TRIALS / 10,
        "only {} kills left a torn tail: {st:?}",
        st.killed_mid_write
    );
}
