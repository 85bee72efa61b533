//! Standalone raster tools: one operation on any GeoTIFF, tiled, parallel and streamed to a
//! GeoTIFF (`geofuse texture`, `geofuse indices`). They mirror Orfeo ToolBox's
//! `HaralickTextureExtraction` and `RadiometricIndices` for users who need one stage, and they
//! are what `benches/peers/run.sh` times against OTB. The kernels are the pipeline's own
//! ([`crate::features`]); tiles carry a halo, so any tile size gives the same values.

use std::path::Path;
use std::sync::Mutex;

use ndarray::{s, Array3, ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{lock, Error, Result};
use crate::features::glcm::{glcm_features, quantise, Definitions, GlcmParams, FEATURE_NAMES};
use crate::features::indices::{index_bands, spectral_index};
use crate::io::reader::{grid_of, open, RasterReader};
use crate::io::writer::{Compression, StreamWriter};
use crate::tiler::tiles;

/// Orfeo ToolBox's "simple" Haralick set, in its band order: the first eight of
/// [`FEATURE_NAMES`].
pub fn otb_simple() -> &'static [&'static str] {
    &FEATURE_NAMES[..8]
}

/// How a tool writes its output.
#[derive(Debug, Clone, Copy)]
pub struct OutputOptions {
    /// Tile side in pixels (work unit and write unit).
    pub tile: usize,
    /// Compression of the GeoTIFF.
    pub compression: Compression,
}

/// Runs `tile_fn` on every tile of `grid` in parallel (each worker with its own reader of
/// `input`) and streams the returned core arrays `[band, row, col]` into one GeoTIFF at `out`,
/// which appears under its name only once complete.
#[allow(clippy::too_many_arguments)]
fn stream_tiles<T, F>(
    input: &Path,
    out: &Path,
    grid: &crate::raster::Grid,
    names: &[&str],
    nodata: f64,
    output: OutputOptions,
    halo: usize,
    tile_fn: F,
) -> Result<()>
where
    T: gdal::raster::GdalType + Copy + Send,
    F: Fn(&RasterReader, &crate::tiler::Tile) -> Result<Array3<T>> + Sync,
{
    let writer = Mutex::new(StreamWriter::create_with::<T>(
        out,
        grid,
        names,
        Some(nodata),
        output.compression,
    )?);
    tiles(grid.width, grid.height, output.tile, halo)
        .par_iter()
        .map_init(
            || RasterReader::open(input),
            |reader, t| -> Result<()> {
                let reader = reader
                    .as_ref()
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let data = tile_fn(reader, t)?;
                lock(&writer)?.write(t.core.row, t.core.col, &data)
            },
        )
        .collect::<Result<Vec<()>>>()?;
    writer
        .into_inner()
        .map_err(|_| Error::Internal("lock poisoned".into()))?
        .finish()?;
    Ok(())
}

/// Settings of [`texture`].
#[derive(Debug, Clone)]
pub struct TextureOptions {
    /// 1-based input band.
    pub band: usize,
    /// Window radius (window = 2 radius + 1).
    pub radius: usize,
    /// Offset (dx = column, dy = row going down).
    pub offset: (i32, i32),
    /// Grey levels.
    pub levels: usize,
    /// Quantisation range; `None` = the band's exact minimum and maximum.
    pub range: Option<(f64, f64)>,
    /// Feature definitions.
    pub definitions: Definitions,
    /// Feature names to write, in order (see [`FEATURE_NAMES`]).
    pub features: Vec<String>,
    /// Tiling and compression of the output.
    pub output: OutputOptions,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::config(path, msg.into())
}

