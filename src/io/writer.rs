//! Writing products: a staging GeoTIFF filled tile by tile, then a Cloud-Optimized GeoTIFF
//! made with the COG driver and renamed into place only when complete.
//!
//! Every product is written inside a private temporary folder next to its destination; the
//! folder is removed on error or drop, so an interrupted run leaves no partial product.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gdal::raster::{ColorEntry, ColorTable, PaletteInterpretation, RasterCreationOptions};
use gdal::{Dataset, DriverManager, Metadata};
use ndarray::Array3;

use crate::config::ClassDef;
use crate::error::{Error, Result};
use crate::raster::{Grid, Window};

/// A pixel type GeoTIFFs can store (u8, f32, ...): GDAL's type trait, kept behind io/.
pub trait Pixel: gdal::raster::GdalType + Copy {}

impl<T: gdal::raster::GdalType + Copy> Pixel for T {}

/// One Byte band of a product.
#[derive(Debug, Clone)]
pub struct ByteBand {
    /// Short name (also the description's first word).
    pub name: String,
    /// Description written to the band.
    pub description: String,
    /// Physical = byte * scale + offset.
    pub scale: f64,
    /// Offset.
    pub offset: f64,
}

/// Everything a product file declares.
#[derive(Debug, Clone)]
pub struct ProductSpec {
    /// Grid (size, transform, CRS).
    pub grid: Grid,
    /// Bands; band 1 is the class band and gets the colour table and category names.
    pub bands: Vec<ByteBand>,
    /// Class table for band 1.
    pub classes: Vec<ClassDef>,
    /// Dataset metadata items.
    pub metadata: Vec<(String, String)>,
    /// Nodata value of every band.
    pub nodata: u8,
}

/// Writes a product tile by tile from any thread, then finishes it as a COG.
pub struct ProductWriter {
    final_path: PathBuf,
    tmp_dir: PathBuf,
    staging: Mutex<Option<Dataset>>,
    classes: Vec<ClassDef>,
    nodata: u8,
    done: bool,
}

fn options(list: &[(&str, &str)]) -> Result<RasterCreationOptions> {
    let mut o = RasterCreationOptions::new();
    for (k, v) in list {
        o.set_name_value(k, v)
            .map_err(|e| Error::Internal(format!("creation option {k}: {e}")))?;
    }
    Ok(o)
}

/// A private temporary folder beside `final_path`.
pub fn temp_dir_for(final_path: &Path) -> Result<PathBuf> {
    let parent = final_path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create output folder", e))?;
    let stem = final_path
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("product");
    let dir = parent.join(format!(".tmp-{stem}-{}", std::process::id()));
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create temporary folder", e))?;
    Ok(dir)
}

impl ProductWriter {
    /// Creates the staging file for a product that will end up at `final_path`.
    pub fn create(final_path: &Path, spec: &ProductSpec) -> Result<Self> {
        let tmp_dir = temp_dir_for(final_path)?;
        let stage = tmp_dir.join("staging.tif");
        let drv = DriverManager::get_driver_by_name("GTiff")
            .map_err(|e| Error::gdal(&stage, "GTiff driver", e))?;
        let opts = options(&[
            ("TILED", "YES"),
            ("BLOCKXSIZE", "256"),
            ("BLOCKYSIZE", "256"),
            ("COMPRESS", "NONE"),
            ("BIGTIFF", "IF_SAFER"),
        ])?;
        let g = &spec.grid;
        let mut ds = drv
            .create_with_band_type_with_options::<u8, _>(
                &stage,
                g.width,
                g.height,
                spec.bands.len(),
                &opts,
            )
            .map_err(|e| Error::gdal(&stage, "create staging product", e))?;
        ds.set_geo_transform(&g.transform)
            .map_err(|e| Error::gdal(&stage, "set geotransform", e))?;
        if !g.crs_wkt.is_empty() {
            ds.set_projection(&g.crs_wkt)
                .map_err(|e| Error::gdal(&stage, "set CRS", e))?;
        }
        for (k, v) in &spec.metadata {
            ds.set_metadata_item(k, v, "")
                .map_err(|e| Error::gdal(&stage, "set metadata", e))?;
        }
        for (i, b) in spec.bands.iter().enumerate() {
            let mut band = ds
                .rasterband(i + 1)
                .map_err(|e| Error::gdal(&stage, "band", e))?;
            band.set_description(&b.description)
                .map_err(|e| Error::gdal(&stage, "set description", e))?;
            band.set_no_data_value(Some(spec.nodata as f64))
                .map_err(|e| Error::gdal(&stage, "set nodata", e))?;
            // Pre-fill with nodata so pixels no tile writes are honest.
            band.fill(spec.nodata as f64, None)
                .map_err(|e| Error::gdal(&stage, "fill", e))?;
            if i > 0 {
                band.set_scale(b.scale)
                    .map_err(|e| Error::gdal(&stage, "set scale", e))?;
                band.set_offset(b.offset)
                    .map_err(|e| Error::gdal(&stage, "set offset", e))?;
            }
        }
        Ok(ProductWriter {
            final_path: final_path.to_path_buf(),
            tmp_dir,
            staging: Mutex::new(Some(ds)),
            classes: spec.classes.clone(),
            nodata: spec.nodata,
            done: false,
        })
    }

