//! A generation's footer in version 2 (spec §10): the manifest (the content of
//! the generation's last frame) and the 120-byte trailer after it.
//!
//! ```text
//! manifest content
//!      0   2  major version (2)        2   2  minor version
//!      4   4  flags: bit 0 encrypted, bit 1 signed
//!      8  16  archive UUID            24   8  generation number
//!     32   8  generation start        40   8  commit time (i64 ns)
//!     48  32  header hash             80  32  previous footer hash
//!    112  32  generation hash
//!    144   8  key-slot table in force: frame offset   152 4 its stored length
//!    156   4  run count r
//!    160 24r  runs in force, newest first: index directory (u64 offset, u32 body length),
//!             snapshot directory (u64 offset, u32 body length)
//!      …  96  signature block: public key (32), signature (64); all zero when unsigned
//!
//! trailer (184 bytes)
//!      0   8  "PTARFOOT"      8 2 major (2)   10 2 reserved   12 4 flags (bit 0 encrypted)
//!     16  16  archive UUID   32 8 generation   40 8 generation start
//!     48   8  manifest frame offset   56 4 manifest frame stored length   60 4 reserved
//!     64   8  key-slot table offset   72 4 key-slot table stored length   76 4 reserved
//!     80  32  BLAKE3 of the manifest frame's stored bytes
//!    112  32  BLAKE3 of the key-slot table's stored bytes (zero when none)
//!    144  32  check: BLAKE3(trailer[0..144))
//!    176   8  "PTAREND\n"
//! ```

use super::run::runs_in_force;
use super::{malformed, Malformed, Put, Reader};

/// Major version of the format the manifest and trailer belong to.
pub const MAJOR: u16 = 2;
/// Manifest flag: the archive is encrypted.
pub const FLAG_ENCRYPTED: u32 = 1;
/// Manifest flag: the manifest carries a signature block.
pub const FLAG_SIGNED: u32 = 2;
/// Bytes of the manifest before its runs.
pub const MANIFEST_FIXED_LEN: usize = 160;
/// Bytes per run in a manifest.
pub const RUN_LEN: usize = 24;
/// Bytes of a signature block.
pub const SIGNATURE_LEN: usize = 96;
/// Prefix of the bytes a manifest signature covers.
pub const SIGNATURE_CONTEXT: &[u8] = b"ptar-manifest-signature-v2";
/// Length of a trailer.
pub const TRAILER_LEN: usize = 184;
/// First bytes of a trailer.
pub const MAGIC: [u8; 8] = *b"PTARFOOT";
/// Last bytes of a trailer, and so of every committed archive.
pub const END_MAGIC: [u8; 8] = *b"PTAREND\n";
/// Bytes of the trailer its check covers.
pub const TRAILER_CHECKED_LEN: usize = 144;
/// Most generations of one archive.
pub const MAX_GENERATIONS: u64 = 1 << 24;

/// Where a run's two directories are; `None` when the run has none of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunRef {
    /// The index directory's frame: offset and body length.
    pub index: Option<(u64, u32)>,
    /// The snapshot directory's frame: offset and body length.
    pub snapshots: Option<(u64, u32)>,
}

/// A frame named by its offset and stored length (key-slot tables).
pub type FrameSpan = Option<(u64, u32)>;

/// A parsed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Minor version of the writer.
    pub minor: u16,
    /// Whether the archive is encrypted.
    pub encrypted: bool,
    /// The archive's UUID.
    pub uuid: [u8; 16],
    /// This generation's number.
    pub generation: u64,
    /// Offset of the generation's first frame.
    pub generation_start: u64,
    /// When the generation was committed, nanoseconds since the epoch.
    pub commit_time: i64,
    /// BLAKE3 of the header.
    pub header_hash: [u8; 32],
    /// BLAKE3 of the previous footer (zero for generation 1).
    pub previous_footer_hash: [u8; 32],
    /// BLAKE3 of the generation's bytes before the manifest.
    pub generation_hash: [u8; 32],
    /// The key-slot table in force: its frame's offset and stored length.
    pub key_slots: FrameSpan,
    /// The runs in force, newest first.
    pub runs: Vec<RunRef>,
    /// The signer's public key and signature, when signed.
    pub signature: Option<([u8; 32], [u8; 64])>,
}

