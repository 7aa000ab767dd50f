//! The one walk over a snapshot's trees: every reader that lists, extracts,
//! compares, searches, copies or checks a snapshot goes through [`Walker`]
//! (or, for the two trees `diff` merges in step, through [`check_depth`]
//! and [`join`]), so all of them meet entries in the same order and stop at
//! the same depth.
//!
//! The walk is pre-order, in name order: a directory comes before its
//! entries, and a [`Step::Leave`] after them. It is iterative, with one
//! level of state per open directory, and directories are read only when
//! the walk goes into them: a caller may [skip](Walker::skip) a subtree
//! right after meeting its directory. A directory whose listing cannot be
//! read is reported as a [`Step::Unreadable`] and the walk goes on beside it,
//! so a caller can carry on as tar does, or stop.
//!
//! Depth (spec §12): the root's entries are at depth 1, the entries of a
//! directory at depth `d` are at depth `d + 1`. A directory deeper than
//! [`MAX_TREE_DEPTH`] ends the walk with an error, whether or not the caller
//! would have gone into it; a directory at the limit is walked, and so are
//! its entries other than directories.

use crate::format::limits::MAX_TREE_DEPTH;
use crate::format::tree::{Entry, Payload};
use crate::format::{Id, Kind};
use crate::store::Store;
use crate::tree::read_directory;
use crate::{Error, Region, Result};

/// The member path of `name` in the directory at `prefix` (`""` for the
/// root): `prefix/name`, or `name` at the root.
pub(crate) fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 1 + name.len());
    p.extend_from_slice(prefix);
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Whether a directory at `depth` is within the nesting limit (spec §12).
/// Writers use it to refuse what readers would refuse.
pub(crate) fn depth_allowed(depth: usize) -> bool {
    depth <= MAX_TREE_DEPTH
}

/// The depth rule of spec §12 for a directory at `depth` whose top tree
/// page is `tree`: an error naming that tree when the directory is deeper
/// than [`MAX_TREE_DEPTH`]. A walk that meets such a directory stops (the
/// snapshot is damaged; other snapshots are not).
pub(crate) fn check_depth(depth: usize, tree: &Id) -> Result<()> {
    if depth_allowed(depth) {
        return Ok(());
    }
    Err(Error::corrupt(
        Region::Blob {
            id: tree.short(),
            kind: Kind::Tree.name(),
        },
        format!("directories nest too deep (more than {MAX_TREE_DEPTH} levels)"),
    ))
}

/// An entry met by the walk.
#[derive(Clone, Debug)]
pub(crate) struct Visit {
    /// Member path from the snapshot root.
    pub(crate) path: Vec<u8>,
    /// The entry.
    pub(crate) entry: Entry,
    /// 1 for the root's entries.
    pub(crate) depth: usize,
}

/// One step of a walk.
#[derive(Debug)]
pub(crate) enum Step {
    /// An entry. A directory's entries follow, then its [`Step::Leave`],
    /// unless [`Walker::skip`] is called before the next step.
    Entry(Visit),
    /// The listing of the directory at `path` (`""` for the root) could
    /// not be read: none of its entries follow. For a directory other than
    /// the root its [`Step::Leave`] comes next; for the root the walk ends.
    Unreadable {
        /// Member path of the directory.
        path: Vec<u8>,
        /// Why it could not be read.
        error: Error,
    },
    /// Every entry of a directory the walk went into has been met (not
    /// sent for the root: the walk ending is the root's end).
    Leave(Visit),
}

/// One open directory.
struct Level {
    /// The directory (`None` for the root).
    own: Option<Visit>,
    /// Its member path.
    path: Vec<u8>,
    /// Its depth (0 for the root).
    depth: usize,
    /// Entries not met yet.
    entries: std::vec::IntoIter<Entry>,
}

