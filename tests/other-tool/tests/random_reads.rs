//! The other tool at work: archives made by the `ptar` CLI, read through the
//! public library API at random offsets and compared with the originals.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ptar::store::ReadAt;
use ptar::Archive;
use ptar_tests::{ptar_bin, ptar_in, random_bytes};

/// A tree with small, empty, multi-chunk, sparse and hard-linked files.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::write(root.join("small.txt"), b"hello\n").unwrap();
    std::fs::write(root.join("a/empty"), b"").unwrap();
    std::fs::write(root.join("a/b/three-mib"), random_bytes(b"3", 3 << 20)).unwrap();
    // Random halves with a repeated middle: dedup inside one file.
    let mut big = random_bytes(b"big", 12 << 20);
    big.extend_from_within(2 << 20..6 << 20);
    big.extend(random_bytes(b"tail", 9 << 20));
    std::fs::write(root.join("a/b/c/big.bin"), &big).unwrap();
    let sparse = std::fs::File::create(root.join("a/sparse.img")).unwrap();
    sparse.set_len(20 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse
        .write_all_at(&random_bytes(b"island", 300_000), 7 << 20)
        .unwrap();
    sparse.write_all_at(b"end", (20 << 20) - 3).unwrap();
    drop(sparse);
    std::fs::hard_link(root.join("a/b/three-mib"), root.join("hard-link")).unwrap();
}

fn create(dir: &Path, extra: &[&str]) -> std::path::PathBuf {
    let mut args = vec!["-c", "-f", "a.ptar"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-C", "src", "."]);
    let out = ptar_in(dir, &args);
    assert!(
        out.status.success(),
        "ptar -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("a.ptar")
}

#[test]
fn an_archive_made_by_the_cli_reads_back_at_random_offsets_from_many_threads() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    let archive = Archive::open(&create(tmp.path(), &[]), None).unwrap();
    let snapshot = archive.snapshot("latest").unwrap();
    let r =
        ptar_other_tool::check_random_reads(&archive, &snapshot, &tmp.path().join("src"), 48, 4, 7)
            .unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert_eq!(r.files, 6, "every regular file and the hard link");
    assert_eq!(r.reads, 6 * 50);
}

#[test]
fn the_tool_reports_a_file_that_differs_from_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let a = create(tmp.path(), &[]);
    let tool = env!("CARGO_BIN_EXE_ptar-other-tool");
    let ok = std::process::Command::new(tool)
        .args([&a, &src])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("6 files"));
    // Change one byte of the original at the end of the big file: the
    // tool's reads of the last byte must see the difference.
    let big = src.join("a/b/c/big.bin");
    let mut bytes = std::fs::read(&big).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&big, &bytes).unwrap();
    let bad = std::process::Command::new(tool)
        .args([&a, &src])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("a/b/c/big.bin"));
}

#[test]
fn an_encrypted_archive_reads_with_its_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    std::fs::write(tmp.path().join("pass"), "open sesame\n").unwrap();
    let a = create(
        tmp.path(),
        &[
            "--encrypt",
            "--passphrase-file",
            "pass",
            "--kdf-params",
            "8192,1,1",
        ],
    );
    assert!(matches!(
        Archive::open(&a, None),
        Err(ptar::Error::PassphraseRequired)
    ));
    let archive = Archive::open(&a, Some(b"open sesame")).unwrap();
    let snapshot = archive.snapshot("1").unwrap();
    let r =
        ptar_other_tool::check_random_reads(&archive, &snapshot, &tmp.path().join("src"), 16, 2, 3)
            .unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert_eq!(r.files, 6);
}

/// A caller's positional source that counts what it is asked for.
struct Counting {
    bytes: Vec<u8>,
    read: Arc<AtomicU64>,
}

impl ReadAt for Counting {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.bytes.read_exact_at(buf, offset)
    }
}

#[test]
fn reading_the_last_byte_of_a_file_reads_one_chunk_not_the_archive() {
    use std::io::{Read, Seek, SeekFrom};
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("src"));
    let bytes = std::fs::read(create(tmp.path(), &[])).unwrap();
    let total = bytes.len() as u64;
    let read = Arc::new(AtomicU64::new(0));
    let archive = Archive::from_reader(
        Counting {
            bytes,
            read: read.clone(),
        },
        None,
    )
    .unwrap();
    let snapshot = archive.snapshot("latest").unwrap();
    let mut f = archive.open_file(&snapshot, "a/b/c/big.bin").unwrap();
    let want = std::fs::read(tmp.path().join("src/a/b/c/big.bin")).unwrap();
    let before = read.load(Ordering::Relaxed);
    f.seek(SeekFrom::End(-1)).unwrap();
    let mut last = [0u8; 1];
    f.read_exact(&mut last).unwrap();
    assert_eq!(last[0], *want.last().unwrap());
    let cost = read.load(Ordering::Relaxed) - before;
    assert_eq!(f.chunks_read(), 1);
    // One record of chunks (the writer closes a record once it passes
    // 8 MiB, so at most 8 MiB and one 256 KiB chunk) and the index page
    // that locates it, out of about 25 MB.
    assert!(
        cost <= (8 << 20) + (256 << 10) + (64 << 10) && cost * 2 < total,
        "reading one byte read {cost} of {total} bytes"
    );
    // The whole file, read through the same reader from the start.
    f.rewind().unwrap();
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    assert!(all == want, "the whole file reads back");
}

#[test]
fn the_archive_is_shared_by_threads_and_readers_outlive_their_borrow() {
    fn send_sync<T: Send + Sync>() {}
    fn send_static<T: Send + 'static>() {}
    send_sync::<Archive>();
    send_static::<ptar::file::FileReader>();
    let _ = ptar_bin();
}
