//! Learned methods on one scene: patches from training blocks → network → tiled product.

use std::path::Path;
use std::time::Instant;

use ndarray::{s, Array2, Array3, Axis};
use rayon::prelude::*;

use crate::config::{MethodDef, Pipeline};
use crate::error::{Error, Result};
use crate::eval::calibration::UncertaintyStats;
use crate::eval::metrics::Confusion;
use crate::eval::split::BlockSplit;
use crate::features::sar::linear_to_db;
use crate::features::FeaturePlan;
use crate::io::writer::{ProductSpec, ProductWriter};
use crate::learned::{
    Fusion, LearnedModel, NetSpec, Patch, Runtime, TrainConfig, N_OPT, RAW_BANDS,
};
use crate::pipeline::handcrafted::scene_plan;
use crate::pipeline::handcrafted::{add_product_pixel, product_bands, MethodOutcome};
use crate::pipeline::scene::{SceneReader, SceneSources};
use crate::pipeline::{require_labels, scene_split, Log};
use crate::raster::Window;
use crate::rng::{hash4, unit, Rng};
use crate::tiler::tiles;
use crate::uncertainty::write_pixel;

/// Raw bands of a window and its labels: 10 reflectances, VV and VH in dB (NaN = missing),
/// then, for hybrid models, the hand-crafted features of `hybrid` (optical ones, then SAR ones),
/// computed on the window grown by the features' own halo so they do not depend on tiling.
pub fn raw_window(
    reader: &SceneReader,
    src: &SceneSources,
    win: Window,
    hybrid: Option<&FeaturePlan>,
) -> Result<(Array3<f32>, Option<Array2<f32>>)> {
    let g = &src.grid;
    let halo = hybrid.map_or(0, |pl| pl.halo);
    let (r0, c0) = (win.row.saturating_sub(halo), win.col.saturating_sub(halo));
    let (r1, c1) = (
        (win.row + win.height + halo).min(g.height),
        (win.col + win.width + halo).min(g.width),
    );
    let read = Window {
        col: c0,
        row: r0,
        width: c1 - c0,
        height: r1 - r0,
    };
    let (dr, dc) = (win.row - r0, win.col - c0);
    let data = reader.read(read)?;
    let t = &data.inputs;
    let crop = |a: &Array3<f32>| {
        a.slice(s![.., dr..dr + win.height, dc..dc + win.width])
            .to_owned()
    };
    let (scale, offset) = (src.scale as f32, src.offset as f32);
    let mut parts = vec![
        crop(&t.optical_dn.mapv(|v| v * scale + offset)),
        crop(&t.sar_linear.mapv(linear_to_db)),
    ];
    if let Some(plan) = hybrid {
        let f = crop(&plan.compute(t));
        let mask = plan.optical_feature_mask();
        let opt: Vec<usize> = (0..mask.len()).filter(|&i| mask[i]).collect();
        let sar: Vec<usize> = (0..mask.len()).filter(|&i| !mask[i]).collect();
        parts.push(f.select(Axis(0), &opt));
        parts.push(f.select(Axis(0), &sar));
    }
    let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
    let raw = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Internal(e.to_string()))?;
    let labels = data.labels.map(|l| {
        l.slice(s![dr..dr + win.height, dc..dc + win.width])
            .to_owned()
    });
    Ok((raw, labels))
}

/// Hand-crafted feature names in the order a hybrid model takes them (optical, then SAR).
fn hybrid_names(plan: &FeaturePlan) -> (Vec<String>, usize, usize) {
    let mask = plan.optical_feature_mask();
    let opt: Vec<String> = plan
        .names
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| m)
        .map(|(n, _)| n.clone())
        .collect();
    let sar: Vec<String> = plan
        .names
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| !m)
        .map(|(n, _)| n.clone())
        .collect();
    let (eo, es) = (opt.len(), sar.len());
    (opt.into_iter().chain(sar).collect(), eo, es)
}

