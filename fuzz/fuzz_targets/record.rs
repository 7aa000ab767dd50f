//! Frame and blob-record decoding (spec §8): the envelope, decryption,
//! decompression, and the parsers of every frame type's content behind them.
//!
//! Input layout (little-endian):
//!
//! ```text
//!   1 mode: 0 plain frame body, 1 sealed frame body (fixed test key), 2 round trip
//!   8 frame offset   16 archive uuid
//!   ... the frame body (modes 0, 1), or (mode 2) a codec choice byte, a
//!       frame type byte and the content
//! ```
//!
//! In fuzzing builds `crypto::open_frame` decrypts without checking the tag
//! (`#[cfg(fuzzing)]` in ptar/src/crypto.rs), so mode 1 reaches the envelope
//! and the decompressor with fuzzer-chosen plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::codec::{self, Compression};
use ptar::crypto::{self, SEAL_OVERHEAD};
use ptar::format::filemap::FileMapPage;
use ptar::format::frame::{self, EnvelopeHeader, FrameType};
use ptar::format::manifest::{Manifest, MAX_GENERATIONS};
use ptar::format::record::{RecordBuilder, RecordLayout};
use ptar::format::run::{self, IndexDirectory, IndexPage};
use ptar::format::snapshot::SnapshotRecord;
use ptar::format::tree::TreePage;
use ptar::format::Kind;

const PREFIX: usize = 1 + 8 + 16;

/// Every blob parser on a blob's bytes (the kind decides nothing: a
/// parser must refuse what is not its own without panicking).
fn parse_blob(kind: Kind, blob: &[u8]) {
    let _ = crypto::content_id(None, kind, blob);
    let _ = TreePage::parse(blob);
    let _ = FileMapPage::parse(blob);
    let _ = SnapshotRecord::parse(blob);
}

/// The parser of a frame type's content.
fn parse_content(t: FrameType, content: &[u8]) {
    match t {
        FrameType::BlobRecord => {
            if let Ok(layout) = RecordLayout::parse(content) {
                assert!(!layout.is_empty());
                assert_eq!(layout.bounds.len(), layout.len() + 1);
                assert_eq!(*layout.bounds.last().expect("bounds"), content.len());
                for i in 0..layout.len() as u32 {
                    let (kind, range) = layout.blob(i).expect("a listed blob");
                    assert!(!range.is_empty() && range.end <= content.len());
                    parse_blob(kind, &content[range]);
                }
                assert!(layout.blob(layout.len() as u32).is_none());
            }
        }
        FrameType::IndexPage => {
            let _ = IndexPage::parse(content);
        }
        FrameType::IndexDirectory => {
            let _ = IndexDirectory::parse(content);
        }
        FrameType::SnapshotPage => {
            let _ = run::parse_snapshot_page(content, 1..=MAX_GENERATIONS);
        }
        FrameType::SnapshotDirectory => {
            let _ = run::parse_snapshot_directory(content);
        }
        FrameType::Manifest => {
            let _ = Manifest::parse(content);
        }
    }
}

/// Checks an envelope and decodes and parses its content.
fn decode(envelope: &[u8], plain: bool) {
    let Ok((h, payload)) = frame::parse_envelope(envelope, plain) else {
        return;
    };
    assert!(frame::ENVELOPE_HEADER_LEN + payload.len() <= envelope.len());
    if plain {
        assert_eq!(frame::ENVELOPE_HEADER_LEN + payload.len(), envelope.len());
    }
    if let Ok(content) = codec::decompress(h.codec, payload, h.content_len) {
        assert_eq!(content.len(), h.content_len as usize);
        parse_content(h.frame_type, &content);
    }
}

/// Blobs cut from `content` at lengths taken from its own bytes.
fn blobs(content: &[u8]) -> Vec<(Kind, &[u8])> {
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(&b) = rest.first() {
        let n = (b as usize % 64 + 1).min(rest.len());
        let (blob, tail) = rest.split_at(n);
        out.push((Kind::from_u8(1 + b % 4).expect("1..=4"), blob));
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < PREFIX {
        return;
    }
    let (head, body) = data.split_at(PREFIX);
    let mode = head[0] % 3;
    let offset = u64::from_le_bytes(head[1..9].try_into().expect("8"));
    let uuid: [u8; 16] = head[9..25].try_into().expect("16");
    let keys = ptar_fuzz::test_keys();
    match mode {
        0 => {
            let _ = frame::check_body_len(body.len().try_into().unwrap_or(u32::MAX));
            decode(body, true);
        }
        1 => {
            let opened = crypto::open_frame(keys, &uuid, offset, body);
            if body.len() < SEAL_OVERHEAD {
                assert!(opened.is_none());
            }
            if let Some(envelope) = opened {
                assert_eq!(envelope.len(), body.len() - SEAL_OVERHEAD);
                decode(&envelope, false);
            }
        }
        _ => {
            // What the writer lays out and seals, the reader opens and
            // decodes, whatever the codec and frame type.
            let Some((&choice, rest)) = body.split_first() else {
                return;
            };
            let Some((&t, content)) = rest.split_first() else {
                return;
            };
            let frame_type = FrameType::from_u8(1 + t % 6).expect("1..=6");
            let choice = match choice % 4 {
                0 => Compression::None,
                1 => Compression::Lz4,
                2 => Compression::Zstd(1),
                _ => Compression::Zstd(3),
            };
            let (codec, payload) = codec::compress(choice, content);
            assert!(payload.len() <= content.len());
            let h = EnvelopeHeader {
                frame_type,
                codec,
                content_len: content.len() as u32,
            };
            let plain = frame::envelope(h, &payload, false);
            assert_eq!(frame::parse_envelope(&plain, true), Ok((h, &payload[..])));
            let padded = frame::envelope(h, &payload, true);
            assert_eq!(
                padded.len() as u64,
                frame::padme((frame::ENVELOPE_HEADER_LEN + payload.len()) as u64)
            );
            assert_eq!(frame::parse_envelope(&padded, false), Ok((h, &payload[..])));
            let nonce: [u8; 24] = data[1..25].try_into().expect("24");
            let sealed = crypto::seal_frame(keys, &uuid, offset, &nonce, &padded);
            assert_eq!(sealed.len(), padded.len() + SEAL_OVERHEAD);
            let opened =
                crypto::open_frame(keys, &uuid, offset, &sealed).expect("a sealed frame opens");
            assert_eq!(opened, padded);
            let decoded = codec::decompress(codec, &payload, content.len() as u32)
                .expect("compressed content decompresses");
            assert_eq!(decoded, content, "round trip through compress and seal");
            // A record built from blobs lists them back.
            let parts = blobs(content);
            if !parts.is_empty() {
                let mut b = RecordBuilder::new();
                for (k, blob) in &parts {
                    b.push(*k, blob);
                }
                assert_eq!(b.len(), parts.len());
                let expected_len = b.content_len();
                let record = b.finish();
                assert_eq!(record.len(), expected_len);
                let layout = RecordLayout::parse(&record).expect("a built record parses");
                for (i, (k, blob)) in parts.iter().enumerate() {
                    let (kind, range) = layout.blob(i as u32).expect("a listed blob");
                    assert_eq!((kind, &record[range]), (*k, *blob));
                }
            }
        }
    }
});
