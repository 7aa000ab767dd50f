//! Hostile archives get clear errors: never a panic, a hang, a huge
//! allocation, or a write outside the destination.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use ptar::crypto::{Keys, SeededEntropy};
use ptar::format::header::KdfParams;
use ptar::format::tree::{ChildRef, Content, EntryType, Payload, TreePage};
use ptar::format::Kind;
use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::store::writer::ArchiveContext;
use ptar::store::GenerationWriter;
use ptar::{Archive, Error, VerifyOptions};
use zeroize::Zeroizing;

use ptar_tests::forge::{entry, forge, forge_with, header, try_extract};

#[test]
fn hostile_kdf_parameters_are_refused_at_once() {
    let mk = [7u8; 32];
    for kdf in [
        KdfParams {
            m_kib: 64 * 1024 * 1024,
            t: 1,
            p: 1,
        }, // 64 GiB
        KdfParams {
            m_kib: 1024,
            t: 1_000_000,
            p: 1,
        }, // absurd time
        KdfParams {
            m_kib: 1024,
            t: 1,
            p: 0,
        }, // invalid
    ] {
        let keys = Arc::new(Keys::from_master(Zeroizing::new(mk)));
        let bytes = forge(&header(Some((&mk, kdf))), Some(keys), vec![]);
        let t = std::time::Instant::now();
        let r = Archive::from_vec(bytes, Some(b"any passphrase"));
        assert!(
            matches!(r, Err(Error::ExcessiveWork(_))),
            "{kdf:?}: {:?}",
            r.err()
        );
        assert!(t.elapsed().as_millis() < 1000, "took {:?}", t.elapsed());
    }
}

#[test]
fn hostile_names_never_leave_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = Payload::File(Content::Inline(vec![]));
    for bad in [
        &b".."[..],
        b".",
        b"../escape",
        b"/etc/passwd",
        b"a/b",
        b"",
        b"nul\0byte",
    ] {
        let bytes = forge(
            &header(None),
            None,
            vec![entry(bad, EntryType::File, empty.clone(), 0)],
        );
        let dest = tmp.path().join("dest");
        let r = try_extract(bytes, &dest);
        let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("entry name"),
            "{:?}: {msg}",
            String::from_utf8_lossy(bad)
        );
        assert!(!tmp.path().join("escape").exists() && !dest.join("a").exists());
    }
    // The same name twice, or a symlink and a directory of one name: refused.
    let twice = vec![
        entry(b"x", EntryType::File, empty.clone(), 0),
        entry(
            b"x",
            EntryType::Symlink,
            Payload::Symlink(b"/etc".to_vec()),
            0,
        ),
    ];
    let r = try_extract(forge(&header(None), None, twice), &tmp.path().join("d2"));
    assert!(r
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("repeat a name"));
}

#[test]
fn a_hard_link_to_something_not_extracted_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("secret");
    std::fs::write(&outside, "do not link me").unwrap();
    let link = entry(
        b"l",
        EntryType::Hardlink,
        Payload::Hardlink(b"secret".to_vec()),
        0,
    );
    let dest = tmp.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let out = try_extract(forge(&header(None), None, vec![link]), &dest).unwrap();
    assert_eq!(out.errors.len(), 1);
    assert!(!dest.join("l").exists());
}

#[test]
fn preplanted_symlinks_are_replaced_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "original").unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    std::os::unix::fs::symlink(&victim, dest.join("f")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), dest.join("d")).unwrap();
    let bytes = forge_with(&header(None), None, |w| {
        let chunk = w.put_blob(Kind::Chunk, b"archived").unwrap();
        let data = Payload::File(Content::Inline(vec![ptar::format::tree::Extent::Data {
            len: 8,
            id: chunk,
        }]));
        let inner =
            ptar::format::tree::TreePage::Leaf(vec![entry(b"g", EntryType::File, data.clone(), 8)])
                .to_bytes();
        let sub = w.put_blob(Kind::Tree, &inner).unwrap();
        let mut d = entry(b"d", EntryType::Dir, Payload::Dir(sub), 0);
        d.mode = 0o755;
        vec![d, entry(b"f", EntryType::File, data, 8)]
    });
    let out = try_extract(bytes, &dest).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "original",
        "wrote through a planted file symlink"
    );
    assert!(
        !tmp.path().join("g").exists(),
        "wrote through a planted directory symlink"
    );
    assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "archived");
    assert_eq!(
        std::fs::read_to_string(dest.join("d/g")).unwrap(),
        "archived"
    );
    assert!(std::fs::symlink_metadata(dest.join("d")).unwrap().is_dir());
}

#[test]
fn a_chunk_referenced_100000_times_stops_at_the_output_budget() {
    let tmp = tempfile::tempdir().unwrap();
    // One 1 MiB chunk, referenced 100,000 times by a single file: 100 GB out
    // of an archive of a few MiB. The snapshot declares 1 MiB (forge's default).
    let bytes = forge_with(&header(None), None, |w| {
        let chunk = w.put_blob(Kind::Chunk, &vec![0u8; 1 << 20]).unwrap();
        let extents = vec![
            ptar::format::tree::Extent::Data {
                len: 1 << 20,
                id: chunk
            };
            100_000
        ];
        let content = ptar::tree::write_content(w, extents).unwrap();
        vec![entry(
            b"bomb",
            EntryType::File,
            Payload::File(content),
            100_000 << 20,
        )]
    });
    assert!(bytes.len() < 8 << 20);
    let dest = tmp.path().join("dest");
    let err = try_extract(bytes, &dest).unwrap_err();
    assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
    assert!(err.to_string().contains("output budget"), "{err}");
    assert!(!dest.join("bomb").exists());
}

