//! A corruption matrix over generated three-generation archives, plain and
//! encrypted: sampled bit flips in every region, truncation at every
//! structural boundary (and one byte either side), swapped records, spliced
//! footers, records grafted from another archive, and a zeroed last 4 KiB.
//!
//! Every case must end in an error that names the damaged region (or the
//! problem), or in a clean rollback to the last good generation: it opens at
//! that generation, verifies with the rest reported as an interrupted
//! append, and every snapshot of it extracts byte for byte. No case may
//! panic, and no case may ever write a file whose content is wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ptar::codec::Compression;
use ptar::crypto::{Entropy, SeededEntropy};
use ptar::format::frame::FrameType;
use ptar::format::header::{FIXED_LEN, KEY_SLOT_LEN};
use ptar::fs::{ExtractOptions, Source};
use ptar::progress::NoProgress;
use ptar::store::writer::PackOptions;
use ptar::store::GenerationSpan;
use ptar::{
    Archive, ChunkerParams, CreateOptions, Encryption, Id, KdfParams, SnapshotMeta, VerifyOptions,
    Writer,
};
use ptar_tests::{random_bytes, read_tree, write_tree, Node, Tree};
use zeroize::Zeroizing;

const PASS: &[u8] = b"corruption matrix passphrase";
const FAST_KDF: KdfParams = KdfParams {
    m_kib: 256,
    t: 1,
    p: 1,
};
/// Small chunks, so that a few hundred KiB make many records: 3000-byte
/// files stay one chunk each, the large file becomes a file map.
const CHUNKER: ChunkerParams = ChunkerParams {
    min: 4096,
    avg: 8192,
    max: 32768,
};
const GENERATIONS: u32 = 3;
/// Words that name a region or a problem in an error message.
const NAMES_SOMETHING: &[&str] = &[
    "header",
    "key slot",
    "frame",
    "index",
    "snapshot run",
    "footer",
    "blob",
    "ptar archive",
    "generation",
];
/// What a damaged frame of a generation is reported as: the frame, the
/// blob or run read from it, or the generation whose hash no longer holds.
const NAMES_A_FRAME: &[&str] = &["frame", "blob", "index run", "snapshot run", "generation"];

