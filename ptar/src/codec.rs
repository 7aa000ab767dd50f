//! Compression of record payloads (spec §8.2).

use crate::format::Codec;

/// How a writer compresses records. The codec actually used is recorded per
/// record, so archives mix them freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Store everything as is.
    None,
    /// LZ4 (`--fast`): the fastest codec, about half as good as zstd on text.
    Lz4,
    /// Zstandard at a level from 1 to 22.
    Zstd(i32),
}

impl Compression {
    /// What writers use by default: zstd level 3 on solid records.
    pub const DEFAULT: Compression = Compression::Zstd(3);
    /// `--best`: zstd level 19, slow, for archives that are written once and
    /// shipped.
    pub const BEST: Compression = Compression::Zstd(19);
}

impl Default for Compression {
    fn default() -> Compression {
        Compression::DEFAULT
    }
}

/// A compressor that keeps its state between records (a zstd context is
/// worth reusing: allocating one costs more than compressing a small record).
pub struct Compressor {
    choice: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl Compressor {
    /// A compressor for `choice`.
    pub fn new(choice: Compression) -> Compressor {
        Compressor { choice, zstd: None }
    }

    /// Compresses `data`, or stores it when compression does not make it
    /// strictly smaller (spec §8.2).
    pub fn compress(&mut self, data: &[u8]) -> (Codec, Vec<u8>) {
        if data.is_empty() {
            return (Codec::Stored, Vec::new());
        }
        let packed = match self.choice {
            Compression::None => None,
            Compression::Lz4 => Some((Codec::Lz4, lz4_flex::block::compress(data))),
            Compression::Zstd(level) => {
                let level = level.clamp(1, 22);
                if self.zstd.is_none() {
                    self.zstd = zstd::bulk::Compressor::new(level).ok();
                }
                self.zstd
                    .as_mut()
                    .and_then(|z| z.compress(data).ok())
                    .map(|c| (Codec::Zstd, c))
            }
        };
        match packed {
            Some((codec, c)) if c.len() < data.len() => (codec, c),
            _ => (Codec::Stored, data.to_vec()),
        }
    }
}

/// Compresses `data` once with `choice` (see [`Compressor::compress`]).
pub fn compress(choice: Compression, data: &[u8]) -> (Codec, Vec<u8>) {
    Compressor::new(choice).compress(data)
}

/// Decompresses into a fresh buffer of exactly `raw_len` bytes; any other
/// outcome is an error. Only call this on authenticated bytes.
pub fn decompress(codec: Codec, data: &[u8], raw_len: u32) -> Result<Vec<u8>, String> {
    match codec {
        Codec::Stored => {
            if data.len() != raw_len as usize {
                return Err(format!(
                    "stored payload is {} bytes, expected {raw_len}",
                    data.len()
                ));
            }
            Ok(data.to_vec())
        }
        Codec::Lz4 => {
            let mut out = vec![0u8; raw_len as usize];
            match lz4_flex::block::decompress_into(data, &mut out) {
                Ok(n) if n == raw_len as usize => Ok(out),
                Ok(n) => Err(format!(
                    "LZ4 payload decodes to {n} bytes, expected {raw_len}"
                )),
                Err(e) => Err(format!("LZ4 payload does not decode: {e}")),
            }
        }
        Codec::Zstd => zstd_decompress(data, raw_len),
    }
}

/// One zstd frame into exactly `raw_len` bytes. Decoding in one pass into a
/// buffer of that size bounds memory by the plaintext length, whatever window
/// size the frame claims.
fn zstd_decompress(data: &[u8], raw_len: u32) -> Result<Vec<u8>, String> {
    let raw_len = raw_len as usize;
    // Exactly one frame: its compressed size must be the whole payload.
    match zstd::zstd_safe::find_frame_compressed_size(data) {
        Ok(n) if n == data.len() => {}
        Ok(n) => {
            return Err(format!(
                "zstd payload is {} bytes but its frame ends at {n}",
                data.len()
            ))
        }
        Err(_) => return Err("zstd payload is not one valid frame".into()),
    }
    let mut out = Vec::with_capacity(raw_len);
    let mut d =
        zstd::bulk::Decompressor::new().map_err(|e| format!("zstd decoder unavailable: {e}"))?;
    match d.decompress_to_buffer(data, &mut out) {
        Ok(n) if n == raw_len && out.len() == raw_len => Ok(out),
        Ok(n) => Err(format!(
            "zstd payload decodes to {n} bytes, expected {raw_len}"
        )),
        Err(e) => Err(format!("zstd payload does not decode: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fallback() {
        let text = b"hello hello hello hello hello hello hello".repeat(10);
        for choice in [Compression::Lz4, Compression::Zstd(3), Compression::BEST] {
            let (c, z) = compress(choice, &text);
            assert_ne!(c, Codec::Stored, "{choice:?}");
            assert!(z.len() < text.len());
            assert_eq!(decompress(c, &z, text.len() as u32).unwrap(), text);
            assert!(decompress(c, &z, text.len() as u32 + 1).is_err());
            assert!(decompress(c, &z, text.len() as u32 - 1).is_err());
            let (c, z) = compress(choice, &[1, 2, 3]);
            assert_eq!(c, Codec::Stored);
            assert_eq!(z, [1, 2, 3]);
        }
        let (c, z) = compress(Compression::None, &text);
        assert_eq!((c, z.as_slice()), (Codec::Stored, text.as_slice()));
    }

    #[test]
    fn zstd_rejects_trailing_bytes_and_second_frames() {
        let text = b"abcdefgh".repeat(100);
        let (c, mut z) = compress(Compression::Zstd(3), &text);
        assert_eq!(c, Codec::Zstd);
        let one = z.clone();
        z.extend_from_slice(&one);
        let err = decompress(c, &z, (text.len() * 2) as u32).unwrap_err();
        assert!(err.contains("frame ends"), "{err}");
        let mut t = one.clone();
        t.push(0);
        assert!(decompress(c, &t, text.len() as u32).is_err());
        assert!(decompress(c, &one[..one.len() - 1], text.len() as u32).is_err());
        assert!(decompress(c, b"not zstd at all", 10).is_err());
    }
}
