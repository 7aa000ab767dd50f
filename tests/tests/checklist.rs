//! The hostile-input checklist of `shared/reference/security.md` §5, one
//! test per case. Archives are built by the raw writer in `ptar_tests::forge`
//! (and patched by hand where the writer would refuse).
//!
//! | case | test |
//! |---|---|
//! | 1 `..` components | `hostile.rs`: `hostile_names_never_leave_the_destination` |
//! | 2 absolute names, `//`, drive letters, backslashes | same, and `c02_drive_letters_and_backslashes_stay_inside` |
//! | 3 a file through a symlink | `c03_nothing_goes_through_a_symlink` |
//! | 4 escaping symlink targets | `extract_options.rs`: `escaping_symlinks_need_absolute_names` |
//! | 5 hard links outside or to symlinks | `hostile.rs`: `a_hard_link_to_something_not_extracted_is_refused`, `c05_hard_link_to_a_symlink_is_refused` |
//! | 6 metadata through a symlink | `c06_metadata_never_goes_through_a_symlink` |
//! | 7 name collisions | `c07_names_that_differ_only_in_case_stay_apart`, `c07_names_the_file_system_folds_together_are_refused` |
//! | 8 an entry naming the root | `hostile.rs`: `hostile_names_never_leave_the_destination` (`.` and the empty name) |
//! | 9 devices and fifos | `c09_devices_only_when_allowed` |
//! | 10 special bits and foreign owners | `c10_special_bits_cleared_without_p` |
//! | 11 duplicate paths and ids | `hostile.rs` (a name twice), `c11_a_blob_stored_twice_reads_the_newest` |
//! | 12 oversized declarations | `c12_declared_lengths_are_checked_before_allocating` |
//! | 13 amplification | `hostile.rs`: `a_chunk_referenced_100000_times_stops_at_the_output_budget` |
//! | 14 cycles and depth | `c14_deep_nesting_is_refused_without_recursion`, `c14_nesting_at_the_limit_reads_everywhere_and_one_level_more_nowhere` |
//! | 15 offsets past the end, overflow | `c15_an_index_entry_past_the_packfile_is_refused` |
//! | 16 parser differentials | `c16_unknown_critical_extensions_are_refused` |
//! | 17 type confusion | `c17_file_content_cannot_pass_for_a_directory` |
//! | 18 truncation, trailing garbage | `torn_append.rs`, `tamper.rs` |
//! | 19 hostile KDF parameters | `hostile.rs`: `hostile_kdf_parameters_are_refused_at_once` |
//! | 20 malformed LZ4 | `c20_malformed_lz4_is_an_error` |
//! | 21 archive changed while read | `c21_a_reader_survives_an_append_that_truncates_the_tail_it_saw` |
//! | 22 planted files in the destination | `hostile.rs`: `preplanted_symlinks_are_replaced_not_followed` |

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use ptar::format::run::BlobLocation;
use ptar::format::tree::{Content, Entry, EntryType, Extent, Payload, TreePage};
use ptar::format::{Id, Kind};
use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::store::GenerationWriter;
use ptar::Archive;
use ptar_tests::forge::{entry, forge, forge_with, header, try_extract};

fn data_file(w: &mut GenerationWriter<Vec<u8>>, name: &[u8], body: &[u8]) -> Entry {
    let id = w.put_blob(Kind::Chunk, body).unwrap();
    let extents = vec![Extent::Data {
        len: body.len() as u32,
        id,
    }];
    entry(
        name,
        EntryType::File,
        Payload::File(Content::Inline(extents)),
        body.len() as u64,
    )
}

fn dir(w: &mut GenerationWriter<Vec<u8>>, name: &[u8], kids: Vec<Entry>) -> Entry {
    let id = w
        .put_blob(Kind::Tree, &TreePage::Leaf(kids).to_bytes())
        .unwrap();
    let mut d = entry(name, EntryType::Dir, Payload::Dir(id), 0);
    d.mode = 0o755;
    d
}

fn extract_with(
    bytes: Vec<u8>,
    dest: &std::path::Path,
    opts: &ExtractOptions,
) -> ptar::Result<ptar::fs::ExtractOutcome> {
    let a = Archive::from_vec(bytes, None)?;
    let s = a.find_snapshot("latest")?;
    a.extract(&s, dest, opts, &NoProgress)
}

