//! Training: class-weighted sampled-softmax loss over all experts, modality dropout,
//! augmentation, early stopping on validation blocks, temperature fitting.

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::native_train::{Drawn, TrainNet};
use super::*;
pub use crate::config::network::Schedule;
use crate::config::ClassDef;
use crate::error::{Error, Result};

/// Training settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Network shape.
    pub spec: NetSpec,
    /// Maximum epochs.
    pub epochs: usize,
    /// Early-stopping patience (epochs).
    pub patience: usize,
    /// Patches per step.
    pub batch: usize,
    /// Peak learning rate (AdamW).
    pub learning_rate: f64,
    /// Learning-rate schedule over the epochs (models saved before it existed: constant).
    #[serde(default)]
    pub schedule: Schedule,
    /// Decoupled weight decay of AdamW (models saved before it existed: none).
    #[serde(default)]
    pub weight_decay: f64,
    /// Probability of dropping a whole modality for a patch.
    pub modality_dropout: f64,
    /// Radiometric augmentation: each training patch's optical reflectances times a gain
    /// drawn in [1 - g, 1 + g] and its SAR backscatter plus an offset in [-d, d] dB, as
    /// (g, d); (0, 0) = none (models saved before it existed).
    #[serde(default)]
    pub radiometric_jitter: (f64, f64),
    /// Probability of hiding each observed optical step of a training patch (seasons with
    /// temporal encoders); 0 = none (models saved before it existed).
    #[serde(default, skip_serializing_if = "super::model::is_off")]
    pub date_dropout: f64,
    /// Dropout before the head.
    pub dropout: f64,
    /// Monte Carlo passes at inference.
    pub mc_passes: usize,
    /// With date dropout: keep it in the Monte Carlo passes (an inference setting; models saved
    /// before it existed: true).
    #[serde(
        default = "crate::config::network::yes",
        skip_serializing_if = "crate::config::network::is_yes"
    )]
    pub mc_dates: bool,
    /// Seed.
    pub seed: u64,
}

impl Schedule {
    /// The rate of `epoch` (1-based) of `epochs` for peak rate `peak`.
    pub fn rate(self, peak: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Schedule::Constant => peak,
            Schedule::Cosine => {
                let t = (epoch.saturating_sub(1)) as f64 / (epochs.max(2) - 1) as f64;
                peak * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
            }
        }
    }
}

/// What training did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// Epoch (1-based) of the kept weights.
    pub best_epoch: usize,
    /// Validation mIoU of the kept weights.
    pub best_val_miou: f64,
    /// (training loss, validation mIoU) per epoch.
    pub history: Vec<(f64, f64)>,
    /// Class weights of the loss.
    pub class_weights: Vec<f32>,
    /// Labelled training pixels per class.
    pub class_pixels: Vec<usize>,
    /// Softmax temperature fitted on the validation blocks (1 = uncalibrated).
    #[serde(default = "unit_temperature")]
    pub temperature: f64,
    /// Training patches seen over all epochs (0 in models saved before it was recorded).
    #[serde(default)]
    pub patches_seen: usize,
}

pub(crate) fn unit_temperature() -> f64 {
    1.0
}

/// Logit-noise sample pairs per training step (antithetic: each draw and its negation).
pub(crate) const TRAIN_NOISE_PAIRS: usize = 2;

/// Inverse-frequency class weights of the loss (normalised to mean 1 over the present
/// classes, [`crate::classic::forest::balanced_weights`]) and labelled pixels per class.
fn loss_class_weights(train: &[Patch], k: usize) -> (Vec<f32>, Vec<usize>) {
    let mut counts = vec![0usize; k];
    for p in train {
        for &y in p.labels.iter().filter(|&&y| y >= 0) {
            counts[y as usize] += 1;
        }
    }
    let w = crate::classic::forest::balanced_weights(&counts);
    (w.iter().map(|&v| v as f32).collect(), counts)
}

