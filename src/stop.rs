//! A clean stop on SIGTERM or SIGINT (a scheduler's time limit, Ctrl-C): the signal only sets
//! a flag; the tile loop and the scene loop look at it, the product being written is
//! abandoned (its temporary file removed), the shared files are written for what finished,
//! and the run ends naming the finished and the unfinished scenes (exit 143). A rerun goes
//! on from there.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGTERM and SIGINT (once per process; `geofuse run` calls it).
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a stop was requested.
pub fn check() -> Result<()> {
    if requested() {
        Err(Error::Interrupted(
            "the product being written was abandoned".into(),
        ))
    } else {
        Ok(())
    }
}
