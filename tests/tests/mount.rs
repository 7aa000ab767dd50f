//! `ptar mount`: the FUSE view of an archive, read through plain `std::fs`
//! as any program would, against the files it was made of.
//!
//! Each test mounts with the `ptar` binary in a child process, waits for the
//! mount to appear in /proc/self/mountinfo, and does every file system call
//! on a worker thread with a deadline, so that a hung mount fails the test
//! instead of hanging the suite; a guard kills `ptar` and detaches the mount
//! whatever happens. Where /dev/fuse is missing or mounting is refused, a
//! test says why on stdout and passes.

#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ptar_tests::fidelity::{build, fields, walk};
use ptar_tests::{ptar_bin, ptar_in, random_bytes};

/// How long a mount may take to appear, or `ptar` to exit after unmounting.
const SETTLE: Duration = Duration::from_secs(20);
/// How long all the checks through one mount may take.
const CHECKS: Duration = Duration::from_secs(30);

fn ok(dir: &Path, args: &[&str]) {
    let out = ptar_in(dir, args);
    assert!(
        out.status.success(),
        "ptar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mount points listed in /proc/self/mountinfo (octal escapes decoded).
fn mount_points() -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|field| {
            let b = field.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                let oct = b
                    .get(i + 1..i + 4)
                    .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
                match oct {
                    Some(d) => {
                        out.push(d.iter().fold(0u8, |a, c| a * 8 + (c - b'0')));
                        i += 4;
                    }
                    None => {
                        out.push(b[i]);
                        i += 1;
                    }
                }
            }
            PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}

fn is_mounted(dir: &Path) -> bool {
    mount_points().iter().any(|m| m == dir)
}

/// A running `ptar mount`. Dropping it kills `ptar` and detaches the
/// mount, so a failing test leaves nothing mounted.
struct Mount {
    dir: PathBuf,
    child: Option<Child>,
    stderr: PathBuf,
}

enum Started {
    Mounted(Mount),
    Skipped(String),
}

/// Starts `ptar mount -f ARCHIVE DIR EXTRA...` and waits until DIR is mounted.
fn start(archive: &Path, dir: &Path, extra: &[&str]) -> Started {
    if !Path::new("/dev/fuse").exists() {
        return Started::Skipped("/dev/fuse is missing".into());
    }
    let stderr = dir.with_extension("stderr");
    let child = Command::new(ptar_bin())
        .arg("mount")
        .arg("-f")
        .arg(archive)
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr).unwrap())
        .env_remove("PTAR_PASSPHRASE")
        .spawn()
        .expect("starting ptar mount");
    let mut m = Mount {
        dir: dir.to_path_buf(),
        child: Some(child),
        stderr,
    };
    let t0 = Instant::now();
    loop {
        if is_mounted(dir) {
            return Started::Mounted(m);
        }
        if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
            m.child = None;
            let err = m.stderr_text();
            let refused = ["Operation not permitted", "Permission denied", "fusermount"]
                .iter()
                .any(|w| err.contains(w));
            if err.contains("cannot mount") && refused {
                return Started::Skipped(format!("mounting is not permitted here: {}", err.trim()));
            }
            panic!("ptar mount exited ({status}) before mounting: {err}");
        }
        assert!(
            t0.elapsed() < SETTLE,
            "{} was not mounted within {SETTLE:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Mount {
    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for `ptar` to exit after the mount went away.
    fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("ptar is running");
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                t0.elapsed() < SETTLE,
                "ptar did not exit within {SETTLE:?} of the unmount"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `fusermount -u` (or `fusermount3 -u`, or as root `umount`), then
    /// `ptar`'s exit status.
    fn unmount(&mut self) -> ExitStatus {
        let r = unmount(&self.dir, false);
        assert!(r.is_ok(), "unmounting {}: {r:?}", self.dir.display());
        self.wait_exit()
    }
}