/// A random permutation of 0..n (Fisher-Yates).
fn shuffled(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// The modality-dropout code of a patch: 1 drops the optical input, 2 the SAR input.
fn drop_code(rng: &mut Rng, p: f64) -> u8 {
    let u = rng.f64();
    if u < p / 2.0 {
        1
    } else if u < p {
        2
    } else {
        0
    }
}

/// A copy of `p` with its optical reflectances times a random gain in [1 - g, 1 + g] and its
/// SAR dB plus a random offset in [-d, d] (missing values stay missing; hybrid features as
/// they are).
fn jitter(p: &Patch, spec: &NetSpec, (g, d): (f64, f64), rng: &mut Rng) -> Patch {
    let gain = (1.0 + g * (2.0 * rng.f64() - 1.0)) as f32;
    let offset = (d * (2.0 * rng.f64() - 1.0)) as f32;
    let mut raw = p.raw.clone();
    let n = spec.optical;
    raw.slice_mut(ndarray::s![..n, .., ..])
        .mapv_inplace(|v| v * gain);
    raw.slice_mut(ndarray::s![n..n + spec.sar, .., ..])
        .mapv_inplace(|v| v + offset);
    Patch {
        raw,
        labels: p.labels.clone(),
    }
}

/// Hides each optical step of a season patch that holds an observation with probability `q`,
/// over the whole patch (its bands become NaN, as a cloudy date's are), so the temporal
/// encoders and the heads see seasons with fewer clear dates. A patch without temporal
/// encoders is returned unchanged.
fn drop_dates(mut p: Patch, spec: &NetSpec, q: f64, rng: &mut Rng) -> Patch {
    if let Some(t) = spec.temporal {
        let per = spec.optical / t.steps;
        for s in 0..t.steps {
            let step = ndarray::s![s * per..(s + 1) * per, .., ..];
            if rng.f64() < q && p.raw.slice(step).iter().any(|v| !v.is_nan()) {
                super::input::hide_step(&mut p.raw, spec, s);
            }
        }
    }
    p
}

/// A training patch with the configured augmentations that draw per patch: radiometric
/// jitter, then date dropout (none configured: a copy).
fn augmented(p: &Patch, config: &TrainConfig, rng: &mut Rng) -> Patch {
    let p = match config.radiometric_jitter {
        (0.0, 0.0) => p.clone(),
        jit => jitter(p, &config.spec, jit, rng),
    };
    if config.date_dropout > 0.0 {
        drop_dates(p, &config.spec, config.date_dropout, rng)
    } else {
        p
    }
}

/// What every training step shares.
struct Stepper<'a> {
    config: &'a TrainConfig,
    norm: &'a Normalisation,
    class_weights: &'a [f32],
    device: &'a Device,
    classes: usize,
}

impl Stepper<'_> {
    /// The random draws of one batch (patches `chunk` of `train`): augmentation, modality
    /// dropout, the heads' dropout mask (`head_ch` channels) and the logit noise, in the order
    /// every training step has drawn them. None when no pixel is labelled.
    fn draw(
        &self,
        head_ch: usize,
        train: &[Patch],
        chunk: &[usize],
        rng: &mut Rng,
    ) -> Option<Drawn> {
        let (config, k) = (self.config, self.classes);
        let copies: Vec<Patch>;
        let pts: Vec<&Patch> =
            if config.radiometric_jitter == (0.0, 0.0) && config.date_dropout == 0.0 {
                chunk.iter().map(|&i| &train[i]).collect()
            } else {
                copies = chunk
                    .iter()
                    .map(|&i| augmented(&train[i], config, rng))
                    .collect();
                copies.iter().collect()
            };
        let aug: Vec<usize> = chunk.iter().map(|_| rng.below(8)).collect();
        let drop: Vec<u8> = chunk
            .iter()
            .map(|_| drop_code(rng, config.modality_dropout))
            .collect();
        let (xs, ys, ws, p) = batch(
            &pts,
            self.norm,
            &config.spec,
            self.class_weights,
            &aug,
            &drop,
        );
        let b = pts.len();
        if ws.iter().all(|&w| w == 0.0) {
            return None;
        }
        let mask = (config.dropout > 0.0)
            .then(|| dropout_mask(rng, b * head_ch * p * p, 1.0 - config.dropout));
        // Antithetic standard-normal logit noise for the sampled-softmax loss.
        let mut eps = Vec::with_capacity(2 * TRAIN_NOISE_PAIRS);
        for _ in 0..TRAIN_NOISE_PAIRS {
            let e = rng.normals_f32(b * k * p * p);
            eps.push(e.iter().map(|v| -v).collect());
            eps.push(e);
        }
        Some(Drawn {
            xs,
            ys,
            ws,
            b,
            p,
            mask,
            eps,
        })
    }

    /// The loss of one batch and its gradients: geofuse's own backward pass where `native`
    /// holds the network's layers, burn's autodiff otherwise.
    fn gradients(&self, net: &FusionNet, d: &Drawn, native: bool) -> (f64, GradientsParams) {
        if native {
            if let Some(tn) = TrainNet::from_burn(net) {
                let (loss, grads) = tn.gradients(d);
                return (loss, tn.params(grads, &self.device.clone().inner()));
            }
        }
        let loss = burn_loss(net, d, self.device);
        let value = scalar(&loss);
        (value, GradientsParams::from_grads(loss.backward(), net))
    }
}