#[test]
fn a_subtree_referenced_thousands_of_times_stops_at_the_entry_budget() {
    let tmp = tempfile::tempdir().unwrap();
    // One leaf directory of 20 empty files, referenced 20 times by a middle
    // directory, which is referenced 20 times by the root: 8,000 files from
    // three tree pages. The snapshot declares 20 entries.
    let bytes = forge_with(&header(None), None, |w| {
        let empty = Payload::File(Content::Inline(vec![]));
        let leaf: Vec<_> = (0..20)
            .map(|i| {
                entry(
                    format!("f{i:02}").as_bytes(),
                    EntryType::File,
                    empty.clone(),
                    0,
                )
            })
            .collect();
        let leaf_id = w
            .put_blob(Kind::Tree, &TreePage::Leaf(leaf).to_bytes())
            .unwrap();
        let dir = |name: String, id| {
            let mut d = entry(name.as_bytes(), EntryType::Dir, Payload::Dir(id), 0);
            d.mode = 0o755;
            d
        };
        let mid: Vec<_> = (0..20).map(|i| dir(format!("m{i:02}"), leaf_id)).collect();
        let mid_id = w
            .put_blob(Kind::Tree, &TreePage::Leaf(mid).to_bytes())
            .unwrap();
        (0..20).map(|i| dir(format!("r{i:02}"), mid_id)).collect()
    });
    let a = Archive::from_vec(bytes, None).unwrap();
    let mut s = a.find_snapshot("latest").unwrap();
    s.record.summary.files = 15;
    s.record.summary.dirs = 5;
    let dest = tmp.path().join("dest");
    let err = a
        .extract(&s, &dest, &ExtractOptions::default(), &NoProgress)
        .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
    let mut made = 0;
    let mut stack = vec![dest.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            made += 1;
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert_eq!(
        made, 20,
        "exactly the declared number of entries was created"
    );
}

#[test]
fn a_tree_page_with_a_wrong_entry_count_is_refused() {
    let bytes = forge_with(&header(None), None, |w| {
        let empty = Payload::File(Content::Inline(vec![]));
        let leaf_a =
            TreePage::Leaf(vec![entry(b"a", EntryType::File, empty.clone(), 0)]).to_bytes();
        let leaf_b = TreePage::Leaf(vec![entry(b"b", EntryType::File, empty, 0)]).to_bytes();
        let a = w.put_blob(Kind::Tree, &leaf_a).unwrap();
        let b = w.put_blob(Kind::Tree, &leaf_b).unwrap();
        let children = vec![
            ChildRef {
                first_name: b"a".to_vec(),
                id: a,
                entries: 1,
            },
            ChildRef {
                first_name: b"b".to_vec(),
                id: b,
                entries: 1000,
            },
        ];
        let top = w
            .put_blob(
                Kind::Tree,
                &TreePage::Interior { level: 1, children }.to_bytes(),
            )
            .unwrap();
        let mut d = entry(b"d", EntryType::Dir, Payload::Dir(top), 0);
        d.mode = 0o755;
        vec![d]
    });
    let a = Archive::from_vec(bytes, None).unwrap();
    let report = a.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
    let all: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        all.iter()
            .any(|p| p.contains("different number of entries")),
        "{all:?}"
    );
}

#[test]
fn a_snapshot_table_that_drops_a_snapshot_fails_verification() {
    let first = forge(&header(None), None, vec![]);
    let store = Arc::new(ptar::store::Store::from_vec(first.clone(), None).unwrap());
    let h = store.header().clone();
    let ctx = ArchiveContext {
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
        Box::new(SeededEntropy::new(b"g2")),
    );
    // Generation 2 names generation 1's run without its snapshots: the
    // snapshot of generation 1 is gone from the list.
    w.drop_earlier_snapshot_lists();
    let (gen2, _) = w.finish(&[], None, None, 0).unwrap();
    let mut bytes = first;
    bytes.extend_from_slice(&gen2);
    let a = Archive::from_vec(bytes, None).unwrap();
    assert_eq!(a.store().generation_count(), 2);
    assert_eq!(a.snapshot_count(), 0, "the list lost the snapshot");
    let report = a.verify(&VerifyOptions::default());
    let all: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        all.iter().any(|p| p.contains("snapshot run (generation 2)")
            && p.contains("another run for generation 1")),
        "{all:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_damage_never_panics(
        which in 0..2usize,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::weighted(0.2, any::<prop::sample::Index>()),
    ) {
        let name = ["tiny-plain", "tiny-encrypted"][which];
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../testdata/archives/{name}.ptar"));
        let mut bytes = std::fs::read(path).unwrap();
        for (i, v) in &edits {
            let at = i.index(bytes.len());
            bytes[at] = *v;
        }
        if let Some(c) = cut {
            let n = c.index(bytes.len());
            bytes.truncate(n);
        }
        let pass: Option<&[u8]> = (which == 1).then_some(b"correct horse battery staple");
        if let Ok(a) = Archive::from_vec(bytes, pass) {
            let _ = a.verify(&VerifyOptions { full: true, trusted_key: None });
            if let Ok(s) = a.find_snapshot("latest") {
                let tmp = tempfile::tempdir().unwrap();
                let dest = tmp.path().join("out");
                let _ = a.extract(&s, &dest, &ExtractOptions::default(), &NoProgress);
                // Whatever happened, nothing was written beside the destination.
                let beside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
                prop_assert!(beside.iter().all(|n| n == "out"));
            }
        }
    }
}
