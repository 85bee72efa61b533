//! Warping a raster onto another grid with GDAL (bilinear for backscatter in linear power,
//! nearest for labels and masks).

use std::ffi::CString;
use std::path::Path;

use gdal::Dataset;

use crate::error::{Error, Result};
use crate::raster::Grid;

/// Resampling for [`warp_to_grid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resampling {
    /// Bilinear (continuous values).
    Bilinear,
    /// Nearest neighbour (classes, masks).
    Nearest,
}

/// gdalwarp's arguments that put a raster onto `grid` with `resampling`.
fn warp_args(grid: &Grid, resampling: Resampling) -> Vec<String> {
    let b = grid.bounds();
    let mut args: Vec<String> = vec![
        "-of".into(),
        "GTiff".into(),
        "-co".into(),
        "TILED=YES".into(),
        "-co".into(),
        "COMPRESS=DEFLATE".into(),
        "-t_srs".into(),
        grid.crs_wkt.clone(),
        "-te".into(),
        b[0].to_string(),
        b[1].to_string(),
        b[2].to_string(),
        b[3].to_string(),
        "-ts".into(),
        grid.width.to_string(),
        grid.height.to_string(),
        "-r".into(),
        match resampling {
            Resampling::Bilinear => "bilinear".into(),
            Resampling::Nearest => "near".into(),
        },
        "-overwrite".into(),
    ];
    if resampling == Resampling::Bilinear {
        args.extend([
            "-ot".into(),
            "Float32".into(),
            "-dstnodata".into(),
            "nan".into(),
        ]);
    }
    args
}

/// One GDALWarp call from `srcs` (mosaicked in order) to the file `c_dst` with gdalwarp
/// arguments `cargs`; whether it succeeded.
pub(crate) fn run_warp(srcs: &[&Dataset], cargs: &[CString], c_dst: &CString) -> bool {
    let mut argv: Vec<*mut std::ffi::c_char> = cargs.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    // SAFETY: argv is a NULL-terminated array of C strings alive for the call; the options
    // object is freed below; every source is a valid open dataset; the returned dataset is
    // closed exactly once.
    unsafe {
        let opts = gdal_sys::GDALWarpAppOptionsNew(argv.as_mut_ptr(), std::ptr::null_mut());
        if opts.is_null() {
            false
        } else {
            let mut handles: Vec<gdal_sys::GDALDatasetH> =
                srcs.iter().map(|d| d.c_dataset()).collect();
            let mut usage = 0;
            let out = gdal_sys::GDALWarp(
                c_dst.as_ptr(),
                std::ptr::null_mut(),
                handles.len() as std::ffi::c_int,
                handles.as_mut_ptr(),
                opts,
                &mut usage,
            );
            gdal_sys::GDALWarpAppOptionsFree(opts);
            if out.is_null() {
                false
            } else {
                gdal_sys::GDALClose(out);
                true
            }
        }
    }
}

/// Writes `src` warped onto `grid` as a tiled GeoTIFF at `dst` (Float32 for bilinear, the
/// source type for nearest). With `db_to_power`, the source is read through GDAL's `dB2pow`
/// pixel function, so interpolation happens in linear power and `dst` holds linear power.
pub fn warp_to_grid(
    src: &Path,
    dst: &Path,
    grid: &Grid,
    resampling: Resampling,
    db_to_power: bool,
) -> Result<()> {
    let tmp = crate::io::writer::append_ext(dst, ".partial.tif");
    let vrt_path = crate::io::writer::append_ext(dst, ".src.vrt");
    let source_path = if db_to_power {
        write_db2pow_vrt(src, &vrt_path)?;
        vrt_path.clone()
    } else {
        src.to_path_buf()
    };
    let src_ds = Dataset::open(&source_path).map_err(|e| {
        Error::input(
            &source_path,
            format!("GDAL cannot open it for warping ({e}); check the file"),
        )
    })?;
    let args = warp_args(grid, resampling);
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_default())
        .collect();
    let c_dst = CString::new(tmp.to_string_lossy().as_bytes())
        .map_err(|e| Error::Internal(e.to_string()))?;
    let ok = run_warp(&[&src_ds], &cargs, &c_dst);
    drop(src_ds);
    let _ = std::fs::remove_file(&vrt_path);
    if !ok {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::input(
            src,
            format!(
                "GDAL could not warp it onto {} ({}); check the file and its CRS",
                grid.describe(),
                crate::io::last_gdal_message()
            ),
        ));
    }
    std::fs::rename(&tmp, dst).map_err(|e| Error::io(dst, "move warped raster into place", e))
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A VRT over `src` whose bands are `10^(dB/10)` (GDAL pixel function `dB2pow`).
fn write_db2pow_vrt(src: &Path, vrt: &Path) -> Result<()> {
    let ds = crate::io::reader::open(src)?;
    let (w, h) = ds.raster_size();
    let gt = ds
        .geo_transform()
        .map_err(|e| Error::input(src, format!("has no geotransform ({e}); georeference it")))?;
    let abs = std::fs::canonicalize(src).map_err(|e| Error::io(src, "resolve path", e))?;
    let mut x = format!(
        "<VRTDataset rasterXSize=\"{w}\" rasterYSize=\"{h}\">\n  <SRS>{}</SRS>\n  <GeoTransform>{}</GeoTransform>\n",
        xml_escape(&ds.projection()),
        gt.iter().map(|v| format!("{v:.17e}")).collect::<Vec<_>>().join(", ")
    );
    for b in 1..=ds.raster_count() {
        let nodata = ds.rasterband(b).ok().and_then(|r| r.no_data_value());
        let nd = nodata
            .map(|v| format!("<NODATA>{v}</NODATA>"))
            .unwrap_or_default();
        x.push_str(&format!(
            "  <VRTRasterBand dataType=\"Float32\" band=\"{b}\" subClass=\"VRTDerivedRasterBand\">\n    <PixelFunctionType>dB2pow</PixelFunctionType>\n    <NoDataValue>nan</NoDataValue>\n    <ComplexSource>\n      <SourceFilename relativeToVRT=\"0\">{}</SourceFilename>\n      <SourceBand>{b}</SourceBand>\n      {nd}\n    </ComplexSource>\n  </VRTRasterBand>\n",
            xml_escape(&abs.to_string_lossy())
        ));
    }
    x.push_str("</VRTDataset>\n");
    std::fs::write(vrt, x).map_err(|e| Error::io(vrt, "write VRT", e))
}
