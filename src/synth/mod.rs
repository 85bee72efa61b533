//! Synthetic Sentinel-1 + Sentinel-2-like scenes with labels, clouds and SAR gaps.
//!
//! Every pixel is a pure function of (seed, x, y), so a scene of any size is generated strip
//! by strip (memory bounded by the strip) and identically whatever the strip size.
//!
//! Land cover: jittered parcels (cropland, grassland, forest, bare soil, wetland), rivers
//! (zero set of a smooth field), lakes, wetland along water, urban areas with a street grid,
//! straight roads. Designed separability:
//! - cropland vs grassland: identical SAR statistics, different spectra (optical only);
//! - grassland vs wetland: identical spectra, different backscatter (SAR only);
//! - built-up vs bare soil: close spectra, very different backscatter and texture.
//!
//! Optical: L2A-like reflectance x 1e4 (UInt16, nodata 0), bands B02 B03 B04 B05 B06 B07 B08
//! B8A B11 B12, with per-parcel gain, pixel noise, texture, clouds and cloud shadows.
//! SAR: VV, VH sigma0 in dB (Float32, nodata NaN) with 4.4-look gamma speckle, bright urban
//! scatterers and nodata swath gaps. Cloud mask: 0 clear, 1 cloud, 2 shadow.

pub(crate) mod season;

use std::path::{Path, PathBuf};

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::io::writer::{epsg_wkt, Compression, StreamWriter};
use crate::raster::Grid;
use crate::rng::{hash4, unit, Rng};

/// Class ids and names of synthetic scenes.
pub const CLASSES: [(u8, &str, &str); 7] = [
    (1, "water", "#1f78b4"),
    (2, "forest", "#33a02c"),
    (3, "cropland", "#ffd92f"),
    (4, "grassland", "#b2df8a"),
    (5, "built-up", "#e31a1c"),
    (6, "bare soil", "#cab2d6"),
    (7, "wetland", "#6a3d9a"),
];

/// Optical band names.
pub const BANDS: [&str; 10] = [
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
];

const SPECTRA: [[f32; 10]; 7] = [
    [
        0.060, 0.050, 0.030, 0.025, 0.020, 0.018, 0.015, 0.012, 0.008, 0.005,
    ], // water
    [
        0.030, 0.050, 0.030, 0.080, 0.220, 0.280, 0.320, 0.330, 0.160, 0.080,
    ], // forest
    [
        0.040, 0.080, 0.050, 0.120, 0.300, 0.380, 0.420, 0.430, 0.220, 0.120,
    ], // cropland
    [
        0.050, 0.080, 0.070, 0.130, 0.220, 0.260, 0.280, 0.290, 0.250, 0.160,
    ], // grassland
    [
        0.120, 0.130, 0.140, 0.160, 0.180, 0.190, 0.200, 0.210, 0.240, 0.220,
    ], // built-up
    [
        0.110, 0.130, 0.150, 0.180, 0.200, 0.220, 0.230, 0.240, 0.300, 0.270,
    ], // bare soil
    [
        0.050, 0.080, 0.070, 0.130, 0.220, 0.260, 0.280, 0.290, 0.250, 0.160,
    ], // wetland = grassland
];
// Mean sigma0 (dB): VV, VH. Cropland = grassland in SAR; wetland differs from grassland.
const SIGMA0: [[f32; 2]; 7] = [
    [-20.0, -27.0],
    [-7.5, -12.5],
    [-10.0, -16.5],
    [-10.0, -16.5],
    [-3.0, -9.0],
    [-13.0, -21.0],
    [-4.5, -20.0],
];
const CLOUD_REFL: [f32; 10] = [0.50, 0.49, 0.48, 0.47, 0.46, 0.45, 0.45, 0.44, 0.38, 0.32];
const LOOKS: f64 = 4.4;

/// Options of `geofuse synth`.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Scene side in pixels.
    pub size: usize,
    /// Seed.
    pub seed: u64,
    /// Rows generated per strip. A multiple of the files' 256-row blocks writes each block
    /// once; otherwise a block written in parts can be flushed half-full and rewritten.
    pub strip_rows: usize,
    /// Cloud cover target (fraction).
    pub cloud_cover: f64,
    /// How this scene differs from the others of a series (none by default).
    pub variation: SceneVariation,
}

