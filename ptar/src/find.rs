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

use crate::format::limits::MAX_TREE_DEPTH;
use crate::format::tree::{Entry, Payload};
use crate::format::{Id, Kind};
use crate::pattern::glob_match;
use crate::{Archive, Error, Region, Result, Snapshot};

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
    path: Vec<u8>,
    depth: usize,
    todo: std::vec::IntoIter<Entry>,
    items: Vec<Item>,
    entries: u64,
    /// No directory below failed to read (only complete nodes are kept).
    complete: bool,
    /// The directory's own entry when it matched (None for the root).
    own: Option<(Vec<u8>, Option<Entry>)>,
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 1 + name.len());
    p.extend_from_slice(prefix);
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
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
        let mut charged: u64 = 0;
        let mut charge = |n: u64| -> Result<()> {
            charged = charged.saturating_add(n);
            if charged > limit {
                return Err(Error::LimitExceeded(format!(
                    "snapshot {} holds more entries than the {limit} its record declares",
                    snap.id.short()
                )));
            }
            Ok(())
        };
        let root_key = self.key(snap.record.root, b"");
        if let Some(n) = self.memo.get(&root_key) {
            self.stats.dirs_reused += 1;
            charge(n.entries)?;
            return Ok(Some(n.clone()));
        }
        let root = match self.archive.read_dir(&snap.record.root) {
            Ok(r) => r,
            Err(e) if matches!(e, Error::Io { .. }) => return Err(e),
            Err(e) => {
                self.stats
                    .failures
                    .push((snap.id, Vec::new(), e.to_string()));
                return Ok(None);
            }
        };
        self.stats.dirs_read += 1;
        charge(root.len() as u64)?;
        let mut stack = vec![Frame {
            key: root_key,
            path: Vec::new(),
            depth: 1,
            entries: root.len() as u64,
            todo: root.into_iter(),
            items: Vec::new(),
            complete: true,
            own: None,
        }];
        loop {
            let top = stack.last_mut().expect("a frame until the root is done");
            let Some(e) = top.todo.next() else {
                let done = stack.pop().expect("top");
                let node = Rc::new(Node {
                    items: done.items,
                    entries: done.entries,
                });
                if done.complete {
                    self.memo.insert(done.key, node.clone());
                }
                let Some(up) = stack.last_mut() else {
                    return Ok(Some(node));
                };
                up.entries = up.entries.saturating_add(node.entries);
                up.complete &= done.complete;
                let (name, hit) = done.own.expect("a directory below the root has an entry");
                let below = (!node.items.is_empty()).then_some(node);
                if hit.is_some() || below.is_some() {
                    up.items.push(Item { name, hit, below });
                }
                continue;
            };
            let path = join(&top.path, &e.name);
            let depth = top.depth;
            let hit = self.hit(&path);
            let Payload::Dir(id) = e.payload else {
                if hit {
                    top.items.push(Item {
                        name: e.name.clone(),
                        hit: Some(e),
                        below: None,
                    });
                }
                continue;
            };
            let name = e.name.clone();
            let hit = hit.then_some(e);
            let key = self.key(id, &path);
            if let Some(n) = self.memo.get(&key).cloned() {
                self.stats.dirs_reused += 1;
                charge(n.entries)?;
                let top = stack.last_mut().expect("top");
                top.entries = top.entries.saturating_add(n.entries);
                let below = (!n.items.is_empty()).then_some(n);
                if hit.is_some() || below.is_some() {
                    top.items.push(Item { name, hit, below });
                }
                continue;
            }
            if depth >= MAX_TREE_DEPTH {
                return Err(Error::corrupt(
                    Region::Blob {
                        id: id.short(),
                        kind: Kind::Tree.name(),
                    },
                    "directories nest too deep",
                ));
            }
            let kids = match self.archive.read_dir(&id) {
                Ok(k) => k,
                Err(e) if matches!(e, Error::Io { .. }) => return Err(e),
                Err(err) => {
                    self.stats.failures.push((snap.id, path, err.to_string()));
                    let top = stack.last_mut().expect("top");
                    top.complete = false;
                    if hit.is_some() {
                        top.items.push(Item {
                            name,
                            hit,
                            below: None,
                        });
                    }
                    continue;
                }
            };
            self.stats.dirs_read += 1;
            charge(kids.len() as u64)?;
            stack.push(Frame {
                key,
                path,
                depth: depth + 1,
                entries: kids.len() as u64,
                todo: kids.into_iter(),
                items: Vec::new(),
                complete: true,
                own: Some((name, hit)),
            });
        }
    }
}

/// Finds, in each of `snapshots` in the order given, the entries whose path
/// matches any of `patterns`, calling `f(snapshot, path, entry)` for each,
/// depth-first in name order (a directory before its contents).
///
/// Directories that cannot be read are listed in [`FindStats::failures`]
/// while the search goes on; it stops on an I/O error, an error from `f`,
/// directories nested deeper than [`MAX_TREE_DEPTH`], and when a
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
