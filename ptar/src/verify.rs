//! Checking an archive (spec §16).
//!
//! The fast check reads only structure: header, footer chain, footer tags
//! and signatures, index layout and hashes, snapshot tables, key-slot tables.
//! The full check also hashes every packfile, decodes every record,
//! recomputes every blob id, and walks every snapshot's trees.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::VerifyingKey;

use crate::archive::Archive;
use crate::format::footer::FLAG_SIGNED;
use crate::format::header::keyslots_parse;
use crate::format::index::IndexEntry;
use crate::format::tree::{Content, Extent, Payload};
use crate::format::{Id, Kind};
use crate::store::{Generation, Store, Tail};
use crate::walk::{check_depth, Step, Visit, Walker};
use crate::{crypto, Error, Region, Result};

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Decode every record and walk every snapshot.
    pub full: bool,
    /// Require the newest footer to be signed by this key.
    pub trusted_key: Option<VerifyingKey>,
}

/// What a check found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Committed generations.
    pub generations: u64,
    /// Snapshots in the newest table.
    pub snapshots: usize,
    /// Blobs whose id was recomputed (full check).
    pub blobs_checked: u64,
    /// Record bytes read (full check).
    pub bytes_checked: u64,
    /// Public key that signed the newest footer, if signed.
    pub signed_by: Option<[u8; 32]>,
    /// Bytes after the last valid footer.
    pub tail: Option<Tail>,
    /// Every problem found.
    pub problems: Vec<Error>,
    /// Files and directories of the snapshots that cannot be read back whole
    /// because of those problems (full check), at most [`MAX_DAMAGED`].
    pub damaged: Vec<DamagedPath>,
}

/// A path of a snapshot whose content or listing is damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DamagedPath {
    /// The snapshot.
    pub snapshot: Id,
    /// The path inside it.
    pub path: Vec<u8>,
    /// What is wrong with it.
    pub problem: String,
}

/// Damaged paths listed at most.
pub const MAX_DAMAGED: usize = 10_000;

impl VerifyReport {
    /// True when nothing is wrong (an interrupted append's tail is not wrong).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const MAX_PROBLEMS: usize = 1000;

/// What checking some records found.
#[derive(Default)]
struct RecordsChecked {
    bytes: u64,
    blobs: u64,
    problems: Vec<Error>,
    /// Blobs that cannot be read: in a record that does not decode, or not
    /// matching their id.
    bad: Vec<Id>,
}

/// Decodes one record and recomputes the ids of the blobs it holds.
fn check_record(
    store: &Store,
    g: &Generation,
    entries: &[IndexEntry],
    progress: &dyn crate::progress::Progress,
    out: &mut RecordsChecked,
) {
    let first = &entries[0];
    let raw = match store.read_record(first, g) {
        Ok(raw) => raw,
        Err(err) => {
            if out.problems.len() < MAX_PROBLEMS {
                out.problems.push(err);
            }
            out.bad.extend(entries.iter().map(|e| e.id));
            return;
        }
    };
    out.bytes += first.record_len as u64;
    progress.bytes(first.record_len as u64);
    for e in entries {
        let blob = &raw[e.blob_offset as usize..(e.blob_offset + e.blob_len) as usize];
        out.blobs += 1;
        if crypto::content_id(store.keys(), e.kind, blob) == e.id {
            continue;
        }
        out.bad.push(e.id);
        if out.problems.len() < MAX_PROBLEMS {
            out.problems.push(Error::corrupt(
                Region::Packfile {
                    generation: g.footer.generation,
                    offset: e.record_offset,
                },
                format!(
                    "{} blob {} does not match its id",
                    e.kind.name(),
                    e.id.short()
                ),
            ));
        }
    }
}

struct Checker<'a> {
    store: &'a Store,
    progress: &'a dyn crate::progress::Progress,
    report: VerifyReport,
    /// The previous generation's footer and snapshot count, once its table
    /// is checked.
    prev_table: Option<(crate::format::footer::Footer, usize)>,
    /// Blobs found unreadable by the full check, and whether any tree or
    /// reference failed while walking the snapshots.
    bad_blobs: HashSet<Id>,
    walk_failed: bool,
}