/// Scene-to-scene variation a model has to generalise over (`synth --scenes`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneVariation {
    /// Seasonal / illumination gain on every reflectance (1 = none).
    pub reflectance_gain: f32,
    /// Soil-moisture shift of the backscatter, dB (0 = none).
    pub backscatter_db: f32,
    /// Misregistration of the SAR against the optical grid in pixels (dx, dy), sub-pixel
    /// allowed: the SAR at (x, y) is the scene's at (x + dx, y + dy), bilinear in linear power
    /// between pixels.
    pub sar_shift: (f32, f32),
    /// Amplitude in pixels of a misregistration that varies across the scene (0 = none): on
    /// top of `sar_shift`, the SAR at (x, y) moves by this many pixels in a direction that turns
    /// smoothly over the scene (a noise field on a ~100 px scale), as residual terrain or
    /// orbit errors do after a single global co-registration.
    pub sar_shift_field: f32,
}

/// How `synth --scenes` misregisters each scene's SAR against the optical grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Misregistration {
    /// A shift of up to this many pixels in x and in y, drawn per scene (sub-pixel).
    UpTo(f32),
    /// A shift of exactly this many pixels, in a direction drawn per scene.
    Exact(f32),
    /// A shift of this many pixels whose direction varies smoothly across each scene.
    Varying(f32),
}

impl Misregistration {
    /// The shift in pixels the mode names.
    pub fn pixels(self) -> f32 {
        match self {
            Misregistration::UpTo(p) | Misregistration::Exact(p) | Misregistration::Varying(p) => p,
        }
    }
}

impl Default for SceneVariation {
    fn default() -> Self {
        SceneVariation {
            reflectance_gain: 1.0,
            backscatter_db: 0.0,
            sar_shift: (0.0, 0.0),
            sar_shift_field: 0.0,
        }
    }
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            size: 1024,
            seed: 1,
            strip_rows: 256,
            cloud_cover: 0.12,
            variation: SceneVariation::default(),
        }
    }
}

