//! Writes seed corpora for every fuzz target into `fuzz/corpus/<target>/`,
//! sliced from the sample archives and vectors in `testdata/`:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//! ```
//!
//! Each seed starts with the mode byte its target expects (see the target's
//! documentation). Nothing here is random: the same testdata gives the same
//! seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ptar::codec::{self, Compression};
use ptar::crypto::{self, RecordContext};
use ptar::format::filemap::FileMapPage;
use ptar::format::header::Header;
use ptar::format::index::PREFIX_LEN;
use ptar::format::tree::{Content, Payload, TreePage};
use ptar::format::{unhex, Codec, Id, Kind};
use ptar::store::Store;

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

/// The record target's prefix: mode, codec, kind, plaintext length, offset, uuid, minor.
fn record_seed(
    mode: u8,
    codec: Codec,
    kind: Kind,
    raw_len: u32,
    offset: u64,
    h: &Header,
) -> Vec<u8> {
    let mut v = vec![mode, codec as u8, kind as u8 - 1];
    v.extend_from_slice(&raw_len.to_le_bytes());
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&h.uuid);
    v.extend_from_slice(&h.minor.to_le_bytes());
    v
}

fn slice(data: &[u8], off: u64, len: u64) -> &[u8] {
    &data[off as usize..(off + len) as usize]
}