fn put_span(out: &mut Vec<u8>, span: Option<(u64, u32)>) {
    let (o, l) = span.unwrap_or((0, 0));
    out.put_u64(o);
    out.put_u32(l);
}

fn span(offset: u64, len: u32, what: &str) -> Result<Option<(u64, u32)>, Malformed> {
    match (offset, len) {
        (0, 0) => Ok(None),
        (0, _) | (_, 0) => malformed(format!(
            "{what}: offset and length must both be zero or both not"
        )),
        (o, l) => Ok(Some((o, l))),
    }
}

impl Manifest {
    /// The bytes a signature covers: everything before the signature block.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MANIFEST_FIXED_LEN + RUN_LEN * self.runs.len());
        out.put_u16(MAJOR);
        out.put_u16(self.minor);
        let mut flags = 0;
        if self.encrypted {
            flags |= FLAG_ENCRYPTED;
        }
        if self.signature.is_some() {
            flags |= FLAG_SIGNED;
        }
        out.put_u32(flags);
        out.put(&self.uuid);
        out.put_u64(self.generation);
        out.put_u64(self.generation_start);
        out.put_i64(self.commit_time);
        out.put(&self.header_hash);
        out.put(&self.previous_footer_hash);
        out.put(&self.generation_hash);
        put_span(&mut out, self.key_slots);
        out.put_u32(u32::try_from(self.runs.len()).expect("at most 36 runs"));
        for r in &self.runs {
            put_span(&mut out, r.index);
            put_span(&mut out, r.snapshots);
        }
        out
    }

    /// The manifest's content: the signed bytes and the signature block,
    /// all zero when unsigned (so that the size does not tell whether an
    /// archive is signed). A signed manifest's `signature` must already be
    /// filled in.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        match &self.signature {
            Some((key, sig)) => {
                out.put(key);
                out.put(sig);
            }
            None => out.put(&[0; SIGNATURE_LEN]),
        }
        out
    }

    /// The message a signer signs: the context and the signed bytes.
    pub fn signature_message(&self) -> Vec<u8> {
        let mut m = SIGNATURE_CONTEXT.to_vec();
        m.extend_from_slice(&self.signed_bytes());
        m
    }

    /// Parses and checks a manifest's content (spec §10.1, §10.5 step 4:
    /// the parts that need nothing but the manifest).
    pub fn parse(content: &[u8]) -> Result<Manifest, Malformed> {
        let mut r = Reader::new(content);
        let major = r.u16("manifest major version")?;
        if major != MAJOR {
            return malformed(format!("manifest major version is {major}, not {MAJOR}"));
        }
        let minor = r.u16("manifest minor version")?;
        let flags = r.u32("manifest flags")?;
        if flags & !(FLAG_ENCRYPTED | FLAG_SIGNED) != 0 {
            return malformed(format!("manifest has reserved flag bits set ({flags:#x})"));
        }
        let uuid = r.array("archive UUID")?;
        let generation = r.u64("generation")?;
        if generation == 0 || generation > MAX_GENERATIONS {
            return malformed(format!("generation {generation} is out of range"));
        }
        let generation_start = r.u64("generation start")?;
        let commit_time = r.i64("commit time")?;
        let header_hash = r.array("header hash")?;
        let previous_footer_hash = r.array("previous footer hash")?;
        if generation == 1 && previous_footer_hash != [0; 32] {
            return malformed("generation 1 names a previous footer");
        }
        let generation_hash = r.array("generation hash")?;
        let ko = r.u64("key-slot table offset")?;
        let kl = r.u32("key-slot table length")?;
        let key_slots = span(ko, kl, "key-slot table")?;
        let count = r.u32("run count")? as usize;
        let expected = runs_in_force(generation).len();
        if count != expected {
            return malformed(format!(
                "manifest of generation {generation} names {count} runs, not {expected}"
            ));
        }
        let mut runs = Vec::with_capacity(count);
        for _ in 0..count {
            let io = r.u64("index directory offset")?;
            let il = r.u32("index directory length")?;
            let so = r.u64("snapshot directory offset")?;
            let sl = r.u32("snapshot directory length")?;
            runs.push(RunRef {
                index: span(io, il, "index directory")?,
                snapshots: span(so, sl, "snapshot directory")?,
            });
        }
        let signature = if flags & FLAG_SIGNED != 0 {
            Some((r.array("signer key")?, r.array("signature")?))
        } else {
            r.zeros(SIGNATURE_LEN, "signature block of an unsigned manifest")?;
            None
        };
        r.finish("manifest")?;
        Ok(Manifest {
            minor,
            encrypted: flags & FLAG_ENCRYPTED != 0,
            uuid,
            generation,
            generation_start,
            commit_time,
            header_hash,
            previous_footer_hash,
            generation_hash,
            key_slots,
            runs,
            signature,
        })
    }
}

