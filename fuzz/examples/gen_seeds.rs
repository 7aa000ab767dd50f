//! Writes seed corpora for every fuzz target into `fuzz/corpus/<target>/`,
//! sliced from archives written here (several generations, so that index
//! and snapshot runs merge; plain and encrypted; every codec; a signed
//! manifest, a key-slot table, an uncompressed manifest), from the sample
//! archives in `testdata/archives/` when this version of the library opens
//! them, and from the frame vectors in `testdata/vectors/` (and, for
//! `tar_read`, small tar streams built here member by member):
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//! ```
//!
//! Each seed starts with the mode byte its target expects (see the target's
//! documentation). Nothing here is random: the same library and testdata
//! give the same seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ptar::codec::{self, Compression};
use ptar::crypto::{self, SeededEntropy};
use ptar::format::filemap::FileMapPage;
use ptar::format::frame::{self, EnvelopeHeader, FrameType};
use ptar::format::header::{ChunkerParams, Header, KdfParams};
use ptar::format::manifest::TRAILER_LEN;
use ptar::format::record::RecordLayout;
use ptar::format::run::INDEX_ENTRY_LEN;
use ptar::format::tree::{Content, Payload, TreePage};
use ptar::format::{unhex, Codec, Id, Kind};
use ptar::progress::NoProgress;
use ptar::store::writer::PackOptions;
use ptar::store::Store;
use ptar::{CreateOptions, Encryption, SnapshotMeta, Writer};
use ptar_fuzz::{MemorySource, Node};

struct Seeds {
    root: PathBuf,
    count: BTreeMap<&'static str, usize>,
}

