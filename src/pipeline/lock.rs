//! The output folder's lock. Shards of one pipeline (`--shard I/N`) may run at the same time
//! into one output folder: each processes its own scenes (their folders are never shared), and
//! takes this lock while it trains or reuses the models and while it writes the shared files
//! (top-level manifest, report, mosaics, run record), so those are never raced. Every file is
//! also written under a temporary name and renamed, so a reader never sees half a file.
//!
//! The lock is an advisory `flock` on `<out>/.geofuse.lock`, released when the process ends,
//! killed or not, so a killed run never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::Log;
use crate::error::{Error, Result};

/// Name of the lock file in the output folder.
pub const LOCK_FILE: &str = ".geofuse.lock";

/// Held until dropped.
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    /// Takes the lock of `out` (waiting for another process that holds it; `what` says why in
    /// the log line).
    pub fn acquire(out: &Path, what: &str, log: &Log) -> Result<Self> {
        let path = out.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "open lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                log.info(&format!(
                    "waiting for another geofuse process writing into {} ({what})",
                    out.display()
                ));
                file.lock().map_err(|e| Error::io(&path, "lock", e))?;
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, "lock", e)),
        }
        Ok(OutputLock { _file: file })
    }
}

/// Whether a file name is one of geofuse's temporary names (a write that did not finish).
/// (`.coreg*` are the work folders of co-registration, `.tmp-*` the COG writer's staging
/// folders.)
pub fn is_temporary(name: &str) -> bool {
    name.contains(".partial") || name.starts_with(".coreg") || name.starts_with(".tmp-")
}

/// Removes the temporary files a killed run left in `dir` (not recursive). Call it only where
/// no other process can be writing: under the lock for shared folders, or in a scene's own
/// folder before processing it.
pub fn sweep_temporary(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if is_temporary(&name.to_string_lossy()) {
            let p = e.path();
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}
