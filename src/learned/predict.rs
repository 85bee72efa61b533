//! Inference: Monte Carlo dropout passes (native CPU kernels or burn) and the predictive
//! distribution with its expected entropy.

use burn::prelude::*;
use ndarray::{s, Array2, Array3};

use super::*;

/// Output of [`LearnedModel::predict_full`].
pub struct Prediction {
    /// Calibrated mean class probabilities `[K, h, w]`.
    pub probs: Array3<f32>,
    /// Mean per-pass entropy of the calibrated probabilities (nats) `[h, w]`.
    pub entropy: Array2<f32>,
    /// Each pass's fused mean logits `[K * h * w]`, for [`Prediction::uncalibrated`].
    mus: Vec<Vec<f32>>,
    /// Each pass's fused log-variance `[h * w]`.
    lvs: Vec<Vec<f32>>,
    eps: Vec<f32>,
    width: usize,
}

/// Rows `top..top + h`, columns `left..left + w` of one plane `[rows * width]`.
fn crop_plane(
    v: &[f32],
    width: usize,
    (top, left): (usize, usize),
    (h, w): (usize, usize),
) -> Vec<f32> {
    v.chunks(width)
        .skip(top)
        .take(h)
        .flat_map(|row| row[left..left + w].iter().copied())
        .collect()
}

impl Prediction {
    /// The `h` x `w` window at (`top`, `left`) of this prediction.
    fn crop(self, (top, left): (usize, usize), (h, w): (usize, usize)) -> Prediction {
        let (rows, width) = (self.probs.shape()[1], self.width);
        let plane = |v: &Vec<f32>| {
            v.chunks(rows * width)
                .flat_map(|p| crop_plane(p, width, (top, left), (h, w)))
                .collect::<Vec<f32>>()
        };
        Prediction {
            probs: self
                .probs
                .slice(s![.., top..top + h, left..left + w])
                .to_owned(),
            entropy: self
                .entropy
                .slice(s![top..top + h, left..left + w])
                .to_owned(),
            mus: self.mus.iter().map(plane).collect(),
            lvs: self.lvs.iter().map(plane).collect(),
            eps: self.eps,
            width: w,
        }
    }

    /// Uncalibrated (temperature 1) mean class probabilities at pixel (`r`, `c`), computed on
    /// demand (only the held-out pixels need them, for `ece_uncalibrated`).
    pub fn uncalibrated(&self, r: usize, c: usize) -> Vec<f32> {
        let k = self.probs.shape()[0];
        let (mu, lv) = pixel_passes(
            &self.mus,
            &self.lvs,
            k,
            self.probs.shape()[1] * self.width,
            r * self.width + c,
        );
        let mut p = vec![0f32; k];
        mc_predictive(&mu, &lv, &self.eps, k, 1.0, &mut p);
        p
    }
}

/// One pixel's per-pass mean logits (`passes * K`) and log-variances from per-pass planes.
pub(crate) fn pixel_passes(
    mus: &[Vec<f32>],
    lvs: &[Vec<f32>],
    k: usize,
    hw: usize,
    px: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mu = mus
        .iter()
        .flat_map(|m| (0..k).map(move |j| m.get(j * hw + px).copied().unwrap_or(0.0)))
        .collect();
    let lv = lvs
        .iter()
        .map(|l| l.get(px).copied().unwrap_or(0.0))
        .collect();
    (mu, lv)
}

impl LearnedModel {
    /// Halo a tile needs so its core equals an untiled run (the receptive radius).
    pub fn halo(&self) -> usize {
        self.meta.config.spec.receptive_radius()
    }