fn smooth(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

/// Value noise in [-1, 1] with lattice spacing `scale` (pixels).
fn value_noise(seed: u64, x: f64, y: f64, scale: f64) -> f64 {
    let (fx, fy) = (x / scale, y / scale);
    let (x0, y0) = (fx.floor(), fy.floor());
    let (tx, ty) = (smooth(fx - x0), smooth(fy - y0));
    let v =
        |i: f64, j: f64| unit(hash4(seed, 0x401, i as i64 as u64, j as i64 as u64, 0)) * 2.0 - 1.0;
    let a = v(x0, y0) + (v(x0 + 1.0, y0) - v(x0, y0)) * tx;
    let b = v(x0, y0 + 1.0) + (v(x0 + 1.0, y0 + 1.0) - v(x0, y0 + 1.0)) * tx;
    a + (b - a) * ty
}

/// Fractal sum of value noise (4 octaves), roughly in [-1, 1].
fn fbm(seed: u64, x: f64, y: f64, scale: f64) -> f64 {
    let mut s = 0.0;
    let mut amp = 0.5;
    let mut sc = scale;
    for o in 0..4 {
        s += amp * value_noise(seed.wrapping_add(o * 7919), x, y, sc);
        amp *= 0.5;
        sc *= 0.5;
    }
    s / 0.9375
}

/// Index k of the jittered interval [b(k), b(k+1)) that holds `v`, with b(k) = k P + jitter.
fn jittered_cell(seed: u64, salt: u64, v: i64, period: i64) -> (i64, i64, i64) {
    let b = |k: i64| {
        k * period + ((unit(hash4(seed, salt, k as u64, 0, 3)) - 0.5) * 0.5 * period as f64) as i64
    };
    let mut k = v.div_euclid(period);
    while b(k) > v {
        k -= 1;
    }
    while b(k + 1) <= v {
        k += 1;
    }
    (k, b(k), b(k + 1))
}

/// Land cover class index (0-based into [`CLASSES`]) and parcel id at pixel (x, y).
pub fn land_cover(seed: u64, x: i64, y: i64) -> (usize, u64) {
    let (xf, yf) = (x as f64, y as f64);
    // Water: rivers along the zero set of a smooth field, and lakes.
    let river = fbm(seed ^ 0x71, xf, yf, 260.0);
    let lake = fbm(seed ^ 0x72, xf, yf, 180.0);
    if river.abs() < 0.018 || lake < -0.55 {
        return (0, 0);
    }
    // Roads: a few straight lines with hashed positions.
    let road_period = 310;
    let rx = (x + (unit(hash4(seed, 0x80, (y / 1024) as u64, 0, 0)) * 100.0) as i64)
        .rem_euclid(road_period);
    let ry = (y + (unit(hash4(seed, 0x81, (x / 1024) as u64, 0, 0)) * 100.0) as i64)
        .rem_euclid(road_period);
    if rx < 2 || ry < 2 {
        return (4, 1);
    }
    // Urban areas with a street grid (streets and buildings are both built-up).
    let urban = fbm(seed ^ 0x73, xf, yf, 150.0);
    if urban > 0.42 {
        return (4, 2);
    }
    // Wetland along water where a moisture field is high.
    let moist = fbm(seed ^ 0x74, xf, yf, 90.0);
    if (river.abs() < 0.06 || lake < -0.45) && moist > 0.0 {
        return (6, 3);
    }
    // Parcels: jittered strips cut into jittered fields.
    let (k, _, _) = jittered_cell(seed, 0x90, y, 72);
    let (j, _, _) = jittered_cell(seed ^ (k as u64).wrapping_mul(0x9E37), 0x91, x, 96);
    let pid = hash4(seed, 0x92, k as u64, j as u64, 0);
    let u = unit(pid);
    let forest_bias = fbm(seed ^ 0x75, xf, yf, 220.0);
    let class = if forest_bias > 0.35 {
        if u < 0.75 {
            1
        } else {
            3
        }
    } else if u < 0.36 {
        2
    } else if u < 0.62 {
        3
    } else if u < 0.74 {
        1
    } else if u < 0.86 {
        5
    } else {
        6
    };
    (class, pid)
}

/// Cloud opacity in [0, 1] at (x, y).
fn cloud_alpha(seed: u64, x: f64, y: f64, threshold: f64) -> f64 {
    let c = fbm(seed ^ 0xC10D, x, y, 140.0);
    ((c - threshold) / 0.08).clamp(0.0, 1.0)
}

/// One pixel of the scene: optical DN, SAR dB, label, cloud mask.
#[derive(Debug, Clone, Copy)]
pub struct Pixel {
    /// Optical DN (reflectance x 1e4).
    pub optical: [u16; 10],
    /// VV, VH dB (NaN in gaps).
    pub sar: [f32; 2],
    /// Class id.
    pub label: u8,
    /// 0 clear, 1 cloud, 2 shadow.
    pub cloud: u8,
}

/// One pixel of a scene with its variation applied (the plain [`pixel`] without one).
pub fn varied_pixel(opts: &SynthOptions, n: usize, x: usize, y: usize, thr: f64) -> Pixel {
    let v = opts.variation;
    let mut p = pixel(opts.seed, n, x, y, thr);
    if v == SceneVariation::default() {
        return p;
    }
    if v.sar_shift != (0.0, 0.0) || v.sar_shift_field != 0.0 {
        p.sar = shifted_sar(opts.seed, n, (x, y), thr, local_shift(opts.seed, &v, x, y));
    }
    for o in p.optical.iter_mut().filter(|o| **o != 0) {
        *o = (*o as f32 * v.reflectance_gain).round().clamp(1.0, 65535.0) as u16;
    }
    for s in &mut p.sar {
        *s += v.backscatter_db;
    }
    p
}

/// The SAR misregistration (dx, dy) at pixel (x, y): the scene's global shift plus, with a
/// shift field, `sar_shift_field` pixels in a direction that turns smoothly over the scene.
fn local_shift(seed: u64, v: &SceneVariation, x: usize, y: usize) -> (f32, f32) {
    if v.sar_shift_field == 0.0 {
        return v.sar_shift;
    }
    let turn = fbm(seed ^ 0x5EF7_1E1D, x as f64, y as f64, 96.0);
    let angle = 4.0 * std::f64::consts::PI * turn;
    let a = f64::from(v.sar_shift_field);
    (
        v.sar_shift.0 + (a * angle.cos()) as f32,
        v.sar_shift.1 + (a * angle.sin()) as f32,
    )
}

/// The SAR of the scene at (x + dx, y + dy): bilinear between the four neighbouring pixels
/// in linear power (as a resampled real acquisition), the pixel itself for whole shifts, NaN
/// next to a gap; positions outside the scene are clamped to its edge.
fn shifted_sar(seed: u64, n: usize, (x, y): (usize, usize), thr: f64, d: (f32, f32)) -> [f32; 2] {
    let (sx, sy) = (x as f64 + f64::from(d.0), y as f64 + f64::from(d.1));
    let (x0, y0) = (sx.floor(), sy.floor());
    let (fx, fy) = (sx - x0, sy - y0);
    let at = |c: f64| (c as i64).clamp(0, n as i64 - 1) as usize;
    let mut acc = [0f64; 2];
    let taps = [
        (0.0, 0.0, (1.0 - fx) * (1.0 - fy)),
        (1.0, 0.0, fx * (1.0 - fy)),
        (0.0, 1.0, (1.0 - fx) * fy),
        (1.0, 1.0, fx * fy),
    ];
    if fx == 0.0 && fy == 0.0 {
        return pixel(seed, n, at(x0), at(y0), thr).sar;
    }
    for (ox, oy, w) in taps.into_iter().filter(|t| t.2 > 0.0) {
        let s = pixel(seed, n, at(x0 + ox), at(y0 + oy), thr).sar;
        for (a, v) in acc.iter_mut().zip(s) {
            *a += w * 10f64.powf(f64::from(v) / 10.0);
        }
    }
    acc.map(|a| (10.0 * a.log10()) as f32)
}

/// Generates one pixel.
pub fn pixel(seed: u64, width: usize, x: usize, y: usize, cloud_threshold: f64) -> Pixel {
    let (xi, yi) = (x as i64, y as i64);
    let (xf, yf) = (x as f64, y as f64);
    let (c, pid) = land_cover(seed, xi, yi);
    let mut rng = Rng::new(hash4(seed, 0x11, x as u64, y as u64, 0));
    let gain = 0.88 + 0.24 * unit(hash4(pid, 0x21, 0, 0, 0)) as f32;
    // Texture by class: urban buildings (3 px cells), forest canopy, crop rows.
    let tex = match c {
        4 => {
            let cell = unit(hash4(seed, 0x31, (x / 3) as u64, (y / 3) as u64, 0)) as f32;
            let street = x % 24 < 3 || y % 24 < 3;
            if street {
                -0.25
            } else {
                0.45 * (cell - 0.5)
            }
        }
        1 => {
            0.18 * (unit(hash4(seed, 0x32, x as u64, y as u64, 0)) as f32 - 0.5)
                + 0.1 * value_noise(seed ^ 0x33, xf, yf, 3.0) as f32
        }
        2 => 0.06 * ((xf * 0.9 + yf * 0.3).sin() as f32),
        _ => 0.0,
    };
    let slow = 1.0 + 0.05 * fbm(seed ^ 0x34, xf, yf, 60.0) as f32;
    let mut refl = [0f32; 10];
    for (b, r) in refl.iter_mut().enumerate() {
        let base = SPECTRA[c][b] * gain * slow * (1.0 + tex);
        *r = base + 0.004 * rng.normal() as f32;
    }
    // Clouds and shadows (shadow = cloud field displaced by the sun direction).
    let alpha = cloud_alpha(seed, xf, yf, cloud_threshold) as f32;
    let shadow = cloud_alpha(seed, xf - 28.0, yf - 18.0, cloud_threshold) as f32;
    let mut cloud = 0u8;
    if alpha > 0.0 {
        for (b, r) in refl.iter_mut().enumerate() {
            *r = *r * (1.0 - alpha) + alpha * CLOUD_REFL[b] * (0.95 + 0.1 * rng.f64() as f32);
        }
        if alpha > 0.25 {
            cloud = 1;
        }
    }
    if cloud == 0 && shadow > 0.25 {
        for r in refl.iter_mut() {
            *r *= 1.0 - 0.65 * shadow;
        }
        cloud = 2;
    }
    let optical = refl.map(|r| (r.clamp(0.0001, 1.0) * 1e4).round().clamp(1.0, 65535.0) as u16);
    // SAR: swath edge on the right and a burst gap, both nodata.
    let edge = width as f64 * 0.9 + 0.03 * width as f64 * (yf / 97.0).sin();
    let burst = (y as i64 + 37).rem_euclid(613) < 6;
    let sar = if xf > edge || burst {
        [f32::NAN, f32::NAN]
    } else {
        let parcel_db = (unit(hash4(pid, 0x41, 0, 0, 0)) as f32 - 0.5) * 2.0;
        let mut out = [0f32; 2];
        for (p, o) in out.iter_mut().enumerate() {
            let mut db =
                SIGMA0[c][p] + parcel_db + 0.8 * value_noise(seed ^ 0x42, xf, yf, 12.0) as f32;
            if c == 4 && unit(hash4(seed, 0x43, x as u64, y as u64, p as u64)) < 0.06 {
                db += 9.0; // dihedral corner reflectors in built-up areas
            }
            let lin = 10f64.powf(db as f64 / 10.0) * rng.gamma(LOOKS) / LOOKS;
            *o = ((10.0 * lin.log10()) * 100.0).round() as f32 / 100.0;
        }
        out
    };
    Pixel {
        optical,
        sar,
        label: CLASSES[c].0,
        cloud,
    }
}

/// The cloud threshold that gives roughly `cover` cloud fraction (fbm is ~Gaussian).
fn cloud_threshold(cover: f64) -> f64 {
    // Inverse of the empirical fbm distribution (std ~0.3): P(f > t) = cover.
    let z = match cover {
        c if c <= 0.0 => return 10.0,
        c if c < 0.05 => 1.65,
        c if c < 0.1 => 1.4,
        c if c < 0.15 => 1.15,
        c if c < 0.25 => 0.85,
        _ => 0.5,
    };
    0.3 * z
}

/// Writes a scene to `out`: optical.tif, sar.tif, labels.tif, cloud_mask.tif, pipeline.toml.
pub fn generate(out: &Path, opts: &SynthOptions) -> Result<Vec<PathBuf>> {
    if opts.size < 16 {
        return Err(Error::input(out, "--size must be at least 16 pixels"));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, "create output folder", e))?;
    let n = opts.size;
    let grid = Grid {
        width: n,
        height: n,
        transform: [600000.0, 10.0, 0.0, 5700000.0, 0.0, -10.0],
        crs_wkt: epsg_wkt(32631)?,
        epsg: Some(32631),
    };
    // DEFLATE level 6: a 20000^2 scene spends its time compressing at level 9.
    let mut wo = StreamWriter::create_with::<u16>(
        &out.join("optical.tif"),
        &grid,
        &BANDS,
        Some(0.0),
        Compression::Deflate,
    )?;
    let mut ws = StreamWriter::create_with::<f32>(
        &out.join("sar.tif"),
        &grid,
        &["VV", "VH"],
        Some(f64::NAN),
        Compression::Deflate,
    )?;
    let mut wl = StreamWriter::create::<u8>(&out.join("labels.tif"), &grid, &["class"], Some(0.0))?;
    let mut wc = StreamWriter::create::<u8>(
        &out.join("cloud_mask.tif"),
        &grid,
        &["cloud mask: 0 clear, 1 cloud, 2 shadow"],
        None,
    )?;
    let thr = cloud_threshold(opts.cloud_cover);
    let strip = opts.strip_rows.max(1);
    for y0 in (0..n).step_by(strip) {
        let h = strip.min(n - y0);
        let rows: Vec<Vec<Pixel>> = (y0..y0 + h)
            .into_par_iter()
            .map(|y| (0..n).map(|x| varied_pixel(opts, n, x, y, thr)).collect())
            .collect();
        let mut o = Array3::<u16>::zeros((10, h, n));
        let mut s = Array3::<f32>::zeros((2, h, n));
        let mut l = Array3::<u8>::zeros((1, h, n));
        let mut c = Array3::<u8>::zeros((1, h, n));
        for (r, row) in rows.iter().enumerate() {
            for (x, px) in row.iter().enumerate() {
                for b in 0..10 {
                    o[[b, r, x]] = px.optical[b];
                }
                s[[0, r, x]] = px.sar[0];
                s[[1, r, x]] = px.sar[1];
                l[[0, r, x]] = px.label;
                c[[0, r, x]] = px.cloud;
            }
        }
        wo.write(y0, 0, &o)?;
        ws.write(y0, 0, &s)?;
        wl.write(y0, 0, &l)?;
        wc.write(y0, 0, &c)?;
    }
    let files = vec![wo.finish()?, ws.finish()?, wl.finish()?, wc.finish()?];
    let toml_path = out.join("pipeline.toml");
    std::fs::write(&toml_path, pipeline_toml("out", ".", "synthetic"))
        .map_err(|e| Error::io(&toml_path, "write", e))?;
    let _ = Axis(0);
    Ok(files.into_iter().chain([toml_path]).collect())
}

