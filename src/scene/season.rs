//! Season scenes: every dated raster checked and brought onto the scene grid (the first
//! optical date's), and per-worker readers that regularise a window's dates onto the
//! temporal grid (see [`crate::temporal::regularise`]).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    check_optical, prepare_single, read_optical, read_sar, sar_bands, Aligner, SceneSources,
};
use crate::config::{Pipeline, SarUnit, SceneDef, Season, SeasonScene};
use crate::error::Result;
use crate::features::{Polarisation, TileInputs};
use crate::io::reader::RasterReader;
use crate::io::warp::Resampling;
use crate::raster::Window;
use crate::temporal::{SeasonInputs, StepAccumulator};
use crate::time::day_number;

/// One dated raster on the scene grid.
#[derive(Debug, Clone, Serialize)]
pub struct DatedSource {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The raster on the scene grid (the input itself, or a warped copy).
    pub path: PathBuf,
    /// Its mask on the scene grid (optical dates of a scene with a mask).
    pub mask: Option<PathBuf>,
    /// Unit (SAR dates; a warped copy is linear power).
    pub unit: SarUnit,
    /// 1-based bands read (SAR dates: the scene's polarisations).
    pub bands: Vec<usize>,
}

/// The dated rasters of a season scene on the scene grid.
#[derive(Debug, Clone, Serialize)]
pub struct SeasonSources {
    /// The season.
    pub season: Season,
    /// First and last day number of each step.
    pub steps: Vec<(i64, i64)>,
    /// Optical dates.
    pub optical: Vec<DatedSource>,
    /// SAR dates.
    pub sar: Vec<DatedSource>,
    /// Files a glob matched outside the season.
    pub outside: usize,
}

impl SeasonSources {
    /// Days from the season's start to the centre of each step.
    pub fn centres(&self) -> Vec<f64> {
        let a = self.season.start_day() as f64;
        self.steps
            .iter()
            .map(|&(s, e)| (s + e) as f64 / 2.0 - a)
            .collect()
    }

    /// The dates used, optical then SAR.
    pub fn dates(&self) -> (Vec<String>, Vec<String>) {
        let d = |v: &[DatedSource]| v.iter().map(|x| x.date.clone()).collect();
        (d(&self.optical), d(&self.sar))
    }
}

/// The scene of one date of a season: the scene with its rasters replaced.
fn date_scene(s: &SceneDef, optical: &Path, sar: &Path, mask: Option<&PathBuf>) -> SceneDef {
    let mut d = s.clone();
    d.season = None;
    d.optical.path = optical.to_path_buf();
    d.sar.path = sar.to_path_buf();
    if let (Some(m), Some(path)) = (&mut d.mask, mask) {
        m.path = path.clone();
    }
    d
}

/// Checks a season scene and brings every date onto the grid of its first optical date:
/// dates on another grid are warped when `[coregistration] allow_warp` is set, else the scene
/// fails naming the file.
pub fn prepare_season(
    p: &Pipeline,
    s: &SceneDef,
    ss: &SeasonScene,
    work_dir: &Path,
) -> Result<SceneSources> {
    let stacked = match &ss.catalogue {
        Some(items) => Some(super::catalogue_season::stack_season(
            s, ss, items, work_dir,
        )?),
        None => None,
    };
    let ss = stacked.as_ref().unwrap_or(ss);
    let sar_own_grid = ss.catalogue.is_some();
    // A catalogue season's SAR dates each have the unit their Items declare.
    let unit_of = |i: usize| {
        let units = ss.catalogue.as_ref().map(|c| &c.sar_units);
        units.and_then(|u| u.get(i)).copied().unwrap_or(s.sar.unit)
    };
    let mut first = date_scene(s, &ss.optical[0].path, &ss.sar[0].path, ss.masks.first());
    first.sar.unit = unit_of(0);
    let mut src = prepare_single(p, &first, work_dir, sar_own_grid)?;
    let grid = src.grid.clone();
    let mut al = Aligner {
        p,
        s: &first,
        grid: &grid,
        work_dir,
        verdicts: Vec::new(),
        sar_own_grid,
    };
    let mut optical = Vec::new();
    for (i, d) in ss.optical.iter().enumerate() {
        let ds = date_scene(s, &d.path, &ss.sar[0].path, ss.masks.get(i));
        check_optical(&ds)?;
        let what = format!("optical_{}", d.date);
        let (path, _) = al.align(&d.path, &what, Resampling::Bilinear, false)?;
        let mask = match ss.masks.get(i) {
            Some(m) => Some(
                al.align(m, &format!("mask_{}", d.date), Resampling::Nearest, false)?
                    .0,
            ),
            None => None,
        };
        optical.push(DatedSource {
            date: d.date.clone(),
            path,
            mask,
            unit: SarUnit::Linear,
            bands: (1..=s.optical.bands.len()).collect(),
        });
    }
    let mut sar = Vec::new();
    for (i, d) in ss.sar.iter().enumerate() {
        let unit = unit_of(i);
        let db = unit == SarUnit::Db;
        let what = format!("sar_{}", d.date);
        let (path, warped) = al.align(&d.path, &what, Resampling::Bilinear, db)?;
        let ds = date_scene(s, &ss.optical[0].path, &d.path, None);
        sar.push(DatedSource {
            date: d.date.clone(),
            bands: sar_bands(&ds, &path)?,
            path,
            mask: None,
            unit: if warped { SarUnit::Linear } else { unit },
        });
    }
    src.name = s.name.clone();
    src.inputs = super::input_files(s);
    src.coregistration.extend(al.verdicts);
    src.catalogue = ss
        .catalogue
        .as_ref()
        .and_then(super::catalogue_season::provenance);
    src.season = Some(SeasonSources {
        steps: ss.season.steps(),
        season: ss.season.clone(),
        optical,
        sar,
        outside: ss.outside,
    });
    Ok(src)
}