#[test]
fn c02_drive_letters_and_backslashes_stay_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = forge_with(&header(None), None, |w| {
        vec![
            data_file(w, b"C:evil", b"1"),
            data_file(w, b"a\\..\\..\\b", b"2"),
        ]
    });
    let dest = tmp.path().join("d");
    let out = try_extract(bytes, &dest).unwrap();
    assert!(out.errors.is_empty());
    // On POSIX these are ordinary names: they land inside, as themselves.
    assert!(dest.join("C:evil").is_file());
    assert!(dest.join("a\\..\\..\\b").is_file());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "nothing beside the destination"
    );
}

#[test]
fn c03_nothing_goes_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    // Snapshot 1 leaves a symlink "x" -> outside (created as stored, as tar
    // does); snapshot 2, extracted into the same place, has a directory "x"
    // with a file.
    let one = forge(
        &header(None),
        None,
        vec![entry(
            b"x",
            EntryType::Symlink,
            Payload::Symlink(outside.as_os_str().as_encoded_bytes().to_vec()),
            0,
        )],
    );
    let dest = tmp.path().join("d");
    let opts = ExtractOptions::default();
    assert!(extract_with(one, &dest, &opts).unwrap().errors.is_empty());
    assert!(std::fs::symlink_metadata(dest.join("x"))
        .unwrap()
        .file_type()
        .is_symlink());
    let two = forge_with(&header(None), None, |w| {
        let f = data_file(w, b"file", b"payload");
        vec![dir(w, b"x", vec![f])]
    });
    assert!(extract_with(two, &dest, &opts).unwrap().errors.is_empty());
    assert!(!outside.join("file").exists(), "wrote through the symlink");
    assert_eq!(std::fs::read(dest.join("x/file")).unwrap(), b"payload");
}

#[test]
fn c05_hard_link_to_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = forge(
        &header(None),
        None,
        vec![
            entry(
                b"a-link",
                EntryType::Symlink,
                Payload::Symlink(b"target".to_vec()),
                0,
            ),
            entry(
                b"b-hard",
                EntryType::Hardlink,
                Payload::Hardlink(b"a-link".to_vec()),
                0,
            ),
        ],
    );
    let dest = tmp.path().join("d");
    let out = try_extract(bytes, &dest).unwrap();
    assert_eq!(out.errors.len(), 1);
    assert!(out.errors[0].1.contains("did not write as a regular file"));
    assert!(std::fs::symlink_metadata(dest.join("b-hard")).is_err());
}

#[test]
fn c06_metadata_never_goes_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = std::fs::metadata(&victim).unwrap();
    let dest = tmp.path().join("d");
    std::fs::create_dir(&dest).unwrap();
    std::os::unix::fs::symlink(&victim, dest.join("f")).unwrap();
    // A symlink entry named like the planted one, with times and an owner.
    let mut link = entry(
        b"f",
        EntryType::Symlink,
        Payload::Symlink(b"elsewhere".to_vec()),
        0,
    );
    link.mtime = ptar::format::tree::Timestamp { sec: 1, nsec: 0 };
    link.uid = 4242;
    let out = try_extract(forge(&header(None), None, vec![link]), &dest).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let after = std::fs::metadata(&victim).unwrap();
    assert_eq!(
        (after.mode(), after.mtime(), after.uid()),
        (before.mode(), before.mtime(), before.uid())
    );
    assert_eq!(
        std::fs::read_link(dest.join("f")).unwrap(),
        std::path::Path::new("elsewhere")
    );
}

#[test]
fn c07_names_that_differ_only_in_case_stay_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = forge_with(&header(None), None, |w| {
        vec![
            data_file(w, b"Readme", b"upper"),
            data_file(w, b"readme", b"lower"),
        ]
    });
    let dest = tmp.path().join("d");
    assert!(try_extract(bytes, &dest).unwrap().errors.is_empty());
    // On a case-sensitive file system (ext4, this test's) both survive.
    assert_eq!(std::fs::read(dest.join("Readme")).unwrap(), b"upper");
    assert_eq!(std::fs::read(dest.join("readme")).unwrap(), b"lower");
}

#[test]
fn c09_devices_only_when_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = entry(
        b"null",
        EntryType::CharDevice,
        Payload::Device { major: 1, minor: 3 },
        0,
    );
    let fifo = entry(b"pipe", EntryType::Fifo, Payload::None, 0);
    let bytes = forge(&header(None), None, vec![dev, fifo]);
    let dest = tmp.path().join("d");
    let opts = ExtractOptions {
        devices: false,
        ..ExtractOptions::default()
    };
    let out = extract_with(bytes, &dest, &opts).unwrap();
    assert!(out.errors.is_empty());
    assert!(
        std::fs::symlink_metadata(dest.join("null")).is_err(),
        "a device node was created"
    );
    assert!(std::fs::symlink_metadata(dest.join("pipe")).is_ok());
}