/// Unmounts `dir` (detaches it, when `lazy`) with the first helper found.
fn unmount(dir: &Path, lazy: bool) -> Result<(), String> {
    let mut last = String::from("no fusermount, fusermount3 or umount found");
    for (prog, flag) in [
        ("fusermount", "-z"),
        ("fusermount3", "-z"),
        ("umount", "-l"),
    ] {
        let mut cmd = Command::new(prog);
        if prog != "umount" {
            cmd.arg("-u");
        }
        if lazy {
            cmd.arg(flag);
        }
        match cmd.arg(dir).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => last = format!("{prog}: {}", String::from_utf8_lossy(&out.stderr)),
            Err(_) => {}
        }
    }
    Err(last)
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.dir) {
            let _ = unmount(&self.dir, true);
        }
    }
}

/// Runs `f` on a worker thread and waits at most `limit` for it: file
/// system calls into a hung mount would block forever.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let v = f();
        let _ = tx.send(());
        v
    });
    match rx.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the checks through the mount took over {limit:?}: it hangs")
        }
        _ => worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
    }
}

/// Snapshots as `ptar snapshots --json` lists them: (id, time in seconds), oldest first.
fn snapshots(dir: &Path, archive: &str) -> Vec<(String, i64)> {
    let out = ptar_in(dir, &["snapshots", "--json", "-f", archive]);
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ns = v["time_ns"].as_i64().unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                ns.div_euclid(1_000_000_000),
            )
        })
        .collect()
}

/// The directory name the mount should give a snapshot, with the time
/// formatted by date(1): `YYYY-MM-DDTHH:MM:SS-<8 hex digits of the id>`.
fn expected_name(id: &str, secs: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .expect("running date");
    format!(
        "{}-{}",
        String::from_utf8(out.stdout).unwrap().trim(),
        &id[..8]
    )
}

/// Linux's EPERM, EIO, EACCES and EROFS.
const EPERM: i32 = 1;
const EIO: i32 = 5;
const EACCES: i32 = 13;
const EROFS: i32 = 30;

fn assert_refused(what: &str, r: std::io::Result<()>) {
    let e = r.expect_err(what);
    assert!(
        [EROFS, EPERM, EACCES].map(Some).contains(&e.raw_os_error()),
        "{what}: {e} (want EROFS, EPERM or EACCES)"
    );
}

