//! VRT mosaics: one virtual layer over many products (GDAL's `gdalbuildvrt`), so a GIS user
//! opens one file per method instead of one per scene.

use std::path::{Path, PathBuf};

use gdal::programs::raster::{build_vrt, BuildVRTOptions};
use gdal::Dataset;

use crate::error::{Error, Result};

/// Builds the VRT `dst` over `sources` (same CRS, same bands); written under a temporary name
/// and renamed. Source paths are stored relative to the VRT where they can be, so the output
/// folder can be moved.
pub fn write_mosaic(dst: &Path, sources: &[PathBuf]) -> Result<()> {
    let mut datasets = Vec::with_capacity(sources.len());
    for s in sources {
        datasets.push(super::reader::open(s)?);
    }
    let tmp = crate::io::writer::append_ext(dst, ".partial.vrt");
    let opts = BuildVRTOptions::new(["-resolution", "highest"])
        .map_err(|e| Error::gdal(dst, "mosaic options", e))?;
    let ds = build_vrt(Some(&tmp), &datasets, Some(opts)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::gdal(dst, "build mosaic", e)
    })?;
    drop(ds);
    drop(datasets);
    relative_sources(&tmp, dst)?;
    std::fs::rename(&tmp, dst).map_err(|e| Error::io(dst, "rename mosaic", e))
}

/// GDAL writes a source relative to the VRT only when the VRT's own name is its final one;
/// the temporary name sits in the same folder, so the relative paths hold after the rename.
/// This checks that they were written relative and makes them so when they were not.
fn relative_sources(tmp: &Path, dst: &Path) -> Result<()> {
    let text = std::fs::read_to_string(tmp).map_err(|e| Error::io(tmp, "read mosaic", e))?;
    let Some(dir) = dst.parent() else {
        return Ok(());
    };
    let prefix = format!(
        "relativeToVRT=\"0\">{}/",
        dir.canonicalize().unwrap_or(dir.to_path_buf()).display()
    );
    if !text.contains(&prefix) {
        return Ok(());
    }
    let fixed = text.replace(&prefix, "relativeToVRT=\"1\">");
    std::fs::write(tmp, fixed).map_err(|e| Error::io(tmp, "write mosaic", e))
}

/// The CRS (WKT) of a raster, for grouping products into one mosaic per CRS.
pub fn crs_wkt(path: &Path) -> Result<String> {
    let ds: Dataset = super::reader::open(path)?;
    Ok(ds.projection())
}

/// A short name for a CRS, for file names: `EPSG-32631` when it has an EPSG code, else the
/// first 8 hex digits of its WKT's SHA-256.
pub fn crs_label(wkt: &str) -> String {
    let code = gdal::spatial_ref::SpatialRef::from_wkt(wkt)
        .ok()
        .and_then(|s| {
            let name = s.auth_name()?;
            let code = s.auth_code().ok()?;
            Some(format!("{name}-{code}"))
        });
    code.unwrap_or_else(|| crate::config::hex_sha256(wkt.as_bytes())[..8].to_string())
}
