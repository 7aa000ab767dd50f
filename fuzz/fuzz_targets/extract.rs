//! Extraction of hostile archives into a temporary directory: afterwards
//! nothing may exist beside the destination.
//!
//! Input: one mode byte, then either an archive (mode bit 0 clear; bit 1
//! repairs its checksums first) or (bit 0 set) an `arbitrary` description
//! of hostile trees — names such as `..` or `a/b`, symlinks and hard links
//! pointing out of the destination (relative, absolute, through other
//! links), duplicate and unsorted names, files and fifos under names taken
//! by links — forged into a valid archive with one or two snapshots, which
//! are extracted one after the other into the same destination.
#![no_main]

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ptar::crypto::SeededEntropy;
use ptar::format::header::{ChunkerParams, Header};
use ptar::format::snapshot::SnapshotRecord;
use ptar::format::tree::{Content, Entry, EntryType, Extent, Payload, TreePage};
use ptar::format::{Id, Kind, FORMAT_MAJOR, FORMAT_MINOR};
use ptar::fs::{Existing, ExtractOptions};
use ptar::progress::NoProgress;
use ptar::store::writer::ArchiveContext;
use ptar::store::GenerationWriter;
use ptar::Archive;

const NAMES: &[&[u8]] = &[
    b"a", b"b", b"dest", b"outside", b"..", b".", b"a/b", b"x", b"sub", b"...",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Pick(u8),
    Raw(Vec<u8>),
}

