//! The only place that talks to GDAL: reading windows, writing COG products, warping.
//!
//! GDAL's buffers are (cols, rows) in C order; every read and write goes through one
//! `GDALDatasetRasterIO` call (`dataset_raster_io`) with a `[band][row][col]` buffer, which
//! becomes ndarray `[band, row, col]` exactly once, in [`reader::RasterReader::read`]. Outside
//! io/ geofuse sees its own types ([`reader::RasterReader`], [`crate::raster::Grid`]), never a
//! GDAL one; GDAL's error message is kept in geofuse's errors, and a file GDAL cannot read is
//! an input error (exit 2) whichever thread reads it. A `Dataset` is `Send` but not `Sync`: each worker opens
//! its own reader.

pub(crate) mod http;
pub(crate) mod json;
pub(crate) mod netcdf;
pub(crate) mod points;
pub mod reader;
pub(crate) mod sieve;
pub mod stack;
pub mod vector;
pub(crate) mod vrt;
pub(crate) mod warp;
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

/// Why a [`dataset_raster_io`] call did not run or failed.
#[derive(Debug)]
pub(crate) enum RasterIoError {
    /// Bands, window or buffer do not fit the dataset (a caller's bug).
    Arguments(String),
    /// GDAL reported an error (a truncated or corrupt file, a full disk): its message.
    Gdal(String),
}

/// GDAL's last error message on this thread (empty when there is none).
pub(crate) fn last_gdal_message() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a thread-local, NUL-terminated buffer
    // owned by GDAL (never null); it is copied before any other GDAL call can change it.
    unsafe {
        let p = gdal_sys::CPLGetLastErrorMsg();
        if p.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(p)
            .to_string_lossy()
            .trim()
            .to_string()
    }
}

/// One `GDALDatasetRasterIO` call over window `win` of the 1-based `bands`: reads into `buf` or
/// (`write`) writes it, `buf` laid out band-sequential (`[band][row][col]`) or, when
/// `interleaved`, pixel-interleaved (`[row][col][band]`). All bands in one call, so a
/// pixel-interleaved file decodes or fills each block once.
pub(crate) fn dataset_raster_io<T: gdal::raster::GdalType + Copy>(
    ds: &gdal::Dataset,
    write: bool,
    win: crate::raster::Window,
    bands: &[usize],
    buf: &mut [T],
    interleaved: bool,
) -> std::result::Result<(), RasterIoError> {
    use std::ffi::c_int;
    let (h, w, nb) = (win.height, win.width, bands.len());
    if buf.len() != nb * h * w {
        return Err(RasterIoError::Arguments(format!(
            "buffer of {} values for {nb} band(s) of {h} x {w}",
            buf.len()
        )));
    }
    if buf.is_empty() {
        return Ok(());
    }
    let count = ds.raster_count();
    if let Some(&b) = bands.iter().find(|&&b| b == 0 || b > count) {
        return Err(RasterIoError::Arguments(format!("no band {b}")));
    }
    let (cols, rows) = ds.raster_size();
    if win.row + h > rows || win.col + w > cols {
        return Err(RasterIoError::Arguments(format!(
            "window {win} outside the raster ({cols} x {rows})"
        )));
    }
    let mut map: Vec<c_int> = bands.iter().map(|&b| b as c_int).collect();
    let size = std::mem::size_of::<T>();
    let (pixel, line, band) = if interleaved {
        (size * nb, size * nb * w, size)
    } else {
        (size, size * w, size * w * h)
    };
    let flag = if write {
        gdal_sys::GDALRWFlag::GF_Write
    } else {
        gdal_sys::GDALRWFlag::GF_Read
    };
    // SAFETY: `buf` holds nb x h x w values of T and the spacings address exactly that layout;
    // the band map lists nb existing 1-based bands and the window lies inside the raster (all
    // checked above); the dataset handle is borrowed for the duration of the call.
    let err = unsafe {
        gdal_sys::GDALDatasetRasterIO(
            ds.c_dataset(),
            flag,
            win.col as c_int,
            win.row as c_int,
            w as c_int,
            h as c_int,
            buf.as_mut_ptr() as *mut std::ffi::c_void,
            w as c_int,
            h as c_int,
            T::gdal_ordinal(),
            nb as c_int,
            map.as_mut_ptr(),
            pixel as c_int,
            line as c_int,
            band as c_int,
        )
    };
    if err == gdal_sys::CPLErr::CE_None {
        Ok(())
    } else {
        Err(RasterIoError::Gdal(last_gdal_message()))
    }
}

/// Largest allocation glibc serves from its heap rather than a fresh `mmap` (bytes), and the
/// free memory it keeps at the top of a heap before returning it to the kernel.
const MMAP_THRESHOLD: i32 = 32 << 20;
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Allocator settings for tile-sized buffers (glibc only). Tiles allocate and free buffers of a
/// few MB per layer; glibc's defaults hand each one back to the kernel and page-fault it in
/// again (about a fifth of native CPU inference time, measured with perf). Keeping up to
/// `TRIM_THRESHOLD` free per heap lets the next tile reuse them.
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