impl Stepper<'_> {
    /// One pass over `batches` of `train`: each batch's draws are made while the batch before
    /// it computes its gradients (the draws use geofuse's generator alone, so their order and
    /// values are those of drawing each batch just before its step), then AdamW steps. Returns
    /// the network, the loss summed over the steps and the steps taken (batches without a
    /// labelled pixel take none); `on_step` is called after each step.
    fn epoch(
        &self,
        mut net: FusionNet,
        (optim, lr): (&mut ModuleOptimizer, f64),
        (train, batches): (&[Patch], &[&[usize]]),
        rng: &mut Rng,
        (native, on_step): (bool, &mut dyn FnMut()),
    ) -> (FusionNet, f64, usize) {
        let hc = net.head_channels();
        let (mut loss_sum, mut steps) = (0.0, 0);
        let mut next = batches.first().map(|b| self.draw(hc, train, b, rng));
        for i in 0..batches.len() {
            let current = next.take().flatten();
            let (result, drawn) = rayon::join(
                || current.map(|d| self.gradients(&net, &d, native)),
                || batches.get(i + 1).map(|b| self.draw(hc, train, b, rng)),
            );
            next = drawn;
            if let Some((loss, grads)) = result {
                loss_sum += loss;
                steps += 1;
                net = optim.step(lr, net, grads);
                on_step();
            }
        }
        (net, loss_sum, steps)
    }
}

/// The loss of a drawn batch through burn: the fused prediction's sampled-softmax loss plus
/// each expert's own (deep supervision, so that every expert is a classifier on its own where
/// the others are missing).
pub(crate) fn burn_loss(net: &FusionNet, d: &Drawn, dev: &Device) -> Tensor<1> {
    let spec = net.spec();
    let (b, p, k) = (d.b, d.p, spec.classes);
    let x = to_tensor(d.xs.clone(), [b, spec.in_ch(), p, p], dev);
    let y = Tensor::<4, Int>::from_data(TensorData::new(d.ys.clone(), [b, 1, p, p]), dev);
    let wt = to_tensor(d.ws.clone(), [b, 1, p, p], dev);
    let latent = net.latent(x);
    let hidden = net.hidden(&latent);
    let mask = d
        .mask
        .as_ref()
        .map(|m| to_tensor(m.clone(), [b, net.head_channels(), p, p], dev));
    let eps: Vec<Tensor<4>> = d
        .eps
        .iter()
        .map(|e| to_tensor(e.clone(), [b, k, p, p], dev))
        .collect();
    let outs = net.expert_outputs(&hidden, mask.as_ref());
    let fused = model::precision_fuse(&outs, &latent.presence);
    let wnll = |o: &model::HeadOut, w: Tensor<4>| {
        (model::sampled_softmax_nll(o, &y, &eps) * w.clone()).sum() / w.sum().clamp_min(1e-6)
    };
    let mut loss = wnll(&fused, wt.clone());
    if outs.len() > 1 {
        for (o, pr) in outs.iter().zip(&latent.presence) {
            let w = match pr {
                Some(pr) => wt.clone() * pr.clone(),
                None => wt.clone(),
            };
            loss = loss + wnll(o, w);
        }
    }
    loss
}