    /// Runs `f` on the staging dataset (under the writer's lock).
    fn with_staging<T>(&self, f: impl FnOnce(&mut Dataset) -> Result<T>) -> Result<T> {
        let mut guard = self
            .staging
            .lock()
            .map_err(|_| Error::Internal("writer lock poisoned".into()))?;
        let ds = guard
            .as_mut()
            .ok_or_else(|| Error::Internal("writer already finished".into()))?;
        f(ds)
    }

    /// Reads (or, with `write`, writes) the 1-based `bands` of the staging file over `win`,
    /// `buf` band-sequential.
    fn staging_io(&self, write: bool, win: Window, bands: &[usize], buf: &mut [u8]) -> Result<()> {
        let what = if write { "write" } else { "read" };
        self.with_staging(|ds| {
            super::dataset_raster_io(ds, write, win, bands, buf, false).map_err(|e| match e {
                super::RasterIoError::Arguments(m) => Error::Internal(format!("{what} {win}: {m}")),
                super::RasterIoError::Gdal(m) => {
                    Error::gdal(&self.tmp_dir, format!("{what} {win}"), m)
                }
            })
        })
    }

    /// Writes the bands `[band, row, col]` of one tile core at `win`.
    pub fn write_core(&self, win: Window, data: &Array3<u8>) -> Result<()> {
        let bands: Vec<usize> = (1..=data.shape()[0]).collect();
        let mut buf: Vec<u8> = data.iter().copied().collect();
        self.staging_io(true, win, &bands, &mut buf)
    }

    /// Writes one 1-based `band` of the staging file over `win`.
    pub fn write_band(&self, win: Window, band: usize, data: &ndarray::Array2<u8>) -> Result<()> {
        let mut buf: Vec<u8> = data.iter().copied().collect();
        self.staging_io(true, win, &[band], &mut buf)
    }

    /// Reads every band of the staging file over `win`, `[band, row, col]`.
    pub fn read_core(&self, win: Window) -> Result<Array3<u8>> {
        let n = self.with_staging(|ds| Ok(ds.raster_count()))?;
        let bands: Vec<usize> = (1..=n).collect();
        let mut buf = vec![0u8; n * win.height * win.width];
        self.staging_io(false, win, &bands, &mut buf)?;
        Array3::from_shape_vec((n, win.height, win.width), buf)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Sieves the class band (band 1) in place: patches of fewer than `threshold` pixels
    /// (`connectedness` 4 or 8) take the class of their largest neighbour; nodata stays.
    pub fn sieve_classes(&self, threshold: usize, connectedness: u8) -> Result<()> {
        self.with_staging(|ds| {
            ds.flush_cache()
                .map_err(|e| Error::gdal(&self.tmp_dir, "flush before sieve", e))?;
            super::sieve::sieve_band(ds, 1, threshold, connectedness)
                .map_err(|m| Error::gdal(&self.tmp_dir, "sieve the class band", m))
        })
    }

    /// Converts the staging file to a COG (deflate, internal tiles, nearest overviews), sets
    /// category names (stored in the `.aux.xml` sidecar) and moves both into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        let staging = self
            .staging
            .lock()
            .map_err(|_| Error::Internal("writer lock poisoned".into()))?
            .take()
            .ok_or_else(|| Error::Internal("writer already finished".into()))?;
        let name = self
            .final_path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| "product.tif".into());
        let cog_tmp = self.tmp_dir.join(&name);
        {
            let drv = DriverManager::get_driver_by_name("COG")
                .map_err(|e| Error::gdal(&cog_tmp, "COG driver (GDAL >= 3.1 needed)", e))?;
            let opts = options(&[
                ("COMPRESS", "DEFLATE"),
                ("LEVEL", "6"),
                ("BLOCKSIZE", "512"),
                ("OVERVIEWS", "IGNORE_EXISTING"),
                ("RESAMPLING", "NEAREST"),
                ("BIGTIFF", "IF_SAFER"),
                ("NUM_THREADS", "ALL_CPUS"),
            ])?;
            let cog = staging
                .create_copy(&drv, &cog_tmp, &opts)
                .map_err(|e| Error::gdal(&cog_tmp, "create COG", e))?;
            drop(cog);
        }
        drop(staging);
        set_class_sidecar(&cog_tmp, &self.classes, self.nodata)?;
        let aux_tmp = append_ext(&cog_tmp, ".aux.xml");
        check_sidecar(&aux_tmp)?;
        let aux_final = append_ext(&self.final_path, ".aux.xml");
        if aux_tmp.exists() {
            std::fs::rename(&aux_tmp, &aux_final)
                .map_err(|e| Error::io(&aux_final, "move sidecar into place", e))?;
        }
        std::fs::rename(&cog_tmp, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, "move product into place", e))?;
        self.done = true;
        let _ = std::fs::remove_dir_all(&self.tmp_dir);
        Ok(self.final_path.clone())
    }
}