fn class_index(ids: &[u8], v: f32) -> i64 {
    if v.is_nan() {
        return -1;
    }
    ids.iter()
        .position(|&id| id as f32 == v)
        .map_or(-1, |i| i as i64)
}

/// Whether a training block is held out for validation (early stopping).
fn is_validation_block(seed: u64, block: usize, row: usize, col: usize) -> bool {
    unit(hash4(
        seed,
        0x7A1,
        (row / block) as u64,
        (col / block) as u64,
        0,
    )) < 0.2
}

/// Samples `n` patch windows lying entirely inside training blocks of the requested group
/// (validation or not), deterministically from `seed`.
fn patch_windows(
    src: &SceneSources,
    split: &BlockSplit,
    block: usize,
    patch: usize,
    n: usize,
    validation: bool,
    seed: u64,
) -> Vec<Window> {
    let g = &src.grid;
    let (bx, by) = (g.width / block, g.height / block);
    let mut blocks = Vec::new();
    for j in 0..by {
        for i in 0..bx {
            let (r, c) = (j * block, i * block);
            if !split.is_test(r, c) && is_validation_block(seed, block, r, c) == validation {
                blocks.push((r, c));
            }
        }
    }
    if blocks.is_empty() {
        return Vec::new();
    }
    let mut rng = Rng::new(seed ^ if validation { 0x7A11 } else { 0x7A12 });
    (0..n)
        .map(|_| {
            let (r, c) = blocks[rng.below(blocks.len())];
            let room = block - patch;
            Window {
                row: r + rng.below(room + 1),
                col: c + rng.below(room + 1),
                width: patch,
                height: patch,
            }
        })
        .collect()
}

fn read_patches(
    src: &SceneSources,
    ids: &[u8],
    wins: &[Window],
    hybrid: Option<&FeaturePlan>,
) -> Result<Vec<Patch>> {
    wins.par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, w| -> Result<Patch> {
                let reader = reader
                    .as_ref()
                    .map_err(|e| Error::Internal(format!("{e}")))?;
                let (raw, labels) = raw_window(reader, src, *w, hybrid)?;
                let labels = labels
                    .map(|l| l.mapv(|v| class_index(ids, v)))
                    .unwrap_or_else(|| Array2::from_elem((w.height, w.width), -1));
                Ok(Patch { raw, labels })
            },
        )
        .collect()
}

