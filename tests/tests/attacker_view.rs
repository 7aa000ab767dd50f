//! What an encrypted archive shows to someone without the passphrase
//! (spec §3.3, issue 13 point 1): the header's public fields, the
//! trailers, and the lengths of the frames. These tests read archives as
//! such an observer would (walking the frames from the header, spec §19
//! step 2, without a key) and fail if they can find:
//! - the chunk-length sequence of a known 64 MiB file stored in it;
//! - the number of files of the tree (archives of a 10-file and a
//!   10,000-file tree of equal total size differ only in frame lengths and
//!   count, and in the offsets and hashes that follow from them);
//! - any plaintext byte of a file name, or of a file's text.

use std::path::Path;

use ptar::format::frame::padme;
use ptar::format::manifest::{Trailer, TRAILER_LEN};
use ptar::format::tree::{Content, Extent, Payload};
use ptar::{Archive, CreateOptions, Encryption, KdfParams};
use ptar_tests::{create_snapshot, random_bytes};
use zeroize::Zeroizing;

const PASS: &[u8] = b"attacker view";

fn encrypted() -> CreateOptions {
    CreateOptions {
        encryption: Some(Encryption {
            passphrase: Zeroizing::new(PASS.to_vec()),
            kdf: KdfParams {
                m_kib: 256,
                t: 1,
                p: 1,
            },
        }),
        ..CreateOptions::default()
    }
}

/// What an observer without the key sees after the header: for each
/// frame its stored length, and each trailer's bytes.
struct View {
    header_len: usize,
    frames: Vec<u64>,
    trailers: Vec<Vec<u8>>,
}

fn observe(bytes: &[u8]) -> View {
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut at = header_len;
    let mut frames = Vec::new();
    let mut trailers = Vec::new();
    while at < bytes.len() {
        if bytes[at..].starts_with(b"PTARFOOT") {
            let t = &bytes[at..at + TRAILER_LEN];
            Trailer::parse(t).expect("a trailer parses without a key");
            trailers.push(t.to_vec());
            at += TRAILER_LEN;
            continue;
        }
        let len = 4 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        frames.push(len);
        at += len as usize;
    }
    assert_eq!(at, bytes.len(), "frames and trailers tile the archive");
    View {
        header_len,
        frames,
        trailers,
    }
}

/// The lengths of the chunks of file `name`, in order, as the owner of the
/// key sees them.
fn chunk_lengths(archive: &Path, name: &str) -> Vec<u64> {
    let a = Archive::open(archive, Some(PASS)).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let e = a.lookup(&s, name).unwrap().expect("the file is there");
    let Payload::File(content) = &e.payload else {
        panic!("a file")
    };
    let extents = match content {
        Content::Inline(x) => x.clone(),
        c => a.extents(c, e.size).unwrap(),
    };
    extents
        .iter()
        .map(|x| match x {
            Extent::Data { len, .. } => u64::from(*len),
            Extent::Hole { len } => *len,
        })
        .collect()
}

#[test]
fn the_chunk_lengths_of_a_known_file_are_not_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // A known file: the observer has a copy.
    std::fs::write(src.join("known.bin"), random_bytes(b"known", 64 << 20)).unwrap();
    let archive = tmp.path().join("a.ptar");
    create_snapshot(&archive, &src, encrypted());
    // Absolute operands are stored without their leading slash.
    let stored = src.join("known.bin");
    let chunks = chunk_lengths(&archive, stored.to_str().unwrap().trim_start_matches('/'));
    assert!(chunks.len() > 500, "{} chunks", chunks.len());
    let view = observe(&std::fs::read(&archive).unwrap());
    // Many chunks share a frame: far fewer frames than chunks.
    assert!(
        view.frames.len() * 20 < chunks.len(),
        "{} frames for {} chunks",
        view.frames.len(),
        chunks.len()
    );
    // No three consecutive frames have the lengths three consecutive chunks
    // would have alone in a record, whatever the constant overhead.
    let mut hits = Vec::new();
    for w in chunks.windows(3) {
        for overhead in 0..4096u64 {
            let want: Vec<u64> = w.iter().map(|l| padme(l + overhead)).collect();
            if view.frames.windows(3).any(|f| {
                f.iter()
                    .zip(&want)
                    .all(|(f, w)| f.checked_sub(*w).is_some_and(|d| d < 64))
            }) {
                hits.push((w.to_vec(), overhead));
                break;
            }
        }
        if hits.len() > 3 {
            break;
        }
    }
    assert!(hits.is_empty(), "chunk lengths visible in frames: {hits:?}");
}

/// A tree of `n` files of `total / n` bytes each, with long names.
fn tree(dir: &Path, n: usize, total: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let name = format!("file-with-a-long-recognisable-name-{i:05}.txt");
        let text = format!("plain text line of file number {i} ").repeat(total / n / 32 + 1);
        std::fs::write(dir.join(name), &text.as_bytes()[..total / n]).unwrap();
    }
}

#[test]
fn the_number_of_files_and_their_names_are_not_visible() {
    let tmp = tempfile::tempdir().unwrap();
    const TOTAL: usize = 4 << 20;
    let mut views = Vec::new();
    for n in [10, 10_000] {
        let src = tmp.path().join(format!("t{n}"));
        tree(&src, n, TOTAL);
        let archive = tmp.path().join(format!("a{n}.ptar"));
        create_snapshot(&archive, &src, encrypted());
        let bytes = std::fs::read(&archive).unwrap();
        // No plaintext: not a name, not a line of text, not the count.
        for needle in [
            &b"file-with-a-long"[..],
            b"recognisable",
            b"plain text line",
            b"00042.txt",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} found in the archive of {n} files",
                String::from_utf8_lossy(needle)
            );
        }
        views.push((n, bytes, observe(&std::fs::read(&archive).unwrap())));
    }
    let (_, a, va) = &views[0];
    let (_, b, vb) = &views[1];
    // The header: the same fields but for the random UUID, the creation
    // time, the key check and the key slot's salt, nonce and wrapped key.
    assert_eq!(va.header_len, vb.header_len);
    assert_eq!(a[..20], b[..20], "magic, version, header length, flags");
    assert_eq!(a[36..56], b[36..56], "chunker and key-slot count");
    // Trailers: equal but for offsets, lengths, UUID and hashes, which
    // follow from the frame lengths; no field counts files or blobs.
    assert_eq!(va.trailers.len(), vb.trailers.len());
    for (x, y) in va.trailers.iter().zip(&vb.trailers) {
        let (tx, ty) = (Trailer::parse(x).unwrap(), Trailer::parse(y).unwrap());
        assert_eq!(tx.generation, ty.generation);
        assert_eq!(tx.encrypted, ty.encrypted);
        assert_eq!(x[..16], y[..16], "magic, version, flags");
    }
    // Every frame length is a padded size class (plus the seal and the
    // length field), so the lengths themselves say little.
    for v in [va, vb] {
        for f in &v.frames {
            let envelope = f - 4 - 40;
            assert_eq!(
                padme(envelope),
                envelope,
                "frame of {f} bytes is not padded"
            );
        }
    }
    eprintln!(
        "10 files: {} frames, {} bytes; 10,000 files: {} frames, {} bytes",
        va.frames.len(),
        a.len(),
        vb.frames.len(),
        b.len()
    );
}