/// A small deterministic generator for sampling offsets and bits.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One committed generation of a pristine archive.
struct GenInfo {
    span: GenerationSpan,
    /// Its blob records: (offset, stored length), by offset.
    records: Vec<(u64, u32)>,
    /// Its other frames: (what, offset, stored length).
    others: Vec<(&'static str, u64, u64)>,
}

/// A pristine archive and what each of its snapshots must extract to.
struct Built {
    bytes: Vec<u8>,
    pass: Option<&'static [u8]>,
    header_len: u64,
    slots_in_header: usize,
    gens: Vec<GenInfo>,
    /// Snapshot id -> the tree it was made from.
    expected: HashMap<Id, Tree>,
    /// Snapshot ids listed as of generation g (index g - 1).
    table_by_gen: Vec<Vec<Id>>,
}

impl Built {
    fn footer_end(&self, g: usize) -> u64 {
        self.gens[g - 1].span.end
    }
}

/// The source tree of one generation. `variant` changes every random byte
/// but no size and no name, so another archive built from another variant
/// has records of the same lengths at (in generation 1) the same offsets.
fn tree_for(variant: &str, gen: u32) -> Tree {
    let mut t = Tree::new();
    let dir = |t: &mut Tree, p: &str| {
        t.insert(p.as_bytes().to_vec(), Node::Dir { mode: 0o755 });
    };
    let file = |t: &mut Tree, p: &str, content: Vec<u8>| {
        t.insert(
            p.as_bytes().to_vec(),
            Node::File {
                mode: 0o644,
                content,
            },
        );
    };
    dir(&mut t, "tree");
    file(&mut t, "tree/empty", Vec::new());
    dir(&mut t, "tree/eq");
    for i in 0..8u32 {
        // Generation 2 rewrites files 0..4, generation 3 files 4..8; the
        // rest keep the previous generation's content (and deduplicate).
        let born = match (gen, i) {
            (1, _) => 1,
            (2, 0..=3) => 2,
            (2, _) => 1,
            (3, 0..=3) => 2,
            _ => 3,
        };
        file(
            &mut t,
            &format!("tree/eq/f{i:02}.bin"),
            random_bytes(format!("{variant}-eq-{born}-{i}").as_bytes(), 3000),
        );
    }
    t.insert(
        b"tree/link".to_vec(),
        Node::Symlink {
            target: b"text.txt".to_vec(),
        },
    );
    dir(&mut t, "tree/sub");
    dir(&mut t, "tree/sub/deeper");
    file(
        &mut t,
        "tree/sub/deeper/note.txt",
        format!("a note written for generation {gen}\n").into_bytes(),
    );
    let text: String = (0..800)
        .map(|i| format!("line {i} of the text of generation {gen}\n"))
        .collect();
    file(&mut t, "tree/text.txt", text.into_bytes());
    let mut big = random_bytes(format!("{variant}-big").as_bytes(), 400_000);
    if gen >= 2 {
        big[100_000..110_000]
            .copy_from_slice(&random_bytes(format!("{variant}-big-2").as_bytes(), 10_000));
    }
    if gen >= 3 {
        big.extend(random_bytes(format!("{variant}-big-3").as_bytes(), 50_000));
        file(
            &mut t,
            "tree/sub/new-in-3.bin",
            random_bytes(format!("{variant}-new-3").as_bytes(), 20_000),
        );
    }
    file(&mut t, "tree/zz-big.bin", big);
    t
}

fn pack_for(gen: u32) -> PackOptions {
    match gen {
        // One record per blob, zstd.
        1 => PackOptions {
            compression: Compression::Zstd(3),
            record_target: 1,
            threads: 0,
        },
        // Small solid records, LZ4.
        2 => PackOptions {
            compression: Compression::Lz4,
            record_target: 8192,
            threads: 2,
        },
        // One record per blob, stored.
        _ => PackOptions {
            compression: Compression::None,
            record_target: 0,
            threads: 0,
        },
    }
}

fn build(dir: &Path, variant: &str, encrypted: bool) -> Built {
    let archive = dir.join(format!("{variant}.ptar"));
    let pass: Option<&'static [u8]> = encrypted.then_some(PASS);
    let mut expected = HashMap::new();
    for gen in 1..=GENERATIONS {
        let base = dir.join(format!("{variant}-src{gen}"));
        let tree = tree_for(variant, gen);
        write_tree(&base, &tree, &BTreeMap::new());
        let entropy: Box<dyn Entropy> = Box::new(SeededEntropy::new(
            format!("corruption {variant} {encrypted} {gen}").as_bytes(),
        ));
        let time = Some(1_800_000_000_000_000_000 + i64::from(gen));
        let mut w = if gen == 1 {
            Writer::create(
                &archive,
                CreateOptions {
                    encryption: encrypted.then(|| Encryption {
                        passphrase: Zeroizing::new(PASS.to_vec()),
                        kdf: FAST_KDF,
                    }),
                    chunker: CHUNKER,
                    entropy,
                    time_ns: time,
                    pack: pack_for(gen),
                },
            )
            .unwrap()
        } else {
            let mut w = Writer::append_with(&archive, pass, entropy, time).unwrap();
            w.set_pack_options(pack_for(gen)).unwrap();
            w
        };
        if encrypted && gen == 2 {
            // A key-slot table (the same passphrase, wrapped anew), so that
            // the matrix covers that region too.
            let slot = w.new_key_slot(PASS, FAST_KDF).unwrap();
            w.set_key_slots(vec![slot]).unwrap();
        }
        let src = Source {
            dir: base,
            path: PathBuf::from("tree"),
        };
        let (id, out) = w
            .add_snapshot(&[src], &SnapshotMeta::default(), &NoProgress)
            .unwrap();
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        w.commit().unwrap();
        expected.insert(id, tree);
    }
    let bytes = std::fs::read(&archive).unwrap();
    let a = Archive::from_vec(bytes.clone(), pass).unwrap();
    let s = a.store();
    let mut gens = Vec::new();
    for span in s.generation_spans().unwrap() {
        let mut records = Vec::new();
        let mut others = Vec::new();
        for (offset, len, what) in s.frames(&span).unwrap() {
            match what {
                Some(FrameType::BlobRecord) => records.push((offset, len as u32)),
                Some(FrameType::IndexPage) => others.push(("index page", offset, len)),
                Some(FrameType::IndexDirectory) => others.push(("index directory", offset, len)),
                Some(FrameType::SnapshotPage) => others.push(("snapshot page", offset, len)),
                Some(FrameType::SnapshotDirectory) => {
                    others.push(("snapshot directory", offset, len))
                }
                Some(FrameType::Manifest) => panic!("a manifest before the footer"),
                None => others.push(("key-slot table", offset, len)),
            }
        }
        gens.push(GenInfo {
            span,
            records,
            others,
        });
    }
    assert_eq!(gens.len(), GENERATIONS as usize);
    let snaps = a.snapshots().unwrap();
    let table_by_gen = (1..=GENERATIONS as u64)
        .map(|g| {
            snaps
                .iter()
                .filter(|s| s.generation <= g)
                .map(|s| s.id)
                .collect()
        })
        .collect();
    let report = a.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
    assert!(report.ok(), "pristine archive: {:?}", report.problems);
    Built {
        bytes,
        pass,
        header_len: s.header_len(),
        slots_in_header: s.header().key_slots.len(),
        gens,
        expected,
        table_by_gen,
    }
}

/// What a case must end in.
enum Expect {
    /// An error (opening, or a problem verification reports) whose message
    /// contains one of these words.
    Error(Vec<&'static str>),
    /// A rollback to this generation, with this many tail bytes reported as
    /// an interrupted append (0: the cut fell exactly on a footer's end).
    Recover { gen: u64, tail: u64 },
}

/// What a case ended in.
enum Outcome {
    Error(String),
    Recovered {
        gen: u64,
        tail: Option<(u64, bool)>,
        listed: Vec<Id>,
    },
    /// Opened at full length, verified and extracted as if nothing happened.
    Undetected,
    /// Verification passed but extraction failed: a gap in `--verify --full`.
    VerifyMissed(String),
}

struct Eval {
    outcome: Outcome,
    /// Files or links written with content other than the source's.
    wrong: Vec<String>,
}

fn extract_options() -> ExtractOptions {
    ExtractOptions {
        // Exact modes whatever the umask, so trees compare whole.
        preserve_permissions: true,
        ..ExtractOptions::default()
    }
}

/// Opens `bytes`, verifies fully, extracts every snapshot listed and checks
/// what was written. Every other case opens the bytes as a caller's
/// positional source instead of a buffer, so that both ways of reading meet
/// every kind of damage.
fn evaluate(bytes: Vec<u8>, built: &Built, scratch: &Path) -> Eval {
    static CASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let full_gens = built.gens.len() as u64;
    let opened = if CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2 == 0 {
        Archive::from_vec(bytes, built.pass)
    } else {
        Archive::from_reader(bytes, built.pass)
    };
    let a = match opened {
        Err(e) => {
            return Eval {
                outcome: Outcome::Error(e.to_string()),
                wrong: Vec::new(),
            }
        }
        Ok(a) => a,
    };
    let report = a.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
    let gens = a.store().generation_count();
    let mut failures = Vec::new();
    let mut wrong = Vec::new();
    let mut listed = Vec::new();
    let mut table: Vec<Id> = Vec::new();
    for t in a.store().snapshot_list().iter() {
        match t {
            Ok(t) => table.push(t.id),
            Err(e) => {
                failures.push(format!("listing the snapshots: {e}"));
                break;
            }
        }
    }
    for (n, id) in table.iter().enumerate() {
        listed.push(*id);
        let s = match a.find_snapshot(&id.to_hex()) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("reading snapshot {}: {e}", id.short()));
                continue;
            }
        };
        let s = &s;
        let Some(want) = built.expected.get(&s.id) else {
            wrong.push(format!("unknown snapshot {} listed", s.id.short()));
            continue;
        };
        let dest = scratch.join(format!("x{n}"));
        let res = a.extract(s, &dest, &extract_options(), &NoProgress);
        let clean = match &res {
            Ok(o) if o.errors.is_empty() => true,
            Ok(o) => {
                failures.push(format!(
                    "extracting {}: {}: {}",
                    s.id.short(),
                    String::from_utf8_lossy(&o.errors[0].0),
                    o.errors[0].1
                ));
                false
            }
            Err(e) => {
                failures.push(format!("extracting {}: {e}", s.id.short()));
                false
            }
        };
        if dest.exists() {
            let (got, _) = read_tree(&dest);
            if clean {
                if got != *want {
                    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
                    let differ = got.iter().filter(|(k, v)| want.get(*k) != Some(v)).count();
                    wrong.push(format!(
                                "snapshot {} extracted without error but differs: {missing} missing, {differ} different",
                                s.id.short()
                            ));
                }
            } else {
                // A failed extraction may stop anywhere, but what it
                // did write must be right.
                for (k, v) in &got {
                    let ok = match (v, want.get(k)) {
                        (Node::File { content: c, .. }, Some(Node::File { content: w, .. })) => {
                            c == w
                        }
                        (Node::File { .. }, _) => false,
                        (Node::Symlink { target: t }, Some(Node::Symlink { target: w })) => t == w,
                        (Node::Symlink { .. }, _) => false,
                        (Node::Dir { .. }, _) => true,
                    };
                    if !ok {
                        wrong.push(format!(
                            "snapshot {}: {} written wrong after a failed extraction",
                            s.id.short(),
                            String::from_utf8_lossy(k)
                        ));
                    }
                }
            }
            std::fs::remove_dir_all(&dest).unwrap();
        }
    }
    let outcome = if !report.ok() {
        Outcome::Error(
            report
                .problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else if !failures.is_empty() {
        Outcome::VerifyMissed(failures.join("; "))
    } else if gens < full_gens {
        Outcome::Recovered {
            gen: gens,
            tail: report.tail.as_ref().map(|t| (t.len, t.damaged)),
            listed,
        }
    } else {
        Outcome::Undetected
    };
    Eval { outcome, wrong }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

#[derive(Default)]
struct Tally {
    cases: usize,
    errors: usize,
    recovered: usize,
    panics: usize,
    wrong_content: usize,
    /// Cases that ended otherwise than expected (with the reason).
    unexpected: Vec<String>,
    rows: Vec<String>,
    per_kind: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn run(
        &mut self,
        built: &Built,
        scratch: &Path,
        kind: &'static str,
        region: String,
        bytes: Vec<u8>,
        expect: Expect,
    ) {
        self.cases += 1;
        *self.per_kind.entry(kind).or_default() += 1;
        let caught = catch_unwind(AssertUnwindSafe(|| evaluate(bytes, built, scratch)));
        // A panic may leave extraction directories behind.
        if let Ok(rd) = std::fs::read_dir(scratch) {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let mut fail: Option<String> = None;
        let shown = match caught {
            Err(p) => {
                self.panics += 1;
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                fail = Some(format!("PANIC: {msg}"));
                format!("PANIC: {}", short(&msg))
            }
            Ok(eval) => {
                if !eval.wrong.is_empty() {
                    self.wrong_content += 1;
                    fail = Some(format!("WRONG CONTENT: {}", eval.wrong.join("; ")));
                }
                match eval.outcome {
                    Outcome::Error(msg) => {
                        self.errors += 1;
                        let why = match &expect {
                            _ if msg.trim().is_empty() => Some("empty error message".to_string()),
                            Expect::Error(words) => (!words.iter().any(|w| msg.contains(w)))
                                .then(|| format!("error does not name any of {words:?}: {msg}")),
                            Expect::Recover { gen, .. } => Some(format!(
                                "expected a rollback to generation {gen}, got: {msg}"
                            )),
                        };
                        if fail.is_none() {
                            fail = why;
                        }
                        format!("error: {}", short(&msg))
                    }
                    Outcome::Recovered { gen, tail, listed } => {
                        self.recovered += 1;
                        let why = match &expect {
                            Expect::Error(_) => Some(format!(
                                "expected an error, the archive opened at generation {gen} and verified"
                            )),
                            Expect::Recover { gen: want, tail: want_tail } => {
                                let tail_ok = match tail {
                                    None => *want_tail == 0,
                                    Some((len, damaged)) => !damaged && len == *want_tail,
                                };
                                if gen != *want {
                                    Some(format!("rolled back to generation {gen}, expected {want}"))
                                } else if !tail_ok {
                                    Some(format!(
                                        "tail reported as {tail:?}, expected {want_tail} bytes of an interrupted append"
                                    ))
                                } else if listed != built.table_by_gen[gen as usize - 1] {
                                    Some(format!("generation {gen} lists other snapshots"))
                                } else {
                                    None
                                }
                            }
                        };
                        if fail.is_none() {
                            fail = why;
                        }
                        match tail {
                            Some((len, _)) => {
                                format!("recovered to gen {gen} (tail of {len} bytes ignored)")
                            }
                            None => format!("recovered to gen {gen} (cut at its footer's end)"),
                        }
                    }
                    Outcome::Undetected => {
                        if fail.is_none() {
                            fail = Some("the damage went unnoticed".into());
                        }
                        "UNDETECTED".to_string()
                    }
                    Outcome::VerifyMissed(msg) => {
                        if fail.is_none() {
                            fail =
                                Some(format!("verify --full passed but extraction failed: {msg}"));
                        }
                        format!("VERIFY MISSED: {}", short(&msg))
                    }
                }
            }
        };
        let mark = if fail.is_some() { "FAIL" } else { "ok" };
        self.rows
            .push(format!("{kind:<10} {region:<52} {shown:<80} {mark}"));
        if let Some(f) = fail {
            self.unexpected.push(format!("{kind} {region}: {f}"));
        }
    }
}

/// The named regions of a pristine archive: (label, the words one of
/// which its errors must contain, start, end).
fn regions(b: &Built) -> Vec<(String, &'static [&'static str], u64, u64)> {
    const HEADER: &[&str] = &["header"];
    const KEYS: &[&str] = &["key slot"];
    const FOOTER: &[&str] = &["footer"];
    let h = b.header_len;
    let slots_end = (FIXED_LEN - 32 + KEY_SLOT_LEN * b.slots_in_header) as u64;
    let mut r = vec![(
        "header (fixed fields)".to_string(),
        HEADER,
        0,
        (FIXED_LEN - 32) as u64,
    )];
    if b.slots_in_header > 0 {
        r.push((
            "header key slots".into(),
            HEADER,
            (FIXED_LEN - 32) as u64,
            slots_end,
        ));
    }
    r.push(("header checksum".into(), HEADER, slots_end, h));
    for g in &b.gens {
        let n = g.span.generation;
        for (i, (off, len)) in g.records.iter().enumerate() {
            r.push((
                format!("gen {n} record {i} @{off}+{len}"),
                NAMES_A_FRAME,
                *off,
                off + u64::from(*len),
            ));
        }
        for (what, off, len) in &g.others {
            let words = if *what == "key-slot table" {
                KEYS
            } else {
                NAMES_A_FRAME
            };
            r.push((format!("gen {n} {what} @{off}"), words, *off, off + len));
        }
        r.push((
            format!("gen {n} footer"),
            FOOTER,
            g.span.manifest,
            g.span.end,
        ));
    }
    r.sort_by_key(|x| x.2);
    r
}

/// (a) Single-bit flips at sampled offsets of every region (the first and
/// last byte of each, and random ones; only a few records per packfile).
fn flips(b: &Built, scratch: &Path, t: &mut Tally, rng: &mut Rng) {
    let regs = regions(b);
    // Records tile the packfiles, so the regions tile the file.
    let covered: u64 = regs.iter().map(|r| r.3 - r.2).sum();
    assert_eq!(covered, b.bytes.len() as u64, "regions tile the file");
    for g in &b.gens {
        let n = g.span.generation;
        let prefix = format!("gen {n} record ");
        let recs: Vec<_> = regs.iter().filter(|r| r.0.starts_with(&prefix)).collect();
        // First, last and two random records of each packfile.
        let mut pick: BTreeSet<usize> = [0, recs.len() - 1].into_iter().collect();
        for _ in 0..2 {
            pick.insert(rng.below(recs.len() as u64) as usize);
        }
        for i in pick {
            let (label, words, start, end) = recs[i];
            let off = start + rng.below(end - start);
            let bit = rng.below(8);
            let mut bytes = b.bytes.clone();
            bytes[off as usize] ^= 1 << bit;
            t.run(
                b,
                scratch,
                "flip",
                format!("{label} byte {off} bit {bit}"),
                bytes,
                Expect::Error(words.to_vec()),
            );
        }
    }
    for (label, words, start, end) in regs.iter().filter(|r| !r.0.contains(" record ")) {
        let mut offs: BTreeSet<u64> = [*start, end - 1].into_iter().collect();
        let extra = if label.ends_with("footer") { 6 } else { 4 };
        for _ in 0..extra {
            offs.insert(start + rng.below(end - start));
        }
        for off in offs {
            let bit = rng.below(8);
            let mut bytes = b.bytes.clone();
            bytes[off as usize] ^= 1 << bit;
            t.run(
                b,
                scratch,
                "flip",
                format!("{label} byte {off} bit {bit}"),
                bytes,
                Expect::Error(words.to_vec()),
            );
        }
    }
}

/// (b) Truncation at every structural boundary, and one byte either side.
fn truncations(b: &Built, scratch: &Path, t: &mut Tally) {
    let len = b.bytes.len() as u64;
    let mut points: BTreeMap<u64, String> = BTreeMap::new();
    let mut mark = |at: u64, what: String| {
        for (d, s) in [(-1i64, "-1"), (0, ""), (1, "+1")] {
            let p = at as i64 + d;
            if p >= 0 && (p as u64) < len {
                points
                    .entry(p as u64)
                    .or_insert_with(|| format!("{what}{s}"));
            }
        }
    };
    mark(0, "empty file".into());
    mark(16, "header prefix end".into());
    mark(b.header_len, "header end".into());
    for g in &b.gens {
        let s = &g.span;
        let n = s.generation;
        mark(s.start, format!("gen {n} start"));
        let (o, l) = g.records[0];
        mark(o + 2, format!("gen {n} first record's length"));
        mark(o + u64::from(l), format!("gen {n} first record end"));
        for (what, off, len) in &g.others {
            mark(*off, format!("gen {n} {what} start"));
            mark(off + len / 2, format!("gen {n} {what} middle"));
        }
        mark(s.manifest, format!("gen {n} manifest start"));
        let trailer = s.end - 184;
        mark(trailer, format!("gen {n} trailer start"));
        mark(trailer + 92, format!("gen {n} trailer middle"));
        mark(s.end - 8, format!("gen {n} trailer end magic"));
        mark(s.end, format!("gen {n} footer end"));
    }
    for (cut, what) in points {
        // The last generation whose footer ends at or before the cut.
        let k = (1..=b.gens.len()).rev().find(|&g| b.footer_end(g) <= cut);
        let expect = match k {
            None => Expect::Error(NAMES_SOMETHING.to_vec()),
            Some(k) => Expect::Recover {
                gen: k as u64,
                tail: cut - b.footer_end(k),
            },
        };
        t.run(
            b,
            scratch,
            "truncate",
            format!("at {cut} ({what})"),
            b.bytes[..cut as usize].to_vec(),
            expect,
        );
    }
}

/// (c) Two records of equal stored length swapped within a packfile.
fn swaps(b: &Built, scratch: &Path, t: &mut Tally) -> usize {
    let mut done = 0;
    for g in &b.gens {
        let mut by_len: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (o, l) in &g.records {
            by_len.entry(*l).or_default().push(*o);
        }
        // Neighbours and far-apart records of the same length.
        let mut pairs: Vec<(u64, u64, u32)> = Vec::new();
        for (l, offs) in by_len.iter().filter(|(_, offs)| offs.len() >= 2) {
            pairs.push((offs[0], offs[1], *l));
            if offs.len() >= 4 {
                pairs.push((offs[2], offs[offs.len() - 1], *l));
            }
        }
        pairs.truncate(4);
        for (x, y, l) in pairs {
            let (x, y, l) = (x as usize, y as usize, l as usize);
            let mut bytes = b.bytes.clone();
            if bytes[x..x + l] == bytes[y..y + l] {
                continue;
            }
            let a = bytes[x..x + l].to_vec();
            bytes.copy_within(y..y + l, x);
            bytes[y..y + l].copy_from_slice(&a);
            done += 1;
            t.run(
                b,
                scratch,
                "swap",
                format!(
                    "gen {} records @{x} <-> @{y} ({l} bytes)",
                    g.span.generation
                ),
                bytes,
                Expect::Error(NAMES_A_FRAME.to_vec()),
            );
        }
    }
    done
}

/// (d) An older footer spliced onto the end, or put in the last footer's place.
fn splices(b: &Built, scratch: &Path, t: &mut Tally) {
    let n = b.gens.len();
    let footer = |g: usize| {
        let s = &b.gens[g - 1].span;
        b.bytes[s.manifest as usize..s.end as usize].to_vec()
    };
    let last_off = b.gens[n - 1].span.manifest as usize;
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for g in (1..n).rev() {
        let mut appended = b.bytes.clone();
        appended.extend_from_slice(&footer(g));
        cases.push((format!("gen {g} footer appended at the end"), appended));
        let mut replaced = b.bytes[..last_off].to_vec();
        replaced.extend_from_slice(&footer(g));
        cases.push((format!("gen {g} footer replaces gen {n}'s"), replaced));
    }
    let mut doubled = b.bytes.clone();
    doubled.extend_from_slice(&footer(n));
    cases.push((format!("gen {n} footer appended twice"), doubled));
    for (what, bytes) in cases {
        t.run(
            b,
            scratch,
            "splice",
            what,
            bytes,
            Expect::Error(vec!["footer"]),
        );
    }
}

/// (e) Records of another archive (same passphrase, or also plain) grafted
/// over records of the same length, at the same offset where the layouts
/// agree.
fn grafts(b: &Built, other: &Built, scratch: &Path, t: &mut Tally, rng: &mut Rng) -> usize {
    let theirs: HashMap<u64, u32> = other
        .gens
        .iter()
        .flat_map(|g| g.records.iter().copied())
        .collect();
    let mut done = 0;
    for g in &b.gens {
        let n = g.span.generation;
        let differs = |o: u64, from: u64, l: u32| {
            let (o, from, l) = (o as usize, from as usize, l as usize);
            b.bytes[o..o + l] != other.bytes[from..from + l]
        };
        let mut same_place: Vec<(u64, u64, u32)> = g
            .records
            .iter()
            .filter(|(o, l)| theirs.get(o) == Some(l) && differs(*o, *o, *l))
            .map(|(o, l)| (*o, *o, *l))
            .collect();
        let mut picks: Vec<(u64, u64, u32)> = Vec::new();
        while picks.len() < 3 && !same_place.is_empty() {
            let i = rng.below(same_place.len() as u64) as usize;
            picks.push(same_place.swap_remove(i));
        }
        if picks.is_empty() {
            // No record lies at the same place: take one of the same length
            // from anywhere in the other archive.
            'find: for (o, l) in &g.records {
                for og in &other.gens {
                    for (from, ol) in &og.records {
                        if ol == l && differs(*o, *from, *l) {
                            picks.push((*o, *from, *l));
                            break 'find;
                        }
                    }
                }
            }
        }
        for (o, from, l) in picks {
            let (ou, fu, lu) = (o as usize, from as usize, l as usize);
            let mut bytes = b.bytes.clone();
            bytes[ou..ou + lu].copy_from_slice(&other.bytes[fu..fu + lu]);
            done += 1;
            let place = if o == from {
                "same offset".to_string()
            } else {
                format!("from @{from}")
            };
            t.run(
                b,
                scratch,
                "graft",
                format!("gen {n} record @{o}+{l} ({place})"),
                bytes,
                Expect::Error(NAMES_A_FRAME.to_vec()),
            );
        }
    }
    done
}

/// (f) The last 4 KiB zeroed, of the whole archive and of its first two
/// generations.
fn zeroed_tail(b: &Built, scratch: &Path, t: &mut Tally) {
    for upto in (2..=b.gens.len()).rev() {
        let end = b.footer_end(upto) as usize;
        let mut bytes = b.bytes[..end].to_vec();
        let from = end - 4096;
        bytes[from..].fill(0);
        // Zeros are not shaped like a footer: the reader sees an append that
        // never finished, and rolls back past every footer they cover.
        let k = (1..upto).rev().find(|&g| b.footer_end(g) <= from as u64);
        let expect = match k {
            Some(k) => Expect::Recover {
                gen: k as u64,
                tail: end as u64 - b.footer_end(k),
            },
            None => Expect::Error(NAMES_SOMETHING.to_vec()),
        };
        t.run(
            b,
            scratch,
            "zero-4k",
            format!("last 4096 bytes of gens 1..={upto} zeroed"),
            bytes,
            expect,
        );
    }
}

fn matrix(encrypted: bool) {
    let started = std::time::Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let main = build(tmp.path(), "main", encrypted);
    let other = build(tmp.path(), "other", encrypted);
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut rng = Rng(if encrypted { 0xe11c } else { 0x91a1 });
    let mut t = Tally::default();
    flips(&main, &scratch, &mut t, &mut rng);
    truncations(&main, &scratch, &mut t);
    let swapped = swaps(&main, &scratch, &mut t);
    splices(&main, &scratch, &mut t);
    let grafted = grafts(&main, &other, &scratch, &mut t, &mut rng);
    zeroed_tail(&main, &scratch, &mut t);

    let kind = if encrypted { "encrypted" } else { "plain" };
    println!(
        "corruption matrix, {kind} archive of {} bytes, {} generations:",
        main.bytes.len(),
        main.gens.len()
    );
    println!("{:<10} {:<52} {:<80} result", "case", "region", "outcome");
    for row in &t.rows {
        println!("{row}");
    }
    println!(
        "{kind}: {} cases ({:?}): {} errors, {} rollbacks, {} panics, {} with wrong content, {} unexpected; {:.1} s",
        t.cases,
        t.per_kind,
        t.errors,
        t.recovered,
        t.panics,
        t.wrong_content,
        t.unexpected.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(swapped >= 4, "only {swapped} record swaps were possible");
    assert!(grafted >= 3, "only {grafted} records were grafted");
    assert!(t.recovered >= 10, "only {} rollbacks", t.recovered);
    assert_eq!(t.panics, 0, "panics: {:#?}", t.unexpected);
    assert_eq!(t.wrong_content, 0, "wrong content: {:#?}", t.unexpected);
    assert!(
        t.unexpected.is_empty(),
        "{} of {} cases ended unexpectedly:\n{}",
        t.unexpected.len(),
        t.cases,
        t.unexpected.join("\n")
    );
}

#[test]
fn corruption_matrix_plain() {
    matrix(false);
}

#[test]
fn corruption_matrix_encrypted() {
    matrix(true);
}
