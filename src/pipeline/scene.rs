//! Scene preparation (checks, co-registration, warping) and per-worker tile reading.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};
use serde::Serialize;

use crate::config::{Pipeline, SarUnit, SceneDef};
use crate::error::{Error, Result};
use crate::features::{sar, TileInputs};
use crate::io::reader::{grid_of, open, same_crs, RasterReader};
use crate::io::warp::{warp_to_grid, Resampling};
use crate::raster::{Grid, Window};

/// Sentinel-2 band names compare without case and without a leading zero (`B2` = `B02`,
/// `b8a` = `B8A`).
pub fn same_band_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let u = s.trim().to_ascii_uppercase();
        match u.strip_prefix("B0") {
            Some(rest) if !rest.is_empty() => format!("B{rest}"),
            _ => u,
        }
    };
    norm(a) == norm(b)
}

/// A scene whose rasters are known to share the optical grid.
#[derive(Debug, Clone, Serialize)]
pub struct SceneSources {
    /// Scene name.
    pub name: String,
    /// The optical grid (the scene grid).
    pub grid: Grid,
    /// Optical raster.
    pub optical: PathBuf,
    /// Optical band names in file order.
    pub optical_bands: Vec<String>,
    /// Reflectance = DN * scale + offset.
    pub scale: f64,
    /// Reflectance offset.
    pub offset: f64,
    /// SAR raster (possibly a warped copy in linear power).
    pub sar: PathBuf,
    /// 1-based bands of VV and VH.
    pub sar_bands: [usize; 2],
    /// Unit of `sar`.
    pub sar_unit: SarUnit,
    /// Labels on the scene grid.
    pub labels: Option<PathBuf>,
    /// Mask on the scene grid and its invalid values.
    pub mask: Option<(PathBuf, Vec<u16>)>,
    /// Co-registration verdict per file.
    pub coregistration: Vec<String>,
}

impl SceneSources {
    /// Files whose content shapes the products.
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.optical.clone(), self.sar.clone()];
        v.extend(self.labels.clone());
        v.extend(self.mask.as_ref().map(|m| m.0.clone()));
        v
    }
}

/// Compares `other` with the scene grid: `Ok(true)` when they match, `Ok(false)` when they
/// differ (verdict in `why`).
fn grids_match(scene: &Grid, other: &Grid, tol: f64) -> std::result::Result<(), String> {
    if !same_crs(&scene.crs_wkt, &other.crs_wkt) {
        return Err("different CRS".into());
    }
    if scene.width != other.width || scene.height != other.height {
        return Err("different size".into());
    }
    if !scene.transform_matches(other, tol) {
        return Err("different geotransform".into());
    }
    Ok(())
}

