//! Micro-benchmarks of the pieces of the write and read pipelines: chunking,
//! content ids, compression (LZ4, zstd), record encryption and index
//! lookups; then a whole in-memory create and an export of what it wrote.
//!
//! ```sh
//! cargo bench -p ptar --bench primitives                      # everything
//! cargo bench -p ptar --bench primitives -- codec             # one group (a filter)
//! cargo bench -p ptar --bench primitives -- --sample-count 3  # a quick look
//! ```
//!
//! Every input is generated here from a fixed seed, so runs compare: a
//! text-like buffer (words drawn from a small list: LZ4 keeps about 54% of
//! it, zstd level 3 about 31%) and an incompressible random one. Byte counters make divan print MB/s;
//! index lookups count items (lookups per second).

use std::fmt;
use std::sync::LazyLock;

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};

fn main() {
    divan::main();
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Bytes of each generated buffer (chunking runs over a whole one).
const BUF_LEN: usize = 32 * MIB;

/// splitmix64: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// The vocabulary of the text-like buffer, separated by spaces.
const WORDS: &str =
    "the of and to in a is that for it as was with be by on not he this are or his \
    from at which but have an had they you were their one all we can her has there \
    been if more when will would who so no archive snapshot chunk record index \
    footer generation directory file content hash key passphrase compression \
    deduplication restore backup struct fn let mut impl return 0x1f 42 2026 - = { } \
    ( ) //";

/// Text-like bytes: words, spaces, punctuation and short lines.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let line = 4 + rng.below(12);
        for i in 0..line {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(words[rng.below(words.len())].as_bytes());
        }
        out.extend_from_slice(match rng.below(4) {
            0 => b".\n",
            1 => b";\n",
            _ => b"\n",
        });
    }
    out.truncate(len);
    out
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng(seed).fill(&mut v);
    v
}

static TEXT: LazyLock<Vec<u8>> = LazyLock::new(|| text(BUF_LEN, 1));
static RANDOM: LazyLock<Vec<u8>> = LazyLock::new(|| random(BUF_LEN, 2));

/// Which generated buffer a benchmark reads.
#[derive(Clone, Copy)]
enum Data {
    Text,
    Random,
}

impl Data {
    fn bytes(self) -> &'static [u8] {
        match self {
            Data::Text => &TEXT,
            Data::Random => &RANDOM,
        }
    }
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Data::Text => "text",
            Data::Random => "random",
        })
    }
}

/// A piece of one buffer: its kind and length.
#[derive(Clone, Copy)]
struct Piece(Data, usize);

impl Piece {
    /// Bytes from the middle of the buffer (away from the start, which every
    /// other piece also uses).
    fn bytes(self) -> &'static [u8] {
        let b = self.0.bytes();
        let start = b.len() / 2;
        &b[start..start + self.1]
    }
}

impl fmt::Display for Piece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 >= MIB {
            write!(f, "{}/{}MiB", self.0, self.1 / MIB)
        } else {
            write!(f, "{}/{}KiB", self.0, self.1 / KIB)
        }
    }
}

const PIECES: [Piece; 4] = [
    Piece(Data::Text, 64 * KIB),
    Piece(Data::Random, 64 * KIB),
    Piece(Data::Text, MIB),
    Piece(Data::Random, MIB),
];

/// FastCDC over a whole buffer with the default 16/64/256 KiB parameters.
#[divan::bench_group(sample_count = 20)]
mod chunking {
    use super::*;
    use ptar::chunker::{ChunkStream, Chunker};
    use ptar::ChunkerParams;

    /// Through `ChunkStream` over a reader, as `create` does.
    #[divan::bench(args = [Data::Text, Data::Random])]
    fn stream(bencher: Bencher, data: Data) {
        let buf = data.bytes();
        let chunker = Chunker::new(ChunkerParams::DEFAULT, None);
        bencher.counter(BytesCount::of_slice(buf)).bench(|| {
            let mut s = ChunkStream::new(&chunker, black_box(buf));
            let mut n = 0usize;
            while let Some(c) = s.next_chunk().expect("reading a slice") {
                n += c.len();
            }
            n
        });
    }