impl Name {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Pick(i) => NAMES[*i as usize % NAMES.len()].to_vec(),
            Name::Raw(b) => b.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Target {
    /// `<tmp>/outside`, absolute.
    AbsOutside,
    /// The temporary directory itself, absolute.
    AbsTmp,
    Pick(u8),
    Raw(Vec<u8>),
}

const TARGETS: &[&[u8]] = &[
    b"..",
    b"../..",
    b"../outside",
    b"a/../../outside",
    b"sub/../..",
    b"a",
    b"a/b",
    b".",
    b"/",
    b"x/../../outside",
    b"../dest/a",
    b"b/..",
];

impl Target {
    fn bytes(&self, tmp: &Path) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        match self {
            Target::AbsOutside => tmp.join("outside").as_os_str().as_bytes().to_vec(),
            Target::AbsTmp => tmp.as_os_str().as_bytes().to_vec(),
            Target::Pick(i) => TARGETS[*i as usize % TARGETS.len()].to_vec(),
            Target::Raw(b) => b.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Node {
    File(Vec<u8>),
    Dir(Vec<(Name, Node)>),
    Symlink(Target),
    Hardlink(Target),
    Fifo,
}

#[derive(Arbitrary, Debug)]
struct Plan {
    snapshots: Vec<(bool, Vec<(Name, Node)>)>,
    keep_old: bool,
    strip: u8,
    preserve_permissions: bool,
}

struct Forge<'a> {
    w: GenerationWriter<Vec<u8>>,
    tmp: &'a Path,
    budget: usize,
}

impl Forge<'_> {
    /// Stores a directory page of `kids`; `sorted` sorts and deduplicates
    /// names (the parser refuses pages that are not).
    fn dir(&mut self, kids: &[(Name, Node)], sorted: bool, depth: usize) -> Option<Id> {
        let mut entries = Vec::new();
        for (name, node) in kids {
            if self.budget == 0 {
                break;
            }
            self.budget -= 1;
            let name = name.bytes();
            let e = match node {
                Node::File(body) => {
                    let mut e =
                        ptar_fuzz::plain_entry(&name, EntryType::File, Payload::None, 0o644);
                    let mut extents = Vec::new();
                    if !body.is_empty() {
                        let id = self.w.put_blob(Kind::Chunk, body).ok()?;
                        extents.push(Extent::Data {
                            len: body.len() as u32,
                            id,
                        });
                    }
                    e.size = body.len() as u64;
                    e.payload = Payload::File(Content::Inline(extents));
                    e
                }
                Node::Dir(sub) => {
                    let id = if depth < 6 {
                        self.dir(sub, sorted, depth + 1)?
                    } else {
                        self.dir(&[], sorted, depth + 1)?
                    };
                    ptar_fuzz::plain_entry(&name, EntryType::Dir, Payload::Dir(id), 0o755)
                }
                Node::Symlink(t) => ptar_fuzz::plain_entry(
                    &name,
                    EntryType::Symlink,
                    Payload::Symlink(t.bytes(self.tmp)),
                    0o777,
                ),
                Node::Hardlink(t) => ptar_fuzz::plain_entry(
                    &name,
                    EntryType::Hardlink,
                    Payload::Hardlink(t.bytes(self.tmp)),
                    0o644,
                ),
                Node::Fifo => ptar_fuzz::plain_entry(&name, EntryType::Fifo, Payload::None, 0o644),
            };
            entries.push(e);
        }
        if sorted {
            entries.sort_by(|a: &Entry, b: &Entry| a.name.cmp(&b.name));
            entries.dedup_by(|a, b| a.name == b.name);
        }
        self.w
            .put_blob(Kind::Tree, &TreePage::Leaf(entries).to_bytes())
            .ok()
    }
}

fn forge(plan: &Plan, tmp: &Path) -> Option<Vec<u8>> {
    let h = Header {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
        flags: 0,
        uuid: [7; 16],
        chunker: ChunkerParams::DEFAULT,
        default_codec: 0,
        created: 0,
        key_check: [0; 32],
        key_slots: Vec::new(),
    };
    let hb = h.to_bytes();
    let ctx = ArchiveContext {
        uuid: h.uuid,
        header_minor: h.minor,
        header_hash: *blake3::hash(&hb).as_bytes(),
        keys: None,
        existing: None,
    };
    let w = GenerationWriter::new(
        hb.clone(),
        hb.len() as u64,
        ctx,
        Box::new(SeededEntropy::new(b"fuzz")),
    );
    let mut f = Forge {
        w,
        tmp,
        budget: 200,
    };
    let mut added = Vec::new();
    for (i, (sorted, kids)) in plan.snapshots.iter().take(2).enumerate() {
        let root = f.dir(kids, *sorted, 0)?;
        let mut rec = SnapshotRecord {
            root,
            name: format!("s{i}"),
            ..SnapshotRecord::default()
        };
        rec.summary.total_size = 1 << 20;
        rec.summary.files = 1 << 12;
        let id = f.w.put_blob(Kind::Snapshot, &rec.to_bytes()).ok()?;
        added.push(id);
    }
    let (bytes, _) = f.w.finish(&added, None, None, 0).ok()?;
    Some(bytes)
}

/// Fails when anything but `dest` exists in `tmp`.
fn assert_contained(tmp: &Path) {
    let names: Vec<_> = std::fs::read_dir(tmp)
        .expect("reading the temporary directory")
        .map(|e| e.expect("directory entry").file_name())
        .collect();
    assert!(
        names.iter().all(|n| n == "dest"),
        "extraction created {names:?} beside the destination"
    );
}

fn extract_all(bytes: Vec<u8>, pass: Option<&[u8]>, opts: &ExtractOptions, dest: &Path) {
    let Ok(a) = Archive::from_vec(bytes, pass) else {
        return;
    };
    let Ok(snaps) = a.snapshots() else {
        return;
    };
    for s in snaps.iter().take(2) {
        let _ = a.extract(s, dest, opts, &NoProgress);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let dest = tmp.path().join("dest");
    let mut opts = ExtractOptions {
        // One thread (the fuzzer gets one core), and never device nodes.
        threads: 1,
        devices: false,
        same_owner: false,
        max_bytes: Some(16 << 20),
        max_entries: Some(10_000),
        ..ExtractOptions::default()
    };
    if mode & 1 == 0 {
        let mut bytes = rest.to_vec();
        let keys = ptar_fuzz::keys_for(&bytes);
        if mode & 2 != 0 {
            ptar_fuzz::fix_archive(&mut bytes, keys.as_deref());
        }
        opts.strip_components = usize::from(mode >> 6);
        let pass = ptar_fuzz::kdf_is_cheap(&bytes).then_some(ptar_fuzz::PASSPHRASE);
        extract_all(bytes, pass, &opts, &dest);
    } else {
        let Ok(plan) = Plan::arbitrary(&mut Unstructured::new(rest)) else {
            return;
        };
        opts.strip_components = usize::from(plan.strip % 3);
        opts.preserve_permissions = plan.preserve_permissions;
        if plan.keep_old {
            opts.existing = Existing::KeepOld;
        }
        let Some(bytes) = forge(&plan, tmp.path()) else {
            return;
        };
        extract_all(bytes, None, &opts, &dest);
    }
    assert_contained(tmp.path());
});