/// The dated rasters of a season scene, read by one worker. Each date's rasters are opened for
/// a window's read and closed after it: GDAL keeps a decoded block buffer per open dataset (a
/// whole block of every band, 1-5 MB for Sentinel-2 files), so holding every date open made
/// memory grow with the number of dates; an open costs well under a millisecond.
pub struct SeasonReader {
    steps: Vec<(i64, i64)>,
    optical: Vec<(i64, PathBuf, Option<PathBuf>)>,
    sar: Vec<(i64, PathBuf, SarUnit, Vec<usize>)>,
    n_optical: usize,
    invalid: Vec<u16>,
}

impl SeasonReader {
    /// The readers of every dated raster of the scene (each date is opened when read).
    pub fn open(ss: &SeasonSources) -> Result<Self> {
        let day = |d: &str| day_number(d).unwrap_or(0);
        let optical = ss
            .optical
            .iter()
            .map(|d| (day(&d.date), d.path.clone(), d.mask.clone()))
            .collect();
        let sar = ss
            .sar
            .iter()
            .map(|d| (day(&d.date), d.path.clone(), d.unit, d.bands.clone()))
            .collect();
        Ok(SeasonReader {
            steps: ss.steps.clone(),
            n_optical: ss.optical.first().map_or(0, |d| d.bands.len()),
            optical,
            sar,
            invalid: Vec::new(),
        })
    }

    /// With the mask values that make an optical pixel invalid.
    pub fn with_invalid(mut self, invalid: Vec<u16>) -> Self {
        self.invalid = invalid;
        self
    }

    /// Reads a window of every date, one date at a time, and regularises each modality onto
    /// the temporal grid; `optical_dn` and `sar_linear` hold the season's means.
    pub fn read(&self, win: Window, pols: &[Polarisation]) -> Result<TileInputs> {
        let (h, w) = (win.height, win.width);
        let mut acc_o = StepAccumulator::new(&self.steps, self.n_optical, h, w);
        for (day, path, mask) in &self.optical {
            if acc_o.step_of(*day).is_some() {
                let r = RasterReader::open(path)?;
                let m = mask.as_deref().map(RasterReader::open).transpose()?;
                let x = read_optical(&r, m.as_ref(), &self.invalid, self.n_optical, win)?;
                acc_o.add(*day, &x);
            }
        }
        let mut acc_s = StepAccumulator::new(&self.steps, pols.len(), h, w);
        for (day, path, unit, bands) in &self.sar {
            if acc_s.step_of(*day).is_some() {
                let r = RasterReader::open(path)?;
                acc_s.add(*day, &read_sar(&r, bands, *unit, win)?);
            }
        }
        let (o, s) = (acc_o.finish(), acc_s.finish());
        Ok(TileInputs {
            optical_dn: o.mean,
            sar_linear: s.mean,
            sar_pols: pols.to_vec(),
            season: Some(SeasonInputs {
                optical_dn: o.values,
                sar_linear: s.values,
                n_optical: o.n_obs,
                n_sar: s.n_obs,
                optical_observed: o.observed,
                sar_observed: s.observed,
            }),
        })
    }
}