/// Writes the GLCM texture of one band of `input` to `out` (Float32, one band per feature,
/// NaN = nodata). Returns the feature names written.
pub fn texture(input: &Path, out: &Path, o: &TextureOptions) -> Result<Vec<String>> {
    let ds = open(input)?;
    let grid = grid_of(&ds, input)?;
    let count = ds.raster_count();
    if o.band == 0 || o.band > count {
        return Err(bad(
            input,
            format!("has {count} band(s); --band {} does not exist", o.band),
        ));
    }
    if !(2..=64).contains(&o.levels) {
        return Err(bad(input, "--levels must be 2..=64"));
    }
    let idx: Vec<usize> = o
        .features
        .iter()
        .map(|f| {
            FEATURE_NAMES.iter().position(|n| n == f).ok_or_else(|| {
                bad(
                    input,
                    format!(
                        "unknown texture feature `{f}`; use any of {}",
                        FEATURE_NAMES.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    let (min, max) = match o.range {
        Some(r) => r,
        None => {
            let b = ds
                .rasterband(o.band)
                .map_err(|e| Error::gdal(input, "open band", e))?;
            let mm = b
                .compute_raster_min_max(false)
                .map_err(|e| Error::gdal(input, "compute min/max", e))?;
            (mm.min, mm.max)
        }
    };
    if min.is_nan() || max.is_nan() || max < min {
        return Err(bad(
            input,
            format!("empty quantisation range [{min}, {max}]"),
        ));
    }
    drop(ds);
    let params = GlcmParams {
        radius: o.radius,
        offset: o.offset,
        levels: o.levels,
        definitions: o.definitions,
    };
    let halo = o.radius + o.offset.0.unsigned_abs().max(o.offset.1.unsigned_abs()) as usize;
    let names: Vec<&str> = idx.iter().map(|&i| FEATURE_NAMES[i]).collect();
    stream_tiles(
        input,
        out,
        &grid,
        &names,
        f64::NAN,
        o.output,
        halo,
        |reader, t| {
            let img = reader.read_band(o.band, t.read, (t.read.width, t.read.height))?;
            let q = quantise(img.view(), min, max, o.levels, o.definitions);
            let f = glcm_features(q.view(), &params);
            let (r0, c0) = t.core_offset();
            let core = f.slice(s![.., r0..r0 + t.core.height, c0..c0 + t.core.width]);
            Ok(core.select(Axis(0), &idx))
        },
    )?;
    Ok(names.iter().map(|s| s.to_string()).collect())
}

/// Settings of [`indices`].
#[derive(Debug, Clone)]
pub struct IndicesOptions {
    /// Name of every input band, in file order (e.g. B02 B03 B04 ... B12).
    pub band_names: Vec<String>,
    /// Indices to compute (see `geofuse indices --help`).
    pub list: Vec<String>,
    /// Reflectance = DN x scale + offset.
    pub scale: f64,
    /// Reflectance offset.
    pub offset: f64,
    /// Tiling and compression of the output.
    pub output: OutputOptions,
}

/// Writes spectral indices of `input` to `out` (Float32, one band per index, NaN = nodata).
pub fn indices(input: &Path, out: &Path, o: &IndicesOptions) -> Result<Vec<String>> {
    let ds = open(input)?;
    let grid = grid_of(&ds, input)?;
    let count = ds.raster_count();
    drop(ds);
    if o.band_names.len() != count {
        return Err(bad(
            input,
            format!(
                "has {count} band(s) but --bands names {}; name every band in file order",
                o.band_names.len()
            ),
        ));
    }
    // Per index: its inputs as 1-based band numbers.
    let mut plan = Vec::new();
    for name in &o.list {
        let need = index_bands(name).ok_or_else(|| {
            bad(
                input,
                format!(
                    "unknown index `{name}`; use any of {}",
                    crate::config::INDEX_BANDS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let bands = need
            .iter()
            .map(|b| {
                o.band_names
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(b))
                    .map(|i| i + 1)
                    .ok_or_else(|| {
                        bad(
                            input,
                            format!("index {name} needs band {b}, which --bands does not name"),
                        )
                    })
            })
            .collect::<Result<Vec<usize>>>()?;
        plan.push((name.to_ascii_uppercase(), bands));
    }
    let mut used: Vec<usize> = plan.iter().flat_map(|(_, b)| b.clone()).collect();
    used.sort_unstable();
    used.dedup();
    let names: Vec<&str> = plan.iter().map(|(n, _)| n.as_str()).collect();
    let (scale, offset) = (o.scale as f32, o.offset as f32);
    stream_tiles(
        input,
        out,
        &grid,
        &names,
        f64::NAN,
        o.output,
        0,
        |reader, t| {
            let mut raw = reader.read(&used, t.read)?;
            if scale != 1.0 || offset != 0.0 {
                raw.mapv_inplace(|v| v * scale + offset);
            }
            let plane = |b: usize| -> ArrayView2<f32> {
                let k = used.iter().position(|&u| u == b).unwrap_or(0);
                raw.index_axis(Axis(0), k)
            };
            let mut outp = Array3::<f32>::zeros((plan.len(), t.read.height, t.read.width));
            for (k, (name, bands)) in plan.iter().enumerate() {
                let inputs: Vec<ArrayView2<f32>> = bands.iter().map(|&b| plane(b)).collect();
                let v = spectral_index(name, &inputs)
                    .ok_or_else(|| Error::Internal(format!("index {name}")))?;
                outp.index_axis_mut(Axis(0), k).assign(&v);
            }
            Ok(outp)
        },
    )?;
    Ok(names.iter().map(|s| s.to_string()).collect())
}

/// Settings of [`classify`].
#[derive(Debug, Clone)]
pub struct ClassifyOptions {
    /// Trees.
    pub trees: usize,
    /// Maximum depth.
    pub max_depth: usize,
    /// Minimum samples per leaf.
    pub min_samples_leaf: usize,
    /// Training pixels per class (at most).
    pub samples_per_class: usize,
    /// Seed.
    pub seed: u64,
    /// Tiling and compression of the output.
    pub output: OutputOptions,
}

/// What [`classify`] did.
#[derive(Debug, Clone)]
pub struct ClassifyReport {
    /// Label values, in class-index order.
    pub classes: Vec<u8>,
    /// Training pixels per class.
    pub samples: Vec<usize>,
    /// Seconds spent sampling and training.
    pub train_seconds: f64,
    /// Seconds spent predicting and writing.
    pub predict_seconds: f64,
}

/// Byte labels of a window: values 1..=254 are classes; 0, 255, the nodata value and NaN are
/// unlabelled (255 here).
fn label_bytes(a: &ndarray::Array2<f32>) -> ndarray::Array2<u8> {
    a.mapv(|v| {
        if !(1.0..=254.0).contains(&v) {
            255
        } else {
            v as u8
        }
    })
}

/// Trains a random forest on `labels` and writes, for every pixel of the feature `stack`, the
/// class and the uncertainty bands (Byte: class, confidence, aleatoric, epistemic, total; the
/// last four scaled by 0.004), like Orfeo ToolBox's TrainImagesClassifier + ImageClassifier
/// with `-confmap`. Training pixels are drawn per class by a coordinate hash (deterministic).
pub fn classify(
    stack: &Path,
    labels: &Path,
    out: &Path,
    o: &ClassifyOptions,
) -> Result<ClassifyReport> {
    use crate::classic::forest::{Forest, ForestParams};
    use crate::rng::{hash4, unit};
    use crate::uncertainty::write_pixel;
    let t0 = std::time::Instant::now();
    let ds = open(stack)?;
    let grid = grid_of(&ds, stack)?;
    let nf = ds.raster_count();
    drop(ds);
    let lds = open(labels)?;
    let lgrid = grid_of(&lds, labels)?;
    drop(lds);
    if !grid.transform_matches(&lgrid, 1e-6)
        || grid.width != lgrid.width
        || grid.height != lgrid.height
    {
        return Err(Error::GridMismatch {
            path: labels.to_path_buf(),
            msg: format!(
                "{}: labels grid {} differs from the stack's {}; resample the labels onto the stack",
                labels.display(),
                lgrid.describe(),
                grid.describe()
            ),
        });
    }
    let tl = tiles(grid.width, grid.height, o.output.tile, 0);
    // Pass 1: class counts.
    let counts = tl
        .par_iter()
        .map_init(
            || RasterReader::open(labels),
            |r, t| -> Result<[u64; 256]> {
                let r = r.as_ref().map_err(|e| Error::Internal(e.to_string()))?;
                let l = label_bytes(&r.read_band(1, t.read, (t.read.width, t.read.height))?);
                let mut c = [0u64; 256];
                l.iter().for_each(|&v| c[v as usize] += 1);
                Ok(c)
            },
        )
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .fold([0u64; 256], |mut a, b| {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            a
        });
    let classes: Vec<u8> = (1..=254u8).filter(|&v| counts[v as usize] > 0).collect();
    if classes.len() < 2 {
        return Err(bad(
            labels,
            "holds fewer than two classes (values 1..254); nothing to learn",
        ));
    }
    let mut index = [u8::MAX; 256];
    for (i, &c) in classes.iter().enumerate() {
        index[c as usize] = i as u8;
    }
    // Pass 2: sample pixels with probability samples_per_class / count.
    let prob: Vec<f64> = (0..256)
        .map(|v| (o.samples_per_class as f64 / counts[v].max(1) as f64).min(1.0))
        .collect();
    let parts = tl
        .par_iter()
        .map_init(
            || (RasterReader::open(stack), RasterReader::open(labels)),
            |(s, l), t| -> Result<Vec<(u64, u8, Vec<f32>)>> {
                let s = s.as_ref().map_err(|e| Error::Internal(e.to_string()))?;
                let l = l.as_ref().map_err(|e| Error::Internal(e.to_string()))?;
                let lab = label_bytes(&l.read_band(1, t.read, (t.read.width, t.read.height))?);
                let picks: Vec<(usize, usize)> = lab
                    .indexed_iter()
                    .filter(|&((r, c), &v)| {
                        v != 255
                            && unit(hash4(
                                o.seed,
                                0xC1A5,
                                (t.read.row + r) as u64,
                                (t.read.col + c) as u64,
                                0,
                            )) < prob[v as usize]
                    })
                    .map(|(rc, _)| rc)
                    .collect();
                if picks.is_empty() {
                    return Ok(Vec::new());
                }
                let x = s.read(&(1..=nf).collect::<Vec<_>>(), t.read)?;
                Ok(picks
                    .into_iter()
                    .filter_map(|(r, c)| {
                        let f: Vec<f32> = (0..nf).map(|j| x[[j, r, c]]).collect();
                        (!f.iter().any(|v| v.is_nan())).then(|| {
                            let key = ((t.read.row + r) * grid.width + t.read.col + c) as u64;
                            (key, index[lab[[r, c]] as usize], f)
                        })
                    })
                    .collect())
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let mut samples: Vec<(u64, u8, Vec<f32>)> = parts.into_iter().flatten().collect();
    samples.sort_unstable_by_key(|s| s.0);
    let k = classes.len();
    let mut per_class = vec![0usize; k];
    let mut x = Vec::with_capacity(samples.len() * nf);
    let mut y = Vec::with_capacity(samples.len());
    for (_, c, f) in samples {
        per_class[c as usize] += 1;
        x.extend(f);
        y.push(c);
    }
    let weights = crate::classic::forest::balanced_weights(&per_class);
    let forest = Forest::train(
        &x,
        &y,
        nf,
        k,
        &weights,
        &ForestParams {
            trees: o.trees,
            max_depth: o.max_depth,
            min_samples_leaf: o.min_samples_leaf,
            mtry: ((nf as f64).sqrt().round() as usize).clamp(1, nf),
            seed: o.seed,
        },
    );
    let train_seconds = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    const BLOCK: usize = 1024;
    let bands: Vec<usize> = (1..=nf).collect();
    let names = ["class", "confidence", "aleatoric", "epistemic", "total"];
    stream_tiles(
        stack,
        out,
        &grid,
        &names,
        255.0,
        o.output,
        0,
        |reader, t| {
            let x = reader.read_interleaved(&bands, t.read)?;
            let (h, w) = (t.read.height, t.read.width);
            let mut outb = Array3::<u8>::from_elem((5, h, w), 255);
            let mut probs = vec![0f32; BLOCK * k];
            let mut ent = vec![0f32; BLOCK];
            for (b0, chunk) in x.chunks(BLOCK * nf).enumerate() {
                let n = chunk.len() / nf;
                forest.predict_block(chunk, n, &mut probs, &mut ent);
                for i in 0..n {
                    if chunk[i * nf..(i + 1) * nf].iter().all(|v| v.is_nan()) {
                        continue;
                    }
                    let px = b0 * BLOCK + i;
                    let (r, c) = (px / w, px % w);
                    write_pixel(&mut outb, r, c, &classes, &probs[i * k..i * k + k], ent[i]);
                }
            }
            Ok(outb)
        },
    )?;
    Ok(ClassifyReport {
        classes,
        samples: per_class,
        train_seconds,
        predict_seconds: t1.elapsed().as_secs_f64(),
    })
}
