//! Writes seed corpora for every fuzz target into `fuzz/corpus/<target>/`,
//! sliced from the sample archives and vectors in `testdata/` (and, for
//! `tar_read`, small tar streams built here member by member):
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
        b[257..265].copy_from_slice(b"ustar\000");
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