#[test]
fn c10_special_bits_cleared_without_p() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = forge_with(&header(None), None, |w| {
        let mut f = data_file(w, b"tool", b"#!/bin/sh\n");
        f.mode = 0o6777;
        f.uid = 31337;
        vec![f]
    });
    let dest = tmp.path().join("d");
    let opts = ExtractOptions {
        preserve_permissions: false,
        same_owner: false,
        ..ExtractOptions::default()
    };
    let out = extract_with(bytes, &dest, &opts).unwrap();
    assert!(out.errors.is_empty());
    let md = std::fs::metadata(dest.join("tool")).unwrap();
    assert_eq!(md.mode() & 0o7000, 0, "setuid/setgid kept");
    assert_eq!(md.mode() & 0o022, 0, "group/other write kept");
    assert_ne!(
        md.uid(),
        31337,
        "foreign owner applied without --same-owner"
    );
}

#[test]
fn c11_a_blob_stored_twice_reads_the_newest() {
    // Two generations both store the same chunk; the reader takes the newest
    // generation's copy (spec §9, lookup), and the archive verifies.
    let first = forge_with(&header(None), None, |w| {
        vec![data_file(w, b"f", b"same bytes")]
    });
    let store = std::sync::Arc::new(ptar::store::Store::from_vec(first.clone(), None).unwrap());
    let h = store.header().clone();
    let ctx = ptar::store::writer::ArchiveContext {
        uuid: h.uuid,
        header_minor: h.minor,
        header_hash: *store.header_hash(),
        keys: None,
        existing: Some(store.clone()),
    };
    let mut w = GenerationWriter::new(
        Vec::new(),
        store.committed_end(),
        ctx,
        Box::new(ptar::crypto::SeededEntropy::new(b"dup")),
    );
    let id = w.put_blob_again(Kind::Chunk, b"same bytes").unwrap();
    let (gen2, _) = w.finish(&[], None, None, 0).unwrap();
    let mut bytes = first;
    let first_end = bytes.len() as u64;
    bytes.extend_from_slice(&gen2);
    let a = Archive::from_vec(bytes, None).unwrap();
    let s = a.store();
    let held_by: Vec<u64> = s
        .runs()
        .iter()
        .filter(|r| {
            let dir = r.index.as_ref().unwrap();
            let p = dir.page_for(&id).unwrap();
            s.index_page(r, p).unwrap().find(&id).is_some()
        })
        .map(|r| r.generation)
        .collect();
    assert_eq!(
        held_by,
        vec![2, 1],
        "the runs of both generations hold the blob"
    );
    assert!(
        s.find(&id).unwrap().unwrap().offset >= first_end,
        "the newest copy is the one read"
    );
    assert_eq!(a.read_chunk(&id).unwrap(), b"same bytes");
    assert!(a
        .verify(&ptar::VerifyOptions {
            full: true,
            trusted_key: None
        })
        .ok());
}

#[test]
fn c12_declared_lengths_are_checked_before_allocating() {
    // A tree page declaring 2^32 - 1 entries in a few bytes, and an entry
    // whose xattr value claims 4 GiB.
    let mut page = vec![0u8, 0, 0, 0];
    page.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = TreePage::parse(&page).unwrap_err();
    assert!(err.0.contains("count"), "{}", err.0);
    let mut e = entry(
        b"x",
        EntryType::File,
        Payload::File(Content::Inline(vec![])),
        0,
    );
    e.xattrs = vec![(b"user.a".to_vec(), b"v".to_vec())];
    let mut b = TreePage::Leaf(vec![e]).to_bytes();
    // The value length field sits right before the value "v" at the end of the xattr.
    let pos = b
        .windows(7)
        .position(|w| w == b"user.a\x01")
        .expect("xattr value length after the name")
        + 6;
    b[pos..pos + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = TreePage::parse(&b).unwrap_err();
    assert!(err.0.contains("xattr value"), "{}", err.0);
}

#[test]
fn c14_deep_nesting_is_refused_without_recursion() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = forge_with(&header(None), None, |w| {
        let mut d = dir(w, b"d", vec![]);
        for _ in 0..(ptar::format::limits::MAX_TREE_DEPTH + 10) {
            d = dir(w, b"d", vec![d]);
        }
        vec![d]
    });
    let dest = tmp.path().join("out");
    let r = try_extract(bytes.clone(), &dest);
    let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("nest too deep"), "{msg}");
    let a = Archive::from_vec(bytes, None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    assert!(a.walk(&s, |_, _| Ok(())).is_err(), "walking stops too");
}

