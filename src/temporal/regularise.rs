//! Regularisation of dated observations onto a temporal grid, one date at a time.
//!
//! The rule: a step's value is the mean of the pixel's valid observations dated inside the
//! step (SAR in linear power, so the mean is a multi-look); a step without one takes the linear
//! interpolation, in time between step centres, of the nearest steps before and after that
//! have one; steps before the first (after the last) such step hold its value. A pixel without
//! any valid observation in the season is NaN at every step. An observation counts when every
//! band of the pixel is finite; dates outside the season are ignored. Memory is the grid's
//! (steps x bands x pixels), whatever the number of dates: dates stream through.

use ndarray::{Array2, Array3, Array4, Axis, Zip};

/// Sums and counts of the valid observations of one modality in each step.
#[derive(Debug, Clone)]
pub struct StepAccumulator {
    steps: Vec<(i64, i64)>,
    sum: Array4<f32>,
    count: Array3<u16>,
}

/// A modality on the temporal grid.
#[derive(Debug, Clone)]
pub struct Regular {
    /// `[step, band, row, col]`, gaps filled; NaN where the pixel has no valid observation.
    pub values: Array4<f32>,
    /// Mean of every valid observation of the season, `[band, row, col]`.
    pub mean: Array3<f32>,
    /// Valid observations per pixel.
    pub n_obs: Array2<u16>,
    /// Whether each step has a valid observation of the pixel `[step, row, col]` (false:
    /// gap-filled or NaN).
    pub observed: Array3<bool>,
}

impl StepAccumulator {
    /// An empty accumulator for `steps` (first and last day of each, in order) and a
    /// `bands` x `h` x `w` window.
    pub fn new(steps: &[(i64, i64)], bands: usize, h: usize, w: usize) -> Self {
        StepAccumulator {
            steps: steps.to_vec(),
            sum: Array4::zeros((steps.len(), bands, h, w)),
            count: Array3::zeros((steps.len(), h, w)),
        }
    }

    /// The step holding day `day`, if any.
    pub fn step_of(&self, day: i64) -> Option<usize> {
        self.steps.iter().position(|&(a, b)| (a..=b).contains(&day))
    }

    /// Adds the observation of day `day`, `[band, row, col]`, NaN (or infinite) where invalid.
    pub fn add(&mut self, day: i64, x: &Array3<f32>) {
        let Some(k) = self.step_of(day) else {
            return;
        };
        let (_, h, w) = x.dim();
        let mut ok = Array2::from_elem((h, w), true);
        for b in x.axis_iter(Axis(0)) {
            Zip::from(&mut ok)
                .and(&b)
                .for_each(|o, &v| *o &= v.is_finite());
        }
        let mut sum = self.sum.index_axis_mut(Axis(0), k);
        for (mut sb, xb) in sum.axis_iter_mut(Axis(0)).zip(x.axis_iter(Axis(0))) {
            Zip::from(&mut sb).and(&xb).and(&ok).for_each(|s, &v, &o| {
                if o {
                    *s += v;
                }
            });
        }
        Zip::from(self.count.index_axis_mut(Axis(0), k))
            .and(&ok)
            .for_each(|n, &o| {
                if o {
                    *n = n.saturating_add(1);
                }
            });
    }

    /// The regular series: step means, gaps filled, ends held.
    pub fn finish(self) -> Regular {
        let (t, nb, h, w) = self.sum.dim();
        let centres: Vec<f64> = self
            .steps
            .iter()
            .map(|&(a, b)| (a + b) as f64 / 2.0)
            .collect();
        let mut values = Array4::from_elem((t, nb, h, w), f32::NAN);
        let mut mean = Array3::from_elem((nb, h, w), f32::NAN);
        let mut n_obs = Array2::<u16>::zeros((h, w));
        let (mut counts, mut sums, mut filled) = (vec![0u16; t], vec![0f32; t], vec![0f32; t]);
        let mut known = Vec::with_capacity(t);
        for r in 0..h {
            for c in 0..w {
                counts
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, n)| *n = self.count[[k, r, c]]);
                let n = counts.iter().fold(0u16, |a, &b| a.saturating_add(b));
                n_obs[[r, c]] = n;
                if n == 0 {
                    continue;
                }
                known.clear();
                known.extend((0..t).filter(|&k| counts[k] > 0));
                for b in 0..nb {
                    sums.iter_mut()
                        .enumerate()
                        .for_each(|(k, v)| *v = self.sum[[k, b, r, c]]);
                    mean[[b, r, c]] = sums.iter().sum::<f32>() / f32::from(n);
                    fill_into(&sums, &counts, &centres, &known, &mut filled);
                    for (k, v) in filled.iter().enumerate() {
                        values[[k, b, r, c]] = *v;
                    }
                }
            }
        }
        Regular {
            values,
            mean,
            n_obs,
            observed: self.count.mapv(|n| n > 0),
        }
    }
}

