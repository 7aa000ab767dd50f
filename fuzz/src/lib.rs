//! Helpers shared by the fuzz targets and the seed generator.
//!
//! - [`fix_archive`] repairs the checksums, hashes and (for plain archives,
//!   or with keys) the footer tags of a mutated archive, so the fuzzer gets
//!   past the integrity checks to the structures behind them;
//! - [`exercise`] opens nothing but does everything a reader does with an
//!   open archive: list, walk, read every file, verify;
//! - [`MemorySource`] feeds an in-memory tree to the snapshot builder.

use std::sync::{Arc, Mutex, OnceLock};

use ptar::crypto::{self, Keys};
use ptar::format::footer::{self, FOOTER_LEN};
use ptar::format::header::{self, Header};
use ptar::format::tree::{Entry, EntryType, Payload, Timestamp};
use ptar::{Archive, VerifyOptions};

/// The passphrase of `testdata/archives/tiny-encrypted.ptar`.
pub const PASSPHRASE: &[u8] = b"correct horse battery staple";

/// A fixed master key for the record target's encrypted mode.
pub const TEST_MASTER_KEY: [u8; 32] = [0x42; 32];

/// Keys derived from [`TEST_MASTER_KEY`].
pub fn test_keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::from_master(zeroize::Zeroizing::new(TEST_MASTER_KEY)))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// Whether Argon2id with these costs is cheap enough to run on every input.
fn cheap(m_kib: u32, t: u32, p: u32) -> bool {
    m_kib <= 4096 && t <= 2 && p <= 4
}