/// `levels` directories called `d`, each in the one before, the deepest
/// holding `bottom`: the outermost one's entry.
fn chain(w: &mut GenerationWriter<Vec<u8>>, levels: usize, bottom: Vec<Entry>) -> Entry {
    let mut d = dir(w, b"d", bottom);
    for _ in 1..levels {
        d = dir(w, b"d", vec![d]);
    }
    d
}

/// Drops `tmp` (and the deep trees under it) on a thread with room for
/// the standard library's recursive removal.
fn remove_deep(tmp: tempfile::TempDir) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || drop(tmp))
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn c14_nesting_at_the_limit_reads_everywhere_and_one_level_more_nowhere() {
    use ptar_tests::{append_snapshot, ptar_s};
    const LIMIT: usize = ptar::format::limits::MAX_TREE_DEPTH;
    const TOO_DEEP: &str = "directories nest too deep (more than 8192 levels)";
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let bottom = |w: &mut GenerationWriter<Vec<u8>>| data_file(w, b"bottom.txt", b"deep\n");
    let archives = [
        // Directories at depths 1 to 8192, a file at 8193.
        (
            "at-limit",
            forge_with(&header(None), None, |w| {
                let f = bottom(w);
                vec![chain(w, LIMIT, vec![f])]
            }),
        ),
        // One directory more.
        (
            "too-deep",
            forge_with(&header(None), None, |w| {
                let f = bottom(w);
                vec![chain(w, LIMIT + 1, vec![f])]
            }),
        ),
        // One subtree twice: where it fits (`a/d...`), then one level
        // deeper (`b/c/d...`). Walks that remember a subtree they have seen
        // must still hold it to the limit where it is met again.
        (
            "shared",
            forge_with(&header(None), None, |w| {
                let f = bottom(w);
                let x = chain(w, LIMIT - 1, vec![f]);
                let a = dir(w, b"a", vec![x.clone()]);
                let c = dir(w, b"c", vec![x]);
                let b = dir(w, b"b", vec![c]);
                vec![a, b]
            }),
        ),
    ];
    // A second, small snapshot to compare the deep one with.
    let small = t.join("small");
    std::fs::create_dir(&small).unwrap();
    std::fs::write(small.join("top.txt"), "top\n").unwrap();
    for (name, bytes) in archives {
        let archive = t.join(format!("{name}.ptar"));
        std::fs::write(&archive, bytes).unwrap();
        append_snapshot(&archive, &small, None);
        let a = archive.to_str().unwrap();
        let out = t.join(format!("{name}.out"));
        let o = out.to_str().unwrap();
        std::fs::create_dir(&out).unwrap();
        let copy = t.join(format!("{name}.copy.ptar"));
        let commands: Vec<(&str, Vec<&str>)> = vec![
            ("list", vec!["-t", "--snapshot", "2", "-f", a]),
            // Extraction to disk where it succeeds; where it must fail,
            // to stdout through the same walk (c14_deep_nesting_is_refused_
            // _without_recursion extracts one to disk), which is faster.
            if name == "at-limit" {
                ("extract", vec!["-x", "--snapshot", "2", "-f", a, "-C", o])
            } else {
                ("extract", vec!["-x", "-O", "--snapshot", "2", "-f", a])
            },
            ("compare", vec!["-d", "--snapshot", "2", "-f", a, "-C", o]),
            ("find", vec!["find", "-f", a, "bottom.txt"]),
            ("diff", vec!["diff", "-f", a, "2", "1"]),
            ("sync", vec!["sync", "-f", a, copy.to_str().unwrap()]),
            ("verify", vec!["--verify", "--full", "-f", a]),
        ];
        for (what, args) in commands {
            let r = ptar_s(&args, &[]);
            let stderr = String::from_utf8_lossy(&r.stderr);
            let stdout = String::from_utf8_lossy(&r.stdout);
            if name == "at-limit" {
                // `-d` finds the owner differs when not run as root; `diff`
                // finds differences.
                let ok = match what {
                    "compare" => [0, 1],
                    "diff" => [1, 1],
                    _ => [0, 0],
                };
                assert!(
                    ok.contains(&r.status.code().unwrap_or(-1)),
                    "{name}: {what}: {:?}\n{stderr}",
                    r.status
                );
                assert!(
                    !stderr.contains("nest too deep"),
                    "{name}: {what}: {stderr}"
                );
                match what {
                    "list" | "find" => {
                        let deepest = format!("{}bottom.txt", "d/".repeat(LIMIT));
                        assert!(stdout.contains(&deepest), "{name}: {what}");
                    }
                    "diff" => assert!(stdout.contains("bottom.txt"), "{name}: {what}: {stdout}"),
                    _ => {}
                }
            } else {
                assert_eq!(r.status.code(), Some(2), "{name}: {what}: {stderr}");
                let said = if what == "verify" { &stdout } else { &stderr };
                assert!(
                    said.contains(TOO_DEEP) || stderr.contains(TOO_DEEP),
                    "{name}: {what}: {stdout}\n{stderr}"
                );
            }
        }
        if name == "at-limit" {
            let mut dir = std::fs::File::open(&out).unwrap();
            // Open one level at a time: the path is far past PATH_MAX.
            for _ in 0..LIMIT {
                dir = openat_dir(&dir, "d");
            }
            let bottom = format!("/proc/self/fd/{}/bottom.txt", {
                use std::os::fd::AsRawFd;
                dir.as_raw_fd()
            });
            assert_eq!(std::fs::read(bottom).unwrap(), b"deep\n");
            assert!(copy.exists(), "sync copied the snapshots");
        }
    }
    remove_deep(tmp);
}

