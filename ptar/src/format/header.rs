//! The header at offset 0 and the key slots (spec §4, §5).
//!
//! ```text
//! offset size field
//!      0    8 magic 89 50 54 41 52 0D 0A 1A ("\x89PTAR\r\n\x1a")
//!      8    2 major version
//!     10    2 minor version
//!     12    4 header length in bytes (this whole structure)
//!     16    4 flags: bit 0 encrypted; bits 1-15 reserved (MUST be 0); bits 16-31 unused
//!     20   16 archive UUID
//!     36    1 content-id hash: 1 = BLAKE3-256
//!     37    1 chunker: 1 = FastCDC-2020 gear hash, normalization level 1
//!     38    1 AEAD: 0 = none, 1 = XChaCha20-Poly1305
//!     39    1 default codec (informational): 0 = stored, 1 = LZ4
//!     40    4 chunk minimum size
//!     44    4 chunk average size (a power of two)
//!     48    4 chunk maximum size
//!     52    2 reserved (MUST be 0)
//!     54    2 key slot count N
//!     56    8 creation time, seconds since the Unix epoch (informational)
//!     64   32 key check (all zero when not encrypted)
//!     96 104N key slots
//! 96+104N  32 BLAKE3-256 of every header byte before this field
//! ```

use super::limits::*;
use super::{malformed, Malformed, Put, Reader, FORMAT_MAJOR};

/// The 8 bytes every ptar archive starts with.
pub const MAGIC: [u8; 8] = *b"\x89PTAR\r\n\x1a";
/// Size of the header without key slots.
pub const FIXED_LEN: usize = 96 + 32;
/// Size of one key slot.
pub const KEY_SLOT_LEN: usize = 104;
/// Header flag: the archive is encrypted.
pub const FLAG_ENCRYPTED: u32 = 1;
/// Header flag bits that are reserved: a reader MUST refuse a header with any set.
pub const FLAGS_RESERVED: u32 = 0x0000_fffe;

/// Key-slot kind: a passphrase through Argon2id.
pub const SLOT_ARGON2ID: u8 = 1;
/// The Argon2 version number written and accepted (0x13).
pub const ARGON2_VERSION: u8 = 0x13;

/// Magic of a key-slot table appended by a later generation.
pub const KEYSLOTS_MAGIC: [u8; 8] = *b"PTARKEYS";

/// FastCDC parameters recorded in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Smallest chunk (except a file's last).
    pub min: u32,
    /// Target average; a power of two.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl ChunkerParams {
    /// The parameters ptar writes by default: 16 KiB / 64 KiB / 256 KiB.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
    };

    /// Checks the rules of spec §7: even sizes, min < avg < max, avg a power
    /// of two between 256 B and 4 MiB, min >= 64, max <= 16 MiB.
    pub fn validate(&self) -> Result<(), Malformed> {
        let ok = self.min >= 64
            && self.min % 2 == 0
            && self.max % 2 == 0
            && self.avg.is_power_of_two()
            && (256..=4 * 1024 * 1024).contains(&self.avg)
            && self.min < self.avg
            && self.avg < self.max
            && self.max <= 16 * 1024 * 1024
            && self.max <= MAX_BLOB_LEN;
        if !ok {
            return malformed(format!(
                "chunker sizes {}/{}/{} break the rules",
                self.min, self.avg, self.max
            ));
        }
        Ok(())
    }
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// What `ptar` writes by default: 256 MiB, 3 passes, 4 lanes.
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 256 * 1024,
        t: 3,
        p: 4,
    };

    /// Checks the reader caps (spec §5.2) before any memory is allocated.
    pub fn check_limits(&self) -> Result<(), String> {
        // Argon2 needs 8 KiB of memory per lane; widened so a hostile lane
        // count cannot overflow the product.
        if self.p == 0 || self.t == 0 || u64::from(self.m_kib) < 8 * u64::from(self.p) {
            return Err(format!(
                "m={} KiB t={} p={} is not valid Argon2id",
                self.m_kib, self.t, self.p
            ));
        }
        if self.m_kib > MAX_ARGON2_M_KIB || self.t > MAX_ARGON2_T || self.p > MAX_ARGON2_P {
            return Err(format!(
                "m={} KiB t={} p={}; at most m={} KiB t={} p={}",
                self.m_kib, self.t, self.p, MAX_ARGON2_M_KIB, MAX_ARGON2_T, MAX_ARGON2_P
            ));
        }
        Ok(())
    }

    /// The Argon2id work of one derivation with these costs, in KiB·passes:
    /// `m·t` (spec §5.2). Lanes split the work without reducing it.
    pub fn work(&self) -> u64 {
        u64::from(self.m_kib) * u64::from(self.t)
    }
}

