//! `ptar sync`: snapshots copied from one archive into another, storing only
//! what the destination lacks, re-encrypted when the keys differ.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use ptar::format::tree::{Extent, Payload};
use ptar::format::Id;
use ptar::progress::NoProgress;
use ptar::{Archive, CreateOptions, Encryption, Writer};
use ptar_tests::fidelity::{build, fields};
use ptar_tests::vectors::VECTOR_KDF;
use ptar_tests::{ptar_s, random_bytes, read_tree};

const FAST_KDF: &str = "1024,1,1";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = ptar_s(args, env);
    assert!(
        out.status.success(),
        "ptar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The last line of `ptar sync --json`: the summary.
fn sync_json(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut a = vec!["sync", "--json"];
    a.extend_from_slice(args);
    let lines = json_lines(&run(&a, env).stdout);
    let last = lines.last().expect("a summary line").clone();
    assert_eq!(last["message_type"], "sync");
    last
}

/// `ptar snapshots --json`, without the generation (which differs by archive).
fn snapshot_list(archive: &Path, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    json_lines(&run(&["snapshots", "--json", "-f", s(archive)], env).stdout)
        .into_iter()
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("generation");
            v
        })
        .collect()
}

/// Extracts snapshot `sel` of `archive` into a new directory under `scratch`
/// and reads it back: contents, modes and modification times.
type Extracted = (
    ptar_tests::Tree,
    std::collections::BTreeMap<Vec<u8>, (i64, u32)>,
);

fn extracted(archive: &Path, sel: &str, scratch: &Path, env: &[(&str, &str)]) -> Extracted {
    let dir = scratch.join(format!(
        "x-{}-{sel}",
        archive.file_name().unwrap().to_str().unwrap()
    ));
    run(
        &["-x", "-f", s(archive), "--snapshot", sel, "-C", s(&dir)],
        env,
    );
    let got = read_tree(&dir);
    assert!(!got.0.is_empty(), "snapshot {sel} of {archive:?} is empty");
    got
}

/// A tree of a few directories of random (incompressible) files and some
/// text; returns its root and the bytes of file content it holds.
fn make_tree(root: &Path, seed: &str) -> u64 {
    let mut total = 0;
    for d in 0..3 {
        let dir = root.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..4 {
            let data = random_bytes(format!("{seed}/{d}/{f}").as_bytes(), 150_000 + f * 70_000);
            total += data.len() as u64;
            std::fs::write(dir.join(format!("f{f}.bin")), data).unwrap();
        }
        let text = format!("MARKER-SYNC-PLAINTEXT directory {d}\n").repeat(500);
        total += text.len() as u64;
        std::fs::write(dir.join("notes.txt"), text).unwrap();
    }
    std::os::unix::fs::symlink("d0/notes.txt", root.join("link")).unwrap();
    total
}