/// Trains a learned method on a scene's training blocks and saves it as
/// `<scene_out>/<method>.bpk` + `.json`; returns the model, its path stem and hash.
pub fn train_learned(
    p: &Pipeline,
    src: &SceneSources,
    method: &MethodDef,
    scene_out: &Path,
    runtime: &Runtime,
    log: &Log,
) -> Result<(LearnedModel, std::path::PathBuf, String)> {
    let g = &src.grid;
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let k = ids.len();
    let block = p.split.block_size;
    let split = scene_split(p, src);
    let model_path = scene_out.join(&method.name);
    std::fs::create_dir_all(scene_out)
        .map_err(|e| Error::io(scene_out, "create scene folder", e))?;
    require_labels(method, src)?;
    let patch = method.patch.min(block).min(g.width).min(g.height);
    let train_w = patch_windows(src, &split, block, patch, method.patches, false, p.seed);
    let mut val_w = patch_windows(
        src,
        &split,
        block,
        patch,
        (method.patches / 4).max(8),
        true,
        p.seed,
    );
    if val_w.is_empty() {
        // Too few blocks for a separate validation group: validate on training blocks.
        val_w = patch_windows(
            src,
            &split,
            block,
            patch,
            (method.patches / 4).max(8),
            false,
            p.seed ^ 1,
        );
    }
    if train_w.is_empty() {
        return Err(Error::config(&src.optical, format!("scene `{}` has no training block of {block} px that fits a patch; lower `split.block_size`", src.name)));
    }
    let plan = if method.hybrid {
        Some(scene_plan(p, src)?)
    } else {
        None
    };
    let (hybrid_features, extra_opt, extra_sar) =
        plan.as_ref().map_or((Vec::new(), 0, 0), hybrid_names);
    let train = read_patches(src, &ids, &train_w, plan.as_ref())?;
    let val = read_patches(src, &ids, &val_w, plan.as_ref())?;
    let fusion = Fusion::from_name(method.fusion())
        .ok_or_else(|| Error::Internal(format!("fusion {}", method.fusion())))?;
    let config = TrainConfig {
        spec: NetSpec {
            fusion,
            width: method.width,
            kernel: method.kernel,
            classes: k,
            extra_opt,
            extra_sar,
        },
        epochs: method.epochs,
        patience: method.patience,
        batch: method.batch,
        learning_rate: method.learning_rate,
        modality_dropout: method.modality_dropout,
        dropout: method.dropout,
        mc_passes: method.mc_passes,
        seed: p.seed,
    };
    log.info(&format!(
        "  training {} on {} ({} + {} patches of {patch} px)",
        method.fusion(),
        runtime.name,
        train.len(),
        val.len()
    ));
    let bar = log.progress_in("training", config.epochs, "epochs");
    let m = LearnedModel::train(
        runtime,
        &config,
        &p.classes,
        &src.optical_bands,
        &train,
        &val,
        |_, loss, miou| {
            bar.step(&format!("loss {loss:.4}, validation mIoU {miou:.3}"));
        },
    )?;
    log.info(&format!(
        "  kept epoch {} (validation mIoU {:.3})",
        m.meta.report.best_epoch, m.meta.report.best_val_miou
    ));
    let mut m = m;
    m.meta.hybrid_features = hybrid_features;
    m.meta.glcm_ranges = plan
        .map(|pl| pl.glcm_blocks().iter().map(|b| b.range).collect())
        .unwrap_or_default();
    let h = m.save(&model_path)?;
    Ok((m, model_path, h))
}

