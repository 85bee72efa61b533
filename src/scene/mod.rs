//! Scene preparation (checks, co-registration, warping) and per-worker tile reading: the
//! layer below the runner and the methods, which both read scenes through it.
//!
//! - `season`: a scene that is a season of dated rasters.
//! - `reference_input`: vector reference data rasterised onto a scene's grid.
//! - [`plan`]: the hand-crafted feature plan and per-tile features.

mod catalogue_scenes;
mod catalogue_season;
pub(crate) mod feature_plan;
mod load;
pub mod plan;
pub(crate) mod reference_input;
pub(crate) mod season;

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, Axis};
use serde::Serialize;

use crate::config::{Pipeline, SarUnit, SceneDef};
use crate::error::{Error, Result};
use crate::features::{sar, Polarisation, TileInputs};
use crate::io::reader::{same_crs, RasterReader};
use crate::io::warp::{warp_to_grid, Resampling};
use crate::raster::{Grid, Window};

pub use crate::config::scene::same_band_name;
pub use feature_plan::{halo_for, FeaturePlan, GlcmBlock};

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
    /// The polarisations read from `sar` (VV, VH or both, in [`Polarisation::ALL`] order).
    pub sar_pols: Vec<Polarisation>,
    /// 1-based band of each of `sar_pols` in `sar`.
    pub sar_bands: Vec<usize>,
    /// Unit of `sar`.
    pub sar_unit: SarUnit,
    /// Labels on the scene grid.
    pub labels: Option<PathBuf>,
    /// Mask on the scene grid and its invalid values.
    pub mask: Option<(PathBuf, Vec<u16>)>,
    /// Co-registration verdict per file.
    pub coregistration: Vec<String>,
    /// The split side of the pixels of vector reference features (None for label rasters).
    #[serde(skip)]
    pub sides: Option<std::sync::Arc<crate::eval::split::PixelSides>>,
    /// The scene's own input files (not the warped or rasterised copies).
    pub inputs: Vec<PathBuf>,
    /// Acquisition time as given in the pipeline, if any.
    pub datetime: Option<String>,
    /// The STAC Items behind a catalogue scene.
    pub catalogue: Option<crate::config::catalogue::CatalogueScene>,
    /// The dated rasters of a season scene, on the scene grid (the fields above then
    /// describe its first dates).
    pub season: Option<season::SeasonSources>,
}

impl SceneSources {
    /// Files whose content shapes the products.
    pub fn input_files(&self) -> Vec<PathBuf> {
        self.inputs.clone()
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

/// Opens the optical raster and checks its CRS, band count and band names; returns its grid.
pub(crate) fn check_optical(s: &SceneDef) -> Result<Grid> {
    let opt = RasterReader::open(&s.optical.path)?;
    let grid = opt.grid()?;
    if grid.crs_wkt.is_empty() {
        return Err(Error::input(
            &s.optical.path,
            "has no CRS; assign one with gdal_translate -a_srs EPSG:xxxx",
        ));
    }
    let nb = opt.band_count();
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
        let desc = opt.band_description(i + 1);
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
    Ok(grid)
}

/// Brings rasters onto the optical grid: as they are when they match, warped into
/// `work_dir` when the pipeline allows it, else a grid-mismatch error naming both grids.
pub(crate) struct Aligner<'a> {
    pub(crate) p: &'a Pipeline,
    pub(crate) s: &'a SceneDef,
    pub(crate) grid: &'a Grid,
    pub(crate) work_dir: &'a Path,
    pub(crate) verdicts: Vec<String>,
    /// SAR from a catalogue is on its own grid by nature: always warped.
    pub(crate) sar_own_grid: bool,
}

impl Aligner<'_> {
    /// The raster at `path` on the scene grid, and whether it was warped.
    pub(crate) fn align(
        &mut self,
        path: &Path,
        what: &str,
        resampling: Resampling,
        db_to_power: bool,
    ) -> Result<(PathBuf, bool)> {
        let g = RasterReader::open(path)?.grid()?;
        let why = match grids_match(self.grid, &g, self.p.coregistration.tolerance_pixels) {
            Ok(()) => {
                let v = format!("{what} {}: matches the optical grid", path.display());
                self.verdicts.push(v);
                return Ok((path.to_path_buf(), false));
            }
            Err(why) => why,
        };
        let catalogue_sar = self.sar_own_grid && (what == "sar" || what.starts_with("sar_"));
        if !self.p.coregistration.allow_warp && !catalogue_sar {
            return Err(Error::GridMismatch {
                path: path.to_path_buf(),
                msg: format!(
                    "{} has {}, but {} has {} ({why}); resample it onto the optical grid (gdalwarp), or set [coregistration] allow_warp = true in the pipeline",
                    self.s.optical.path.display(),
                    self.grid.describe(),
                    path.display(),
                    g.describe()
                ),
            });
        }
        let wd = self.work_dir;
        std::fs::create_dir_all(wd).map_err(|e| Error::io(wd, "create work folder", e))?;
        let dst = wd.join(format!("{what}_on_optical_grid.tif"));
        warp_to_grid(path, &dst, self.grid, resampling, db_to_power)?;
        self.verdicts.push(format!(
            "{what} {}: {why} ({}); warped onto the optical grid -> {}",
            path.display(),
            g.describe(),
            dst.display()
        ));
        Ok((dst, true))
    }
}

