//! Directories and file contents as blobs: splitting into pages when writing,
//! walking pages when reading (spec §13, §14).

use crate::format::filemap::FileMapPage;
use crate::format::limits::{MAX_PAGE_ITEMS, MAX_PAGE_LEVELS};
use crate::format::tree::{ChildRef, Content, Entry, Extent, TreePage};
use crate::format::{Id, Kind};
use crate::store::{GenerationWriter, Sink, Store};
use crate::{Error, Region, Result};

/// Most extents kept inline in a tree entry.
pub const INLINE_EXTENTS: usize = 32;
/// A directory whose encoded entries stay under this many bytes is one page.
pub const TREE_PAGE_BYTES: usize = 256 * 1024;
/// Hard cap on a tree page's encoded size before a split is forced.
const TREE_PAGE_MAX_BYTES: usize = 1024 * 1024;
/// Most items in a file-map page.
pub const FILEMAP_PAGE_ITEMS: usize = 16 * 1024;
/// A level-0 file-map page of at least [`FILEMAP_MIN_EXTENTS`] extents ends
/// after a data extent whose chunk id's first two bytes, little-endian, are
/// a multiple of this (about 1 in 1024), so a change inside a large file
/// rewrites only the pages around it, not every page after it.
pub const FILEMAP_EXTENT_CUT: u16 = 1024;
/// Fewest extents in a level-0 page other than the last (which bounds the
/// pages, and so the levels, whatever the chunk ids).
pub const FILEMAP_MIN_EXTENTS: usize = 64;

/// Cuts an extent list into level-0 pages (spec §14.2).
fn split_extents(extents: Vec<Extent>) -> Vec<Vec<Extent>> {
    let mut pages = Vec::new();
    let mut cur = Vec::new();
    for x in extents {
        let cut = match &x {
            Extent::Data { id, .. } => {
                u16::from_le_bytes([id.0[0], id.0[1]]) % FILEMAP_EXTENT_CUT == 0
            }
            Extent::Hole { .. } => false,
        };
        cur.push(x);
        if (cut && cur.len() >= FILEMAP_MIN_EXTENTS) || cur.len() >= FILEMAP_PAGE_ITEMS {
            pages.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        pages.push(cur);
    }
    pages
}

/// Whether a page boundary falls after an item with this name: about one in
/// 256 names, decided by content so an insertion only changes nearby pages.
fn boundary(name: &[u8]) -> bool {
    blake3::hash(name).as_bytes()[0] == 0
}

fn split<T>(items: Vec<T>, name: impl Fn(&T) -> &[u8], size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut pages = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for it in items {
        bytes += size(&it);
        let cut = (cur.len() >= 32 && boundary(name(&it)))
            || bytes >= TREE_PAGE_MAX_BYTES
            || cur.len() + 1 >= 65536;
        cur.push(it);
        if cut {
            pages.push(std::mem::take(&mut cur));
            bytes = 0;
        }
    }
    if !cur.is_empty() {
        pages.push(cur);
    }
    pages
}

/// Stores a directory's entries (sorted by name, unique) and returns the id
/// of its top page.
pub fn write_directory<W: Sink>(w: &mut GenerationWriter<W>, entries: Vec<Entry>) -> Result<Id> {
    let encoded: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            e.write(&mut b);
            b
        })
        .collect();
    let total: usize = encoded.iter().map(|b| b.len()).sum();
    if total <= TREE_PAGE_BYTES {
        return w.put_blob(Kind::Tree, &TreePage::Leaf(entries).to_bytes());
    }
    let items: Vec<(Entry, usize)> = entries
        .into_iter()
        .zip(encoded.iter().map(|b| b.len()))
        .collect();
    let mut level_refs = Vec::new();
    for page in split(items, |(e, _)| &e.name, |(_, n)| *n) {
        let first_name = page[0].0.name.clone();
        let count = page.len() as u64;
        let id = w.put_blob(
            Kind::Tree,
            &TreePage::Leaf(page.into_iter().map(|(e, _)| e).collect()).to_bytes(),
        )?;
        level_refs.push(ChildRef {
            first_name,
            id,
            entries: count,
        });
    }
    let mut level = 1u8;
    while level_refs.len() > 1 {
        if level > MAX_PAGE_LEVELS {
            return Err(Error::InvalidInput("directory too large".into()));
        }
        let pages = split(level_refs, |c| &c.first_name, |c| c.first_name.len() + 42);
        let mut next = Vec::new();
        for page in pages {
            let first_name = page[0].first_name.clone();
            let count = page.iter().map(|c| c.entries).sum();
            let id = w.put_blob(
                Kind::Tree,
                &TreePage::Interior {
                    level,
                    children: page,
                }
                .to_bytes(),
            )?;
            next.push(ChildRef {
                first_name,
                id,
                entries: count,
            });
        }
        level_refs = next;
        level += 1;
    }
    Ok(level_refs[0].id)
}

