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
