//! Reading one file of a snapshot in place: [`FileReader`] implements
//! [`Read`] and [`Seek`] over the file's extents.
//!
//! Nothing is read until asked for. A seek costs nothing; the read after it
//! descends the file map (one page per level, each page checked against the
//! length its parent says it covers) to the extent holding the position,
//! and decodes that one chunk. Reading one byte at the end of a 10 GB file
//! reads two or three file-map pages and one chunk. Holes read as zeros
//! without touching the archive.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use crate::format::filemap::FileMapPage;
use crate::format::tree::{Content, Entry, Extent, Payload};
use crate::format::{Id, Kind};
use crate::store::Store;
use crate::{Error, Region, Result};

/// A level-0 run of extents, and where in the file it starts.
struct ExtentPage {
    /// File offset of each extent, in order; the page covers
    /// `[starts[0], end)`.
    starts: Vec<u64>,
    extents: Vec<Extent>,
    end: u64,
}

impl ExtentPage {
    /// The page, or `None` when its lengths overflow.
    fn new(start: u64, extents: Vec<Extent>) -> Option<ExtentPage> {
        let mut starts = Vec::with_capacity(extents.len());
        let mut at = start;
        for e in &extents {
            starts.push(at);
            at = at.checked_add(e.len())?;
        }
        Some(ExtentPage {
            starts,
            extents,
            end: at,
        })
    }

    fn covers(&self, pos: u64) -> bool {
        self.starts.first().is_some_and(|&s| s <= pos) && pos < self.end
    }

    /// The extent holding `pos` (which the page covers), and its start.
    fn find(&self, pos: u64) -> (u64, Extent) {
        let i = self.starts.partition_point(|&s| s <= pos) - 1;
        (self.starts[i], self.extents[i])
    }
}

/// A regular file of a snapshot, read in place. Made by
/// [`Archive::open_file`](crate::Archive::open_file) or
/// [`Archive::file_reader`](crate::Archive::file_reader).
///
/// Every chunk is checked against its id as it is read; a damaged chunk or
/// file map makes `read` fail with an [`io::Error`] whose inner error is the
/// library's [`Error`] naming the damaged blob (`e.get_ref()` then
/// `downcast_ref::<ptar::Error>()`). The reader holds the archive open: it
/// is `Send` and `'static`, and many readers may read one archive at once.
pub struct FileReader {
    store: Arc<Store>,
    content: Content,
    size: u64,
    pos: u64,
    page: Option<ExtentPage>,
    /// The chunk read last: its start in the file, and its bytes.
    chunk: Option<(u64, Vec<u8>)>,
    chunks_read: u64,
    map_pages_read: u64,
}

impl FileReader {
    /// A reader of a regular file's entry (not a hard link: resolve it
    /// first, as [`Archive::file_reader`](crate::Archive::file_reader) does).
    pub(crate) fn new(store: Arc<Store>, entry: &Entry) -> Result<FileReader> {
        let Payload::File(content) = &entry.payload else {
            return Err(Error::InvalidInput(format!(
                "'{}' is not a regular file",
                String::from_utf8_lossy(&entry.name)
            )));
        };
        Ok(FileReader {
            store,
            content: content.clone(),
            size: entry.size,
            pos: 0,
            page: None,
            chunk: None,
            chunks_read: 0,
            map_pages_read: 0,
        })
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Chunks decoded so far (a chunk read again after another was read in
    /// between counts again).
    pub fn chunks_read(&self) -> u64 {
        self.chunks_read
    }

    /// File-map pages read so far.
    pub fn map_pages_read(&self) -> u64 {
        self.map_pages_read
    }

    /// The extent page covering `pos` (< size), reading it when needed.
    fn page_for(&mut self, pos: u64) -> Result<&ExtentPage> {
        if !self.page.as_ref().is_some_and(|p| p.covers(pos)) {
            let page = self.load_page(pos)?;
            self.page = Some(page);
        }
        Ok(self.page.as_ref().expect("just loaded"))
    }

    fn load_page(&mut self, pos: u64) -> Result<ExtentPage> {
        let root = match &self.content {
            Content::Inline(extents) => {
                let page = ExtentPage::new(0, extents.clone()).filter(|p| p.end == self.size);
                let Some(page) = page else {
                    return Err(Error::corrupt(
                        Region::Blob {
                            id: "inline".into(),
                            kind: Kind::FileMap.name(),
                        },
                        format!(
                            "inline extents do not cover the {} bytes of the entry",
                            self.size
                        ),
                    ));
                };
                return Ok(page);
            }
            Content::Map(id) => *id,
        };
        let (mut id, mut base, mut cover, mut want_level) = (root, 0u64, self.size, None::<u8>);
        loop {
            let region = Region::Blob {
                id: id.short(),
                kind: Kind::FileMap.name(),
            };
            self.map_pages_read += 1;
            let page = FileMapPage::parse(&self.store.read_blob(&id, Kind::FileMap)?)
                .map_err(|m| m.at(region.clone()))?;
            if page.covered() != cover {
                return Err(Error::corrupt(
                    region,
                    format!(
                        "file map page covers {} bytes, {cover} expected",
                        page.covered()
                    ),
                ));
            }
            match page {
                FileMapPage::Extents(extents) => {
                    if want_level.is_some_and(|l| l != 0) {
                        return Err(Error::corrupt(region, "file map page at the wrong level"));
                    }
                    // Within the file's size: the lengths were checked.
                    return Ok(ExtentPage::new(base, extents).expect("covers at most the size"));
                }
                FileMapPage::Children { level, children } => {
                    if want_level.is_some_and(|l| l != level) {
                        return Err(Error::corrupt(region, "file map page at the wrong level"));
                    }
                    let mut at = base;
                    let (child, len) = children
                        .iter()
                        .find(|(_, len)| {
                            let hit = pos < at + len;
                            if !hit {
                                at += len;
                            }
                            hit
                        })
                        .copied()
                        .expect("the page covers the position");
                    (id, base, cover, want_level) = (child, at, len, Some(level - 1));
                }
            }
        }
    }

    /// Reads `len` bytes of chunk `id` (which starts at `start` in the file)
    /// into the chunk buffer.
    fn load_chunk(&mut self, start: u64, id: &Id, len: u32) -> Result<()> {
        let mut buf = match self.chunk.take() {
            Some((_, b)) => b,
            None => Vec::new(),
        };
        let got = self.store.with_blob(id, Kind::Chunk, |b| {
            buf.clear();
            buf.extend_from_slice(b);
            b.len()
        })?;
        if got != len as usize {
            return Err(Error::corrupt(
                Region::Blob {
                    id: id.short(),
                    kind: Kind::Chunk.name(),
                },
                format!("chunk holds {got} bytes, the file map says {len}"),
            ));
        }
        self.chunks_read += 1;
        self.chunk = Some((start, buf));
        Ok(())
    }

    fn read_inner(&mut self, out: &mut [u8]) -> Result<usize> {
        if out.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let pos = self.pos;
        let (start, extent) = self.page_for(pos)?.find(pos);
        let within = pos - start;
        let n = match extent {
            Extent::Hole { len } => {
                let n = (len - within).min(out.len() as u64) as usize;
                out[..n].fill(0);
                n
            }
            Extent::Data { len, id } => {
                if !matches!(&self.chunk, Some((s, _)) if *s == start) {
                    self.load_chunk(start, &id, len)?;
                }
                let bytes = &self.chunk.as_ref().expect("loaded").1[within as usize..];
                let n = bytes.len().min(out.len());
                out[..n].copy_from_slice(&bytes[..n]);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf).map_err(io::Error::other)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("size", &self.size)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}
