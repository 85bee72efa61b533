//! Synthetic seasons (`geofuse synth --dates N`): the land cover of [`super::land_cover`]
//! with per-class phenology, N optical dates over March to October whose clouds cluster in
//! weeks (a share of the dates heavily clouded), a Sentinel-1 date every `sar_every_days`
//! with speckle, and a season that starts earlier or later from scene to scene.
//!
//! Classes: grassland, a winter crop (green in spring, harvested in July) and a summer crop
//! (bare in spring, green in summer) share their spectra: on any one date one crop looks like
//! grassland, and only the series tells the three apart. Wetland looks like grassland and
//! differs in SAR.

use std::path::{Path, PathBuf};

use ndarray::Array3;
use rayon::prelude::*;

use super::{cloud_alpha, fbm, land_cover, value_noise, LOOKS, SIGMA0, SPECTRA};
use crate::error::{Error, Result};
use crate::io::writer::{epsg_wkt, Compression, StreamWriter};
use crate::raster::Grid;
use crate::rng::{hash4, unit, Rng};
use crate::time::day_number;

/// Class ids, names and colours of synthetic seasons (the ids of [`super::CLASSES`]).
pub const SEASON_CLASSES: [(u8, &str, &str); 7] = [
    (1, "water", "#1f78b4"),
    (2, "forest", "#33a02c"),
    (3, "summer crop", "#ffd92f"),
    (4, "grassland", "#b2df8a"),
    (5, "built-up", "#e31a1c"),
    (6, "winter crop", "#ff7f00"),
    (7, "wetland", "#6a3d9a"),
];

/// Days of the synthetic season (1 March to 31 October).
pub const SEASON_DAYS: i64 = 245;

/// Options of one synthetic season.
#[derive(Debug, Clone)]
pub struct SeasonOptions {
    /// Scene side in pixels.
    pub size: usize,
    /// Seed.
    pub seed: u64,
    /// Optical dates over the season.
    pub dates: usize,
    /// Share of the optical dates heavily clouded (60-100 % cover), in clustered weeks.
    pub cloudy_dates: f64,
    /// Days between SAR dates.
    pub sar_every_days: u32,
    /// Year of the season.
    pub year: i32,
    /// Days the season runs early (negative) or late.
    pub shift_days: f64,
}

/// Greenness (0 bare .. 1 full canopy) of class index `c` on day `t` of the season, for a
/// parcel of vigour `v` in [0, 1] (how green it gets: crops 0.55-0.95 at their peak,
/// grassland 0.45-0.85, so one date's greenness does not tell them apart).
pub fn greenness(c: usize, t: f64, v: f64) -> f64 {
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let crop = 0.5 + 0.4 * v;
    match c {
        0 | 4 => 0.0,
        1 => 0.35 + 0.55 * sig((t - 50.0) / 8.0),
        2 => 0.05 + crop * sig((t - 95.0) / 8.0) * (1.0 - sig((t - 190.0) / 6.0)),
        5 => 0.05 + (crop - 0.2 + 0.2 * sig((t - 30.0) / 10.0)) * (1.0 - sig((t - 125.0) / 6.0)),
        _ => {
            let mow = [75.0, 135.0, 195.0]
                .iter()
                .map(|m| (-((t - m) / 7.0).powi(2)).exp())
                .sum::<f64>();
            0.45 + 0.4 * v - 0.3 * mow
        }
    }
}

/// The optical DN and cloud code of one pixel on day `t` (season day), or its SAR in dB.
struct Drawer<'a> {
    o: &'a SeasonOptions,
}