/// 1-based bands of the scene's polarisations in the SAR raster, checked against its band
/// count.
pub(crate) fn sar_bands(s: &SceneDef, sar_path: &Path) -> Result<Vec<usize>> {
    let pos = |want: Polarisation| {
        s.sar
            .polarisations
            .iter()
            .position(|x| Polarisation::parse(x) == Some(want))
            .unwrap_or(0)
            + 1
    };
    let n = RasterReader::open(sar_path)?.band_count();
    if n < s.sar.polarisations.len() {
        return Err(Error::input(
            &s.sar.path,
            format!(
                "has {n} bands but `sar.polarisations` lists {} ({}); name one polarisation per band",
                s.sar.polarisations.len(),
                s.sar.polarisations.join(" ")
            ),
        ));
    }
    Ok(s.polarisations().into_iter().map(pos).collect())
}

/// Refuses bands without any valid value, and negative backscatter declared linear.
/// Whether sampled backscatter contradicts its declared unit: infinite values, or dB that
/// look like linear power (none below 0, median below 1: backscatter in dB has a median of
/// about -12 over land). The message says what to set.
fn unit_mismatch(vals: &[f32], unit: SarUnit) -> Option<String> {
    if vals.iter().any(|v| v.is_infinite()) {
        return Some("holds infinite values; mask them as nodata (or NaN) in the file".into());
    }
    let mut v: Vec<f32> = vals.iter().copied().filter(|x| x.is_finite()).collect();
    if unit != SarUnit::Db || v.len() < 16 || v.iter().any(|&x| x < 0.0) {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let median = v[v.len() / 2];
    (median < 1.0).then(|| format!("declared `sar.unit = \"db\"` but the values look like linear power (none below 0, median {median:.3}); set unit = \"linear\""))
}

pub(crate) fn check_values(
    s: &SceneDef,
    sar_path: &Path,
    sar_bands: &[usize],
    unit: SarUnit,
) -> Result<()> {
    let opt_reader = RasterReader::open(&s.optical.path)?;
    let bands: Vec<usize> = (1..=s.optical.bands.len()).collect();
    let samples = opt_reader.sample_bands(&bands, 512)?;
    for (i, name) in s.optical.bands.iter().enumerate() {
        if samples[i].iter().any(|v| v.is_infinite()) {
            return Err(Error::input(
                &s.optical.path,
                format!("band {} ({name}) holds infinite values; mask them as nodata (or NaN) in the file", i + 1),
            ));
        }
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
    let sar_reader = RasterReader::open(sar_path)?;
    for (p, b) in s.polarisations().into_iter().zip(sar_bands) {
        let vals = sar_reader.sample(*b, 512)?;
        if vals.is_empty() && !sar_reader.has_valid(*b)? {
            return Err(Error::input(
                &s.sar.path,
                format!(
                    "band {b} ({}) holds only NaN/nodata; check the file or its nodata value",
                    p.name()
                ),
            ));
        }
        if let Some(msg) = unit_mismatch(&vals, unit) {
            return Err(Error::input(
                &s.sar.path,
                format!("band {b} ({}): {msg}", p.name()),
            ));
        }
        if unit == SarUnit::Linear && vals.iter().any(|&v| v < 0.0) {
            return Err(Error::input(
                &s.sar.path,
                "has negative backscatter but `sar.unit = \"linear\"`; set unit = \"db\"",
            ));
        }
    }
    Ok(())
}

/// Checks a scene's rasters and co-registers them onto the optical grid (warping into
/// `work_dir` when the pipeline allows it).
pub fn prepare_scene(p: &Pipeline, s: &SceneDef, work_dir: &Path) -> Result<SceneSources> {
    if let Some(season) = &s.season {
        return season::prepare_season(p, s, season, work_dir);
    }
    prepare_single(p, s, work_dir, false)
}

/// [`prepare_scene`] for a scene of one date; `sar_own_grid`: its SAR comes from a
/// catalogue (warped whatever the pipeline allows).
pub(crate) fn prepare_single(
    p: &Pipeline,
    s: &SceneDef,
    work_dir: &Path,
    sar_own_grid: bool,
) -> Result<SceneSources> {
    let sar_own_grid = sar_own_grid || s.catalogue.is_some();
    let stacked = match &s.catalogue {
        Some(c) => Some(stacked_scene(s, c, work_dir)?),
        None => None,
    };
    let s = stacked.as_ref().unwrap_or(s);
    let grid = check_optical(s)?;
    let mut al = Aligner {
        p,
        s,
        grid: &grid,
        work_dir,
        verdicts: vec![format!(
            "optical {}: {}",
            s.optical.path.display(),
            grid.describe()
        )],
        sar_own_grid,
    };
    let db = s.sar.unit == SarUnit::Db;
    let (sar_path, warped) = al.align(&s.sar.path, "sar", Resampling::Bilinear, db)?;
    let sar_unit = if warped { SarUnit::Linear } else { s.sar.unit };
    let mut sides = None;
    let labels = match (&s.labels, &s.reference) {
        (Some(l), _) => Some(al.align(l, "labels", Resampling::Nearest, false)?.0),
        (None, Some(r)) => {
            let sr = reference_input::rasterize_reference(p, r, &grid, work_dir)?;
            al.verdicts.push(sr.summary);
            sides = Some(sr.sides);
            Some(sr.labels)
        }
        (None, None) => None,
    };
    let mask = match &s.mask {
        Some(m) => Some((
            al.align(&m.path, "mask", Resampling::Nearest, false)?.0,
            m.invalid.clone(),
        )),
        None => None,
    };
    let sar_bands = sar_bands(s, &sar_path)?;
    check_values(s, &sar_path, &sar_bands, sar_unit)?;
    if let Some(l) = &labels {
        if RasterReader::open(l)?.band_count() != 1 {
            return Err(Error::input(l, "labels must be a single-band raster"));
        }
    }
    Ok(SceneSources {
        name: s.name.clone(),
        grid: grid.clone(),
        optical: s.optical.path.clone(),
        optical_bands: s.optical.bands.clone(),
        scale: s.optical.scale,
        offset: s.optical.offset,
        sar: sar_path,
        sar_pols: s.polarisations(),
        sar_bands,
        sar_unit,
        labels,
        mask,
        coregistration: al.verdicts,
        sides,
        datetime: s.datetime.clone(),
        inputs: input_files(s),
        catalogue: s.catalogue.clone(),
        season: None,
    })
}

/// The files whose change makes a product stale. A catalogue scene's rasters are its Items'
/// assets, named (with their Items' `updated` times) in the scene definition the product
/// hash covers; its VRTs are rewritten on every run, so only its reference data count here.
pub(crate) fn input_files(s: &SceneDef) -> Vec<PathBuf> {
    let reference = s.reference_file();
    let catalogue_season = s.season.as_ref().is_some_and(|x| x.catalogue.is_some());
    if s.catalogue.is_some() || catalogue_season {
        return reference.into_iter().collect();
    }
    if let Some(season) = &s.season {
        let dated = season
            .optical
            .iter()
            .chain(&season.sar)
            .map(|d| d.path.clone());
        return dated
            .chain(season.masks.iter().cloned())
            .chain(reference)
            .collect();
    }
    [s.optical.path.clone(), s.sar.path.clone()]
        .into_iter()
        .chain(reference)
        .chain(s.mask.as_ref().map(|m| m.path.clone()))
        .collect()
}

/// A catalogue scene as a scene of rasters: its assets stacked into VRTs in `work_dir`.
/// A problem found when the pipeline was read (a missing band, no SAR Item in reach) fails
/// the scene here, alone.
fn stacked_scene(
    s: &SceneDef,
    c: &crate::config::catalogue::CatalogueScene,
    work_dir: &Path,
) -> Result<SceneDef> {
    if let Some(why) = &c.problem {
        return Err(Error::input(&s.optical.path, why.clone()));
    }
    let st = crate::io::stack::build_stacks(c, work_dir)?;
    let mut out = s.clone();
    out.optical.path = st.optical;
    out.sar.path = st.sar;
    if let (Some(m), Some(path)) = (&mut out.mask, st.mask) {
        m.path = path;
    }
    Ok(out)
}

/// Readers of one scene, owned by one worker.
pub struct SceneReader {
    optical: RasterReader,
    sar: RasterReader,
    labels: Option<RasterReader>,
    mask: Option<RasterReader>,
    n_optical: usize,
    sar_pols: Vec<Polarisation>,
    sar_bands: Vec<usize>,
    sar_unit: SarUnit,
    invalid: Vec<u16>,
    season: Option<season::SeasonReader>,
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
            sar_pols: src.sar_pols.clone(),
            sar_bands: src.sar_bands.clone(),
            sar_unit: src.sar_unit,
            invalid: src.mask.as_ref().map(|m| m.1.clone()).unwrap_or_default(),
            season: src
                .season
                .as_ref()
                .map(|ss| {
                    season::SeasonReader::open(ss).map(|r| {
                        r.with_invalid(src.mask.as_ref().map(|m| m.1.clone()).unwrap_or_default())
                    })
                })
                .transpose()?,
        })
    }

    /// Reads labels only.
    pub fn read_labels(&self, win: Window) -> Result<Option<Array2<f32>>> {
        match &self.labels {
            Some(r) => Ok(Some(r.read_band(1, win)?)),
            None => Ok(None),
        }
    }

    /// Reads a window: optical DN with invalid pixels (nodata in any band, or masked) set
    /// to NaN in every band; SAR as linear power with a pixel NaN in every polarisation when
    /// any is missing.
    pub fn read(&self, win: Window) -> Result<TileData> {
        if let Some(season) = &self.season {
            return Ok(TileData {
                inputs: season.read(win, &self.sar_pols)?,
                labels: self.read_labels(win)?,
            });
        }
        let optical = read_optical(
            &self.optical,
            self.mask.as_ref(),
            &self.invalid,
            self.n_optical,
            win,
        )?;
        let sar_linear = read_sar(&self.sar, &self.sar_bands, self.sar_unit, win)?;
        Ok(TileData {
            inputs: TileInputs {
                optical_dn: optical,
                sar_linear,
                sar_pols: self.sar_pols.clone(),
                season: None,
            },
            labels: self.read_labels(win)?,
        })
    }
}