/// Early stopping: the best validation mIoU's weights, and the history. Training stops after
/// `patience` epochs without a better score, but not before `min_epochs`: while the learning
/// rate is still high the validation score of fresh-patch training swings by 0.1-0.2 mIoU
/// from one epoch to the next, and a stop then keeps an undertrained network.
struct EarlyStop {
    best: Option<(FusionNet, usize, f64)>,
    history: Vec<(f64, f64)>,
    since_best: usize,
    patience: usize,
    min_epochs: usize,
}

impl EarlyStop {
    fn new(patience: usize, min_epochs: usize) -> EarlyStop {
        EarlyStop {
            best: None,
            history: Vec::new(),
            since_best: 0,
            patience,
            min_epochs,
        }
    }

    /// Records an epoch; true when training should stop.
    fn record(&mut self, net: FusionNet, epoch: usize, loss: f64, val_miou: f64) -> bool {
        self.history.push((loss, val_miou));
        if self.best.as_ref().is_none_or(|b| val_miou > b.2) {
            self.best = Some((net, epoch, val_miou));
            self.since_best = 0;
            false
        } else {
            self.since_best += 1;
            self.since_best >= self.patience && epoch >= self.min_epochs
        }
    }
}

impl LearnedModel {
    /// Trains a network on the patches `draw(epoch)` gives for each epoch (1-based; fresh
    /// patches per epoch, so the whole training area is seen, not one fixed sample),
    /// keeping the weights with the best validation mIoU on `val` patches (early stopping).
    /// The normalisation and the loss's class weights are fitted on the first epoch's
    /// patches. `on_epoch(epoch, loss, val_miou)` reports progress.
    pub fn train(
        runtime: &Runtime,
        config: &TrainConfig,
        (classes, optical_bands): (&[ClassDef], &[String]),
        draw: &mut dyn FnMut(usize) -> Result<Vec<Patch>>,
        val: &[Patch],
        mut on_epoch: impl FnMut(usize, f64, f64),
    ) -> Result<LearnedModel> {
        let mut train = draw(1)?;
        if train.is_empty() {
            return Err(Error::Internal("no training patches".into()));
        }
        let k = classes.len();
        let norm = Normalisation::from_patches(&train);
        let (class_weights, counts) = loss_class_weights(&train, k);
        let train_device = runtime.device.clone().autodiff();
        // burn's generator is global to the backend: seed and initialise under one lock so that
        // concurrent trainings (tests, library users) cannot interleave their draws. Every later
        // random choice (shuffles, augmentation, dropout masks) uses geofuse's own generator.
        let mut net = {
            let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            train_device.seed(config.seed);
            FusionNet::new(config.spec, &train_device).initialised(&train_device)
        };
        let mut optim = AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .init();
        let mut rng = Rng::new(config.seed ^ 0x7EA1);
        let stepper = Stepper {
            config,
            norm: &norm,
            class_weights: &class_weights,
            device: &train_device,
            classes: k,
        };
        let mut stop = EarlyStop::new(config.patience, config.epochs / 2);
        let mut seen = 0;
        for epoch in 1..=config.epochs {
            if epoch > 1 {
                train = draw(epoch)?;
            }
            let lr = config
                .schedule
                .rate(config.learning_rate, epoch, config.epochs);
            let order = shuffled(train.len(), &mut rng);
            let batches: Vec<&[usize]> = order.chunks(config.batch).collect();
            let (loss_sum, steps);
            (net, loss_sum, steps) = stepper.epoch(
                net,
                (&mut optim, lr),
                (&train, &batches),
                &mut rng,
                (runtime.native, &mut || {}),
            );
            seen += train.len();
            let snapshot = net.valid();
            let val_miou = validate(&snapshot, &norm, val, k, &runtime.device);
            let loss = loss_sum / steps.max(1) as f64;
            on_epoch(epoch, loss, val_miou);
            if stop.record(snapshot, epoch, loss, val_miou) {
                break;
            }
        }
        let (net, best_epoch, best_val_miou) = stop
            .best
            .ok_or_else(|| Error::Internal("training ran no epoch".into()))?;
        let cal = calibration_samples(&net, &norm, val, config, &runtime.device);
        let temperature =
            fit_temperature(&cal, &inference_noise(config.seed, mc_passes(config), k), k);
        let report = TrainReport {
            epochs: stop.history.len(),
            best_epoch,
            best_val_miou,
            history: stop.history,
            class_weights,
            class_pixels: counts,
            temperature,
            patches_seen: seen,
        };
        Ok(LearnedModel::assembled(
            runtime,
            config,
            (classes, optical_bands),
            norm,
            report,
            net,
        ))
    }
}