/// Checks a scene's rasters and co-registers them onto the optical grid (warping into
/// `work_dir` when the pipeline allows it).
pub fn prepare_scene(p: &Pipeline, s: &SceneDef, work_dir: &Path) -> Result<SceneSources> {
    let opt = open(&s.optical.path)?;
    let grid = grid_of(&opt, &s.optical.path)?;
    if grid.crs_wkt.is_empty() {
        return Err(Error::input(
            &s.optical.path,
            "has no CRS; assign one with gdal_translate -a_srs EPSG:xxxx",
        ));
    }
    let nb = opt.raster_count();
    if nb != s.optical.bands.len() {
        return Err(Error::input(
            &s.optical.path,
            format!(
                "has {nb} bands but the pipeline names {} in `optical.bands` ({}); list one name per band in file order",
                s.optical.bands.len(),
                s.optical.bands.join(" ")
            ),
        ));
    }
    for (i, name) in s.optical.bands.iter().enumerate() {
        let desc = opt
            .rasterband(i + 1)
            .ok()
            .and_then(|b| gdal::Metadata::description(&b).ok())
            .unwrap_or_default();
        if !desc.is_empty()
            && desc.len() <= 4
            && desc.to_ascii_uppercase().starts_with('B')
            && !same_band_name(&desc, name)
        {
            return Err(Error::input(
                &s.optical.path,
                format!("band {} is described `{desc}` but `optical.bands` calls it `{name}`; fix the band order in the pipeline", i + 1),
            ));
        }
    }
    drop(opt);
    let tol = p.coregistration.tolerance_pixels;
    let mut verdicts = vec![format!(
        "optical {}: {}",
        s.optical.path.display(),
        grid.describe()
    )];
    let mut align = |path: &Path,
                     what: &str,
                     resampling: Resampling,
                     db_to_power: bool|
     -> Result<(PathBuf, bool)> {
        let ds = open(path)?;
        let g = grid_of(&ds, path)?;
        drop(ds);
        match grids_match(&grid, &g, tol) {
            Ok(()) => {
                verdicts.push(format!("{what} {}: matches the optical grid", path.display()));
                Ok((path.to_path_buf(), false))
            }
            Err(why) if p.coregistration.allow_warp => {
                std::fs::create_dir_all(work_dir).map_err(|e| Error::io(work_dir, "create work folder", e))?;
                let dst = work_dir.join(format!("{what}_on_optical_grid.tif"));
                warp_to_grid(path, &dst, &grid, resampling, db_to_power)?;
                verdicts.push(format!("{what} {}: {why} ({}); warped onto the optical grid -> {}", path.display(), g.describe(), dst.display()));
                Ok((dst, true))
            }
            Err(why) => Err(Error::GridMismatch {
                path: path.to_path_buf(),
                msg: format!(
                    "{} has {}, but {} has {} ({why}); resample it onto the optical grid (gdalwarp), or set [coregistration] allow_warp = true in the pipeline",
                    s.optical.path.display(),
                    grid.describe(),
                    path.display(),
                    g.describe()
                ),
            }),
        }
    };
    let (sar_path, warped) = align(
        &s.sar.path,
        "sar",
        Resampling::Bilinear,
        s.sar.unit == SarUnit::Db,
    )?;
    let sar_unit = if warped { SarUnit::Linear } else { s.sar.unit };
    let labels = match &s.labels {
        Some(l) => Some(align(l, "labels", Resampling::Nearest, false)?.0),
        None => None,
    };
    let mask = match &s.mask {
        Some(m) => Some((
            align(&m.path, "mask", Resampling::Nearest, false)?.0,
            m.invalid.clone(),
        )),
        None => None,
    };
    let sar_ds = open(&sar_path)?;
    let pos = |want: &str| {
        s.sar
            .polarisations
            .iter()
            .position(|x| x.eq_ignore_ascii_case(want))
            .unwrap_or(0)
            + 1
    };
    let sar_bands = [pos("VV"), pos("VH")];
    if sar_ds.raster_count() < s.sar.polarisations.len() {
        return Err(Error::input(
            &s.sar.path,
            format!(
                "has {} bands but `sar.polarisations` lists {} ({}); name one polarisation per band",
                sar_ds.raster_count(),
                s.sar.polarisations.len(),
                s.sar.polarisations.join(" ")
            ),
        ));
    }
    drop(sar_ds);
    // A band with no valid value at all (all NaN or nodata) cannot be used.
    let opt_reader = RasterReader::open(&s.optical.path)?;
    let bands: Vec<usize> = (1..=s.optical.bands.len()).collect();
    let samples = opt_reader.sample_bands(&bands, 512)?;
    for (i, name) in s.optical.bands.iter().enumerate() {
        if samples[i].is_empty() && !opt_reader.has_valid(i + 1)? {
            return Err(Error::input(
                &s.optical.path,
                format!(
                    "band {} ({name}) holds only NaN/nodata; check the file or its nodata value",
                    i + 1
                ),
            ));
        }
    }
    let sar_reader = RasterReader::open(&sar_path)?;
    for (k, b) in sar_bands.iter().enumerate() {
        let vals = sar_reader.sample(*b, 512)?;
        if vals.is_empty() && !sar_reader.has_valid(*b)? {
            return Err(Error::input(
                &s.sar.path,
                format!(
                    "band {b} ({}) holds only NaN/nodata; check the file or its nodata value",
                    ["VV", "VH"][k]
                ),
            ));
        }
        if sar_unit == SarUnit::Linear && vals.iter().any(|&v| v < 0.0) {
            return Err(Error::input(
                &s.sar.path,
                "has negative backscatter but `sar.unit = \"linear\"`; set unit = \"db\"",
            ));
        }
    }
    if let Some(l) = &labels {
        let ds = open(l)?;
        if ds.raster_count() != 1 {
            return Err(Error::input(l, "labels must be a single-band raster"));
        }
    }
    Ok(SceneSources {
        name: s.name.clone(),
        grid,
        optical: s.optical.path.clone(),
        optical_bands: s.optical.bands.clone(),
        scale: s.optical.scale,
        offset: s.optical.offset,
        sar: sar_path,
        sar_bands,
        sar_unit,
        labels,
        mask,
        coregistration: verdicts,
    })
}

