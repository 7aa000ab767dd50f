//! Compression of record payloads (spec §8.2).

use crate::format::Codec;

/// Compresses with LZ4, or stores when LZ4 does not make the payload smaller.
pub fn compress(data: &[u8]) -> (Codec, Vec<u8>) {
    if data.is_empty() {
        return (Codec::Stored, Vec::new());
    }
    let c = lz4_flex::block::compress(data);
    if c.len() < data.len() {
        (Codec::Lz4, c)
    } else {
        (Codec::Stored, data.to_vec())
    }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fallback() {
        let text = b"hello hello hello hello hello hello hello".repeat(10);
        let (c, z) = compress(&text);
        assert_eq!(c, Codec::Lz4);
        assert_eq!(decompress(c, &z, text.len() as u32).unwrap(), text);
        assert!(decompress(c, &z, text.len() as u32 + 1).is_err());
        let (c, z) = compress(&[1, 2, 3]);
        assert_eq!(c, Codec::Stored);
        assert_eq!(z, [1, 2, 3]);
    }
}
