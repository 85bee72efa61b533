//! The `handcrafted` method on one scene: features → random forest → product.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array2, Array3};
use rayon::prelude::*;

use crate::classic::{Forest, ForestParams, HandcraftedModel, MODEL_FORMAT};
use crate::config::{GlcmConfig, MethodDef, Pipeline, SarUnit};
use crate::error::{lock, Error, Result};
use crate::eval::calibration::UncertaintyStats;
use crate::eval::metrics::Confusion;
use crate::eval::split::{sampled, BlockSplit};
use crate::features::{FeaturePlan, GlcmSource};
use crate::io::reader::{percentile, RasterReader};
use crate::io::writer::{ByteBand, ProductSpec, ProductWriter};
use crate::pipeline::scene::{SceneReader, SceneSources};
use crate::pipeline::{require_labels, scene_split, Log};
use crate::tiler::{tiles, Tile};
use crate::uncertainty::{write_pixel, BYTE_SCALE};

/// What one method run produced.
#[derive(Debug, Clone)]
pub struct MethodOutcome {
    /// Product COG.
    pub product: PathBuf,
    /// Model file and hash.
    pub model: PathBuf,
    /// Model hash.
    pub model_hash: String,
    /// Held-out confusion matrix (None without labels).
    pub confusion: Option<Confusion>,
    /// Held-out uncertainty statistics (None without labels).
    pub uncertainty: Option<UncertaintyStats>,
    /// Held-out ECE of the uncalibrated probabilities (learned methods).
    pub ece_uncalibrated: Option<f64>,
    /// Fitted softmax temperature (learned methods).
    pub temperature: Option<f64>,
    /// Training samples per class.
    pub samples_per_class: Vec<usize>,
    /// (train, test) block counts.
    pub blocks: (usize, usize),
    /// Wall seconds of the prediction pass (features + forest + writing).
    pub predict_seconds: f64,
    /// Wall seconds in total (including training).
    pub seconds: f64,
}

/// Adds a held-out pixel of a product tile (`[6, row, col]` bytes) to uncertainty statistics.
pub fn add_product_pixel(
    stats: &mut UncertaintyStats,
    bands: &Array3<u8>,
    r: usize,
    c: usize,
    correct: bool,
) {
    let confidence = (bands[[1, r, c]] as f64 * BYTE_SCALE) as f32;
    stats.add(
        confidence,
        correct,
        bands[[4, r, c]],
        bands[[3, r, c]],
        bands[[5, r, c]],
    );
}

/// Product band layout (DESIGN.md product contract).
pub fn product_bands(n_classes: usize) -> Vec<ByteBand> {
    let u = |name: &str, what: &str| ByteBand {
        name: name.into(),
        description: format!("{name}: {what}; physical = value x {BYTE_SCALE}, 0..1"),
        scale: BYTE_SCALE,
        offset: 0.0,
    };
    vec![
        ByteBand {
            name: "class".into(),
            description: "class: class id (see category names); 255 = nodata".into(),
            scale: 1.0,
            offset: 0.0,
        },
        u("confidence", "max class probability"),
        u(
            "aleatoric",
            &format!("aleatoric uncertainty, mean per-member entropy / ln {n_classes}"),
        ),
        u(
            "epistemic",
            &format!("epistemic uncertainty, mutual information / ln {n_classes}"),
        ),
        u(
            "total",
            &format!("total uncertainty, entropy of the mean / ln {n_classes}"),
        ),
        ByteBand {
            name: "modalities".into(),
            description: "modalities: bit 1 optical present, bit 2 SAR present".into(),
            scale: 1.0,
            offset: 0.0,
        },
    ]
}