impl Drop for ProductWriter {
    fn drop(&mut self) {
        if let Ok(mut g) = self.staging.lock() {
            g.take();
        }
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp_dir);
        }
    }
}

/// GDAL writes the `.aux.xml` sidecar when the dataset closes and does not report a failed
/// write (a full disk leaves it empty or cut short): a sidecar that does not end its XML is
/// an error, so no product goes into place without its class names and colours.
fn check_sidecar(aux: &Path) -> Result<()> {
    let text = std::fs::read_to_string(aux).unwrap_or_default();
    if text.trim_end().ends_with("</PAMDataset>") {
        return Ok(());
    }
    let full = aux.parent().is_some_and(disk_is_full);
    let e = if full {
        std::io::Error::from_raw_os_error(28)
    } else {
        std::io::Error::other("GDAL left it incomplete")
    };
    Err(Error::io(aux, "write category names and colours", e))
}

/// Whether the file system holding `dir` has no block left for an ordinary user.
fn disk_is_full(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated path and `st` a zeroed statvfs that the call fills.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c.as_ptr(), &mut st) == 0 && st.f_bavail == 0
    }
}

/// `path` with `ext` appended to its file name.
pub fn append_ext(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// Writes `bytes` to `path` under a temporary name (`<path>.partial`) and renames it, so a
/// reader (or a run killed mid-write) never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = append_ext(path, ".partial");
    if let Err(e) = std::fs::write(&tmp, bytes) {
        // A half-written temporary (disk full) is not left behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, "write", e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename", e))
}

/// Sets band 1's colour table, palette interpretation and category names (index = class id)
/// on a finished file opened read-only: a multi-band TIFF cannot hold a colour table, so
/// GDAL keeps both in the `.aux.xml` sidecar, which it writes when the dataset closes.
fn set_class_sidecar(path: &Path, classes: &[ClassDef], nodata: u8) -> Result<()> {
    let ds = Dataset::open(path).map_err(|e| Error::gdal(path, "reopen product", e))?;
    let mut band = ds
        .rasterband(1)
        .map_err(|e| Error::gdal(path, "band 1", e))?;
    let mut ct = ColorTable::new(PaletteInterpretation::Rgba);
    for c in classes {
        let [r, g, b] = c.rgb().unwrap_or([128, 128, 128]);
        ct.set_color_entry(
            c.id as u16,
            &ColorEntry::rgba(r as i16, g as i16, b as i16, 255),
        );
    }
    ct.set_color_entry(nodata as u16, &ColorEntry::rgba(0, 0, 0, 0));
    band.set_color_table(&ct);
    band.set_color_interpretation(gdal::raster::ColorInterpretation::PaletteIndex)
        .map_err(|e| Error::gdal(path, "set palette interpretation", e))?;
    let max_id = classes.iter().map(|c| c.id as usize).max().unwrap_or(0);
    let mut names = vec![String::new(); max_id + 1];
    for c in classes {
        names[c.id as usize] = c.name.clone();
    }
    let cstrings: Vec<CString> = names
        .iter()
        .map(|n| CString::new(n.as_str()).unwrap_or_default())
        .collect();
    let mut ptrs: Vec<*mut std::ffi::c_char> =
        cstrings.iter().map(|c| c.as_ptr() as *mut _).collect();
    ptrs.push(std::ptr::null_mut());
    // SAFETY: `band` is a live band of `ds`; `ptrs` is a NULL-terminated array of valid
    // C strings that outlive the call (GDAL copies them).
    let rv = unsafe {
        gdal_sys::GDALSetRasterCategoryNames(
            band.c_rasterband(),
            ptrs.as_mut_ptr() as gdal_sys::CSLConstList,
        )
    };
    if rv != gdal_sys::CPLErr::CE_None {
        return Err(Error::Internal(format!(
            "GDALSetRasterCategoryNames failed on {}",
            path.display()
        )));
    }
    drop(ds);
    Ok(())
}

/// Compression of a streamed GeoTIFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed (fastest to write, what Orfeo ToolBox writes by default).
    None,
    /// DEFLATE level 6 with a predictor.
    Deflate,
    /// ZSTD level 1 with a predictor (fast, lossless).
    Zstd,
}

