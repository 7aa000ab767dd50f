//! Helpers shared by the fuzz targets and the seed generator.
//!
//! - [`fix_archive`] repairs the header checksum and, along the trailer
//!   chain, the trailers' hashes and checks of a mutated archive (and the
//!   hashes inside uncompressed manifests), so the fuzzer gets past the
//!   integrity checks to the structures behind them;
//! - [`exercise`] opens nothing but does everything a reader does with an
//!   open archive: list, walk, read every file, verify;
//! - [`MemorySource`] feeds an in-memory tree to the snapshot builder.

use std::sync::{Arc, Mutex, OnceLock};

use ptar::crypto::{self, Keys};
use ptar::format::frame::{self, FrameType};
use ptar::format::header::{self, Header};
use ptar::format::manifest::{self, TRAILER_LEN};
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

/// Repairs what integrity checks a mutation breaks before the deep
/// parsers: the header's length field and checksum, then along the trailer
/// chain (found from the end of the file through each trailer's generation
/// start), oldest generation first, each trailer's manifest length (so that
/// the manifest ends where the trailer starts) and the manifest frame's
/// length prefix, the manifest hash, the key-slot table hash, the end magic
/// and the check.
///
/// Manifests stored uncompressed (plain, or opened with `keys` and sealed
/// again under the same nonce) also get the header hash, the generation
/// hash and the previous footer hash written in, so that verification
/// goes past them; a compressed manifest cannot be patched in place and
/// keeps its fields (opening does not check the last two). Frames are not
/// hashed on read, so nothing else needs repairing; signatures stay as
/// they are.
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
    let hlen = match u32_at(bytes, 12) {
        Some(l) if (l as usize) <= bytes.len() && l as usize >= header::FIXED_LEN => l as usize,
        _ => return,
    };
    let header_hash = *blake3::hash(&bytes[..hlen]).as_bytes();
    let uuid: [u8; 16] = bytes[20..36].try_into().expect("16 bytes");
    let encrypted = u32_at(bytes, 16).unwrap_or(0) & header::FLAG_ENCRYPTED != 0;
    // Sealed manifests are patched only with the keys.
    let sealing = match (encrypted, keys) {
        (false, _) => Some(None),
        (true, Some(k)) => Some(Some(k)),
        (true, None) => None,
    };
    // The chain, newest first: each trailer ends where the next generation
    // starts. A trailer is recognised by its first magic.
    let mut chain = Vec::new();
    let mut end = bytes.len();
    while chain.len() < 64 && end >= hlen + TRAILER_LEN {
        let off = end - TRAILER_LEN;
        if bytes[off..off + 8] != manifest::MAGIC {
            break;
        }
        chain.push(off);
        let start = u64_at(bytes, off + 40).unwrap_or(0);
        match usize::try_from(start) {
            Ok(s) if s < off && s >= hlen + TRAILER_LEN => end = s,
            _ => break,
        }
    }
    let mut previous_footer: [u8; 32] = [0; 32];
    for &off in chain.iter().rev() {
        let start = u64_at(bytes, off + 40).unwrap_or(0);
        let m_off = u64_at(bytes, off + 48).unwrap_or(0);
        // The manifest ends where the trailer starts (spec §10.3 rule 5).
        let manifest = usize::try_from(m_off).ok().filter(|&m| {
            m >= hlen
                && m.checked_add(16).is_some_and(|e| e <= off)
                && off - m <= 4 + frame::MAX_BODY_LEN as usize
        });
        if let Some(m) = manifest {
            let len = off - m;
            bytes[off + 56..off + 60].copy_from_slice(&(len as u32).to_le_bytes());
            bytes[m..m + 4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
            let generation_hash = usize::try_from(start)
                .ok()
                .filter(|&s| s <= m)
                .map(|s| *blake3::hash(&bytes[s..m]).as_bytes());
            if let Some(keys) = sealing {
                patch_manifest(
                    &mut bytes[m..off],
                    m as u64,
                    &uuid,
                    keys,
                    &header_hash,
                    &previous_footer,
                    generation_hash.as_ref(),
                );
            }
            let h = *blake3::hash(&bytes[m..off]).as_bytes();
            bytes[off + 80..off + 112].copy_from_slice(&h);
        }
        let (ks, kl) = (
            u64_at(bytes, off + 64).unwrap_or(0),
            u32_at(bytes, off + 72).unwrap_or(0),
        );
        let ks_hash = if ks == 0 && kl == 0 {
            Some([0; 32])
        } else {
            usize::try_from(ks)
                .ok()
                .and_then(|s| bytes.get(s..s.checked_add(kl as usize)?))
                .map(|s| *blake3::hash(s).as_bytes())
        };
        if let Some(h) = ks_hash {
            bytes[off + 112..off + 144].copy_from_slice(&h);
        }
        let check = *blake3::hash(&bytes[off..off + 144]).as_bytes();
        bytes[off + 144..off + 176].copy_from_slice(&check);
        bytes[off + 176..off + TRAILER_LEN].copy_from_slice(&manifest::END_MAGIC);
        previous_footer = match manifest {
            Some(m) => *blake3::hash(&bytes[m..off + TRAILER_LEN]).as_bytes(),
            None => [0; 32],
        };
    }
}

/// Writes the hashes a verifier checks into a manifest frame (`frame`: its
/// stored bytes at `offset`) when its content is stored uncompressed:
/// directly in a plain archive, or opened and sealed again under the same
/// nonce with `keys`.
fn patch_manifest(
    frame: &mut [u8],
    offset: u64,
    uuid: &[u8; 16],
    keys: Option<&Keys>,
    header_hash: &[u8; 32],
    previous_footer: &[u8; 32],
    generation_hash: Option<&[u8; 32]>,
) {
    let patch = |env: &mut [u8]| -> bool {
        // Envelope: type 6, codec 0 (stored), content from byte 12 on.
        if env.len() < 12 + 144 || env[0] != FrameType::Manifest as u8 || env[1] != 0 {
            return false;
        }
        let c = &mut env[12..];
        c[48..80].copy_from_slice(header_hash);
        let generation = u64_at(c, 24).unwrap_or(0);
        if generation > 1 {
            c[80..112].copy_from_slice(previous_footer);
        }
        if let Some(h) = generation_hash {
            c[112..144].copy_from_slice(h);
        }
        true
    };
    let body = &mut frame[frame::LENGTH_LEN..];
    match keys {
        None => {
            patch(body);
        }
        Some(k) => {
            let Some(mut env) = crypto::open_frame(k, uuid, offset, body) else {
                return;
            };
            if patch(&mut env) {
                let nonce: [u8; 24] = body[..24].try_into().expect("24 bytes");
                let sealed = crypto::seal_frame(k, uuid, offset, &nonce, &env);
                if sealed.len() == body.len() {
                    body.copy_from_slice(&sealed);
                }
            }
        }
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
