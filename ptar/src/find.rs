//! Finding entries by name across snapshots.
//!
//! A pattern is a shell pattern of [`crate::pattern::glob_match`] (`*`,
//! `?`, `[...]`, `\` escapes). A pattern without `/` (trailing ones
//! aside) is matched against each entry's base name, as `find -name` does
//! (`*.c` finds every C file at any depth). A pattern with a `/` is matched
//! against the whole member path from the snapshot root, a leading `/` or
//! `./` dropped, and there `*` also matches `/` as in `--exclude`
//! (`src/*.c` finds `src/a/b.c`; `/Makefile` only the top one).
//!
//! Snapshots of one archive share most of their directories, and a
//! directory's tree id says what is under it. The matches found under each
//! directory are kept by tree id (and, when a pattern looks at whole paths,
//! by the directory's path too), so a directory met again in a later
//! snapshot is not read again: finding in many similar snapshots costs
//! about one walk and the directories that changed.

use std::collections::HashMap;
use std::rc::Rc;

use crate::format::tree::{Entry, Payload};
use crate::format::Id;
use crate::pattern::glob_match;
use crate::walk::{check_depth, join, Step, Walker};
use crate::{Archive, Error, Result, Snapshot};

/// One pattern to find entries by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindPattern {
    pat: Vec<u8>,
    whole_path: bool,
}

impl FindPattern {
    /// Parses a pattern (see the [module documentation](self) for what it
    /// is matched against). An empty pattern is refused.
    pub fn new(pattern: &[u8]) -> Result<FindPattern> {
        let mut p = pattern;
        while let Some(rest) = p.strip_suffix(b"/") {
            p = rest;
        }
        let whole_path = p.contains(&b'/');
        while let Some(rest) = p.strip_prefix(b"./").or_else(|| p.strip_prefix(b"/")) {
            p = rest;
        }
        if p.is_empty() {
            return Err(Error::InvalidInput(format!(
                "empty find pattern '{}'",
                String::from_utf8_lossy(pattern)
            )));
        }
        Ok(FindPattern {
            pat: p.to_vec(),
            whole_path,
        })
    }

    /// Whether it is matched against the whole member path (it holds a
    /// `/`), not the base name.
    pub fn is_whole_path(&self) -> bool {
        self.whole_path
    }

    /// Whether the entry at member path `path` matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        if self.whole_path {
            glob_match(&self.pat, path)
        } else {
            let name = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => &path[i + 1..],
                None => path,
            };
            glob_match(&self.pat, name)
        }
    }
}

/// What a search found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FindStats {
    /// Snapshots searched.
    pub snapshots: u64,
    /// Matches reported.
    pub matches: u64,
    /// Directory listings read.
    pub dirs_read: u64,
    /// Directories not read because one with the same tree id (and path,
    /// for whole-path patterns) was searched before.
    pub dirs_reused: u64,
    /// Directories that could not be read: (snapshot, member path, message).
    /// What is under them was not searched. Empty for a complete search.
    pub failures: Vec<(Id, Vec<u8>, String)>,
}

/// The matches under one directory: its entries that match or hold matches,
/// in name order.
struct Node {
    items: Vec<Item>,
    /// Entries under the directory, at any depth (counted against what a
    /// snapshot declares when the node is reused).
    entries: u64,
    /// Levels of directories under it (0 when it holds none), so that a
    /// node reused at another depth is held to the depth limit too.
    height: usize,
}

struct Item {
    name: Vec<u8>,
    /// The entry, when it matches itself.
    hit: Option<Entry>,
    /// Matches below it (a directory holding some).
    below: Option<Rc<Node>>,
}

/// A directory being searched.
struct Frame {
    key: (Id, Vec<u8>),
    items: Vec<Item>,
    entries: u64,
    height: usize,
    /// No directory below failed to read (only complete nodes are kept).
    complete: bool,
    /// The directory's own name and entry when it matched (None for the root).
    own: Option<(Vec<u8>, Option<Entry>)>,
}

impl Frame {
    fn new(key: (Id, Vec<u8>), own: Option<(Vec<u8>, Option<Entry>)>) -> Frame {
        Frame {
            key,
            items: Vec::new(),
            entries: 0,
            height: 0,
            complete: true,
            own,
        }
    }

    /// Takes in a directory's node met under this one.
    fn add(&mut self, name: Vec<u8>, hit: Option<Entry>, node: Rc<Node>) {
        self.entries = self.entries.saturating_add(node.entries);
        self.height = self.height.max(node.height + 1);
        let below = (!node.items.is_empty()).then_some(node);
        if hit.is_some() || below.is_some() {
            self.items.push(Item { name, hit, below });
        }
    }
}

struct Finder<'a> {
    archive: &'a Archive,
    patterns: &'a [FindPattern],
    /// Memo: whether the directory's path is part of its key.
    by_path: bool,
    memo: HashMap<(Id, Vec<u8>), Rc<Node>>,
    stats: FindStats,
}

