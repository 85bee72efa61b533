//! The statistics of an honest comparison: confidence intervals from a bootstrap over spatial
//! blocks (neighbouring pixels are not independent samples), McNemar's test on paired pixels,
//! a sign-flip permutation test over blocks (the effective sample size), Holm's adjustment,
//! and the area estimator of Olofsson et al. (2014).

use crate::rng::Rng;

/// erfc(x), Chebyshev fit with fractional error below 1.2e-7 everywhere (Numerical Recipes'
/// `erfcc`).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Upper tail of the chi-squared distribution with one degree of freedom.
pub fn chi2_1_sf(x: f64) -> f64 {
    if x <= 0.0 {
        1.0
    } else {
        erfc((x / 2.0).sqrt())
    }
}

/// McNemar's test of two classifiers on the same pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McNemar {
    /// Pixels only the first got right.
    pub only_a: u64,
    /// Pixels only the second got right.
    pub only_b: u64,
    /// Two-sided p-value.
    pub p: f64,
    /// Exact binomial (true) or chi-squared with continuity correction.
    pub exact: bool,
}

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// McNemar's test from the discordant counts: exact two-sided binomial (p = 1/2) up to 1000
/// discordant pixels, else chi-squared with Edwards' continuity correction.
pub fn mcnemar(only_a: u64, only_b: u64) -> McNemar {
    let n = only_a + only_b;
    let lo = only_a.min(only_b);
    let (p, exact) = if n == 0 {
        (1.0, true)
    } else if n <= 1000 {
        let tail: f64 = (0..=lo)
            .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
            .sum();
        ((2.0 * tail).min(1.0), true)
    } else {
        let d = (only_a as f64 - only_b as f64).abs() - 1.0;
        (chi2_1_sf(d.max(0.0).powi(2) / n as f64), false)
    };
    McNemar {
        only_a,
        only_b,
        p,
        exact,
    }
}

/// Holm's step-down adjustment of `p` (same order as given).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Two-sided sign-flip permutation test that paired differences `d` (one per block) have
/// mean zero: the share of sign assignments whose |sum| reaches the observed |sum|. Exact
/// for up to 16 blocks, else `iters` random assignments from `seed` ((hits + 1) / (iters + 1)).
pub fn sign_flip_test(d: &[f64], iters: usize, seed: u64) -> f64 {
    let n = d.len();
    if n == 0 {
        return 1.0;
    }
    let obs = d.iter().sum::<f64>().abs() - 1e-12 * d.iter().map(|x| x.abs()).sum::<f64>();
    if n <= 16 {
        let total = 1u64 << n;
        let hits = (0..total)
            .filter(|mask| {
                let s: f64 = (0..n)
                    .map(|i| if mask >> i & 1 == 1 { -d[i] } else { d[i] })
                    .sum();
                s.abs() >= obs
            })
            .count();
        return hits as f64 / total as f64;
    }
    let mut rng = Rng::new(seed);
    let hits = (0..iters)
        .filter(|_| {
            let s: f64 = d
                .iter()
                .map(|&x| if rng.f64() < 0.5 { -x } else { x })
                .sum();
            s.abs() >= obs
        })
        .count();
    (hits + 1) as f64 / (iters + 1) as f64
}

/// The 2.5 and 97.5 percentiles of `metric` over `reps` bootstrap resamples of `units`
/// (drawn with replacement from `seed`); each unit is summed into one accumulator.
pub fn bootstrap_ci<U, A: Clone>(
    units: &[U],
    zero: A,
    add: impl Fn(&mut A, &U),
    metric: impl Fn(&A) -> f64,
    reps: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    bootstrap_cis(units, zero, add, |a| vec![metric(a)], reps, seed)
        .into_iter()
        .next()
        .flatten()
}

