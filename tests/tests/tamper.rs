//! Tamper evidence: a flipped byte anywhere is caught by `--verify --full`,
//! which names the region; extraction never writes wrong bytes.

use std::path::{Path, PathBuf};

use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::{Archive, CreateOptions, Encryption, KdfParams, VerifyOptions};
use ptar_tests::{append_snapshot, create_snapshot, ptar_s, random_bytes, read_tree, Node};
use zeroize::Zeroizing;

const PASS: &[u8] = b"tamper test";

/// Regions of a pristine archive: (what the message must name, start, end).
/// The frames of a generation (records, index run, snapshot run) are named
/// by the frame that fails, or by the run it belongs to.
fn regions(a: &Archive) -> Vec<(&'static [&'static str], u64, u64)> {
    const HEADER: &[&str] = &["header"];
    const FRAMES: &[&str] = &["frame at offset", "index run", "snapshot run"];
    const FOOTER: &[&str] = &["footer"];
    let s = a.store();
    let mut r = vec![(HEADER, 0, s.header_len())];
    for g in s.generation_spans().unwrap() {
        r.push((FRAMES, g.start, g.manifest));
        r.push((FOOTER, g.manifest, g.end));
    }
    r
}

fn names(msg: &str, names: &[&str]) -> bool {
    names.iter().any(|n| msg.contains(n))
}

fn build(dir: &Path, encrypted: bool) -> (PathBuf, PathBuf, PathBuf) {
    let one = dir.join("one");
    let two = dir.join("two");
    for (d, seed) in [(&one, "1"), (&two, "2")] {
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("small.txt"), format!("small file {seed}\n")).unwrap();
        std::fs::write(
            d.join("sub/text.txt"),
            format!("compressible text {seed} ").repeat(3000),
        )
        .unwrap();
        std::fs::write(
            d.join("sub/random.bin"),
            random_bytes(seed.as_bytes(), 600_000),
        )
        .unwrap();
    }
    let archive = dir.join("t.ptar");
    let opts = CreateOptions {
        encryption: encrypted.then(|| Encryption {
            passphrase: Zeroizing::new(PASS.to_vec()),
            kdf: KdfParams {
                m_kib: 256,
                t: 1,
                p: 1,
            },
        }),
        ..CreateOptions::default()
    };
    create_snapshot(&archive, &one, opts);
    append_snapshot(&archive, &two, encrypted.then_some(PASS));
    (archive, one, two)
}

/// Opens and fully verifies; returns every message, or None when all is well.
fn check(bytes: Vec<u8>, pass: Option<&[u8]>) -> Option<String> {
    match Archive::from_vec(bytes, pass) {
        Err(e) => Some(e.to_string()),
        Ok(a) => {
            let r = a.verify(&VerifyOptions {
                full: true,
                trusted_key: None,
            });
            if r.ok() {
                None
            } else {
                Some(
                    r.problems
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        }
    }
}

fn offsets(start: u64, end: u64, n: u64) -> Vec<u64> {
    let len = end - start;
    let mut v: Vec<u64> = (0..n).map(|i| start + i * len / n).collect();
    v.push(end - 1);
    v.dedup();
    v
}

fn flip_everywhere(encrypted: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, _, _) = build(tmp.path(), encrypted);
    let pass = encrypted.then_some(PASS);
    let pristine = std::fs::read(&archive).unwrap();
    assert_eq!(
        check(pristine.clone(), pass),
        None,
        "the pristine archive verifies"
    );
    let a = Archive::open(&archive, pass).unwrap();
    let regs = regions(&a);
    let total: u64 = regs.iter().map(|r| r.2 - r.1).sum();
    assert_eq!(
        total,
        pristine.len() as u64,
        "regions cover the file exactly"
    );
    let mut tried = 0;
    let mut table = Vec::new();
    for (name, start, end) in &regs {
        let mut caught = 0;
        let offs = offsets(*start, *end, 48);
        for off in &offs {
            let mut b = pristine.clone();
            b[*off as usize] ^= 0x5a;
            let msg = check(b, pass)
                .unwrap_or_else(|| panic!("flip at {off} in the {name:?} went unnoticed"));
            assert!(
                names(&msg, name),
                "flip at {off} in the {name:?}: message does not name it: {msg}"
            );
            caught += 1;
            tried += 1;
        }
        table.push(format!(
            "{:>15} [{start}..{end}): {caught}/{} flips caught and named",
            name[0],
            offs.len()
        ));
    }
    eprintln!("{}", table.join("\n"));
    assert!(tried >= 200, "only {tried} offsets tried");
}

#[test]
fn every_flipped_byte_is_caught_and_named_plain() {
    flip_everywhere(false);
}

#[test]
fn every_flipped_byte_is_caught_and_named_encrypted() {
    flip_everywhere(true);
}

#[test]
fn extraction_of_a_damaged_archive_never_writes_wrong_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, _, two) = build(tmp.path(), false);
    let (want, _) = read_tree(&two);
    let pristine = std::fs::read(&archive).unwrap();
    let a = Archive::open(&archive, None).unwrap();
    let g2 = a.store().generation_spans().unwrap()[1];
    let mut failures = 0;
    for (i, off) in offsets(g2.start, g2.manifest, 20).into_iter().enumerate() {
        let mut b = pristine.clone();
        b[off as usize] ^= 0x01;
        let damaged = tmp.path().join(format!("d{i}.ptar"));
        std::fs::write(&damaged, &b).unwrap();
        let dest = tmp.path().join(format!("out{i}"));
        let result = Archive::open(&damaged, None).and_then(|a| {
            let s = a.find_snapshot("latest")?;
            a.extract(&s, &dest, &ExtractOptions::default(), &NoProgress)
        });
        match result {
            Ok(out) if out.errors.is_empty() => panic!("flip at {off} extracted without an error"),
            _ => failures += 1,
        }
        if dest.exists() {
            let (got, _) = read_tree(&dest);
            for (k, v) in got {
                if let Node::File { content, .. } = v {
                    let path = String::from_utf8(k).unwrap();
                    let rel = path
                        .split_once("/two/")
                        .map(|(_, r)| r.to_string())
                        .expect("under two/");
                    match want.get(rel.as_bytes()) {
                        Some(Node::File { content: w, .. }) => {
                            assert_eq!(&content, w, "wrong bytes written for {rel}")
                        }
                        other => panic!("unexpected file {rel}: {other:?}"),
                    }
                }
            }
        }
    }
    assert_eq!(failures, 21);
}

#[test]
fn cli_verify_names_the_region() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, _, _) = build(tmp.path(), false);
    let a = Archive::open(&archive, None).unwrap();
    let pristine = std::fs::read(&archive).unwrap();
    let out = ptar_s(
        &["--verify", "--full", "-f", archive.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, start, end) in regions(&a) {
        let mut b = pristine.clone();
        b[((start + end) / 2) as usize] ^= 0x10;
        let damaged = tmp.path().join("damaged.ptar");
        std::fs::write(&damaged, &b).unwrap();
        let out = ptar_s(
            &["--verify", "--full", "-f", damaged.to_str().unwrap()],
            &[],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name:?}: {err}");
        assert!(
            names(&err, name) && err.starts_with("ptar: "),
            "{name:?}: {err}"
        );
    }
}