impl Drawer<'_> {
    /// Class index, parcel id, and the parcel's season day at scene day `t`.
    fn place(&self, x: usize, y: usize, t: f64) -> (usize, u64, f64) {
        let (c, pid) = land_cover(self.o.seed, x as i64, y as i64);
        let jitter = 16.0 * (unit(hash4(pid, 0x5EA5, 0, 0, 0)) - 0.5);
        (c, pid, t - self.o.shift_days - jitter)
    }

    fn optical(&self, x: usize, y: usize, t: f64, date: u64, cloud_thr: f64) -> ([u16; 10], u8) {
        let (c, pid, tp) = self.place(x, y, t);
        let mut rng = Rng::new(hash4(self.o.seed, 0x5EA, date, x as u64, y as u64));
        let gain = 0.9 + 0.2 * unit(hash4(pid, 0x21, 0, 0, 0)) as f32;
        let g = greenness(c, tp, unit(hash4(pid, 0x61, 0, 0, 0))) as f32;
        let mut refl = [0f32; 10];
        for (b, r) in refl.iter_mut().enumerate() {
            let base = match c {
                0 | 4 | 1 => SPECTRA[c][b],
                _ => SPECTRA[5][b] * (1.0 - g) + SPECTRA[2][b] * g,
            };
            *r = base * gain + 0.01 * rng.normal() as f32;
        }
        let (xf, yf) = (x as f64, y as f64);
        let seed = self.o.seed ^ date.wrapping_mul(0x9E37_79B9);
        let alpha = cloud_alpha(seed, xf, yf, cloud_thr) as f32;
        let shadow = cloud_alpha(seed, xf - 28.0, yf - 18.0, cloud_thr) as f32;
        let mut code = 0;
        if alpha > 0.0 {
            for r in refl.iter_mut() {
                *r = *r * (1.0 - alpha) + alpha * 0.45;
            }
            code = u8::from(alpha > 0.25);
        }
        if code == 0 && shadow > 0.25 {
            refl.iter_mut().for_each(|r| *r *= 1.0 - 0.65 * shadow);
            code = 2;
        }
        let dn = refl.map(|r| (r.clamp(0.0001, 1.0) * 1e4).round() as u16);
        (dn, code)
    }

    fn sar(&self, x: usize, y: usize, t: f64, date: u64, wet_db: f32) -> [f32; 2] {
        let (c, pid, tp) = self.place(x, y, t);
        let mut rng = Rng::new(hash4(self.o.seed, 0x5EA, date, x as u64, y as u64));
        let g = greenness(c, tp, unit(hash4(pid, 0x61, 0, 0, 0))) as f32;
        let parcel = (unit(hash4(pid, 0x41, 0, 0, 0)) as f32 - 0.5) * 1.5;
        let field = 0.6 * value_noise(self.o.seed ^ 0x42, x as f64, y as f64, 12.0) as f32;
        let base = match c {
            0 | 1 | 4 | 6 => SIGMA0[c],
            _ => [-14.0 + 5.0 * g, -23.0 + 9.0 * g],
        };
        let soil = if matches!(c, 0 | 4) { 0.0 } else { wet_db };
        base.map(|db| {
            let db = db + parcel + field + soil;
            let lin = 10f64.powf(f64::from(db) / 10.0) * rng.gamma(LOOKS) / LOOKS;
            ((10.0 * lin.log10()) * 100.0).round() as f32 / 100.0
        })
    }
}

/// The optical dates (season days) and which are heavily clouded: the weather is a smooth
/// random series, and the cloudiest `cloudy_dates` share of dates are the clouded ones.
pub fn optical_dates(o: &SeasonOptions) -> Vec<(i64, bool)> {
    let n = o.dates.max(1);
    let days: Vec<i64> = (0..n)
        .map(|k| ((k as f64 + 0.5) * SEASON_DAYS as f64 / n as f64) as i64)
        .collect();
    let weather: Vec<f64> = days
        .iter()
        .map(|&d| fbm(o.seed ^ 0xC1_0D5, d as f64, 0.0, 12.0))
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| weather[b].total_cmp(&weather[a]).then(a.cmp(&b)));
    let cloudy = (o.cloudy_dates.clamp(0.0, 1.0) * n as f64).round() as usize;
    let mut out: Vec<(i64, bool)> = days.iter().map(|&d| (d, false)).collect();
    for &k in &order[..cloudy] {
        out[k].1 = true;
    }
    out
}

fn date_string(year: i32, season_day: i64) -> String {
    let d0 = day_number(&format!("{year:04}-03-01")).unwrap_or(0) + season_day;
    crate::time::rfc3339_from_epoch(d0 * 86_400)[..10].to_string()
}

/// Writes a season scene to `out`: `s2/S2_<date>.tif` (10 bands, DN), `s2/MASK_<date>.tif`
/// (0 clear, 1 cloud, 2 shadow), `s1/S1_<date>.tif` (VV, VH dB) and `labels.tif`.
pub fn generate_season(out: &Path, o: &SeasonOptions) -> Result<Vec<PathBuf>> {
    if o.size < 16 || o.dates < 2 {
        return Err(Error::input(
            out,
            "a synthetic season needs --size >= 16 and --dates >= 2",
        ));
    }
    for d in ["s2", "s1"] {
        let p = out.join(d);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, "create folder", e))?;
    }
    let grid = Grid {
        width: o.size,
        height: o.size,
        transform: [600000.0, 10.0, 0.0, 5700000.0, 0.0, -10.0],
        crs_wkt: epsg_wkt(32631)?,
        epsg: Some(32631),
    };
    let draw = Drawer { o };
    let mut files = Vec::new();
    for (k, (day, cloudy)) in optical_dates(o).into_iter().enumerate() {
        let name = date_string(o.year, day);
        let cover_u = unit(hash4(o.seed, 0xC0, k as u64, 0, 0));
        let thr = if cloudy {
            -0.25 - 0.25 * cover_u
        } else {
            0.5 + 0.2 * cover_u
        };
        files.extend(write_optical(
            out,
            &grid,
            &draw,
            (day, k as u64 + 1),
            &name,
            thr,
        )?);
    }
    let every = i64::from(o.sar_every_days.max(1));
    for (k, day) in (0..SEASON_DAYS).step_by(every as usize).enumerate() {
        let name = date_string(o.year, day + 2);
        let wet = 1.5 * (unit(hash4(o.seed, 0x3E7, k as u64, 0, 0)) as f32 - 0.5);
        files.push(write_sar(
            out,
            &grid,
            &draw,
            (day + 2, 1000 + k as u64),
            &name,
            wet,
        )?);
    }
    files.push(write_labels(out, &grid, o)?);
    Ok(files)
}

