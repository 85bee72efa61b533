//! Spatial regularisation of a method's map after prediction: Bayesian smoothing of the class
//! probabilities ([`bayes`]), a majority vote of the classes ([`majority`]), and (over the
//! whole product, in [`crate::io`]) GDAL's sieve for a minimum mapping unit.
//!
//! A tile is predicted over its core grown by the post-process halo, so every core pixel sees
//! the same neighbourhood tiled as untiled; pixels without a prediction or excluded never
//! enter a neighbourhood and are never changed.

pub mod bayes;
pub mod majority;

use ndarray::{Array2, ArrayView2};

use crate::config::{PostProcess, Smoothing};
use crate::product::{ProductTile, TileProbabilities};

/// The regularised bytes and class indices of a tile core from the raw ones (`raw`, `best`)
/// and the probabilities `grown` of the core grown by [`PostProcess::halo`]; the core lies at
/// `off` in the grown window. `usable` marks the grown window's pixels that may be smoothed
/// and may vote (predicted and not excluded). `margin` is the index of the tile's margin band,
/// when it has one (Bayesian smoothing recomputes it).
pub fn regularise(
    pp: &PostProcess,
    grown: &TileProbabilities,
    usable: ArrayView2<bool>,
    off: (usize, usize),
    (raw, best): (ProductTile, Array2<usize>),
    (ids, margin): (&[u8], Option<usize>),
) -> (ProductTile, Array2<usize>) {
    let (mut tile, mut best) = (raw, best);
    let (h, w) = best.dim();
    match pp.smoothing {
        Smoothing::None => {}
        Smoothing::Bayesian => {
            let smoothness: Vec<f64> = (0..ids.len()).map(|k| pp.smoothness.of(k)).collect();
            let s = bayes::Bayes {
                window: pp.window,
                neigh_fraction: pp.neigh_fraction,
                smoothness: &smoothness,
            };
            let sm = bayes::smooth(grown.probs.view(), usable, &s, off, (h, w));
            let mut p = vec![0f32; ids.len()];
            for ((r, c), b) in best.indexed_iter_mut() {
                if !usable[[off.0 + r, off.1 + c]] {
                    continue;
                }
                p.iter_mut()
                    .enumerate()
                    .for_each(|(j, v)| *v = sm[[j, r, c]]);
                *b = tile.set_smoothed(r, c, ids, &p);
                if let Some(m) = margin {
                    tile.0[[m, r, c]] = crate::product::margin_byte(&p);
                }
            }
        }
        Smoothing::Majority => {
            let m = majority::majority(
                grown.best().view(),
                usable,
                ids.len(),
                pp.radius,
                off,
                (h, w),
            );
            for ((r, c), &j) in m.indexed_iter() {
                if usable[[off.0 + r, off.1 + c]] && j < ids.len() {
                    tile.set_class(r, c, ids[j]);
                    best[[r, c]] = j;
                }
            }
        }
    }
    (tile, best)
}
