//! Frames: the length-prefixed unit everything after the header is stored in
//! (spec §8.1), the envelope inside a frame's body, and Padmé padding (§8.2).
//!
//! ```text
//! frame    = LE32 body length B || body
//! body     = envelope                                  (plain archive)
//!          = nonce (24) || Seal(K_frame, nonce, AD, envelope)   (encrypted)
//! envelope = type u8 || codec u8 || reserved u16 || LE32 content length C
//!            || LE32 payload length P || payload (P) || zero padding
//! ```
//!
//! Sealing and compression live in `crypto` and `codec`; this module only
//! lays out and checks bytes.

use super::limits::MAX_BLOB_LEN;
use super::{malformed, Codec, Malformed, Put, Reader};

/// Bytes of the length prefix before a frame's body.
pub const LENGTH_LEN: usize = 4;
/// Largest frame body (17 MiB): the largest envelope, padded, plus the AEAD's 40 bytes.
pub const MAX_BODY_LEN: u32 = 17 * 1024 * 1024;
/// Bytes of the envelope before its payload.
pub const ENVELOPE_HEADER_LEN: usize = 12;
/// Bytes a sealed body adds to its envelope: nonce and tag.
pub const SEAL_OVERHEAD: usize = 40;
/// Context of the frame AEAD's associated data.
pub const AD_CONTEXT: &[u8] = b"ptar-frame-v2";
/// Length of the associated data of a sealed frame.
pub const AD_LEN: usize = 13 + 16 + 8 + 4;

/// What a frame holds (spec §8.1). The type is inside the sealed envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// One or more blobs (§8.3).
    BlobRecord = 1,
    /// Part of an index run (§9.1).
    IndexPage = 2,
    /// The pages of an index run (§9.2).
    IndexDirectory = 3,
    /// Part of a snapshot run (§11.2).
    SnapshotPage = 4,
    /// The pages of a snapshot run (§11.2).
    SnapshotDirectory = 5,
    /// A generation's manifest (§10.1).
    Manifest = 6,
}

impl FrameType {
    /// The type with this byte, if defined.
    pub fn from_u8(b: u8) -> Option<FrameType> {
        Some(match b {
            1 => FrameType::BlobRecord,
            2 => FrameType::IndexPage,
            3 => FrameType::IndexDirectory,
            4 => FrameType::SnapshotPage,
            5 => FrameType::SnapshotDirectory,
            6 => FrameType::Manifest,
            _ => return None,
        })
    }

    /// A name for messages.
    pub fn name(self) -> &'static str {
        match self {
            FrameType::BlobRecord => "blob record",
            FrameType::IndexPage => "index page",
            FrameType::IndexDirectory => "index directory",
            FrameType::SnapshotPage => "snapshot page",
            FrameType::SnapshotDirectory => "snapshot directory",
            FrameType::Manifest => "manifest",
        }
    }
}

/// The Padmé length of `n` (spec §8.2): `n` rounded up so that it keeps at
/// most `floor(log2 E) + 1` significant bits, `E = floor(log2 n)`.
pub fn padme(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let e = 63 - u64::from(n.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let z = e - s;
    let mask = (1u64 << z) - 1;
    (n + mask) & !mask
}

/// An envelope's fixed fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// What the frame holds.
    pub frame_type: FrameType,
    /// How the payload encodes the content.
    pub codec: Codec,
    /// The content's length after decoding.
    pub content_len: u32,
}

/// Lays out an envelope: the fixed fields, the payload, and `pad_to - (12 + P)`
/// zero bytes when `pad_to` is larger (encrypted archives pass the Padmé length).
pub fn envelope(header: EnvelopeHeader, payload: &[u8], pad: bool) -> Vec<u8> {
    let unpadded = ENVELOPE_HEADER_LEN + payload.len();
    let total = if pad {
        padme(unpadded as u64) as usize
    } else {
        unpadded
    };
    let mut out = Vec::with_capacity(total);
    out.put(&envelope_head(header, payload.len()));
    out.put(payload);
    out.resize(total, 0);
    out
}

/// An envelope's fixed fields, for a payload of `payload_len` bytes: what
/// precedes the payload (a plain frame's writer streams the payload after it).
pub fn envelope_head(header: EnvelopeHeader, payload_len: usize) -> [u8; ENVELOPE_HEADER_LEN] {
    let mut out = [0u8; ENVELOPE_HEADER_LEN];
    out[0] = header.frame_type as u8;
    out[1] = header.codec as u8;
    out[4..8].copy_from_slice(&header.content_len.to_le_bytes());
    let len = u32::try_from(payload_len).expect("payloads are at most 16 MiB");
    out[8..12].copy_from_slice(&len.to_le_bytes());
    out
}