/// [`bootstrap_ci`] of several metrics from the same resamples (one accumulation per
/// resample, whatever the number of metrics); `metrics` returns them in a fixed order, NaN
/// where undefined (left out of that metric's percentiles).
pub fn bootstrap_cis<U, A: Clone>(
    units: &[U],
    zero: A,
    add: impl Fn(&mut A, &U),
    metrics: impl Fn(&A) -> Vec<f64>,
    reps: usize,
    seed: u64,
) -> Vec<Option<(f64, f64)>> {
    if units.len() < 2 {
        return vec![None; metrics(&zero).len()];
    }
    let mut rng = Rng::new(seed);
    let mut vals: Vec<Vec<f64>> = Vec::new();
    for _ in 0..reps {
        let mut acc = zero.clone();
        for _ in 0..units.len() {
            let i = ((rng.f64() * units.len() as f64) as usize).min(units.len() - 1);
            add(&mut acc, &units[i]);
        }
        let m = metrics(&acc);
        vals.resize(m.len(), Vec::new());
        for (v, x) in vals.iter_mut().zip(m) {
            if x.is_finite() {
                v.push(x);
            }
        }
    }
    vals.into_iter()
        .map(|mut v| {
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            let q = |f: f64| v[((f * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
            Some((q(0.025), q(0.975)))
        })
        .collect()
}

/// Error-adjusted area of one class (Olofsson et al. 2014, eqs. 9-12).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassArea {
    /// Mapped area (map pixels x pixel area).
    pub mapped: f64,
    /// Error-adjusted (stratified estimator) area.
    pub adjusted: f64,
    /// Half-width of its 95 % confidence interval.
    pub ci95: f64,
    /// User's accuracy (None when no sample was mapped as the class).
    pub users: Option<f64>,
    /// Producer's accuracy (None when the class has no estimated area).
    pub producers: Option<f64>,
}

/// Area estimates and area-weighted accuracies.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaEstimate {
    /// Per class, in class order.
    pub classes: Vec<ClassArea>,
    /// Overall accuracy weighted by mapped area.
    pub overall: f64,
    /// Its standard error.
    pub overall_se: f64,
}

/// Olofsson et al. (2014): the reference sample `n[i][j]` (map class i, reference class j),
/// stratified by map class, and the mapped pixel count of each class; areas in units of
/// `pixel_area`.
pub fn olofsson(n: &[Vec<u64>], mapped: &[u64], pixel_area: f64) -> Option<AreaEstimate> {
    let k = mapped.len();
    let total: u64 = mapped.iter().sum();
    if total == 0 || n.len() != k {
        return None;
    }
    let w: Vec<f64> = mapped.iter().map(|&m| m as f64 / total as f64).collect();
    let ni: Vec<f64> = n.iter().map(|r| r.iter().sum::<u64>() as f64).collect();
    // Estimated cell proportions p_ij = W_i n_ij / n_i (strata without samples contribute 0).
    let p = |i: usize, j: usize| {
        if ni[i] > 0.0 {
            w[i] * n[i][j] as f64 / ni[i]
        } else {
            0.0
        }
    };
    let a = total as f64 * pixel_area;
    let mut classes = Vec::with_capacity(k);
    for j in 0..k {
        let pj: f64 = (0..k).map(|i| p(i, j)).sum();
        let var: f64 = (0..k)
            .filter(|&i| ni[i] > 1.0)
            .map(|i| {
                let f = n[i][j] as f64 / ni[i];
                w[i] * w[i] * f * (1.0 - f) / (ni[i] - 1.0)
            })
            .sum();
        classes.push(ClassArea {
            mapped: mapped[j] as f64 * pixel_area,
            adjusted: pj * a,
            ci95: 1.96 * var.sqrt() * a,
            users: (ni[j] > 0.0).then(|| n[j][j] as f64 / ni[j]),
            producers: (pj > 0.0).then(|| p(j, j) / pj),
        });
    }
    let overall: f64 = (0..k).map(|i| p(i, i)).sum();
    let var: f64 = (0..k)
        .filter(|&i| ni[i] > 1.0)
        .map(|i| {
            let u = n[i][i] as f64 / ni[i];
            w[i] * w[i] * u * (1.0 - u) / (ni[i] - 1.0)
        })
        .sum();
    Some(AreaEstimate {
        classes,
        overall,
        overall_se: var.sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_and_chi2_match_tabulated_values() {
        // erfc(0.5) = 0.4795001222, erfc(2) = 0.004677734981; chi2(1) upper tail at 3.841 = 0.05.
        assert!((erfc(0.5) - 0.479_500_122_2).abs() < 1e-7);
        assert!((erfc(2.0) - 0.004_677_734_981).abs() < 1e-9);
        assert!((erfc(-1.0) - 1.842_700_792_9).abs() < 1e-7);
        assert!((chi2_1_sf(3.841_458_820_694) - 0.05).abs() < 1e-7);
    }

    #[test]
    fn mcnemar_matches_hand_computed_cases() {
        // Exact: 2 vs 8 discordant: P(X <= 2 | n=10) = (1 + 10 + 45) / 1024; two-sided x2.
        let m = mcnemar(2, 8);
        assert!(m.exact);
        assert!((m.p - 2.0 * 56.0 / 1024.0).abs() < 1e-12, "{}", m.p);
        assert_eq!(mcnemar(5, 5).p, 1.0);
        assert_eq!(mcnemar(0, 0).p, 1.0);
        // Chi-squared with continuity correction: (|600 - 500| - 1)^2 / 1100 = 8.91.
        let m = mcnemar(600, 500);
        assert!(!m.exact);
        let x: f64 = 99.0 * 99.0 / 1100.0;
        assert!((m.p - erfc((x / 2.0).sqrt())).abs() < 1e-15);
        assert!((m.p - 0.002_836).abs() < 2e-5, "{}", m.p);
    }

    #[test]
    fn holm_adjusts_step_down_and_keeps_order() {
        // m = 4: sorted 0.01 (x4), 0.02 (x3), 0.03 (x2), 0.04 (x1), monotone.
        let a = holm(&[0.04, 0.01, 0.03, 0.02]);
        let want = [0.06, 0.04, 0.06, 0.06];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{a:?}");
        }
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
    }

    #[test]
    fn sign_flip_test_is_exact_on_small_sets_and_close_on_large_ones() {
        // All five differences positive: only the all-plus and all-minus assignments reach
        // the observed |sum|: p = 2/32.
        assert!((sign_flip_test(&[1.0, 2.0, 3.0, 4.0, 5.0], 0, 1) - 2.0 / 32.0).abs() < 1e-12);
        assert_eq!(sign_flip_test(&[1.0, -1.0], 0, 1), 1.0);
        // 40 blocks, no effect: p far from 0; a clear effect: p near 0.
        let noise: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(sign_flip_test(&noise, 2000, 3) > 0.5);
        let effect: Vec<f64> = (0..40).map(|i| 1.0 + (i % 3) as f64).collect();
        assert!(sign_flip_test(&effect, 2000, 3) < 0.001);
    }

    #[test]
    fn bootstrap_interval_covers_the_estimate_and_narrows_with_more_blocks() {
        let blocks = |n: usize| -> Vec<(u64, u64)> {
            (0..n).map(|i| (80 + (i % 7) as u64 * 3, 100)).collect()
        };
        let ci = |b: &[(u64, u64)]| {
            bootstrap_ci(
                b,
                (0u64, 0u64),
                |a, u| {
                    a.0 += u.0;
                    a.1 += u.1
                },
                |a| a.0 as f64 / a.1 as f64,
                1000,
                9,
            )
            .unwrap()
        };
        let (lo, hi) = ci(&blocks(20));
        let est = blocks(20).iter().map(|b| b.0).sum::<u64>() as f64 / 2000.0;
        assert!(lo < est && est < hi, "{lo} {est} {hi}");
        let (lo2, hi2) = ci(&blocks(200));
        assert!(hi2 - lo2 < hi - lo);
        assert!(bootstrap_ci(&blocks(1), (0, 0), |_, _| {}, |_| 0.0, 10, 1).is_none());
        // Several metrics from the same resamples equal each one alone.
        let b = blocks(30);
        let add = |a: &mut (u64, u64), u: &(u64, u64)| {
            a.0 += u.0;
            a.1 += u.1
        };
        let both = bootstrap_cis(
            &b,
            (0, 0),
            add,
            |a| vec![a.0 as f64 / a.1 as f64, a.1 as f64],
            500,
            4,
        );
        assert_eq!(
            both[0],
            bootstrap_ci(&b, (0, 0), add, |a| a.0 as f64 / a.1 as f64, 500, 4)
        );
        assert_eq!(both[1], Some((3000.0, 3000.0)));
    }

    /// The worked example of Olofsson et al. (2014), section 5 (tables 8 and 9): strata
    /// deforestation, forest gain, stable forest, stable non-forest; 30 m pixels (0.09 ha).
    #[test]
    fn olofsson_reproduces_the_papers_worked_example() {
        let n = vec![
            vec![66, 0, 5, 4],
            vec![0, 55, 8, 12],
            vec![1, 0, 153, 11],
            vec![2, 1, 9, 313],
        ];
        let mapped = [200_000, 150_000, 3_200_000, 6_450_000];
        let e = olofsson(&n, &mapped, 0.09).unwrap();
        // Paper: deforestation 21,158 ha +- 6,158 ha; forest gain 11,686 ha +- 3,756 ha;
        // stable forest 285,770 ha +- 15,510 ha; stable non-forest 581,386 ha +- 16,282 ha.
        let want = [
            (21_158.0, 6_158.0),
            (11_686.0, 3_756.0),
            (285_770.0, 15_510.0),
            (581_386.0, 16_282.0),
        ];
        for (c, (a, ci)) in e.classes.iter().zip(want) {
            assert!((c.adjusted - a).abs() < 1.0, "{} vs {a}", c.adjusted);
            assert!((c.ci95 - ci).abs() < 2.0, "{} vs {ci}", c.ci95);
        }
        // Accuracies (table 9): user's 0.88, 0.73, 0.93, 0.96; producer's 0.75, 0.85, 0.93,
        // 0.96; overall 0.95.
        let r2 = |x: f64| (x * 100.0).round() / 100.0;
        let users: Vec<f64> = e.classes.iter().map(|c| r2(c.users.unwrap())).collect();
        let producers: Vec<f64> = e.classes.iter().map(|c| r2(c.producers.unwrap())).collect();
        assert_eq!(users, [0.88, 0.73, 0.93, 0.96]);
        assert_eq!(producers, [0.75, 0.85, 0.93, 0.96]);
        assert_eq!(r2(e.overall), 0.95);
    }
}