/// The header and class table of a synthetic pipeline writing to `output`.
fn pipeline_head(output: &str) -> String {
    let mut s = format!(
        "# geofuse pipeline for a synthetic scene (geofuse synth).\noutput = \"{output}\"\nseed = 42\n\n"
    );
    for (id, n, col) in CLASSES {
        s.push_str(&format!(
            "[[classes]]\nid = {id}\nname = \"{n}\"\ncolor = \"{col}\"\n\n"
        ));
    }
    s
}

/// The `[[scenes]]` table of a synthetic scene in folder `scene_dir`.
fn scene_table(scene_dir: &str, name: &str) -> String {
    format!(
        r#"[[scenes]]
name = "{name}"
optical = {{ path = "{scene_dir}/optical.tif", bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"], scale = 0.0001 }}
sar = {{ path = "{scene_dir}/sar.tif", polarisations = ["VV", "VH"], unit = "db" }}
labels = "{scene_dir}/labels.tif"
mask = {{ path = "{scene_dir}/cloud_mask.tif", invalid = [1, 2] }}

"#
    )
}

/// The variation and cloud cover of scene `i` of a series from `seed`: reflectance gain
/// 0.85..1.15 (season, illumination), backscatter shift -1.5..+1.5 dB (soil moisture), cloud
/// cover 4..30 %, and a SAR misregistration ([`Misregistration`]; shifts to 0.01 px).
pub fn series_variation(seed: u64, mis: Misregistration) -> (SceneVariation, f64) {
    let u = |k: u64| unit(hash4(seed, 0x5E_21E5, k, 0, 0)) as f32;
    let round = |v: f32| (v * 100.0).round() / 100.0;
    let (sar_shift, sar_shift_field) = match mis {
        Misregistration::UpTo(m) => (
            (round((2.0 * u(4) - 1.0) * m), round((2.0 * u(5) - 1.0) * m)),
            0.0,
        ),
        Misregistration::Exact(m) => {
            let angle = std::f32::consts::TAU * u(6);
            ((round(m * angle.cos()), round(m * angle.sin())), 0.0)
        }
        Misregistration::Varying(m) => ((0.0, 0.0), m),
    };
    let v = SceneVariation {
        reflectance_gain: 0.85 + 0.30 * u(1),
        backscatter_db: -1.5 + 3.0 * u(2),
        sar_shift,
        sar_shift_field,
    };
    (v, 0.04 + 0.26 * u(3) as f64)
}

/// `synth --scenes N`: scenes `scene-01` .. from consecutive seeds, each with its
/// [`series_variation`], and one `pipeline.toml` over all of them holding out the last third
/// (at least one). Returns the files written.
pub fn generate_series(
    out: &Path,
    scenes: usize,
    opts: &SynthOptions,
    mis: Misregistration,
) -> Result<Vec<PathBuf>> {
    if scenes < 2 {
        return Err(Error::input(
            out,
            "--scenes must be at least 2 (one is `synth` without it)",
        ));
    }
    let mut files = Vec::new();
    let mut list = Vec::new();
    for i in 0..scenes {
        let name = format!("scene-{:02}", i + 1);
        let seed = opts.seed + i as u64;
        let (variation, cloud_cover) = series_variation(seed, mis);
        let o = SynthOptions {
            seed,
            variation,
            cloud_cover,
            ..opts.clone()
        };
        let written = generate(&out.join(&name), &o)?;
        // Each scene folder gets no pipeline of its own: the series pipeline covers them.
        for f in written {
            if f.extension().is_some_and(|e| e == "toml") {
                let _ = std::fs::remove_file(&f);
            } else {
                files.push(f);
            }
        }
        list.push((name.clone(), name));
    }
    let held: Vec<String> = list[scenes - (scenes / 3).max(1)..]
        .iter()
        .map(|(_, n)| n.clone())
        .collect();
    let toml_path = out.join("pipeline.toml");
    std::fs::write(&toml_path, series_pipeline_toml("out", &list, &held))
        .map_err(|e| Error::io(&toml_path, "write", e))?;
    files.push(toml_path);
    Ok(files)
}

/// A ready-to-run pipeline for a synthetic scene in folder `scene_dir` (relative to the
/// pipeline file), writing to `output`.
pub fn pipeline_toml(output: &str, scene_dir: &str, name: &str) -> String {
    pipeline_head(output) + &scene_table(scene_dir, name) + PIPELINE_SETTINGS + LEARNED_METHOD
}

/// A pipeline over several synthetic scenes `(folder, name)`, holding out `held_out`.
pub fn series_pipeline_toml(
    output: &str,
    scenes: &[(String, String)],
    held_out: &[String],
) -> String {
    let mut s = pipeline_head(output);
    for (dir, name) in scenes {
        s.push_str(&scene_table(dir, name));
    }
    let quote = |names: Vec<&String>| {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let training: Vec<&String> = scenes
        .iter()
        .map(|(_, n)| n)
        .filter(|n| !held_out.contains(n))
        .collect();
    s.push_str(&format!(
        "# The scenes that train the models, listed so that scenes added later are mapped with\n# the same models. Held-out scenes: never trained on, scored on every labelled pixel.\n[training]\nscenes = [{}]\n\n[evaluation]\nscenes = [{}]\n\n",
        quote(training),
        quote(held_out.iter().collect())
    ));
    s + PIPELINE_SETTINGS + LEARNED_METHOD
}

/// Tiling, features, split and methods of a synthetic pipeline.
const PIPELINE_SETTINGS: &str = r#"[tiling]
tile_size = 256

[features]
indices = ["NDVI", "NDWI", "MNDWI", "NDBI", "SAVI", "EVI", "NBR", "NDRE"]
sar = ["vv_db", "vh_db", "vh_vv_ratio_db", "rvi"]
speckle = { filter = "lee", radius = 2, looks = 4.4 }

[[features.glcm]]
band = "B08"
radius = 2
offsets = [[1, 0], [0, 1], [1, 1], [1, -1]]
levels = 16
quantisation = "percentile"
percentiles = [1.0, 99.0]
features = ["energy", "entropy", "correlation", "inertia", "homogeneity", "mean", "variance"]

[[features.glcm]]
band = "VV"
radius = 3
offsets = [[1, 0], [0, 1]]
levels = 16
features = ["energy", "entropy", "contrast", "homogeneity", "variance"]

[split]
block_size = 64
test_fraction = 0.3
samples_per_class = 3000

[[methods]]
name = "handcrafted"
trees = 100
max_depth = 18

"#;

/// The learned method of the synthetic pipelines.
const LEARNED_METHOD: &str = r#"
[[methods]]
name = "learned-kernel"
width = 16
epochs = 30
patience = 8
patches = 256
patch = 32
mc_passes = 16
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_deterministic() {
        for (x, y) in [(0, 0), (100, 37), (511, 511)] {
            let a = pixel(3, 512, x, y, 0.35);
            let b = pixel(3, 512, x, y, 0.35);
            assert_eq!(a.optical, b.optical);
            assert_eq!(a.label, b.label);
            assert_eq!(a.sar[0].to_bits(), b.sar[0].to_bits());
        }
    }

    #[test]
    fn every_class_occurs_on_a_large_scene() {
        let mut seen = [0usize; 8];
        for y in (0..1500).step_by(5) {
            for x in (0..1500).step_by(5) {
                seen[CLASSES[land_cover(1, x, y).0].0 as usize] += 1;
            }
        }
        for (id, name, _) in CLASSES {
            assert!(
                seen[id as usize] > 50,
                "class {name} too rare: {}",
                seen[id as usize]
            );
        }
    }

    #[test]
    fn grassland_and_wetland_share_spectra_but_not_backscatter() {
        assert_eq!(SPECTRA[3], SPECTRA[6]);
        assert!((SIGMA0[3][0] - SIGMA0[6][0]).abs() > 4.0);
        assert_eq!(SIGMA0[2], SIGMA0[3]);
        assert_ne!(SPECTRA[2], SPECTRA[3]);
    }

    #[test]
    fn a_variation_scales_reflectance_shifts_backscatter_and_moves_the_sar() {
        let thr = cloud_threshold(0.1);
        let plain = SynthOptions {
            size: 64,
            seed: 3,
            ..Default::default()
        };
        let v = SceneVariation {
            reflectance_gain: 1.1,
            backscatter_db: 0.5,
            sar_shift: (2.0, -1.0),
            ..Default::default()
        };
        let varied = SynthOptions {
            variation: v,
            ..plain.clone()
        };
        let (a, b) = (
            pixel(3, 64, 10, 10, thr),
            varied_pixel(&varied, 64, 10, 10, thr),
        );
        for (x, y) in a.optical.iter().zip(&b.optical) {
            assert_eq!(*y, (*x as f32 * 1.1).round() as u16);
        }
        let moved = pixel(3, 64, 12, 9, thr);
        assert_eq!(b.sar[0], moved.sar[0] + 0.5);
        assert_eq!(b.label, a.label, "labels follow the optical grid");
        assert_eq!(varied_pixel(&plain, 64, 10, 10, thr).optical, a.optical);
        // Half a pixel to the right: the mean of the two neighbours in linear power.
        let half = SynthOptions {
            variation: SceneVariation {
                sar_shift: (0.5, 0.0),
                ..Default::default()
            },
            ..plain.clone()
        };
        let (l, r) = (pixel(3, 64, 10, 10, thr).sar, pixel(3, 64, 11, 10, thr).sar);
        let h = varied_pixel(&half, 64, 10, 10, thr).sar;
        for b in 0..2 {
            let want = 10.0
                * ((10f64.powf(l[b] as f64 / 10.0) + 10f64.powf(r[b] as f64 / 10.0)) / 2.0).log10();
            assert!((h[b] as f64 - want).abs() < 1e-4, "{} vs {want}", h[b]);
        }
    }

    #[test]
    fn exact_and_varying_misregistration_have_the_named_size() {
        for seed in 0..10 {
            let (v, _) = series_variation(seed, Misregistration::Exact(2.0));
            let m = v.sar_shift.0.hypot(v.sar_shift.1);
            assert!((m - 2.0).abs() < 0.02, "seed {seed}: {:?}", v.sar_shift);
            assert_eq!(v.sar_shift_field, 0.0);
        }
        let (v, _) = series_variation(3, Misregistration::Varying(1.5));
        assert_eq!((v.sar_shift, v.sar_shift_field), ((0.0, 0.0), 1.5));
        let shifts: Vec<(f32, f32)> = (0..8).map(|k| local_shift(3, &v, 40 * k, 25 * k)).collect();
        for d in &shifts {
            assert!((d.0.hypot(d.1) - 1.5).abs() < 1e-4, "{d:?}");
        }
        let spread = shifts.iter().map(|d| d.0).fold(f32::NAN, f32::max)
            - shifts.iter().map(|d| d.0).fold(f32::NAN, f32::min);
        assert!(
            spread > 1.0,
            "the direction turns across the scene: {shifts:?}"
        );
        // Neighbouring pixels move almost alike (a smooth field, not noise).
        let (a, b) = (local_shift(3, &v, 50, 50), local_shift(3, &v, 51, 50));
        assert!(
            (a.0 - b.0).abs() < 0.2 && (a.1 - b.1).abs() < 0.2,
            "{a:?} {b:?}"
        );
    }
}