/// The Argon2id work a reader may do to try every slot of a set, in
/// KiB·passes (spec §5.2): the sum of `m·t` over the slots within the
/// per-slot caps. A slot beyond them is skipped, never derived, and costs
/// nothing.
pub fn key_slot_set_work<'a>(kdfs: impl IntoIterator<Item = &'a KdfParams>) -> u64 {
    kdfs.into_iter()
        .filter(|k| k.check_limits().is_ok())
        .map(KdfParams::work)
        .sum()
}

/// Checks a set of key slots (a header's, a key-slot table's, or one a
/// writer is about to write) against the whole-set cap of spec §5.2,
/// before anything is derived. Returns the set's work, or a message
/// naming the total and the cap.
pub fn check_key_slot_set_work<'a>(
    kdfs: impl IntoIterator<Item = &'a KdfParams>,
) -> Result<u64, String> {
    let kdfs: Vec<&KdfParams> = kdfs.into_iter().collect();
    let work = key_slot_set_work(kdfs.iter().copied());
    if work > MAX_ARGON2_SET_WORK {
        return Err(format!(
            "excessive work: {} key slot(s) ask for {work} KiB·passes of Argon2id in total \
             (the sum of m·t), above the cap of {MAX_ARGON2_SET_WORK} KiB·passes (8 GiB·passes)",
            kdfs.len()
        ));
    }
    Ok(work)
}

/// What a writer checks before writing a set of key slots (spec §5.2):
/// every slot within the per-slot caps, and the set within the whole-set
/// cap. Returns the set's work.
pub fn check_key_slot_set_for_writing<'a>(
    kdfs: impl IntoIterator<Item = &'a KdfParams>,
) -> Result<u64, String> {
    let kdfs: Vec<&KdfParams> = kdfs.into_iter().collect();
    for (i, k) in kdfs.iter().enumerate() {
        k.check_limits()
            .map_err(|e| format!("key slot {}: {e}", i + 1))?;
    }
    check_key_slot_set_work(kdfs)
}

/// One wrapped copy of the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySlot {
    /// Argon2id costs.
    pub kdf: KdfParams,
    /// Argon2id salt.
    pub salt: [u8; 16],
    /// XChaCha20-Poly1305 nonce of the wrap.
    pub nonce: [u8; 24],
    /// The master key encrypted under the passphrase key, with its tag.
    pub wrapped: [u8; 48],
}