impl Finder<'_> {
    fn key(&self, id: Id, path: &[u8]) -> (Id, Vec<u8>) {
        (
            id,
            if self.by_path {
                path.to_vec()
            } else {
                Vec::new()
            },
        )
    }

    fn hit(&self, path: &[u8]) -> bool {
        self.patterns.iter().any(|p| p.matches(path))
    }

    /// Closes the directory on top of `stack`, keeping its node when it is
    /// complete; the node, when it was the root's.
    fn close(&mut self, stack: &mut Vec<Frame>) -> Option<Rc<Node>> {
        let done = stack.pop().expect("a frame per open directory");
        let node = Rc::new(Node {
            items: done.items,
            entries: done.entries,
            height: done.height,
        });
        if done.complete {
            self.memo.insert(done.key, node.clone());
        }
        let Some(up) = stack.last_mut() else {
            return Some(node);
        };
        up.complete &= done.complete;
        let (name, hit) = done.own.expect("a directory below the root has an entry");
        up.add(name, hit, node);
        None
    }

    /// Searches one snapshot's trees; the matches, or `None` when its root
    /// cannot be read (recorded as a failure).
    fn search(&mut self, snap: &Snapshot) -> Result<Option<Rc<Node>>> {
        let s = &snap.record.summary;
        let limit = s
            .files
            .saturating_add(s.dirs)
            .saturating_add(s.symlinks)
            .saturating_add(s.hardlinks)
            .saturating_add(s.others);
        let mut walker =
            Walker::new(self.archive.store(), snap.record.root).with_limit(limit, snap.id);
        let root_key = self.key(snap.record.root, b"");
        if let Some(n) = self.memo.get(&root_key).cloned() {
            self.stats.dirs_reused += 1;
            walker.charge(n.entries)?;
            return Ok(Some(n));
        }
        let mut stack = vec![Frame::new(root_key, None)];
        while let Some(step) = walker.next() {
            let v = match step? {
                Step::Entry(v) => v,
                Step::Unreadable { error, .. } if matches!(error, Error::Io { .. }) => {
                    return Err(error)
                }
                Step::Unreadable { path, error } => {
                    self.stats.failures.push((snap.id, path, error.to_string()));
                    if stack.len() == 1 {
                        // The root: nothing of this snapshot can be searched.
                        return Ok(None);
                    }
                    stack.last_mut().expect("the unreadable directory").complete = false;
                    continue;
                }
                Step::Leave(_) => {
                    self.close(&mut stack);
                    continue;
                }
            };
            let hit = self.hit(&v.path);
            let top = stack.last_mut().expect("a frame per open directory");
            top.entries = top.entries.saturating_add(1);
            let Payload::Dir(id) = v.entry.payload else {
                if hit {
                    top.items.push(Item {
                        name: v.entry.name.clone(),
                        hit: Some(v.entry),
                        below: None,
                    });
                }
                continue;
            };
            let name = v.entry.name.clone();
            let hit = hit.then_some(v.entry);
            let key = self.key(id, &v.path);
            if let Some(n) = self.memo.get(&key).cloned() {
                walker.skip();
                self.stats.dirs_reused += 1;
                check_depth(v.depth + n.height, &id)?;
                walker.charge(n.entries)?;
                stack.last_mut().expect("top").add(name, hit, n);
                continue;
            }
            stack.push(Frame::new(key, Some((name, hit))));
        }
        self.stats.dirs_read += walker.dirs_read();
        Ok(self.close(&mut stack))
    }
}

/// Finds, in each of `snapshots` in the order given, the entries whose path
/// matches any of `patterns`, calling `f(snapshot, path, entry)` for each,
/// depth-first in name order (a directory before its contents).
///
/// Directories that cannot be read are listed in [`FindStats::failures`]
/// while the search goes on; it stops on an I/O error, an error from `f`,
/// directories nested deeper than
/// [`MAX_TREE_DEPTH`](crate::format::limits::MAX_TREE_DEPTH), and when a
/// snapshot's trees hold more entries than its record declares.
pub fn find(
    archive: &Archive,
    snapshots: &[Snapshot],
    patterns: &[FindPattern],
    mut f: impl FnMut(&Snapshot, &[u8], &Entry) -> Result<()>,
) -> Result<FindStats> {
    let mut finder = Finder {
        archive,
        patterns,
        by_path: patterns.iter().any(FindPattern::is_whole_path),
        memo: HashMap::new(),
        stats: FindStats::default(),
    };
    for snap in snapshots {
        finder.stats.snapshots += 1;
        let Some(root) = finder.search(snap)? else {
            continue;
        };
        // Report the matches in walk order.
        let mut stack: Vec<(Vec<u8>, Rc<Node>, usize)> = vec![(Vec::new(), root, 0)];
        while let Some((prefix, node, i)) = stack.last_mut() {
            let Some(item) = node.items.get(*i) else {
                stack.pop();
                continue;
            };
            *i += 1;
            let path = join(prefix, &item.name);
            let below = item.below.clone();
            if let Some(e) = &item.hit {
                finder.stats.matches += 1;
                f(snap, &path, e)?;
            }
            if let Some(b) = below {
                stack.push((path, b, 0));
            }
        }
    }
    Ok(finder.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_name_or_whole_path() {
        let p = FindPattern::new(b"*.c").unwrap();
        assert!(!p.is_whole_path());
        assert!(p.matches(b"a/b/x.c"));
        assert!(p.matches(b"x.c"));
        assert!(!p.matches(b"x.c/y"));
        let p = FindPattern::new(b"/src/*.c").unwrap();
        assert!(p.is_whole_path());
        assert!(p.matches(b"src/a/b.c"), "* matches / in a path pattern");
        assert!(!p.matches(b"lib/src/b.c"), "anchored at the root");
        let p = FindPattern::new(b"build/").unwrap();
        assert!(!p.is_whole_path(), "a trailing / alone does not anchor");
        assert!(p.matches(b"x/build"));
        let p = FindPattern::new(b"./build").unwrap();
        assert!(p.is_whole_path(), "a leading ./ or / anchors");
        assert!(p.matches(b"build") && !p.matches(b"x/build"));
        assert!(FindPattern::new(b"/").is_err());
        assert!(FindPattern::new(b"").is_err());
    }
}
