//! The fixed-size footer that ends every generation (spec §10).
//!
//! ```text
//! offset size field
//!      0    8 magic "PTARFOOT"
//!      8    2 major version
//!     10    2 minor version of the writer
//!     12    4 flags: bit 0 tag is a keyed MAC; bit 1 signed; others reserved (MUST be 0)
//!     16   16 archive UUID (equal to the header's)
//!     32    8 generation number (1 for the first)
//!     40    8 packfile offset (the generation's first byte)
//!     48    8 index offset
//!     56    8 index length
//!     64    8 snapshot table offset
//!     72    8 snapshot table length
//!     80    8 key-slot table offset (0 when absent)
//!     88    8 key-slot table length (0 when absent)
//!     96    8 previous footer offset (0 for generation 1)
//!    104    8 footer end offset (this footer's offset + 512)
//!    112    8 commit time, nanoseconds since the Unix epoch (i64)
//!    120    8 reserved (MUST be 0)
//!    128   32 BLAKE3-256 of the header
//!    160   32 BLAKE3-256 of the previous footer (zero for generation 1)
//!    192   32 BLAKE3-256 of the packfile bytes
//!    224   32 BLAKE3-256 of the index bytes
//!    256   32 BLAKE3-256 of the snapshot table bytes
//!    288   32 BLAKE3-256 of the key-slot table bytes (zero when absent)
//!    320   48 reserved (MUST be 0)
//!    368   32 tag over bytes 0..368: BLAKE3-256, or keyed BLAKE3 under the footer key
//!    400   32 ed25519 public key of the signer (zero when unsigned)
//!    432   64 ed25519 signature over "ptar-footer-signature-v1" || bytes 0..368 (zero when unsigned)
//!    496    8 reserved (MUST be 0)
//!    504    8 end magic "PTAREND\n"
//! ```

use super::{malformed, Malformed, Put, Reader};

/// Total footer size.
pub const FOOTER_LEN: usize = 512;
/// First bytes of a footer.
pub const MAGIC: [u8; 8] = *b"PTARFOOT";
/// Last bytes of a footer (and so of every committed archive).
pub const END_MAGIC: [u8; 8] = *b"PTAREND\n";
/// Length of the committed part (what the tag and signature cover).
pub const COMMITTED_LEN: usize = 368;
/// Footer flag: the tag is a keyed MAC.
pub const FLAG_MAC: u32 = 1;
/// Footer flag: the footer carries a signature.
pub const FLAG_SIGNED: u32 = 2;
/// Bytes of data (holes excluded) before the end of the file within which
/// readers look for the last valid footer (spec §10.3): 4 GiB. Writers
/// commit a checkpoint generation before their uncommitted bytes pass
/// 1 GiB, so an interrupted append never leaves a tail near this long.
pub const MAX_TAIL_SCAN: u64 = 4 << 30;
/// Prefix of the bytes an ed25519 signature covers.
pub const SIGNATURE_CONTEXT: &[u8] = b"ptar-footer-signature-v1";

/// A parsed footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Major version.
    pub major: u16,
    /// Minor version of the writer of this generation.
    pub minor: u16,
    /// Flags.
    pub flags: u32,
    /// Archive UUID.
    pub uuid: [u8; 16],
    /// Generation number, from 1.
    pub generation: u64,
    /// First byte of the packfile.
    pub packfile_offset: u64,
    /// Index position.
    pub index_offset: u64,
    /// Index length.
    pub index_len: u64,
    /// Snapshot table position.
    pub table_offset: u64,
    /// Snapshot table length.
    pub table_len: u64,
    /// Key-slot table position (0 when absent).
    pub keyslots_offset: u64,
    /// Key-slot table length (0 when absent).
    pub keyslots_len: u64,
    /// Offset of the previous footer (0 for generation 1).
    pub prev_footer_offset: u64,
    /// This footer's end offset.
    pub footer_end: u64,
    /// Commit time in nanoseconds since the epoch.
    pub time_ns: i64,
    /// Hash of the header.
    pub header_hash: [u8; 32],
    /// Hash of the previous footer.
    pub prev_footer_hash: [u8; 32],
    /// Hash of the packfile.
    pub packfile_hash: [u8; 32],
    /// Hash of the index.
    pub index_hash: [u8; 32],
    /// Hash of the snapshot table.
    pub table_hash: [u8; 32],
    /// Hash of the key-slot table.
    pub keyslots_hash: [u8; 32],
    /// Tag over the committed bytes.
    pub tag: [u8; 32],
    /// Signer's public key.
    pub signer: [u8; 32],
    /// Signature.
    pub signature: [u8; 64],
}

impl Default for Footer {
    fn default() -> Footer {
        Footer {
            major: 0,
            minor: 0,
            flags: 0,
            uuid: [0; 16],
            generation: 0,
            packfile_offset: 0,
            index_offset: 0,
            index_len: 0,
            table_offset: 0,
            table_len: 0,
            keyslots_offset: 0,
            keyslots_len: 0,
            prev_footer_offset: 0,
            footer_end: 0,
            time_ns: 0,
            header_hash: [0; 32],
            prev_footer_hash: [0; 32],
            packfile_hash: [0; 32],
            index_hash: [0; 32],
            table_hash: [0; 32],
            keyslots_hash: [0; 32],
            tag: [0; 32],
            signer: [0; 32],
            signature: [0; 64],
        }
    }
}