impl KeySlot {
    /// The first 32 bytes of the slot (kind, version, costs, salt): the part
    /// bound into the wrap's associated data.
    pub fn params_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        b.put_u8(SLOT_ARGON2ID);
        b.put_u8(ARGON2_VERSION);
        b.put_u16(0);
        b.put_u32(self.kdf.m_kib);
        b.put_u32(self.kdf.t);
        b.put_u32(self.kdf.p);
        b.put(&self.salt);
        b
    }

    /// Serializes the slot (104 bytes).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.put(&self.params_bytes());
        out.put(&self.nonce);
        out.put(&self.wrapped);
    }

    /// Parses one slot. Unknown kinds and versions are refused; the cost
    /// limits are checked later, when the slot is tried.
    pub fn read(r: &mut Reader<'_>) -> Result<KeySlot, Malformed> {
        let kind = r.u8("key slot kind")?;
        if kind != SLOT_ARGON2ID {
            return malformed(format!("unknown key slot kind {kind}"));
        }
        let version = r.u8("argon2 version")?;
        if version != ARGON2_VERSION {
            return malformed(format!("unknown Argon2 version {version:#x}"));
        }
        r.zeros(2, "key slot reserved")?;
        let kdf = KdfParams {
            m_kib: r.u32("argon2 m")?,
            t: r.u32("argon2 t")?,
            p: r.u32("argon2 p")?,
        };
        Ok(KeySlot {
            kdf,
            salt: r.array("salt")?,
            nonce: r.array("nonce")?,
            wrapped: r.array("wrapped key")?,
        })
    }
}

/// The parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Major version (always [`FORMAT_MAJOR`] once parsed).
    pub major: u16,
    /// Minor version the archive was created with.
    pub minor: u16,
    /// Flag word as stored (unused bits kept).
    pub flags: u32,
    /// Random id of this archive.
    pub uuid: [u8; 16],
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// Codec the writer prefers (informational).
    pub default_codec: u8,
    /// Seconds since the epoch when created.
    pub created: i64,
    /// Key check value (zero when plain).
    pub key_check: [u8; 32],
    /// Key slots (empty when plain).
    pub key_slots: Vec<KeySlot>,
}