/// Stores a file's extent list: inline when short, else as file-map pages.
pub fn write_content<W: Sink>(
    w: &mut GenerationWriter<W>,
    extents: Vec<Extent>,
) -> Result<Content> {
    if extents.len() <= INLINE_EXTENTS {
        return Ok(Content::Inline(extents));
    }
    let mut refs: Vec<(Id, u64)> = Vec::new();
    for page in split_extents(extents) {
        let p = FileMapPage::Extents(page);
        let covered = p.covered();
        refs.push((w.put_blob(Kind::FileMap, &p.to_bytes())?, covered));
    }
    let mut level = 1u8;
    while refs.len() > 1 {
        let mut next = Vec::new();
        for page in refs.chunks(FILEMAP_PAGE_ITEMS) {
            let p = FileMapPage::Children {
                level,
                children: page.to_vec(),
            };
            let covered = p.covered();
            next.push((w.put_blob(Kind::FileMap, &p.to_bytes())?, covered));
        }
        refs = next;
        level += 1;
    }
    Ok(Content::Map(refs[0].0))
}

fn tree_error(id: &Id, detail: impl Into<String>) -> Error {
    Error::corrupt(
        Region::Blob {
            id: id.short(),
            kind: Kind::Tree.name(),
        },
        detail,
    )
}

/// Reads all entries of the directory whose top page is `id`, checking page
/// structure and global name order.
pub fn read_directory(store: &Store, id: &Id) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    // (page id, expected level, expected first name, expected entries below;
    // `None` for the top page)
    type Want = (Id, Option<u8>, Option<Vec<u8>>, Option<u64>);
    let mut stack: Vec<Want> = vec![(*id, None, None, None)];
    let mut pages = 0usize;
    while let Some((pid, want_level, want_first, want_count)) = stack.pop() {
        pages += 1;
        if pages > MAX_PAGE_ITEMS as usize {
            return Err(tree_error(id, "directory has too many pages"));
        }
        let page = TreePage::parse(&store.read_blob(&pid, Kind::Tree)?).map_err(|m| {
            m.at(Region::Blob {
                id: pid.short(),
                kind: Kind::Tree.name(),
            })
        })?;
        let level = match &page {
            TreePage::Leaf(_) => 0,
            TreePage::Interior { level, .. } => *level,
        };
        if let Some(l) = want_level {
            if l != level {
                return Err(tree_error(
                    &pid,
                    format!("page at level {level}, expected {l}"),
                ));
            }
        }
        match page {
            TreePage::Leaf(entries) => {
                if want_count.is_some_and(|c| c != entries.len() as u64) {
                    return Err(tree_error(
                        &pid,
                        "page holds a different number of entries than its parent says",
                    ));
                }
                if entries.is_empty() && want_level.is_some() {
                    return Err(tree_error(&pid, "empty leaf page under an interior page"));
                }
                if let (Some(first), Some(e)) = (&want_first, entries.first()) {
                    if *first != e.name {
                        return Err(tree_error(
                            &pid,
                            "page's first name differs from its parent's reference",
                        ));
                    }
                }
                if let (Some(prev), Some(e)) = (out.last(), entries.first()) {
                    if prev.name >= e.name {
                        return Err(tree_error(&pid, "pages are out of order"));
                    }
                }
                out.extend(entries);
            }
            TreePage::Interior { level, children } => {
                let below = children
                    .iter()
                    .try_fold(0u64, |a, c| a.checked_add(c.entries));
                if want_count.is_some() && below != want_count {
                    return Err(tree_error(
                        &pid,
                        "page holds a different number of entries than its parent says",
                    ));
                }
                if let Some(first) = &want_first {
                    if *first != children[0].first_name {
                        return Err(tree_error(
                            &pid,
                            "page's first name differs from its parent's reference",
                        ));
                    }
                }
                for c in children.into_iter().rev() {
                    stack.push((c.id, Some(level - 1), Some(c.first_name), Some(c.entries)));
                }
            }
        }
    }
    Ok(out)
}