/// Opens the directory `name` inside `dir`.
fn openat_dir(dir: &std::fs::File, name: &str) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let p = std::path::PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()));
    std::fs::File::open(p).unwrap()
}

#[test]
fn c15_an_index_entry_past_the_packfile_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut id = Id::ZERO;
    // The index says the chunk's record lies at the end of the offsets.
    let bytes = forge_with(&header(None), None, |w| {
        let f = data_file(w, b"f", b"content");
        if let Payload::File(Content::Inline(x)) = &f.payload {
            if let Extent::Data { id: i, .. } = x[0] {
                id = i;
            }
        }
        w.set_index_entry(
            id,
            BlobLocation {
                offset: u64::MAX - 2,
                body_len: 100,
                ordinal: 0,
            },
        );
        vec![f]
    });
    let a = Archive::from_vec(bytes.clone(), None).unwrap();
    let err = a.read_chunk(&id).unwrap_err().to_string();
    assert!(
        err.contains("index") && (err.contains("outside") || err.contains("overflow")),
        "{err}"
    );
    let out = try_extract(bytes, &tmp.path().join("d"));
    assert!(out.map(|o| !o.errors.is_empty()).unwrap_or(true));
}

#[test]
fn c16_unknown_critical_extensions_are_refused() {
    let e = entry(b"x", EntryType::Fifo, Payload::None, 0);
    let mut b = TreePage::Leaf(vec![e]).to_bytes();
    // The entry ends in its extension count (u16 0): make it one critical extension.
    let n = b.len();
    b[n - 2..].copy_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0x8001u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    let err = TreePage::parse(&b).unwrap_err();
    assert!(err.0.contains("critical extension"), "{}", err.0);
    // The same extension without the critical bit is skipped.
    let len = b.len();
    b[len - 6..len - 4].copy_from_slice(&0x0001u16.to_le_bytes());
    assert!(TreePage::parse(&b).is_ok());
}

#[test]
fn c17_file_content_cannot_pass_for_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // A file whose bytes are a valid tree page naming "evil"; a directory
    // entry then points at that chunk's id as if it were its tree.
    let bytes = forge_with(&header(None), None, |w| {
        let page =
            TreePage::Leaf(vec![entry(b"evil", EntryType::Fifo, Payload::None, 0)]).to_bytes();
        let chunk = w.put_blob(Kind::Chunk, &page).unwrap();
        let file = entry(
            b"innocent",
            EntryType::File,
            Payload::File(Content::Inline(vec![Extent::Data {
                len: page.len() as u32,
                id: chunk,
            }])),
            page.len() as u64,
        );
        let mut d = entry(b"confused", EntryType::Dir, Payload::Dir(chunk), 0);
        d.mode = 0o755;
        vec![d, file]
    });
    let dest = tmp.path().join("d");
    let out = try_extract(bytes, &dest).unwrap();
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(out.errors[0].1.contains("tree"), "{:?}", out.errors);
    assert!(!dest.join("confused/evil").exists());
}