/// The value of a one-element tensor.
fn scalar(t: &Tensor<1>) -> f64 {
    t.clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map(|v| v[0] as f64)
        .unwrap_or(f64::NAN)
}

/// Log-probabilities `[K]` and label of every labelled validation pixel (deterministic head),
/// with the modality `drop` code of [`batch`] applied to every patch (0: none, 1: optical
/// removed, 2: SAR removed).
pub(crate) fn val_log_probs(
    net: &FusionNet,
    norm: &Normalisation,
    val: &[Patch],
    k: usize,
    device: &Device,
    drop: u8,
) -> Vec<(Vec<f32>, usize)> {
    let mut out = Vec::new();
    for vb in val_batches(net, norm, val, drop, device) {
        let logp = to_vec(net.log_probs(&vb.latent, None));
        let pp = vb.p * vb.p;
        for &(i, px, y) in &vb.labelled {
            out.push(((0..k).map(|c| logp[(i * k + c) * pp + px]).collect(), y));
        }
    }
    out
}

/// A batch of validation patches: latent features, patch side, and the labelled pixels as
/// (patch in batch, pixel in patch, class).
pub(crate) struct ValBatch {
    pub(crate) latent: model::Latent,
    pub(crate) b: usize,
    pub(crate) p: usize,
    pub(crate) labelled: Vec<(usize, usize, usize)>,
}

/// Validation patches in batches of 16 with the modality `drop` code of [`batch`] applied.
pub(crate) fn val_batches<'a>(
    net: &'a FusionNet,
    norm: &'a Normalisation,
    val: &'a [Patch],
    drop: u8,
    device: &'a Device,
) -> impl Iterator<Item = ValBatch> + 'a {
    let spec = net.spec();
    let k = spec.classes;
    val.chunks(16).map(move |chunk| {
        let pts: Vec<&Patch> = chunk.iter().collect();
        let b = pts.len();
        let (xs, ys, ws, p) = batch(
            &pts,
            norm,
            &spec,
            &vec![1.0; k],
            &vec![0; b],
            &vec![drop; b],
        );
        let labelled = (0..b * p * p)
            .filter(|&idx| ws[idx] > 0.0)
            .map(|idx| (idx / (p * p), idx % (p * p), ys[idx] as usize))
            .collect();
        ValBatch {
            latent: net.latent(to_tensor(xs, [b, spec.in_ch(), p, p], device)),
            b,
            p,
            labelled,
        }
    })
}

/// Inverted-dropout mask values: 1 / keep with probability `keep`, else 0.
pub(crate) fn dropout_mask(rng: &mut Rng, n: usize, keep: f64) -> Vec<f32> {
    use rayon::prelude::*;
    // The generator runs serially (the draws of `rng.f64()` in order), the comparisons on
    // every core.
    let raw: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    let scale = (1.0 / keep) as f32;
    raw.par_iter()
        .map(|&u| {
            if crate::rng::unit(u) < keep {
                scale
            } else {
                0.0
            }
        })
        .collect()
}