impl Checker<'_> {
    fn problem(&mut self, e: Error) {
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(e);
        }
    }

    /// A table lists the previous table's snapshots first, in order, then
    /// only snapshots added by its own generation (spec §11.2). Both tables
    /// are read a slice at a time.
    fn check_table_growth(&mut self, f: &crate::format::footer::Footer, n: usize) {
        let gen = f.generation;
        let region = Region::SnapshotTable { generation: gen };
        let now = self.store.table_of(f, n);
        let (same, prev_len) = match self.prev_table.take() {
            None => (Ok(true), 0),
            Some((pf, pn)) => {
                let prev = self.store.table_of(&pf, pn);
                (same_entries(&prev, &now, pn), pn)
            }
        };
        self.prev_table = Some((f.clone(), n));
        match same {
            Err(e) => return self.problem(e),
            Ok(false) => {
                return self.problem(Error::corrupt(
                    region,
                    "does not begin with the previous generation's snapshots",
                ))
            }
            Ok(true) => {}
        }
        for e in now.iter_from(prev_len) {
            match e {
                Err(e) => return self.problem(e),
                Ok(e) if e.generation != gen => {
                    return self.problem(Error::corrupt(
                        region,
                        format!(
                            "lists new snapshot {} as added by generation {}",
                            e.id.short(),
                            e.generation
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
    }

    fn check_generation(&mut self, g: &Generation, full: bool) {
        let f = &g.footer;
        let gen = f.generation;
        if f.flags & FLAG_SIGNED != 0
            && !crate::signing::verify(&f.signer, &f.signed_message(), &f.signature)
        {
            self.problem(Error::corrupt(
                Region::Footer { generation: gen },
                "the signature does not verify",
            ));
        }
        if f.keyslots_len > 0 {
            let b = self.store.slice(f.keyslots_offset, f.keyslots_len);
            if blake3::hash(b).as_bytes() != &f.keyslots_hash {
                self.problem(Error::corrupt(
                    Region::KeySlots { generation: gen },
                    "hash does not match the footer",
                ));
            } else if let Err(m) = keyslots_parse(b) {
                self.problem(m.at(Region::KeySlots { generation: gen }));
            }
        }
        match self.store.check_table(f) {
            Err(e) => self.problem(e),
            Ok(n) => self.check_table_growth(f, n),
        }
        let ib = self.store.slice(f.index_offset, f.index_len);
        let index_region = Region::Index { generation: gen };
        if blake3::hash(ib).as_bytes() != &f.index_hash {
            self.problem(Error::corrupt(
                index_region.clone(),
                "hash does not match the footer",
            ));
        }
        let view = match self.store.index(g) {
            Ok(v) => v,
            Err(e) => return self.problem(e),
        };
        if let Err(m) = view.check_entries() {
            return self.problem(m.at(index_region));
        }
        // Records must tile the packfile exactly: no gap, no overlap.
        let mut records: Vec<IndexEntry> = Vec::with_capacity(view.len());
        for e in view.iter() {
            match e {
                Ok(e) => records.push(e),
                Err(m) => return self.problem(m.at(index_region)),
            }
        }
        records.sort_by_key(|e| (e.record_offset, e.blob_offset));
        let mut pos = f.packfile_offset;
        let mut prev: Option<IndexEntry> = None;
        for e in &records {
            if let Some(p) = prev.filter(|p| p.record_offset == e.record_offset) {
                if (p.record_len, p.raw_len, p.codec, p.kind)
                    != (e.record_len, e.raw_len, e.codec, e.kind)
                {
                    return self.problem(Error::corrupt(
                        index_region,
                        format!("entries disagree about the record at {}", e.record_offset),
                    ));
                }
                continue;
            }
            if e.record_offset != pos {
                return self.problem(Error::corrupt(
                    index_region,
                    format!("records do not tile the packfile at offset {pos}"),
                ));
            }
            pos += e.record_len as u64;
            prev = Some(*e);
        }
        if pos != f.index_offset {
            return self.problem(Error::corrupt(
                index_region,
                "records do not cover the packfile up to the index",
            ));
        }
        if !full {
            return;
        }
        let mut hasher = blake3::Hasher::new();
        let mut at = f.packfile_offset;
        while at < f.index_offset {
            let n = (f.index_offset - at).min(4 << 20);
            match self.store.read_at(at, n) {
                Ok(b) => hasher.update(&b),
                Err(e) => return self.problem(e),
            };
            at += n;
        }
        if hasher.finalize().as_bytes() != &f.packfile_hash {
            self.problem(Error::corrupt(
                Region::Packfile {
                    generation: gen,
                    offset: f.packfile_offset,
                },
                "packfile hash does not match the footer",
            ));
        }
        // Records (with their entries, sorted by offset) are decoded and
        // their blob ids recomputed on every core.
        let mut groups: Vec<&[IndexEntry]> = Vec::new();
        let mut start = 0;
        for i in 1..=records.len() {
            if i == records.len() || records[i].record_offset != records[start].record_offset {
                groups.push(&records[start..i]);
                start = i;
            }
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(groups.len().max(1));
        let (store, progress, groups) = (self.store, self.progress, &groups);
        let found: Vec<RecordsChecked> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut out = RecordsChecked::default();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(group) = groups.get(i) else {
                                return out;
                            };
                            check_record(store, g, group, progress, &mut out);
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_default())
                .collect()
        });
        for f in found {
            self.report.bytes_checked += f.bytes;
            self.report.blobs_checked += f.blobs;
            self.bad_blobs.extend(f.bad);
            for e in f.problems {
                self.problem(e);
            }
        }
    }

    fn check_blob_exists(&mut self, id: &Id, kind: Kind, path: &[u8]) {
        let found = self.store.find(id);
        if !matches!(&found, Ok(Some((e, _))) if e.kind == kind) {
            self.walk_failed = true;
        }
        match found {
            Ok(Some((e, _))) if e.kind == kind => {}
            Ok(Some((e, _))) => self.problem(Error::corrupt(
                Region::Blob {
                    id: id.short(),
                    kind: kind.name(),
                },
                format!(
                    "'{}' refers to it as a {}, it is a {}",
                    String::from_utf8_lossy(path),
                    kind.name(),
                    e.kind.name()
                ),
            )),
            Ok(None) => self.problem(Error::corrupt(
                Region::Blob {
                    id: id.short(),
                    kind: kind.name(),
                },
                format!(
                    "'{}' refers to it but no index holds it",
                    String::from_utf8_lossy(path)
                ),
            )),
            Err(e) => self.problem(e),
        }
    }

    /// Walks every snapshot's trees, checking that every blob they name
    /// is held with the right kind. A tree met before (in this snapshot or
    /// an earlier one) is not walked again, only held to the depth limit
    /// at its new place.
    fn walk_snapshots(&mut self, archive: &Archive) {
        // Tree id → levels of directories under it.
        let mut seen: HashMap<Id, usize> = HashMap::new();
        for t in self.store.snapshot_table().iter() {
            let snap = match t.and_then(|t| archive.load_snapshot(&t)) {
                Ok(s) => s,
                Err(e) => {
                    self.problem(e);
                    continue;
                }
            };
            if seen.contains_key(&snap.record.root) {
                continue;
            }
            if let Err(e) = self.walk_snapshot(archive, &snap, &mut seen) {
                self.walk_failed = true;
                self.problem(e);
            }
        }
    }

    /// [`Checker::walk_snapshots`] for one snapshot; an error ends its walk.
    fn walk_snapshot(
        &mut self,
        archive: &Archive,
        snap: &crate::Snapshot,
        seen: &mut HashMap<Id, usize>,
    ) -> Result<()> {
        // (tree, levels of directories met under it) per open directory.
        let mut open: Vec<(Id, usize)> = vec![(snap.record.root, 0)];
        let mut walker = Walker::new(self.store, snap.record.root);
        while let Some(step) = walker.next() {
            let Visit { path, entry, depth } = match step? {
                Step::Entry(v) => v,
                Step::Unreadable { error, .. } => {
                    self.walk_failed = true;
                    self.problem(error);
                    continue;
                }
                Step::Leave(_) => {
                    let (tree, height) = open.pop().expect("a level per open directory");
                    seen.insert(tree, height);
                    let up = open.last_mut().expect("the root's level is closed last");
                    up.1 = up.1.max(height + 1);
                    continue;
                }
            };
            match &entry.payload {
                Payload::Dir(id) => match seen.get(id) {
                    Some(&height) => {
                        walker.skip();
                        check_depth(depth + height, id)?;
                        let up = open.last_mut().expect("the root's level is closed last");
                        up.1 = up.1.max(height + 1);
                    }
                    None => open.push((*id, 0)),
                },
                Payload::File(content) => {
                    if let Content::Map(id) = content {
                        self.check_blob_exists(id, Kind::FileMap, &path);
                    }
                    match archive.extents(content, entry.size) {
                        Ok(extents) => {
                            for x in extents {
                                if let Extent::Data { id, .. } = x {
                                    self.check_blob_exists(&id, Kind::Chunk, &path);
                                }
                            }
                        }
                        Err(err) => {
                            self.walk_failed = true;
                            self.problem(err)
                        }
                    }
                }
                _ => {}
            }
        }
        let (root, height) = open.pop().expect("the root's level");
        seen.insert(root, height);
        Ok(())
    }

    /// Lists, snapshot by snapshot, every path that cannot be read back
    /// whole: a directory whose listing does not read (its contents are
    /// lost with it), a file whose file map or chunks are unreadable or
    /// missing. Run only when the full check found something wrong.
    fn list_damage(&mut self, archive: &Archive) {
        let store = self.store;
        let readable = |id: &Id, kind: Kind| -> std::result::Result<(), String> {
            if self.bad_blobs.contains(id) {
                return Err(format!("{} {} is damaged", kind.name(), id.short()));
            }
            match store.find(id) {
                Ok(Some((e, _))) if e.kind == kind => Ok(()),
                Ok(Some(_)) => Err(format!("{} {} has the wrong kind", kind.name(), id.short())),
                Ok(None) => Err(format!("{} {} is missing", kind.name(), id.short())),
                Err(e) => Err(e.to_string()),
            }
        };
        let mut damaged = Vec::new();
        'snapshots: for t in store.snapshot_table().iter() {
            let Ok(t) = t else {
                // Already reported by the table's checks.
                break;
            };
            if damaged.len() >= MAX_DAMAGED {
                break;
            }
            let snap = match archive.load_snapshot(&t) {
                Ok(s) => s,
                Err(e) => {
                    damaged.push(DamagedPath {
                        snapshot: t.id,
                        path: Vec::new(),
                        problem: format!("the whole snapshot: {e}"),
                    });
                    continue;
                }
            };
            let mut walker = Walker::new(store, snap.record.root);
            while let Some(step) = walker.next() {
                if damaged.len() >= MAX_DAMAGED {
                    break 'snapshots;
                }
                let (path, e) = match step {
                    Ok(Step::Entry(v)) => (v.path, v.entry),
                    Ok(Step::Leave(_)) => continue,
                    Ok(Step::Unreadable { path, error }) => {
                        damaged.push(DamagedPath {
                            snapshot: t.id,
                            path,
                            problem: format!(
                                "directory listing unreadable, with all below it: {error}"
                            ),
                        });
                        continue;
                    }
                    Err(e) => {
                        damaged.push(DamagedPath {
                            snapshot: t.id,
                            path: Vec::new(),
                            problem: format!("the whole snapshot: {e}"),
                        });
                        continue;
                    }
                };
                let problem = match &e.payload {
                    Payload::File(content) => {
                        let map = match content {
                            Content::Map(id) => readable(id, Kind::FileMap).err(),
                            _ => None,
                        };
                        map.or_else(|| match archive.extents(content, e.size) {
                            Ok(extents) => extents.iter().find_map(|x| match x {
                                Extent::Data { id, .. } => readable(id, Kind::Chunk).err(),
                                Extent::Hole { .. } => None,
                            }),
                            Err(err) => Some(err.to_string()),
                        })
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    damaged.push(DamagedPath {
                        snapshot: t.id,
                        path,
                        problem,
                    });
                }
            }
        }
        self.report.damaged = damaged;
    }
}

/// Whether the first `n` entries of `a` and `b` are the same, read a
/// slice at a time.
fn same_entries(
    a: &crate::store::SnapshotTable<'_>,
    b: &crate::store::SnapshotTable<'_>,
    n: usize,
) -> Result<bool> {
    if b.len() < n || a.len() < n {
        return Ok(false);
    }
    const PER: usize = 1638;
    let mut first = 0;
    while first < n {
        let count = (n - first).min(PER);
        if a.raw(first, count)? != b.raw(first, count)? {
            return Ok(false);
        }
        first += count;
    }
    Ok(true)
}

/// Fingerprints of ids held at once while looking for a repeated id: 32 MiB.
const FINGERPRINTS_HELD: usize = 1 << 22;

/// A snapshot id listed twice in `table`, found in bounded memory: each
/// id's 64-bit fingerprint under a random key (so a hostile table cannot
/// make fingerprints collide) is sorted with the others, in as many passes
/// over the table as it takes to hold at most [`FINGERPRINTS_HELD`] of them;
/// equal fingerprints are confirmed by comparing the ids themselves.
fn repeated_id(table: &crate::store::SnapshotTable<'_>) -> Result<Option<Id>> {
    use std::hash::BuildHasher;
    let key = std::collections::hash_map::RandomState::new();
    let passes = table.len().div_ceil(FINGERPRINTS_HELD).max(1) as u64;
    // Repeats of one id fall in one pass: a pass that collects more than
    // twice its share is sorted early, and its repeats confirmed then.
    let cap = FINGERPRINTS_HELD * 2;
    let confirm = |prints: &mut Vec<u64>| -> Result<Option<Id>> {
        prints.sort_unstable();
        let mut suspects: Vec<u64> = prints
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        suspects.dedup();
        // Each suspect is confirmed with one more pass; a true repeat ends
        // the search, and fingerprints of distinct ids collide with
        // probability about n²/2^65, so this loop almost never goes round.
        for fp in suspects {
            let mut ids: Vec<Id> = Vec::new();
            for e in table.iter() {
                let e = e?;
                if key.hash_one(e.id) == fp {
                    if ids.contains(&e.id) {
                        return Ok(Some(e.id));
                    }
                    ids.push(e.id);
                }
            }
        }
        Ok(None)
    };
    for pass in 0..passes {
        let mut prints = Vec::with_capacity(table.len().min(cap));
        for e in table.iter() {
            let fp = key.hash_one(e?.id);
            if fp % passes == pass {
                prints.push(fp);
                if prints.len() == cap {
                    if let Some(id) = confirm(&mut prints)? {
                        return Ok(Some(id));
                    }
                    prints.dedup();
                }
            }
        }
        if let Some(id) = confirm(&mut prints)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Checks `archive` as `opts` says.
pub fn verify(archive: &Archive, opts: &VerifyOptions) -> VerifyReport {
    verify_with_progress(archive, opts, &crate::progress::NoProgress)
}

/// [`verify`], reporting the record bytes a full check reads to `progress`.
pub fn verify_with_progress(
    archive: &Archive,
    opts: &VerifyOptions,
    progress: &dyn crate::progress::Progress,
) -> VerifyReport {
    let store = archive.store();
    let mut c = Checker {
        store,
        progress,
        report: VerifyReport::default(),
        prev_table: None,
        bad_blobs: HashSet::new(),
        walk_failed: false,
    };
    c.report.generations = store.generations().len() as u64;
    c.report.snapshots = store.snapshot_table().len();
    c.report.tail = store.tail().cloned();
    if let Some(p) = store
        .tail()
        .and_then(|t| t.damage_problem(c.report.generations, c.report.snapshots))
    {
        c.problem(p);
    }
    for g in store.generations() {
        c.check_generation(g, opts.full);
    }
    if let Some(last) = store.generations().last() {
        if last.footer.flags & FLAG_SIGNED != 0 {
            c.report.signed_by = Some(last.footer.signer);
        }
        if let Some(k) = &opts.trusted_key {
            match c.report.signed_by {
                None => c.problem(Error::Signature("the newest footer is not signed".into())),
                Some(s) if s != k.to_bytes() => c.problem(Error::Signature(format!(
                    "signed by key {}, not by the trusted key {}",
                    crate::signing::fingerprint(&s),
                    crate::signing::fingerprint(&k.to_bytes())
                ))),
                Some(_) => {}
            }
        }
    }
    match repeated_id(&store.snapshot_table()) {
        Ok(None) => {}
        Ok(Some(id)) => c.problem(Error::corrupt(
            Region::SnapshotTable {
                generation: c.report.generations,
            },
            format!("snapshot {} is listed twice", id.short()),
        )),
        Err(e) => c.problem(e),
    }
    for t in store.snapshot_table().iter() {
        if c.report.problems.len() >= MAX_PROBLEMS {
            break;
        }
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                c.problem(e);
                break;
            }
        };
        c.check_blob_exists(
            &t.id,
            Kind::Snapshot,
            format!("snapshot {}", t.id.short()).as_bytes(),
        );
        if let Ok(Some((_, g))) = store.find(&t.id) {
            if g.footer.generation != t.generation {
                c.problem(Error::corrupt(
                    Region::SnapshotTable {
                        generation: c.report.generations,
                    },
                    format!(
                        "snapshot {} is listed as added by generation {}, generation {} holds it",
                        t.id.short(),
                        t.generation,
                        g.footer.generation
                    ),
                ));
            }
        }
    }
    if opts.full {
        c.walk_snapshots(archive);
        if !c.bad_blobs.is_empty() || c.walk_failed {
            c.list_damage(archive);
        }
    }
    c.report
}