fn write_optical(
    out: &Path,
    grid: &Grid,
    draw: &Drawer,
    (day, key): (i64, u64),
    date: &str,
    thr: f64,
) -> Result<Vec<PathBuf>> {
    let n = grid.width;
    let mut wo = StreamWriter::create_with::<u16>(
        &out.join(format!("s2/S2_{date}.tif")),
        grid,
        &super::BANDS,
        Some(0.0),
        Compression::Deflate,
    )?;
    let mut wm = StreamWriter::create::<u8>(
        &out.join(format!("s2/MASK_{date}.tif")),
        grid,
        &["cloud mask: 0 clear, 1 cloud, 2 shadow"],
        None,
    )?;
    let rows: Vec<Vec<([u16; 10], u8)>> = (0..n)
        .into_par_iter()
        .map(|y| {
            (0..n)
                .map(|x| draw.optical(x, y, day as f64, key, thr))
                .collect()
        })
        .collect();
    let mut dn = Array3::<u16>::zeros((10, n, n));
    let mut mask = Array3::<u8>::zeros((1, n, n));
    for (y, row) in rows.iter().enumerate() {
        for (x, (px, code)) in row.iter().enumerate() {
            for b in 0..10 {
                dn[[b, y, x]] = px[b];
            }
            mask[[0, y, x]] = *code;
        }
    }
    wo.write(0, 0, &dn)?;
    wm.write(0, 0, &mask)?;
    Ok(vec![wo.finish()?, wm.finish()?])
}

fn write_sar(
    out: &Path,
    grid: &Grid,
    draw: &Drawer,
    (day, key): (i64, u64),
    date: &str,
    wet: f32,
) -> Result<PathBuf> {
    let n = grid.width;
    let mut ws = StreamWriter::create_with::<f32>(
        &out.join(format!("s1/S1_{date}.tif")),
        grid,
        &["VV", "VH"],
        Some(f64::NAN),
        Compression::Deflate,
    )?;
    let rows: Vec<Vec<[f32; 2]>> = (0..n)
        .into_par_iter()
        .map(|y| {
            (0..n)
                .map(|x| draw.sar(x, y, day as f64, key, wet))
                .collect()
        })
        .collect();
    let mut s = Array3::<f32>::zeros((2, n, n));
    for (y, row) in rows.iter().enumerate() {
        for (x, v) in row.iter().enumerate() {
            s[[0, y, x]] = v[0];
            s[[1, y, x]] = v[1];
        }
    }
    ws.write(0, 0, &s)?;
    ws.finish()
}

fn write_labels(out: &Path, grid: &Grid, o: &SeasonOptions) -> Result<PathBuf> {
    let n = grid.width;
    let mut wl = StreamWriter::create::<u8>(&out.join("labels.tif"), grid, &["class"], Some(0.0))?;
    let l = Array3::from_shape_fn((1, n, n), |(_, y, x)| {
        SEASON_CLASSES[land_cover(o.seed, x as i64, y as i64).0].0
    });
    wl.write(0, 0, &l)?;
    wl.finish()
}

/// Writes `scenes` season scenes (`scene-01` ...; one scene is written to `out` itself) from
/// consecutive seeds, each season a different year and shifted by up to 12 days, and a
/// pipeline over them with `[time]` monthly steps that holds out the last third.
pub fn generate_seasons(out: &Path, scenes: usize, o: &SeasonOptions) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut names = Vec::new();
    for i in 0..scenes.max(1) {
        let seed = o.seed + i as u64;
        let (dir, name) = if scenes <= 1 {
            (out.to_path_buf(), "season".to_string())
        } else {
            let n = format!("scene-{:02}", i + 1);
            (out.join(&n), n)
        };
        let so = SeasonOptions {
            seed,
            year: o.year + i as i32,
            shift_days: if scenes <= 1 {
                o.shift_days
            } else {
                24.0 * (unit(hash4(seed, 0x5F, 0, 0, 0)) - 0.5)
            },
            ..o.clone()
        };
        files.extend(generate_season(&dir, &so)?);
        let rel = if scenes <= 1 {
            ".".to_string()
        } else {
            name.clone()
        };
        names.push((rel, name, so.year));
    }
    let toml_path = out.join("pipeline.toml");
    std::fs::write(&toml_path, season_pipeline_toml(&names))
        .map_err(|e| Error::io(&toml_path, "write", e))?;
    files.push(toml_path);
    Ok(files)
}

