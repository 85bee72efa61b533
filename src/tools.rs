//! Standalone raster tools: one operation on any GeoTIFF, tiled, parallel and streamed to a
//! GeoTIFF (`geofuse texture`, `geofuse indices`). They mirror Orfeo ToolBox's
//! `HaralickTextureExtraction` and `RadiometricIndices` for users who need one stage, and they
//! are what `benches/peers/run.sh` times against OTB. The kernels are the pipeline's own
//! ([`crate::features`]); tiles carry a halo, so any tile size gives the same values.

use std::path::Path;

use ndarray::{s, Array3, ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::features::glcm::{glcm_features, quantise, Definitions, GlcmParams, FEATURE_NAMES};
use crate::features::indices::{index_bands, spectral_index};
use crate::io::reader::RasterReader;
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
/// which appears under its name only once complete. Tiles are written in tile order as they
/// complete ([`crate::tiler::ordered`]) and their blocks flushed after each
/// ([`StreamWriter::flush`]), so the file's layout (where each block lies) depends neither on
/// which worker finished first nor on GDAL's cache: the same inputs give the same bytes.
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
    T: crate::io::writer::Pixel + Send,
    F: Fn(&RasterReader, &crate::tiler::Tile) -> Result<Array3<T>> + Sync,
{
    let mut writer =
        StreamWriter::create_with::<T>(out, grid, names, Some(nodata), output.compression)?;
    let all = tiles(grid.width, grid.height, output.tile, halo);
    crate::tiler::ordered::in_order(
        all.len(),
        || RasterReader::open_direct(input),
        |reader, k| tile_fn(reader, &all[k]),
        |k, data| {
            writer.write(all[k].core.row, all[k].core.col, &data)?;
            writer.flush()
        },
    )?;
    writer.finish()?;
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
    let reader = RasterReader::open(input)?;
    let grid = reader.grid()?;
    let count = reader.band_count();
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
        None => reader.min_max(o.band)?,
    };
    if min.is_nan() || max.is_nan() || max < min {
        return Err(bad(
            input,
            format!("empty quantisation range [{min}, {max}]"),
        ));
    }
    drop(reader);
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
            let img = reader.read_band(o.band, t.read)?;
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
    let reader = RasterReader::open(input)?;
    let (grid, count) = (reader.grid()?, reader.band_count());
    drop(reader);
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
                    crate::features::indices::INDICES
                        .iter()
                        .map(|i| i.name)
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
    /// Gradient-boosted trees with these settings instead of the random forest.
    pub boosted: Option<crate::config::BoostedSettings>,
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
    /// Seconds spent reading the labels and drawing the training samples from the stack.
    pub sample_seconds: f64,
    /// Seconds spent training the model on the samples in memory.
    pub train_seconds: f64,
    /// Seconds spent predicting and writing.
    pub predict_seconds: f64,
}

