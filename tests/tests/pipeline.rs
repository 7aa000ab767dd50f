//! The write pipeline: compression threads change nothing in the bytes, and
//! an append takes over unchanged files without reading them but notices
//! every kind of change.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ptar::codec::Compression;
use ptar::crypto::SeededEntropy;
use ptar::fs::{CreatePolicy, ExtractOptions, Source};
use ptar::progress::NoProgress;
use ptar::store::writer::PackOptions;
use ptar::{Archive, CreateOptions, SnapshotMeta, Writer};
use ptar_tests::{random_bytes, read_tree};

/// A tree of many small text files and a few multi-chunk ones.
fn make_tree(root: &Path) {
    for d in 0..6 {
        let dir = root.join(format!("dir{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..40 {
            let text = format!("file {d}/{f}: {}\n", "some source text ".repeat(f * 7 + 1));
            std::fs::write(dir.join(format!("f{f}.txt")), text).unwrap();
        }
    }
    for b in 0..3 {
        let data = random_bytes(format!("big{b}").as_bytes(), 700_000 + b * 300_000);
        std::fs::write(root.join(format!("big{b}.bin")), data).unwrap();
    }
    // Access times after the change times: under relatime, reading the tree
    // then leaves them alone, so two archives of it can be compared byte
    // for byte.
    let later =
        filetime::FileTime::from_unix_time(filetime::FileTime::now().unix_seconds() + 3600, 0);
    let (tree, _) = read_tree(root);
    for path in tree.keys() {
        let p = root.join(std::ffi::OsStr::from_bytes(path));
        if !p.is_symlink() {
            filetime::set_file_atime(&p, later).unwrap();
        }
    }
    filetime::set_file_atime(root, later).unwrap();
}

fn create_with(archive: &Path, src: &Path, pack: PackOptions) {
    let opts = CreateOptions {
        entropy: Box::new(SeededEntropy::new(b"pipeline test")),
        time_ns: Some(1_750_000_000_000_000_000),
        pack,
        ..CreateOptions::default()
    };
    let mut w = Writer::create(archive, opts).unwrap();
    w.add_snapshot(&[operand(src)], &SnapshotMeta::default(), &NoProgress)
        .unwrap();
    w.commit().unwrap();
}

/// `src` as an operand named by its last component (`-C parent src`).
fn operand(src: &Path) -> Source {
    Source {
        dir: src.parent().unwrap().to_path_buf(),
        path: PathBuf::from(src.file_name().unwrap()),
    }
}

fn extract_latest(archive: &Path, dest: &Path) -> PathBuf {
    let a = Archive::open(archive, None).unwrap();
    let snap = a.find_snapshot("latest").unwrap();
    a.extract(&snap, dest, &ExtractOptions::default(), &NoProgress)
        .unwrap();
    dest.to_path_buf()
}

#[test]
fn compression_threads_do_not_change_a_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let mut outputs = Vec::new();
    for (threads, target) in [(0, 64 * 1024), (1, 64 * 1024), (3, 64 * 1024), (2, 1)] {
        let archive = tmp.path().join(format!("t{threads}-{target}.ptar"));
        create_with(
            &archive,
            &src,
            PackOptions {
                compression: Compression::Zstd(3),
                record_target: target,
                threads,
            },
        );
        let out = extract_latest(&archive, &tmp.path().join(format!("out{threads}-{target}")));
        assert_eq!(
            read_tree(&out.join("src")).0,
            read_tree(&src).0,
            "{threads} threads, record target {target}: extraction differs from the source"
        );
        outputs.push((threads, target, std::fs::read(&archive).unwrap()));
    }
    // Same target, any thread count: the same archive, byte for byte.
    let (_, _, single) = &outputs[0];
    for (threads, target, bytes) in &outputs[1..3] {
        assert!(
            bytes == single,
            "{threads} threads with target {target} wrote other bytes than 0 threads"
        );
    }
    // One blob per record is larger than solid records of small files.
    assert!(outputs[3].2.len() > single.len());
}

/// Appends `src` to `archive` and returns how many files were taken over.
fn append(archive: &Path, src: &Path, force_read: bool) -> u64 {
    let mut w = Writer::append(archive, None).unwrap();
    w.set_create_policy(CreatePolicy {
        force_read,
        ..CreatePolicy::default()
    });
    let (_, outcome) = w
        .add_snapshot(&[operand(src)], &SnapshotMeta::default(), &NoProgress)
        .unwrap();
    w.commit().unwrap();
    outcome.reused
}

fn set_mtime(p: &Path, t: filetime::FileTime) {
    filetime::set_file_mtime(p, t).unwrap();
}

