//! Network inputs: normalisation of raw bands, input assembly (burn and native layouts),
//! training patches, augmentation and batches.

use ndarray::{s, Array2, Array3, Axis};
use serde::{Deserialize, Serialize};

use super::*;

/// Per-band normalisation statistics (computed from training patches).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Normalisation {
    /// Mean of each raw band.
    pub mean: Vec<f32>,
    /// Standard deviation of each raw band.
    pub std: Vec<f32>,
}

impl Normalisation {
    /// Statistics of the valid values of `patches` (`[raw bands, h, w]` each).
    pub fn from_patches(patches: &[Patch]) -> Normalisation {
        let nb = patches.first().map_or(RAW_BANDS, |p| p.raw.shape()[0]);
        let mut sum = vec![0f64; nb];
        let mut sq = vec![0f64; nb];
        let mut n = vec![0f64; nb];
        for p in patches {
            for (b, plane) in p.raw.axis_iter(Axis(0)).enumerate() {
                for &v in plane.iter().filter(|v| !v.is_nan()) {
                    sum[b] += v as f64;
                    sq[b] += (v as f64) * (v as f64);
                    n[b] += 1.0;
                }
            }
        }
        let mean: Vec<f32> = (0..nb)
            .map(|b| {
                if n[b] > 0.0 {
                    (sum[b] / n[b]) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let std = (0..nb)
            .map(|b| {
                if n[b] > 1.0 {
                    ((sq[b] / n[b] - (sum[b] / n[b]).powi(2)).max(0.0).sqrt() as f32).max(1e-6)
                } else {
                    1.0
                }
            })
            .collect();
        Normalisation { mean, std }
    }
}

/// Network input `[spec.in_ch(), h, w]` from raw bands (NaN = missing): normalised bands and
/// features, zeros where a modality (or a feature) is missing, and a presence flag per modality.
/// Raw layout: `spec.optical` reflectances, `spec.sar` polarisations (dB), then `spec.extra_opt` optical and `spec.extra_sar` SAR
/// features.
pub fn assemble(raw: &Array3<f32>, norm: &Normalisation, spec: &NetSpec) -> Array3<f32> {
    let (_, h, w) = raw.dim();
    Array3::from_shape_vec(
        (spec.in_ch(), h, w),
        assemble_pixels(raw, norm, spec).to_planes(),
    )
    .expect("planes of the assembled map")
}

/// [`assemble`] in pixel-major layout (`[h][w][in_ch]`), what `native` computes on.
pub fn assemble_pixels(raw: &Array3<f32>, norm: &Normalisation, spec: &NetSpec) -> native::Map {
    use rayon::prelude::*;
    let (_, h, w) = raw.dim();
    let (eo, es) = (spec.extra_opt, spec.extra_sar);
    let (opt_ch, in_ch) = (spec.opt_ch(), spec.in_ch());
    let (n_opt, n_raw) = (spec.optical, spec.raw_bands());
    let opt = Branch {
        bands: 0..n_opt,
        extras: n_raw..n_raw + eo,
        steps: spec.flags(),
    };
    let sar = Branch {
        bands: n_opt..n_raw,
        extras: n_raw + eo..n_raw + eo + es,
        steps: spec.flags(),
    };
    let mut m = native::Map::zeros(h, w, in_ch);
    m.v.par_chunks_mut(w * in_ch)
        .enumerate()
        .for_each(|(r, row)| {
            for (c, x) in row.chunks_exact_mut(in_ch).enumerate() {
                let v = |b: usize| raw[[b, r, c]];
                let (xo, xs) = x.split_at_mut(opt_ch);
                opt.fill(xo, &v, norm, spec.raw_inputs);
                sar.fill(xs, &v, norm, spec.raw_inputs);
            }
        });
    m
}

/// The raw bands of one branch of the network input (optical or SAR).
struct Branch {
    /// Its bands in the raw layout (steps x bands for a season).
    bands: std::ops::Range<usize>,
    /// Its hand-crafted features in the raw layout.
    extras: std::ops::Range<usize>,
    /// Observed flags (the season's steps with temporal encoders, else 0).
    steps: usize,
}

impl Branch {
    /// Fills the branch's block of one pixel (bands, flags, features, presence): normalised
    /// values, 0 where missing. Without flags the branch is present where every band is; with
    /// them a step is observed where every band of the step is, and the branch is present
    /// where any step is.
    fn fill(&self, o: &mut [f32], v: &impl Fn(usize) -> f32, norm: &Normalisation, raw_in: bool) {
        let z = |b: usize| {
            let x = v(b);
            if x.is_nan() {
                0.0
            } else {
                (x - norm.mean[b]) / norm.std[b]
            }
        };
        let (b0, nb) = (self.bands.start, self.bands.len());
        let present = match nb.checked_div(self.steps) {
            None => {
                let all = self.bands.clone().all(|b| !v(b).is_nan());
                for (b, o) in o[..nb].iter_mut().enumerate().filter(|_| all && raw_in) {
                    *o = z(b0 + b);
                }
                all
            }
            Some(per) => {
                let mut any = false;
                for t in 0..self.steps {
                    let step = b0 + t * per..b0 + (t + 1) * per;
                    if step.clone().all(|b| !v(b).is_nan()) {
                        any = true;
                        o[nb + t] = 1.0;
                        for b in step.filter(|_| raw_in) {
                            o[b - b0] = z(b);
                        }
                    }
                }
                any
            }
        };
        if present {
            let f0 = nb + self.steps;
            for (j, e) in self.extras.clone().enumerate() {
                o[f0 + j] = z(e);
            }
            *o.last_mut().expect("a presence flag") = 1.0;
        }
    }
}

/// A training patch: raw bands `[optical + SAR (+ hybrid features), p, p]` and class indices `[p, p]` (-1 = unlabelled).
#[derive(Debug, Clone)]
pub struct Patch {
    /// Raw bands.
    pub raw: Array3<f32>,
    /// Class index per pixel, -1 where unlabelled or held out.
    pub labels: Array2<i64>,
}

/// Hides optical step `step` of a season's raw bands `[bands, h, w]` (a window or a patch):
/// its bands missing, as on a cloudy date. No-op without temporal encoders.
pub(crate) fn hide_step(raw: &mut Array3<f32>, spec: &NetSpec, step: usize) {
    if let Some(t) = spec.temporal {
        let per = spec.optical / t.steps;
        raw.slice_mut(s![step * per..(step + 1) * per, .., ..])
            .fill(f32::NAN);
    }
}

/// Flips and 90-degree rotations of a square patch (`code` 0..8).
pub(crate) fn augment<T: Clone>(a: ndarray::ArrayView3<T>, code: usize) -> Array3<T> {
    let mut v = a;
    for _ in 0..(code & 3) {
        // Rotate by 90 degrees: transpose, then flip the columns.
        v = v.permuted_axes([0, 2, 1]);
        v.invert_axis(Axis(2));
    }
    if code & 4 != 0 {
        v.invert_axis(Axis(1));
    }
    v.to_owned()
}

/// Stacks patches into a batch: inputs, labels (0 where unlabelled) and loss weights.
pub(crate) fn batch(
    patches: &[&Patch],
    norm: &Normalisation,
    spec: &NetSpec,
    class_weights: &[f32],
    aug: &[usize],
    drop: &[u8],
) -> (Vec<f32>, Vec<i64>, Vec<f32>, usize) {
    let p = patches[0].labels.dim().0;
    let (opt_ch, in_ch) = (spec.opt_ch(), spec.in_ch());
    let mut xs = Vec::with_capacity(patches.len() * in_ch * p * p);
    let mut ys = Vec::with_capacity(patches.len() * p * p);
    let mut ws = Vec::with_capacity(patches.len() * p * p);
    for (i, pt) in patches.iter().enumerate() {
        let mut x = augment(assemble(&pt.raw, norm, spec).view(), aug[i]);
        let l = augment(pt.labels.view().insert_axis(Axis(0)), aug[i]);
        if drop[i] == 1 {
            x.slice_mut(s![0..opt_ch, .., ..]).fill(0.0);
        } else if drop[i] == 2 {
            x.slice_mut(s![opt_ch..in_ch, .., ..]).fill(0.0);
        }
        for r in 0..p {
            for c in 0..p {
                let y = l[[0, r, c]];
                let present = x[[opt_ch - 1, r, c]] > 0.0 || x[[in_ch - 1, r, c]] > 0.0;
                ys.push(y.max(0));
                ws.push(if y >= 0 && present {
                    class_weights[y as usize]
                } else {
                    0.0
                });
            }
        }
        xs.extend(x.iter().copied());
    }
    (xs, ys, ws, p)
}