/// Quantisation range of each GLCM block, from the pipeline (`fixed`) or from scene
/// percentiles of a decimated read (`percentile`).
pub fn glcm_ranges(src: &SceneSources, glcm: &[GlcmConfig]) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for g in glcm {
        if g.quantisation == "fixed" {
            out.push((g.min.unwrap_or(0.0), g.max.unwrap_or(1.0)));
            continue;
        }
        let source = GlcmSource::resolve(&g.band, &src.optical_bands)
            .ok_or_else(|| Error::input(&src.optical, format!("GLCM band {} not found", g.band)))?;
        let (path, band, to_db) = match source {
            GlcmSource::Optical(i) => (&src.optical, i + 1, false),
            GlcmSource::Vv => (&src.sar, src.sar_bands[0], src.sar_unit == SarUnit::Linear),
            GlcmSource::Vh => (&src.sar, src.sar_bands[1], src.sar_unit == SarUnit::Linear),
        };
        let r = RasterReader::open(path)?;
        let mut v = r.sample(band, 1024)?;
        if to_db {
            v = v
                .into_iter()
                .map(crate::features::sar::linear_to_db)
                .filter(|x| !x.is_nan())
                .collect();
        }
        let lo = percentile(&v, g.percentiles[0]).ok_or_else(|| {
            Error::input(
                path,
                format!("band {band} has no valid pixel for GLCM quantisation"),
            )
        })?;
        let mut hi = percentile(&v, g.percentiles[1]).unwrap_or(lo + 1.0);
        if hi <= lo {
            hi = lo + 1.0;
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// The feature plan of a scene, with GLCM quantisation ranges taken from the scene.
pub fn scene_plan(p: &Pipeline, src: &SceneSources) -> Result<FeaturePlan> {
    let ranges = glcm_ranges(src, &p.features.glcm)?;
    Ok(FeaturePlan::new(
        &p.features,
        &src.optical_bands,
        src.scale,
        src.offset,
        &ranges,
    ))
}

/// Features of one tile, cropped to its core: `[feature, row, col]`.
fn tile_features(
    reader: &SceneReader,
    plan: &FeaturePlan,
    t: &Tile,
) -> Result<(Array3<f32>, Option<Array2<f32>>)> {
    let data = reader.read(t.read)?;
    let stack = plan.compute(&data.inputs);
    let (r0, c0) = t.core_offset();
    let core = crate::features::crop(&stack, r0, c0, t.core.height, t.core.width);
    let labels = data.labels.map(|l| {
        l.slice(ndarray::s![r0..r0 + t.core.height, c0..c0 + t.core.width])
            .to_owned()
    });
    Ok((core, labels))
}

/// Class index of a label value, if it is in the class table.
fn class_index(ids: &[u8], v: f32) -> Option<usize> {
    if v.is_nan() || !(0.0..=255.0).contains(&v) {
        return None;
    }
    ids.iter().position(|&id| id as f32 == v)
}

/// Trains the forest on pixels of the training blocks (deterministic sampling).
fn train(
    p: &Pipeline,
    src: &SceneSources,
    method: &MethodDef,
    plan: &FeaturePlan,
    tiles: &[Tile],
    split: &BlockSplit,
    log: &Log,
) -> Result<HandcraftedModel> {
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let k = ids.len();
    // Pass 0: training pixels per class (labels only).
    let counts = tiles
        .par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, t| -> Result<Vec<usize>> {
                let reader = reader
                    .as_ref()
                    .map_err(|e| Error::Internal(format!("{e}")))?;
                let mut c = vec![0usize; k];
                if let Some(l) = reader.read_labels(t.core)? {
                    for ((r, col), &v) in l.indexed_iter() {
                        if let Some(ci) = class_index(&ids, v) {
                            if !split.is_test(t.core.row + r, t.core.col + col) {
                                c[ci] += 1;
                            }
                        }
                    }
                }
                Ok(c)
            },
        )
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .fold(vec![0usize; k], |mut a, c| {
            a.iter_mut().zip(c).for_each(|(x, y)| *x += y);
            a
        });
    let present = counts.iter().filter(|&&c| c > 0).count();
    if present < 2 {
        return Err(Error::input(
            src.labels.clone().unwrap_or_default(),
            format!(
                "the training blocks hold labels of {present} class(es) from the class table (ids {:?}); check that label values match `classes` ids",
                ids
            ),
        ));
    }
    let cap = p.split.samples_per_class as f64;
    let rates: Vec<f64> = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                (cap / c as f64).min(1.0)
            }
        })
        .collect();
    let nf = plan.names.len();
    let done = log.progress("training samples", tiles.len());
    // Samples carry their pixel index and are sorted by it, so the training set (and hence
    // the forest) does not depend on the tile size or on the order in which tiles finish.
    let parts = tiles
        .par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, t| -> Result<Vec<(usize, u8, Vec<f32>)>> {
                let reader = reader
                    .as_ref()
                    .map_err(|e| Error::Internal(format!("{e}")))?;
                let mut samples = Vec::new();
                // Skip tiles without any sampled training pixel before computing features.
                let Some(labels) = reader.read_labels(t.core)? else {
                    return Ok(samples);
                };
                let mut picks = Vec::new();
                for ((r, c), &v) in labels.indexed_iter() {
                    let (row, col) = (t.core.row + r, t.core.col + c);
                    if let Some(ci) = class_index(&ids, v) {
                        if !split.is_test(row, col) && sampled(p.seed, row, col, rates[ci]) {
                            picks.push((r, c, ci));
                        }
                    }
                }
                if !picks.is_empty() {
                    let (f, _) = tile_features(reader, plan, t)?;
                    for (r, c, ci) in picks {
                        let pixel = (t.core.row + r) * src.grid.width + t.core.col + c;
                        samples.push((pixel, ci as u8, (0..nf).map(|j| f[[j, r, c]]).collect()));
                    }
                }
                done.tick();
                Ok(samples)
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let mut samples: Vec<(usize, u8, Vec<f32>)> = parts.into_iter().flatten().collect();
    samples.sort_unstable_by_key(|s| s.0);
    let mut x = Vec::with_capacity(samples.len() * nf);
    let mut y = Vec::with_capacity(samples.len());
    for (_, c, f) in samples {
        x.extend(f);
        y.push(c);
    }
    let mut per_class = vec![0usize; k];
    y.iter().for_each(|&c| per_class[c as usize] += 1);
    let weights = crate::classic::forest::balanced_weights(&per_class);
    let params = ForestParams {
        trees: method.trees,
        max_depth: method.max_depth,
        min_samples_leaf: method.min_samples_leaf,
        mtry: method
            .features_per_split
            .unwrap_or(((nf as f64).sqrt().round() as usize).max(1))
            .min(nf),
        seed: p.seed,
    };
    log.info(&format!(
        "  training {} trees on {} samples x {nf} features (per class {:?})",
        params.trees,
        y.len(),
        per_class
    ));
    let forest = Forest::train(&x, &y, nf, k, &weights, &params);
    Ok(HandcraftedModel {
        format: MODEL_FORMAT.into(),
        geofuse_version: env!("CARGO_PKG_VERSION").into(),
        feature_names: plan.names.clone(),
        classes: p.classes.clone(),
        glcm_ranges: plan.glcm_blocks().iter().map(|g| g.range).collect(),
        samples_per_class: per_class,
        class_weights: weights,
        forest,
    })
}

