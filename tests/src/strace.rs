//! Running ptar under strace: counting its system calls, and injecting a
//! fault (an error or a signal) at the N-th call of one of them, so that
//! tests reach a failure at an exact moment instead of racing a timer.
//!
//! strace counts calls per thread: `when=N` acts on the N-th call of every
//! thread that makes N of them.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether strace is installed and may trace here (`.ci/run` installs it;
/// containers without ptrace permission cannot).
pub fn works() -> bool {
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What one clean, traced run did with one system call.
#[derive(Default, Debug, Clone)]
pub struct Calls {
    /// The most calls any one thread made.
    pub per_thread_max: usize,
    /// For mmap: the call numbers (within the thread that made them) of the
    /// calls that mapped a file rather than anonymous memory.
    pub file_maps: Vec<usize>,
}

/// A `Command` that runs `program` under strace, tracing `syscalls`, with
/// strace's own output discarded (or logged to `log`).
pub fn command(
    program: &Path,
    syscalls: &[&str],
    inject: Option<&str>,
    log: Option<&Path>,
) -> Command {
    command_injecting(program, syscalls, inject.as_slice(), log)
}

/// [`command`] with any number of injections (`-e inject=…` each), for
/// different system calls.
pub fn command_injecting(
    program: &Path,
    syscalls: &[&str],
    injects: &[&str],
    log: Option<&Path>,
) -> Command {
    let mut c = Command::new("strace");
    c.arg("-f").arg("-qq").arg("-o");
    match log {
        Some(l) => c.arg(l),
        None => c.arg("/dev/null"),
    };
    c.arg("-e").arg(format!("trace={}", syscalls.join(",")));
    for i in injects {
        c.arg("-e").arg(format!("inject={i}"));
    }
    c.arg(program);
    c
}

/// Runs `program args` once under strace in `dir`, without faults, and
/// counts the calls of each of `syscalls`. Panics if the run fails.
pub fn count_calls<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    dir: &Path,
    env: &[(&str, &str)],
    syscalls: &[&str],
) -> BTreeMap<String, Calls> {
    count_calls_injecting(program, args, dir, env, syscalls, &[])
}

/// [`count_calls`] for a run under `injects` that it survives (a way
/// denied that the program has another for).
pub fn count_calls_injecting<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    dir: &Path,
    env: &[(&str, &str)],
    syscalls: &[&str],
    injects: &[&str],
) -> BTreeMap<String, Calls> {
    let log = tempfile::NamedTempFile::new().expect("strace log file");
    let mut c = command_injecting(program, syscalls, injects, Some(log.path()));
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_remove("PTAR_PASSPHRASE");
    for (k, v) in env {
        c.env(k, v);
    }
    let status = c.status().expect("running strace");
    assert!(
        status.success(),
        "traced run of {}: {status:?}",
        program.display()
    );
    let text = std::fs::read_to_string(log.path()).expect("strace log");
    parse_counts(&text, syscalls)
}

fn parse_counts(text: &str, syscalls: &[&str]) -> BTreeMap<String, Calls> {
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut out: BTreeMap<String, Calls> = BTreeMap::new();
    for line in text.lines() {
        // "PID name(args) = result"
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(name) = rest.split('(').next() else {
            continue;
        };
        if !syscalls.contains(&name) {
            continue;
        }
        let n = per.entry((pid.to_string(), name.to_string())).or_default();
        *n += 1;
        let calls = out.entry(name.to_string()).or_default();
        calls.per_thread_max = calls.per_thread_max.max(*n);
        if name == "mmap" {
            // mmap(addr, len, prot, flags, fd, off): a file mapping has fd >= 0.
            let args: Vec<&str> = rest.split(", ").collect();
            if args.len() >= 6 && !args[4].starts_with('-') {
                calls.file_maps.push(*n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_thread_and_file_maps() {
        let text = "10 openat(AT_FDCWD, \"a\", O_RDONLY) = 3\n\
                    10 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7f00\n\
                    11 openat(AT_FDCWD, \"b\", O_RDONLY) = 4\n\
                    10 openat(AT_FDCWD, \"c\", O_RDONLY) = 5\n\
                    10 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f01\n\
                    10 write(1, \"x\", 1) = 1\n";
        let c = parse_counts(text, &["openat", "mmap"]);
        assert_eq!(c["openat"].per_thread_max, 2);
        assert_eq!(c["mmap"].per_thread_max, 2);
        assert_eq!(c["mmap"].file_maps, vec![1]);
        assert!(!c.contains_key("write"));
    }
}