#[test]
fn every_snapshot_reads_back_as_the_files_were() {
    let as_root = rustix::process::geteuid().is_root();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let src = base.join("src");
    // Beside the fidelity tree (every kind of entry and metadata): a
    // multi-MB file of many chunks and a nested directory.
    std::fs::create_dir_all(src.join("dir/nested/a/b")).unwrap();
    let big = random_bytes(b"mount big", 5 << 20);
    std::fs::write(src.join("dir/big.bin"), &big).unwrap();
    std::fs::write(src.join("dir/nested/a/b/deep.txt"), "first version\n").unwrap();
    let t = build(&src, as_root);
    ok(&base, &["-c", "-f", "a.ptar", "-C", "src", "dir"]);
    // The second snapshot: one file changed, one added.
    std::fs::write(src.join("dir/nested/a/b/deep.txt"), "second version\n").unwrap();
    std::fs::write(src.join("dir/added.txt"), "new\n").unwrap();
    ok(&base, &["-r", "-f", "a.ptar", "-C", "src", "dir"]);
    let snaps = snapshots(&base, "a.ptar");
    assert_eq!(snaps.len(), 2);
    let old_name = expected_name(&snaps[0].0, snaps[0].1);
    let new_name = expected_name(&snaps[1].0, snaps[1].1);
    let want_fields = fields(&src);
    let want_walk: BTreeMap<PathBuf, (i64, i64)> = walk(&src)
        .into_iter()
        .map(|(p, m)| (p, (m.mtime(), m.mtime_nsec())))
        .collect();

    let mnt = base.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut m = match start(&base.join("a.ptar"), &mnt, &[]) {
        Started::Mounted(m) => m,
        Started::Skipped(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let at = mnt.clone();
    let src2 = src.clone();
    let xattrs = t.xattrs;
    within(CHECKS, move || {
        let mnt = at;
        let src = src2;
        // The top level: one directory per snapshot, and `latest`.
        let mut top: Vec<String> = std::fs::read_dir(&mnt)
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        let mut want_top = vec![old_name.clone(), new_name.clone(), "latest".into()];
        want_top.sort();
        assert_eq!(top, want_top);
        assert_eq!(
            std::fs::read_link(mnt.join("latest")).unwrap(),
            Path::new(&new_name)
        );
        let new = mnt.join(&new_name);
        let old = mnt.join(&old_name);

        // Every field of every path of the newest snapshot: type, mode,
        // owner, mtime and atime with nanoseconds, content, size,
        // sparseness, link count and shared inode, symlink target, device
        // number, extended attributes.
        let got = fields(&new);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want_fields.keys().collect::<Vec<_>>(),
            "the same paths"
        );
        for (path, w) in &want_fields {
            for (field, value) in w {
                assert_eq!(
                    got[path].get(field),
                    Some(value),
                    "{field} of {}",
                    path.display()
                );
            }
        }
        if xattrs {
            assert!(
                got[Path::new("dir/plain.txt")].contains_key("xattr user.origin"),
                "the user xattr is listed"
            );
        }
        // Directories' mtimes too, which extraction cannot keep but a mount can.
        for (path, md) in walk(&new) {
            assert_eq!(
                (md.mtime(), md.mtime_nsec()),
                want_walk[&path],
                "mtime of {}",
                path.display()
            );
        }
        // Hard links share an inode; the same file in another snapshot has its own.
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&new.join("dir/hard")), ino(&new.join("dir/plain.txt")));
        assert_ne!(
            ino(&new.join("dir/plain.txt")),
            ino(&old.join("dir/plain.txt"))
        );

        // Reads at any offset, through seek.
        let mut f = File::open(new.join("dir/big.bin")).unwrap();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let off = rng % big.len() as u64;
            let len = ((rng >> 40) % 200_000) as usize;
            let end = (off as usize + len).min(big.len());
            let mut buf = vec![0u8; end - off as usize];
            f.seek(SeekFrom::Start(off)).unwrap();
            f.read_exact(&mut buf).unwrap();
            assert!(buf == big[off as usize..end], "bytes at {off}..{end}");
        }
        f.seek(SeekFrom::Start(big.len() as u64 + 10)).unwrap();
        assert_eq!(f.read(&mut [0u8; 16]).unwrap(), 0, "nothing past the end");

        // An empty file, as ls shows it.
        let ls = Command::new("ls")
            .arg("-ln")
            .arg(new.join("dir/empty.txt"))
            .output()
            .unwrap();
        assert!(ls.status.success());
        let line = String::from_utf8(ls.stdout).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols[0].starts_with("-rw"), "{line}");
        assert_eq!(cols[4], "0", "{line}");
        assert_eq!(std::fs::read(new.join("dir/empty.txt")).unwrap(), b"");

        // The older snapshot as it was.
        assert_eq!(
            std::fs::read_to_string(old.join("dir/nested/a/b/deep.txt")).unwrap(),
            "first version\n"
        );
        assert_eq!(
            std::fs::read_to_string(new.join("dir/nested/a/b/deep.txt")).unwrap(),
            "second version\n"
        );
        let gone = std::fs::symlink_metadata(old.join("dir/added.txt")).unwrap_err();
        assert_eq!(gone.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(
            std::fs::read(old.join("dir/big.bin")).unwrap(),
            std::fs::read(src.join("dir/big.bin")).unwrap()
        );

        // Nothing can change it.
        let d = new.join("dir");
        assert_refused("creating a file", std::fs::write(d.join("x"), "x"));
        assert_refused(
            "opening a file for writing",
            OpenOptions::new()
                .write(true)
                .open(d.join("plain.txt"))
                .map(drop),
        );
        assert_refused("making a directory", std::fs::create_dir(d.join("y")));
        assert_refused("removing a file", std::fs::remove_file(d.join("plain.txt")));
        assert_refused(
            "renaming",
            std::fs::rename(d.join("plain.txt"), d.join("z")),
        );
        assert_refused(
            "chmod",
            std::fs::set_permissions(d.join("plain.txt"), PermissionsExt::from_mode(0o777)),
        );
        assert_refused(
            "a new snapshot directory",
            std::fs::create_dir(mnt.join("new")),
        );
    });
    let status = m.unmount();
    assert!(
        status.success(),
        "ptar mount exited with {status}: {}",
        m.stderr_text()
    );
    assert!(!is_mounted(&mnt));
}