/// Per-pixel prediction of one tile core: product bands `[6, row, col]`.
pub fn predict_tile(
    model: &HandcraftedModel,
    features: &Array3<f32>,
    optical_mask: &[bool],
) -> Array3<u8> {
    const BLOCK: usize = 1024;
    let (nf, h, w) = features.dim();
    let k = model.classes.len();
    let ids: Vec<u8> = model.classes.iter().map(|c| c.id).collect();
    let mut out = Array3::<u8>::from_elem((6, h, w), 255);
    // Gather pixels with at least one modality, then predict them in blocks (tree-major).
    let mut pixels: Vec<(usize, usize, u8)> = Vec::with_capacity(h * w);
    for r in 0..h {
        for c in 0..w {
            let (mut opt, mut sar) = (false, false);
            for (j, &is_opt) in optical_mask.iter().enumerate() {
                if !features[[j, r, c]].is_nan() {
                    if is_opt {
                        opt = true
                    } else {
                        sar = true
                    }
                }
            }
            let modalities = opt as u8 | (sar as u8) << 1;
            if modalities == 0 {
                out[[5, r, c]] = 0;
            } else {
                pixels.push((r, c, modalities));
            }
        }
    }
    let mut x = vec![0f32; BLOCK * nf];
    let mut probs = vec![0f32; BLOCK * k];
    let mut ent = vec![0f32; BLOCK];
    for chunk in pixels.chunks(BLOCK) {
        for (s, &(r, c, _)) in chunk.iter().enumerate() {
            for j in 0..nf {
                x[s * nf + j] = features[[j, r, c]];
            }
        }
        model
            .forest
            .predict_block(&x, chunk.len(), &mut probs, &mut ent);
        for (s, &(r, c, modalities)) in chunk.iter().enumerate() {
            write_pixel(&mut out, r, c, &ids, &probs[s * k..s * k + k], ent[s]);
            out[[5, r, c]] = modalities;
        }
    }
    out
}

