//! Repairing a footer damaged only in its trailer (spec §15.6).
//!
//! A trailer repeats, in clear, what its manifest says: when the newest
//! trailer is damaged but the generation's frames and its manifest are
//! intact, the trailer can be written again from the manifest. [`plan`]
//! finds out whether that is the case and what the repair would restore,
//! without writing anything; [`apply`] writes the new trailer.

use std::fs::File;
use std::path::Path;

use crate::format::frame::{FrameType, MAX_BODY_LEN};
use crate::format::manifest::{Manifest, Trailer, TRAILER_LEN};
use crate::retry::eintr;
use crate::store::{OpenOptions, Store};
use crate::{Error, Region, Result};

/// What a repair restores.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairPlan {
    /// The generation whose trailer is rebuilt.
    pub generation: u64,
    /// Where its frames start.
    pub start: u64,
    /// Where its manifest frame is.
    pub manifest_offset: u64,
    /// Where the new trailer goes (the damaged one's place).
    pub trailer_offset: u64,
    /// Snapshots the repaired archive lists, against the last good
    /// generation's.
    pub snapshots_before: usize,
    /// Snapshots it lists once repaired.
    pub snapshots_after: usize,
    /// The trailer to write.
    pub trailer: [u8; TRAILER_LEN],
}

fn cannot(offset: u64, why: impl Into<String>) -> Error {
    Error::corrupt(
        Region::Tail { offset },
        format!(
            "cannot repair: {}; the damage is not confined to the trailer",
            why.into()
        ),
    )
}

/// Works out whether the archive at `path` ends in a trailer that can be
/// rebuilt from its manifest (spec §15.6), and what that restores. `None`
/// when the archive has no damaged tail. Writes nothing.
pub fn plan(path: &Path, passphrase: Option<&[u8]>) -> Result<Option<RepairPlan>> {
    let allow = OpenOptions::new().allow_damaged_tail(true);
    let store = Store::open_with(path, passphrase, &allow)?;
    let Some(tail) = store.tail().filter(|t| t.damaged) else {
        return Ok(None);
    };
    let start = store.committed_end();
    let end = tail.offset + tail.len;
    let file = eintr(|| File::open(path)).map_err(|e| Error::io_at(path, e))?;
    let read = |offset: u64, len: u64| -> Result<Vec<u8>> {
        let mut b = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, offset)
            .map_err(|e| Error::io_at(path, e))?;
        Ok(b)
    };
    let trailer_offset = end
        .checked_sub(TRAILER_LEN as u64)
        .filter(|&t| t > start)
        .ok_or_else(|| cannot(start, "the damaged bytes are shorter than a trailer"))?;
    // The frames of the damaged generation must tile [start, trailer).
    let mut at = start;
    let mut last = None;
    while at < trailer_offset {
        let len = u32::from_le_bytes(read(at, 4)?.try_into().expect("4 bytes"));
        if len == 0 || len > MAX_BODY_LEN || at + 4 + u64::from(len) > trailer_offset {
            return Err(cannot(
                at,
                format!("no whole frame at offset {at} before the damaged trailer"),
            ));
        }
        last = Some((at, 4 + u64::from(len)));
        at += 4 + u64::from(len);
    }
    let (manifest_offset, manifest_len) =
        last.ok_or_else(|| cannot(start, "the damaged generation holds no frame"))?;
    let frame = read(manifest_offset, manifest_len)?;
    let mut content = Vec::new();
    let found = store
        .decode_raw_frame(manifest_offset, &frame, &mut content)
        .map_err(|e| {
            cannot(
                manifest_offset,
                format!("its last frame does not open: {e}"),
            )
        })?;
    if found != FrameType::Manifest {
        return Err(cannot(
            manifest_offset,
            format!("its last frame is a {}, not a manifest", found.name()),
        ));
    }
    let m = Manifest::parse(&content).map_err(|e| {
        cannot(
            manifest_offset,
            format!("its manifest is malformed: {}", e.0),
        )
    })?;
    let last_good = store.generation_count();
    let check = |ok: bool, what: &str| -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(cannot(manifest_offset, what.to_string()))
        }
    };
    check(
        m.generation == last_good + 1,
        "its manifest names another generation",
    )?;
    check(m.generation_start == start, "its manifest starts elsewhere")?;
    check(
        m.uuid == store.header().uuid,
        "its manifest names another archive",
    )?;
    check(
        m.header_hash == *store.header_hash(),
        "its manifest commits to another header",
    )?;
    check(
        m.previous_footer_hash == store.last_footer_hash(),
        "its manifest does not follow the last good footer",
    )?;
    let frames = read(start, manifest_offset - start)?;
    check(
        *blake3::hash(&frames).as_bytes() == m.generation_hash,
        "its frames do not match its manifest's generation hash",
    )?;
    let key_slots_hash = match m.key_slots {
        Some((o, l)) if o >= store.header_len() && o + u64::from(l) <= manifest_offset => {
            *blake3::hash(&read(o, u64::from(l))?).as_bytes()
        }
        Some(_) => return Err(cannot(manifest_offset, "its key-slot table lies elsewhere")),
        None => [0; 32],
    };
    let trailer = Trailer {
        encrypted: store.header().encrypted(),
        uuid: m.uuid,
        generation: m.generation,
        generation_start: start,
        manifest_offset,
        manifest_len: manifest_len as u32,
        key_slots: m.key_slots,
        manifest_hash: *blake3::hash(&frame).as_bytes(),
        key_slots_hash,
    }
    .to_bytes();
    // What the repaired archive lists: open it in memory first.
    let mut repaired = read(0, trailer_offset)?;
    repaired.extend_from_slice(&trailer);
    let after = Store::from_vec(repaired, passphrase).map_err(|e| {
        cannot(
            manifest_offset,
            format!("the rebuilt footer does not open: {e}"),
        )
    })?;
    Ok(Some(RepairPlan {
        generation: m.generation,
        start,
        manifest_offset,
        trailer_offset,
        snapshots_before: store.snapshot_list().len(),
        snapshots_after: after.snapshot_list().len(),
        trailer,
    }))
}

/// Writes the trailer of `plan` in place of the damaged one, truncating
/// anything after it, and makes it durable. The caller holds no other
/// handle on the archive; this takes the appenders' lock (spec §15.3), so a
/// concurrent writer fails as busy.
pub fn apply(path: &Path, plan: &RepairPlan) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let file = crate::archive::lock_for_repair(path)?;
    let len = file.metadata().map_err(|e| Error::io_at(path, e))?.len();
    if len != plan.trailer_offset + TRAILER_LEN as u64 {
        return Err(Error::InvalidInput(format!(
            "{}: the archive changed since the repair was planned",
            path.display()
        )));
    }
    file.write_all_at(&plan.trailer, plan.trailer_offset)
        .map_err(|e| Error::io_at(path, e))?;
    eintr(|| file.set_len(plan.trailer_offset + TRAILER_LEN as u64))
        .map_err(|e| Error::io_at(path, e))?;
    eintr(|| file.sync_all()).map_err(|e| Error::io_at(path, e))?;
    Ok(())
}