/// True when every key slot the input could make a reader try (the
/// header's, and every key-slot table anywhere in the bytes) has cheap
/// Argon2id costs, so passing the passphrase cannot make one run take
/// seconds or gigabytes (the format's caps allow 2 GiB and 16 passes).
pub fn kdf_is_cheap(bytes: &[u8]) -> bool {
    let slot_ok = |off: usize| match (
        u32_at(bytes, off + 4),
        u32_at(bytes, off + 8),
        u32_at(bytes, off + 12),
    ) {
        (Some(m), Some(t), Some(p)) => cheap(m, t, p),
        _ => true,
    };
    if let Some(n) = u16_at(bytes, 54) {
        for i in 0..n as usize {
            if !slot_ok(96 + header::KEY_SLOT_LEN * i) {
                return false;
            }
        }
    }
    let magic = &header::KEYSLOTS_MAGIC;
    let mut at = 0;
    while let Some(pos) = find(&bytes[at..], magic) {
        let start = at + pos;
        let n = u16_at(bytes, start + 8).unwrap_or(0) as usize;
        for i in 0..n.min(64) {
            if !slot_ok(start + 16 + header::KEY_SLOT_LEN * i) {
                return false;
            }
        }
        at = start + 1;
    }
    true
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The keys of an encrypted archive whose header slots open with
/// [`PASSPHRASE`] (cached: Argon2id runs once per distinct header).
pub fn keys_for(bytes: &[u8]) -> Option<Arc<Keys>> {
    type Cache = Mutex<Vec<(Vec<u8>, Option<Arc<Keys>>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let len = Header::peek_len(bytes.get(..16)?).ok()?;
    let h = Header::parse(bytes.get(..len)?).ok()?;
    if !h.encrypted() {
        return None;
    }
    let key: Vec<u8> = bytes[..len].to_vec();
    let cache = CACHE.get_or_init(Cache::default);
    if let Some((_, k)) = cache.lock().ok()?.iter().find(|(b, _)| *b == key) {
        return k.clone();
    }
    let mut found = None;
    for slot in &h.key_slots {
        if !cheap(slot.kdf.m_kib, slot.kdf.t, slot.kdf.p) {
            continue;
        }
        if let Ok(Some(mk)) = crypto::unwrap_slot(slot, PASSPHRASE, &h.uuid) {
            found = Some(Arc::new(Keys::from_master(mk)));
            break;
        }
    }
    let mut c = cache.lock().ok()?;
    if c.len() > 64 {
        c.clear();
    }
    c.push((key, found.clone()));
    found
}

/// Repairs what integrity checks a mutation breaks: the header's length
/// field and checksum, then along the footer chain (found from the end of
/// the file through each footer's previous-footer offset) the footer-end
/// offset, every section hash, the chain hash and the footer tag (keyed
/// with `keys` when given; signatures stay as they are).
pub fn fix_archive(bytes: &mut [u8], keys: Option<&Keys>) {
    // Header: trust the key-slot count, fix the length and the checksum.
    if bytes.len() >= header::FIXED_LEN && bytes[..8] == header::MAGIC {
        let n = u16_at(bytes, 54).unwrap_or(0) as usize;
        let len = header::FIXED_LEN + header::KEY_SLOT_LEN * n;
        if len <= bytes.len() {
            bytes[12..16].copy_from_slice(&(len as u32).to_le_bytes());
            let sum = *blake3::hash(&bytes[..len - 32]).as_bytes();
            bytes[len - 32..len].copy_from_slice(&sum);
        }
    }
    let header_hash = match u32_at(bytes, 12) {
        Some(l) if (l as usize) <= bytes.len() => *blake3::hash(&bytes[..l as usize]).as_bytes(),
        _ => return,
    };
    // The chain, newest first.
    let mut chain = Vec::new();
    let Some(mut off) = bytes.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    while chain.len() < 64 && bytes[off..off + 8] == footer::MAGIC {
        chain.push(off);
        let prev = u64_at(bytes, off + 96).unwrap_or(0) as usize;
        if prev == 0 || prev >= off || prev + FOOTER_LEN > off {
            break;
        }
        off = prev;
    }
    let mut prev_hash: Option<[u8; 32]> = None;
    for &off in chain.iter().rev() {
        let end = (off + FOOTER_LEN) as u64;
        bytes[off + 104..off + 112].copy_from_slice(&end.to_le_bytes());
        bytes[off + 128..off + 160].copy_from_slice(&header_hash);
        if let Some(h) = prev_hash {
            bytes[off + 160..off + 192].copy_from_slice(&h);
        }
        let field = |b: &[u8], i: usize| u64_at(b, off + i).unwrap_or(0);
        let (pack, index, table) = (field(bytes, 40), field(bytes, 48), field(bytes, 64));
        let index_end = index.saturating_add(field(bytes, 56));
        let table_end = table.saturating_add(field(bytes, 72));
        // (start, end, where the hash goes); the packfile runs up to the index.
        let sections = [
            (pack, index, 192),
            (index, index_end, 224),
            (table, table_end, 256),
        ];
        for (start, stop, at) in sections {
            if let Some(s) = bytes.get(start as usize..stop as usize) {
                let h = *blake3::hash(s).as_bytes();
                bytes[off + at..off + at + 32].copy_from_slice(&h);
            }
        }
        let (ks, kl) = (field(bytes, 80), field(bytes, 88));
        if kl > 0 {
            if let Some(s) = bytes.get(ks as usize..ks.saturating_add(kl) as usize) {
                let h = *blake3::hash(s).as_bytes();
                bytes[off + 288..off + 320].copy_from_slice(&h);
            }
        }
        let flags = u32_at(bytes, off + 12).unwrap_or(0);
        let mac = flags & footer::FLAG_MAC != 0;
        if !mac || keys.is_some() {
            let k = if mac { keys } else { None };
            let tag = crypto::footer_tag(k, &bytes[off..off + footer::COMMITTED_LEN]);
            bytes[off + 368..off + 400].copy_from_slice(&tag);
        }
        prev_hash = Some(*blake3::hash(&bytes[off..off + FOOTER_LEN]).as_bytes());
    }
}

/// Bounds on what [`exercise`] reads, so one input cannot take minutes.
pub const MAX_READ_BYTES: u64 = 8 << 20;
/// Most entries [`exercise`] visits.
pub const MAX_ENTRIES: usize = 20_000;

/// Does with an open archive what `ptar list`, `ptar cat` and
/// `ptar verify --full` do, ignoring errors (they are the expected outcome
/// of most inputs); only panics, hangs and huge allocations are findings.
pub fn exercise(a: &Archive) {
    let _ = a.store().key_slots();
    let _ = a.store().tail();
    if let Ok(snaps) = a.snapshots() {
        let mut read = 0u64;
        let mut seen = 0usize;
        for s in &snaps {
            let _ = a.walk(s, |path, e| {
                seen += 1;
                if seen > MAX_ENTRIES {
                    return Err(ptar::Error::InvalidInput("enough".into()));
                }
                // The path-based API: a lookup, and a file read in place
                // from its middle and its end.
                let _ = a.lookup(s, path);
                if read <= MAX_READ_BYTES {
                    if let Ok(mut f) = a.file_reader(s, e) {
                        use std::io::{Read, Seek, SeekFrom};
                        let mut buf = [0u8; 4096];
                        for to in [SeekFrom::Start(e.size / 2), SeekFrom::End(-1)] {
                            if f.seek(to).is_ok() {
                                read += f.read(&mut buf).unwrap_or(0) as u64;
                            }
                        }
                    }
                }
                if let Payload::File(c) = &e.payload {
                    let extents = a.extents(c, e.size)?;
                    for x in extents {
                        if let ptar::format::tree::Extent::Data { id, .. } = x {
                            if read > MAX_READ_BYTES {
                                break;
                            }
                            let chunk = a.read_chunk(&id)?;
                            read += chunk.len() as u64;
                        }
                    }
                }
                Ok(())
            });
        }
    }
    for sel in ["latest", "1", "0", "ab"] {
        let _ = a.find_snapshot(sel);
    }
    let _ = a.verify(&VerifyOptions::default());
    let _ = a.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
}

/// An entry with fixed metadata, for the builder.
pub fn plain_entry(name: &[u8], kind: EntryType, payload: Payload, mode: u32) -> Entry {
    let t = Timestamp {
        sec: 1_700_000_000,
        nsec: 0,
    };
    Entry::new(name, kind, payload)
        .with_mode(mode)
        .with_times(t, t, t)
        .with_source(0, 0, 1)
}

/// One node of an in-memory tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A directory: (name, node), names unique and valid.
    Dir(Vec<(Vec<u8>, Node)>),
}

/// Feeds a [`Node::Dir`] tree to [`ptar::Writer::add_snapshot_from`].
pub struct MemorySource {
    items: Vec<Item>,
    at: usize,
    data: Option<MemFile>,
}

enum Item {
    Enter(Vec<u8>, Vec<u8>),
    Leave,
    File(Vec<u8>, Vec<u8>, Vec<u8>),
    Link(Vec<u8>, Vec<u8>, Vec<u8>),
}

struct MemFile(std::io::Cursor<Vec<u8>>);

impl ptar::source::FileData for MemFile {
    fn reader_at(&mut self, start: u64) -> std::io::Result<&mut dyn std::io::Read> {
        self.0.set_position(start);
        Ok(&mut self.0)
    }
    fn len(&self) -> u64 {
        self.0.get_ref().len() as u64
    }
}

impl MemorySource {
    /// A source yielding the children of `root` (a directory).
    pub fn new(root: &[(Vec<u8>, Node)]) -> MemorySource {
        fn flatten(prefix: &[u8], kids: &[(Vec<u8>, Node)], out: &mut Vec<Item>) {
            for (name, node) in kids {
                let mut path = prefix.to_vec();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
                match node {
                    Node::File(body) => out.push(Item::File(path, name.clone(), body.clone())),
                    Node::Symlink(t) => out.push(Item::Link(path, name.clone(), t.clone())),
                    Node::Dir(sub) => {
                        out.push(Item::Enter(path.clone(), name.clone()));
                        flatten(&path, sub, out);
                        out.push(Item::Leave);
                    }
                }
            }
        }
        let mut items = Vec::new();
        flatten(b"", root, &mut items);
        MemorySource {
            items,
            at: 0,
            data: None,
        }
    }
}

impl ptar::source::EntrySource for MemorySource {
    fn next(&mut self) -> ptar::Result<Option<ptar::source::SourceItem<'_>>> {
        use ptar::source::SourceItem;
        let Some(item) = self.items.get(self.at) else {
            return Ok(None);
        };
        self.at += 1;
        Ok(Some(match item {
            Item::Enter(path, name) => SourceItem::EnterDir {
                path: path.clone(),
                entry: plain_entry(name, EntryType::Dir, Payload::Dir(ptar::Id::ZERO), 0o755),
            },
            Item::Leave => SourceItem::LeaveDir,
            Item::File(path, name, body) => {
                let data = self
                    .data
                    .insert(MemFile(std::io::Cursor::new(body.clone())));
                SourceItem::File {
                    path: path.clone(),
                    entry: plain_entry(name, EntryType::File, Payload::None, 0o644),
                    data,
                }
            }
            Item::Link(path, name, target) => SourceItem::Other {
                path: path.clone(),
                entry: plain_entry(
                    name,
                    EntryType::Symlink,
                    Payload::Symlink(target.clone()),
                    0o777,
                ),
            },
        }))
    }
}