    /// Cut points of an in-memory buffer (no copying), with a keyed gear
    /// table as encrypted archives use.
    #[divan::bench(args = [Data::Text, Data::Random])]
    fn lengths_keyed(bencher: Bencher, data: Data) {
        let buf = data.bytes();
        let chunker = Chunker::new(ChunkerParams::DEFAULT, Some(&[7; 32]));
        bencher
            .counter(BytesCount::of_slice(buf))
            .bench(|| chunker.chunk_lengths(black_box(buf)).len());
    }
}

/// BLAKE3 content ids of chunk-sized pieces.
mod hashing {
    use super::*;
    use ptar::crypto::{content_id, Keys, SecretKey};
    use ptar::format::Kind;

    #[divan::bench]
    fn content_id_plain(bencher: Bencher) {
        let p = Piece(Data::Text, 64 * KIB).bytes();
        bencher
            .counter(BytesCount::of_slice(p))
            .bench(|| content_id(None, Kind::Chunk, black_box(p)));
    }

    #[divan::bench]
    fn content_id_keyed(bencher: Bencher) {
        let keys = Keys::from_master(SecretKey::new([3; 32]));
        let p = Piece(Data::Text, 64 * KIB).bytes();
        bencher
            .counter(BytesCount::of_slice(p))
            .bench(|| content_id(Some(&keys), Kind::Chunk, black_box(p)));
    }
}

/// Record compression through `ptar::codec` (random pieces fall back to
/// stored after trying).
mod codec {
    use super::*;
    use ptar::codec::{Compression, Compressor};

    /// A compression choice and a piece to compress.
    #[derive(Clone, Copy)]
    struct Case(Compression, Piece);

    impl fmt::Display for Case {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Compression::None => write!(f, "none/{}", self.1),
                Compression::Lz4 => write!(f, "lz4/{}", self.1),
                Compression::Zstd(l) => write!(f, "zstd{l}/{}", self.1),
            }
        }
    }

    const CASES: [Case; 8] = [
        Case(Compression::Lz4, PIECES[0]),
        Case(Compression::Lz4, PIECES[1]),
        Case(Compression::Lz4, PIECES[2]),
        Case(Compression::Lz4, PIECES[3]),
        Case(Compression::DEFAULT, PIECES[0]),
        Case(Compression::DEFAULT, PIECES[1]),
        Case(Compression::DEFAULT, PIECES[2]),
        Case(Compression::DEFAULT, PIECES[3]),
    ];

    /// With one `Compressor` reused across records, as the writer does.
    #[divan::bench(args = CASES)]
    fn compress(bencher: Bencher, case: Case) {
        let p = case.1.bytes();
        let mut c = Compressor::new(case.0);
        bencher
            .counter(BytesCount::of_slice(p))
            .bench_local(|| c.compress(black_box(p)));
    }

    /// `codec::compress`: a fresh compressor (and zstd context) per call.
    #[divan::bench(args = [CASES[0], CASES[4]])]
    fn compress_once(bencher: Bencher, case: Case) {
        let p = case.1.bytes();
        bencher
            .counter(BytesCount::of_slice(p))
            .bench(|| ptar::codec::compress(case.0, black_box(p)));
    }

    /// Counted in decompressed bytes.
    #[divan::bench(args = CASES)]
    fn decompress(bencher: Bencher, case: Case) {
        let p = case.1.bytes();
        let (codec, z) = ptar::codec::compress(case.0, p);
        let raw_len = p.len() as u32;
        assert_eq!(
            ptar::codec::decompress(codec, &z, raw_len).as_deref(),
            Ok(p)
        );
        bencher
            .counter(BytesCount::of_slice(p))
            .bench(|| ptar::codec::decompress(codec, black_box(&z), raw_len).expect("round trip"));
    }
}

