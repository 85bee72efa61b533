//! Temperature scaling of the Monte Carlo predictive distribution on validation pixels.

use burn::prelude::*;

use super::*;

/// A labelled validation pixel for temperature fitting: every Monte Carlo pass's mean logits
/// (`passes * K`) and log-variance.
#[derive(Debug, Clone)]
pub struct CalSample {
    /// Mean logits per pass.
    pub mu: Vec<f32>,
    /// Log-variance per pass.
    pub logvar: Vec<f32>,
    /// Class index.
    pub label: usize,
}

/// Validation pixels used for temperature fitting (at most this many, evenly strided).
pub(crate) const MAX_CAL_SAMPLES: usize = 20_000;

/// The model's Monte Carlo outputs on the labelled pixels of the validation patches.
pub(crate) fn calibration_samples(
    net: &FusionNet,
    norm: &Normalisation,
    val: &[Patch],
    cfg: &TrainConfig,
    device: &Device,
) -> Vec<CalSample> {
    let spec = net.spec();
    let k = spec.classes;
    let passes = mc_passes(cfg);
    let keep = 1.0 - cfg.dropout;
    let hc = net.head_channels();
    let mut rng = Rng::new(cfg.seed ^ 0xCA1B);
    let mut out = Vec::new();
    let dates = super::predict::drops_dates(cfg);
    // One batch of patches (at most 16, as `val_batches` cuts them).
    let one = |chunk: &[Patch]| val_batches(net, norm, chunk, 0, device).next();
    for chunk in val.chunks(16) {
        let Some(vb) = one(chunk) else { continue };
        let (b, p) = (vb.b, vb.p);
        let shared = (!dates).then(|| net.hidden(&vb.latent));
        let mut mus = Vec::with_capacity(passes);
        let mut lvs = Vec::with_capacity(passes);
        for t in 0..passes {
            // The passes drop the dates inference drops (the same steps per pass).
            let own = dates
                .then(|| {
                    let hidden: Vec<Patch> = chunk
                        .iter()
                        .map(|x| {
                            let mut x = x.clone();
                            super::predict::hide_pass_dates(cfg, &mut x.raw, t);
                            x
                        })
                        .collect();
                    one(&hidden)
                })
                .flatten()
                .map(|v| (net.hidden(&v.latent), v.latent));
            let fallback;
            let (hidden, latent) = match (&own, &shared) {
                (Some((h, l)), _) => (h, l),
                (None, Some(h)) => (h, &vb.latent),
                (None, None) => {
                    fallback = net.hidden(&vb.latent);
                    (&fallback, &vb.latent)
                }
            };
            let mask = (cfg.dropout > 0.0).then(|| {
                to_tensor(
                    dropout_mask(&mut rng, b * hc * p * p, keep),
                    [b, hc, p, p],
                    device,
                )
            });
            let f =
                model::precision_fuse(&net.expert_outputs(hidden, mask.as_ref()), &latent.presence);
            mus.push(to_vec(f.mu));
            lvs.push(to_vec(f.logvar));
        }
        let pp = p * p;
        for &(i, px, label) in &vb.labelled {
            out.push(CalSample {
                mu: (0..passes)
                    .flat_map(|t| (0..k).map(move |c| (t, c)))
                    .map(|(t, c)| mus[t][(i * k + c) * pp + px])
                    .collect(),
                logvar: (0..passes).map(|t| lvs[t][i * pp + px]).collect(),
                label,
            });
        }
    }
    let stride = out.len().div_ceil(MAX_CAL_SAMPLES).max(1);
    out.into_iter().step_by(stride).collect()
}

/// Temperature scaling (Guo et al. 2017) of the full predictive distribution
/// ([`mc_predictive`]): the T > 0 minimising the negative log-likelihood of the labelled
/// samples, searched on a log grid over [0.05, 10] and refined by golden section.
pub fn fit_temperature(samples: &[CalSample], eps: &[f32], k: usize) -> f64 {
    use rayon::prelude::*;
    if samples.is_empty() {
        return 1.0;
    }
    let nll = |t: f64| -> f64 {
        samples
            .par_iter()
            .map_init(
                || vec![0f32; k],
                |p, s| {
                    mc_predictive(&s.mu, &s.logvar, eps, k, t as f32, p);
                    -(p[s.label].max(1e-12) as f64).ln()
                },
            )
            .sum::<f64>()
            / samples.len() as f64
    };
    let (lo, hi) = (0.05f64.ln(), 10f64.ln());
    let n = 40;
    let grid: Vec<f64> = (0..=n)
        .map(|i| lo + i as f64 / n as f64 * (hi - lo))
        .collect();
    let vals: Vec<f64> = grid.iter().map(|&g| nll(g.exp())).collect();
    let best = (0..=n)
        .min_by(|&a, &b| vals[a].total_cmp(&vals[b]))
        .unwrap_or(n / 2);
    // Golden-section search on log T between the best grid point's neighbours.
    let (mut a, mut b) = (grid[best.saturating_sub(1)], grid[(best + 1).min(n)]);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (nll(c.exp()), nll(d.exp()));
    for _ in 0..12 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = nll(c.exp());
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = nll(d.exp());
        }
    }
    let t = ((a + b) / 2.0).exp();
    if nll(t) <= vals[best] {
        t
    } else {
        grid[best].exp()
    }
}
