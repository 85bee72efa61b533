//! Opening rasters and reading windows as `[band, row, col]` f32 arrays.

use std::path::{Path, PathBuf};

use gdal::{Dataset, Metadata};
use ndarray::{Array2, Array3};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::raster::{Grid, Window};

/// Band facts reported by `inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct BandInfo {
    /// 1-based band index.
    pub index: usize,
    /// Band description (often the band name).
    pub description: String,
    /// GDAL data type name.
    pub data_type: String,
    /// Declared nodata value.
    pub nodata: Option<f64>,
}

/// Raster facts reported by `inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct RasterInfo {
    /// File.
    pub path: PathBuf,
    /// Grid.
    pub grid: Grid,
    /// Bands.
    pub bands: Vec<BandInfo>,
}

/// Opens a raster, turning every failure into an input error that names the file and the fix.
pub(crate) fn open(path: &Path) -> Result<Dataset> {
    let meta = std::fs::metadata(path).map_err(|_| {
        Error::input(path, "file not found; check the path in the pipeline file (relative paths resolve against the pipeline's folder)")
    })?;
    if meta.is_dir() {
        return Err(Error::input(path, "is a folder, not a raster file"));
    }
    if meta.len() == 0 {
        return Err(Error::input(
            path,
            "file is empty (0 bytes); regenerate or re-download it",
        ));
    }
    let ds = Dataset::open(path).map_err(|e| {
        Error::input(
            path,
            format!("GDAL cannot open it as a raster ({e}); the file is corrupt or not a GeoTIFF"),
        )
    })?;
    if ds.raster_count() == 0 {
        return Err(Error::input(path, "has no raster bands"));
    }
    Ok(ds)
}

/// The grid of an open dataset.
pub(crate) fn grid_of(ds: &Dataset, path: &Path) -> Result<Grid> {
    let (width, height) = ds.raster_size();
    let transform = ds.geo_transform().map_err(|_| {
        Error::input(path, "has no geotransform; geofuse needs georeferenced rasters (assign one with gdal_translate -a_ullr / -a_srs)")
    })?;
    let crs_wkt = ds.projection();
    let epsg = ds
        .spatial_ref()
        .ok()
        .and_then(|mut s| {
            let _ = s.auto_identify_epsg();
            s.auth_code().ok()
        })
        .and_then(|c| u32::try_from(c).ok());
    Ok(Grid {
        width,
        height,
        transform,
        crs_wkt,
        epsg,
    })
}

/// The first of `keys` present in a raster's default metadata domain (None when the file
/// cannot be opened or has none of them).
pub fn metadata_value(path: &Path, keys: &[&str]) -> Option<String> {
    let ds = Dataset::open(path).ok()?;
    keys.iter().find_map(|k| ds.metadata_item(k, ""))
}

/// Facts about a raster file.
pub fn raster_info(path: &Path) -> Result<RasterInfo> {
    let ds = open(path)?;
    let grid = grid_of(&ds, path)?;
    let mut bands = Vec::new();
    for i in 1..=ds.raster_count() {
        let b = ds
            .rasterband(i)
            .map_err(|e| unreadable(path, &format!("band {i}"), e))?;
        bands.push(BandInfo {
            index: i,
            description: b.description().unwrap_or_default(),
            data_type: b.band_type().name(),
            nodata: b.no_data_value(),
        });
    }
    Ok(RasterInfo {
        path: path.to_path_buf(),
        grid,
        bands,
    })
}

/// An input that GDAL cannot read: an input error (exit 2) with GDAL's message.
fn unreadable(path: &Path, what: &str, gdal_msg: impl std::fmt::Display) -> Error {
    Error::input(
        path,
        format!("cannot read {what} ({gdal_msg}); the file may be truncated or corrupt: re-download or regenerate it"),
    )
}