impl Header {
    /// Whether blobs are encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Serializes the header, checksum included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = FIXED_LEN + KEY_SLOT_LEN * self.key_slots.len();
        let mut b = Vec::with_capacity(len);
        b.put(&MAGIC);
        b.put_u16(self.major);
        b.put_u16(self.minor);
        b.put_u32(len as u32);
        b.put_u32(self.flags);
        b.put(&self.uuid);
        b.put_u8(1);
        b.put_u8(1);
        b.put_u8(if self.encrypted() { 1 } else { 0 });
        b.put_u8(self.default_codec);
        b.put_u32(self.chunker.min);
        b.put_u32(self.chunker.avg);
        b.put_u32(self.chunker.max);
        b.put_u16(0);
        b.put_u16(self.key_slots.len() as u16);
        b.put_i64(self.created);
        b.put(&self.key_check);
        for s in &self.key_slots {
            s.write(&mut b);
        }
        let sum = blake3::hash(&b);
        b.put(sum.as_bytes());
        debug_assert_eq!(b.len(), len);
        b
    }

    /// Reads the length field of a header prefix (at least 16 bytes), after
    /// checking the magic and the major version, so a reader knows how many
    /// bytes to fetch.
    pub fn peek_len(prefix: &[u8]) -> Result<usize, HeaderError> {
        if prefix.len() < 16 || prefix[..8] != MAGIC {
            return Err(HeaderError::NotPtar);
        }
        let mut r = Reader::new(&prefix[8..16]);
        let major = r.u16("major").map_err(HeaderError::Malformed)?;
        let minor = r.u16("minor").map_err(HeaderError::Malformed)?;
        if major != FORMAT_MAJOR {
            return Err(HeaderError::Version { major, minor });
        }
        let len = r.u32("header length").map_err(HeaderError::Malformed)?;
        if (len as usize) < FIXED_LEN || len > MAX_HEADER_LEN {
            return Err(HeaderError::Malformed(Malformed(format!(
                "header length {len} is out of range"
            ))));
        }
        Ok(len as usize)
    }

    /// Parses exactly one header (`buf` is `peek_len` bytes long).
    pub fn parse(buf: &[u8]) -> Result<Header, HeaderError> {
        let len = Header::peek_len(buf)?;
        if buf.len() != len {
            return Err(HeaderError::Malformed(Malformed(
                "header is truncated".into(),
            )));
        }
        let m = HeaderError::Malformed;
        let (body, sum) = buf.split_at(len - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(m(Malformed("header checksum does not match".into())));
        }
        let mut r = Reader::new(body);
        r.take(8, "magic").map_err(m)?;
        let major = r.u16("major").map_err(m)?;
        let minor = r.u16("minor").map_err(m)?;
        r.u32("length").map_err(m)?;
        let flags = r.u32("flags").map_err(m)?;
        if flags & FLAGS_RESERVED != 0 {
            return Err(m(Malformed(format!(
                "reserved header flags {:#x} are set",
                flags & FLAGS_RESERVED
            ))));
        }
        let uuid = r.array("uuid").map_err(m)?;
        let hash = r.u8("hash algorithm").map_err(m)?;
        let chunker_alg = r.u8("chunker").map_err(m)?;
        let aead = r.u8("aead").map_err(m)?;
        let default_codec = r.u8("codec").map_err(m)?;
        if hash != 1 {
            return Err(HeaderError::Unsupported(format!("content-id hash {hash}")));
        }
        if chunker_alg != 1 {
            return Err(HeaderError::Unsupported(format!("chunker {chunker_alg}")));
        }
        let encrypted = flags & FLAG_ENCRYPTED != 0;
        match (aead, encrypted) {
            (0, false) | (1, true) => {}
            (0 | 1, _) => {
                return Err(m(Malformed(
                    "AEAD byte disagrees with the encrypted flag".into(),
                )))
            }
            _ => return Err(HeaderError::Unsupported(format!("AEAD {aead}"))),
        }
        let chunker = ChunkerParams {
            min: r.u32("chunk min").map_err(m)?,
            avg: r.u32("chunk avg").map_err(m)?,
            max: r.u32("chunk max").map_err(m)?,
        };
        chunker.validate().map_err(m)?;
        r.zeros(2, "reserved").map_err(m)?;
        let nslots = r.u16("key slot count").map_err(m)?;
        let created = r.i64("created").map_err(m)?;
        let key_check = r.array("key check").map_err(m)?;
        if nslots > MAX_KEY_SLOTS {
            return Err(m(Malformed(format!("{nslots} key slots exceed the limit"))));
        }
        if len != FIXED_LEN + KEY_SLOT_LEN * nslots as usize {
            return Err(m(Malformed(
                "header length disagrees with the key slot count".into(),
            )));
        }
        if encrypted == (nslots == 0) {
            return Err(m(Malformed(
                "key slots must be present exactly when encrypted".into(),
            )));
        }
        if !encrypted && key_check != [0; 32] {
            return Err(m(Malformed("a plain archive has a key check".into())));
        }
        let mut key_slots = Vec::with_capacity(nslots as usize);
        for _ in 0..nslots {
            key_slots.push(KeySlot::read(&mut r).map_err(m)?);
        }
        r.finish("header").map_err(m)?;
        Ok(Header {
            major,
            minor,
            flags,
            uuid,
            chunker,
            default_codec,
            created,
            key_check,
            key_slots,
        })
    }
}

/// Why a header could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// No magic.
    NotPtar,
    /// Another major version.
    Version {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// An algorithm id this library does not know.
    Unsupported(String),
    /// Broken bytes.
    Malformed(Malformed),
}

/// Serializes a key-slot table (spec §5.4).
pub fn keyslots_to_bytes(slots: &[KeySlot]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + KEY_SLOT_LEN * slots.len());
    b.put(&KEYSLOTS_MAGIC);
    b.put_u16(slots.len() as u16);
    b.put(&[0; 6]);
    for s in slots {
        s.write(&mut b);
    }
    b
}