#[test]
fn c20_malformed_lz4_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut id = Id::ZERO;
    // Incompressible bytes are stored raw; relabel the record as LZ4.
    let body = ptar_tests::random_bytes(b"lz4", 4096);
    let mut bytes = forge_with(&header(None), None, |w| {
        let f = data_file(w, b"f", &body);
        if let Payload::File(Content::Inline(x)) = &f.payload {
            if let Extent::Data { id: i, .. } = x[0] {
                id = i;
            }
        }
        vec![f]
    });
    // The codec byte of the record's envelope (in clear in a plain archive).
    let at = Archive::from_vec(bytes.clone(), None)
        .unwrap()
        .store()
        .find(&id)
        .unwrap()
        .unwrap()
        .offset as usize
        + 5;
    assert_eq!(bytes[at], 0, "the record is stored");
    bytes[at] = 1;
    let a = Archive::from_vec(bytes.clone(), None).unwrap();
    let err = a.read_chunk(&id).unwrap_err().to_string();
    assert!(
        err.contains("LZ4") || err.contains("does not match its id"),
        "{err}"
    );
    let out = try_extract(bytes, &tmp.path().join("d")).unwrap();
    assert_eq!(out.errors.len(), 1);
    assert!(
        !tmp.path().join("d/f").exists(),
        "a file with wrong bytes was left"
    );
}

#[test]
fn c21_a_reader_survives_an_append_that_truncates_the_tail_it_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), ptar_tests::random_bytes(b"c21", 300_000)).unwrap();
    let archive = tmp.path().join("a.ptar");
    ptar_tests::create_snapshot(&archive, &src, ptar::CreateOptions::default());
    // A torn tail of an interrupted append: 1 MiB of garbage.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&archive)
        .unwrap()
        .write_all(&vec![0x55u8; 1 << 20])
        .unwrap();
    let reader = Archive::open(&archive, None).unwrap();
    assert_eq!(reader.store().tail().map(|t| t.len), Some(1 << 20));
    // An appender truncates that tail and commits a generation while the reader is open.
    std::fs::write(src.join("g"), "more").unwrap();
    ptar_tests::append_snapshot(&archive, &src, None);
    assert!(std::fs::metadata(&archive).unwrap().len() < 2 << 20);
    // The reader still reads everything it saw (it mapped committed bytes only).
    let s = reader.find_snapshot("latest").unwrap();
    let dest = tmp.path().join("out");
    let out = reader
        .extract(&s, &dest, &ExtractOptions::default(), &NoProgress)
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(reader
        .verify(&ptar::VerifyOptions {
            full: true,
            trusted_key: None
        })
        .ok());
    // A new reader sees both generations.
    assert_eq!(
        Archive::open(&archive, None)
            .unwrap()
            .snapshots()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn c07_names_the_file_system_folds_together_are_refused() {
    // No case-insensitive file system is at hand, so the test shows the sink
    // what one would: after "Readme" is written, the name "README" resolves
    // to the same inode (here, through a hard link planted between the calls).
    use ptar::sink::{EntrySink, FileContent};
    let tmp = tempfile::tempdir().unwrap();
    let bytes = forge_with(&header(None), None, |w| {
        // Tree pages list names in byte order: "README" sorts first.
        vec![
            data_file(w, b"README", b"second"),
            data_file(w, b"Readme", b"first"),
        ]
    });
    let a = Archive::from_vec(bytes, None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let entries = a.read_dir(&s.record.root).unwrap();
    let dest = tmp.path().join("d");
    let opts = ExtractOptions::default();
    let mut sink = ptar::fs::FsSink::new(&dest, (1 << 20, 100), &opts, &NoProgress).unwrap();
    let readme = entries.iter().find(|e| e.name == b"Readme").unwrap();
    let upper = entries.iter().find(|e| e.name == b"README").unwrap();
    sink.file(b"Readme", readme, &mut FileContent::new(a.store(), readme))
        .unwrap();
    std::fs::hard_link(dest.join("Readme"), dest.join("README")).unwrap();
    let err = sink
        .file(b"README", upper, &mut FileContent::new(a.store(), upper))
        .unwrap_err();
    assert!(err.to_string().contains("collides with 'Readme'"), "{err}");
    assert_eq!(
        std::fs::read(dest.join("Readme")).unwrap(),
        b"first",
        "the first entry was not overwritten"
    );
}