/// SRC with two snapshots: `tree` as made, then with `changed` new bytes
/// (a new file). Returns SRC's path and the number of bytes changed.
fn two_snapshot_source(tmp: &Path, env: &[(&str, &str)], extra: &[&str]) -> (PathBuf, u64) {
    let tree = tmp.join("tree");
    make_tree(&tree, "v1");
    let src = tmp.join("src.ptar");
    let mut a = vec![
        "-c",
        "--name",
        "first",
        "--tag",
        "t1",
        "--tag",
        "both",
        "-f",
        s(&src),
    ];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["-C", s(&tree), "."]);
    run(&a, env);
    let new = random_bytes(b"the change", 300_000);
    std::fs::write(tree.join("d1/new.bin"), &new).unwrap();
    run(
        &[
            "-r",
            "--name",
            "second",
            "--tag",
            "both",
            "-f",
            s(&src),
            "-C",
            s(&tree),
            ".",
        ],
        env,
    );
    (src, new.len() as u64)
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn plain_to_new_plain_copies_every_snapshot_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, _) = two_snapshot_source(tmp.path(), &[], &[]);
    let dst = tmp.path().join("dst.ptar");
    let summary = sync_json(&["-f", s(&src), s(&dst)], &[]);
    assert_eq!(summary["snapshots_copied"], 2);
    assert_eq!(summary["snapshots_skipped"], 0);
    assert_eq!(summary["bytes_added"].as_u64().unwrap(), len(&dst));
    let out = run(&["--verify", "--full", "-f", s(&dst)], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\nok\n"));
    // Names, tags, times, host, paths, counts: all as in SRC (and the ids
    // too: both archives are plain).
    let want = snapshot_list(&src, &[]);
    assert_eq!(want.len(), 2);
    assert_eq!(snapshot_list(&dst, &[]), want);
    assert_eq!(want[0]["name"], "first");
    assert_eq!(want[1]["tags"], serde_json::json!(["both"]));
    for sel in ["1", "2"] {
        assert_eq!(
            extracted(&dst, sel, tmp.path(), &[]),
            extracted(&src, sel, tmp.path(), &[]),
            "snapshot {sel} extracts differently from DST"
        );
    }
    // One generation for both snapshots.
    let a = Archive::open(&dst, None).unwrap();
    assert_eq!(a.store().generation_count(), 1);
}

#[test]
fn existing_destination_grows_by_the_new_data_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, changed) = two_snapshot_source(tmp.path(), &[], &[]);
    // DST: its own backup of the first state of the tree, made separately
    // (another snapshot id, the same chunks).
    let first = tmp.path().join("first");
    make_tree(&first, "v1");
    let dst = tmp.path().join("dst.ptar");
    run(&["-c", "-f", s(&dst), "-C", s(&first), "."], &[]);
    let before = len(&dst);
    let summary = sync_json(&["-f", s(&src), s(&dst)], &[]);
    let growth = len(&dst) - before;
    // What is new: the changed bytes (random, so they do not compress),
    // plus metadata: two snapshot records, the tree pages of the root and
    // of the changed directory, an index row of 64 bytes per new blob, the
    // snapshot table and a 512-byte footer, a few KiB in all.
    let chunks = summary["chunks_copied"].as_u64().unwrap();
    let allowed = changed + 64 * (chunks + 16) + 16 * 1024;
    eprintln!(
        "SRC {} bytes, DST {before} bytes, sync of {changed} changed bytes grew DST by {growth} (allowed {allowed})",
        len(&src)
    );
    assert!(growth >= changed, "the new file's bytes must be stored");
    assert!(growth <= allowed, "grew by {growth}, allowed {allowed}");
    assert!(growth < len(&src) / 4);
    assert!(summary["chunks_present"].as_u64().unwrap() > 0);
    assert_eq!(summary["snapshots_copied"], 2);
    assert_eq!(
        extracted(&dst, "1", tmp.path(), &[]),
        extracted(&src, "1", tmp.path(), &[])
    );
    run(&["--verify", "--full", "-f", s(&dst)], &[]);
    // Again: nothing to copy, and nothing written at all.
    let bytes = std::fs::read(&dst).unwrap();
    let out = run(&["sync", "-f", s(&src), s(&dst)], &[]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("nothing to copy"), "{msg}");
    assert_eq!(std::fs::read(&dst).unwrap(), bytes);
    let again = sync_json(&["-f", s(&src), s(&dst)], &[]);
    assert_eq!(again["nothing_to_copy"], true);
    assert_eq!(again["snapshots_skipped"], 2);
    assert_eq!(again["bytes_read"], 0);
    assert_eq!(std::fs::read(&dst).unwrap(), bytes);
}

