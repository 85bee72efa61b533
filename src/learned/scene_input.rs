//! A learned method's inputs from a scene: raw band windows (plus hand-crafted features for
//! hybrid models) and training patches drawn from training blocks.

use ndarray::{s, Array2, Array3, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::eval::split::BlockSplit;
use crate::features::sar::linear_to_db;
use crate::features::Polarisation;
use crate::learned::Patch;
use crate::raster::Window;
use crate::rng::{hash4, unit, Rng};
use crate::scene::FeaturePlan;
use crate::scene::{SceneReader, SceneSources};

/// A window of a learned model's inputs.
pub struct RawWindow {
    /// Raw bands `[band, row, col]` (see [`raw_window`]).
    pub raw: Array3<f32>,
    /// Reference labels (NaN = unlabelled), when the scene has labels.
    pub labels: Option<Array2<f32>>,
    /// Modality codes of the raw inputs ([`crate::product::modalities`]).
    pub modalities: Array2<u8>,
    /// A season's observation counts ([`crate::product::observations`]).
    pub observations: Option<Array3<u8>>,
}

/// Raw bands of a window and its labels: the optical reflectances (every band the scene
/// declares; for a season every band at every step), the SAR polarisations `pols` in dB (NaN =
/// missing; for a season every step),
/// then, for hybrid models, the hand-crafted features of `hybrid` (optical ones, then SAR ones),
/// computed on the window grown by the features' own halo so they do not depend on tiling.
/// With `gaps` (networks with temporal encoders) a season's steps without a valid observation
/// are NaN instead of gap-filled.
pub fn raw_window(
    reader: &SceneReader,
    src: &SceneSources,
    win: Window,
    pols: &[Polarisation],
    (hybrid, gaps): (Option<&FeaturePlan>, bool),
) -> Result<RawWindow> {
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
    let sar: Vec<usize> = pols
        .iter()
        .map(|p| t.sar_pols.iter().position(|q| q == p))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            Error::input(
                &src.sar,
                format!(
                    "has polarisations {}; the model needs {}",
                    Polarisation::join(&t.sar_pols),
                    Polarisation::join(pols)
                ),
            )
        })?;
    let (optical, sar_db) = match &t.season {
        Some(s) => season_channels(s, &sar, (scale, offset), gaps)?,
        None => (
            t.optical_dn.mapv(|v| v * scale + offset),
            t.sar_linear.select(Axis(0), &sar).mapv(linear_to_db),
        ),
    };
    let mut parts = vec![crop(&optical), crop(&sar_db)];
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
    let modalities = crate::product::modalities(&data.inputs, (dr, dc), (win.height, win.width));
    let observations =
        crate::product::observations(&data.inputs, (dr, dc), (win.height, win.width));
    Ok(RawWindow {
        raw,
        labels,
        modalities,
        observations,
    })
}

/// A season's regularised inputs as channels, step by step: every optical reflectance of step
/// 0, then of step 1, ...; likewise the SAR polarisations at indices `sar` (dB). With `gaps`,
/// NaN at the steps a pixel was not observed.
fn season_channels(
    s: &crate::temporal::SeasonInputs,
    sar: &[usize],
    (scale, offset): (f32, f32),
    gaps: bool,
) -> Result<(Array3<f32>, Array3<f32>)> {
    let flat = |mut a: ndarray::Array4<f32>, observed: &ndarray::Array3<bool>| {
        if gaps {
            for (mut step, seen) in a.outer_iter_mut().zip(observed.outer_iter()) {
                for mut band in step.outer_iter_mut() {
                    ndarray::Zip::from(&mut band).and(&seen).for_each(|v, &o| {
                        if !o {
                            *v = f32::NAN;
                        }
                    });
                }
            }
        }
        let (t, b, h, w) = a.dim();
        Array3::from_shape_vec((t * b, h, w), a.iter().copied().collect())
            .map_err(|e| Error::Internal(format!("season channels: {e}")))
    };
    let optical = flat(
        s.optical_dn.mapv(|v| v * scale + offset),
        &s.optical_observed,
    )?;
    let sar = flat(
        s.sar_linear.select(Axis(1), sar).mapv(linear_to_db),
        &s.sar_observed,
    )?;
    Ok((optical, sar))
}