/// Whether two CRS (WKT) are the same.
pub fn same_crs(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        gdal::spatial_ref::SpatialRef::from_wkt(a),
        gdal::spatial_ref::SpatialRef::from_wkt(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// A per-worker reader of one raster.
pub struct RasterReader {
    path: PathBuf,
    ds: Dataset,
    nodata: Vec<Option<f64>>,
}

impl RasterReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let ds = open(path)?;
        let nodata = (1..=ds.raster_count())
            .map(|i| ds.rasterband(i).ok().and_then(|b| b.no_data_value()))
            .collect();
        Ok(RasterReader {
            path: path.to_path_buf(),
            ds,
            nodata,
        })
    }

    /// [`open`](Self::open) with GDAL's direct reads of uncompressed GeoTIFFs
    /// (`GTIFF_DIRECT_IO`): a window is read from the file into the caller's buffer without
    /// passing through the block cache, which for a pixel-interleaved stack read whole saves
    /// splitting every block into per-band cache blocks and joining them again. Same values.
    pub fn open_direct(path: &Path) -> Result<Self> {
        let _ = gdal::config::set_thread_local_config_option("GTIFF_DIRECT_IO", "YES");
        let r = Self::open(path);
        let _ = gdal::config::clear_thread_local_config_option("GTIFF_DIRECT_IO");
        r
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of bands.
    pub fn band_count(&self) -> usize {
        self.ds.raster_count()
    }

    /// The raster's grid.
    pub fn grid(&self) -> Result<Grid> {
        grid_of(&self.ds, &self.path)
    }

    /// Description of 1-based band `band` (often its name; empty when unset).
    pub fn band_description(&self, band: usize) -> String {
        self.ds
            .rasterband(band)
            .ok()
            .and_then(|b| b.description().ok())
            .unwrap_or_default()
    }

    /// Exact minimum and maximum of 1-based band `band` (nodata excluded).
    pub fn min_max(&self, band: usize) -> Result<(f64, f64)> {
        let b = self
            .ds
            .rasterband(band)
            .map_err(|e| unreadable(&self.path, &format!("band {band}"), e))?;
        let mm = b
            .compute_raster_min_max(false)
            .map_err(|e| unreadable(&self.path, &format!("band {band} statistics"), e))?;
        Ok((mm.min, mm.max))
    }

    /// Reads 1-based `bands` over `win` as `[band, row, col]` f32; nodata becomes NaN. One
    /// dataset-level read for all bands, so a pixel-interleaved file decodes each block once
    /// (band-by-band reads would decode it once per band when the block cache is small).
    pub fn read(&self, bands: &[usize], win: Window) -> Result<Array3<f32>> {
        let buf = self.raw_read(bands, win, false)?;
        Array3::from_shape_vec((bands.len(), win.height, win.width), buf)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Reads 1-based `bands` over `win` pixel-interleaved: `[row][col][band]` f32 in one
    /// vector (a classifier's sample-major input); nodata becomes NaN.
    pub fn read_interleaved(&self, bands: &[usize], win: Window) -> Result<Vec<f32>> {
        self.raw_read(bands, win, true)
    }

    fn raw_read(&self, bands: &[usize], win: Window, interleaved: bool) -> Result<Vec<f32>> {
        let (h, w, nb) = (win.height, win.width, bands.len());
        let mut buf = vec![0f32; nb * h * w];
        match super::dataset_raster_io(&self.ds, false, win, bands, &mut buf, interleaved) {
            Ok(()) => {}
            Err(super::RasterIoError::Arguments(m)) => {
                return Err(Error::Internal(format!("{}: {m}", self.path.display())))
            }
            Err(super::RasterIoError::Gdal(msg)) => {
                return Err(unreadable(
                    &self.path,
                    &format!("bands {bands:?} {win}"),
                    msg,
                ))
            }
        }
        for (k, &b) in bands.iter().enumerate() {
            if let Some(nd) = self.nodata.get(b - 1).copied().flatten() {
                let ndf = nd as f32;
                let idx = |i: usize| {
                    if interleaved {
                        i * nb + k
                    } else {
                        k * h * w + i
                    }
                };
                for i in 0..h * w {
                    let v = &mut buf[idx(i)];
                    if *v == ndf {
                        *v = f32::NAN;
                    }
                }
            }
        }
        Ok(buf)
    }

    /// Reads 1-based byte `band` of the whole raster decimated to `(width, height)` (nearest;
    /// GDAL takes the internal overview nearest that size), row-major.
    pub fn read_decimated_u8(&self, band: usize, size: (usize, usize)) -> Result<Vec<u8>> {
        let g = self.grid()?;
        let b = self
            .ds
            .rasterband(band)
            .map_err(|e| unreadable(&self.path, &format!("band {band}"), e))?;
        let buf = b
            .read_as::<u8>(
                (0, 0),
                (g.width, g.height),
                size,
                Some(gdal::raster::ResampleAlg::NearestNeighbour),
            )
            .map_err(|e| unreadable(&self.path, &format!("band {band} overview"), e))?;
        Ok(buf.into_shape_and_vec().1)
    }

    /// Reads one 1-based band over `win` as `[row, col]` f32; nodata becomes NaN.
    pub fn read_band(&self, band: usize, win: Window) -> Result<Array2<f32>> {
        Ok(self
            .read(&[band], win)?
            .index_axis_move(ndarray::Axis(0), 0))
    }

    /// A sample of a band's valid values (NaN and nodata left out): the whole band when it
    /// fits in `max_side` x `max_side`, else [`SAMPLE_GRID`]^2 windows of
    /// (`max_side` / [`SAMPLE_GRID`])^2 pixels spread evenly over the raster, corners included.
    ///
    /// Windows rather than a decimated (strided) read: a strided read decodes every compressed
    /// block of the band, the whole file when it is pixel-interleaved (once per band checked:
    /// minutes on a 20000^2 scene, and the serial start of every run); the windows decode at
    /// most 64 blocks.
    pub fn sample(&self, band: usize, max_side: usize) -> Result<Vec<f32>> {
        Ok(self.sample_bands(&[band], max_side)?.remove(0))
    }

    /// [`sample`](Self::sample) of several bands, all read together (a pixel-interleaved
    /// block is decoded once for all of them).
    pub fn sample_bands(&self, bands: &[usize], max_side: usize) -> Result<Vec<Vec<f32>>> {
        let (w, h) = self.ds.raster_size();
        let mut out = vec![Vec::new(); bands.len()];
        let mut add = |win: Window| -> Result<()> {
            let a = self.read(bands, win)?;
            for (o, plane) in out.iter_mut().zip(a.outer_iter()) {
                o.extend(plane.iter().copied().filter(|v| !v.is_nan()));
            }
            Ok(())
        };
        if w <= max_side && h <= max_side {
            add(Window::full(w, h))?;
            return Ok(out);
        }
        let side = (max_side / SAMPLE_GRID).max(1);
        let (ww, wh) = (side.min(w), side.min(h));
        for gy in 0..SAMPLE_GRID {
            for gx in 0..SAMPLE_GRID {
                add(Window {
                    row: (h - wh) * gy / (SAMPLE_GRID - 1),
                    col: (w - ww) * gx / (SAMPLE_GRID - 1),
                    height: wh,
                    width: ww,
                })?;
            }
        }
        Ok(out)
    }

    /// Whether a band holds any valid value, looking at every pixel (tile by tile, stopping at
    /// the first): the check behind an empty [`sample`](Self::sample), whose windows can miss
    /// a band's only valid area.
    pub fn has_valid(&self, band: usize) -> Result<bool> {
        let (w, h) = self.ds.raster_size();
        for row in (0..h).step_by(512) {
            for col in (0..w).step_by(512) {
                let win = Window {
                    row,
                    col,
                    height: 512.min(h - row),
                    width: 512.min(w - col),
                };
                if self.read_band(band, win)?.iter().any(|v| !v.is_nan()) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Windows per side of [`RasterReader::sample`] on a raster larger than its sample.
pub const SAMPLE_GRID: usize = 8;

/// The `p`-th percentile (0..=100) of `v` (sorted copy, nearest rank); None when empty.
pub fn percentile(v: &[f32], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s: Vec<f32> = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    Some(s[idx.min(s.len() - 1)] as f64)
}

/// Bounds of a grid in WGS 84 longitude/latitude `[west, south, east, north]`.
pub fn lonlat_bounds(grid: &Grid) -> Option<[f64; 4]> {
    use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
    let src = SpatialRef::from_wkt(&grid.crs_wkt).ok()?;
    let mut dst = SpatialRef::from_epsg(4326).ok()?;
    dst.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let mut src = src;
    src.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let t = CoordTransform::new(&src, &dst).ok()?;
    t.transform_bounds(&grid.bounds(), 21).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::writer::{epsg_wkt, Compression, StreamWriter};

    fn raster(dir: &Path, data: &Array3<f32>) -> PathBuf {
        let (nb, h, w) = data.dim();
        let grid = Grid {
            width: w,
            height: h,
            transform: [0.0, 10.0, 0.0, 0.0, 0.0, -10.0],
            crs_wkt: epsg_wkt(32631).unwrap(),
            epsg: Some(32631),
        };
        let names: Vec<String> = (0..nb).map(|b| format!("b{b}")).collect();
        let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let mut wr = StreamWriter::create_with::<f32>(
            &dir.join("r.tif"),
            &grid,
            &names,
            Some(f64::NAN),
            Compression::Deflate,
        )
        .unwrap();
        wr.write(0, 0, data).unwrap();
        wr.finish().unwrap()
    }

    #[test]
    fn sample_reads_spread_windows_and_has_valid_finds_a_lone_pixel() {
        let dir = tempfile::tempdir().unwrap();
        // Wider than has_valid's 512-pixel sample: its windows leave gaps between them.
        let (h, w) = (40, 600);
        let mut data = Array3::from_shape_fn((2, h, w), |(b, r, c)| {
            if b == 0 {
                (r * 1000 + c) as f32
            } else {
                f32::NAN
            }
        });
        // Band 2: one valid pixel, in the gap between the first two sampled windows (columns
        // 0..64 and 76..140).
        data[[1, 20, 70]] = 7.0;
        let r = RasterReader::open(&raster(dir.path(), &data)).unwrap();
        // Small enough: the whole band.
        assert_eq!(r.sample(1, 600).unwrap().len(), h * w);
        // Larger: 8 x 8 windows of 8 x 8 pixels, corners included.
        let s = r.sample(1, 64).unwrap();
        assert_eq!(s.len(), SAMPLE_GRID * SAMPLE_GRID * 64);
        assert_eq!(s.iter().copied().fold(f32::INFINITY, f32::min), 0.0);
        assert_eq!(
            s.iter().copied().fold(0.0, f32::max),
            (39 * 1000 + 599) as f32
        );
        assert!(r.sample(2, 512).unwrap().is_empty());
        assert!(r.has_valid(2).unwrap());
        data[[1, 20, 70]] = f32::NAN;
        let dir2 = tempfile::tempdir().unwrap();
        let r = RasterReader::open(&raster(dir2.path(), &data)).unwrap();
        assert!(!r.has_valid(2).unwrap());
    }
}