impl Compression {
    /// Parses `none`, `deflate` or `zstd`.
    pub fn from_name(s: &str) -> Option<Compression> {
        match s {
            "none" => Some(Compression::None),
            "deflate" => Some(Compression::Deflate),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Streams a multi-band GeoTIFF (tiled, deflate) strip by strip; the file appears under its
/// final name only after [`StreamWriter::finish`].
pub struct StreamWriter {
    final_path: PathBuf,
    tmp: PathBuf,
    ds: Option<Dataset>,
}

impl StreamWriter {
    /// Creates a `bands`-band raster of type `T` on `grid` (DEFLATE level 9).
    pub fn create<T: gdal::raster::GdalType + Copy>(
        path: &Path,
        grid: &Grid,
        descriptions: &[&str],
        nodata: Option<f64>,
    ) -> Result<Self> {
        Self::create_opts::<T>(
            path,
            grid,
            descriptions,
            nodata,
            &[("COMPRESS", "DEFLATE"), ("ZLEVEL", "9")],
        )
    }

    /// [`create`](Self::create) with a choice of compression.
    pub fn create_with<T: gdal::raster::GdalType + Copy>(
        path: &Path,
        grid: &Grid,
        descriptions: &[&str],
        nodata: Option<f64>,
        compression: Compression,
    ) -> Result<Self> {
        let c: &[(&str, &str)] = match compression {
            Compression::None => &[("COMPRESS", "NONE")],
            Compression::Deflate => &[("COMPRESS", "DEFLATE"), ("ZLEVEL", "6")],
            Compression::Zstd => &[("COMPRESS", "ZSTD"), ("ZSTD_LEVEL", "1")],
        };
        Self::create_opts::<T>(path, grid, descriptions, nodata, c)
    }

    fn create_opts<T: gdal::raster::GdalType + Copy>(
        path: &Path,
        grid: &Grid,
        descriptions: &[&str],
        nodata: Option<f64>,
        compression: &[(&str, &str)],
    ) -> Result<Self> {
        let tmp = append_ext(path, ".partial.tif");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create folder", e))?;
        }
        let drv = DriverManager::get_driver_by_name("GTiff")
            .map_err(|e| Error::gdal(&tmp, "GTiff driver", e))?;
        let predictor = if T::datatype() == gdal::raster::GdalDataType::Float32 {
            "3"
        } else {
            "2"
        };
        let mut list = vec![
            ("TILED", "YES"),
            ("BLOCKXSIZE", "256"),
            ("BLOCKYSIZE", "256"),
            ("BIGTIFF", "IF_SAFER"),
        ];
        list.extend_from_slice(compression);
        if compression
            .iter()
            .any(|(k, v)| *k == "COMPRESS" && *v != "NONE")
        {
            list.push(("PREDICTOR", predictor));
        }
        let opts = options(&list)?;
        let mut ds = drv
            .create_with_band_type_with_options::<T, _>(
                &tmp,
                grid.width,
                grid.height,
                descriptions.len(),
                &opts,
            )
            .map_err(|e| Error::gdal(&tmp, "create", e))?;
        ds.set_geo_transform(&grid.transform)
            .map_err(|e| Error::gdal(&tmp, "set geotransform", e))?;
        ds.set_projection(&grid.crs_wkt)
            .map_err(|e| Error::gdal(&tmp, "set CRS", e))?;
        for (i, d) in descriptions.iter().enumerate() {
            let mut b = ds
                .rasterband(i + 1)
                .map_err(|e| Error::gdal(&tmp, "band", e))?;
            b.set_description(d)
                .map_err(|e| Error::gdal(&tmp, "description", e))?;
            if let Some(nd) = nodata {
                b.set_no_data_value(Some(nd))
                    .map_err(|e| Error::gdal(&tmp, "nodata", e))?;
            }
        }
        Ok(StreamWriter {
            final_path: path.to_path_buf(),
            tmp,
            ds: Some(ds),
        })
    }

    /// Writes `[band, row, col]` at (`row`, `col`): all bands in one dataset-level call, so
    /// each pixel-interleaved block is filled in one pass. (Band by band, a window wider than
    /// GDAL's block cache had its compressed blocks flushed after the first band and rewritten
    /// once per band: a 20000^2 synthetic scene came out twice its raw size.)
    pub fn write<T: gdal::raster::GdalType + Copy>(
        &mut self,
        row: usize,
        col: usize,
        data: &Array3<T>,
    ) -> Result<()> {
        let ds = self
            .ds
            .as_mut()
            .ok_or_else(|| Error::Internal("stream writer finished".into()))?;
        let (nb, h, w) = data.dim();
        let win = Window {
            row,
            col,
            height: h,
            width: w,
        };
        let bands: Vec<usize> = (1..=nb).collect();
        let mut buf: Vec<T> = data.iter().copied().collect();
        match super::dataset_raster_io(ds, true, win, &bands, &mut buf, false) {
            Ok(()) => {}
            Err(super::RasterIoError::Arguments(m)) => {
                return Err(Error::Internal(format!(
                    "{}: write: {m}",
                    self.tmp.display()
                )))
            }
            Err(super::RasterIoError::Gdal(msg)) => {
                return Err(Error::gdal(
                    &self.tmp,
                    format!("write rows {row}..{}", row + h),
                    msg,
                ))
            }
        }
        Ok(())
    }

    /// Writes every block GDAL holds for the file now. Called after each tile written in
    /// order, it makes the file's layout (where each block lies) follow the order of the
    /// writes instead of when GDAL's shared block cache evicts blocks, which depends on what
    /// other threads read meanwhile. A tile that fills whole blocks (a multiple of 256 px)
    /// writes each block once; a block shared by tiles is rewritten as they complete it.
    pub fn flush(&mut self) -> Result<()> {
        match self.ds.as_mut() {
            Some(ds) => ds
                .flush_cache()
                .map_err(|e| Error::gdal(&self.tmp, "flush blocks", e)),
            None => Ok(()),
        }
    }

    /// Closes the file and moves it into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        if let Some(ds) = self.ds.take() {
            ds.close().map_err(|e| Error::gdal(&self.tmp, "close", e))?;
        }
        std::fs::rename(&self.tmp, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, "move into place", e))?;
        Ok(self.final_path.clone())
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if self.ds.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// WKT of an EPSG code.
pub fn epsg_wkt(code: u32) -> Result<String> {
    gdal::spatial_ref::SpatialRef::from_epsg(code)
        .and_then(|s| s.to_wkt())
        .map_err(|e| Error::gdal(format!("EPSG:{code}"), "build CRS", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::reader::RasterReader;

    #[test]
    fn stream_writer_writes_every_band_of_a_window_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tif");
        let grid = Grid {
            width: 300,
            height: 70,
            transform: [0.0, 10.0, 0.0, 0.0, 0.0, -10.0],
            crs_wkt: epsg_wkt(32631).unwrap(),
            epsg: Some(32631),
        };
        let mut w = StreamWriter::create_with::<u16>(
            &path,
            &grid,
            &["a", "b", "c"],
            None,
            Compression::Deflate,
        )
        .unwrap();
        let strip = |r0: usize, h: usize| {
            Array3::from_shape_fn((3, h, 300), |(b, r, c)| {
                (b * 10000 + (r0 + r) * 100 + c) as u16
            })
        };
        w.write(0, 0, &strip(0, 40)).unwrap();
        w.write(40, 0, &strip(40, 30)).unwrap();
        let bad = w.write(60, 0, &strip(60, 30)).unwrap_err();
        assert!(bad.to_string().contains("outside the raster"), "{bad}");
        let out = w.finish().unwrap();
        let got = RasterReader::open(&out)
            .unwrap()
            .read(
                &[1, 2, 3],
                Window {
                    row: 0,
                    col: 0,
                    height: 70,
                    width: 300,
                },
            )
            .unwrap();
        let want = strip(0, 70).mapv(|v| v as f32);
        assert_eq!(got, want);
    }
}