impl Seeds {
    fn put(&mut self, target: &'static str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("creating the corpus directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("writing a seed");
        *self.count.entry(target).or_default() += 1;
    }
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

/// The record target's prefix: mode, frame offset, uuid.
fn record_seed(mode: u8, offset: u64, uuid: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(uuid);
    v
}

/// A round-trip seed of the record target: codec choice, frame type, content.
fn round_trip_seed(offset: u64, uuid: &[u8], t: FrameType, content: &[u8]) -> Vec<u8> {
    let mut s = record_seed(2, offset, uuid);
    s.push(3);
    s.push(t as u8 - 1);
    s.extend_from_slice(&content[..content.len().min(4096)]);
    s
}

/// Opens (with the archive's keys) and decodes a frame's stored bytes:
/// its envelope header, its padded envelope and its content.
fn decode_frame(store: &Store, offset: u64, raw: &[u8]) -> (EnvelopeHeader, Vec<u8>, Vec<u8>) {
    let body = &raw[frame::LENGTH_LEN..];
    let envelope = match store.keys() {
        Some(k) => crypto::open_frame(k, &store.header().uuid, offset, body)
            .expect("a testdata frame opens"),
        None => body.to_vec(),
    };
    let (h, payload) =
        frame::parse_envelope(&envelope, store.keys().is_none()).expect("a valid envelope");
    let content = codec::decompress(h.codec, payload, h.content_len).expect("content decodes");
    (h, envelope, content)
}

/// An index page's content (columns) as the index target's rows.
fn page_rows(content: &[u8]) -> Vec<u8> {
    let n = (content.len() - 4) / INDEX_ENTRY_LEN;
    // Column i of width w starts at 4 + n * (sum of the widths before it).
    let cols = [(0, 32), (32, 8), (40, 4), (44, 4)];
    let mut out = Vec::new();
    for i in 0..n {
        for (before, w) in cols {
            let at = 4 + n * before + w * i;
            out.extend_from_slice(&content[at..at + w]);
        }
    }
    out
}

fn index_seed(mode: u8, probe: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut s = vec![mode];
    s.extend_from_slice(probe);
    s.extend_from_slice(bytes);
    s
}

/// Seeds of the blob parsers from the blobs of a record.
fn blob_seeds(seeds: &mut Seeds, name: &str, content: &[u8]) {
    let layout = RecordLayout::parse(content).expect("a valid record");
    for i in 0..layout.len() as u32 {
        let (kind, range) = layout.blob(i).expect("a listed blob");
        let blob = &content[range];
        let short = blake3::hash(blob).to_hex()[..12].to_string();
        match kind {
            Kind::Tree => {
                seeds.put("tree_page", &format!("{name}-{short}"), &with_mode(0, blob));
                seeds.put(
                    "tree_page",
                    &format!("{name}-{short}-e"),
                    &with_mode(128, &blob[8.min(blob.len())..]),
                );
                let Ok(TreePage::Leaf(entries)) = TreePage::parse(blob) else {
                    continue;
                };
                for en in entries {
                    let Payload::File(Content::Inline(x)) = &en.payload else {
                        continue;
                    };
                    if x.is_empty() {
                        continue;
                    }
                    let page = FileMapPage::Extents(x.clone()).to_bytes();
                    let en_name = hexname(&en.name);
                    seeds.put("file_map", &format!("{name}-{short}-{en_name}"), &page);
                    let covered = x.iter().map(|x| x.len()).sum();
                    let parent = FileMapPage::Children {
                        level: 1,
                        children: vec![(Id([0xcd; 32]), covered), (Id([0xab; 32]), 7)],
                    }
                    .to_bytes();
                    seeds.put("file_map", &format!("{name}-{short}-{en_name}-l1"), &parent);
                }
            }
            Kind::FileMap => seeds.put("file_map", &format!("{name}-{short}"), blob),
            Kind::Snapshot => seeds.put(
                "snapshot_table",
                &format!("{name}-rec-{short}"),
                &with_mode(0, blob),
            ),
            Kind::Chunk => {}
        }
    }
}

/// Seeds from one archive; an error when this library does not open it
/// (a sample archive of another format version).
fn from_archive(
    seeds: &mut Seeds,
    name: &str,
    bytes: &[u8],
    pass: Option<&[u8]>,
) -> ptar::Result<()> {
    let store = Store::from_vec(bytes.to_vec(), pass)?;
    let h = store.header().clone();
    let hlen = store.header_len() as usize;
    seeds.put(
        "header",
        &format!("{name}-0"),
        &with_mode(0, &bytes[..hlen]),
    );
    seeds.put(
        "header",
        &format!("{name}-1"),
        &with_mode(1, &bytes[..hlen]),
    );
    for mode in [0u8, 1, 2, 4] {
        seeds.put(
            "archive",
            &format!("{name}-{mode}"),
            &with_mode(mode, bytes),
        );
    }
    seeds.put("extract", &format!("{name}-0"), &with_mode(0, bytes));
    seeds.put("extract", &format!("{name}-2"), &with_mode(2, bytes));
    seeds.put(
        "extract",
        &format!("{name}-arb"),
        &with_mode(1, &bytes[..bytes.len().min(2048)]),
    );
    let mut trees = 0;
    for span in store.generation_spans()? {
        let g = span.generation;
        let end = span.end as usize;
        let trailer = &bytes[end - TRAILER_LEN..end];
        seeds.put("footer", &format!("{name}-g{g}-t0"), &with_mode(0, trailer));
        seeds.put("footer", &format!("{name}-g{g}-t2"), &with_mode(2, trailer));
        let manifest = &bytes[span.manifest as usize..end - TRAILER_LEN];
        let mut frames: Vec<(u64, u64, Option<FrameType>)> = store.frames(&span)?;
        frames.push((
            span.manifest,
            manifest.len() as u64,
            Some(FrameType::Manifest),
        ));
        for (off, len, t) in frames {
            let raw = &bytes[off as usize..(off + len) as usize];
            let tag = format!("{name}-g{g}-{off}");
            let Some(t) = t else {
                // A key-slot table: its body, without the length.
                seeds.put(
                    "header",
                    &format!("{tag}-keyslots"),
                    &with_mode(2, &raw[4..]),
                );
                continue;
            };
            let (eh, envelope, content) = decode_frame(&store, off, raw);
            // The frame as stored (plain) or sealed again under the fuzz
            // test key (encrypted), and its content as a round trip.
            if store.keys().is_none() {
                let mut s = record_seed(0, off, &h.uuid);
                s.extend_from_slice(&raw[4..]);
                seeds.put("record", &format!("{tag}-plain"), &s);
            }
            let sealed = crypto::seal_frame(ptar_fuzz::test_keys(), &h.uuid, off, &[5; 24], &{
                let (_, payload) = frame::parse_envelope(&envelope, false).expect("valid");
                frame::envelope(eh, payload, true)
            });
            let mut s = record_seed(1, off, &h.uuid);
            s.extend_from_slice(&sealed);
            seeds.put("record", &format!("{tag}-sealed"), &s);
            seeds.put(
                "record",
                &format!("{tag}-rt"),
                &round_trip_seed(off, &h.uuid, t, &content),
            );
            let probe = content.get(4..36).unwrap_or(&[0; 32]).to_vec();
            let gen_mode = ((g - 1).min(31) as u8) << 3;
            match t {
                FrameType::IndexPage => {
                    seeds.put(
                        "index",
                        &format!("{tag}-page"),
                        &index_seed(0, &probe, &content),
                    );
                    seeds.put(
                        "index",
                        &format!("{tag}-page-rows"),
                        &index_seed(6, &probe, &page_rows(&content)),
                    );
                }
                FrameType::IndexDirectory => {
                    seeds.put(
                        "index",
                        &format!("{tag}-dir"),
                        &index_seed(1, &probe, &content),
                    );
                    seeds.put(
                        "index",
                        &format!("{tag}-dir-rows"),
                        &index_seed(7, &probe, &content[4..]),
                    );
                }
                FrameType::SnapshotPage => {
                    for m in [1, 5] {
                        seeds.put(
                            "snapshot_table",
                            &format!("{tag}-page-{m}"),
                            &with_mode(m | gen_mode, &content),
                        );
                    }
                }
                FrameType::SnapshotDirectory => {
                    for m in [3, 7] {
                        seeds.put(
                            "snapshot_table",
                            &format!("{tag}-dir-{m}"),
                            &with_mode(m, &content),
                        );
                    }
                }
                FrameType::Manifest => {
                    seeds.put(
                        "footer",
                        &format!("{name}-g{g}-m1"),
                        &with_mode(1, &content),
                    );
                    seeds.put(
                        "footer",
                        &format!("{name}-g{g}-m3"),
                        &with_mode(3, &content),
                    );
                }
                FrameType::BlobRecord => {
                    blob_seeds(seeds, &tag, &content);
                    trees += 1;
                }
            }
        }
    }
    assert!(trees > 0, "{name}: no blob record found");
    // The round trip takes any bytes; archive bytes make varied plans.
    seeds.put(
        "roundtrip",
        &format!("{name}-head"),
        &bytes[..bytes.len().min(1024)],
    );
    seeds.put(
        "roundtrip",
        &format!("{name}-tail"),
        &bytes[bytes.len().saturating_sub(1024)..],
    );
    Ok(())
}

fn hexname(b: &[u8]) -> String {
    ptar::format::hex(&b[..b.len().min(16)])
}

/// Frames from `testdata/vectors/*.txt`: `frame:` (the stored frame; with
/// `master-key:`, the `envelope:` is sealed again under the fuzz test key),
/// `payload:` with `codec:` and `content-length:` (a plain blob record), and
/// `record-content:` (a round trip). Vectors of another format version have
/// none of these fields and give no seed.
fn from_vectors(seeds: &mut Seeds, dir: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("testdata/vectors")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let text = std::fs::read_to_string(&p).expect("vector text");
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        let hex_field = |k: &str| field(k).map(|v| unhex(&v).expect("a hex field"));
        let stem = p.file_stem().expect("name").to_string_lossy().into_owned();
        let uuid = hex_field("archive-uuid:").unwrap_or(vec![0; 16]);
        let offset: u64 = field("frame-offset:").map_or(0, |o| o.parse().expect("offset"));
        let encrypted = field("master-key:").is_some();
        if let Some(stored) = hex_field("frame:") {
            if !encrypted {
                let mut s = record_seed(0, offset, &uuid);
                s.extend_from_slice(&stored[frame::LENGTH_LEN..]);
                seeds.put("record", &format!("vector-{stem}"), &s);
            } else if let Some(envelope) = hex_field("envelope:") {
                let sealed = crypto::seal_frame(
                    ptar_fuzz::test_keys(),
                    uuid.as_slice().try_into().expect("16-byte uuid"),
                    offset,
                    &[5; 24],
                    &envelope,
                );
                let mut s = record_seed(1, offset, &uuid);
                s.extend_from_slice(&sealed);
                seeds.put("record", &format!("vector-{stem}-sealed"), &s);
            }
        }
        if let (Some(payload), Some(c), Some(len)) = (
            hex_field("payload:"),
            field("codec:"),
            field("content-length:"),
        ) {
            let h = EnvelopeHeader {
                frame_type: FrameType::BlobRecord,
                codec: Codec::from_u8(c.parse().expect("codec")).expect("codec"),
                content_len: len.parse().expect("length"),
            };
            let mut s = record_seed(0, offset, &uuid);
            s.extend_from_slice(&frame::envelope(h, &payload, false));
            seeds.put("record", &format!("vector-{stem}-payload"), &s);
        }
        if let Some(content) = hex_field("record-content:") {
            seeds.put(
                "record",
                &format!("vector-{stem}-rt"),
                &round_trip_seed(offset, &uuid, FrameType::BlobRecord, &content),
            );
            blob_seeds(seeds, &format!("vector-{stem}"), &content);
        }
    }
}