/// Hand-crafted feature names in the order a hybrid model takes them (optical, then SAR), and
/// how many are optical and SAR.
pub fn hybrid_names(plan: &FeaturePlan) -> (Vec<String>, usize, usize) {
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

/// Class index of a label value for the loss (-1 = unlabelled).
fn label_index(ids: &[u8], v: f32) -> i64 {
    crate::eval::class_index(ids, v).map_or(-1, |i| i as i64)
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
pub fn patch_windows(
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

/// Training pixels of each class in window `w` (pixels that may not train are left out).
fn class_pixels(
    reader: &SceneReader,
    split: &BlockSplit,
    ids: &[u8],
    w: Window,
) -> Result<Vec<f64>> {
    let mut c = vec![0.0; ids.len()];
    if let Some(l) = reader.read_labels(w)? {
        for ((r, cc), &v) in l.indexed_iter() {
            match crate::eval::class_index(ids, v) {
                Some(k) if split.trains(w.row + r, w.col + cc) => c[k] += 1.0,
                _ => {}
            }
        }
    }
    Ok(c)
}

/// Class-balanced patch sampling: `n` of `candidates`, drawn without replacement, each with
/// the weight sum over classes k of (its training pixels of k) / (all candidates' pixels of k),
/// so that every class present carries the same total weight and windows holding rare classes
/// are drawn more often. Deterministic from `seed`; windows without a training label are never
/// drawn (they would add nothing to the loss).
pub fn class_balanced(
    src: &SceneSources,
    split: &BlockSplit,
    ids: &[u8],
    candidates: &[Window],
    n: usize,
    seed: u64,
) -> Result<Vec<Window>> {
    let reader = SceneReader::open(src)?;
    let counts: Vec<Vec<f64>> = candidates
        .iter()
        .map(|w| class_pixels(&reader, split, ids, *w))
        .collect::<Result<_>>()?;
    let totals: Vec<f64> = (0..ids.len())
        .map(|k| counts.iter().map(|c| c[k]).sum())
        .collect();
    let mut weight: Vec<f64> = counts
        .iter()
        .map(|c| {
            c.iter()
                .zip(&totals)
                .filter(|(_, &t)| t > 0.0)
                .map(|(a, t)| a / t)
                .sum()
        })
        .collect();
    let mut rng = Rng::new(seed ^ 0xBA1A_0CE5);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let sum: f64 = weight.iter().sum();
        if sum <= 0.0 {
            break;
        }
        let mut x = rng.f64() * sum;
        let mut pick = weight.iter().rposition(|&v| v > 0.0).unwrap_or(0);
        for (i, &v) in weight.iter().enumerate() {
            if v > 0.0 && x < v {
                pick = i;
                break;
            }
            x -= v;
        }
        out.push(candidates[pick]);
        weight[pick] = 0.0;
    }
    Ok(out)
}

/// Reads the patches of `wins` in parallel: one contiguous share of the windows per worker,
/// each with one reader (a season's reader opens every dated raster, so readers are opened
/// once per share, not per window). Labels of pixels that may not train (test side, or
/// outside the training subset) are left out of the loss.
pub fn read_patches(
    src: &SceneSources,
    split: &BlockSplit,
    ids: &[u8],
    wins: &[Window],
    inputs: (Option<&FeaturePlan>, bool),
) -> Result<Vec<Patch>> {
    if let Some(whole) = super::season_cache::season_raw(src, inputs)? {
        return Ok(wins
            .iter()
            .map(|w| {
                let (rows, cols) = (w.row..w.row + w.height, w.col..w.col + w.width);
                let raw = whole
                    .raw
                    .slice(s![.., rows.clone(), cols.clone()])
                    .to_owned();
                let labels = whole
                    .labels
                    .as_ref()
                    .map(|l| l.slice(s![rows, cols]).to_owned());
                patch(raw, labels, split, ids, *w)
            })
            .collect());
    }
    let share = wins
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    let parts = wins
        .par_chunks(share)
        .map(|ws| -> Result<Vec<Patch>> {
            let reader = SceneReader::open(src)?;
            ws.iter()
                .map(|w| read_patch(&reader, src, split, ids, *w, inputs))
                .collect()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.into_iter().flatten().collect())
}

/// One training patch of window `w`.
fn read_patch(
    reader: &SceneReader,
    src: &SceneSources,
    split: &BlockSplit,
    ids: &[u8],
    w: Window,
    inputs: (Option<&FeaturePlan>, bool),
) -> Result<Patch> {
    let RawWindow { raw, labels, .. } = raw_window(reader, src, w, &src.sar_pols, inputs)?;
    Ok(patch(raw, labels, split, ids, w))
}

/// A training patch of window `w` from its raw bands and labels: pixels that may not train
/// are left out of the loss.
fn patch(
    raw: Array3<f32>,
    labels: Option<Array2<f32>>,
    split: &BlockSplit,
    ids: &[u8],
    w: Window,
) -> Patch {
    let labels = labels
        .map(|l| {
            Array2::from_shape_fn(l.dim(), |(r, c)| {
                if split.trains(w.row + r, w.col + c) {
                    label_index(ids, l[[r, c]])
                } else {
                    -1
                }
            })
        })
        .unwrap_or_else(|| Array2::from_elem((w.height, w.width), -1));
    Patch { raw, labels }
}