/// XChaCha20-Poly1305 frames.
mod aead {
    use super::*;
    use ptar::crypto::{open_frame, seal_frame, Keys, SecretKey};

    const SIZES: [usize; 2] = [64 * KIB, MIB];
    const UUID: [u8; 16] = [9; 16];

    fn keys() -> Keys {
        Keys::from_master(SecretKey::new([5; 32]))
    }

    #[divan::bench(args = SIZES)]
    fn seal(bencher: Bencher, size: usize) {
        let keys = keys();
        let p = Piece(Data::Text, size).bytes();
        bencher
            .counter(BytesCount::of_slice(p))
            .bench(|| seal_frame(&keys, &UUID, 4096, &[1; 24], black_box(p)));
    }

    /// Counted in plaintext bytes.
    #[divan::bench(args = SIZES)]
    fn open(bencher: Bencher, size: usize) {
        let keys = keys();
        let p = Piece(Data::Text, size).bytes();
        let sealed = seal_frame(&keys, &UUID, 4096, &[1; 24], p);
        assert_eq!(open_frame(&keys, &UUID, 4096, &sealed).as_deref(), Some(p));
        bencher
            .counter(BytesCount::of_slice(p))
            .bench(|| open_frame(&keys, &UUID, 4096, black_box(&sealed)).expect("tag verifies"));
    }
}

/// Index pages (spec §9.1): laying out, compressing, decoding and
/// searching one page of 1024 entries, what a lookup does on a cache miss.
mod index {
    use super::*;
    use ptar::codec::Compression;
    use ptar::format::run::{BlobLocation, IndexPage, INDEX_PAGE_ENTRIES};
    use ptar::format::Id;

    /// Ids looked up in turn (a power of two).
    const PROBES: usize = 1024;

    fn page() -> IndexPage {
        let mut rng = Rng(7);
        let mut ids: Vec<Id> = (0..INDEX_PAGE_ENTRIES)
            .map(|_| {
                let mut id = [0u8; 32];
                rng.fill(&mut id);
                Id(id)
            })
            .collect();
        ids.sort();
        let locations = (0..ids.len())
            .map(|i| BlobLocation {
                offset: 4096 + (i as u64 / 40) * 8_400_000,
                body_len: 1_200_000,
                ordinal: (i % 40) as u32,
            })
            .collect();
        IndexPage { ids, locations }
    }

    static PAGE: LazyLock<IndexPage> = LazyLock::new(page);

    /// Laying out and compressing a page (what a writer does per page).
    #[divan::bench]
    fn encode(bencher: Bencher) {
        bencher
            .bench(|| ptar::codec::compress(Compression::Zstd(3), &black_box(&*PAGE).to_bytes()));
    }

    /// Decompressing and parsing a page (a lookup's cache miss).
    #[divan::bench]
    fn decode(bencher: Bencher) {
        let content = PAGE.to_bytes();
        let (codec, payload) = ptar::codec::compress(Compression::Zstd(3), &content);
        bencher.bench(|| {
            let c = ptar::codec::decompress(codec, black_box(&payload), content.len() as u32)
                .expect("round trip");
            IndexPage::parse(&c).expect("valid")
        });
    }

    /// A binary search in a decoded page (a lookup's cache hit).
    #[divan::bench(sample_size = 1024)]
    fn find(bencher: Bencher) {
        let page = &*PAGE;
        let mut i = 0;
        bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
            i = (i + 1) & (PROBES - 1);
            page.find(black_box(&page.ids[i]))
        });
    }
}

/// A whole create through the public `Writer` API into a `Vec` (chunking,
/// ids, dedup, compression, encryption, file maps, trees, index, footer),
/// and the read side back through `Archive::export`.
#[divan::bench_group(sample_count = 10)]
mod create {
    use super::*;
    use ptar::codec::Compression;
    use ptar::format::tree::{Entry, EntryType, Payload, Timestamp};
    use ptar::sink::{EntrySink, FileContent, Flow};
    use ptar::source::{EntrySource, FileData, SourceItem};
    use ptar::store::writer::PackOptions;
    use ptar::store::Sink;
    use ptar::{Archive, CreateOptions, Encryption, KdfParams, SnapshotMeta, Writer};
    use std::io::{Cursor, Read};

