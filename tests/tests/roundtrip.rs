//! Property test: random trees survive create → extract, and append keeps
//! every snapshot extractable.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::{Archive, CreateOptions, SnapshotMeta, Writer};
use ptar_tests::{prefixed, random_bytes, read_tree, write_tree, Node, Tree};

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,8}".prop_map(|s| s.into_bytes()),
        "[a-zA-Z0-9 _.-]{1,12}".prop_map(|s| s.into_bytes()),
        "[αβγ日本語é ]{1,5}".prop_map(|s| s.into_bytes()),
        // Not UTF-8: kept byte for byte.
        prop::collection::vec(prop::num::u8::ANY, 1..6).prop_map(|mut v| {
            v.push(0xff);
            v
        }),
    ]
    .prop_filter("valid file name", |n| {
        n != b"." && n != b".." && !n.contains(&b'/') && !n.contains(&0)
    })
}

#[derive(Debug, Clone)]
enum Shape {
    Dir(u32, Vec<(Vec<u8>, Shape)>),
    File(u32, usize, u8),
    Link(Vec<u8>),
}

fn shape() -> impl Strategy<Value = Shape> {
    let file_mode = prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o640, 0o444, 0o700]);
    let size =
        prop_oneof![4 => 0usize..2000, 2 => 2000usize..300_000, 1 => 1usize << 20..(3usize << 20)];
    let leaf = prop_oneof![
        8 => (file_mode, size, any::<u8>()).prop_map(|(m, s, seed)| Shape::File(m, s, seed)),
        1 => name().prop_map(Shape::Link),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        (
            prop::sample::select(vec![0o755u32, 0o700, 0o750]),
            prop::collection::vec((name(), inner), 0..6),
        )
            .prop_map(|(m, kids)| Shape::Dir(m, kids))
    })
}

fn flatten(
    prefix: &[u8],
    kids: &[(Vec<u8>, Shape)],
    seed: &[u8],
    tree: &mut Tree,
    times: &mut BTreeMap<Vec<u8>, (i64, u32)>,
) {
    for (i, (n, s)) in kids.iter().enumerate() {
        let mut p = prefix.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(n);
        if tree.contains_key(&p) {
            continue;
        }
        let t = (
            1_600_000_000 + (p.len() as i64) * 7919 + i as i64,
            (p.len() as u32 * 1_000_003) % 1_000_000_000,
        );
        match s {
            Shape::Dir(m, k) => {
                tree.insert(p.clone(), Node::Dir { mode: *m });
                times.insert(p.clone(), t);
                flatten(&p, k, seed, tree, times);
            }
            Shape::File(m, size, fs) => {
                // Half the files repeat content, to exercise dedup.
                let content = random_bytes(&[*fs % 8, seed[0]], *size);
                tree.insert(p.clone(), Node::File { mode: *m, content });
                times.insert(p, t);
            }
            Shape::Link(target) => {
                tree.insert(
                    p,
                    Node::Symlink {
                        target: target.clone(),
                    },
                );
            }
        }
    }
}

fn make(kids: &[(Vec<u8>, Shape)], seed: u8) -> (Tree, BTreeMap<Vec<u8>, (i64, u32)>) {
    let mut tree = Tree::new();
    let mut times = BTreeMap::new();
    flatten(b"", kids, &[seed], &mut tree, &mut times);
    (tree, times)
}

fn opts() -> ExtractOptions {
    ExtractOptions {
        preserve_permissions: true,
        restore_times: true,
        ..ExtractOptions::default()
    }
}

