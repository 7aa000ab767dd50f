//! The read-only library API: lookups, directory listings, and files read
//! in place with `Read + Seek`, over a file, memory or a caller's source.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use ptar::format::tree::{Content, EntryType, Payload};
use ptar::fs::Source;
use ptar::{Archive, ChunkerParams, CreateOptions, Writer};
use ptar_tests::random_bytes;

/// Creates `archive` holding one snapshot of the contents of `src`.
fn snapshot_of(archive: &Path, src: &Path, chunker: ChunkerParams) {
    let mut w = Writer::create(
        archive,
        CreateOptions {
            chunker,
            ..CreateOptions::default()
        },
    )
    .unwrap();
    let source = Source {
        dir: src.to_path_buf(),
        path: ".".into(),
    };
    let (_, out) = w
        .add_snapshot(&[source], &Default::default(), &ptar::progress::NoProgress)
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    w.commit().unwrap();
}

const TINY_CHUNKS: ChunkerParams = ChunkerParams {
    min: 64,
    avg: 256,
    max: 1024,
};

#[test]
fn a_file_map_of_many_pages_seeks_to_any_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let data = random_bytes(b"many pages", 6 << 20);
    std::fs::write(src.join("f"), &data).unwrap();
    let a = tmp.path().join("a.ptar");
    snapshot_of(&a, &src, TINY_CHUNKS);
    let archive = Archive::open(&a, None).unwrap();
    let snap = archive.snapshot("latest").unwrap();
    let entry = archive.metadata(&snap, "f").unwrap();
    assert!(
        matches!(entry.payload, Payload::File(Content::Map(_))),
        "about 24k chunks need a file map"
    );
    let mut f = archive.open_file(&snap, "/f").unwrap();
    assert_eq!(f.len(), data.len() as u64);
    // One seek and read: the top page and one extent page, one chunk.
    f.seek(SeekFrom::Start(5 << 20)).unwrap();
    let mut b = [0u8; 100];
    f.read_exact(&mut b).unwrap();
    assert_eq!(&b[..], &data[5 << 20..(5 << 20) + 100]);
    assert_eq!(f.map_pages_read(), 2, "top page, then the extent page");
    assert!(f.chunks_read() <= 2);
    let mut x: u64 = 0x1234_5678;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = x % data.len() as u64;
        let len = ((x >> 40) % 5000) as usize;
        let len = len.min(data.len() - off as usize);
        let mut got = vec![0u8; len];
        f.seek(SeekFrom::Start(off)).unwrap();
        f.read_exact(&mut got).unwrap();
        assert!(got == data[off as usize..off as usize + len], "at {off}");
    }
    // Relative seeks, and past the end.
    f.seek(SeekFrom::End(-10)).unwrap();
    f.seek(SeekFrom::Current(-10)).unwrap();
    let mut twenty = Vec::new();
    f.read_to_end(&mut twenty).unwrap();
    assert_eq!(twenty, &data[data.len() - 20..]);
    f.seek(SeekFrom::End(100)).unwrap();
    assert_eq!(f.read(&mut b).unwrap(), 0);
    assert!(f.seek(SeekFrom::Current(-(1 << 40))).is_err());
    f.rewind().unwrap();
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    assert!(all == data);
}