impl Footer {
    /// The committed bytes: what the tag and the signature cover.
    pub fn committed_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(COMMITTED_LEN);
        b.put(&MAGIC);
        b.put_u16(self.major);
        b.put_u16(self.minor);
        b.put_u32(self.flags);
        b.put(&self.uuid);
        for v in [
            self.generation,
            self.packfile_offset,
            self.index_offset,
            self.index_len,
            self.table_offset,
            self.table_len,
            self.keyslots_offset,
            self.keyslots_len,
            self.prev_footer_offset,
            self.footer_end,
        ] {
            b.put_u64(v);
        }
        b.put_i64(self.time_ns);
        b.put_u64(0);
        for h in [
            &self.header_hash,
            &self.prev_footer_hash,
            &self.packfile_hash,
            &self.index_hash,
            &self.table_hash,
            &self.keyslots_hash,
        ] {
            b.put(h);
        }
        b.put(&[0; 48]);
        debug_assert_eq!(b.len(), COMMITTED_LEN);
        b
    }

    /// The message an ed25519 signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut m = SIGNATURE_CONTEXT.to_vec();
        m.extend_from_slice(&self.committed_bytes());
        m
    }

    /// All 512 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.committed_bytes();
        b.put(&self.tag);
        b.put(&self.signer);
        b.put(&self.signature);
        b.put(&[0; 8]);
        b.put(&END_MAGIC);
        debug_assert_eq!(b.len(), FOOTER_LEN);
        b
    }

    /// Whether `buf` (512 bytes) looks like a footer at either end. Used to
    /// tell a damaged footer from the torn tail of an interrupted append.
    pub fn looks_like_footer(buf: &[u8]) -> bool {
        buf.len() == FOOTER_LEN && (buf[..8] == MAGIC || buf[FOOTER_LEN - 8..] == END_MAGIC)
    }

    /// Parses 512 bytes. Checks the layout only: the tag, the signature and
    /// the offsets are checked by the store, which knows the keys and the file.
    pub fn parse(buf: &[u8]) -> Result<Footer, Malformed> {
        if buf.len() != FOOTER_LEN {
            return malformed("footer has the wrong length");
        }
        let mut r = Reader::new(buf);
        if r.take(8, "magic")? != MAGIC {
            return malformed("bad footer magic");
        }
        let mut f = Footer {
            major: r.u16("major")?,
            minor: r.u16("minor")?,
            flags: r.u32("flags")?,
            ..Footer::default()
        };
        if f.flags & !(FLAG_MAC | FLAG_SIGNED) != 0 {
            return malformed(format!("reserved footer flags {:#x} are set", f.flags));
        }
        f.uuid = r.array("uuid")?;
        f.generation = r.u64("generation")?;
        f.packfile_offset = r.u64("packfile offset")?;
        f.index_offset = r.u64("index offset")?;
        f.index_len = r.u64("index length")?;
        f.table_offset = r.u64("table offset")?;
        f.table_len = r.u64("table length")?;
        f.keyslots_offset = r.u64("key-slot offset")?;
        f.keyslots_len = r.u64("key-slot length")?;
        f.prev_footer_offset = r.u64("previous footer offset")?;
        f.footer_end = r.u64("footer end")?;
        f.time_ns = r.i64("time")?;
        r.zeros(8, "reserved")?;
        f.header_hash = r.array("header hash")?;
        f.prev_footer_hash = r.array("previous footer hash")?;
        f.packfile_hash = r.array("packfile hash")?;
        f.index_hash = r.array("index hash")?;
        f.table_hash = r.array("table hash")?;
        f.keyslots_hash = r.array("key-slot hash")?;
        r.zeros(48, "reserved")?;
        f.tag = r.array("tag")?;
        f.signer = r.array("signer")?;
        f.signature = r.array("signature")?;
        r.zeros(8, "reserved")?;
        if r.take(8, "end magic")? != END_MAGIC {
            return malformed("bad footer end magic");
        }
        if f.flags & FLAG_SIGNED == 0 && (f.signer != [0; 32] || f.signature != [0; 64]) {
            return malformed("an unsigned footer carries signature bytes");
        }
        if f.keyslots_len == 0 && (f.keyslots_offset != 0 || f.keyslots_hash != [0; 32]) {
            return malformed("key-slot fields are set without a key-slot table");
        }
        if f.generation == 1 && (f.prev_footer_offset != 0 || f.prev_footer_hash != [0; 32]) {
            return malformed("generation 1 names a previous footer");
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_flag_checks() {
        let f = Footer {
            major: 1,
            generation: 2,
            prev_footer_offset: 100,
            footer_end: 2000,
            flags: FLAG_MAC,
            ..Footer::default()
        };
        let b = f.to_bytes();
        assert_eq!(b.len(), FOOTER_LEN);
        assert_eq!(Footer::parse(&b).unwrap(), f);
        let mut bad = b.clone();
        bad[12] |= 4;
        assert!(Footer::parse(&bad).is_err());
        assert!(Footer::looks_like_footer(&b));
    }
}
