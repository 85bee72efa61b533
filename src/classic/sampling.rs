//! Class-balanced training pixels from the training blocks of the training scenes, with their
//! hand-crafted features. Sampling is a coordinate hash per pixel, class rates come from the
//! pooled counts of all training scenes, and samples are sorted by (scene, pixel), so the
//! training set depends neither on the tile size nor on the thread count.

use rayon::prelude::*;

use super::stack::TrainingSet;
use crate::error::{Error, Result};
use crate::eval::class_index;
use crate::eval::split::sampled;
use crate::method::SceneContext;
use crate::scene::plan::tile_features;
use crate::scene::FeaturePlan;
use crate::scene::SceneReader;
use crate::tiler::{tiles, Tile};

/// One training scene: its context, feature plan and tiles.
pub struct TrainingScene<'a> {
    /// The scene.
    pub ctx: &'a SceneContext<'a>,
    /// Its feature plan (with the pooled GLCM ranges).
    pub plan: FeaturePlan,
    /// Its tiles (halo of the plan).
    pub tiles: Vec<Tile>,
}

impl<'a> TrainingScene<'a> {
    /// The scene with `plan`, tiled by the pipeline's tile size.
    pub fn new(ctx: &'a SceneContext<'a>, plan: FeaturePlan) -> Self {
        let g = &ctx.scene.grid;
        let tiles = tiles(g.width, g.height, ctx.pipeline.tiling.tile_size, plan.halo);
        TrainingScene { ctx, plan, tiles }
    }
}

/// Labelled training-block pixels per class of one scene.
fn class_counts(ts: &TrainingScene, ids: &[u8]) -> Result<Vec<usize>> {
    let (src, split) = (ts.ctx.scene, &ts.ctx.split);
    let parts = ts
        .tiles
        .par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, t| -> Result<Vec<usize>> {
                let reader = reader.as_ref().map_err(Clone::clone)?;
                let mut c = vec![0usize; ids.len()];
                let labels = reader.read_labels(t.core)?;
                for ((r, col), &v) in labels.iter().flat_map(|l| l.indexed_iter()) {
                    if let Some(ci) = class_index(ids, v) {
                        if split.trains(t.core.row + r, t.core.col + col) {
                            c[ci] += 1;
                        }
                    }
                }
                Ok(c)
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok(sum_counts(parts, ids.len()))
}

fn sum_counts(parts: Vec<Vec<usize>>, k: usize) -> Vec<usize> {
    parts.into_iter().fold(vec![0usize; k], |mut a, c| {
        a.iter_mut().zip(c).for_each(|(x, y)| *x += y);
        a
    })
}

/// Sampling rate per class so that each class gives about `cap` samples.
fn rates(counts: &[usize], cap: usize) -> Vec<f64> {
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                (cap as f64 / c as f64).min(1.0)
            }
        })
        .collect()
}

/// One sample: (scene, pixel) key, class index, features.
type Sample = (usize, u8, Vec<f32>);

/// Bits of the sample key that hold the pixel index (the scene index sits above them).
const PIXEL_BITS: u32 = 40;

/// The sampled training pixels of one tile (features computed only when one is picked).
fn tile_samples(
    ts: &TrainingScene,
    scene: usize,
    reader: &SceneReader,
    t: &Tile,
    ids: &[u8],
    rates: &[f64],
) -> Result<Vec<Sample>> {
    let (src, split, seed) = (ts.ctx.scene, &ts.ctx.split, ts.ctx.pipeline.seed);
    let Some(labels) = reader.read_labels(t.core)? else {
        return Ok(Vec::new());
    };
    let mut picks = Vec::new();
    for ((r, c), &v) in labels.indexed_iter() {
        let (row, col) = (t.core.row + r, t.core.col + c);
        if let Some(ci) = class_index(ids, v) {
            if split.trains(row, col) && sampled(seed, row, col, rates[ci]) {
                picks.push((r, c, ci));
            }
        }
    }
    if picks.is_empty() {
        return Ok(Vec::new());
    }
    let f = tile_features(reader, &ts.plan, t)?.features;
    let nf = ts.plan.names.len();
    Ok(picks
        .into_iter()
        .map(|(r, c, ci)| {
            let pixel = (t.core.row + r) * src.grid.width + t.core.col + c;
            let key = (scene << PIXEL_BITS) | pixel;
            (key, ci as u8, (0..nf).map(|j| f[[j, r, c]]).collect())
        })
        .collect())
}

/// Class-balanced training samples of the training blocks of `scenes`: at most about
/// `split.samples_per_class` per class in all, with balancing class weights.
pub fn training_set(scenes: &[TrainingScene]) -> Result<TrainingSet> {
    let first = scenes
        .first()
        .ok_or_else(|| Error::Internal("no training scene".into()))?;
    let p = first.ctx.pipeline;
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let counts = sum_counts(
        scenes
            .iter()
            .map(|ts| class_counts(ts, &ids))
            .collect::<Result<Vec<_>>>()?,
        ids.len(),
    );
    let present = counts.iter().filter(|&&c| c > 0).count();
    if present < 2 {
        return Err(Error::input(
            first.ctx.scene.labels.clone().unwrap_or_default(),
            format!(
                "the training blocks of the training scenes hold labels of {present} class(es) from the class table (ids {ids:?}); check that label values match `classes` ids"
            ),
        ));
    }
    let rates = rates(&counts, p.split.samples_per_class);
    let mut samples = Vec::new();
    for (si, ts) in scenes.iter().enumerate() {
        let done = ts.ctx.log.progress("training samples", ts.tiles.len());
        let parts = ts
            .tiles
            .par_iter()
            .map_init(
                || SceneReader::open(ts.ctx.scene),
                |reader, t| -> Result<Vec<Sample>> {
                    let reader = reader.as_ref().map_err(Clone::clone)?;
                    let s = tile_samples(ts, si, reader, t, &ids, &rates)?;
                    done.tick();
                    Ok(s)
                },
            )
            .collect::<Result<Vec<_>>>()?;
        samples.extend(parts.into_iter().flatten());
    }
    Ok(TrainingSet::from_samples(
        samples,
        first.plan.names.len(),
        ids.len(),
    ))
}
