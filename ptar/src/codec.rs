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

/// log2 of the zstd window writers use: 8 MiB, the chunk record target.
pub const WINDOW_LOG: u32 = 23;

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
        let mut out = Vec::new();
        let codec = self.compress_into(data, &mut out);
        (codec, out)
    }

    /// [`Compressor::compress`] into `out`, replacing what it held and
    /// reusing its allocation.
    pub fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> Codec {
        out.clear();
        if data.is_empty() {
            return Codec::Stored;
        }
        let packed = match self.choice {
            Compression::None => None,
            Compression::Lz4 => {
                out.resize(lz4_flex::block::get_maximum_output_size(data.len()), 0);
                match lz4_flex::block::compress_into(data, out) {
                    Ok(n) => {
                        out.truncate(n);
                        Some(Codec::Lz4)
                    }
                    Err(_) => None,
                }
            }
            Compression::Zstd(level) => {
                let level = level.clamp(1, 22);
                if self.zstd.is_none() {
                    // A window as large as the biggest solid record (8 MiB,
                    // spec §8.4): matches reach across the whole record.
                    // zstd shrinks it to the input for smaller ones.
                    self.zstd = zstd::bulk::Compressor::new(level).ok().and_then(|mut z| {
                        z.set_parameter(zstd::zstd_safe::CParameter::WindowLog(WINDOW_LOG))
                            .ok()?;
                        Some(z)
                    });
                }
                out.reserve_exact(zstd::zstd_safe::compress_bound(data.len()));
                self.zstd
                    .as_mut()
                    .and_then(|z| z.compress_to_buffer(data, out).ok())
                    .map(|_| Codec::Zstd)
            }
        };
        match packed {
            Some(codec) if out.len() < data.len() => codec,
            _ => {
                out.clear();
                out.extend_from_slice(data);
                Codec::Stored
            }
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
    let mut out = Vec::new();
    decompress_into(codec, data, raw_len, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out`, replacing what it held and reusing its
/// allocation: readers decode record after record into the same few buffers,
/// so memory stays flat however many records an archive has.
pub fn decompress_into(
    codec: Codec,
    data: &[u8],
    raw_len: u32,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    match codec {
        Codec::Stored => {
            if data.len() != raw_len as usize {
                return Err(format!(
                    "stored payload is {} bytes, expected {raw_len}",
                    data.len()
                ));
            }
            out.extend_from_slice(data);
            Ok(())
        }
        Codec::Lz4 => {
            out.resize(raw_len as usize, 0);
            match lz4_flex::block::decompress_into(data, out) {
                Ok(n) if n == raw_len as usize => Ok(()),
                Ok(n) => Err(format!(
                    "LZ4 payload decodes to {n} bytes, expected {raw_len}"
                )),
                Err(e) => Err(format!("LZ4 payload does not decode: {e}")),
            }
        }
        Codec::Zstd => zstd_decompress(data, raw_len, out),
    }
}

/// The magic number that begins a Zstandard frame (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// One zstd frame into exactly `raw_len` bytes. Decoding in one pass into a
/// buffer of that size bounds memory by the plaintext length, whatever window
/// size the frame claims.
fn zstd_decompress(data: &[u8], raw_len: u32, out: &mut Vec<u8>) -> Result<(), String> {
    let raw_len = raw_len as usize;
    // A Zstandard frame, not a skippable one (which decoders take as a
    // frame that decodes to nothing).
    if !data.starts_with(&ZSTD_MAGIC) {
        return Err("zstd payload does not begin with a Zstandard frame".into());
    }
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
    out.reserve_exact(raw_len);
    let mut d =
        zstd::bulk::Decompressor::new().map_err(|e| format!("zstd decoder unavailable: {e}"))?;
    // The buffer's capacity may exceed `raw_len` when it is reused; the
    // frame must still decode to exactly `raw_len` bytes.
    match d.decompress_to_buffer(data, out) {
        Ok(n) if n == raw_len && out.len() == raw_len => Ok(()),
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

    #[test]
    fn zstd_refuses_skippable_frames() {
        // A skippable frame (magic 0x184D2A50..5F, u32 length, bytes)
        // decodes to nothing in libzstd: alone, before or after a frame.
        let skippable = [0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
        let err = decompress(Codec::Zstd, &skippable, 0).unwrap_err();
        assert!(err.contains("does not begin"), "{err}");
        let text = b"abcdefgh".repeat(100);
        let (_, z) = compress(Compression::Zstd(3), &text);
        let mut before = skippable.to_vec();
        before.extend_from_slice(&z);
        assert!(decompress(Codec::Zstd, &before, text.len() as u32).is_err());
        let mut after = z.clone();
        after.extend_from_slice(&skippable);
        assert!(decompress(Codec::Zstd, &after, text.len() as u32).is_err());
    }
}