/// Optical DN of a window with invalid pixels (nodata in any band, or a mask value in
/// `invalid`) set to NaN in every band.
pub(crate) fn read_optical(
    optical: &RasterReader,
    mask: Option<&RasterReader>,
    invalid: &[u16],
    n_bands: usize,
    win: Window,
) -> Result<Array3<f32>> {
    let bands: Vec<usize> = (1..=n_bands).collect();
    let mut optical = optical.read(&bands, win)?;
    let mut valid = Array2::from_elem((win.height, win.width), true);
    for b in optical.axis_iter(Axis(0)) {
        ndarray::Zip::from(&mut valid)
            .and(&b)
            .for_each(|v, &x| *v &= !x.is_nan());
    }
    if let Some(m) = mask {
        let mv = m.read_band(1, win)?;
        ndarray::Zip::from(&mut valid).and(&mv).for_each(|v, &x| {
            if !x.is_nan() && invalid.contains(&(x as u16)) {
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
    Ok(optical)
}

/// SAR of a window as linear power, a pixel NaN in every polarisation when any is missing.
pub(crate) fn read_sar(
    sar: &RasterReader,
    bands: &[usize],
    unit: SarUnit,
    win: Window,
) -> Result<Array3<f32>> {
    let mut sar_lin = sar.read(bands, win)?;
    if unit == SarUnit::Db {
        sar_lin.mapv_inplace(sar::db_to_linear);
    }
    for mut px in sar_lin.lanes_mut(Axis(0)) {
        if px.iter().any(|v| !v.is_finite()) {
            px.fill(f32::NAN);
        }
    }
    Ok(sar_lin)
}

/// Fingerprint of files: path, size and modification time of each.
pub fn fingerprint(files: &[PathBuf]) -> String {
    let mut s = String::new();
    for f in files {
        let (len, mtime) = std::fs::metadata(f)
            .map(|m| {
                (
                    m.len(),
                    m.modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos())
                        .unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        s.push_str(&format!("{}\t{len}\t{mtime}\n", f.display()));
    }
    crate::config::hex_sha256(s.as_bytes())
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
