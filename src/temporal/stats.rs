//! Temporal statistics of a regular series (the WorldCereal / sits recipe): percentiles 10,
//! 50 and 90, mean, standard deviation, amplitude, the day of the maximum and the slope.

use ndarray::{Array3, ArrayView3};

/// Names of the statistics, in output order.
pub const STAT_NAMES: [&str; 8] = ["p10", "p50", "p90", "mean", "std", "amp", "tmax", "slope"];

/// The statistics of one series `v` whose steps are centred `t` days after the season's
/// start: percentiles (linear between order statistics), mean, population standard
/// deviation, amplitude (max - min), `tmax` (days from the season's start to the centre of
/// the first maximum) and the least-squares slope per 30 days. NaN when any value is NaN.
pub fn series_stats(v: &[f32], t: &[f64]) -> [f32; 8] {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return [f32::NAN; 8];
    }
    let n = v.len() as f64;
    let mut sorted: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
    sorted.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        let pos = q * (n - 1.0);
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
    };
    let mean = sorted.iter().sum::<f64>() / n;
    let var = sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let kmax = (0..v.len()).fold(0, |m, k| if v[k] > v[m] { k } else { m });
    let tm = t.iter().sum::<f64>() / n;
    let sxx: f64 = t.iter().map(|x| (x - tm).powi(2)).sum();
    let sxy: f64 = t
        .iter()
        .zip(v)
        .map(|(x, &y)| (x - tm) * (f64::from(y) - mean))
        .sum();
    let slope = if sxx > 0.0 { 30.0 * sxy / sxx } else { 0.0 };
    [
        pct(0.1),
        pct(0.5),
        pct(0.9),
        mean,
        var.sqrt(),
        sorted[sorted.len() - 1] - sorted[0],
        t[kmax],
        slope,
    ]
    .map(|x| x as f32)
}

/// [`series_stats`] of every pixel of `[step, row, col]`: `[stat, row, col]`.
pub fn stats_image(series: ArrayView3<f32>, t: &[f64]) -> Array3<f32> {
    let (n, h, w) = series.dim();
    let mut out = Array3::from_elem((STAT_NAMES.len(), h, w), f32::NAN);
    let mut v = vec![0f32; n];
    for r in 0..h {
        for c in 0..w {
            v.iter_mut()
                .enumerate()
                .for_each(|(k, x)| *x = series[[k, r, c]]);
            for (k, x) in series_stats(&v, t).into_iter().enumerate() {
                out[[k, r, c]] = x;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_hand_computed_series() {
        let v = [0.2f32, 0.6, 0.8, 0.4];
        let t = [15.0, 45.0, 75.0, 105.0];
        let s = series_stats(&v, &t);
        // sorted 0.2 0.4 0.6 0.8: p10 at 0.3 -> 0.26, p50 at 1.5 -> 0.5, p90 at 2.7 -> 0.74.
        let want = [0.26, 0.5, 0.74, 0.5, 0.05f32.sqrt(), 0.6, 75.0];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{s:?}");
        }
        // slope: sxy = (-45)(-0.3) + (-15)(0.1) + 15(0.3) + 45(-0.1) = 12, sxx = 4500.
        assert!((s[7] - 30.0 * 12.0 / 4500.0).abs() < 1e-6);
        assert!(series_stats(&[0.1, f32::NAN], &[0.0, 30.0])[0].is_nan());
    }
}