/// Checks an envelope (spec §8.1) and returns its fields and payload.
/// `plain`: the envelope is a plain archive's body, so it has no padding.
pub fn parse_envelope(env: &[u8], plain: bool) -> Result<(EnvelopeHeader, &[u8]), Malformed> {
    let mut r = Reader::new(env);
    let t = r.u8("frame type")?;
    let frame_type = match FrameType::from_u8(t) {
        Some(t) => t,
        None => return malformed(format!("frame type {t} is not defined")),
    };
    let c = r.u8("codec")?;
    let codec = match Codec::from_u8(c) {
        Some(c) => c,
        None => return malformed(format!("codec {c} is not defined")),
    };
    r.zeros(2, "frame envelope")?;
    let content_len = r.u32("content length")?;
    let payload_len = r.u32("payload length")?;
    if content_len > MAX_BLOB_LEN {
        return malformed(format!("content length {content_len} is over 16 MiB"));
    }
    if payload_len > MAX_BLOB_LEN {
        return malformed(format!("payload length {payload_len} is over 16 MiB"));
    }
    let payload = r.take(payload_len as usize, "payload")?;
    let padding = &env[ENVELOPE_HEADER_LEN + payload.len()..];
    if plain && !padding.is_empty() {
        return malformed(format!(
            "{} bytes after the payload of a plain frame",
            padding.len()
        ));
    }
    if padding.iter().any(|&b| b != 0) {
        return malformed("padding bytes are not zero");
    }
    if codec == Codec::Stored && payload_len != content_len {
        return malformed(format!(
            "stored payload of {payload_len} bytes for content of {content_len}"
        ));
    }
    Ok((
        EnvelopeHeader {
            frame_type,
            codec,
            content_len,
        },
        payload,
    ))
}

/// The associated data of the sealed frame at `offset` with body length `body_len`.
pub fn associated_data(uuid: &[u8; 16], offset: u64, body_len: u32) -> [u8; AD_LEN] {
    let mut ad = [0u8; AD_LEN];
    ad[..13].copy_from_slice(AD_CONTEXT);
    ad[13..29].copy_from_slice(uuid);
    ad[29..37].copy_from_slice(&offset.to_le_bytes());
    ad[37..41].copy_from_slice(&body_len.to_le_bytes());
    ad
}

/// Checks a frame's body length (spec §8.1).
pub fn check_body_len(body_len: u32) -> Result<(), Malformed> {
    if body_len == 0 {
        return malformed("frame body length is 0");
    }
    if body_len > MAX_BODY_LEN {
        return malformed(format!("frame body length {body_len} is over 17 MiB"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_matches_the_paper() {
        // Values from the definition: E = floor(log2 n), S = floor(log2 E) + 1.
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(2), 2);
        assert_eq!(padme(9), 10); // E=3, S=2, z=1
        assert_eq!(padme(100), 104); // E=6, S=3, z=3
        assert_eq!(padme(1000), 1024); // E=9, S=4, z=5
        assert_eq!(padme(8 << 20), 8 << 20);
        assert_eq!(padme((8 << 20) + 1), (8 << 20) + (1 << 18)); // E=23, S=5, z=18
    }

    #[test]
    fn padme_is_monotone_and_bounded() {
        let mut last = 0;
        for n in (2..5_000_000u64).step_by(997) {
            let p = padme(n);
            assert!(p >= n && p >= last);
            assert!((p - n) * 100 < n * 12, "{n} -> {p}");
            // At most S significant bits.
            let e = 63 - u64::from(n.leading_zeros());
            let s = 64 - u64::from(e.leading_zeros());
            assert!(u64::from(64 - p.leading_zeros() - p.trailing_zeros()) <= s + 1);
            last = p;
        }
        assert!(u64::from(MAX_BODY_LEN) >= padme(12 + u64::from(MAX_BLOB_LEN)) + 40);
    }

    #[test]
    fn envelopes_round_trip_and_reject_bad_fields() {
        let h = EnvelopeHeader {
            frame_type: FrameType::IndexPage,
            codec: Codec::Stored,
            content_len: 5,
        };
        let plain = envelope(h, b"hello", false);
        assert_eq!(parse_envelope(&plain, true).unwrap(), (h, &b"hello"[..]));
        let padded = envelope(h, b"hello", true);
        assert_eq!(padded.len(), 18); // padme(17): E = 4, S = 3, z = 1
        assert_eq!(parse_envelope(&padded, false).unwrap().1, b"hello");
        assert!(parse_envelope(&padded, true).is_err());
        let mut bad = padded.clone();
        *bad.last_mut().unwrap() = 1;
        assert!(parse_envelope(&bad, false).is_err());
        let mut bad = plain.clone();
        bad[0] = 7;
        assert!(parse_envelope(&bad, true).is_err());
        let mut bad = plain.clone();
        bad[2] = 1;
        assert!(parse_envelope(&bad, true).is_err());
        let mut bad = plain;
        bad[4] = 6; // stored with content length != payload length
        assert!(parse_envelope(&bad, true).is_err());
    }
}
