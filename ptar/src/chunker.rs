//! Content-defined chunking: FastCDC 2020 with a gear table from a key (spec §7).

use std::io::Read;

use fastcdc::v2020::{cut_gear, select_masks, Normalization};

use crate::format::header::ChunkerParams;

/// `derive_key` context of the gear table of plain archives.
pub const CONTEXT_PUBLIC_GEAR: &str = "ptar 2026-11-22 v1 public chunker gear table";

/// A configured chunker.
pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

/// Expands a 32-byte key into the 256-entry gear table (BLAKE3 XOF, 2048
/// bytes read as little-endian u64).
pub fn gear_table(key: &[u8; 32]) -> [u64; 256] {
    let mut bytes = [0u8; 2048];
    blake3::Hasher::new_keyed(key)
        .finalize_xof()
        .fill(&mut bytes);
    let mut g = [0u64; 256];
    for (i, v) in g.iter_mut().enumerate() {
        *v = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    g
}

impl Chunker {
    /// A chunker with `params` and the gear table of `gear_key` (the chunker
    /// subkey when encrypted, `None` for the public table of plain archives).
    pub fn new(params: ChunkerParams, gear_key: Option<&[u8; 32]>) -> Chunker {
        let key = match gear_key {
            Some(k) => *k,
            None => blake3::derive_key(CONTEXT_PUBLIC_GEAR, b""),
        };
        let gear = gear_table(&key);
        let mut gear_ls = [0u64; 256];
        for (d, s) in gear_ls.iter_mut().zip(gear.iter()) {
            *d = s << 1;
        }
        let (mask_s, mask_l) = select_masks(params.avg as usize, Normalization::Level1);
        Chunker {
            params,
            gear: Box::new(gear),
            gear_ls: Box::new(gear_ls),
            mask_s,
            mask_l,
        }
    }

    /// Parameters.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `buf`. `buf` must hold at least `max`
    /// bytes unless it is the end of the input.
    pub fn cut(&self, buf: &[u8]) -> usize {
        let p = self.params;
        let (_, n) = cut_gear(
            buf,
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        n
    }

    /// Cut points of a whole in-memory input: chunk lengths in order.
    pub fn chunk_lengths(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.cut(data);
            out.push(n);
            data = &data[n..];
        }
        out
    }
}

/// Splits a reader into chunks with a buffer of bounded size.
pub struct ChunkStream<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<'c, R: Read> ChunkStream<'c, R> {
    /// Chunks `reader`.
    pub fn new(chunker: &'c Chunker, reader: R) -> ChunkStream<'c, R> {
        ChunkStream::with_buffer(chunker, reader, Vec::new())
    }

    /// Chunks `reader` in `buf`, a buffer from an earlier stream's
    /// [`ChunkStream::into_buffer`]: chunking many small files then costs no
    /// allocation and no zeroing per file.
    pub fn with_buffer(chunker: &'c Chunker, reader: R, mut buf: Vec<u8>) -> ChunkStream<'c, R> {
        let cap = (chunker.params.max as usize * 4).max(1 << 20);
        if buf.len() != cap {
            buf.resize(cap, 0);
        }
        ChunkStream {
            chunker,
            reader,
            buf,
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The buffer, for the next stream.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let max = self.chunker.params.max as usize;
        if self.end - self.start >= max || self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the input.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.fill()?;
        if self.start == self.end {
            return Ok(None);
        }
        let n = self.chunker.cut(&self.buf[self.start..self.end]);
        let s = self.start;
        self.start += n;
        Ok(Some(&self.buf[s..s + n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        blake3::Hasher::new()
            .update(b"chunker test")
            .finalize_xof()
            .fill(&mut v);
        v
    }

    #[test]
    fn stream_matches_whole_buffer_and_bounds() {
        let c = Chunker::new(ChunkerParams::DEFAULT, None);
        let d = data(3 << 20);
        let whole = c.chunk_lengths(&d);
        let mut s = ChunkStream::new(&c, &d[..]);
        let mut streamed = Vec::new();
        while let Some(ch) = s.next_chunk().unwrap() {
            streamed.push(ch.len());
        }
        assert_eq!(whole, streamed);
        assert_eq!(whole.iter().sum::<usize>(), d.len());
        for l in &whole[..whole.len() - 1] {
            assert!(*l >= 16 * 1024 && *l <= 256 * 1024);
        }
    }

    #[test]
    fn keyed_tables_cut_differently() {
        let d = data(2 << 20);
        let a = Chunker::new(ChunkerParams::DEFAULT, Some(&[1; 32])).chunk_lengths(&d);
        let b = Chunker::new(ChunkerParams::DEFAULT, Some(&[2; 32])).chunk_lengths(&d);
        assert_ne!(a, b);
    }
}