/// Label values present in `labels` (1..=254; 0, 255, nodata and NaN are unlabelled) and
/// their pixel counts.
fn label_classes(labels: &Path, tl: &[crate::tiler::Tile]) -> Result<(Vec<u8>, Vec<u64>)> {
    let counts = tl
        .par_iter()
        .map_init(
            || RasterReader::open(labels),
            |r, t| -> Result<[u64; 256]> {
                let r = r.as_ref().map_err(Clone::clone)?;
                let mut c = [0u64; 256];
                for &v in r.read_band(1, t.read)?.iter() {
                    if (1.0..=254.0).contains(&v) {
                        c[v as usize] += 1;
                    }
                }
                Ok(c)
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let total = counts.iter().fold([0u64; 256], |mut a, b| {
        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        a
    });
    let classes: Vec<u8> = (1..=254u8).filter(|&v| total[v as usize] > 0).collect();
    if classes.len() < 2 {
        return Err(bad(
            labels,
            "holds fewer than two classes (values 1..254); nothing to learn",
        ));
    }
    let counts = classes.iter().map(|&c| total[c as usize]).collect();
    Ok((classes, counts))
}

/// Training pixels of a stack: every labelled pixel with probability samples_per_class /
/// class count (the pipeline's coordinate hash), sorted by pixel index.
fn stack_samples(
    stack: &Path,
    labels: &Path,
    grid: &crate::raster::Grid,
    (classes, counts): (&[u8], &[u64]),
    tl: &[crate::tiler::Tile],
    o: &ClassifyOptions,
) -> Result<crate::classic::TrainingSet> {
    use crate::eval::{class_index, split::sampled};
    let nf = RasterReader::open(stack)?.band_count();
    let rates: Vec<f64> = counts
        .iter()
        .map(|&c| (o.samples_per_class as f64 / c.max(1) as f64).min(1.0))
        .collect();
    let bands: Vec<usize> = (1..=nf).collect();
    type Sample = (usize, u8, Vec<f32>);
    let parts = tl
        .par_iter()
        .map_init(
            || (RasterReader::open(stack), RasterReader::open(labels)),
            |(s, l), t| -> Result<Vec<Sample>> {
                let s = s.as_ref().map_err(Clone::clone)?;
                let l = l.as_ref().map_err(Clone::clone)?;
                let lab = l.read_band(1, t.read)?;
                let picks: Vec<(usize, usize, usize)> = lab
                    .indexed_iter()
                    .filter_map(|((r, c), &v)| {
                        let ci = class_index(classes, v)?;
                        let (row, col) = (t.read.row + r, t.read.col + c);
                        sampled(o.seed, row, col, rates[ci]).then_some((r, c, ci))
                    })
                    .collect();
                if picks.is_empty() {
                    return Ok(Vec::new());
                }
                let x = s.read(&bands, t.read)?;
                Ok(picks
                    .into_iter()
                    .map(|(r, c, ci)| {
                        let f: Vec<f32> = (0..nf).map(|j| x[[j, r, c]]).collect();
                        ((t.read.row + r) * grid.width + t.read.col + c, ci as u8, f)
                    })
                    .collect())
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let samples: Vec<Sample> = parts.into_iter().flatten().collect();
    Ok(crate::classic::TrainingSet::from_samples(
        samples,
        nf,
        classes.len(),
    ))
}

/// Trains a random forest (or boosted trees) on `labels` and writes, for every pixel of the feature `stack`, the
/// product bands of [`crate::product`] (class, confidence, aleatoric, epistemic, total,
/// modalities), like Orfeo ToolBox's TrainImagesClassifier + ImageClassifier with
/// `-confmap`. Training pixels are drawn per class by the pipeline's coordinate hash
/// (deterministic), with its class weights; prediction is the pipeline's hand-crafted
/// prediction (`crate::classic::method::predict_stack`). A plain stack has no optical/SAR
/// split: `modalities` is 3 where any band holds a value, 0 (nodata) elsewhere.
pub fn classify(
    stack: &Path,
    labels: &Path,
    out: &Path,
    o: &ClassifyOptions,
) -> Result<ClassifyReport> {
    use crate::classic::{Forest, StackClassifier};
    let t0 = std::time::Instant::now();
    let sr = RasterReader::open(stack)?;
    let grid = sr.grid()?;
    let nf = sr.band_count();
    drop(sr);
    let lgrid = RasterReader::open(labels)?.grid()?;
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
    let (classes, counts) = label_classes(labels, &tl)?;
    let data = stack_samples(stack, labels, &grid, (&classes, &counts), &tl, o)?;
    let settings = crate::config::ForestSettings {
        trees: o.trees,
        max_depth: o.max_depth,
        min_samples_leaf: o.min_samples_leaf,
        features_per_split: None,
    };
    let t_fit = std::time::Instant::now();
    let (train_seconds, t1) = match &o.boosted {
        None => {
            let forest = Forest::fit(&settings, &data, o.seed);
            let t1 = std::time::Instant::now();
            write_classified(stack, out, &grid, nf, &classes, &forest, o)?;
            (t1 - t_fit, t1)
        }
        Some(b) => {
            let model = crate::classic::Boosted::fit(b, &data, o.seed);
            let t1 = std::time::Instant::now();
            write_classified(stack, out, &grid, nf, &classes, &model, o)?;
            (t1 - t_fit, t1)
        }
    };
    Ok(ClassifyReport {
        classes,
        samples: data.per_class,
        sample_seconds: (t_fit - t0).as_secs_f64(),
        train_seconds: train_seconds.as_secs_f64(),
        predict_seconds: t1.elapsed().as_secs_f64(),
    })
}

/// Predicts every pixel of `stack` with `model` and streams the product bands to `out`.
fn write_classified<C: crate::classic::StackClassifier>(
    stack: &Path,
    out: &Path,
    grid: &crate::raster::Grid,
    nf: usize,
    classes: &[u8],
    model: &C,
    o: &ClassifyOptions,
) -> Result<()> {
    use crate::product::{modality_bits, ProductBand};
    let bands: Vec<usize> = (1..=nf).collect();
    let names: Vec<&str> = ProductBand::ALL.iter().map(|b| b.name()).collect();
    stream_tiles(
        stack,
        out,
        grid,
        &names,
        crate::product::NODATA as f64,
        o.output,
        0,
        |reader, t| {
            let x = reader.read_interleaved(&bands, t.read)?;
            let (h, w) = (t.read.height, t.read.width);
            let m = ndarray::Array2::from_shape_fn((h, w), |(r, c)| {
                let px = &x[(r * w + c) * nf..(r * w + c + 1) * nf];
                let any = px.iter().any(|v| !v.is_nan());
                modality_bits(any, any)
            });
            let p = crate::classic::method::predict_interleaved(model, classes.len(), &x, nf, m);
            Ok(p.to_tile(classes).0 .0)
        },
    )
}