/// The tree of generation `g` of the archives written here: a text file
/// that changes, a file of 12 KiB that does not (dozens of extents with
/// the small chunks below, so it gets file-map pages), a symlink, nested
/// directories.
fn tree(g: u32) -> Vec<(Vec<u8>, Node)> {
    let mut big = vec![0u8; 12 * 1024];
    blake3::Hasher::new()
        .update(b"gen_seeds big file")
        .finalize_xof()
        .fill(&mut big);
    let text = format!("hello from generation {g}\n").repeat(g as usize);
    vec![
        (b"big.bin".to_vec(), Node::File(big)),
        (
            b"docs".to_vec(),
            Node::Dir(vec![
                (b"empty".to_vec(), Node::File(Vec::new())),
                (b"hello.txt".to_vec(), Node::File(text.into_bytes())),
                (
                    b"sub".to_vec(),
                    Node::Dir(vec![(b"deep".to_vec(), Node::File(b"deep\n".to_vec()))]),
                ),
            ]),
        ),
        (b"link".to_vec(), Node::Symlink(b"docs/hello.txt".to_vec())),
    ]
}

const CHUNKER: ChunkerParams = ChunkerParams {
    min: 64,
    avg: 256,
    max: 1024,
};
const KDF: KdfParams = KdfParams {
    m_kib: 8,
    t: 1,
    p: 1,
};
const T0: i64 = 1_700_000_000_000_000_000;