    /// Predicts a window of raw bands `[spec.raw_bands() (+ hybrid features), h, w]` whose top-left pixel is `origin` (row, col)
    /// in the scene. Returns mean class probabilities `[K, h, w]` and mean per-pass entropy
    /// (nats) `[h, w]` over the Monte Carlo dropout passes. The encoders and fusion run once;
    /// only the head runs per pass, with dropout masks hashed from scene coordinates (so a
    /// pixel gets the same masks whatever the tiling).
    pub fn predict(&self, raw: &Array3<f32>, origin: (usize, usize)) -> (Array3<f32>, Array2<f32>) {
        let p = self.predict_full(raw, origin);
        (p.probs, p.entropy)
    }

    /// [`predict`](Self::predict) with access to the uncalibrated probabilities.
    ///
    /// Per pass t the experts' heads run with dropout and are precision-weighted into mean
    /// logits mu_t and a log-variance; the pass's predictive distribution is
    /// p_t = mean_s softmax((mu_t + sigma_t eps_s) / T) over [`NOISE_SAMPLES`] fixed logit-noise
    /// samples. The result is mean_t p_t and mean_t H(p_t) (the expected entropy, aleatoric).
    pub fn predict_full(&self, raw: &Array3<f32>, origin: (usize, usize)) -> Prediction {
        // A multi-scale encoder pools on the scene's lattice: a window that starts off it is
        // grown up and left with missing pixels (zeros to the network) and cropped back.
        let a = self.meta.config.spec.encoder.alignment();
        let (top, left) = (origin.0 % a, origin.1 % a);
        if top + left > 0 {
            let (nb, h, w) = raw.dim();
            let mut grown = Array3::from_elem((nb, h + top, w + left), f32::NAN);
            grown.slice_mut(s![.., top.., left..]).assign(raw);
            return self
                .predict_full(&grown, (origin.0 - top, origin.1 - left))
                .crop((top, left), (h, w));
        }
        let (_, h, w) = raw.dim();
        let k = self.meta.classes.len();
        let cfg = &self.meta.config;
        let passes = mc_passes(cfg);
        let (mus, lvs) = match self.native_net() {
            Some(n) => self.passes_native(n, raw, origin),
            None => self.passes_burn(raw, origin),
        };
        let eps = inference_noise(cfg.seed, passes, k);
        let temperature = self.meta.report.temperature as f32;
        let hw = h * w;
        let mut pm = vec![0f32; hw * k];
        let mut ent = vec![0f32; hw];
        use rayon::prelude::*;
        pm.par_chunks_mut(k)
            .zip(ent.par_iter_mut())
            .enumerate()
            .for_each(|(px, (p, e))| {
                let (mu, lv) = pixel_passes(&mus, &lvs, k, hw, px);
                *e = mc_predictive(&mu, &lv, &eps, k, temperature, p);
            });
        let probs = Array3::from_shape_vec((h, w, k), pm)
            .map(|a| a.permuted_axes([2, 0, 1]).as_standard_layout().to_owned())
            .unwrap_or_else(|_| Array3::zeros((k, h, w)));
        Prediction {
            probs,
            entropy: Array2::from_shape_vec((h, w), ent).unwrap_or_else(|_| Array2::zeros((h, w))),
            mus,
            lvs,
            eps,
            width: w,
        }
    }

    /// The native weights when inference runs on the CPU.
    pub(crate) fn native_net(&self) -> Option<&native::NativeNet> {
        self.runtime.native.then(|| {
            self.native
                .get_or_init(|| native::NativeNet::from_burn(&self.net))
        })
    }

    /// Dropout keep-mask value of head channel `ch` (all experts' hidden channels numbered in
    /// order) in pass `t` at scene pixel (`row`, `col`): 1 / keep or 0, hashed from the scene
    /// coordinates so that tiling cannot change it. Returns, for one (`t`, `ch`, `row`), the
    /// function of `col`.
    pub(crate) fn mask_row(&self, t: usize, ch: usize, row: usize) -> impl Fn(usize) -> f32 {
        let cfg = &self.meta.config;
        let keep = 1.0 - cfg.dropout;
        let third = hash4_third(
            hash4_prefix(cfg.seed ^ 0xD80, t as u64, ch as u64),
            row as u64,
        );
        let scale = (1.0 / keep) as f32;
        move |col| {
            if unit(hash4_last(third, col as u64)) < keep {
                scale
            } else {
                0.0
            }
        }
    }

