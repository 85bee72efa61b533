//! The only place that talks to GDAL: reading windows, writing COG products, warping.
//!
//! GDAL's buffers are (cols, rows) in C order; they become ndarray `[row, col]` exactly once,
//! in [`reader::RasterReader::read`]. A `Dataset` is `Send` but not `Sync`: each worker opens
//! its own reader.

pub mod reader;
pub mod warp;
pub mod writer;

/// Silences GDAL's default stderr error printer; errors still reach us through return values
/// with their message, and we print them with the file name.
pub fn quiet_gdal_errors() {
    // SAFETY: CPLQuietErrorHandler is a valid handler provided by GDAL; setting the global
    // handler has no other precondition.
    unsafe {
        gdal_sys::CPLSetErrorHandler(Some(gdal_sys::CPLQuietErrorHandler));
    }
}

/// GDAL block cache used when the environment does not set `GDAL_CACHEMAX` (MB). GDAL's own
/// default is 5 % of physical memory (1.2 GB here), and the freed blocks of a full cache stay
/// in the allocator's per-thread arenas, so peak memory grew with the scene (BENCHMARKS.md).
/// geofuse reads each tile once, plus its halo: 64 MB holds every worker's blocks.
pub const DEFAULT_CACHE_MB: usize = 64;

/// Largest allocation glibc serves from its heap rather than a fresh `mmap` (bytes), and the
/// free memory it keeps at the top of a heap before returning it to the kernel.
const MMAP_THRESHOLD: i32 = 32 << 20;
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Allocator settings for tile-sized buffers (glibc only). Tiles allocate and free buffers of a
/// few MB per layer; glibc's defaults hand each one back to the kernel and page-fault it in
/// again (about a fifth of native CPU inference time, measured with perf). Keeping up to
/// [`TRIM_THRESHOLD`] free per heap lets the next tile reuse them.
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc tuning parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Process-wide GDAL settings: a bounded block cache (unless `GDAL_CACHEMAX` is set).
pub fn configure_gdal() {
    if std::env::var_os("GDAL_CACHEMAX").is_none() {
        // Ignoring the result: a refused option leaves GDAL's default in place.
        let _ = gdal::config::set_config_option("GDAL_CACHEMAX", &DEFAULT_CACHE_MB.to_string());
    }
}
