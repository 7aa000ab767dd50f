//! A raw archive writer for hostile-input tests: it builds generations by
//! hand and can emit what the normal writer never would.

use std::path::Path;
use std::sync::Arc;

use ptar::crypto::{self, Keys, SeededEntropy};
use ptar::format::header::{ChunkerParams, Header, KdfParams, KeySlot, FLAG_ENCRYPTED};
use ptar::format::run::SnapshotEntry;
use ptar::format::snapshot::SnapshotRecord;
use ptar::format::tree::{Entry, EntryType, Payload};
use ptar::format::{Kind, FORMAT_MAJOR, FORMAT_MINOR};
use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::store::writer::ArchiveContext;
use ptar::store::GenerationWriter;
use ptar::{Archive, Error};

/// A header: plain, or encrypted with the given master key and slot costs.
pub fn header(encrypted: Option<(&[u8; 32], KdfParams)>) -> Header {
    let uuid = [9u8; 16];
    let mut h = Header {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
        flags: 0,
        uuid,
        chunker: ChunkerParams::DEFAULT,
        default_codec: 1,
        created: 0,
        key_check: [0; 32],
        key_slots: vec![],
    };
    if let Some((mk, kdf)) = encrypted {
        h.flags = FLAG_ENCRYPTED;
        h.key_check = crypto::key_check(mk, &uuid);
        h.key_slots = vec![KeySlot {
            kdf,
            salt: [1; 16],
            nonce: [2; 24],
            wrapped: [3; 48],
        }];
    }
    h
}

/// A one-generation archive whose only snapshot has `root` entries, built by hand.
pub fn forge(h: &Header, keys: Option<Arc<Keys>>, root: Vec<Entry>) -> Vec<u8> {
    forge_with(h, keys, |_| root)
}

/// Like [`forge`], with a closure that may store blobs (subdirectories) first.
pub fn forge_with(
    h: &Header,
    keys: Option<Arc<Keys>>,
    build: impl FnOnce(&mut GenerationWriter<Vec<u8>>) -> Vec<Entry>,
) -> Vec<u8> {
    let hb = h.to_bytes();
    let ctx = ArchiveContext {
        uuid: h.uuid,
        header_minor: h.minor,
        header_hash: *blake3::hash(&hb).as_bytes(),
        keys,
        existing: None,
    };
    let mut w = GenerationWriter::new(
        hb.clone(),
        hb.len() as u64,
        ctx,
        Box::new(SeededEntropy::new(b"hostile")),
    );
    let root = build(&mut w);
    let page = ptar::format::tree::TreePage::Leaf(root).to_bytes();
    let root_id = w.put_blob(Kind::Tree, &page).unwrap();
    let mut rec = SnapshotRecord {
        root: root_id,
        ..SnapshotRecord::default()
    };
    // Generous declared budgets; the tests of the budgets override them.
    rec.summary.total_size = 1 << 20;
    rec.summary.files = 1 << 20;
    let sid = w.put_blob(Kind::Snapshot, &rec.to_bytes()).unwrap();
    let (bytes, _) = w.finish(&[sid], None, None, 0).unwrap();
    bytes
}

/// An entry owned by root, mode 0644, one link, every time at the epoch.
pub fn entry(name: &[u8], kind: EntryType, payload: Payload, size: u64) -> Entry {
    Entry::new(name, kind, payload)
        .with_mode(0o644)
        .with_source(0, 0, 1)
        .with_size(size)
}

/// Opens forged bytes and extracts the latest snapshot into `dest`.
pub fn try_extract(bytes: Vec<u8>, dest: &Path) -> Result<ptar::fs::ExtractOutcome, Error> {
    let a = Archive::from_vec(bytes, None)?;
    let s = a.find_snapshot("latest")?;
    a.extract(&s, dest, &ExtractOptions::default(), &NoProgress)
}

/// Writes to `path` a plain archive of one generation that lists `n`
/// snapshots (the format allows 2^24): `n - 1` ids of snapshots no index
/// holds, each located at the real snapshot's record, then the one real
/// snapshot, whose root holds the file `hello.txt` ("hello\n"). Every
/// hash is right, so it opens; it is an archive readers must list and
/// verify in bounded memory.
/// Returns the real snapshot's id.
pub fn snapshot_table_archive(path: &Path, n: usize) -> std::io::Result<ptar::Id> {
    snapshot_table_archive_with(path, n, |i| {
        ptar::Id(*blake3::hash(&(i as u64).to_le_bytes()).as_bytes())
    })
}

/// [`snapshot_table_archive`] with the id of the `i`-th unheld snapshot
/// given by `fake` (to forge a table that lists an id twice).
pub fn snapshot_table_archive_with(
    path: &Path,
    n: usize,
    fake: impl Fn(usize) -> ptar::Id,
) -> std::io::Result<ptar::Id> {
    use std::io::Write;
    assert!(n >= 1);
    let h = header(None);
    let hb = h.to_bytes();
    let ctx = ArchiveContext {
        uuid: h.uuid,
        header_minor: h.minor,
        header_hash: *blake3::hash(&hb).as_bytes(),
        keys: None,
        existing: None,
    };
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    file.write_all(&hb)?;
    let mut w = GenerationWriter::new(
        file,
        hb.len() as u64,
        ctx,
        Box::new(SeededEntropy::new(b"big table")),
    );
    let chunk = w.put_blob(Kind::Chunk, b"hello\n").unwrap();
    let data = Payload::File(ptar::format::tree::Content::Inline(vec![
        ptar::format::tree::Extent::Data { len: 6, id: chunk },
    ]));
    let page =
        ptar::format::tree::TreePage::Leaf(vec![entry(b"hello.txt", EntryType::File, data, 6)])
            .to_bytes();
    let root = w.put_blob(Kind::Tree, &page).unwrap();
    let mut rec = SnapshotRecord {
        root,
        hostname: "forge".into(),
        ..SnapshotRecord::default()
    };
    rec.summary.files = 1;
    rec.summary.total_size = 6;
    let real = w.put_blob(Kind::Snapshot, &rec.to_bytes()).unwrap();
    let location = w
        .stored_location(&real)
        .map_err(std::io::Error::other)?
        .expect("just stored");
    for i in 0..n - 1 {
        w.list_entry(SnapshotEntry {
            id: fake(i),
            generation: 1,
            location,
        });
    }
    let (mut file, _) = w
        .finish(&[real], None, None, 0)
        .map_err(std::io::Error::other)?;
    file.flush()?;
    Ok(real)
}