/// Writes an archive of `compression.len()` generations, generation `g`
/// packed with `compression[g - 1]`; encrypted under [`ptar_fuzz::PASSPHRASE`]
/// when `encrypted` (generation 2 then writes a key-slot table), generation
/// 3 signed when `sign`.
fn write_archive(
    dir: &Path,
    name: &str,
    encrypted: bool,
    sign: bool,
    compression: &[Compression],
) -> Vec<u8> {
    let path = dir.join(format!("{name}.ptar"));
    let pass = encrypted.then_some(ptar_fuzz::PASSPHRASE);
    for (i, &c) in compression.iter().enumerate() {
        let g = i as u32 + 1;
        let pack = PackOptions {
            compression: c,
            record_target: 512,
            threads: 0,
        };
        let entropy = Box::new(SeededEntropy::new(format!("{name} {g}").as_bytes()));
        let time = T0 + i64::from(g) * 3_600_000_000_000;
        let mut w = if g == 1 {
            Writer::create(
                &path,
                CreateOptions {
                    encryption: encrypted.then(|| Encryption {
                        passphrase: zeroize::Zeroizing::new(ptar_fuzz::PASSPHRASE.to_vec()),
                        kdf: KDF,
                    }),
                    chunker: CHUNKER,
                    entropy,
                    time_ns: Some(time),
                    pack,
                },
            )
            .expect("create")
        } else {
            let mut w = Writer::append_with(&path, pass, entropy, Some(time)).expect("append");
            w.set_pack_options(pack).expect("pack options");
            w
        };
        if encrypted && g == 2 {
            // A key-slot table: the passphrase again and a second one.
            let gw = w.generation_writer();
            let master = *gw.keys().expect("keys").master();
            let uuid = gw.uuid();
            let mut e = SeededEntropy::new(b"gen_seeds key slots");
            let slots = [ptar_fuzz::PASSPHRASE, b"another passphrase"]
                .iter()
                .map(|p| crypto::wrap_master_key(&master, p, KDF, &uuid, &mut e))
                .collect::<ptar::Result<Vec<_>>>()
                .expect("key slots");
            w.set_key_slots(slots).expect("key slots");
        }
        if sign && g == 3 {
            let text = format!("PTAR-SECRET-KEY-1 {}", "07".repeat(32));
            w.sign_with(ptar::signing::secret_from_text(&text).expect("a signing key"));
        }
        let meta = SnapshotMeta {
            name: format!("{name}-{g}"),
            tags: vec![format!("g{g}")],
            ..SnapshotMeta::default()
        };
        let t = tree(g);
        let mut src = MemorySource::new(&t);
        w.add_snapshot_from(&mut src, vec![b"mem".to_vec()], &meta, &NoProgress)
            .expect("snapshot");
        w.commit().expect("commit");
    }
    std::fs::read(&path).expect("read back")
}