/// A parsed trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// Whether the archive is encrypted.
    pub encrypted: bool,
    /// The archive's UUID.
    pub uuid: [u8; 16],
    /// The generation's number.
    pub generation: u64,
    /// Offset of the generation's first frame.
    pub generation_start: u64,
    /// Offset of the manifest frame.
    pub manifest_offset: u64,
    /// Stored length of the manifest frame.
    pub manifest_len: u32,
    /// The key-slot table in force.
    pub key_slots: FrameSpan,
    /// BLAKE3 of the manifest frame's stored bytes.
    pub manifest_hash: [u8; 32],
    /// BLAKE3 of the key-slot table's stored bytes (zero when none).
    pub key_slots_hash: [u8; 32],
}

impl Trailer {
    /// The first 144 bytes, which the check covers.
    pub fn checked_bytes(&self) -> [u8; TRAILER_CHECKED_LEN] {
        let mut out = Vec::with_capacity(TRAILER_CHECKED_LEN);
        out.put(&MAGIC);
        out.put_u16(MAJOR);
        out.put_u16(0);
        out.put_u32(if self.encrypted { FLAG_ENCRYPTED } else { 0 });
        out.put(&self.uuid);
        out.put_u64(self.generation);
        out.put_u64(self.generation_start);
        out.put_u64(self.manifest_offset);
        out.put_u32(self.manifest_len);
        out.put_u32(0);
        put_span(&mut out, self.key_slots);
        out.put_u32(0);
        out.put(&self.manifest_hash);
        out.put(&self.key_slots_hash);
        out.try_into().expect("144 bytes")
    }

    /// The trailer's bytes.
    pub fn to_bytes(&self) -> [u8; TRAILER_LEN] {
        let checked = self.checked_bytes();
        let mut out = [0u8; TRAILER_LEN];
        out[..144].copy_from_slice(&checked);
        out[144..176].copy_from_slice(blake3::hash(&checked).as_bytes());
        out[176..].copy_from_slice(&END_MAGIC);
        out
    }

    /// Whether trailer-sized bytes look like a trailer at either end (spec
    /// §10.4 step 3).
    pub fn looks_like_trailer(buf: &[u8]) -> bool {
        buf.len() == TRAILER_LEN && (buf[..8] == MAGIC || buf[176..] == END_MAGIC)
    }

