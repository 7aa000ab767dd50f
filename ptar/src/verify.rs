//! Checking an archive (spec §16).
//!
//! The fast check reads only structure: the header, the footer chain
//! (every trailer and manifest, their hashes and signatures), every page of
//! the runs in force, the key-slot tables. The full check also hashes every
//! generation, decodes every frame, recomputes every blob id, checks every
//! index entry against the blob it names, and walks every snapshot's trees.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::VerifyingKey;

use crate::archive::Archive;
use crate::format::frame::FrameType;
use crate::format::header::keyslots_parse;
use crate::format::manifest::{Manifest, Trailer};
use crate::format::record::RecordLayout;
use crate::format::tree::{Content, Extent, Payload};
use crate::format::{Id, Kind};
use crate::store::{Store, Tail};
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

struct Checker<'a> {
    store: &'a Store,
    progress: &'a dyn crate::progress::Progress,
    report: VerifyReport,
    /// What the full check's walk of the frames found: the id of the blob
    /// at each (frame offset, ordinal), and its kind.
    blobs_at: HashMap<(u64, u32), (Id, Kind)>,
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

    /// Checks one generation's footer: its manifest's signature, and the
    /// key-slot table it names.
    fn check_footer(&mut self, t: &Trailer, m: &Manifest) {
        let gen = m.generation;
        if let Some((key, sig)) = &m.signature {
            let mut unsigned = m.clone();
            unsigned.signature = Some(([0; 32], [0; 64]));
            let msg = unsigned.signature_message();
            if !crate::signing::verify(key, &msg, sig) {
                self.problem(Error::corrupt(
                    Region::Footer { generation: gen },
                    "the signature does not verify",
                ));
            }
        }
        if let Some((offset, len)) = t.key_slots {
            let parsed = self.store.read_at(offset, u64::from(len)).and_then(|b| {
                let stated = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
                if u64::from(stated) + 4 != u64::from(len) {
                    return Err(Error::corrupt(
                        Region::KeySlots { generation: gen },
                        "length does not match its frame",
                    ));
                }
                keyslots_parse(&b[4..])
                    .map(|_| ())
                    .map_err(|m| m.at(Region::KeySlots { generation: gen }))
            });
            if let Err(e) = parsed {
                self.problem(e);
            }
        }
    }

    /// Walks the footer chain from the newest generation back to the first
    /// (spec §16.1), checking each footer; with `full`, also each
    /// generation's hash and frames (spec §16.2).
    fn check_chain(&mut self, full: bool) {
        let store = self.store;
        let mut t = *store.trailer();
        let mut m = store.manifest().clone();
        // The run each generation wrote, as its own manifest names it first.
        let mut own: HashMap<u64, crate::format::manifest::RunRef> = HashMap::new();
        loop {
            own.insert(m.generation, m.runs[0]);
            self.check_footer(&t, &m);
            if full {
                self.check_frames(&t, &m);
            }
            let gen = m.generation;
            if gen == 1 {
                if m.generation_start != store.header_len() {
                    self.problem(Error::corrupt(
                        Region::Footer { generation: 1 },
                        "generation 1 does not start after the header",
                    ));
                }
                break;
            }
            let region = Region::Footer {
                generation: gen - 1,
            };
            let prev = match store.trailer_ending_at(m.generation_start) {
                Ok(Ok(p)) => p,
                Ok(Err(why)) => return self.problem(Error::corrupt(region, why)),
                Err(e) => return self.problem(e),
            };
            if prev.generation != gen - 1 {
                return self.problem(Error::corrupt(
                    region,
                    "generation numbers are not consecutive",
                ));
            }
            let footer = store.read_at(
                prev.manifest_offset,
                m.generation_start - prev.manifest_offset,
            );
            match footer {
                Ok(b) if *blake3::hash(&b).as_bytes() == m.previous_footer_hash => {}
                Ok(_) => {
                    return self.problem(Error::corrupt(
                        region,
                        "footer hash does not match the next manifest's chain link",
                    ))
                }
                Err(e) => return self.problem(e),
            }
            match store.read_manifest(&prev) {
                Ok(pm) => {
                    t = prev;
                    m = pm;
                }
                Err(e) => return self.problem(e),
            }
        }
        // Every run in force names the run its generation wrote: a manifest
        // cannot drop or swap an earlier generation's blobs or snapshots.
        let newest = store.manifest();
        for ((h, _), r) in crate::format::run::runs_in_force(newest.generation)
            .into_iter()
            .zip(&newest.runs)
        {
            if own.get(&h).is_some_and(|wrote| wrote != r) {
                self.problem(Error::corrupt(
                    Region::SnapshotTable {
                        generation: newest.generation,
                    },
                    format!(
                        "the newest manifest names another run for generation {h} than generation {h} wrote"
                    ),
                ));
            }
        }
    }

    /// Full check of one generation: its hash, and every frame before its
    /// manifest, walked from its start (spec §16.2); remembers every blob.
    fn check_frames(&mut self, t: &Trailer, m: &Manifest) {
        let gen = m.generation;
        let store = self.store;
        let mut hasher = blake3::Hasher::new();
        let mut content = Vec::new();
        let walked = store.walk_frames(m.generation_start, t.manifest_offset, |at, raw| {
            let region = Region::Frame { offset: at };
            let stored = raw.len() as u64;
            hasher.update(raw);
            self.report.bytes_checked += stored;
            self.progress.bytes(stored);
            if store.is_key_slot_frame(raw) {
                if let Err(m) = keyslots_parse(&raw[4..]) {
                    self.problem(m.at(Region::KeySlots { generation: gen }));
                }
                return Ok(());
            }
            match store.decode_raw_frame(at, raw, &mut content) {
                Ok(FrameType::BlobRecord) => match RecordLayout::parse(&content) {
                    Ok(layout) => {
                        for i in 0..layout.len() as u32 {
                            let (kind, range) = layout.blob(i).expect("in range");
                            let id = crypto::content_id(store.keys(), kind, &content[range]);
                            self.report.blobs_checked += 1;
                            self.blobs_at.insert((at, i), (id, kind));
                        }
                    }
                    Err(e) => self.problem(e.at(region)),
                },
                Ok(FrameType::Manifest) => self.problem(Error::corrupt(
                    region,
                    "a manifest before the end of its generation",
                )),
                Ok(_) => {}
                Err(e) => self.problem(e),
            }
            Ok(())
        });
        if let Err(e) = walked {
            return self.problem(e);
        }
        if *hasher.finalize().as_bytes() != m.generation_hash {
            self.problem(Error::corrupt(
                Region::Footer { generation: gen },
                "generation hash does not match the bytes before the manifest",
            ));
        }
    }

    /// Checks every page of the runs in force (spec §16.1), and with `full`
    /// every index entry against the blob the frame walk found there.
    fn check_runs(&mut self, full: bool) {
        let store = self.store;
        for run in store.runs() {
            let Some(dir) = &run.index else { continue };
            for p in 0..dir.pages.len() {
                let page = match store.index_page(run, p) {
                    Ok(page) => page,
                    Err(e) => {
                        self.problem(e);
                        continue;
                    }
                };
                if !full {
                    continue;
                }
                for (id, l) in page.ids.iter().zip(&page.locations) {
                    match self.blobs_at.get(&(l.offset, l.ordinal)) {
                        Some((found, _)) if found == id => {}
                        Some(_) => {
                            self.bad_blobs.insert(*id);
                            self.problem(Error::corrupt(
                                Region::Frame { offset: l.offset },
                                format!("blob {} of the record is not {}", l.ordinal, id.short()),
                            ))
                        }
                        None => {
                            self.bad_blobs.insert(*id);
                            self.problem(Error::corrupt(
                                Region::Index {
                                    generation: run.generation,
                                },
                                format!(
                                    "{} names blob {} of a record at {} that holds no such blob",
                                    id.short(),
                                    l.ordinal,
                                    l.offset
                                ),
                            ))
                        }
                    }
                }
            }
        }
    }

    /// Whether a blob a snapshot refers to is indexed, and (full check,
    /// from the frame walk) stored with the kind it is referred to as.
    fn check_blob_exists(&mut self, id: &Id, kind: Kind, path: &[u8]) {
        let region = || Region::Blob {
            id: id.short(),
            kind: kind.name(),
        };
        match self.store.find(id) {
            Ok(Some(l)) => match self.blobs_at.get(&(l.offset, l.ordinal)) {
                Some((_, k)) if *k != kind => {
                    self.walk_failed = true;
                    self.problem(Error::corrupt(
                        region(),
                        format!(
                            "'{}' refers to it as a {}, it is a {}",
                            String::from_utf8_lossy(path),
                            kind.name(),
                            k.name()
                        ),
                    ))
                }
                _ => {}
            },
            Ok(None) => {
                self.walk_failed = true;
                self.problem(Error::corrupt(
                    region(),
                    format!(
                        "'{}' refers to it but no index holds it",
                        String::from_utf8_lossy(path)
                    ),
                ))
            }
            Err(e) => {
                self.walk_failed = true;
                self.problem(e)
            }
        }
    }

    /// Walks every snapshot's trees, checking that every blob they name
    /// is held with the right kind. A tree met before (in this snapshot or
    /// an earlier one) is not walked again, only held to the depth limit
    /// at its new place.
    fn walk_snapshots(&mut self, archive: &Archive) {
        // Tree id → levels of directories under it.
        let mut seen: HashMap<Id, usize> = HashMap::new();
        for t in self.store.snapshot_list().iter() {
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
                Ok(Some(l)) => match self.blobs_at.get(&(l.offset, l.ordinal)) {
                    Some((_, k)) if *k != kind => {
                        Err(format!("{} {} has the wrong kind", kind.name(), id.short()))
                    }
                    _ => Ok(()),
                },
                Ok(None) => Err(format!("{} {} is missing", kind.name(), id.short())),
                Err(e) => Err(e.to_string()),
            }
        };
        let mut damaged = Vec::new();
        'snapshots: for t in store.snapshot_list().iter() {
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