/// The pipeline of synthetic seasons `(folder, name, year)`: monthly steps, the last third
/// held out when there are three scenes or more.
pub fn season_pipeline_toml(scenes: &[(String, String, i32)]) -> String {
    let mut s = String::from("# geofuse pipeline for synthetic seasons (geofuse synth --dates).\noutput = \"out\"\nseed = 42\n\n[time]\nstart = \"03-01\"\nend = \"10-31\"\nstep_days = 30\n\n");
    for (id, n, col) in SEASON_CLASSES {
        s.push_str(&format!(
            "[[classes]]\nid = {id}\nname = \"{n}\"\ncolor = \"{col}\"\n\n"
        ));
    }
    for (dir, name, year) in scenes {
        s.push_str(&format!(
            "[[scenes]]\nname = \"{name}\"\nyear = {year}\noptical = {{ path = \"{dir}/s2/S2_*.tif\", bands = [\"B02\", \"B03\", \"B04\", \"B05\", \"B06\", \"B07\", \"B08\", \"B8A\", \"B11\", \"B12\"], scale = 0.0001 }}\nmask = {{ path = \"{dir}/s2/MASK_{{date}}.tif\", invalid = [1, 2] }}\nsar = {{ path = \"{dir}/s1/S1_*.tif\", polarisations = [\"VV\", \"VH\"], unit = \"db\" }}\nlabels = \"{dir}/labels.tif\"\n\n"
        ));
    }
    if scenes.len() >= 3 {
        let held = scenes.len() / 3;
        let q = |v: &[(String, String, i32)]| {
            v.iter()
                .map(|x| format!("\"{}\"", x.1))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "[training]\nscenes = [{}]\n\n[evaluation]\nscenes = [{}]\n\n",
            q(&scenes[..scenes.len() - held]),
            q(&scenes[scenes.len() - held..])
        ));
    }
    // Beside the learned kernel on stacked steps, the learned kernel on temporal attention
    // encoders (attending to each pixel's observed steps only).
    let ltae = super::LEARNED_METHOD.replace(
        "name = \"learned-kernel\"",
        "name = \"ltae-kernel\"\nfusion = \"learned-kernel\"\ntemporal = \"ltae\"",
    );
    s + SEASON_SETTINGS + super::LEARNED_METHOD + &ltae
}

const SEASON_SETTINGS: &str = r#"[tiling]
tile_size = 256

[features]
indices = ["NDVI", "NDWI", "NDBI", "NDRE"]
sar = ["vv_db", "vh_db", "vh_vv_ratio_db"]
speckle = { filter = "lee", radius = 2, looks = 4.4 }

[split]
block_size = 64
test_fraction = 0.3
samples_per_class = 2000

[[methods]]
name = "handcrafted"
trees = 100
max_depth = 18

[[methods]]
name = "boosted"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_and_grassland_agree_on_some_date_and_differ_over_the_season() {
        // Winter crop is as green as grassland in spring, summer crop in summer: the ranges
        // over parcel vigour overlap.
        let range = |c: usize, t: f64| (greenness(c, t, 0.0), greenness(c, t, 1.0));
        let overlap = |a: (f64, f64), b: (f64, f64)| a.0 < b.1 && b.0 < a.1;
        assert!(overlap(range(5, 20.0), range(3, 20.0)));
        assert!(overlap(range(2, 140.0), range(3, 140.0)));
        assert!(range(2, 20.0).1 < 0.1 && range(5, 160.0).1 < 0.1);
    }

    #[test]
    fn the_cloudy_share_of_dates_is_clouded() {
        let o = SeasonOptions {
            size: 16,
            seed: 3,
            dates: 20,
            cloudy_dates: 0.3,
            sar_every_days: 6,
            year: 2021,
            shift_days: 0.0,
        };
        let d = optical_dates(&o);
        assert_eq!(d.iter().filter(|x| x.1).count(), 6);
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(date_string(2021, 0), "2021-03-01");
        assert_eq!(date_string(2021, 244), "2021-10-31");
    }
}
