//! Writing one generation: records, then index, snapshot table, optional
//! key-slot table, and the footer (spec §15).

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use crate::codec;
use crate::crypto::{self, Entropy, Keys, RecordContext};
use crate::format::footer::{Footer, FLAG_MAC, FLAG_SIGNED, FOOTER_LEN};
use crate::format::header::{keyslots_to_bytes, KeySlot};
use crate::format::index::{self, IndexEntry};
use crate::format::limits::MAX_BLOB_LEN;
use crate::format::table::{self, TableEntry};
use crate::format::{Id, Kind, FORMAT_MAJOR, FORMAT_MINOR};
use crate::store::reader::Store;
use crate::{Error, Result};

/// Where a generation's bytes go. `sync_data` makes what was written durable
/// (a no-op for pipes and memory).
pub trait Sink: Write {
    /// Flushes and makes the written bytes durable.
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.flush()
    }
}

impl Sink for Vec<u8> {}
impl Sink for std::io::Stdout {}

impl Sink for std::io::BufWriter<std::fs::File> {
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.flush()?;
        self.get_ref().sync_data()
    }
}

/// The archive-wide facts a generation writer needs.
pub struct ArchiveContext {
    /// Archive UUID.
    pub uuid: [u8; 16],
    /// Minor version in the header.
    pub header_minor: u16,
    /// BLAKE3 of the header bytes.
    pub header_hash: [u8; 32],
    /// Keys when encrypted.
    pub keys: Option<Arc<Keys>>,
    /// The archive as committed so far (for dedup and the footer chain), or
    /// `None` when creating.
    pub existing: Option<Arc<Store>>,
}

/// Counters for one generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Blobs written.
    pub blobs: u64,
    /// Record bytes written.
    pub bytes: u64,
    /// Blobs not written because the archive already had them.
    pub deduplicated: u64,
}

/// Appends one generation to a sink positioned at the end of the archive.
pub struct GenerationWriter<W: Sink> {
    out: W,
    pos: u64,
    ctx: ArchiveContext,
    generation: u64,
    packfile_offset: u64,
    packfile_hash: blake3::Hasher,
    entries: Vec<IndexEntry>,
    written: HashSet<Id>,
    entropy: Box<dyn Entropy>,
    stats: WriteStats,
}

impl<W: Sink> GenerationWriter<W> {
    /// Starts a generation at byte `pos` (the header's end when creating, the
    /// last footer's end when appending).
    pub fn new(
        out: W,
        pos: u64,
        ctx: ArchiveContext,
        entropy: Box<dyn Entropy>,
    ) -> GenerationWriter<W> {
        let generation = ctx
            .existing
            .as_ref()
            .and_then(|s| s.generations().last())
            .map_or(1, |g| g.footer.generation + 1);
        GenerationWriter {
            out,
            pos,
            ctx,
            generation,
            packfile_offset: pos,
            packfile_hash: blake3::Hasher::new(),
            entries: Vec::new(),
            written: HashSet::new(),
            entropy,
            stats: WriteStats::default(),
        }
    }

    /// The generation number being written.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Counters so far.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Keys, when encrypted.
    pub fn keys(&self) -> Option<&Keys> {
        self.ctx.keys.as_deref()
    }

    /// The archive UUID.
    pub fn uuid(&self) -> [u8; 16] {
        self.ctx.uuid
    }

    /// Byte offset the next record will be written at.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether the archive (committed or this generation) holds `id`.
    pub fn has_blob(&self, id: &Id) -> Result<bool> {
        if self.written.contains(id) {
            return Ok(true);
        }
        match &self.ctx.existing {
            Some(s) => s.contains(id),
            None => Ok(false),
        }
    }

    /// Stores a blob unless the archive already has it; returns its id.
    pub fn put_blob(&mut self, kind: Kind, data: &[u8]) -> Result<Id> {
        self.put(kind, data, true)
    }

    /// Stores a blob even when an earlier generation already holds it (this
    /// generation still holds each id once). For repair tools and for tests
    /// of readers; normal writers use [`GenerationWriter::put_blob`].
    pub fn put_blob_again(&mut self, kind: Kind, data: &[u8]) -> Result<Id> {
        self.put(kind, data, false)
    }