    /// Every Monte Carlo pass's fused mean logits `[K][h * w]` and log-variance `[h * w]`
    /// through burn's operators (the GPU path).
    pub(crate) fn passes_burn(
        &self,
        raw: &Array3<f32>,
        origin: (usize, usize),
    ) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let (_, h, w) = raw.dim();
        let dev = &self.runtime.device;
        let cfg = &self.meta.config;
        // Encoders, fusion and the heads' first layer are deterministic: they run once,
        // unless the passes also drop dates (then once per pass, on the pass's dates).
        let run = |raw: &Array3<f32>| {
            let latent = self.net.latent(self.input_tensor(raw));
            let hidden = self.net.hidden(&latent);
            (latent, hidden)
        };
        let shared = (!self.drops_dates()).then(|| run(raw));
        let passes = mc_passes(cfg);
        let hc = self.net.head_channels();
        let mut mus = Vec::with_capacity(passes);
        let mut lvs = Vec::with_capacity(passes);
        for t in 0..passes {
            let own = self.pass_dates(raw, t).map(|r| run(&r));
            let (latent, hidden) = own.as_ref().or(shared.as_ref()).expect("a forward pass");
            let mask = (cfg.dropout > 0.0).then(|| {
                let mut m = Vec::with_capacity(hc * h * w);
                for ch in 0..hc {
                    for r in 0..h {
                        let f = self.mask_row(t, ch, origin.0 + r);
                        m.extend((0..w).map(|c| f(origin.1 + c)));
                    }
                }
                to_tensor(m, [1, hc, h, w], dev)
            });
            let outs = self.net.expert_outputs(hidden, mask.as_ref());
            let f = model::precision_fuse(&outs, &latent.presence);
            mus.push(to_vec(f.mu));
            lvs.push(to_vec(f.logvar));
        }
        (mus, lvs)
    }

    /// [`passes_burn`](Self::passes_burn) through [`native`]: the same masks, the same
    /// operations.
    pub(crate) fn passes_native(
        &self,
        net: &native::NativeNet,
        raw: &Array3<f32>,
        origin: (usize, usize),
    ) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        use rayon::prelude::*;
        let cfg = &self.meta.config;
        let width = cfg.spec.width;
        let run = |raw: &Array3<f32>| {
            let latent = net.latent(&assemble_pixels(raw, &self.meta.normalisation, &cfg.spec));
            let hidden = net.hidden(&latent);
            (latent, hidden)
        };
        let shared = (!self.drops_dates()).then(|| run(raw));
        let passes = mc_passes(cfg);
        let mut mus = Vec::with_capacity(passes);
        let mut lvs = Vec::with_capacity(passes);
        for t in 0..passes {
            let own = self.pass_dates(raw, t).map(|r| run(&r));
            let (latent, hidden) = own.as_ref().or(shared.as_ref()).expect("a forward pass");
            let f = net.pass(latent, hidden, |e, z| {
                (cfg.dropout > 0.0).then(|| {
                    let mut m = z.clone();
                    m.v.par_chunks_mut(z.w * z.c)
                        .enumerate()
                        .for_each(|(r, row)| {
                            // Pixel by pixel, each channel's row hash hoisted.
                            let keep: Vec<_> = (0..z.c)
                                .map(|j| self.mask_row(t, e * width + j, origin.0 + r))
                                .collect();
                            for (c, px) in row.chunks_exact_mut(z.c).enumerate() {
                                for (v, k) in px.iter_mut().zip(&keep) {
                                    *v *= k(origin.1 + c);
                                }
                            }
                        });
                    m
                })
            });
            mus.push(f.mu);
            lvs.push(f.logvar);
        }
        (mus, lvs)
    }

    /// Whether the Monte Carlo passes drop dates ([`drops_dates`]).
    pub(crate) fn drops_dates(&self) -> bool {
        drops_dates(&self.meta.config)
    }

    /// The raw window of Monte Carlo pass `t` with the pass's dates hidden
    /// ([`hide_pass_dates`]); None when the passes keep every date.
    pub(crate) fn pass_dates(&self, raw: &Array3<f32>, t: usize) -> Option<Array3<f32>> {
        self.drops_dates().then(|| {
            let mut x = raw.clone();
            hide_pass_dates(&self.meta.config, &mut x, t);
            x
        })
    }

    /// The network input of a window of raw bands `[1, in_ch, h, w]`.
    pub(crate) fn input_tensor(&self, raw: &Array3<f32>) -> Tensor<4> {
        let (_, h, w) = raw.dim();
        let spec = &self.meta.config.spec;
        let x = assemble(raw, &self.meta.normalisation, spec);
        to_tensor(
            x.into_raw_vec_and_offset().0,
            [1, spec.in_ch(), h, w],
            &self.runtime.device,
        )
    }

    /// Deterministic forward pass (no dropout, no logit noise) from raw bands: the
    /// precision-weighted mean logits `[K, h, w]` and log-variance `[h, w]`. What
    /// `geofuse bench-net` times against the same network in PyTorch.
    pub fn forward(&self, raw: &Array3<f32>) -> (Array3<f32>, Array2<f32>) {
        let (_, h, w) = raw.dim();
        let k = self.meta.classes.len();
        let (mu, logvar) = match self.native_net() {
            Some(n) => {
                let spec = &self.meta.config.spec;
                let x = assemble_pixels(raw, &self.meta.normalisation, spec);
                let latent = n.latent(&x);
                let f = n.pass(&latent, &n.hidden(&latent), |_, _| None);
                (f.mu, f.logvar)
            }
            None => {
                let f = self
                    .net
                    .fused(&self.net.latent(self.input_tensor(raw)), None);
                (to_vec(f.mu), to_vec(f.logvar))
            }
        };
        (
            Array3::from_shape_vec((k, h, w), mu).unwrap_or_else(|_| Array3::zeros((k, h, w))),
            Array2::from_shape_vec((h, w), logvar).unwrap_or_else(|_| Array2::zeros((h, w))),
        )
    }

    /// Precision weight of each expert at every pixel of a window of raw bands (deterministic
    /// heads, no dropout): `[experts][h, w]`, experts ordered optical, SAR, joint (one entry for
    /// single-branch fusions). Where any expert is present the weights sum to 1; a missing
    /// modality's experts weigh exactly 0.
    pub fn expert_weights(&self, raw: &Array3<f32>) -> Vec<Array2<f32>> {
        let (_, h, w) = raw.dim();
        let latent = self.net.latent(self.input_tensor(raw));
        let outs = self.net.expert_outputs(&self.net.hidden(&latent), None);
        model::precision_weights(&outs, &latent.presence)
            .into_iter()
            .map(|t| {
                Array2::from_shape_vec((h, w), to_vec(t)).unwrap_or_else(|_| Array2::zeros((h, w)))
            })
            .collect()
    }
}

