//! Appending stores only what changed.

use ptar::CreateOptions;
use ptar_tests::{append_snapshot, create_snapshot, random_bytes};

fn snapshot(archive: &std::path::Path, src: &std::path::Path, create: bool) {
    if create {
        create_snapshot(archive, src, CreateOptions::default());
    } else {
        append_snapshot(archive, src, None);
    }
}

fn len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn appending_an_unchanged_tree_adds_almost_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mut total = 0u64;
    for d in 0..4 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..10 {
            let data = random_bytes(format!("{d}/{f}").as_bytes(), 200_000 + f * 60_000);
            total += data.len() as u64;
            std::fs::write(dir.join(format!("f{f}")), data).unwrap();
        }
    }
    let archive = tmp.path().join("a.ptar");
    snapshot(&archive, &src, true);
    let first = len(&archive);
    snapshot(&archive, &src, false);
    let growth = len(&archive) - first;
    let allowed = total / 100 + 16 * 1024;
    eprintln!("tree {total} bytes, archive {first} bytes, unchanged append grew it by {growth} bytes (allowed {allowed})");
    assert!(growth < allowed, "grew by {growth}, allowed {allowed}");
}

#[test]
fn inserting_one_byte_in_a_64_mib_file_stores_a_few_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut data = random_bytes(b"big file", 64 << 20);
    std::fs::write(src.join("big.bin"), &data).unwrap();
    let archive = tmp.path().join("a.ptar");
    snapshot(&archive, &src, true);
    let first = len(&archive);
    data.insert(data.len() / 2, 0x5a);
    std::fs::write(src.join("big.bin"), &data).unwrap();
    snapshot(&archive, &src, false);
    let growth = len(&archive) - first;
    let max_chunk = ptar::ChunkerParams::DEFAULT.max as u64;
    eprintln!(
        "64 MiB file, one byte inserted: archive grew by {growth} bytes ({:.2} max chunks)",
        growth as f64 / max_chunk as f64
    );
    assert!(
        growth <= 3 * max_chunk,
        "grew by {growth}, more than 3 max chunks ({})",
        3 * max_chunk
    );
}

#[test]
fn a_change_in_place_rewrites_only_nearby_file_map_pages() {
    // Tiny chunks: a 4 MiB file has about 16k extents, some 16 file-map pages
    // of about 1000 extents (about 600 KB of file map). Inserting 300 bytes
    // near the start changes the chunk count there, which must not rewrite
    // the pages after it.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut data = random_bytes(b"image", 4 << 20);
    std::fs::write(src.join("disk.img"), &data).unwrap();
    let archive = tmp.path().join("a.ptar");
    let opts = CreateOptions {
        chunker: ptar::ChunkerParams {
            min: 64,
            avg: 256,
            max: 1024,
        },
        ..CreateOptions::default()
    };
    create_snapshot(&archive, &src, opts);
    let first = len(&archive);
    data.splice(4096..4096, random_bytes(b"patch", 300));
    std::fs::write(src.join("disk.img"), &data).unwrap();
    snapshot(&archive, &src, false);
    let growth = len(&archive) - first;
    eprintln!("4 MiB file of 16k extents, 300 bytes inserted: archive grew by {growth} bytes");
    // New chunks (a few KiB) plus one or two level-0 pages (about 40 KB
    // each) and the top page; pages of a fixed count would be 600 KB.
    assert!(growth < 200_000, "grew by {growth}");
}
