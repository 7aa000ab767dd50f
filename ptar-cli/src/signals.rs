//! SIGINT, SIGTERM and SIGHUP: stop cleanly.
//!
//! The first of these signals only records itself. The library asks
//! [`crate::commands::CliProgress`] whether to stop between entries and
//! blocks of data ([`ptar::progress::Progress::cancelled`]); the command
//! then unwinds as on any error, so a new archive's temporary file is
//! removed, an append's tail is truncated, and nothing is committed. `main`
//! then ends the process by the same signal, so the parent (a shell, a
//! script under `set -e`) sees what stopped it. A command that had already
//! committed when the signal came finishes and exits with its own code: the
//! exit status always says what state the archive is in.
//!
//! A second signal while the first is being handled ends the process at
//! once (the user insists); a temporary file it leaves is removed by the
//! next `ptar -c` in that directory.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

const HANDLED: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Installs the handlers.
pub fn install() {
    for sig in HANDLED {
        // SAFETY: the handler only touches an atomic and, on a repeated
        // signal, restores the default action and raises the signal again
        // (both async-signal-safe, as `emulate_default_handler` documents).
        let r = unsafe {
            signal_hook::low_level::register(sig, move || {
                if RECEIVED.swap(sig, Ordering::SeqCst) != 0 {
                    let _ = signal_hook::low_level::emulate_default_handler(sig);
                }
            })
        };
        // Without a handler the signal keeps its default action: the
        // process still stops, only less tidily.
        let _ = r;
    }
}

/// The signal received, if one was.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Ends the process by `sig`, as its default action would have: the parent
/// sees the signal, not an exit code. Falls back to exit status 128 + sig.
pub fn die_by(sig: i32) -> ! {
    let _ = signal_hook::low_level::emulate_default_handler(sig);
    std::process::exit(128 + sig)
}