/// Logit-noise samples per Monte Carlo pass at inference (antithetic pairs).
pub const NOISE_SAMPLES: usize = 8;

/// Monte Carlo passes a model runs at inference (1 without dropout, on the heads or on the
/// dates).
pub fn mc_passes(cfg: &TrainConfig) -> usize {
    if cfg.dropout > 0.0 || drops_dates(cfg) {
        cfg.mc_passes.max(1)
    } else {
        1
    }
}

/// Whether a model's Monte Carlo passes drop dates: a season model (temporal attention)
/// trained with date dropout keeps it at inference, as it keeps the heads' dropout, so the
/// spread of the passes also says how much the prediction hangs on which dates were clear
/// (unless `mc_dates` is off).
pub(crate) fn drops_dates(cfg: &TrainConfig) -> bool {
    cfg.date_dropout > 0.0 && cfg.mc_dates && cfg.spec.temporal.is_some()
}

/// Hides the optical steps Monte Carlo pass `t` drops from raw bands `[bands, h, w]` (a
/// window or a patch): each step of the season missing (as a cloudy date) with the model's
/// `date_dropout` rate, drawn per pass and step from the seed alone, so that every pixel of
/// the scene loses the same steps in a pass whatever the tiling.
pub(crate) fn hide_pass_dates(cfg: &TrainConfig, raw: &mut Array3<f32>, t: usize) {
    let steps = cfg.spec.temporal.map_or(0, |tc| tc.steps);
    for step in 0..steps {
        let h = crate::rng::hash4(cfg.seed ^ 0xDA7E, t as u64, step as u64, 0, 0);
        if crate::rng::unit(h) < cfg.date_dropout {
            super::input::hide_step(raw, &cfg.spec, step);
        }
    }
}