    const DIRS: usize = 8;
    const FILES_PER_DIR: usize = 32;
    /// Content of the whole tree: text-like, so it compresses.
    const TREE_BYTES: usize = 16 * MIB;

    enum Item {
        Enter(String),
        Leave,
        File(String, &'static [u8]),
    }

    /// A generated tree: DIRS directories of FILES_PER_DIR files of varied
    /// sizes, cut from the text buffer (with every file distinct).
    fn tree() -> Vec<Item> {
        let mut rng = Rng(77);
        let n = DIRS * FILES_PER_DIR;
        let weights: Vec<usize> = (0..n).map(|_| 1 + rng.below(64)).collect();
        let total: usize = weights.iter().sum();
        let data = &TEXT[..TREE_BYTES];
        let mut at = 0;
        let mut items = vec![Item::Enter("gen".into())];
        for d in 0..DIRS {
            items.push(Item::Enter(format!("gen/d{d}")));
            for f in 0..FILES_PER_DIR {
                let k = d * FILES_PER_DIR + f;
                let len = if k + 1 == n {
                    TREE_BYTES - at
                } else {
                    TREE_BYTES * weights[k] / total
                };
                items.push(Item::File(
                    format!("gen/d{d}/f{f}.txt"),
                    &data[at..at + len],
                ));
                at += len;
            }
            items.push(Item::Leave);
        }
        items.push(Item::Leave);
        items
    }

    struct Content(Cursor<&'static [u8]>);

    impl FileData for Content {
        fn reader_at(&mut self, start: u64) -> std::io::Result<&mut dyn Read> {
            self.0.set_position(start);
            Ok(&mut self.0)
        }
        fn len(&self) -> u64 {
            self.0.get_ref().len() as u64
        }
    }

    struct Memory<'a> {
        items: &'a [Item],
        at: usize,
        data: Option<Content>,
    }

    fn entry(path: &str, kind: EntryType, payload: Payload) -> Entry {
        let t = Timestamp {
            sec: 1_700_000_000,
            nsec: 0,
        };
        Entry::new(path.rsplit('/').next().unwrap_or(path), kind, payload)
            .with_mode(if kind == EntryType::Dir { 0o755 } else { 0o644 })
            .with_owner(1000, "bench")
            .with_group(1000, "bench")
            .with_times(t, t, t)
            .with_source(0, 0, 1)
    }