/// Validation mIoU of `net` (argmax of the deterministic head) for early stopping. Two-branch
/// models are scored on the validation patches as they are and with each modality removed in
/// turn (one confusion matrix over the three), so the kept epoch is the one whose fallback
/// experts work too, not only the fused prediction.
pub(crate) fn validate(
    net: &FusionNet,
    norm: &Normalisation,
    val: &[Patch],
    k: usize,
    device: &Device,
) -> f64 {
    let mut conf = Confusion::new(k);
    let drops: &[u8] = if net.spec().experts() > 1 {
        &[0, 1, 2]
    } else {
        &[0]
    };
    for &d in drops {
        for (lp, y) in val_log_probs(net, norm, val, k, device, d) {
            let best = (0..k).max_by(|&a, &c| lp[a].total_cmp(&lp[c])).unwrap_or(0);
            conf.add(y, best);
        }
    }
    let names: Vec<String> = (0..k).map(|i| i.to_string()).collect();
    conf.metrics(&names).miou
}

/// `n` patches of `side` pixels for `spec`: raw values uniform in [0, 1), every pixel labelled
/// with a uniform class.
fn random_patches(spec: &NetSpec, (n, side): (usize, usize), rng: &mut Rng) -> Vec<Patch> {
    (0..n)
        .map(|_| Patch {
            raw: ndarray::Array3::from_shape_fn((spec.raw_bands(), side, side), |_| {
                rng.f64() as f32
            }),
            labels: ndarray::Array2::from_shape_fn((side, side), |_| {
                rng.below(spec.classes) as i64
            }),
        })
        .collect()
}