/// The harness's repair must leave a sound archive as it is, and must
/// repair a changed header (whose hash every manifest holds): the archive
/// opens again when its newest manifest is stored uncompressed (`opens`),
/// and verifies clean when every manifest is (`verifies`).
fn check_fix_archive(name: &str, bytes: &[u8], pass: Option<&[u8]>, opens: bool, verifies: bool) {
    let keys = ptar_fuzz::keys_for(bytes);
    assert_eq!(
        keys.is_some(),
        pass.is_some(),
        "{name}: keys for the test passphrase"
    );
    let mut fixed = bytes.to_vec();
    ptar_fuzz::fix_archive(&mut fixed, keys.as_deref());
    assert!(
        fixed == bytes,
        "{name}: fix_archive changed a sound archive"
    );
    // The creation time (informational) changes: the header checksum and
    // header hash no longer match until repaired.
    let mut changed = bytes.to_vec();
    changed[56] ^= 1;
    assert!(ptar::Archive::from_vec(changed.clone(), pass).is_err());
    ptar_fuzz::fix_archive(&mut changed, keys.as_deref());
    match ptar::Archive::from_vec(changed, pass) {
        Ok(a) => {
            let report = a.verify(&ptar::VerifyOptions {
                full: true,
                trusted_key: None,
            });
            assert_eq!(
                report.ok(),
                verifies,
                "{name}: repaired archive verifies: {:?}",
                report.problems
            );
        }
        Err(e) => assert!(!opens, "{name}: repaired archive does not open: {e}"),
    }
}

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let testdata = here.join("../testdata");
    let mut seeds = Seeds {
        root: std::env::args_os()
            .nth(1)
            .map_or_else(|| here.join("corpus"), PathBuf::from),
        count: BTreeMap::new(),
    };
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let (z, l, n) = (Compression::Zstd(3), Compression::Lz4, Compression::None);
    let written = [
        ("plain5", false, true, vec![z, l, n, z, l]),
        ("stored", false, false, vec![n, n]),
        ("encrypted", true, false, vec![l, z, n]),
        ("encrypted-stored", true, false, vec![n, n]),
    ];
    for (name, encrypted, sign, compression) in &written {
        let bytes = write_archive(tmp.path(), name, *encrypted, *sign, compression);
        let pass = encrypted.then_some(ptar_fuzz::PASSPHRASE);
        let opens = compression.last() == Some(&Compression::None);
        let verifies = compression.iter().all(|c| *c == Compression::None);
        check_fix_archive(name, &bytes, pass, opens, verifies);
        from_archive(&mut seeds, name, &bytes, pass).expect("an archive written here opens");
    }
    let mut archives: Vec<_> = std::fs::read_dir(testdata.join("archives"))
        .expect("testdata/archives")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ptar"))
        .collect();
    archives.sort();
    for p in &archives {
        let bytes = std::fs::read(p).expect("reading a testdata archive");
        let name = p.file_stem().expect("name").to_string_lossy().into_owned();
        let encrypted = Header::peek_len(&bytes[..16.min(bytes.len())])
            .ok()
            .and_then(|n| Header::parse(bytes.get(..n)?).ok())
            .is_some_and(|h| h.encrypted());
        let pass = encrypted.then_some(ptar_fuzz::PASSPHRASE);
        if let Err(e) = from_archive(&mut seeds, &name, &bytes, pass) {
            println!("skipped {}: {e}", p.display());
        }
    }
    from_vectors(&mut seeds, &testdata.join("vectors"));
    tar_seeds(&mut seeds);
    for (t, n) in &seeds.count {
        println!("{t}: {n} seeds");
    }
}