    /// Parses a trailer and checks its layout and its check (spec §10.3
    /// rules 2 and 7); the caller checks its place in the file.
    pub fn parse(buf: &[u8]) -> Result<Trailer, Malformed> {
        if buf.len() != TRAILER_LEN {
            return malformed("trailer is not 184 bytes");
        }
        if buf[..8] != MAGIC || buf[176..] != END_MAGIC {
            return malformed("trailer magic is missing");
        }
        if blake3::hash(&buf[..144]).as_bytes() != &buf[144..176] {
            return malformed("trailer check does not match");
        }
        let mut r = Reader::new(&buf[8..144]);
        let major = r.u16("trailer major version")?;
        if major != MAJOR {
            return malformed(format!("trailer major version is {major}, not {MAJOR}"));
        }
        r.zeros(2, "trailer")?;
        let flags = r.u32("trailer flags")?;
        if flags & !FLAG_ENCRYPTED != 0 {
            return malformed(format!("trailer has reserved flag bits set ({flags:#x})"));
        }
        let uuid = r.array("archive UUID")?;
        let generation = r.u64("generation")?;
        if generation == 0 || generation > MAX_GENERATIONS {
            return malformed(format!("generation {generation} is out of range"));
        }
        let generation_start = r.u64("generation start")?;
        let manifest_offset = r.u64("manifest offset")?;
        let manifest_len = r.u32("manifest length")?;
        r.zeros(4, "trailer")?;
        let ko = r.u64("key-slot table offset")?;
        let kl = r.u32("key-slot table length")?;
        r.zeros(4, "trailer")?;
        let manifest_hash = r.array("manifest hash")?;
        let key_slots_hash = r.array("key-slot table hash")?;
        let key_slots = span(ko, kl, "key-slot table")?;
        if key_slots.is_none() && key_slots_hash != [0; 32] {
            return malformed("key-slot table hash without a key-slot table");
        }
        Ok(Trailer {
            encrypted: flags & FLAG_ENCRYPTED != 0,
            uuid,
            generation,
            generation_start,
            manifest_offset,
            manifest_len,
            key_slots,
            manifest_hash,
            key_slots_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(g: u64) -> Manifest {
        Manifest {
            minor: 0,
            encrypted: true,
            uuid: [7; 16],
            generation: g,
            generation_start: 1000,
            commit_time: -5,
            header_hash: [1; 32],
            previous_footer_hash: if g == 1 { [0; 32] } else { [2; 32] },
            generation_hash: [3; 32],
            key_slots: Some((500, 124)),
            runs: runs_in_force(g)
                .iter()
                .map(|_| RunRef {
                    index: Some((10, 20)),
                    snapshots: None,
                })
                .collect(),
            signature: None,
        }
    }

    #[test]
    fn manifests_round_trip_and_count_their_runs() {
        for g in [1, 2, 7, 16, 10_000] {
            let m = manifest(g);
            let bytes = m.to_bytes();
            assert_eq!(
                bytes.len(),
                MANIFEST_FIXED_LEN + RUN_LEN * m.runs.len() + SIGNATURE_LEN
            );
            assert_eq!(Manifest::parse(&bytes).unwrap(), m);
        }
        let mut signed = manifest(3);
        signed.signature = Some(([4; 32], [5; 64]));
        let bytes = signed.to_bytes();
        assert_eq!(Manifest::parse(&bytes).unwrap(), signed);
        assert!(Manifest::parse(&bytes[..bytes.len() - 1]).is_err());
        // A run count that is not the generation's digit sum.
        let mut m = manifest(7);
        m.runs.pop();
        assert!(Manifest::parse(&m.to_bytes()).is_err());
        // Version 1, reserved flags, half a span.
        let good = manifest(2).to_bytes();
        let mut bad = good.clone();
        bad[0] = 1;
        assert!(Manifest::parse(&bad).is_err());
        let mut bad = good.clone();
        bad[4] = 4;
        assert!(Manifest::parse(&bad).is_err());
        let mut bad = good;
        bad[152..156].copy_from_slice(&0u32.to_le_bytes());
        assert!(Manifest::parse(&bad).is_err());
    }

    #[test]
    fn trailers_round_trip_and_check_themselves() {
        let t = Trailer {
            encrypted: false,
            uuid: [9; 16],
            generation: 3,
            generation_start: 4096,
            manifest_offset: 9000,
            manifest_len: 200,
            key_slots: None,
            manifest_hash: [4; 32],
            key_slots_hash: [0; 32],
        };
        let bytes = t.to_bytes();
        assert!(Trailer::looks_like_trailer(&bytes));
        assert_eq!(Trailer::parse(&bytes).unwrap(), t);
        for at in [0, 10, 40, 100, 150, 183] {
            let mut bad = bytes;
            bad[at] ^= 1;
            assert!(Trailer::parse(&bad).is_err(), "flip at {at}");
        }
        let mut bad = bytes;
        bad[183] = b'x';
        assert!(Trailer::looks_like_trailer(&bad));
        // "PTAR" read as a body length is far above any frame.
        let as_len = u32::from_le_bytes(MAGIC[..4].try_into().unwrap());
        assert!(as_len > crate::format::frame::MAX_BODY_LEN);
    }
}