/// Walks the trees of one snapshot, a step at a time (see the module
/// documentation).
pub(crate) struct Walker<'a> {
    store: &'a Store,
    /// The root tree, until it is read.
    root: Option<Id>,
    stack: Vec<Level>,
    /// The directory just met, gone into at the next step unless skipped.
    enter: Option<Visit>,
    /// An error ended the walk.
    stopped: bool,
    /// Listings read, and the entries they held.
    dirs_read: u64,
    entries_read: u64,
    /// Most entries the listings read may hold, with the snapshot that
    /// declares it.
    limit: Option<(u64, Id)>,
}

impl<'a> Walker<'a> {
    /// A walk of the directory tree whose root's top page is `root`.
    pub(crate) fn new(store: &'a Store, root: Id) -> Walker<'a> {
        Walker {
            store,
            root: Some(root),
            stack: Vec::new(),
            enter: None,
            stopped: false,
            dirs_read: 0,
            entries_read: 0,
            limit: None,
        }
    }

    /// Ends the walk with [`Error::LimitExceeded`] once the listings read
    /// (and what [`Walker::charge`] adds) hold more than `limit` entries:
    /// the count `snapshot`'s record declares (a tree that names one
    /// directory a million times would otherwise make the walk endless).
    pub(crate) fn with_limit(mut self, limit: u64, snapshot: Id) -> Walker<'a> {
        self.limit = Some((limit, snapshot));
        self
    }

    /// Counts `n` more entries against the limit, for a subtree the caller
    /// skipped because it already knows it.
    pub(crate) fn charge(&mut self, n: u64) -> Result<()> {
        self.entries_read = self.entries_read.saturating_add(n);
        match self.limit {
            Some((limit, snapshot)) if self.entries_read > limit => {
                self.stopped = true;
                Err(Error::LimitExceeded(format!(
                    "snapshot {} holds more entries than the {limit} its record declares",
                    snapshot.short()
                )))
            }
            _ => Ok(()),
        }
    }

    /// Directory listings read so far.
    pub(crate) fn dirs_read(&self) -> u64 {
        self.dirs_read
    }

    /// Does not go into the directory the last step met.
    pub(crate) fn skip(&mut self) {
        self.enter = None;
    }

    fn read(&mut self, tree: &Id) -> Result<Vec<Entry>> {
        let entries = read_directory(self.store, tree)?;
        self.dirs_read += 1;
        Ok(entries)
    }