    impl EntrySource for Memory<'_> {
        fn next(&mut self) -> ptar::Result<Option<SourceItem<'_>>> {
            let Some(item) = self.items.get(self.at) else {
                return Ok(None);
            };
            self.at += 1;
            Ok(Some(match item {
                Item::Enter(p) => SourceItem::EnterDir {
                    path: p.as_bytes().to_vec(),
                    entry: entry(p, EntryType::Dir, Payload::Dir(ptar::Id::ZERO)),
                },
                Item::Leave => SourceItem::LeaveDir,
                Item::File(p, body) => SourceItem::File {
                    path: p.as_bytes().to_vec(),
                    entry: entry(p, EntryType::File, Payload::None),
                    data: self.data.insert(Content(Cursor::new(body))),
                },
            }))
        }
    }

    /// How records are packed: the writer's defaults, or one change.
    #[derive(Clone, Copy)]
    enum Pack {
        /// zstd level 3, solid records, a compression thread per core.
        Default,
        /// LZ4 (`--fast`).
        Lz4,
        /// Compression on the caller's thread: steadier figures on a busy
        /// machine.
        OneThread,
    }

    impl fmt::Display for Pack {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Pack::Default => "default",
                Pack::Lz4 => "lz4",
                Pack::OneThread => "one_thread",
            })
        }
    }

    fn options(pack: Pack, encryption: Option<Encryption>) -> CreateOptions {
        let defaults = PackOptions::default();
        CreateOptions {
            encryption,
            entropy: Box::new(ptar::crypto::SeededEntropy::new(b"bench")),
            time_ns: Some(1_700_000_000_000_000_000),
            pack: match pack {
                Pack::Default => defaults,
                Pack::Lz4 => PackOptions {
                    compression: Compression::Lz4,
                    ..defaults
                },
                Pack::OneThread => PackOptions {
                    threads: 0,
                    ..defaults
                },
            },
            ..CreateOptions::default()
        }
    }

    /// The smallest Argon2id costs, so the timing is the pipeline's.
    fn encryption() -> Encryption {
        Encryption {
            passphrase: b"bench".to_vec().into(),
            kdf: KdfParams {
                m_kib: 8,
                t: 1,
                p: 1,
            },
        }
    }

    /// Adds the generated tree as one snapshot and commits.
    fn fill<W: Sink>(mut w: Writer<W>, items: &[Item]) -> u64 {
        let mut src = Memory {
            items,
            at: 0,
            data: None,
        };
        w.add_snapshot_from(
            &mut src,
            vec![b"gen".to_vec()],
            &SnapshotMeta::default(),
            &ptar::progress::NoProgress,
        )
        .expect("build");
        w.commit().expect("commit").archive_len
    }

    fn run(items: &[Item], opts: CreateOptions) -> u64 {
        let w = Writer::create_stream(Vec::with_capacity(TREE_BYTES), opts).expect("start");
        fill(w, items)
    }

    #[divan::bench(args = [Pack::Default, Pack::Lz4, Pack::OneThread])]
    fn plain(bencher: Bencher, pack: Pack) {
        let items = tree();
        bencher
            .counter(BytesCount::new(TREE_BYTES))
            .bench(|| run(&items, options(pack, None)));
    }

    #[divan::bench]
    fn encrypted(bencher: Bencher) {
        let items = tree();
        bencher
            .counter(BytesCount::new(TREE_BYTES))
            .bench(|| run(&items, options(Pack::Default, Some(encryption()))));
    }

    /// Takes every file's content and throws it away.
    struct Discard;

    impl EntrySink for Discard {
        fn enter_dir(&mut self, _: &[u8], _: &Entry) -> ptar::Result<Flow> {
            Ok(Flow::Take)
        }
        fn leave_dir(&mut self, _: &[u8], _: &Entry) -> ptar::Result<()> {
            Ok(())
        }
        fn file(
            &mut self,
            _: &[u8],
            _: &Entry,
            content: &mut FileContent<'_>,
        ) -> ptar::Result<Flow> {
            std::io::copy(content, &mut std::io::sink())?;
            Ok(Flow::Take)
        }
        fn other(&mut self, _: &[u8], _: &Entry) -> ptar::Result<Flow> {
            Ok(Flow::Take)
        }
    }

    /// The read side of `extract` without the file system: an archive of the
    /// generated tree (written once to a temporary file, then mapped) is
    /// exported to a sink that reads every file's content (records decoded,
    /// chunks checked against their ids).
    #[divan::bench(args = ["plain", "encrypted"])]
    fn export(bencher: Bencher, mode: &str) {
        let encrypted = mode == "encrypted";
        let items = tree();
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("bench.ptar");
        let enc = encrypted.then(encryption);
        let w = Writer::create(&path, options(Pack::Default, enc)).expect("start");
        fill(w, &items);
        let passphrase: Option<&[u8]> = encrypted.then_some(b"bench");
        let a = Archive::open(&path, passphrase).expect("open");
        bencher.counter(BytesCount::new(TREE_BYTES)).bench(|| {
            let snap = a.find_snapshot("latest").expect("a snapshot");
            let failed = a
                .export(&snap, &mut Discard, &ptar::progress::NoProgress)
                .expect("export");
            assert!(failed.is_empty(), "{failed:?}");
        });
    }
}