/// A ustar header block (GNU magic when `gnu`) with a valid checksum.
fn tar_header(name: &[u8], typeflag: u8, size: u64, link: &[u8], gnu: bool) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..name.len()].copy_from_slice(name);
    b[100..107].copy_from_slice(b"0000644");
    b[108..115].copy_from_slice(b"0001750");
    b[116..123].copy_from_slice(b"0001750");
    b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    b[136..147].copy_from_slice(b"14000000000");
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    if gnu {
        b[257..265].copy_from_slice(b"ustar  \0");
    } else {
        b[257..265].copy_from_slice(b"ustar\x0000");
    }
    b[265..269].copy_from_slice(b"user");
    b[297..302].copy_from_slice(b"group");
    tar_seal(&mut b);
    b
}

fn tar_seal(b: &mut [u8]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b[..512].iter().map(|&x| x as u32).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

fn tar_member(name: &[u8], typeflag: u8, data: &[u8], link: &[u8], gnu: bool) -> Vec<u8> {
    let mut v = tar_header(name, typeflag, data.len() as u64, link, gnu);
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn tar_pax(typeflag: u8, records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = [b" ", k.as_bytes(), b"=", v, b"\n"].concat();
        let mut n = body.len() + 1;
        while format!("{n}").len() + body.len() != n {
            n += 1;
        }
        data.extend_from_slice(format!("{n}").as_bytes());
        data.extend_from_slice(&body);
    }
    tar_member(b"PaxHeaders/x", typeflag, &data, b"", false)
}

/// Seeds for `tar_read`: every member type, pax records (times, xattrs,
/// ACLs, globals), GNU long names, and the four sparse formats.
fn tar_seeds(seeds: &mut Seeds) {
    let end = [0u8; 1024];
    let plain = [
        tar_member(b"d/", b'5', b"", b"", false),
        tar_member(b"d/f", b'0', b"hello world\n", b"", false),
        tar_member(b"d/l", b'2', b"", b"f", false),
        tar_member(b"d/h", b'1', b"", b"d/f", false),
        tar_member(b"d/fifo", b'6', b"", b"", false),
        tar_member(b"d/c", b'3', b"", b"", false),
        tar_member(b"/abs/../x", b'0', b"x", b"", false),
        end.to_vec(),
    ]
    .concat();
    seeds.put("tar_read", "ustar", &plain);
    let pax = [
        tar_pax(b'g', &[("uname", b"global"), ("SCHILY.xattr.user.g", b"1")]),
        tar_pax(
            b'x',
            &[
                ("path", b"long/path/name.txt"),
                ("mtime", b"1700000000.123456789"),
                ("atime", b"-1.5"),
                ("SCHILY.xattr.user.k", b"v"),
                ("LIBARCHIVE.xattr.user.b%20c", b"aGVsbG8="),
                (
                    "SCHILY.acl.access",
                    b"user::rw-\nuser:1001:r--\ngroup::r--\nmask::r--\nother::---\n",
                ),
            ],
        ),
        tar_member(b"short", b'0', b"pax data", b"", false),
        tar_pax(
            b'x',
            &[("SCHILY.acl.default", b"user::rwx,group::r-x,other::r-x")],
        ),
        tar_member(b"dir/", b'5', b"", b"", false),
        end.to_vec(),
    ]
    .concat();
    seeds.put("tar_read", "pax", &pax);
    let gnu = [
        tar_member(b"././@LongLink", b'L', b"a/very/long/name\0", b"", true),
        tar_member(b"ignored", b'0', b"long", b"", true),
        tar_member(b"././@LongLink", b'K', b"target\0", b"", true),
        tar_member(b"link", b'2', b"", b"", true),
        end.to_vec(),
    ]
    .concat();
    seeds.put("tar_read", "gnu-long", &gnu);
    // Old GNU sparse: 3 bytes at 8 of a 16-byte file, one extension block.
    let mut s = tar_header(b"sparse", b'S', 6, b"", true);
    s[386..397].copy_from_slice(b"00000000010");
    s[398..409].copy_from_slice(b"00000000003");
    s[482] = 1;
    s[483..494].copy_from_slice(b"00000000020");
    tar_seal(&mut s);
    let mut ext = vec![0u8; 512];
    ext[0..11].copy_from_slice(b"00000000014");
    ext[12..23].copy_from_slice(b"00000000003");
    s.extend(ext);
    let mut data = b"abcdef".to_vec();
    data.resize(512, 0);
    s.extend(data);
    s.extend(end);
    seeds.put("tar_read", "sparse-old-gnu", &s);
    let pax0 = [
        tar_pax(
            b'x',
            &[
                ("GNU.sparse.size", b"16"),
                ("GNU.sparse.numblocks", b"1"),
                ("GNU.sparse.offset", b"8"),
                ("GNU.sparse.numbytes", b"3"),
            ],
        ),
        tar_member(b"sp0", b'0', b"abc", b"", false),
        tar_pax(
            b'x',
            &[
                ("GNU.sparse.size", b"16"),
                ("GNU.sparse.numblocks", b"2"),
                ("GNU.sparse.name", b"sp1"),
                ("GNU.sparse.map", b"0,2,8,3"),
            ],
        ),
        tar_member(b"GNUSparseFile.1/sp1", b'0', b"xyabc", b"", false),
        end.to_vec(),
    ]
    .concat();
    seeds.put("tar_read", "sparse-pax-0", &pax0);
    let mut map = b"1\n8\n3\n".to_vec();
    map.resize(512, 0);
    map.extend_from_slice(b"abc");
    let pax1 = [
        tar_pax(
            b'x',
            &[
                ("GNU.sparse.major", b"1"),
                ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"sp"),
                ("GNU.sparse.realsize", b"16"),
            ],
        ),
        tar_member(b"GNUSparseFile.1/sp", b'0', &map, b"", false),
        end.to_vec(),
    ]
    .concat();
    seeds.put("tar_read", "sparse-pax-1", &pax1);
    // Any order: contents before their directory, a path twice, a link
    // that sorts before its target.
    let order = [
        tar_member(b"z/file", b'0', b"one", b"", false),
        tar_member(b"a/link", b'1', b"", b"z/file", false),
        tar_member(b"z/", b'5', b"", b"", false),
        tar_member(b"z/file", b'0', b"two", b"", false),
        end.to_vec(),
        end.to_vec(),
        tar_member(b"after-end", b'0', b"concatenated", b"", false),
    ]
    .concat();
    seeds.put("tar_read", "any-order", &order);
}