/// Milliseconds per training step (batch assembly, forward, backward, AdamW update) of a
/// freshly initialised network of `spec` on random batches of `batch` patches of `patch`
/// pixels, every pixel labelled, with the default dropout, modality dropout and loss: one
/// figure per step after two warm-up steps. What `geofuse bench-net --train` prints and
/// `benches/peers/run.sh` sets beside the same step in PyTorch.
pub fn time_training_steps(
    runtime: &Runtime,
    spec: NetSpec,
    (batch, patch): (usize, usize),
    steps: usize,
) -> Vec<f64> {
    let mut rng = Rng::new(7);
    let patches = random_patches(&spec, (batch, patch), &mut rng);
    let config = TrainConfig {
        spec,
        epochs: 1,
        patience: 1,
        batch,
        learning_rate: 3e-3,
        schedule: Schedule::Constant,
        weight_decay: 1e-4,
        modality_dropout: 0.2,
        radiometric_jitter: (0.0, 0.0),
        date_dropout: 0.0,
        dropout: 0.5,
        mc_passes: 1,
        mc_dates: true,
        seed: 1,
    };
    let device = runtime.device.clone().autodiff();
    let net = FusionNet::new(spec, &device);
    let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
    let norm = Normalisation::from_patches(&patches);
    let weights = vec![1.0; spec.classes];
    let stepper = Stepper {
        config: &config,
        norm: &norm,
        class_weights: &weights,
        device: &device,
        classes: spec.classes,
    };
    let chunk: Vec<usize> = (0..batch).collect();
    let batches = vec![chunk.as_slice(); steps + 2];
    // Steps as training runs them (`Stepper::epoch`: the next batch drawn during this one's
    // gradients); the loss is read back inside, which waits for a wgpu device. A step's time
    // runs from the end of the step before.
    let mut marks = vec![std::time::Instant::now()];
    let (net, loss, _) = stepper.epoch(
        net,
        (&mut optim, config.learning_rate),
        (&patches, &batches),
        &mut rng,
        (runtime.native, &mut || {
            marks.push(std::time::Instant::now())
        }),
    );
    std::hint::black_box((net, loss));
    let times = marks
        .windows(2)
        .skip(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_waits_for_half_the_epochs() {
        let net = || FusionNet::new(NetSpec::raw(Fusion::Early, 2, 2), &Device::flex());
        let mut stop = EarlyStop::new(2, 6);
        assert!(!stop.record(net(), 1, 1.0, 0.9));
        // Worse for four epochs: patience is spent at epoch 3, but the stop waits for epoch 6.
        for e in 2..6 {
            assert!(!stop.record(net(), e, 1.0, 0.5), "stopped at epoch {e}");
        }
        assert!(stop.record(net(), 6, 1.0, 0.5));
        assert_eq!(
            stop.best.as_ref().map(|b| b.1),
            Some(1),
            "the best epoch is kept"
        );
    }

    #[test]
    fn date_dropout_hides_whole_observed_optical_steps_and_never_sar() {
        let spec = NetSpec {
            optical: 2 * 4,
            sar: 2 * 4,
            temporal: Some(super::super::temporal::TemporalSpec {
                steps: 4,
                step_days: 30,
                dim: 8,
                heads: 4,
            }),
            ..NetSpec::raw(Fusion::Concat, 8, 3)
        };
        let mut raw = ndarray::Array3::from_elem((spec.raw_bands(), 3, 3), 0.3f32);
        raw.slice_mut(ndarray::s![8.., .., ..]).fill(-11.0);
        // Step 2 is cloudy at one pixel only: it still holds observations.
        raw.slice_mut(ndarray::s![4..6, 0, 0]).fill(f32::NAN);
        let p = Patch {
            raw,
            labels: ndarray::Array2::zeros((3, 3)),
        };
        let mut rng = Rng::new(5);
        let mut hidden = 0;
        for _ in 0..200 {
            let d = drop_dates(p.clone(), &spec, 0.4, &mut rng);
            for s in 0..4 {
                let step = d.raw.slice(ndarray::s![2 * s..2 * s + 2, .., ..]);
                let gone = step.iter().all(|v| v.is_nan());
                // A step is hidden whole, or kept exactly as it was.
                let kept = step
                    .iter()
                    .zip(p.raw.slice(ndarray::s![2 * s..2 * s + 2, .., ..]))
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(gone || kept);
                hidden += usize::from(gone);
            }
            assert!(d
                .raw
                .slice(ndarray::s![8.., .., ..])
                .iter()
                .all(|&v| v == -11.0));
        }
        let rate = hidden as f64 / 800.0;
        assert!((0.33..0.47).contains(&rate), "hidden share {rate}");
        // Without temporal encoders nothing is hidden.
        let plain = NetSpec::raw(Fusion::Concat, 4, 3);
        let q = Patch {
            raw: ndarray::Array3::from_elem((plain.raw_bands(), 2, 2), 0.3f32),
            labels: ndarray::Array2::zeros((2, 2)),
        };
        assert_eq!(drop_dates(q.clone(), &plain, 0.9, &mut rng).raw, q.raw);
    }

    #[test]
    fn radiometric_jitter_scales_reflectance_shifts_backscatter_and_keeps_gaps() {
        let spec = NetSpec::raw(Fusion::Concat, 4, 3);
        let mut raw = ndarray::Array3::from_elem((spec.raw_bands(), 2, 2), 0.2f32);
        raw.slice_mut(ndarray::s![10.., .., ..]).fill(-12.0);
        raw[[0, 0, 0]] = f32::NAN;
        let p = Patch {
            raw,
            labels: ndarray::Array2::zeros((2, 2)),
        };
        let mut rng = Rng::new(3);
        let mut gains = Vec::new();
        for _ in 0..50 {
            let j = jitter(&p, &spec, (0.15, 1.5), &mut rng);
            assert!(j.raw[[0, 0, 0]].is_nan(), "a gap stays a gap");
            let g = j.raw[[3, 1, 1]] / 0.2;
            assert!((0.85..=1.15).contains(&g), "gain {g}");
            // One gain for every optical band and pixel of the patch, one offset for the SAR.
            assert!(j
                .raw
                .slice(ndarray::s![1..10, .., ..])
                .iter()
                .all(|&v| v == 0.2 * g));
            let d = j.raw[[10, 0, 1]] + 12.0;
            assert!(d.abs() <= 1.5 + 1e-5, "offset {d}");
            assert!((j.raw[[11, 1, 0]] + 12.0 - d).abs() < 1e-5);
            gains.push(g);
        }
        assert!(gains.iter().any(|&g| g < 0.95) && gains.iter().any(|&g| g > 1.05));
    }

    /// Every parameter's values, in module order.
    struct Weights(Vec<f32>);

    impl burn::module::ModuleVisitor for Weights {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.extend(super::super::native::values(param.val()));
        }
    }

    /// Two epochs of two batches on random patches from a seeded network, on `threads`
    /// threads: the weights after them and the losses of the epochs.
    fn train_steps(spec: NetSpec, native: bool, threads: usize) -> (Vec<f32>, [f64; 2]) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| {
            let mut rng = Rng::new(3);
            let patches = random_patches(&spec, (6, 12), &mut rng);
            let config = TrainConfig {
                spec,
                epochs: 2,
                patience: 2,
                batch: 3,
                learning_rate: 3e-3,
                schedule: Schedule::Constant,
                weight_decay: 1e-4,
                modality_dropout: 0.2,
                radiometric_jitter: (0.1, 1.0),
                date_dropout: 0.0,
                dropout: 0.5,
                mc_passes: 1,
                mc_dates: true,
                seed: 5,
            };
            let device = Device::flex().autodiff();
            let mut net = {
                let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
                device.seed(config.seed);
                FusionNet::new(spec, &device).initialised(&device)
            };
            let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
            let norm = Normalisation::from_patches(&patches);
            let stepper = Stepper {
                config: &config,
                norm: &norm,
                class_weights: &[1.0, 0.5, 2.0],
                device: &device,
                classes: spec.classes,
            };
            let order: Vec<usize> = (0..patches.len()).collect();
            let batches: Vec<&[usize]> = order.chunks(3).collect();
            let mut losses = [0.0; 2];
            for l in losses.iter_mut() {
                let mut nothing = || {};
                let on: (bool, &mut dyn FnMut()) = (native, &mut nothing);
                (net, *l, _) =
                    stepper.epoch(net, (&mut optim, 3e-3), (&patches, &batches), &mut rng, on);
            }
            let mut w = Weights(Vec::new());
            net.visit(&mut w);
            (w.0, losses)
        })
    }

    #[test]
    fn native_training_steps_are_the_same_bits_on_any_thread_count_and_follow_burns() {
        for (fusion, encoder) in [
            (Fusion::LearnedKernel, super::super::EncoderKind::Small),
            (Fusion::Attention, super::super::EncoderKind::Unet),
        ] {
            let spec = NetSpec {
                encoder,
                ..NetSpec::raw(fusion, 8, 3)
            };
            let (one, l1) = train_steps(spec, true, 1);
            let (two, l2) = train_steps(spec, true, 2);
            assert_eq!(l1, l2, "{fusion:?}: losses on 1 and 2 threads");
            assert!(one == two, "{fusion:?}: weights on 1 and 2 threads differ");
            // The slow twin: the same draws and initial weights through burn's autodiff. AdamW
            // moves a weight by about the learning rate whatever its gradient's size, so a
            // gradient near 0 whose sign rounding flipped would leave a weight 2 x 3e-3 apart;
            // none does here (largest difference about 1.5e-7 after four steps).
            let (burn, lb) = train_steps(spec, false, 2);
            for (a, b) in l1.iter().zip(&lb) {
                assert!(
                    (a - b).abs() < 1e-4 * b.abs(),
                    "{fusion:?}: loss {a} against burn's {b}"
                );
            }
            let mut diffs: Vec<f32> = one.iter().zip(&burn).map(|(a, b)| (a - b).abs()).collect();
            diffs.sort_by(f32::total_cmp);
            let (median, worst) = (diffs[diffs.len() / 2], diffs[diffs.len() - 1]);
            eprintln!("{fusion:?} {encoder:?}: weights against burn's, median {median:e}, largest {worst:e}");
            assert!(
                median < 1e-6,
                "{fusion:?}: median weight difference {median}"
            );
            assert!(
                worst < 1e-4,
                "{fusion:?}: largest weight difference {worst}"
            );
        }
    }
}