#[test]
fn lookups_find_names_in_a_directory_of_many_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("big")).unwrap();
    for i in 0..20_000 {
        std::fs::write(src.join(format!("big/n{i:05}")), i.to_string()).unwrap();
    }
    std::os::unix::fs::symlink("big/n00042", src.join("link")).unwrap();
    std::fs::hard_link(src.join("big/n00007"), src.join("hard")).unwrap();
    let a = tmp.path().join("a.ptar");
    snapshot_of(&a, &src, ChunkerParams::DEFAULT);
    let archive = Archive::open(&a, None).unwrap();
    let snap = archive.snapshot("latest").unwrap();
    let listing = archive.read_dir_at(&snap, "big").unwrap();
    assert_eq!(listing.len(), 20_000);
    for name in ["n00000", "n00001", "n09999", "n12345", "n19999"] {
        let e = archive
            .lookup(&snap, format!("big/{name}"))
            .unwrap()
            .unwrap_or_else(|| panic!("{name} is there"));
        assert_eq!(e.name, name.as_bytes());
        let mut s = String::new();
        archive
            .file_reader(&snap, &e)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(
            s,
            name[1..]
                .trim_start_matches('0')
                .to_string()
                .max("0".into())
        );
    }
    for missing in [
        "big/a",
        "big/n",
        "big/n000005",
        "big/n20000",
        "big/z",
        "nope/x",
        "link/x",
    ] {
        assert!(
            archive.lookup(&snap, missing).unwrap().is_none(),
            "{missing}"
        );
    }
    assert!(matches!(
        archive.metadata(&snap, "big/zz"),
        Err(ptar::Error::NotFound(_))
    ));
    assert!(matches!(
        archive.lookup(&snap, "big/../link"),
        Err(ptar::Error::InvalidInput(_))
    ));
    // The root, the symlink (not followed), the hard link (read through).
    let root = archive.metadata(&snap, "").unwrap();
    assert_eq!(root.kind, EntryType::Dir);
    assert_eq!(archive.metadata(&snap, "/").unwrap(), root);
    let names: Vec<Vec<u8>> = archive
        .read_dir_at(&snap, ".")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [&b"big"[..], b"hard", b"link"]);
    let link = archive.metadata(&snap, "./link").unwrap();
    assert_eq!(link.payload, Payload::Symlink(b"big/n00042".to_vec()));
    assert!(matches!(
        archive.open_file(&snap, "link"),
        Err(ptar::Error::InvalidInput(_))
    ));
    assert!(matches!(
        archive.read_dir_at(&snap, "link"),
        Err(ptar::Error::InvalidInput(_))
    ));
    let mut s = String::new();
    archive
        .open_file(&snap, "hard")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    let first = archive.metadata(&snap, "hard").unwrap();
    let via = archive.metadata(&snap, "big/n00007").unwrap();
    assert_eq!(
        s, "7",
        "the hard link ({:?}) reads as the file it names ({:?})",
        first.kind, via.kind
    );
}

#[test]
fn a_file_a_byte_buffer_and_a_callers_source_give_the_same_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let data = random_bytes(b"same", 700_000);
    std::fs::write(src.join("f"), &data).unwrap();
    let a = tmp.path().join("a.ptar");
    snapshot_of(&a, &src, ChunkerParams::DEFAULT);
    ptar_tests::append_snapshot(&a, &src, None);
    let bytes = std::fs::read(&a).unwrap();
    let all = [
        Archive::open(&a, None).unwrap(),
        Archive::from_vec(bytes.clone(), None).unwrap(),
        Archive::from_reader(bytes.clone(), None).unwrap(),
        Archive::from_reader(std::fs::File::open(&a).unwrap(), None).unwrap(),
        Archive::from_reader(std::sync::Arc::<[u8]>::from(bytes), None).unwrap(),
    ];
    let want: Vec<ptar::Id> = all[0].snapshots().unwrap().iter().map(|s| s.id).collect();
    assert_eq!(want.len(), 2);
    for archive in &all {
        let snaps = archive.snapshots().unwrap();
        assert_eq!(snaps.iter().map(|s| s.id).collect::<Vec<_>>(), want);
        let report = archive.verify(&ptar::VerifyOptions {
            full: true,
            ..Default::default()
        });
        assert!(report.ok(), "{:?}", report.problems);
        let mut got = Vec::new();
        archive
            .open_file(&snaps[0], "f")
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert!(got == data);
    }
}

#[test]
fn a_damaged_chunk_fails_the_read_naming_the_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(b"damage", 2 << 20)).unwrap();
    let a = tmp.path().join("a.ptar");
    snapshot_of(&a, &src, ChunkerParams::DEFAULT);
    let archive = Archive::open(&a, None).unwrap();
    let snap = archive.snapshot("latest").unwrap();
    let mut f = archive.open_file(&snap, "f").unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    let mut b = [0u8; 1];
    f.read_exact(&mut b).unwrap();
    let Payload::File(content) = archive.metadata(&snap, "f").unwrap().payload else {
        panic!("a file")
    };
    let extents = archive.extents(&content, 2 << 20).unwrap();
    let ptar::format::tree::Extent::Data { id, .. } = extents[extents.len() / 2] else {
        panic!("data")
    };
    let e = archive.store().find(&id).unwrap().unwrap();
    drop(f);
    drop(archive);
    let mut bytes = std::fs::read(&a).unwrap();
    bytes[(e.offset + 4 + u64::from(e.body_len) / 2) as usize] ^= 0x40;
    let archive = Archive::from_reader(bytes, None).unwrap();
    let snap = archive.snapshot("latest").unwrap();
    let mut f = archive.open_file(&snap, "f").unwrap();
    let mut all = Vec::new();
    let err = f.read_to_end(&mut all).unwrap_err();
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ptar::Error>())
        .expect("the library's error inside");
    assert!(inner.region().is_some(), "{inner}");
    assert!(
        all.len() < 2 << 20,
        "the reader stopped at the damage ({} bytes)",
        all.len()
    );
}