/// Readers of one scene, owned by one worker.
pub struct SceneReader {
    optical: RasterReader,
    sar: RasterReader,
    labels: Option<RasterReader>,
    mask: Option<RasterReader>,
    n_optical: usize,
    sar_bands: [usize; 2],
    sar_unit: SarUnit,
    invalid: Vec<u16>,
}

/// One tile's inputs and labels.
pub struct TileData {
    /// Feature inputs.
    pub inputs: TileInputs,
    /// Label values (NaN = unlabelled) over the read window.
    pub labels: Option<Array2<f32>>,
}

impl SceneReader {
    /// Opens every raster of the scene.
    pub fn open(src: &SceneSources) -> Result<Self> {
        Ok(SceneReader {
            optical: RasterReader::open(&src.optical)?,
            sar: RasterReader::open(&src.sar)?,
            labels: src.labels.as_deref().map(RasterReader::open).transpose()?,
            mask: src
                .mask
                .as_ref()
                .map(|m| RasterReader::open(&m.0))
                .transpose()?,
            n_optical: src.optical_bands.len(),
            sar_bands: src.sar_bands,
            sar_unit: src.sar_unit,
            invalid: src.mask.as_ref().map(|m| m.1.clone()).unwrap_or_default(),
        })
    }

    /// Reads labels only.
    pub fn read_labels(&self, win: Window) -> Result<Option<Array2<f32>>> {
        match &self.labels {
            Some(r) => Ok(Some(r.read_band(1, win, (win.width, win.height))?)),
            None => Ok(None),
        }
    }

    /// Reads a window: optical DN with invalid pixels (nodata in any band, or masked) set
    /// to NaN in every band; SAR as linear power with a pixel NaN in both bands when either
    /// is missing.
    pub fn read(&self, win: Window) -> Result<TileData> {
        let bands: Vec<usize> = (1..=self.n_optical).collect();
        let mut optical = self.optical.read(&bands, win)?;
        let mut valid = Array2::from_elem((win.height, win.width), true);
        for b in optical.axis_iter(Axis(0)) {
            ndarray::Zip::from(&mut valid)
                .and(&b)
                .for_each(|v, &x| *v &= !x.is_nan());
        }
        if let Some(m) = &self.mask {
            let mv = m.read_band(1, win, (win.width, win.height))?;
            ndarray::Zip::from(&mut valid).and(&mv).for_each(|v, &x| {
                if !x.is_nan() && self.invalid.contains(&(x as u16)) {
                    *v = false;
                }
            });
        }
        for mut b in optical.axis_iter_mut(Axis(0)) {
            ndarray::Zip::from(&mut b).and(&valid).for_each(|x, &ok| {
                if !ok {
                    *x = f32::NAN
                }
            });
        }
        let mut sar_lin = self.sar.read(&self.sar_bands, win)?;
        if self.sar_unit == SarUnit::Db {
            sar_lin.mapv_inplace(sar::db_to_linear);
        }
        let (vv, vh) = sar_lin.view_mut().split_at(Axis(0), 1);
        let (mut vv, mut vh) = (vv, vh);
        ndarray::Zip::from(&mut vv).and(&mut vh).for_each(|a, b| {
            if a.is_nan() || b.is_nan() || !a.is_finite() || !b.is_finite() {
                *a = f32::NAN;
                *b = f32::NAN;
            }
        });
        Ok(TileData {
            inputs: TileInputs {
                optical_dn: optical,
                sar_linear: sar_lin,
            },
            labels: self.read_labels(win)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::same_band_name;

    #[test]
    fn band_names_compare_without_leading_zero_or_case() {
        assert!(same_band_name("B2", "B02"));
        assert!(same_band_name("b8a", "B8A"));
        assert!(same_band_name("B12", "B12"));
        assert!(!same_band_name("B2", "B12"));
        assert!(!same_band_name("B8", "B8A"));
    }
}
