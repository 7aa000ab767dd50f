//! The content of a blob record (spec §8.3): the kind and length of each blob,
//! then the blobs back to back.
//!
//! ```text
//! LE32 n (>= 1) || n × kind u8 || n × LE32 length (>= 1) || blobs
//! ```
//!
//! A record names its blobs' kinds and lengths but not their ids: a reader
//! that finds a record without an index (salvage, spec §19) recomputes them.

use super::{malformed, Kind, Malformed, Put};

/// The blobs of one record, as ranges of its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordLayout {
    /// Kind of each blob, by ordinal.
    pub kinds: Vec<Kind>,
    /// Offset of each blob in the content, by ordinal, plus the content length.
    pub bounds: Vec<usize>,
}

impl RecordLayout {
    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Whether the record holds no blob (never true of a parsed record).
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The kind and byte range of blob `ordinal`, if the record has it.
    pub fn blob(&self, ordinal: u32) -> Option<(Kind, std::ops::Range<usize>)> {
        let i = ordinal as usize;
        let kind = *self.kinds.get(i)?;
        Some((kind, self.bounds[i]..self.bounds[i + 1]))
    }

    /// Parses a record's content (spec §8.3).
    pub fn parse(content: &[u8]) -> Result<RecordLayout, Malformed> {
        let mut r = super::Reader::new(content);
        let n = r.count(5, u32::MAX, "blob count")?;
        if n == 0 {
            return malformed("blob record holds no blob");
        }
        let kinds = r
            .take(n, "blob kinds")?
            .iter()
            .map(|&k| Kind::from_u8(k).ok_or(k))
            .collect::<Result<Vec<_>, u8>>()
            .or_else(|k| malformed(format!("blob kind {k} is not defined")))?;
        let mut bounds = Vec::with_capacity(n + 1);
        let mut at = 4 + 5 * n;
        bounds.push(at);
        for _ in 0..n {
            let len = r.u32("blob length")? as usize;
            if len == 0 {
                return malformed("blob length is 0");
            }
            at = match at.checked_add(len) {
                Some(end) if end <= content.len() => end,
                _ => return malformed("blob lengths run past the record"),
            };
            bounds.push(at);
        }
        if at != content.len() {
            return malformed(format!(
                "blob lengths leave {} bytes of the record unused",
                content.len() - at
            ));
        }
        Ok(RecordLayout { kinds, bounds })
    }
}

/// Builds a record's content from blobs added in order.
#[derive(Default)]
pub struct RecordBuilder {
    kinds: Vec<u8>,
    lens: Vec<u32>,
    data: Vec<u8>,
}

impl RecordBuilder {
    /// An empty record.
    pub fn new() -> RecordBuilder {
        RecordBuilder::default()
    }

    /// Adds a blob; returns its ordinal.
    pub fn push(&mut self, kind: Kind, blob: &[u8]) -> u32 {
        assert!(!blob.is_empty(), "blobs are at least one byte long");
        self.kinds.push(kind as u8);
        self.lens
            .push(u32::try_from(blob.len()).expect("blobs are at most 16 MiB"));
        self.data.extend_from_slice(blob);
        u32::try_from(self.kinds.len() - 1).expect("a record holds fewer than 2^32 blobs")
    }

    /// Number of blobs so far.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// Bytes the content will take.
    pub fn content_len(&self) -> usize {
        4 + 5 * self.kinds.len() + self.data.len()
    }

    /// The record's content.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content_len());
        out.put_u32(u32::try_from(self.kinds.len()).expect("counted above"));
        out.put(&self.kinds);
        for l in &self.lens {
            out.put_u32(*l);
        }
        out.put(&self.data);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut b = RecordBuilder::new();
        assert_eq!(b.push(Kind::Chunk, b"abc"), 0);
        assert_eq!(b.push(Kind::Tree, b"de"), 1);
        let content = b.finish();
        let l = RecordLayout::parse(&content).unwrap();
        assert_eq!(l.len(), 2);
        let (k, r) = l.blob(1).unwrap();
        assert_eq!((k, &content[r]), (Kind::Tree, &b"de"[..]));
        assert!(l.blob(2).is_none());
    }

    #[test]
    fn malformed_records_are_refused() {
        let mut b = RecordBuilder::new();
        b.push(Kind::Chunk, b"abc");
        let good = b.finish();
        let mut extra = good.clone();
        extra.push(0);
        assert!(RecordLayout::parse(&extra).is_err());
        assert!(RecordLayout::parse(&good[..good.len() - 1]).is_err());
        let mut kind = good.clone();
        kind[4] = 9;
        assert!(RecordLayout::parse(&kind).is_err());
        let mut zero = good.clone();
        zero[5..9].copy_from_slice(&0u32.to_le_bytes());
        assert!(RecordLayout::parse(&zero).is_err());
        assert!(RecordLayout::parse(&0u32.to_le_bytes()).is_err());
        let mut huge = good;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(RecordLayout::parse(&huge).is_err());
    }
}