fn from_archive(seeds: &mut Seeds, name: &str, bytes: &[u8], pass: Option<&[u8]>) {
    let store = Store::from_vec(bytes.to_vec(), pass).expect("testdata archive opens");
    let data = store.data().expect("an archive in memory");
    let h = store.header().clone();
    let hlen = store.header_len();
    // header
    seeds.put(
        "header",
        &format!("{name}-0"),
        &with_mode(0, &data[..hlen as usize]),
    );
    seeds.put(
        "header",
        &format!("{name}-1"),
        &with_mode(1, &data[..hlen as usize]),
    );
    // whole archive, extraction
    for mode in [0u8, 1, 2] {
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
    let mut tree_n = 0;
    for g in store.generations() {
        let f = &g.footer;
        let gen = f.generation;
        let fb = f.to_bytes();
        seeds.put("footer", &format!("{name}-g{gen}-0"), &with_mode(0, &fb));
        seeds.put("footer", &format!("{name}-g{gen}-1"), &with_mode(1, &fb));
        if f.keyslots_len > 0 {
            let ks = slice(data, f.keyslots_offset, f.keyslots_len);
            seeds.put(
                "header",
                &format!("{name}-g{gen}-keyslots"),
                &with_mode(2, ks),
            );
        }
        // index: as is, and as bare entries with a rebuilt prefix
        let ib = slice(data, f.index_offset, f.index_len);
        let probe = ib.get(PREFIX_LEN..PREFIX_LEN + 32).unwrap_or(&[0; 32]);
        let mut seed = vec![0u8];
        seed.extend_from_slice(probe);
        seed.extend_from_slice(ib);
        seeds.put("index", &format!("{name}-g{gen}"), &seed);
        let mut seed = vec![3u8];
        seed.extend_from_slice(probe);
        seed.extend_from_slice(&ib[PREFIX_LEN..]);
        seeds.put("index", &format!("{name}-g{gen}-entries"), &seed);
        // snapshot table, checked against its own generation
        let tb = slice(data, f.table_offset, f.table_len);
        let mode = 1 + 4 * (gen.min(63) as u8 - 1);
        seeds.put(
            "snapshot_table",
            &format!("{name}-g{gen}"),
            &with_mode(mode, tb),
        );
        // every blob and record
        let view = store.index(g).expect("index");
        for (i, e) in view.iter().enumerate() {
            let e = e.expect("entry");
            let blob = store.read_blob(&e.id, e.kind).expect("blob");
            match e.kind {
                Kind::Tree => {
                    seeds.put(
                        "tree_page",
                        &format!("{name}-{}", e.id.short()),
                        &with_mode(0, &blob),
                    );
                    seeds.put(
                        "tree_page",
                        &format!("{name}-{}-e", e.id.short()),
                        &with_mode(128, &blob[8..]),
                    );
                    tree_n += 1;
                    if let Ok(TreePage::Leaf(entries)) = TreePage::parse(&blob) {
                        for en in entries {
                            if let Payload::File(Content::Inline(x)) = &en.payload {
                                if x.is_empty() {
                                    continue;
                                }
                                let page = FileMapPage::Extents(x.clone()).to_bytes();
                                seeds.put(
                                    "file_map",
                                    &format!("{name}-{}-{}", e.id.short(), hexname(&en.name)),
                                    &page,
                                );
                                let covered = x.iter().map(|x| x.len()).sum();
                                let parent = FileMapPage::Children {
                                    level: 1,
                                    children: vec![(e.id, covered), (Id([0xab; 32]), 7)],
                                }
                                .to_bytes();
                                seeds.put(
                                    "file_map",
                                    &format!("{name}-{}-{}-l1", e.id.short(), hexname(&en.name)),
                                    &parent,
                                );
                            }
                        }
                    }
                }
                Kind::FileMap => seeds.put("file_map", &format!("{name}-{}", e.id.short()), &blob),
                Kind::Snapshot => {
                    seeds.put(
                        "snapshot_table",
                        &format!("{name}-rec-{}", e.id.short()),
                        &with_mode(0, &blob),
                    );
                }
                Kind::Chunk => {}
            }
            // Records: the stored bytes (plain archives), and the plaintext
            // sealed again under the fuzz test key (mode 1) and as a
            // round-trip plaintext (mode 2).
            if i % 2 == 0 || e.kind != Kind::Chunk {
                let plain = store.read_record(&e, g).expect("record");
                if !h.encrypted() {
                    let stored = slice(data, e.record_offset, e.record_len as u64);
                    let mut s = record_seed(0, e.codec, e.kind, e.raw_len, e.record_offset, &h);
                    s.extend_from_slice(stored);
                    seeds.put("record", &format!("{name}-{}-plain", e.id.short()), &s);
                }
                let (c, packed) = codec::compress(Compression::Zstd(3), &plain);
                let ctx = RecordContext {
                    uuid: &h.uuid,
                    minor: h.minor,
                    kind: e.kind,
                    codec: c,
                    raw_len: plain.len() as u32,
                    offset: e.record_offset,
                };
                let sealed = crypto::seal_record(ptar_fuzz::test_keys(), &ctx, &[5; 24], &packed);
                let mut s = record_seed(1, c, e.kind, plain.len() as u32, e.record_offset, &h);
                s.extend_from_slice(&sealed);
                seeds.put("record", &format!("{name}-{}-sealed", e.id.short()), &s);
                let mut s = record_seed(2, Codec::Lz4, e.kind, 0, e.record_offset, &h);
                s.extend_from_slice(&plain[..plain.len().min(4096)]);
                seeds.put("record", &format!("{name}-{}-rt", e.id.short()), &s);
            }
        }
    }
    assert!(tree_n > 0, "{name}: no tree page found");
    // The round trip takes any bytes; testdata blobs make varied plans.
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
}

fn hexname(b: &[u8]) -> String {
    ptar::format::hex(&b[..b.len().min(16)])
}

/// Records from `testdata/vectors/*.txt` (`record:`, `codec:`, `plaintext-length:`).
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
        let (Some(record), Some(codec)) = (field("record:"), field("codec:")) else {
            continue;
        };
        let record = unhex(&record).expect("hex record");
        let codec = Codec::from_u8(codec.parse().expect("codec")).expect("codec");
        let raw_len: u32 = match field("plaintext-length:") {
            Some(n) => n.parse().expect("length"),
            None => field("plaintext:").map_or(0, |p| (p.len() / 2) as u32),
        };
        let kind = field("kind:")
            .and_then(|k| Kind::from_u8(k.parse().ok()?))
            .unwrap_or(Kind::Chunk);
        let uuid = field("archive-uuid:")
            .and_then(|u| unhex(&u))
            .unwrap_or(vec![0; 16]);
        let offset: u64 = field("record-offset:").map_or(0, |o| o.parse().expect("offset"));
        let encrypted = field("master-key:").is_some();
        let mut s = vec![u8::from(encrypted), codec as u8, kind as u8 - 1];
        s.extend_from_slice(&raw_len.to_le_bytes());
        s.extend_from_slice(&offset.to_le_bytes());
        s.extend_from_slice(&uuid);
        s.extend_from_slice(&0u16.to_le_bytes());
        s.extend_from_slice(&record);
        let stem = p.file_stem().expect("name").to_string_lossy().into_owned();
        seeds.put("record", &format!("vector-{stem}"), &s);
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
    let mut archives: Vec<_> = std::fs::read_dir(testdata.join("archives"))
        .expect("testdata/archives")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ptar"))
        .collect();
    archives.sort();
    for p in &archives {
        let bytes = std::fs::read(p).expect("reading a testdata archive");
        let name = p.file_stem().expect("name").to_string_lossy().into_owned();
        let encrypted = Header::parse(&bytes[..Header::peek_len(&bytes[..16]).expect("header")])
            .expect("header")
            .encrypted();
        let pass = encrypted.then_some(ptar_fuzz::PASSPHRASE);
        from_archive(&mut seeds, &name, &bytes, pass);
    }
    from_vectors(&mut seeds, &testdata.join("vectors"));
    for (t, n) in &seeds.count {
        println!("{t}: {n} seeds");
    }
}