fn extract_and_read(
    archive: &std::path::Path,
    snapshot: &str,
    dest: &std::path::Path,
) -> (Tree, BTreeMap<Vec<u8>, (i64, u32)>) {
    let a = Archive::open(archive, None).unwrap();
    let s = a.find_snapshot(snapshot).unwrap();
    let out = a.extract(&s, dest, &opts(), &NoProgress).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    read_tree(dest)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn create_extract_and_append(
        first in prop::collection::vec((name(), shape()), 1..6),
        second in prop::collection::vec((name(), shape()), 1..6),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (t1, m1) = make(&first, 1);
        let (t2, m2) = make(&second, 2);
        let src1 = tmp.path().join("one");
        let src2 = tmp.path().join("two");
        write_tree(&src1, &t1, &m1);
        write_tree(&src2, &t2, &m2);
        let archive = tmp.path().join("a.ptar");
        std::env::set_current_dir(tmp.path()).unwrap();

        let mut w = Writer::create(&archive, CreateOptions::default()).unwrap();
        w.add_snapshot(&[PathBuf::from("one")], &SnapshotMeta::default(), &NoProgress).unwrap();
        w.commit().unwrap();
        let (got, times) = extract_and_read(&archive, "latest", &tmp.path().join("x1"));
        let want = prefixed("one", &t1);
        // The top directory's own mode comes from the source.
        let got_top = got.get(b"one".as_slice()).cloned();
        let top_is_dir = matches!(got_top, Some(Node::Dir { .. }));
        prop_assert!(top_is_dir);
        let mut got_rest = got.clone();
        got_rest.remove(b"one".as_slice());
        prop_assert_eq!(&got_rest, &want);
        for (k, t) in &m1 {
            let mut p = b"one/".to_vec();
            p.extend_from_slice(k);
            prop_assert_eq!(times.get(&p), Some(t), "mtime of {:?}", String::from_utf8_lossy(&p));
        }

        let mut w = Writer::append(&archive, None).unwrap();
        w.add_snapshot(&[PathBuf::from("two")], &SnapshotMeta::default(), &NoProgress).unwrap();
        w.commit().unwrap();
        let (got1, _) = extract_and_read(&archive, "2", &tmp.path().join("y1"));
        prop_assert_eq!(got1, got);
        let (got2, times2) = extract_and_read(&archive, "latest", &tmp.path().join("y2"));
        let mut got2_rest = got2.clone();
        got2_rest.remove(b"two".as_slice());
        prop_assert_eq!(&got2_rest, &prefixed("two", &t2));
        for (k, t) in &m2 {
            let mut p = b"two/".to_vec();
            p.extend_from_slice(k);
            prop_assert_eq!(times2.get(&p), Some(t));
        }
        let a = Archive::open(&archive, None).unwrap();
        let verified = a.verify(&ptar::VerifyOptions { full: true, trusted_key: None }).ok();
        prop_assert!(verified);
    }
}

#[test]
fn large_directories_and_long_files_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let big = src.join("many");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..20_000 {
        std::fs::write(
            big.join(format!("file-{i:05}-with-a-longish-name.txt")),
            format!("{i}\n"),
        )
        .unwrap();
    }
    // Enough chunks for a file map rather than an inline extent list.
    std::fs::write(src.join("long.bin"), random_bytes(b"long", 6 << 20)).unwrap();
    let archive = tmp.path().join("a.ptar");
    ptar_tests::create_snapshot(&archive, &src, CreateOptions::default());
    let a = Archive::open(&archive, None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    // The big directory was split into several tree pages, the long file got a file map.
    let mut pages = 0;
    let mut maps = 0;
    for (id, _) in a.store().all_blobs().unwrap() {
        match a.store().describe_blob(&id).unwrap().unwrap().kind {
            ptar::format::Kind::Tree => pages += 1,
            ptar::format::Kind::FileMap => maps += 1,
            _ => {}
        }
    }
    assert!(pages > 5, "only {pages} tree pages");
    assert!(maps >= 1, "no file map");
    let dest = tmp.path().join("out");
    let out = a.extract(&s, &dest, &opts(), &NoProgress).unwrap();
    assert!(out.errors.is_empty());
    let rel = src.strip_prefix("/").unwrap();
    let (want, _) = read_tree(&src);
    let (got, _) = read_tree(&dest.join(rel));
    assert_eq!(got.len(), 20_002);
    assert!(got == want, "extracted tree differs");
    assert!(a
        .verify(&ptar::VerifyOptions {
            full: true,
            trusted_key: None
        })
        .ok());
}