/// Parses a key-slot table.
pub fn keyslots_parse(buf: &[u8]) -> Result<Vec<KeySlot>, Malformed> {
    let mut r = Reader::new(buf);
    if r.take(8, "magic")? != KEYSLOTS_MAGIC {
        return malformed("bad key-slot table magic");
    }
    let n = r.u16("key slot count")?;
    r.zeros(6, "reserved")?;
    if n == 0 || n > MAX_KEY_SLOTS {
        return malformed(format!("{n} key slots"));
    }
    let mut slots = Vec::with_capacity(n as usize);
    for _ in 0..n {
        slots.push(KeySlot::read(&mut r)?);
    }
    r.finish("key-slot table")?;
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(encrypted: bool) -> Header {
        Header {
            major: crate::format::FORMAT_MAJOR,
            minor: 0,
            flags: if encrypted { FLAG_ENCRYPTED } else { 0 },
            uuid: [7; 16],
            chunker: ChunkerParams::DEFAULT,
            default_codec: 1,
            created: 1_700_000_000,
            key_check: if encrypted { [9; 32] } else { [0; 32] },
            key_slots: if encrypted {
                vec![KeySlot {
                    kdf: KdfParams {
                        m_kib: 64,
                        t: 1,
                        p: 1,
                    },
                    salt: [1; 16],
                    nonce: [2; 24],
                    wrapped: [3; 48],
                }]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn round_trips() {
        for enc in [false, true] {
            let h = sample(enc);
            let b = h.to_bytes();
            assert_eq!(Header::parse(&b).unwrap(), h);
        }
    }

    #[test]
    fn refuses_reserved_flags_and_other_majors() {
        let mut h = sample(false);
        h.flags |= 2;
        let b = h.to_bytes();
        assert!(matches!(Header::parse(&b), Err(HeaderError::Malformed(_))));
        let mut h = sample(false);
        h.flags |= 1 << 20; // unused bit: ignored
        assert!(Header::parse(&h.to_bytes()).is_ok());
        for major in [1, 3] {
            let mut h = sample(false);
            h.major = major;
            assert!(matches!(
                Header::parse(&h.to_bytes()),
                Err(HeaderError::Version { major: m, .. }) if m == major
            ));
        }
    }

    #[test]
    fn the_whole_set_of_slots_is_capped_not_each_slot() {
        let slot = |m_kib, t| KdfParams { m_kib, t, p: 1 };
        // Ten default slots fit; eleven do not.
        let ten = vec![KdfParams::DEFAULT; 10];
        assert_eq!(check_key_slot_set_work(&ten), Ok(10 * 256 * 1024 * 3));
        let eleven = vec![KdfParams::DEFAULT; 11];
        let e = check_key_slot_set_work(&eleven).unwrap_err();
        assert!(e.contains("excessive work"), "{e}");
        assert!(e.contains(&(11u64 * 256 * 1024 * 3).to_string()), "{e}");
        assert!(e.contains(&MAX_ARGON2_SET_WORK.to_string()), "{e}");
        // 64 slots each well within the per-slot caps, together over.
        let many = vec![slot(1 << 21, 1); 64];
        assert!(many.iter().all(|k| k.check_limits().is_ok()));
        assert!(check_key_slot_set_work(&many).is_err());
        // Exactly at the cap is allowed; one KiB·pass more is not.
        assert!(check_key_slot_set_work(&[slot(1 << 20, 8)]).is_ok());
        assert!(check_key_slot_set_work(&[slot(1 << 20, 8), slot(8, 1)]).is_err());
        // A single slot at the per-slot maxima is over the whole cap.
        assert!(check_key_slot_set_work(&[slot(MAX_ARGON2_M_KIB, MAX_ARGON2_T)]).is_err());
        // Slots beyond the per-slot caps are skipped, so they cost nothing.
        assert_eq!(
            key_slot_set_work(&[slot(u32::MAX, u32::MAX), slot(64, 1)]),
            64
        );
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let b = sample(true).to_bytes();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(Header::parse(&c).is_err(), "byte {i}");
        }
    }
}