/// One pixel's band on the grid: `sums` / `counts` where a step has observations, linear
/// interpolation between the centres of the nearest such steps, ends held. At least one
/// count must be positive.
#[cfg(test)]
fn fill_series(sums: &[f32], counts: &[u16], centres: &[f64]) -> Vec<f32> {
    let known: Vec<usize> = (0..counts.len()).filter(|&k| counts[k] > 0).collect();
    let mut out = vec![0f32; counts.len()];
    fill_into(sums, counts, centres, &known, &mut out);
    out
}

/// One pixel's band filled on the grid (see `fill_series`) into `out`, given the steps that have observations (`known`, increasing).
fn fill_into(sums: &[f32], counts: &[u16], centres: &[f64], known: &[usize], out: &mut [f32]) {
    let at = |k: usize| sums[k] / f32::from(counts[k]);
    let mut i = 0;
    for (k, o) in out.iter_mut().enumerate() {
        while i < known.len() && known[i] < k {
            i += 1;
        }
        *o = match i {
            _ if i < known.len() && known[i] == k => at(k),
            0 => at(known[0]),
            _ if i == known.len() => at(known[known.len() - 1]),
            _ => {
                let (a, b) = (known[i - 1], known[i]);
                let f = (centres[k] - centres[a]) / (centres[b] - centres[a]);
                (f64::from(at(a)) + f * f64::from(at(b) - at(a))) as f32
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_interpolate_between_step_centres_and_ends_hold() {
        let centres = [5.0, 15.0, 25.0, 35.0, 45.0];
        let sums = [0.0, 2.0, 0.0, 0.0, 8.0];
        let counts = [0, 1, 0, 0, 2];
        // steps 1 (2.0) and 4 (4.0) known; 2 and 3 interpolated; 0 holds step 1.
        let v = fill_series(&sums, &counts, &centres);
        let want = [2.0, 2.0, 2.0 + 2.0 / 3.0, 2.0 + 4.0 / 3.0, 4.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }

    #[test]
    fn cloudy_dates_drop_per_pixel_and_are_not_counted() {
        let steps = [(0, 9), (10, 19), (20, 29)];
        let mut acc = StepAccumulator::new(&steps, 2, 1, 2);
        let obs = |a: [f32; 2], b: [f32; 2]| {
            Array3::from_shape_vec((2, 1, 2), vec![a[0], b[0], a[1], b[1]]).unwrap()
        };
        // Pixel 0: valid on days 1, 3 (step 0) and 25 (step 2); pixel 1: cloudy on day 3.
        acc.add(1, &obs([1.0, 10.0], [5.0, 50.0]));
        acc.add(3, &obs([3.0, 30.0], [f32::NAN, 60.0]));
        acc.add(25, &obs([6.0, 60.0], [7.0, 70.0]));
        acc.add(40, &obs([99.0, 99.0], [99.0, 99.0])); // outside the season: ignored
        let r = acc.finish();
        assert_eq!(r.n_obs, Array2::from_shape_vec((1, 2), vec![3, 2]).unwrap());
        // Step 1 is gap-filled for both pixels: not observed.
        let seen: Vec<bool> = r.observed.iter().copied().collect();
        assert_eq!(seen, vec![true, true, false, false, true, true]);
        // Pixel 0, band 0: step 0 mean 2, step 2 = 6, step 1 halfway = 4.
        let p0: Vec<f32> = (0..3).map(|k| r.values[[k, 0, 0, 0]]).collect();
        assert_eq!(p0, vec![2.0, 4.0, 6.0]);
        // Pixel 1 band 1: day 3 dropped (band 0 NaN), so step 0 = 50.
        assert_eq!(r.values[[0, 1, 0, 1]], 50.0);
        assert!((r.mean[[0, 0, 0]] - 10.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn a_pixel_without_observations_is_nan_everywhere() {
        let mut acc = StepAccumulator::new(&[(0, 9), (10, 19)], 1, 1, 1);
        acc.add(2, &Array3::from_elem((1, 1, 1), f32::NAN));
        let r = acc.finish();
        assert_eq!(r.n_obs[[0, 0]], 0);
        assert!(r.values.iter().all(|v| v.is_nan()));
        assert!(r.mean[[0, 0, 0]].is_nan());
    }
}