/// Finds the entry called `name` in the directory whose top page is `id`,
/// reading one page per level of the directory's B-tree rather than all of
/// its pages.
pub fn find_in_directory(store: &Store, id: &Id, name: &[u8]) -> Result<Option<Entry>> {
    let mut pid = *id;
    let mut above: Option<u8> = None;
    loop {
        let page = TreePage::parse(&store.read_blob(&pid, Kind::Tree)?).map_err(|m| {
            m.at(Region::Blob {
                id: pid.short(),
                kind: Kind::Tree.name(),
            })
        })?;
        match page {
            TreePage::Leaf(entries) => {
                if above.is_some_and(|l| l != 1) {
                    return Err(tree_error(&pid, "leaf page below a page above level 1"));
                }
                return Ok(entries
                    .binary_search_by(|e| e.name.as_slice().cmp(name))
                    .ok()
                    .map(|i| entries[i].clone()));
            }
            TreePage::Interior { level, children } => {
                if above.is_some_and(|l| l != level + 1) {
                    return Err(tree_error(&pid, "interior page at the wrong level"));
                }
                // The last child whose first name is not after `name`.
                let i = children.partition_point(|c| c.first_name.as_slice() <= name);
                let Some(child) = i.checked_sub(1).map(|i| &children[i]) else {
                    return Ok(None);
                };
                pid = child.id;
                above = Some(level);
            }
        }
    }
}

/// All extents of a file, resolving file maps; checks they cover `size`.
pub fn read_extents(store: &Store, content: &Content, size: u64) -> Result<Vec<Extent>> {
    let extents = match content {
        Content::Inline(e) => e.clone(),
        Content::Map(id) => {
            let mut out = Vec::new();
            let mut covered: u64 = 0;
            let mut pages = 0usize;
            let mut stack: Vec<(Id, Option<u8>, Option<u64>)> = vec![(*id, None, None)];
            while let Some((pid, want_level, want_cover)) = stack.pop() {
                pages += 1;
                if pages > MAX_PAGE_ITEMS as usize {
                    return Err(Error::corrupt(
                        Region::Blob {
                            id: id.short(),
                            kind: Kind::FileMap.name(),
                        },
                        "file map has too many pages",
                    ));
                }
                let region = || Region::Blob {
                    id: pid.short(),
                    kind: Kind::FileMap.name(),
                };
                let page = FileMapPage::parse(&store.read_blob(&pid, Kind::FileMap)?)
                    .map_err(|m| m.at(region()))?;
                let level = match &page {
                    FileMapPage::Extents(_) => 0,
                    FileMapPage::Children { level, .. } => *level,
                };
                if want_level.is_some_and(|l| l != level) {
                    return Err(Error::corrupt(region(), "file map page at the wrong level"));
                }
                if want_cover.is_some_and(|c| c != page.covered()) {
                    return Err(Error::corrupt(
                        region(),
                        "file map page covers a different length than its parent says",
                    ));
                }
                match page {
                    FileMapPage::Extents(es) => {
                        covered = covered.saturating_add(
                            es.iter().map(|e| e.len()).fold(0u64, u64::saturating_add),
                        );
                        out.extend(es);
                        if covered > size {
                            return Err(Error::corrupt(
                                region(),
                                "file map covers more than the file size",
                            ));
                        }
                    }
                    FileMapPage::Children { level, children } => {
                        for (cid, cover) in children.into_iter().rev() {
                            stack.push((cid, Some(level - 1), Some(cover)));
                        }
                    }
                }
            }
            out
        }
    };
    let total: u64 = extents.iter().map(|e| e.len()).sum();
    if total != size {
        let id = match content {
            Content::Map(id) => id.short(),
            Content::Inline(_) => "inline".into(),
        };
        return Err(Error::corrupt(
            Region::Blob {
                id,
                kind: Kind::FileMap.name(),
            },
            format!("extents cover {total} bytes, the entry says {size}"),
        ));
    }
    Ok(extents)
}