    fn put(&mut self, kind: Kind, data: &[u8], dedup_committed: bool) -> Result<Id> {
        if data.is_empty() {
            return Err(Error::InvalidInput(format!(
                "an empty {} blob",
                kind.name()
            )));
        }
        if data.len() > MAX_BLOB_LEN as usize {
            return Err(Error::InvalidInput(format!(
                "a {} blob of {} bytes exceeds the limit",
                kind.name(),
                data.len()
            )));
        }
        let id = crypto::content_id(self.ctx.keys.as_deref(), kind, data);
        let present = if dedup_committed {
            self.has_blob(&id)?
        } else {
            self.written.contains(&id)
        };
        if present {
            self.stats.deduplicated += 1;
            return Ok(id);
        }
        let (codec, payload) = codec::compress(data);
        let raw_len = data.len() as u32;
        let record = match self.ctx.keys.as_deref() {
            Some(keys) => {
                let mut nonce = [0u8; 24];
                self.entropy.fill(&mut nonce);
                let rc = RecordContext {
                    uuid: &self.ctx.uuid,
                    minor: self.ctx.header_minor,
                    kind,
                    codec,
                    raw_len,
                    offset: self.pos,
                };
                crypto::seal_record(keys, &rc, &nonce, &payload)
            }
            None => payload,
        };
        self.write_raw(&record)?;
        self.entries.push(IndexEntry {
            id,
            record_offset: self.pos - record.len() as u64,
            record_len: record.len() as u32,
            raw_len,
            blob_offset: 0,
            blob_len: raw_len,
            kind,
            codec,
        });
        self.written.insert(id);
        self.stats.blobs += 1;
        self.stats.bytes += record.len() as u64;
        Ok(id)
    }

    fn write_raw(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.packfile_hash.update(b);
        self.pos += b.len() as u64;
        Ok(())
    }

    fn write_section(&mut self, b: &[u8]) -> Result<(u64, [u8; 32])> {
        let off = self.pos;
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok((off, *blake3::hash(b).as_bytes()))
    }

    /// Writes index, snapshot table, optional key slots and the footer, with
    /// the data made durable before the footer is written. Returns the sink
    /// and the footer.
    pub fn finish(
        mut self,
        snapshots: &[TableEntry],
        keyslots: Option<&[KeySlot]>,
        signer: Option<&ed25519_dalek::SigningKey>,
        time_ns: i64,
    ) -> Result<(W, Footer)> {
        let index_offset = self.pos;
        let packfile_hash = *self.packfile_hash.finalize().as_bytes();
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable_by_key(|e| e.id);
        let (_, index_hash) = self.write_section(&index::to_bytes(&entries))?;
        let index_len = self.pos - index_offset;
        let (table_offset, table_hash) = self.write_section(&table::to_bytes(snapshots))?;
        let table_len = self.pos - table_offset;
        let (mut keyslots_offset, mut keyslots_len, mut keyslots_hash) = (0, 0, [0; 32]);
        if let Some(slots) = keyslots {
            let (o, h) = self.write_section(&keyslots_to_bytes(slots))?;
            keyslots_offset = o;
            keyslots_len = self.pos - o;
            keyslots_hash = h;
        }
        // Everything the footer commits to is durable before the footer exists.
        self.out.sync_data()?;
        let existing = self.ctx.existing.as_deref();
        let (prev_footer_offset, prev_footer_hash) =
            match existing.and_then(|s| s.generations().last()) {
                Some(g) => {
                    let s = existing.expect("has generations");
                    let b = s.slice(g.footer_offset, FOOTER_LEN as u64);
                    (g.footer_offset, *blake3::hash(b).as_bytes())
                }
                None => (0, [0; 32]),
            };
        let mut flags = 0;
        if self.ctx.keys.is_some() {
            flags |= FLAG_MAC;
        }
        if signer.is_some() {
            flags |= FLAG_SIGNED;
        }
        let mut f = Footer {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            flags,
            uuid: self.ctx.uuid,
            generation: self.generation,
            packfile_offset: self.packfile_offset,
            index_offset,
            index_len,
            table_offset,
            table_len,
            keyslots_offset,
            keyslots_len,
            prev_footer_offset,
            footer_end: self.pos + FOOTER_LEN as u64,
            time_ns,
            header_hash: self.ctx.header_hash,
            prev_footer_hash,
            packfile_hash,
            index_hash,
            table_hash,
            keyslots_hash,
            ..Footer::default()
        };
        f.tag = crypto::footer_tag(self.ctx.keys.as_deref(), &f.committed_bytes());
        if let Some(sk) = signer {
            use ed25519_dalek::Signer;
            f.signer = sk.verifying_key().to_bytes();
            f.signature = sk.sign(&f.signed_message()).to_bytes();
        }
        self.out.write_all(&f.to_bytes())?;
        self.out.sync_data()?;
        Ok((self.out, f))
    }
}
