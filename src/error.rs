//! One error type for the library; every variant carries what a user needs to fix the problem.

use std::path::PathBuf;

/// Library result.
pub type Result<T> = std::result::Result<T, Error>;

/// Errors raised by geofuse. `exit_code` maps them onto the CLI contract
/// (2 = bad input or config, 1 = internal error).
///
/// Errors are `Clone`, so a worker that cannot open its readers (rayon `map_init`) hands the
/// same error, with its kind and exit code, to every tile it is given.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The pipeline file is malformed or inconsistent.
    #[error("pipeline {path}: {msg}")]
    Config { path: PathBuf, msg: String },

    /// An input raster is missing, unreadable or unusable.
    #[error("input {path}: {msg}")]
    Input { path: PathBuf, msg: String },

    /// Two rasters that must share a grid do not, and warping is not allowed.
    #[error("grid mismatch: {msg}")]
    GridMismatch {
        /// The file whose grid differs from the scene grid.
        path: PathBuf,
        /// Both grids and the fix.
        msg: String,
    },

    /// A model file does not match the scene it is applied to.
    #[error("model {path}: {msg}")]
    Model { path: PathBuf, msg: String },

    /// A GDAL call failed while writing a file (GDAL's own message kept).
    #[error(
        "GDAL failed on {path} ({what}): {msg}{}",
        full_hint(gdal_disk_full(msg))
    )]
    Gdal {
        path: PathBuf,
        what: String,
        msg: String,
    },

    /// Filesystem error on a path.
    #[error("{what} {path}: {source}{}", full_hint(io_disk_full(source)))]
    Io {
        path: PathBuf,
        what: String,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },

    /// Some scenes of a batch had bad input; the others were processed.
    #[error("{}", scenes_failed(failed, *total))]
    ScenesFailed {
        /// (scene, message) of every failed scene.
        failed: Vec<(String, String)>,
        /// Scenes this run tried.
        total: usize,
    },

    /// Stopped by SIGTERM or SIGINT at a clean point; the message says what finished.
    #[error("stopped by a signal: {0}")]
    Interrupted(String),

    /// A bug or an unexpected state inside geofuse.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Process exit code for this error: 2 for bad input or configuration, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. }
            | Error::Input { .. }
            | Error::GridMismatch { .. }
            | Error::Model { .. }
            | Error::ScenesFailed { .. } => 2,
            // 128 + SIGTERM, as a shell reports a terminated job.
            Error::Interrupted(_) => 143,
            _ => 1,
        }
    }

    /// A short name of the error kind (manifests, summaries).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Input { .. } => "input",
            Error::GridMismatch { .. } => "grid-mismatch",
            Error::Model { .. } => "model",
            Error::ScenesFailed { .. } => "scenes-failed",
            Error::Gdal { .. } => "gdal",
            Error::Io { .. } => "io",
            Error::Interrupted(_) => "interrupted",
            Error::Internal(_) => "internal",
        }
    }

    /// Shorthand for an input error.
    pub fn input(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// Shorthand for a configuration error.
    pub fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// A GDAL failure on an output file, with GDAL's message.
    pub fn gdal(path: impl Into<PathBuf>, what: impl Into<String>, msg: impl ToString) -> Self {
        Error::Gdal {
            path: path.into(),
            what: what.into(),
            msg: msg.to_string(),
        }
    }

    /// Wraps an I/O error with the file and the operation.
    pub fn io(path: impl Into<PathBuf>, what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            what: what.into(),
            source: std::sync::Arc::new(source),
        }
    }
}

/// Whether an I/O error says the disk (or quota, or file size limit) is exhausted.
fn io_disk_full(e: &std::io::Error) -> bool {
    // ENOSPC, EDQUOT, EFBIG on Linux.
    matches!(e.raw_os_error(), Some(28 | 122 | 27))
}

/// Whether a GDAL message says the disk is full.
fn gdal_disk_full(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("no space left") || m.contains("free disk space") || m.contains("disk full")
}

fn full_hint(full: bool) -> &'static str {
    if full {
        "; the disk is full: free space (or choose another output folder with --out) and rerun; finished products are kept and the rerun goes on from them"
    } else {
        ""
    }
}

/// The message of [`Error::ScenesFailed`].
fn scenes_failed(failed: &[(String, String)], total: usize) -> String {
    let each: Vec<String> = failed
        .iter()
        .map(|(s, m)| format!("scene `{s}`: {m}"))
        .collect();
    if total <= 1 {
        return each.join("; ");
    }
    format!(
        "{} of {total} scenes failed (the others finished): {}",
        failed.len(),
        each.join("; ")
    )
}

/// Locks a mutex shared by worker threads; a poisoned lock (a worker panicked) is an
/// internal error.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| Error::Internal("lock poisoned".into()))
}
