//! Record and blob decoding (spec §8): decompression, decryption, and the
//! blob parsers behind them.
//!
//! Input layout (little-endian):
//!
//! ```text
//!   1 mode: 0 plain record, 1 encrypted record (fixed test key), 2 seal/open round trip
//!   1 codec   1 kind   4 plaintext length   8 record offset   16 uuid   2 minor
//!   ... the record (modes 0, 1) or the plaintext (mode 2)
//! ```
//!
//! In fuzzing builds `crypto::open_record` decrypts without checking the tag
//! (`#[cfg(fuzzing)]` in ptar/src/crypto.rs), so mode 1 reaches the
//! decompressor with fuzzer-chosen plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptar::codec::{self, Compression};
use ptar::crypto::{self, RecordContext, RECORD_OVERHEAD};
use ptar::format::filemap::FileMapPage;
use ptar::format::limits::MAX_BLOB_LEN;
use ptar::format::snapshot::SnapshotRecord;
use ptar::format::tree::TreePage;
use ptar::format::{Codec, Kind};

const PREFIX: usize = 1 + 1 + 1 + 4 + 8 + 16 + 2;

fn parse_blob(kind: Kind, plain: &[u8]) {
    let _ = crypto::content_id(None, kind, plain);
    let _ = TreePage::parse(plain);
    let _ = FileMapPage::parse(plain);
    let _ = SnapshotRecord::parse(plain);
}

fuzz_target!(|data: &[u8]| {
    if data.len() < PREFIX {
        return;
    }
    let (head, body) = data.split_at(PREFIX);
    let mode = head[0] % 3;
    let codec = Codec::from_u8(head[1] % 3).expect("0..3");
    let kind = Kind::from_u8(1 + head[2] % 4).expect("1..=4");
    let raw_len = u32::from_le_bytes(head[3..7].try_into().expect("4")).min(MAX_BLOB_LEN);
    let offset = u64::from_le_bytes(head[7..15].try_into().expect("8"));
    let uuid: [u8; 16] = head[15..31].try_into().expect("16");
    let minor = u16::from_le_bytes(head[31..33].try_into().expect("2"));
    let ctx = RecordContext {
        uuid: &uuid,
        minor,
        kind,
        codec,
        raw_len,
        offset,
    };
    let keys = ptar_fuzz::test_keys();
    match mode {
        0 => {
            if let Ok(plain) = codec::decompress(codec, body, raw_len) {
                assert_eq!(plain.len(), raw_len as usize);
                parse_blob(kind, &plain);
            }
        }
        1 => {
            let opened = crypto::open_record(keys, &ctx, body);
            if body.len() < RECORD_OVERHEAD {
                assert!(opened.is_none());
            }
            if let Some(payload) = opened {
                assert_eq!(payload.len(), body.len() - RECORD_OVERHEAD);
                if let Ok(plain) = codec::decompress(codec, &payload, raw_len) {
                    assert_eq!(plain.len(), raw_len as usize);
                    parse_blob(kind, &plain);
                }
            }
        }
        _ => {
            // What the writer seals, the reader opens, whatever the codec.
            let choice = match head[1] % 4 {
                0 => Compression::None,
                1 => Compression::Lz4,
                2 => Compression::Zstd(1),
                _ => Compression::Zstd(3),
            };
            let (codec, packed) = codec::compress(choice, body);
            assert!(packed.len() <= body.len());
            let ctx = RecordContext {
                codec,
                raw_len: body.len() as u32,
                ..ctx
            };
            let nonce: [u8; 24] = data[7..31].try_into().expect("24");
            let sealed = crypto::seal_record(keys, &ctx, &nonce, &packed);
            assert_eq!(sealed.len(), packed.len() + RECORD_OVERHEAD);
            let opened = crypto::open_record(keys, &ctx, &sealed).expect("sealed record opens");
            assert_eq!(opened, packed);
            let plain = codec::decompress(codec, &opened, body.len() as u32)
                .expect("compressed record decompresses");
            assert_eq!(plain, body, "round trip through compress and seal");
        }
    }
});