/// Runs a learned method on one scene, writing `<scene_out>/<method>.tif`.
pub fn run_learned(
    p: &Pipeline,
    src: &SceneSources,
    method: &MethodDef,
    scene_out: &Path,
    metadata: Vec<(String, String)>,
    runtime: &Runtime,
    log: &Log,
) -> Result<MethodOutcome> {
    let t0 = Instant::now();
    let g = &src.grid;
    if src.optical_bands.len() != N_OPT {
        return Err(Error::config(
            &src.optical,
            format!("learned methods need 10 optical bands (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12); scene `{}` has {}", src.name, src.optical_bands.len()),
        ));
    }
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let k = ids.len();
    let split = scene_split(p, src);
    let model_path = scene_out.join(&method.name);
    let (model, model_hash) = match &method.model {
        Some(path) => {
            let (m, h) = LearnedModel::load(path, runtime)?;
            let same = m
                .meta
                .classes
                .iter()
                .map(|c| (c.id, &c.name))
                .eq(p.classes.iter().map(|c| (c.id, &c.name)));
            if !same || m.meta.optical_bands != src.optical_bands {
                return Err(Error::Model {
                    path: path.clone(),
                    msg: format!(
                        "it was trained on bands {:?} and classes {:?}; the scene has bands {:?} and the pipeline classes {:?}; retrain it or fix the pipeline",
                        m.meta.optical_bands,
                        m.meta.classes.iter().map(|c| &c.name).collect::<Vec<_>>(),
                        src.optical_bands,
                        p.classes.iter().map(|c| &c.name).collect::<Vec<_>>()
                    ),
                });
            }
            (m, h)
        }
        None => {
            let (m, _, h) = train_learned(p, src, method, scene_out, runtime, log)?;
            (m, h)
        }
    };
    // Monte Carlo passes are an inference setting: the pipeline's value applies to a loaded
    // model too (its temperature was fitted with the passes it was trained with).
    let mut model = model;
    model.meta.config.mc_passes = method.mc_passes;
    // Hybrid models rebuild the feature plan with their training-time GLCM ranges and refuse a
    // pipeline whose features differ.
    let plan = if model.meta.hybrid_features.is_empty() {
        None
    } else {
        let plan = FeaturePlan::new(
            &p.features,
            &src.optical_bands,
            src.scale,
            src.offset,
            &model.meta.glcm_ranges,
        );
        if hybrid_names(&plan).0 != model.meta.hybrid_features {
            return Err(Error::Model {
                path: model_path.clone(),
                msg: "it is a hybrid model trained on other hand-crafted features than the pipeline's [features]; use the same [features] or retrain".into(),
            });
        }
        Some(plan)
    };
    let halo = model.halo();
    let tl = tiles(g.width, g.height, p.tiling.tile_size, halo);
    let final_path = scene_out.join(format!("{}.tif", method.name));
    let mut md = metadata;
    md.push(("GEOFUSE_MODEL_HASH".into(), model_hash.clone()));
    md.push(("GEOFUSE_DEVICE".into(), runtime.name.clone()));
    md.push(("GEOFUSE_FUSION".into(), method.fusion().to_string()));
    let spec = ProductSpec {
        grid: g.clone(),
        bands: product_bands(k),
        classes: p.classes.clone(),
        metadata: md,
        nodata: 255,
    };
    let writer = ProductWriter::create(&final_path, &spec)?;
    let t1 = Instant::now();
    let progress = log.progress("predicting", tl.len());
    let reader = SceneReader::open(src)?;
    let mut conf = Confusion::new(k);
    let mut stats = UncertaintyStats::default();
    let mut uncal = UncertaintyStats::default();
    // Tiles run one after another: the backend already uses every core inside a tile.
    for t in &tl {
        let (raw, labels) = raw_window(&reader, src, t.read, plan.as_ref())?;
        let pred = model.predict_full(&raw, (t.read.row, t.read.col));
        let (probs, ent) = (&pred.probs, &pred.entropy);
        let (r0, c0) = t.core_offset();
        let (h, w) = (t.core.height, t.core.width);
        let mut out = Array3::<u8>::from_elem((6, h, w), 255);
        let mut pv = vec![0f32; k];
        for r in 0..h {
            for c in 0..w {
                let (rr, cc) = (r0 + r, c0 + c);
                let opt = (0..N_OPT).all(|b| !raw[[b, rr, cc]].is_nan());
                let sar = (N_OPT..RAW_BANDS).all(|b| !raw[[b, rr, cc]].is_nan());
                let modalities = opt as u8 | (sar as u8) << 1;
                out[[5, r, c]] = modalities;
                if modalities == 0 {
                    continue;
                }
                for (j, v) in pv.iter_mut().enumerate() {
                    *v = probs[[j, rr, cc]];
                }
                let best = write_pixel(&mut out, r, c, &ids, &pv, ent[[rr, cc]]);
                if let Some(l) = &labels {
                    let ci = class_index(&ids, l[[rr, cc]]);
                    if ci >= 0 && split.is_test(t.core.row + r, t.core.col + c) {
                        conf.add(ci as usize, best);
                        let up = pred.uncalibrated(rr, cc);
                        let uk = (0..k).max_by(|&a, &b| up[a].total_cmp(&up[b])).unwrap_or(0);
                        uncal.add(up[uk], uk == ci as usize, 0, 0, modalities);
                        add_product_pixel(&mut stats, &out, r, c, ci as usize == best);
                    }
                }
            }
        }
        writer.write_core(t.core, &out)?;
        progress.tick();
    }
    let product = writer.finish()?;
    let predict_seconds = t1.elapsed().as_secs_f64();
    Ok(MethodOutcome {
        product,
        model: model_path,
        model_hash,
        confusion: src.labels.as_ref().map(|_| conf),
        uncertainty: src.labels.as_ref().map(|_| stats),
        ece_uncalibrated: src.labels.as_ref().and_then(|_| uncal.ece()),
        temperature: Some(model.meta.report.temperature),
        samples_per_class: model.meta.report.class_pixels.clone(),
        blocks: split.counts(),
        predict_seconds,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