/// Fingerprints of ids held at once while looking for a repeated id: 32 MiB.
const FINGERPRINTS_HELD: usize = 1 << 22;

/// A snapshot id listed twice in `table`, found in bounded memory: each
/// id's 64-bit fingerprint under a random key (so a hostile table cannot
/// make fingerprints collide) is sorted with the others, in as many passes
/// over the table as it takes to hold at most [`FINGERPRINTS_HELD`] of them;
/// equal fingerprints are confirmed by comparing the ids themselves.
fn repeated_id(table: &crate::store::SnapshotList<'_>) -> Result<Option<Id>> {
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
        blobs_at: HashMap::new(),
        bad_blobs: HashSet::new(),
        walk_failed: false,
    };
    c.report.generations = store.generation_count();
    c.report.snapshots = store.snapshot_list().len();
    c.report.tail = store.tail().cloned();
    if let Some(p) = store
        .tail()
        .and_then(|t| t.damage_problem(c.report.generations, c.report.snapshots))
    {
        c.problem(p);
    }
    c.check_chain(opts.full);
    c.check_runs(opts.full);
    if let Some((key, _)) = &store.manifest().signature {
        c.report.signed_by = Some(*key);
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
    let list = store.snapshot_list();
    match repeated_id(&list) {
        Ok(None) => {}
        Ok(Some(id)) => c.problem(Error::corrupt(
            Region::SnapshotTable {
                generation: c.report.generations,
            },
            format!("snapshot {} is listed twice", id.short()),
        )),
        Err(e) => c.problem(e),
    }
    for t in list.iter() {
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
        match store.find(&t.id) {
            Ok(Some(l)) if l == t.location => {}
            Ok(Some(_)) => c.problem(Error::corrupt(
                Region::SnapshotTable {
                    generation: t.generation,
                },
                format!(
                    "snapshot {} is listed at another place than the index holds it",
                    t.id.short()
                ),
            )),
            Ok(None) => c.problem(Error::corrupt(
                Region::SnapshotTable {
                    generation: t.generation,
                },
                format!("snapshot {} is listed but no index holds it", t.id.short()),
            )),
            Err(e) => c.problem(e),
        }
        if opts.full {
            if let Some((found, k)) = c.blobs_at.get(&(t.location.offset, t.location.ordinal)) {
                if *found != t.id || *k != Kind::Snapshot {
                    c.problem(Error::corrupt(
                        Region::Frame {
                            offset: t.location.offset,
                        },
                        format!("snapshot {} is not where its entry says", t.id.short()),
                    ));
                }
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
