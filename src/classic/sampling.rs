//! Class-balanced training pixels from a scene's training blocks, with their hand-crafted
//! features. Sampling is a coordinate hash per pixel and the samples are sorted by pixel
//! index, so the training set does not depend on the tile size or the thread count.

use rayon::prelude::*;

use super::stack::TrainingSet;
use crate::error::{Error, Result};
use crate::eval::class_index;
use crate::eval::split::sampled;
use crate::features::FeaturePlan;
use crate::method::SceneContext;
use crate::pipeline::features::tile_features;
use crate::pipeline::scene::SceneReader;
use crate::tiler::Tile;

/// Labelled training-block pixels per class.
fn class_counts(ctx: &SceneContext, ids: &[u8], tiles: &[Tile]) -> Result<Vec<usize>> {
    let (src, split) = (ctx.scene, &ctx.split);
    let parts = tiles
        .par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, t| -> Result<Vec<usize>> {
                let reader = reader.as_ref().map_err(Clone::clone)?;
                let mut c = vec![0usize; ids.len()];
                for ((r, col), &v) in reader
                    .read_labels(t.core)?
                    .iter()
                    .flat_map(|l| l.indexed_iter())
                {
                    if let Some(ci) = class_index(ids, v) {
                        if !split.is_test(t.core.row + r, t.core.col + col) {
                            c[ci] += 1;
                        }
                    }
                }
                Ok(c)
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.into_iter().fold(vec![0usize; ids.len()], |mut a, c| {
        a.iter_mut().zip(c).for_each(|(x, y)| *x += y);
        a
    }))
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

/// One sample: pixel index, class index, features.
type Sample = (usize, u8, Vec<f32>);

/// The sampled training pixels of one tile (features computed only when one is picked).
fn tile_samples(
    ctx: &SceneContext,
    reader: &SceneReader,
    plan: &FeaturePlan,
    t: &Tile,
    ids: &[u8],
    rates: &[f64],
) -> Result<Vec<Sample>> {
    let (src, split, seed) = (ctx.scene, &ctx.split, ctx.pipeline.seed);
    let Some(labels) = reader.read_labels(t.core)? else {
        return Ok(Vec::new());
    };
    let mut picks = Vec::new();
    for ((r, c), &v) in labels.indexed_iter() {
        let (row, col) = (t.core.row + r, t.core.col + c);
        if let Some(ci) = class_index(ids, v) {
            if !split.is_test(row, col) && sampled(seed, row, col, rates[ci]) {
                picks.push((r, c, ci));
            }
        }
    }
    if picks.is_empty() {
        return Ok(Vec::new());
    }
    let f = tile_features(reader, plan, t)?.features;
    let nf = plan.names.len();
    Ok(picks
        .into_iter()
        .map(|(r, c, ci)| {
            let pixel = (t.core.row + r) * src.grid.width + t.core.col + c;
            (pixel, ci as u8, (0..nf).map(|j| f[[j, r, c]]).collect())
        })
        .collect())
}

/// Class-balanced training samples of the scene's training blocks: at most about
/// `split.samples_per_class` per class, with balancing class weights.
pub fn training_set(ctx: &SceneContext, plan: &FeaturePlan, tiles: &[Tile]) -> Result<TrainingSet> {
    let (p, src) = (ctx.pipeline, ctx.scene);
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let counts = class_counts(ctx, &ids, tiles)?;
    let present = counts.iter().filter(|&&c| c > 0).count();
    if present < 2 {
        return Err(Error::input(
            src.labels.clone().unwrap_or_default(),
            format!(
                "the training blocks hold labels of {present} class(es) from the class table (ids {ids:?}); check that label values match `classes` ids"
            ),
        ));
    }
    let rates = rates(&counts, p.split.samples_per_class);
    let done = ctx.log.progress("training samples", tiles.len());
    let parts = tiles
        .par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, t| -> Result<Vec<Sample>> {
                let reader = reader.as_ref().map_err(Clone::clone)?;
                let s = tile_samples(ctx, reader, plan, t, &ids, &rates)?;
                done.tick();
                Ok(s)
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let samples: Vec<Sample> = parts.into_iter().flatten().collect();
    Ok(TrainingSet::from_samples(
        samples,
        plan.names.len(),
        ids.len(),
    ))
}