/// Trains the forest of a hand-crafted method on a scene's training blocks and saves it as
/// `<scene_out>/<method>.model`; returns the model, its path and hash.
pub fn train_handcrafted(
    p: &Pipeline,
    src: &SceneSources,
    method: &MethodDef,
    scene_out: &Path,
    log: &Log,
) -> Result<(HandcraftedModel, PathBuf, String)> {
    let g = &src.grid;
    require_labels(method, src)?;
    let split = scene_split(p, src);
    let plan = scene_plan(p, src)?;
    let tl = tiles(g.width, g.height, p.tiling.tile_size, plan.halo);
    let m = train(p, src, method, &plan, &tl, &split, log)?;
    std::fs::create_dir_all(scene_out)
        .map_err(|e| Error::io(scene_out, "create scene folder", e))?;
    let path = scene_out.join(format!("{}.model", method.name));
    let h = m.save(&path)?;
    Ok((m, path, h))
}

/// Runs the hand-crafted method on one scene, writing `<scene_out>/<method>.tif`.
#[allow(clippy::too_many_arguments)]
pub fn run_handcrafted(
    p: &Pipeline,
    src: &SceneSources,
    method: &MethodDef,
    scene_out: &Path,
    metadata: Vec<(String, String)>,
    log: &Log,
) -> Result<MethodOutcome> {
    let t0 = Instant::now();
    let g = &src.grid;
    let split = scene_split(p, src);
    let (model, model_path, model_hash) = match &method.model {
        Some(path) => {
            let (m, h) = HandcraftedModel::load(path)?;
            (m, path.clone(), h)
        }
        None => train_handcrafted(p, src, method, scene_out, log)?,
    };
    let plan = FeaturePlan::new(
        &p.features,
        &src.optical_bands,
        src.scale,
        src.offset,
        &model.glcm_ranges,
    );
    model.check_compatible(&model_path, &plan.names, &p.classes)?;
    let optical_mask = plan.optical_feature_mask();
    let tl = tiles(g.width, g.height, p.tiling.tile_size, plan.halo);
    let final_path = scene_out.join(format!("{}.tif", method.name));
    let mut md = metadata;
    md.push(("GEOFUSE_MODEL_HASH".into(), model_hash.clone()));
    md.push(("GEOFUSE_FEATURES".into(), plan.names.join(",")));
    let spec = ProductSpec {
        grid: g.clone(),
        bands: product_bands(p.classes.len()),
        classes: p.classes.clone(),
        metadata: md,
        nodata: 255,
    };
    let writer = ProductWriter::create(&final_path, &spec)?;
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let k = ids.len();
    let t1 = Instant::now();
    let done = log.progress("predicting", tl.len());
    let confusions = tl
        .par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, t| -> Result<(Confusion, UncertaintyStats)> {
                let reader = reader
                    .as_ref()
                    .map_err(|e| Error::Internal(format!("{e}")))?;
                let (f, labels) = tile_features(reader, &plan, t)?;
                let bands = predict_tile(&model, &f, &optical_mask);
                writer.write_core(t.core, &bands)?;
                let mut conf = Confusion::new(k);
                let mut stats = UncertaintyStats::default();
                if let Some(l) = labels {
                    for ((r, c), &v) in l.indexed_iter() {
                        let pred = bands[[0, r, c]];
                        if pred == 255 || !split.is_test(t.core.row + r, t.core.col + c) {
                            continue;
                        }
                        if let (Some(ri), Some(pi)) =
                            (class_index(&ids, v), ids.iter().position(|&id| id == pred))
                        {
                            conf.add(ri, pi);
                            add_product_pixel(&mut stats, &bands, r, c, ri == pi);
                        }
                    }
                }
                done.tick();
                Ok((conf, stats))
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let product = writer.finish()?;
    let predict_seconds = t1.elapsed().as_secs_f64();
    let (confusion, uncertainty) = match src.labels {
        Some(_) => {
            let mut c = Confusion::new(k);
            let mut u = UncertaintyStats::default();
            for (x, y) in &confusions {
                c.merge(x);
                u.merge(y);
            }
            (Some(c), Some(u))
        }
        None => (None, None),
    };
    Ok(MethodOutcome {
        product,
        model: model_path,
        model_hash,
        confusion,
        uncertainty,
        ece_uncalibrated: None,
        temperature: None,
        samples_per_class: model.samples_per_class.clone(),
        blocks: split.counts(),
        predict_seconds,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Computes the feature stack of every tile of a scene (in parallel, one set of readers per
/// worker) and hands each tile core to `sink`. Returns the feature names.
fn for_each_tile_features<F>(
    p: &Pipeline,
    src: &SceneSources,
    tile_size: usize,
    sink: F,
) -> Result<Vec<String>>
where
    F: Fn(&Tile, Array3<f32>) -> Result<()> + Sync,
{
    let plan = scene_plan(p, src)?;
    let g = &src.grid;
    tiles(g.width, g.height, tile_size, plan.halo)
        .par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, t| -> Result<()> {
                let reader = reader
                    .as_ref()
                    .map_err(|e| Error::Internal(format!("{e}")))?;
                sink(t, tile_features(reader, &plan, t)?.0)
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok(plan.names)
}

/// Computes the full feature stack of a scene in memory (small scenes and tests):
/// `[feature, row, col]` with NaN where missing. [`write_scene_features`] streams instead.
pub fn scene_features(
    p: &Pipeline,
    src: &SceneSources,
    tile_size: usize,
) -> Result<(Vec<String>, Array3<f32>)> {
    let g = &src.grid;
    let out = std::sync::Mutex::new(None::<Array3<f32>>);
    let names = for_each_tile_features(p, src, tile_size, |t, f| {
        let mut guard = lock(&out)?;
        let stack =
            guard.get_or_insert_with(|| Array3::<f32>::zeros((f.shape()[0], g.height, g.width)));
        let c = t.core;
        stack
            .slice_mut(ndarray::s![
                ..,
                c.row..c.row + c.height,
                c.col..c.col + c.width
            ])
            .assign(&f);
        Ok(())
    })?;
    let stack = out
        .into_inner()
        .map_err(|_| Error::Internal("lock poisoned".into()))?;
    Ok((
        names,
        stack.unwrap_or_else(|| Array3::zeros((0, g.height, g.width))),
    ))
}

/// Streams the feature stack of a scene to a Float32 GeoTIFF at `out` (nodata `nodata`,
/// band descriptions = feature names), tile by tile: memory is bounded by the tile size and
/// worker count. Returns the feature names.
pub fn write_scene_features(
    p: &Pipeline,
    src: &SceneSources,
    out: &Path,
    nodata: f32,
) -> Result<Vec<String>> {
    let names = scene_plan(p, src)?.names;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let writer = std::sync::Mutex::new(crate::io::writer::StreamWriter::create::<f32>(
        out,
        &src.grid,
        &refs,
        Some(nodata as f64),
    )?);
    for_each_tile_features(p, src, p.tiling.tile_size, |t, f| {
        lock(&writer)?.write(
            t.core.row,
            t.core.col,
            &f.mapv(|v| if v.is_nan() { nodata } else { v }),
        )
    })?;
    writer
        .into_inner()
        .map_err(|_| Error::Internal("lock poisoned".into()))?
        .finish()?;
    Ok(names)
}