#[test]
fn plain_to_encrypted_and_between_passphrases() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, _) = two_snapshot_source(tmp.path(), &[], &[]);
    let a = tmp.path().join("a.ptar");
    let pass_a = [("PTAR_DEST_PASSPHRASE", "pass A")];
    sync_json(
        &["--encrypt", "--kdf-params", FAST_KDF, "-f", s(&src), s(&a)],
        &pass_a,
    );
    let read_a = [("PTAR_PASSPHRASE", "pass A")];
    // A passphrase file works as well as the environment.
    let b_pass = tmp.path().join("b.pass");
    std::fs::write(&b_pass, "pass B\n").unwrap();
    let b = tmp.path().join("b.ptar");
    let summary = sync_json(
        &[
            "--encrypt",
            "--kdf-params",
            FAST_KDF,
            "--dest-passphrase-file",
            s(&b_pass),
            "-f",
            s(&a),
            s(&b),
        ],
        &read_a,
    );
    assert_eq!(summary["snapshots_copied"], 2);
    let read_b = [("PTAR_PASSPHRASE", "pass B")];
    for (archive, env) in [(&a, &read_a), (&b, &read_b)] {
        let out = run(&["--verify", "--full", "-f", s(archive)], env);
        assert!(String::from_utf8_lossy(&out.stdout).contains("\nok\n"));
        for sel in ["1", "2"] {
            assert_eq!(
                extracted(archive, sel, tmp.path(), env),
                extracted(&src, sel, tmp.path(), &[]),
                "snapshot {sel} of {archive:?}"
            );
        }
        // The content was encrypted, not copied as it was.
        let bytes = std::fs::read(archive).unwrap();
        let marker = b"MARKER-SYNC-PLAINTEXT";
        assert!(!bytes.windows(marker.len()).any(|w| w == marker));
        // Same metadata; other ids (keyed by each archive's key).
        let (got, want) = (snapshot_list(archive, env), snapshot_list(&src, &[]));
        for (g, w) in got.iter().zip(&want) {
            assert_ne!(g["id"], w["id"]);
            for field in ["time_ns", "hostname", "name", "tags", "paths", "files"] {
                assert_eq!(g[field], w[field], "{field}");
            }
        }
        assert_eq!(got.len(), want.len());
    }
    let wrong = ptar_s(&["--verify", "-f", s(&b)], &read_a);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    // B already holds A's snapshots (under other ids): nothing to copy.
    let before = std::fs::read(&b).unwrap();
    let again = sync_json(
        &["-f", s(&a), s(&b)],
        &[read_a[0], ("PTAR_DEST_PASSPHRASE", "pass B")],
    );
    assert_eq!(again["nothing_to_copy"], true);
    assert_eq!(again["chunks_copied"], 0);
    assert_eq!(std::fs::read(&b).unwrap(), before);
    // An existing encrypted DST needs its own passphrase.
    let out = ptar_s(
        &["sync", "-f", s(&a), s(&b)],
        &[read_a[0], ("PTAR_DEST_PASSPHRASE", "pass A")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
}

#[test]
fn snapshot_selection_and_unknown_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, _) = two_snapshot_source(tmp.path(), &[], &[]);
    let list = snapshot_list(&src, &[]);
    let dst = tmp.path().join("dst.ptar");
    // The older one, named by position from the end, and again by id prefix.
    let older = list[0]["id"].as_str().unwrap();
    run(
        &[
            "sync",
            "--snapshot",
            "2",
            "--snapshot",
            &older[..12],
            "-f",
            s(&src),
            s(&dst),
        ],
        &[],
    );
    let got = snapshot_list(&dst, &[]);
    assert_eq!(got, vec![list[0].clone()]);
    // Several in SRC's order, whatever order they are asked in.
    let both = tmp.path().join("both.ptar");
    run(
        &[
            "sync",
            "--snapshot",
            "latest",
            "--snapshot",
            "2",
            "-f",
            s(&src),
            s(&both),
        ],
        &[],
    );
    assert_eq!(snapshot_list(&both, &[]), list);
    // An unknown snapshot: exit 2, DST untouched, a new DST never made.
    let before = std::fs::read(&dst).unwrap();
    let out = ptar_s(
        &["sync", "--snapshot", "deadbeef99", "-f", s(&src), s(&dst)],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.starts_with("ptar: ") && msg.contains("deadbeef99"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&dst).unwrap(), before);
    let fresh = tmp.path().join("fresh.ptar");
    let out = ptar_s(&["sync", "--snapshot", "7", "-f", s(&src), s(&fresh)], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!fresh.exists());
}