#[test]
fn append_takes_over_unchanged_files_and_catches_every_change() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let tagged = src.join("dir0/f0.txt");
    xattr::set(&tagged, "user.ptar-test", b"first").unwrap();
    let archive = tmp.path().join("a.ptar");
    create_with(&archive, &src, PackOptions::default());
    let files = 6 * 40 + 3;

    // Nothing changed: every file is taken over, none is read, and the
    // extended attributes come along.
    assert_eq!(append(&archive, &src, false), files);
    let out = extract_latest(&archive, &tmp.path().join("out-unchanged"));
    let got = xattr::get(out.join("src/dir0/f0.txt"), "user.ptar-test").unwrap();
    assert_eq!(got.as_deref(), Some(&b"first"[..]));

    // A changed attribute changes the change time: the file is read again.
    xattr::set(&tagged, "user.ptar-test", b"second").unwrap();
    assert_eq!(append(&archive, &src, false), files - 1);
    let out = extract_latest(&archive, &tmp.path().join("out-xattr"));
    let got = xattr::get(out.join("src/dir0/f0.txt"), "user.ptar-test").unwrap();
    assert_eq!(got.as_deref(), Some(&b"second"[..]));

    // Content rewritten in place with the same size, and the modification
    // time set back: only the change time tells.
    let edited = src.join("dir1/f3.txt");
    let md = std::fs::metadata(&edited).unwrap();
    let mtime = filetime::FileTime::from_last_modification_time(&md);
    let mut text = std::fs::read(&edited).unwrap();
    text[0] = b'F';
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&edited, &text).unwrap();
    set_mtime(&edited, mtime);
    assert_eq!(
        filetime::FileTime::from_last_modification_time(&std::fs::metadata(&edited).unwrap()),
        mtime
    );

    // A file replaced by another of the same size and modification time: a
    // new inode.
    let replaced = src.join("big1.bin");
    let md = std::fs::metadata(&replaced).unwrap();
    let mtime = filetime::FileTime::from_last_modification_time(&md);
    let other = random_bytes(b"the replacement", md.len() as usize);
    let tmpfile = src.join("big1.bin.new");
    std::fs::write(&tmpfile, &other).unwrap();
    set_mtime(&tmpfile, mtime);
    std::fs::rename(&tmpfile, &replaced).unwrap();

    assert_eq!(append(&archive, &src, false), files - 2);
    let out = extract_latest(&archive, &tmp.path().join("out"));
    assert_eq!(std::fs::read(out.join("src/dir1/f3.txt")).unwrap(), text);
    assert_eq!(std::fs::read(out.join("src/big1.bin")).unwrap(), other);
    assert_eq!(read_tree(&out.join("src")).0, read_tree(&src).0);

    // --force-read reads everything again, and stores nothing new.
    let before = std::fs::metadata(&archive).unwrap().len();
    assert_eq!(append(&archive, &src, true), 0);
    let growth = std::fs::metadata(&archive).unwrap().len() - before;
    assert!(
        growth < 64 * 1024,
        "a forced re-read of an unchanged tree added {growth} bytes"
    );

    // Every snapshot still extracts what it held.
    let a = Archive::open(&archive, None).unwrap();
    assert_eq!(a.snapshots().unwrap().len(), 5);
}

#[test]
fn writer_threads_extract_the_same_files_and_times() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let archive = tmp.path().join("a.ptar");
    create_with(&archive, &src, PackOptions::default());
    let a = Archive::open(&archive, None).unwrap();
    let snap = a.find_snapshot("latest").unwrap();
    let mut seen = Vec::new();
    for threads in [1, 4] {
        let dest = tmp.path().join(format!("out{threads}"));
        let opts = ExtractOptions {
            threads,
            ..ExtractOptions::default()
        };
        let out = a.extract(&snap, &dest, &opts, &NoProgress).unwrap();
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.files, 6 * 40 + 3);
        seen.push((out.bytes, read_tree(&dest.join("src"))));
    }
    assert_eq!(
        seen[0], seen[1],
        "one and four writer threads extract differently"
    );
    let (tree, mtimes) = read_tree(&src);
    assert_eq!(seen[1].1 .0, tree);
    assert_eq!(
        seen[1].1 .1, mtimes,
        "modification times differ from the source"
    );
}

#[test]
fn index_lookups_by_positional_reads_find_every_blob() {
    // Large indexes are searched a window at a time with positional reads
    // instead of in the map: forced here on a small archive of two
    // generations, extraction and verification still find every blob.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let archive = tmp.path().join("a.ptar");
    create_with(&archive, &src, PackOptions::default());
    std::fs::write(
        src.join("dir0/new.txt"),
        "added for the second generation\n",
    )
    .unwrap();
    append(&archive, &src, false);
    let a = Archive::open(&archive, None).unwrap();
    let snap = a.find_snapshot("latest").unwrap();
    let dest = tmp.path().join("out");
    let out = a
        .extract(&snap, &dest, &ExtractOptions::default(), &NoProgress)
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(read_tree(&dest.join("src")).0, read_tree(&src).0);
    let missing = ptar::Id([0x5a; 32]);
    assert!(!a.store().contains(&missing).unwrap());
}

#[test]
fn a_sparse_file_that_starts_with_data_reads_back_whole() {
    // Finding the holes moves the file offset; the content must still be
    // read from the start of each data range.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let path = src.join("disk.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&random_bytes(b"head", 300_000)).unwrap();
        f.seek(SeekFrom::Start(8 << 20)).unwrap();
        f.write_all(&random_bytes(b"middle", 200_000)).unwrap();
        f.set_len(16 << 20).unwrap();
    }
    let want = std::fs::read(&path).unwrap();
    let archive = tmp.path().join("a.ptar");
    create_with(&archive, &src, PackOptions::default());
    let out = extract_latest(&archive, &tmp.path().join("out"));
    let got = std::fs::read(out.join("src/disk.img")).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the sparse file's content differs after a round trip"
    );
}