#[test]
fn one_snapshot_at_the_root_and_sigterm_unmounts() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(base.join("src/docs")).unwrap();
    std::fs::write(base.join("src/docs/a.txt"), "one\n").unwrap();
    ok(&base, &["-c", "-f", "a.ptar", "-C", "src", "docs"]);
    std::fs::write(base.join("src/docs/a.txt"), "two\n").unwrap();
    ok(&base, &["-r", "-f", "a.ptar", "-C", "src", "docs"]);
    let mnt = base.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // `2`: the snapshot before the latest.
    let mut m = match start(&base.join("a.ptar"), &mnt, &["--snapshot", "2"]) {
        Started::Mounted(m) => m,
        Started::Skipped(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let at = mnt.clone();
    within(CHECKS, move || {
        let names: Vec<_> = std::fs::read_dir(&at)
            .unwrap()
            .map(|d| d.unwrap().file_name())
            .collect();
        assert_eq!(names, ["docs"], "the snapshot's root is the mount's root");
        assert_eq!(
            std::fs::read_to_string(at.join("docs/a.txt")).unwrap(),
            "one\n"
        );
    });
    let pid = rustix::process::Pid::from_child(m.child.as_ref().unwrap());
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = m.wait_exit();
    assert!(
        status.success(),
        "after SIGTERM: {status}: {}",
        m.stderr_text()
    );
    assert!(!is_mounted(&mnt), "SIGTERM unmounts");
}

#[test]
fn a_damaged_chunk_fails_its_reads_with_eio_and_the_mount_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(base.join("src/d")).unwrap();
    let big = random_bytes(b"mount damaged", 3 << 20);
    std::fs::write(base.join("src/d/big.bin"), &big).unwrap();
    std::fs::write(base.join("src/d/small.txt"), "intact\n").unwrap();
    ok(&base, &["-c", "-f", "a.ptar", "-C", "src", "d"]);
    // Random bytes are stored as they are: flip one inside a chunk 2 MiB in.
    let archive = base.join("a.ptar");
    let mut bytes = std::fs::read(&archive).unwrap();
    let needle = &big[2 << 20..(2 << 20) + 64];
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the chunk's bytes are in the archive");
    bytes[at + 32] ^= 0x01;
    std::fs::write(&archive, &bytes).unwrap();

    let mnt = base.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut m = match start(&archive, &mnt, &["--snapshot", "latest"]) {
        Started::Mounted(m) => m,
        Started::Skipped(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let dir = mnt.join("d");
    within(CHECKS, move || {
        let e = std::fs::read(dir.join("big.bin")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
        // The chunks before it still read, and so does every other file.
        let mut head = vec![0u8; 64 * 1024];
        File::open(dir.join("big.bin"))
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert!(head == big[..head.len()]);
        assert_eq!(
            std::fs::read_to_string(dir.join("small.txt")).unwrap(),
            "intact\n"
        );
        // Asking again fails the same way: nothing crashed.
        let e = std::fs::read(dir.join("big.bin")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
    });
    let status = m.unmount();
    assert!(status.success(), "ptar mount exited with {status}");
    let err = m.stderr_text();
    assert!(
        err.lines().any(|l| l.starts_with("ptar: /d/big.bin: ")),
        "the damage is reported with the path: {err}"
    );
}