/// Standard-normal logit noise for inference, `[passes][NOISE_SAMPLES][k]` flattened:
/// antithetic pairs, fixed by the seed and shared by every pixel (so tiling cannot change it).
pub fn inference_noise(seed: u64, passes: usize, k: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(passes * NOISE_SAMPLES * k);
    for t in 0..passes {
        for s in 0..NOISE_SAMPLES / 2 {
            let draw: Vec<f32> = (0..k)
                .map(|j| {
                    // Box-Muller from two hashed uniforms in (0, 1).
                    let u1 = unit(hash4(seed ^ 0xE95, t as u64, s as u64, j as u64, 0)).max(1e-12);
                    let u2 = unit(hash4(seed ^ 0xE95, t as u64, s as u64, j as u64, 1));
                    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                })
                .collect();
            v.extend(draw.iter().copied());
            v.extend(draw.iter().map(|x| -x));
        }
    }
    v
}

/// Predictive distribution of one pixel from `passes` Monte Carlo passes: `mu` holds each
/// pass's K mean logits, `logvar` its log-variance, `eps` the noise of [`inference_noise`].
/// Writes p = mean_t p_t into `out`, with p_t = mean_s softmax((mu_t + sigma_t eps_ts) / T),
/// and returns mean_t H(p_t) in nats.
pub fn mc_predictive(
    mu: &[f32],
    logvar: &[f32],
    eps: &[f32],
    k: usize,
    temperature: f32,
    out: &mut [f32],
) -> f32 {
    let passes = logvar.len();
    let inv_t = 1.0 / temperature;
    out.iter_mut().for_each(|v| *v = 0.0);
    let mut pt = vec![0f32; k];
    let mut z = vec![0f32; k];
    let mut ent = 0.0;
    for t in 0..passes {
        let sigma = (0.5 * logvar[t]).exp();
        pt.iter_mut().for_each(|v| *v = 0.0);
        for s in 0..NOISE_SAMPLES {
            let e = &eps[(t * NOISE_SAMPLES + s) * k..(t * NOISE_SAMPLES + s + 1) * k];
            let mut m = f32::NEG_INFINITY;
            for j in 0..k {
                z[j] = (mu[t * k + j] + sigma * e[j]) * inv_t;
                m = m.max(z[j]);
            }
            let mut sum = 0.0;
            for v in z.iter_mut() {
                *v = (*v - m).exp();
                sum += *v;
            }
            for j in 0..k {
                pt[j] += z[j] / sum;
            }
        }
        for j in 0..k {
            pt[j] /= NOISE_SAMPLES as f32;
            out[j] += pt[j] / passes as f32;
        }
        ent += crate::uncertainty::entropy(&pt);
    }
    ent / passes as f32
}
