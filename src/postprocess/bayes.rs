//! Bayesian smoothing of class probabilities (Camara et al.; sits' `sits_smooth`): per class,
//! a pixel's log-odds x is pulled towards the mean m of the highest log-odds in its window,
//! x' = w x + (1 - w) m with w = s² / (s² + σ²), where s² is the variance of those neighbours
//! and σ² the class's smoothness. Pure kernel: no I/O, no threads.

use ndarray::{Array3, ArrayView2, ArrayView3};

/// Settings of the smoother.
#[derive(Debug, Clone)]
pub struct Bayes<'a> {
    /// Side of the square window (odd).
    pub window: usize,
    /// Fraction of the window's highest log-odds that form the prior.
    pub neigh_fraction: f64,
    /// Smoothness (variance of a pixel's log-odds) per class.
    pub smoothness: &'a [f64],
}

/// Log-odds of a class probability against the others, `ln(p / (1 - p))`, with p kept in
/// [1e-6, 1 - 1e-6] so certain pixels stay finite.
#[inline]
pub fn logit(p: f32) -> f64 {
    let p = (p as f64).clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// Index `i` (which may lie up to one array length outside `0..n`) reflected into the array,
/// the edge pixel repeated once: -1 -> 0, -2 -> 1, n -> n - 1.
#[inline]
pub fn mirror(i: isize, n: usize) -> usize {
    let n = n as isize;
    let j = if i < 0 {
        -i - 1
    } else if i >= n {
        2 * n - i - 1
    } else {
        i
    };
    j.clamp(0, n - 1) as usize
}

/// Smooths the probabilities `probs` `[K, H, W]` of an array whose usable pixels are `valid`,
/// and returns the smoothed, renormalised probabilities of the `h` x `w` core at (`r0`, `c0`).
///
/// A window reaching past the array is reflected at its edge (the array's edge is the scene's,
/// or a halo wider than half the window). Pixels that are not valid (nodata, excluded) never
/// enter a neighbourhood; a core pixel that is not valid keeps its probabilities.
pub fn smooth(
    probs: ArrayView3<f32>,
    valid: ArrayView2<bool>,
    s: &Bayes,
    (r0, c0): (usize, usize),
    (h, w): (usize, usize),
) -> Array3<f32> {
    let (k, hh, ww) = probs.dim();
    let logits = Array3::from_shape_fn((k, hh, ww), |(j, r, c)| {
        if valid[[r, c]] {
            logit(probs[[j, r, c]])
        } else {
            f64::NAN
        }
    });
    let leg = (s.window / 2) as isize;
    let mut out = Array3::<f32>::zeros((k, h, w));
    let mut neigh = Vec::with_capacity(s.window * s.window);
    let mut q = vec![0f64; k];
    for r in 0..h {
        for c in 0..w {
            let (rr, cc) = (r0 + r, c0 + c);
            if !valid[[rr, cc]] {
                for j in 0..k {
                    out[[j, r, c]] = probs[[j, rr, cc]];
                }
                continue;
            }
            for (j, qj) in q.iter_mut().enumerate() {
                neigh.clear();
                for dr in -leg..=leg {
                    let y = mirror(rr as isize + dr, hh);
                    for dc in -leg..=leg {
                        let v = logits[[j, y, mirror(cc as isize + dc, ww)]];
                        if !v.is_nan() {
                            neigh.push(v);
                        }
                    }
                }
                let x = posterior(
                    logits[[j, rr, cc]],
                    &mut neigh,
                    s.neigh_fraction,
                    s.smoothness[j],
                );
                *qj = 1.0 / (1.0 + (-x).exp());
            }
            let sum: f64 = q.iter().sum();
            for (j, qj) in q.iter().enumerate() {
                out[[j, r, c]] = (qj / sum) as f32;
            }
        }
    }
    out
}

/// The smoothed log-odds of a pixel with log-odds `x0` from its window's valid log-odds
/// `neigh` (reordered in place): the prior is the mean and sample variance of the highest
/// `ceil(fraction * n)` of them.
pub fn posterior(x0: f64, neigh: &mut [f64], fraction: f64, smoothness: f64) -> f64 {
    let n = neigh.len();
    let top = ((fraction * n as f64).ceil() as usize).clamp(1, n.max(1));
    if n == 0 {
        return x0;
    }
    if top < n {
        neigh.select_nth_unstable_by(top - 1, |a, b| b.total_cmp(a));
    }
    let high = &neigh[..top];
    let m = high.iter().sum::<f64>() / top as f64;
    let var = if top > 1 {
        high.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (top - 1) as f64
    } else {
        0.0
    };
    let w = var / (var + smoothness);
    w * x0 + (1.0 - w) * m
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn mirror_repeats_the_edge_once() {
        let got: Vec<usize> = (-2..7).map(|i| mirror(i, 5)).collect();
        assert_eq!(got, [1, 0, 0, 1, 2, 3, 4, 4, 3]);
    }

    #[test]
    fn posterior_matches_a_hand_computation() {
        // Neighbours 3, 1, 2, 0; fraction 0.5 keeps 3 and 2: mean 2.5, sample variance 0.5;
        // w = 0.5 / (0.5 + 1.5) = 0.25; x' = 0.25 x0 + 0.75 x 2.5.
        let mut n = vec![3.0, 1.0, 2.0, 0.0];
        let x = posterior(-1.0, &mut n, 0.5, 1.5);
        assert!((x - (-0.25 + 0.75 * 2.5)).abs() < 1e-12, "{x}");
        // Every neighbour equal: no variance, the pixel takes the neighbours' value.
        let mut n = vec![0.7; 9];
        assert!((posterior(5.0, &mut n, 1.0, 10.0) - 0.7).abs() < 1e-12);
    }

    #[test]
    fn the_centre_of_a_small_grid_matches_a_hand_computation() {
        // 3 x 3, two classes, class 0 probabilities around a 0.2 centre; smoothness 2 and 3.
        // Computed by hand (logits, top neighbours, mean, sample variance, w, inverse logit,
        // normalised): fraction 1 -> 0.54217594, fraction 0.5 -> 0.58825392.
        let p0 = [0.9f32, 0.8, 0.7, 0.6, 0.2, 0.6, 0.7, 0.8, 0.9];
        let p = Array3::from_shape_fn((2, 3, 3), |(k, r, c)| {
            let v = p0[r * 3 + c];
            if k == 0 {
                v
            } else {
                1.0 - v
            }
        });
        let valid = Array2::from_elem((3, 3), true);
        for (fraction, want) in [(1.0, 0.542_175_9_f32), (0.5, 0.588_253_9)] {
            let s = Bayes {
                window: 3,
                neigh_fraction: fraction,
                smoothness: &[2.0, 3.0],
            };
            let out = smooth(p.view(), valid.view(), &s, (1, 1), (1, 1));
            assert!(
                (out[[0, 0, 0]] - want).abs() < 1e-5,
                "{fraction}: {}",
                out[[0, 0, 0]]
            );
        }
    }

    #[test]
    fn an_isolated_pixel_takes_its_neighbours_class() {
        // 5 x 5, two classes; class 0 everywhere but the centre, which says class 1.
        let mut p = Array3::<f32>::zeros((2, 5, 5));
        p.slice_mut(ndarray::s![0, .., ..]).fill(0.8);
        p.slice_mut(ndarray::s![1, .., ..]).fill(0.2);
        p[[0, 2, 2]] = 0.3;
        p[[1, 2, 2]] = 0.7;
        let valid = Array2::from_elem((5, 5), true);
        let s = Bayes {
            window: 3,
            neigh_fraction: 1.0,
            smoothness: &[1.0, 1.0],
        };
        let out = smooth(p.view(), valid.view(), &s, (0, 0), (5, 5));
        assert!(
            out[[0, 2, 2]] > out[[1, 2, 2]],
            "{:?}",
            out.slice(ndarray::s![.., 2, 2])
        );
        // A pixel whose window is uniform keeps its probabilities.
        assert!((out[[0, 0, 0]] - 0.8).abs() < 1e-5);
        for r in 0..5 {
            for c in 0..5 {
                assert!((out[[0, r, c]] + out[[1, r, c]] - 1.0).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn invalid_pixels_neither_change_nor_count() {
        let mut p = Array3::<f32>::from_elem((2, 3, 3), 0.5);
        p[[0, 1, 1]] = 0.9;
        p[[1, 1, 1]] = 0.1;
        let mut valid = Array2::from_elem((3, 3), false);
        valid[[1, 1]] = true;
        let s = Bayes {
            window: 3,
            neigh_fraction: 0.5,
            smoothness: &[20.0, 20.0],
        };
        let out = smooth(p.view(), valid.view(), &s, (0, 0), (3, 3));
        // Alone among invalid pixels: unchanged (up to the clamp of the log-odds).
        assert!((out[[0, 1, 1]] - 0.9).abs() < 1e-5);
        assert_eq!(out[[0, 0, 0]], 0.5);
    }
}
