//! What follows the last valid footer, and whether a reader goes on
//! (spec §10.4).
//!
//! The bytes after the last valid footer are the *tail*. A tail that does
//! not end in something shaped like a footer is an *interrupted append*: a
//! writer stopped before its footer was complete, nothing committed was
//! lost, and readers open the last generation with a note. A tail that does
//! end in something shaped like a footer is *damage*: a generation was
//! committed and its footer altered or corrupted since, so the snapshots it
//! added are lost to readers. Opening such an archive is refused unless the
//! caller asks, through [`OpenOptions::allow_damaged_tail`], to read the
//! last good generation.

use crate::format::manifest::TRAILER_LEN;
use crate::{Error, Region, Result};

/// The two kinds of tail (spec §10.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailKind {
    /// No complete footer at the end: a writer stopped before committing.
    /// Readers open the last good generation; the next append removes it.
    InterruptedAppend,
    /// The file ends in something shaped like a footer that does not
    /// verify: a committed generation's footer was damaged. Readers refuse
    /// unless allowed; writers refuse to append.
    Damaged,
}

/// What follows the last valid footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    /// Offset of the first byte after the last valid footer.
    pub offset: u64,
    /// Number of bytes after it.
    pub len: u64,
    /// True when the file ends in something shaped like a footer that does
    /// not verify: damage, not an interrupted append (see [`Tail::kind`]).
    pub damaged: bool,
    /// Why the footer-shaped end was refused, when `damaged`.
    pub detail: String,
}

impl Tail {
    /// Damage or an interrupted append.
    pub fn kind(&self) -> TailKind {
        if self.damaged {
            TailKind::Damaged
        } else {
            TailKind::InterruptedAppend
        }
    }

    /// Offset just past the tail: the file's length when it was opened.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }

    /// The error that refuses this tail, when it is damage: names the
    /// region, the last good generation and how to go on.
    pub fn damage_error(&self, last_good_generation: u64) -> Option<Error> {
        self.damaged.then(|| Error::DamagedTail {
            offset: self.offset,
            end: self.end(),
            last_good_generation,
            detail: self.detail.clone(),
        })
    }

    /// A verifier's account of a damaged tail (spec §10.4, §16): the
    /// region, the last good generation, and what is lost with the damaged
    /// footer. `None` for an interrupted append, which is not a problem.
    pub fn damage_problem(
        &self,
        last_good_generation: u64,
        snapshots_kept: usize,
    ) -> Option<Error> {
        self.damaged.then(|| {
            Error::corrupt(
                // The footer-shaped end of the file.
                Region::Tail {
                    offset: self
                        .end()
                        .saturating_sub(TRAILER_LEN as u64)
                        .max(self.offset),
                },
                format!(
                    "the newest footer is damaged ({}): bytes {}..{} ({} bytes after generation \
                     {last_good_generation}, the last valid one) end in a footer that does not \
                     verify. Lost to readers: the generation written there (generation {}, and \
                     any later one) and every snapshot committed after generation \
                     {last_good_generation}; the {snapshots_kept} snapshot(s) generation \
                     {last_good_generation} lists are kept",
                    self.detail,
                    self.offset,
                    self.end(),
                    self.len,
                    last_good_generation + 1,
                ),
            )
        })
    }
}

/// How an archive is opened. The default refuses an archive whose tail is
/// damaged (spec §10.4).
///
/// ```
/// let opts = ptar::store::OpenOptions::new().allow_damaged_tail(true);
/// assert!(opts.allows_damaged_tail());
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    allow_damaged_tail: bool,
}

impl OpenOptions {
    /// The defaults: a damaged tail is refused.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// When `allow` is true, an archive whose newest footer is damaged opens
    /// read-only at its last good generation, and [`Store::tail`] reports
    /// the damage; the caller should say so. The snapshots of the damaged
    /// generation are not seen.
    ///
    /// [`Store::tail`]: crate::store::Store::tail
    pub fn allow_damaged_tail(mut self, allow: bool) -> OpenOptions {
        self.allow_damaged_tail = allow;
        self
    }

    /// Whether a damaged tail is allowed.
    pub fn allows_damaged_tail(&self) -> bool {
        self.allow_damaged_tail
    }
}

/// Refuses a damaged tail unless `opts` allows it; an interrupted append
/// (or no tail) always passes. Called before any key is derived.
pub(crate) fn refuse_damaged_tail(
    tail: Option<&Tail>,
    last_good_generation: u64,
    opts: &OpenOptions,
) -> Result<()> {
    match tail.and_then(|t| t.damage_error(last_good_generation)) {
        Some(e) if !opts.allows_damaged_tail() => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(damaged: bool) -> Tail {
        Tail {
            offset: 1000,
            len: 512,
            damaged,
            detail: if damaged {
                "bad magic".into()
            } else {
                String::new()
            },
        }
    }

    #[test]
    fn only_damage_is_refused_and_only_by_default() {
        let allow = OpenOptions::new().allow_damaged_tail(true);
        let deny = OpenOptions::new();
        assert!(refuse_damaged_tail(None, 3, &deny).is_ok());
        assert!(refuse_damaged_tail(Some(&tail(false)), 3, &deny).is_ok());
        assert!(refuse_damaged_tail(Some(&tail(true)), 3, &allow).is_ok());
        let e = refuse_damaged_tail(Some(&tail(true)), 3, &deny).unwrap_err();
        assert!(matches!(
            e,
            Error::DamagedTail {
                offset: 1000,
                end: 1512,
                last_good_generation: 3,
                ..
            }
        ));
        let msg = e.to_string();
        for want in ["1000..1512", "generation 3", "bad magic"] {
            assert!(msg.contains(want), "{want} not in: {msg}");
        }
        assert_eq!(tail(true).kind(), TailKind::Damaged);
        assert_eq!(tail(false).kind(), TailKind::InterruptedAppend);
    }
}