    /// The next step; `None` once the walk is over. An `Err` (a directory
    /// nested too deep, or the entry limit passed) ends the walk.
    #[allow(clippy::should_implement_trait)]
    pub(crate) fn next(&mut self) -> Option<Result<Step>> {
        if self.stopped {
            return None;
        }
        if let Some(root) = self.root.take() {
            match self.read(&root) {
                Ok(entries) => {
                    if let Err(e) = self.charge(entries.len() as u64) {
                        return Some(Err(e));
                    }
                    self.stack.push(Level {
                        own: None,
                        path: Vec::new(),
                        depth: 0,
                        entries: entries.into_iter(),
                    });
                }
                Err(error) => {
                    self.stopped = true;
                    return Some(Ok(Step::Unreadable {
                        path: Vec::new(),
                        error,
                    }));
                }
            }
        }
        if let Some(dir) = self.enter.take() {
            let Payload::Dir(tree) = dir.entry.payload else {
                unreachable!("only directories are entered")
            };
            let (entries, unreadable) = match self.read(&tree) {
                Ok(entries) => (entries, None),
                Err(error) => (Vec::new(), Some(error)),
            };
            if let Err(e) = self.charge(entries.len() as u64) {
                return Some(Err(e));
            }
            let path = dir.path.clone();
            self.stack.push(Level {
                path: dir.path.clone(),
                depth: dir.depth,
                own: Some(dir),
                entries: entries.into_iter(),
            });
            if let Some(error) = unreadable {
                return Some(Ok(Step::Unreadable { path, error }));
            }
        }
        let top = self.stack.last_mut()?;
        let Some(entry) = top.entries.next() else {
            let level = self.stack.pop().expect("the level just looked at");
            // The root's end is the walk's end.
            return level.own.map(|dir| Ok(Step::Leave(dir)));
        };
        let visit = Visit {
            path: join(&top.path, &entry.name),
            depth: top.depth + 1,
            entry,
        };
        if let Payload::Dir(tree) = &visit.entry.payload {
            if let Err(e) = check_depth(visit.depth, tree) {
                self.stopped = true;
                return Some(Err(e));
            }
            self.enter = Some(visit.clone());
        }
        Some(Ok(Step::Entry(visit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::{Content, Extent, Timestamp, TreePage};
    use crate::store::GenerationWriter;

    #[test]
    fn join_paths() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
    }

    #[test]
    fn depth_limit_is_inclusive() {
        assert!(depth_allowed(MAX_TREE_DEPTH));
        assert!(!depth_allowed(MAX_TREE_DEPTH + 1));
        assert!(check_depth(MAX_TREE_DEPTH, &Id::ZERO).is_ok());
        let e = check_depth(MAX_TREE_DEPTH + 1, &Id::ZERO).unwrap_err();
        assert!(e.to_string().contains("nest too deep"), "{e}");
    }

    fn writer() -> GenerationWriter<Vec<u8>> {
        let h = crate::format::header::Header {
            major: crate::format::FORMAT_MAJOR,
            minor: crate::format::FORMAT_MINOR,
            flags: 0,
            uuid: [1; 16],
            chunker: crate::format::header::ChunkerParams::DEFAULT,
            default_codec: 1,
            created: 0,
            key_check: [0; 32],
            key_slots: vec![],
        };
        let hb = h.to_bytes();
        let ctx = crate::store::writer::ArchiveContext {
            uuid: h.uuid,
            header_minor: h.minor,
            header_hash: *blake3::hash(&hb).as_bytes(),
            keys: None,
            existing: None,
        };
        GenerationWriter::new(
            hb.clone(),
            hb.len() as u64,
            ctx,
            Box::new(crate::crypto::SeededEntropy::new(b"walk")),
        )
    }

    /// Stores a directory of `entries` and returns its tree id.
    fn put_dir(w: &mut GenerationWriter<Vec<u8>>, entries: Vec<Entry>) -> Id {
        w.put_blob(Kind::Tree, &TreePage::Leaf(entries).to_bytes())
            .unwrap()
    }

    /// The archive of one snapshot whose root tree is `root`.
    fn finish(mut w: GenerationWriter<Vec<u8>>, root: Id) -> crate::Archive {
        let rec = crate::format::snapshot::SnapshotRecord {
            root,
            ..Default::default()
        };
        let sid = w.put_blob(Kind::Snapshot, &rec.to_bytes()).unwrap();
        let (bytes, _) = w.finish(&[sid], None, None, 0).unwrap();
        crate::Archive::from_vec(bytes, None).unwrap()
    }

    fn file(name: &str) -> Entry {
        Entry::file(name, 1, Content::Inline(vec![Extent::Hole { len: 1 }])).with_times(
            Timestamp::default(),
            Timestamp::default(),
            Timestamp::default(),
        )
    }

    /// An archive whose snapshot root holds `a` (a directory holding `f`
    /// and the directory `b`, which holds `g`) and `z`, with `b`'s tree
    /// missing when `lose_b`.
    fn small_tree(lose_b: bool) -> (crate::Archive, Id) {
        let mut w = writer();
        let b = if lose_b {
            Id([7; 32])
        } else {
            put_dir(&mut w, vec![file("g")])
        };
        let a = put_dir(&mut w, vec![Entry::directory("b", b), file("f")]);
        let root = put_dir(&mut w, vec![Entry::directory("a", a), file("z")]);
        (finish(w, root), root)
    }

    /// `levels` directories called `d`, each in the one before, the last
    /// holding a file: the tree of the root holding them.
    fn chain(w: &mut GenerationWriter<Vec<u8>>, levels: usize) -> Id {
        let mut tree = put_dir(w, vec![file("f")]);
        for _ in 0..levels {
            tree = put_dir(w, vec![Entry::directory("d", tree)]);
        }
        tree
    }

    #[test]
    fn nesting_at_the_limit_is_walked_and_one_more_level_is_refused() {
        let mut w = writer();
        let at_limit = chain(&mut w, MAX_TREE_DEPTH);
        let too_deep = chain(&mut w, MAX_TREE_DEPTH + 1);
        let a = finish(w, at_limit);
        let mut walker = Walker::new(a.store(), at_limit);
        let (mut dirs, mut deepest_file) = (0, 0);
        while let Some(step) = walker.next() {
            if let Step::Entry(v) = step.unwrap() {
                match v.entry.payload {
                    Payload::Dir(_) => dirs += 1,
                    _ => deepest_file = v.depth,
                }
            }
        }
        assert_eq!(dirs, MAX_TREE_DEPTH);
        assert_eq!(
            deepest_file,
            MAX_TREE_DEPTH + 1,
            "a file below the deepest directory"
        );
        let mut walker = Walker::new(a.store(), too_deep);
        let mut dirs = 0;
        let err = loop {
            match walker.next().expect("the walk ends with an error") {
                Ok(Step::Entry(v)) => {
                    assert!(v.depth <= MAX_TREE_DEPTH);
                    dirs += 1;
                }
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(dirs, MAX_TREE_DEPTH);
        assert!(err.to_string().contains("nest too deep"), "{err}");
        assert!(walker.next().is_none());
    }

    fn steps(w: &mut Walker<'_>, skip: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(step) = w.next() {
            match step.unwrap() {
                Step::Entry(v) => {
                    out.push(format!("{} {}", v.depth, String::from_utf8_lossy(&v.path)));
                    if v.path == skip {
                        w.skip();
                    }
                }
                Step::Leave(v) => out.push(format!("leave {}", String::from_utf8_lossy(&v.path))),
                Step::Unreadable { path, .. } => {
                    out.push(format!("unreadable {}", String::from_utf8_lossy(&path)))
                }
            }
        }
        out
    }

    #[test]
    fn pre_order_with_leave_skip_and_unreadable() {
        let (a, root) = small_tree(false);
        let mut w = Walker::new(a.store(), root);
        assert_eq!(
            steps(&mut w, b""),
            [
                "1 a",
                "2 a/b",
                "3 a/b/g",
                "leave a/b",
                "2 a/f",
                "leave a",
                "1 z"
            ]
        );
        assert_eq!(w.dirs_read(), 3);
        let mut w = Walker::new(a.store(), root);
        assert_eq!(steps(&mut w, b"a"), ["1 a", "1 z"]);
        assert_eq!(w.dirs_read(), 1, "a skipped directory is not read");

        let (a, root) = small_tree(true);
        let mut w = Walker::new(a.store(), root);
        assert_eq!(
            steps(&mut w, b""),
            [
                "1 a",
                "2 a/b",
                "unreadable a/b",
                "leave a/b",
                "2 a/f",
                "leave a",
                "1 z"
            ]
        );
        let mut w = Walker::new(a.store(), Id([8; 32]));
        assert_eq!(steps(&mut w, b""), ["unreadable "]);
    }

    #[test]
    fn the_limit_counts_listings_and_charges() {
        let (a, root) = small_tree(false);
        let mut w = Walker::new(a.store(), root).with_limit(5, Id::ZERO);
        let mut n = 0;
        while let Some(step) = w.next() {
            if step.is_err() {
                break;
            }
            n += 1;
        }
        assert_eq!(n, 7, "five entries are allowed");
        let mut w = Walker::new(a.store(), root).with_limit(4, Id::ZERO);
        let err = std::iter::from_fn(|| w.next()).find_map(|s| s.err());
        assert!(matches!(err, Some(Error::LimitExceeded(_))), "{err:?}");
        let mut w = Walker::new(a.store(), root).with_limit(2, Id::ZERO);
        assert!(w.charge(3).is_err());
        assert!(w.next().is_none(), "an error ends the walk");
    }
}