/// Every chunk id of every snapshot of a plain archive, with its length.
fn chunks_of(archive: &Archive) -> Vec<(Id, u32)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for snap in archive.snapshots().unwrap() {
        archive
            .walk(&snap, |_, e| {
                if let Payload::File(c) = &e.payload {
                    for x in archive.extents(c, e.size)? {
                        if let Extent::Data { id, len } = x {
                            if seen.insert(id) {
                                out.push((id, len));
                            }
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
    }
    out
}

#[test]
fn a_damaged_chunk_fails_the_sync_and_leaves_the_destination_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, _) = two_snapshot_source(tmp.path(), &[], &[]);
    // DST holds something else already.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("x"), random_bytes(b"other", 100_000)).unwrap();
    let dst = tmp.path().join("dst.ptar");
    run(&["-c", "-f", s(&dst), "-C", s(&other), "x"], &[]);
    // Damage the record of one of SRC's chunks, in the middle of its bytes.
    let (record, names) = {
        let a = Archive::open(&src, None).unwrap();
        let chunks = chunks_of(&a);
        let (victim, _) = chunks[chunks.len() / 2];
        let e = a.store().find(&victim).unwrap().unwrap();
        // Chunks packed into the same record are lost with it.
        let names: Vec<String> = chunks
            .iter()
            .filter(|(id, _)| a.store().find(id).unwrap().unwrap().offset == e.offset)
            .map(|(id, _)| id.short())
            .collect();
        (e, names)
    };
    let mut bytes = std::fs::read(&src).unwrap();
    let at = (record.offset + 4 + u64::from(record.body_len) / 2) as usize;
    bytes[at] ^= 0x5a;
    std::fs::write(&src, &bytes).unwrap();
    let before = std::fs::read(&dst).unwrap();
    let out = ptar_s(&["sync", "-f", s(&src), s(&dst)], &[]);
    assert_eq!(out.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.starts_with("ptar: "), "{msg}");
    assert!(
        names
            .iter()
            .any(|n| msg.contains(&format!("chunk blob {n}"))),
        "the message names none of the damaged record's chunks {names:?}: {msg}"
    );
    assert_eq!(std::fs::read(&dst).unwrap(), before, "DST changed");
    // A new DST is not left behind either.
    let fresh = tmp.path().join("fresh.ptar");
    let out = ptar_s(&["sync", "-f", s(&src), s(&fresh)], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!fresh.exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("ptar-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn hard_links_holes_symlinks_and_xattrs_survive() {
    let as_root = rustix::process::geteuid().is_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = build(&tmp.path().join("tree"), as_root);
    let want = fields(&t.root);
    let src = tmp.path().join("src.ptar");
    run(&["-c", "-f", s(&src), "-C", s(&t.root), "dir"], &[]);
    let plain = tmp.path().join("plain.ptar");
    run(&["sync", "-f", s(&src), s(&plain)], &[]);
    let enc = tmp.path().join("enc.ptar");
    let pass = [("PTAR_DEST_PASSPHRASE", "p"), ("PTAR_PASSPHRASE", "p")];
    run(
        &[
            "sync",
            "--encrypt",
            "--kdf-params",
            FAST_KDF,
            "-f",
            s(&src),
            s(&enc),
        ],
        &pass,
    );
    for archive in [&plain, &enc] {
        let out = tmp.path().join(format!(
            "out-{}",
            archive.file_name().unwrap().to_str().unwrap()
        ));
        run(&["-x", "-p", "-f", s(archive), "-C", s(&out)], &pass);
        let got = fields(&out);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (path, w) in &want {
            for (field, value) in w {
                assert_eq!(
                    got[path].get(field),
                    Some(value),
                    "{field} of {} through {archive:?}",
                    path.display()
                );
            }
        }
        let sparse = &got[Path::new("dir/sparse.img")];
        assert_eq!(sparse["sparse"], "true");
        assert!(got[Path::new("dir/hard")]["links"].starts_with("2 "));
        assert_eq!(got[Path::new("dir/rel-link")]["type"], "symlink");
        if t.xattrs {
            assert!(got[Path::new("dir/plain.txt")].contains_key("xattr user.origin"));
        }
    }
}

/// Creates an archive of `tree` through the library, `opts` given.
fn library_archive(path: &Path, tree: &Path, opts: CreateOptions) {
    let mut w = Writer::create(path, opts).unwrap();
    w.add_snapshot(
        &[tree.to_path_buf()],
        &ptar::SnapshotMeta::default(),
        &NoProgress,
    )
    .unwrap();
    w.commit().unwrap();
}

fn encrypted(pass: &[u8]) -> CreateOptions {
    CreateOptions {
        encryption: Some(Encryption {
            passphrase: zeroize::Zeroizing::new(pass.to_vec()),
            kdf: VECTOR_KDF,
        }),
        ..CreateOptions::default()
    }
}

/// Syncs every snapshot of `src` into `dst` (created when absent).
fn lib_sync(
    src: &Archive,
    dst: &Path,
    dst_pass: Option<&[u8]>,
    create: Option<CreateOptions>,
) -> ptar::sync::SyncOutcome {
    let snaps = src.snapshots().unwrap();
    let mut w = match create {
        Some(opts) => Writer::create(dst, opts).unwrap(),
        None => Writer::append(dst, dst_pass).unwrap(),
    };
    let out = ptar::sync::sync(src, &snaps, &mut w, &NoProgress).unwrap();
    if out.snapshots_copied > 0 {
        w.commit().unwrap();
    }
    out
}

/// Counts the entries a sync reports.
#[derive(Default)]
struct CountEntries(std::sync::atomic::AtomicU64);

impl ptar::progress::Progress for CountEntries {
    fn entry(&self, _: &[u8], _: &ptar::format::tree::Entry) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Entries of all snapshots, walked with each distinct directory listed
/// once (what a sync translates), and walked in full.
fn entries_once_and_all(archive: &Archive) -> (u64, u64) {
    let mut seen = BTreeSet::new();
    let (mut once, mut all) = (0, 0);
    for snap in archive.snapshots().unwrap() {
        archive
            .walk(&snap, |_, _| {
                all += 1;
                Ok(())
            })
            .unwrap();
        if !seen.insert(snap.record.root) {
            continue;
        }
        let mut stack = vec![snap.record.root];
        while let Some(tree) = stack.pop() {
            for e in archive.read_dir(&tree).unwrap() {
                once += 1;
                if let Payload::Dir(id) = e.payload {
                    if seen.insert(id) {
                        stack.push(id);
                    }
                }
            }
        }
    }
    (once, all)
}

#[test]
fn a_directory_met_again_is_not_walked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, "memo");
    let src_path = tmp.path().join("src.ptar");
    library_archive(&src_path, &tree, CreateOptions::default());
    std::fs::write(tree.join("d2/new.bin"), random_bytes(b"memo new", 50_000)).unwrap();
    ptar_tests::append_snapshot(&src_path, &tree, None);
    let src = Archive::open(&src_path, None).unwrap();
    let (once, all) = entries_once_and_all(&src);
    assert!(
        once < all,
        "the second snapshot shares directories with the first"
    );
    for opts in [CreateOptions::default(), encrypted(b"m")] {
        let dst = tmp.path().join("dst.ptar");
        let _ = std::fs::remove_file(&dst);
        let mut w = Writer::create(&dst, opts).unwrap();
        let count = CountEntries::default();
        let snaps = src.snapshots().unwrap();
        ptar::sync::sync(&src, &snaps, &mut w, &count).unwrap();
        assert_eq!(count.0.into_inner(), once);
    }
}

#[test]
fn library_counts_reads_and_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, "lib");
    let src_path = tmp.path().join("src.ptar");
    library_archive(&src_path, &tree, CreateOptions::default());
    // The second snapshot shares every chunk but one new file's.
    std::fs::write(tree.join("d2/new.bin"), random_bytes(b"lib new", 200_000)).unwrap();
    ptar_tests::append_snapshot(&src_path, &tree, None);
    let src = Archive::open(&src_path, None).unwrap();
    let chunks = chunks_of(&src);
    let chunk_bytes: u64 = chunks.iter().map(|(_, l)| *l as u64).sum();
    let distinct = chunks.len() as u64;

    // Plain to new plain: every distinct chunk read once and stored.
    let plain = tmp.path().join("plain.ptar");
    let out = lib_sync(&src, &plain, None, Some(CreateOptions::default()));
    assert_eq!((out.snapshots_copied, out.snapshots_skipped), (2, 0));
    assert_eq!((out.chunks_copied, out.chunks_present), (distinct, 0));
    assert_eq!(out.bytes_read, chunk_bytes);
    assert!(out.bytes_stored > 0);
    let ids: Vec<Id> = src.snapshots().unwrap().iter().map(|s| s.id).collect();
    assert_eq!(
        out.snapshots.iter().map(|s| s.dest).collect::<Vec<_>>(),
        ids,
        "plain archives share snapshot ids"
    );
    // Again: both skipped without reading a chunk.
    let again = lib_sync(&src, &plain, None, None);
    assert_eq!((again.snapshots_copied, again.snapshots_skipped), (0, 2));
    assert_eq!((again.chunks_copied, again.bytes_read), (0, 0));

    // Plain to encrypted: ids differ, so every distinct chunk is read, but
    // only once although both snapshots hold most of them.
    let enc = tmp.path().join("enc.ptar");
    let out = lib_sync(&src, &enc, None, Some(encrypted(b"k")));
    assert_eq!((out.chunks_copied, out.chunks_present), (distinct, 0));
    assert_eq!(out.bytes_read, chunk_bytes);
    assert!(out
        .snapshots
        .iter()
        .all(|s| s.copied && !ids.contains(&s.dest)));
    // Again: the translated snapshots are found, nothing is stored.
    let again = lib_sync(&src, &enc, Some(b"k"), None);
    assert_eq!((again.snapshots_copied, again.snapshots_skipped), (0, 2));
    assert_eq!((again.chunks_copied, again.chunks_present), (0, distinct));

    // Encrypted to a copy of itself (the same key): a new snapshot's old
    // chunks are found in the copy by id, without reading them.
    let copy = tmp.path().join("copy.ptar");
    std::fs::copy(&enc, &copy).unwrap();
    let added = random_bytes(b"lib third", 120_000);
    std::fs::write(tree.join("d0/third.bin"), &added).unwrap();
    ptar_tests::append_snapshot(&enc, &tree, Some(b"k"));
    let enc_src = Archive::open(&enc, Some(b"k")).unwrap();
    let out = lib_sync(&enc_src, &copy, Some(b"k"), None);
    assert_eq!((out.snapshots_copied, out.snapshots_skipped), (1, 2));
    assert_eq!(out.bytes_read, added.len() as u64);
    assert!(out.chunks_present >= distinct);
    let copy = Archive::open(&copy, Some(b"k")).unwrap();
    assert_eq!(
        copy.snapshots().unwrap().last().unwrap().id,
        enc_src.snapshots().unwrap().last().unwrap().id
    );
}
