//! Learned encoders and fusion (burn). The only module that uses burn types; the rest of
//! geofuse talks to it through ndarray arrays.
//!
//! - [`model`]: encoders, fusion strategies, head.
//! - [`LearnedModel`]: training (patches, augmentation, modality dropout, class weights, early
//!   stopping), Monte Carlo dropout inference, saving and loading.
//! - [`native`]: CPU inference on geofuse's own kernels (the weights copied from burn).
//! - [`Runtime`]: the compute device (`cpu` = burn's Flex backend for training and [`native`]
//!   for inference, `wgpu` = GPU through wgpu).

pub mod model;
pub mod native;

use std::path::{Path, PathBuf};

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use ndarray::{s, Array2, Array3, Axis};
use serde::{Deserialize, Serialize};

use crate::config::{hex_sha256, ClassDef};
use crate::error::{Error, Result};
use crate::eval::metrics::Confusion;
use crate::rng::{hash4, hash4_last, hash4_prefix, hash4_third, unit, Rng};
use model::FusionNet;
pub use model::{Fusion, NetSpec};

/// Serialises seeding + parameter initialisation (burn's generator is global to a backend).
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Raw input bands without hand-crafted features: 10 optical reflectances then VV, VH in dB.
/// Hybrid models append their optical features, then their SAR features.
pub const RAW_BANDS: usize = 12;
/// Optical reflectance bands.
pub const N_OPT: usize = 10;

/// The compute device for learned methods.
#[derive(Clone)]
pub struct Runtime {
    device: Device,
    /// Human description (`cpu`, `wgpu`).
    pub name: String,
    /// Inference runs through [`native`] (CPU) rather than burn's operators.
    native: bool,
}

impl Runtime {
    /// `cpu`: burn's Flex backend. `wgpu`: the default wgpu adapter (a GPU, or Mesa's lavapipe
    /// on a CPU-only machine). `auto`: a discrete or integrated GPU through wgpu when one
    /// initialises, else the CPU.
    pub fn new(choice: &str) -> Result<Runtime> {
        match choice {
            "cpu" => Ok(Runtime::cpu()),
            // burn's Flex operators for inference too: what `native` is compared against.
            "cpu-burn" => Ok(Runtime { device: Device::flex(), name: "cpu (burn flex)".into(), native: false }),
            "wgpu" => Device::wgpu_options()
                .init()
                .map(|device| Runtime { device, name: "wgpu".into(), native: false })
                .map_err(|e| Error::config("--device wgpu", format!("no wgpu adapter could be initialised ({e}); install a GPU driver or Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1), or use --device cpu"))),
            "auto" => {
                for kind in [burn::tensor::DeviceKind::DiscreteGpu(0), burn::tensor::DeviceKind::IntegratedGpu(0)] {
                    let k = format!("{kind:?}");
                    if let Ok(device) = Device::wgpu_options().device_kind(kind).init() {
                        return Ok(Runtime { device, name: format!("wgpu ({k})"), native: false });
                    }
                }
                Ok(Runtime::cpu())
            }
            other => Err(Error::config("--device", format!("`{other}` is not a device; use auto, cpu or wgpu"))),
        }
    }

    /// The CPU: burn's Flex backend trains, [`native`] predicts.
    fn cpu() -> Runtime {
        let simd = if native::simd_available() {
            "avx2+fma"
        } else {
            "scalar"
        };
        Runtime {
            device: Device::flex(),
            name: format!("cpu (flex training, native {simd} inference)"),
            native: true,
        }
    }
}

/// Per-band normalisation statistics (computed from training patches).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Normalisation {
    /// Mean of each raw band.
    pub mean: Vec<f32>,
    /// Standard deviation of each raw band.
    pub std: Vec<f32>,
}

impl Normalisation {
    /// Statistics of the valid values of `patches` (`[12, h, w]` each).
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
/// Raw layout: 10 reflectances, VV, VH, then `spec.extra_opt` optical and `spec.extra_sar` SAR
/// features.
pub fn assemble(raw: &Array3<f32>, norm: &Normalisation, spec: &NetSpec) -> Array3<f32> {
    let (_, h, w) = raw.dim();
    Array3::from_shape_vec(
        (spec.in_ch(), h, w),
        assemble_pixels(raw, norm, spec).to_planes(),
    )
    .expect("planes of the assembled map")
}

/// [`assemble`] in pixel-major layout (`[h][w][in_ch]`), what [`native`] computes on.
pub fn assemble_pixels(raw: &Array3<f32>, norm: &Normalisation, spec: &NetSpec) -> native::Map {
    use rayon::prelude::*;
    let (_, h, w) = raw.dim();
    let (eo, es) = (spec.extra_opt, spec.extra_sar);
    let (opt_ch, in_ch) = (spec.opt_ch(), spec.in_ch());
    let mut m = native::Map::zeros(h, w, in_ch);
    let z = |b: usize, v: f32| {
        if v.is_nan() {
            0.0
        } else {
            (v - norm.mean[b]) / norm.std[b]
        }
    };
    m.v.par_chunks_mut(w * in_ch)
        .enumerate()
        .for_each(|(r, row)| {
            for (c, x) in row.chunks_exact_mut(in_ch).enumerate() {
                let v = |b: usize| raw[[b, r, c]];
                if (0..N_OPT).all(|b| !v(b).is_nan()) {
                    for (b, o) in x[..N_OPT].iter_mut().enumerate() {
                        *o = z(b, v(b));
                    }
                    for j in 0..eo {
                        x[N_OPT + j] = z(RAW_BANDS + j, v(RAW_BANDS + j));
                    }
                    x[opt_ch - 1] = 1.0;
                }
                if (N_OPT..RAW_BANDS).all(|b| !v(b).is_nan()) {
                    for b in N_OPT..RAW_BANDS {
                        x[opt_ch + b - N_OPT] = z(b, v(b));
                    }
                    for j in 0..es {
                        x[opt_ch + 2 + j] = z(RAW_BANDS + eo + j, v(RAW_BANDS + eo + j));
                    }
                    x[in_ch - 1] = 1.0;
                }
            }
        });
    m
}

/// A training patch: raw bands `[12, p, p]` and class indices `[p, p]` (-1 = unlabelled).
#[derive(Debug, Clone)]
pub struct Patch {
    /// Raw bands.
    pub raw: Array3<f32>,
    /// Class index per pixel, -1 where unlabelled or held out.
    pub labels: Array2<i64>,
}

/// Flips and 90-degree rotations of a square patch (`code` 0..8).
fn augment<T: Clone>(a: ndarray::ArrayView3<T>, code: usize) -> Array3<T> {
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
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Probability of dropping a whole modality for a patch.
    pub modality_dropout: f64,
    /// Dropout before the head.
    pub dropout: f64,
    /// Monte Carlo passes at inference.
    pub mc_passes: usize,
    /// Seed.
    pub seed: u64,
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
}

fn unit_temperature() -> f64 {
    1.0
}

/// Everything about a learned model except its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnedMeta {
    /// Format tag.
    pub format: String,
    /// geofuse version.
    pub geofuse_version: String,
    /// Training settings (network shape included).
    pub config: TrainConfig,
    /// Input normalisation.
    pub normalisation: Normalisation,
    /// Class table (class index k is `classes[k]`).
    pub classes: Vec<ClassDef>,
    /// Optical band names the model was trained on.
    pub optical_bands: Vec<String>,
    /// Training report.
    pub report: TrainReport,
    /// Hybrid models: names of the hand-crafted features fed to the network (optical ones,
    /// then SAR ones), empty otherwise.
    #[serde(default)]
    pub hybrid_features: Vec<String>,
    /// Hybrid models: GLCM quantisation ranges used at training (reused at prediction).
    #[serde(default)]
    pub glcm_ranges: Vec<(f64, f64)>,
    /// SHA-256 of the weight values (burn's parameter ids are random, so the `.bpk` bytes of
    /// two identical trainings differ; this hash does not).
    #[serde(default)]
    pub weights_sha256: String,
}

/// Hashes every float parameter's values in module order.
struct WeightHasher(sha2::Sha256);

impl burn::module::ModuleVisitor for WeightHasher {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        use sha2::Digest;
        if let Ok(v) = param.val().into_data().convert::<f32>().try_to_vec::<f32>() {
            for x in v {
                self.0.update(x.to_le_bytes());
            }
        }
    }
}

fn weights_sha256(net: &FusionNet) -> String {
    use sha2::Digest;
    let mut h = WeightHasher(sha2::Sha256::new());
    net.visit(&mut h);
    h.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Model format tag.
pub const LEARNED_FORMAT: &str = "geofuse-learned-2";

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

impl Prediction {
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
fn pixel_passes(
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

/// A trained network with its metadata.
pub struct LearnedModel {
    /// Metadata.
    pub meta: LearnedMeta,
    net: FusionNet,
    runtime: Runtime,
    /// The weights in [`native`] layout, copied on the first CPU prediction.
    native: std::sync::OnceLock<native::NativeNet>,
}

fn to_tensor(data: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn to_vec(t: Tensor<4>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Stacks patches into a batch: inputs, labels (0 where unlabelled) and loss weights.
fn batch(
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

impl LearnedModel {
    /// Trains a network on `train` patches, keeping the weights with the best validation mIoU
    /// on `val` patches (early stopping). `on_epoch(epoch, loss, val_miou)` reports progress.
    pub fn train(
        runtime: &Runtime,
        config: &TrainConfig,
        classes: &[ClassDef],
        optical_bands: &[String],
        train: &[Patch],
        val: &[Patch],
        mut on_epoch: impl FnMut(usize, f64, f64),
    ) -> Result<LearnedModel> {
        if train.is_empty() {
            return Err(Error::Internal("no training patches".into()));
        }
        let k = classes.len();
        let norm = Normalisation::from_patches(train);
        // Inverse-frequency class weights, normalised to mean 1 over present classes.
        let mut counts = vec![0f64; k];
        for p in train {
            for &y in p.labels.iter().filter(|&&y| y >= 0) {
                counts[y as usize] += 1.0;
            }
        }
        let present = counts.iter().filter(|&&c| c > 0.0).count().max(1) as f64;
        let total: f64 = counts.iter().sum();
        let class_weights: Vec<f32> = counts
            .iter()
            .map(|&c| {
                if c > 0.0 {
                    (total / (present * c)) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let train_device = runtime.device.clone().autodiff();
        // burn's generator is global to the backend: seed and initialise under one lock so that
        // concurrent trainings (tests, library users) cannot interleave their draws. Every later
        // random choice (shuffles, augmentation, dropout masks) uses geofuse's own generator.
        let mut net = {
            let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            train_device.seed(config.seed);
            FusionNet::new(config.spec, &train_device)
        };
        let mut optim = AdamConfig::new().init();
        let mut rng = Rng::new(config.seed ^ 0x7EA1);
        let keep = 1.0 - config.dropout;
        let mut best: Option<(FusionNet, usize, f64)> = None;
        let mut history = Vec::new();
        let mut since_best = 0;
        let head_ch = net.head_channels();
        for epoch in 1..=config.epochs {
            let mut order: Vec<usize> = (0..train.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let (mut loss_sum, mut steps) = (0.0, 0);
            for chunk in order.chunks(config.batch) {
                let pts: Vec<&Patch> = chunk.iter().map(|&i| &train[i]).collect();
                let aug: Vec<usize> = chunk.iter().map(|_| rng.below(8)).collect();
                let drop: Vec<u8> = chunk
                    .iter()
                    .map(|_| {
                        let u = rng.f64();
                        if u < config.modality_dropout / 2.0 {
                            1
                        } else if u < config.modality_dropout {
                            2
                        } else {
                            0
                        }
                    })
                    .collect();
                let (xs, ys, ws, p) = batch(&pts, &norm, &config.spec, &class_weights, &aug, &drop);
                let b = pts.len();
                if ws.iter().all(|&w| w == 0.0) {
                    continue;
                }
                let x = to_tensor(xs, [b, config.spec.in_ch(), p, p], &train_device);
                let y =
                    Tensor::<4, Int>::from_data(TensorData::new(ys, [b, 1, p, p]), &train_device);
                let wt = to_tensor(ws, [b, 1, p, p], &train_device);
                let latent = net.latent(x);
                let hidden = net.hidden(&latent);
                let mask = (config.dropout > 0.0).then(|| {
                    let m = dropout_mask(&mut rng, b * head_ch * p * p, keep);
                    to_tensor(m, [b, head_ch, p, p], &train_device)
                });
                // Antithetic standard-normal logit noise for the sampled-softmax loss.
                let mut eps = Vec::with_capacity(2 * TRAIN_NOISE_PAIRS);
                for _ in 0..TRAIN_NOISE_PAIRS {
                    let e: Vec<f32> = (0..b * k * p * p).map(|_| rng.normal() as f32).collect();
                    let e = to_tensor(e, [b, k, p, p], &train_device);
                    eps.push(e.clone().neg());
                    eps.push(e);
                }
                let outs = net.expert_outputs(&hidden, mask.as_ref());
                let fused = model::precision_fuse(&outs, &latent.presence);
                let wnll = |o: &model::HeadOut, w: Tensor<4>| {
                    (model::sampled_softmax_nll(o, &y, &eps) * w.clone()).sum()
                        / w.sum().clamp_min(1e-6)
                };
                // The fused prediction's loss, plus each expert's own (deep supervision), so
                // that every expert is a classifier on its own where the others are missing.
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
                loss_sum += loss
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .map(|v| v[0] as f64)
                    .unwrap_or(f64::NAN);
                steps += 1;
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(config.learning_rate, net, grads);
            }
            let snapshot = net.valid();
            let val_miou = validate(&snapshot, &norm, val, k, &runtime.device);
            let loss = loss_sum / steps.max(1) as f64;
            history.push((loss, val_miou));
            on_epoch(epoch, loss, val_miou);
            if best.as_ref().is_none_or(|b| val_miou > b.2) {
                best = Some((snapshot, epoch, val_miou));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= config.patience {
                    break;
                }
            }
        }
        let (net, best_epoch, best_val_miou) =
            best.ok_or_else(|| Error::Internal("training ran no epoch".into()))?;
        let cal = calibration_samples(&net, &norm, val, config, &runtime.device);
        let temperature =
            fit_temperature(&cal, &inference_noise(config.seed, mc_passes(config), k), k);
        Ok(LearnedModel {
            meta: LearnedMeta {
                format: LEARNED_FORMAT.into(),
                geofuse_version: env!("CARGO_PKG_VERSION").into(),
                config: config.clone(),
                normalisation: norm,
                classes: classes.to_vec(),
                optical_bands: optical_bands.to_vec(),
                report: TrainReport {
                    epochs: history.len(),
                    best_epoch,
                    best_val_miou,
                    history,
                    class_weights,
                    class_pixels: counts.iter().map(|&c| c as usize).collect(),
                    temperature,
                },
                hybrid_features: Vec::new(),
                glcm_ranges: Vec::new(),
                weights_sha256: String::new(),
            },
            net,
            runtime: runtime.clone(),
            native: Default::default(),
        })
    }

    /// A randomly initialised model (benchmarks and tests of the inference path).
    pub fn untrained(
        runtime: &Runtime,
        config: &TrainConfig,
        classes: &[ClassDef],
        optical_bands: &[String],
    ) -> LearnedModel {
        let net = {
            let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            runtime.device.seed(config.seed);
            FusionNet::new(config.spec, &runtime.device)
        };
        LearnedModel {
            meta: LearnedMeta {
                format: LEARNED_FORMAT.into(),
                geofuse_version: env!("CARGO_PKG_VERSION").into(),
                config: config.clone(),
                normalisation: Normalisation {
                    mean: vec![0.0; config.spec.in_ch() - 2],
                    std: vec![1.0; config.spec.in_ch() - 2],
                },
                classes: classes.to_vec(),
                optical_bands: optical_bands.to_vec(),
                report: TrainReport {
                    epochs: 0,
                    best_epoch: 0,
                    best_val_miou: 0.0,
                    history: vec![],
                    class_weights: vec![],
                    class_pixels: vec![],
                    temperature: 1.0,
                },
                hybrid_features: Vec::new(),
                glcm_ranges: Vec::new(),
                weights_sha256: String::new(),
            },
            net: net.valid(),
            runtime: runtime.clone(),
            native: Default::default(),
        }
    }

    /// A randomly initialised network (benchmarks and tests of the inference path) with
    /// classes numbered 1..=`spec.classes`, the synthetic scene's band names, dropout `dropout`
    /// and `passes` Monte Carlo passes.
    pub fn random(
        runtime: &Runtime,
        spec: NetSpec,
        dropout: f64,
        passes: usize,
        seed: u64,
    ) -> LearnedModel {
        let config = TrainConfig {
            spec,
            epochs: 0,
            patience: 0,
            batch: 1,
            learning_rate: 0.0,
            modality_dropout: 0.0,
            dropout,
            mc_passes: passes.max(1),
            seed,
        };
        let classes: Vec<ClassDef> = (1..=spec.classes)
            .map(|i| ClassDef {
                id: i as u8,
                name: format!("class {i}"),
                color: "#808080".into(),
            })
            .collect();
        let bands: Vec<String> = crate::synth::BANDS.iter().map(|s| s.to_string()).collect();
        LearnedModel::untrained(runtime, &config, &classes, &bands)
    }

    /// Halo a tile needs so its core equals an untiled run (the receptive radius).
    pub fn halo(&self) -> usize {
        self.meta.config.spec.receptive_radius()
    }

    /// Predicts a window of raw bands `[12, h, w]` whose top-left pixel is `origin` (row, col)
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
    fn native_net(&self) -> Option<&native::NativeNet> {
        self.runtime.native.then(|| {
            self.native
                .get_or_init(|| native::NativeNet::from_burn(&self.net))
        })
    }

    /// Dropout keep-mask value of head channel `ch` (all experts' hidden channels numbered in
    /// order) in pass `t` at scene pixel (`row`, `col`): 1 / keep or 0, hashed from the scene
    /// coordinates so that tiling cannot change it. Returns, for one (`t`, `ch`, `row`), the
    /// function of `col`.
    fn mask_row(&self, t: usize, ch: usize, row: usize) -> impl Fn(usize) -> f32 {
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
    fn passes_burn(
        &self,
        raw: &Array3<f32>,
        origin: (usize, usize),
    ) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let (_, h, w) = raw.dim();
        let dev = &self.runtime.device;
        let cfg = &self.meta.config;
        // Encoders, fusion and the heads' first layer are deterministic: they run once.
        let latent = self.net.latent(self.input_tensor(raw));
        let hidden = self.net.hidden(&latent);
        let passes = mc_passes(cfg);
        let hc = self.net.head_channels();
        let mut mus = Vec::with_capacity(passes);
        let mut lvs = Vec::with_capacity(passes);
        for t in 0..passes {
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
            let outs = self.net.expert_outputs(&hidden, mask.as_ref());
            let f = model::precision_fuse(&outs, &latent.presence);
            mus.push(to_vec(f.mu));
            lvs.push(to_vec(f.logvar));
        }
        (mus, lvs)
    }

    /// [`passes_burn`](Self::passes_burn) through [`native`]: the same masks, the same
    /// operations.
    fn passes_native(
        &self,
        net: &native::NativeNet,
        raw: &Array3<f32>,
        origin: (usize, usize),
    ) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        use rayon::prelude::*;
        let cfg = &self.meta.config;
        let width = cfg.spec.width;
        let x = assemble_pixels(raw, &self.meta.normalisation, &cfg.spec);
        let latent = net.latent(&x);
        let hidden = net.hidden(&latent);
        let passes = mc_passes(cfg);
        let mut mus = Vec::with_capacity(passes);
        let mut lvs = Vec::with_capacity(passes);
        for t in 0..passes {
            let f = net.pass(&latent, &hidden, |e, z| {
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

    /// The network input of a window of raw bands `[1, in_ch, h, w]`.
    fn input_tensor(&self, raw: &Array3<f32>) -> Tensor<4> {
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

    /// Saves weights to `<path>.bpk` and metadata to `<path>.json`; returns the model hash
    /// (SHA-256 of both files).
    pub fn save(&self, path: &Path) -> Result<String> {
        let bpk = path.with_extension("bpk");
        let json = path.with_extension("json");
        let _ = std::fs::remove_file(&bpk);
        let mut store = BurnpackStore::from_file(&bpk).auto_extension(false);
        self.net
            .save_into(&mut store)
            .map_err(|e| Error::Internal(format!("save {}: {e}", bpk.display())))?;
        let mut meta = self.meta.clone();
        meta.weights_sha256 = weights_sha256(&self.net);
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        std::fs::write(&json, &text).map_err(|e| Error::io(&json, "write model metadata", e))?;
        model_hash(path)
    }

    /// Loads a model saved by [`save`](Self::save) onto `runtime`; returns it with its hash.
    pub fn load(path: &Path, runtime: &Runtime) -> Result<(LearnedModel, String)> {
        let json = path.with_extension("json");
        let bpk = path.with_extension("bpk");
        let bad = |msg: String| Error::Model {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(&json).map_err(|e| {
            bad(format!(
                "cannot read {} ({e}); train the model first",
                json.display()
            ))
        })?;
        let meta: LearnedMeta = serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "{} is not a geofuse learned model ({e})",
                json.display()
            ))
        })?;
        if meta.format != LEARNED_FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{LEARNED_FORMAT}`; retrain it",
                meta.format
            )));
        }
        let mut net = FusionNet::new(meta.config.spec, &runtime.device);
        let mut store = BurnpackStore::from_file(&bpk).auto_extension(false);
        net.load_from(&mut store)
            .map_err(|e| bad(format!("cannot load weights {} ({e})", bpk.display())))?;
        if !meta.weights_sha256.is_empty() && weights_sha256(&net) != meta.weights_sha256 {
            return Err(bad(format!(
                "the weights in {} do not match {} (hash differs); the files belong to different models",
                bpk.display(),
                json.display()
            )));
        }
        let hash = model_hash(path)?;
        Ok((
            LearnedModel {
                meta,
                net: net.valid(),
                runtime: runtime.clone(),
                native: Default::default(),
            },
            hash,
        ))
    }

    /// Files the model consists of.
    pub fn files(path: &Path) -> [PathBuf; 2] {
        [path.with_extension("bpk"), path.with_extension("json")]
    }
}

/// Hash of a saved model: SHA-256 of its metadata file, which records the hash of the weight
/// values (checked against the `.bpk` on load).
pub fn model_hash(path: &Path) -> Result<String> {
    let json = path.with_extension("json");
    let bytes = std::fs::read(&json).map_err(|e| Error::io(&json, "read model", e))?;
    Ok(hex_sha256(&bytes))
}

/// Log-probabilities `[K]` and label of every labelled validation pixel (deterministic head),
/// with the modality `drop` code of [`batch`] applied to every patch (0: none, 1: optical
/// removed, 2: SAR removed).
fn val_log_probs(
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
struct ValBatch {
    latent: model::Latent,
    b: usize,
    p: usize,
    labelled: Vec<(usize, usize, usize)>,
}

/// Validation patches in batches of 16 with the modality `drop` code of [`batch`] applied.
fn val_batches<'a>(
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
fn dropout_mask(rng: &mut Rng, n: usize, keep: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.f64() < keep {
                (1.0 / keep) as f32
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
fn validate(
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

/// Logit-noise sample pairs per training step (antithetic: each draw and its negation).
const TRAIN_NOISE_PAIRS: usize = 2;

/// Logit-noise samples per Monte Carlo pass at inference (antithetic pairs).
pub const NOISE_SAMPLES: usize = 8;

/// Monte Carlo passes a model runs at inference (1 without dropout).
pub fn mc_passes(cfg: &TrainConfig) -> usize {
    if cfg.dropout > 0.0 {
        cfg.mc_passes.max(1)
    } else {
        1
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
const MAX_CAL_SAMPLES: usize = 20_000;

/// The model's Monte Carlo outputs on the labelled pixels of the validation patches.
fn calibration_samples(
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
    for vb in val_batches(net, norm, val, 0, device) {
        let (b, p) = (vb.b, vb.p);
        let hidden = net.hidden(&vb.latent);
        let mut mus = Vec::with_capacity(passes);
        let mut lvs = Vec::with_capacity(passes);
        for _ in 0..passes {
            let mask = (cfg.dropout > 0.0).then(|| {
                to_tensor(
                    dropout_mask(&mut rng, b * hc * p * p, keep),
                    [b, hc, p, p],
                    device,
                )
            });
            let f = model::precision_fuse(
                &net.expert_outputs(&hidden, mask.as_ref()),
                &vb.latent.presence,
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_scaling_recovers_an_overconfidence_factor() {
        // Samples drawn from softmax(z), reported as log_softmax(3 z): over-confident by 3.
        let mut r = Rng::new(4);
        let samples: Vec<CalSample> = (0..4000)
            .map(|_| {
                let z: Vec<f64> = (0..4).map(|_| r.normal()).collect();
                let m: f64 = z.iter().map(|v| v.exp()).sum();
                let u = r.f64();
                let mut acc = 0.0;
                let y = (0..4)
                    .find(|&i| {
                        acc += z[i].exp() / m;
                        u < acc
                    })
                    .unwrap_or(3);
                CalSample {
                    mu: z.iter().map(|v| (3.0 * v) as f32).collect(),
                    logvar: vec![-40.0], // no logit noise: plain softmax
                    label: y,
                }
            })
            .collect();
        let eps = inference_noise(1, 1, 4);
        let t = fit_temperature(&samples, &eps, 4);
        assert!((t - 3.0).abs() < 0.4, "fitted T = {t}");
        assert_eq!(fit_temperature(&[], &eps, 4), 1.0);
    }

    #[test]
    fn predictive_of_hand_computed_passes() {
        // Two passes without logit noise: softmax([ln 3, 0]) = [0.75, 0.25] and [0.25, 0.75];
        // mean [0.5, 0.5]; mean member entropy H(0.75, 0.25).
        let eps = inference_noise(3, 2, 2);
        let mut p = [0f32; 2];
        let mu = [3f32.ln(), 0.0, 0.0, 3f32.ln()];
        let e = mc_predictive(&mu, &[-40.0, -40.0], &eps, 2, 1.0, &mut p);
        assert!(
            (p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6,
            "{p:?}"
        );
        let h = -(0.75f32 * 0.75f32.ln() + 0.25 * 0.25f32.ln());
        assert!((e - h).abs() < 1e-6, "{e} vs {h}");
        // Temperature 2 on one pass: softmax([ln 3, 0] / 2) = [sqrt3, 1] / (sqrt3 + 1).
        mc_predictive(&mu[..2], &[-40.0], &eps, 2, 2.0, &mut p);
        let s3 = 3f32.sqrt();
        assert!((p[0] - s3 / (s3 + 1.0)).abs() < 1e-6, "{p:?}");
        // Logit noise spreads the prediction: with a large variance the distribution is flatter
        // (aleatoric), and the antithetic noise keeps equal logits at exactly [0.5, 0.5].
        let sharp = mc_predictive(&[2.0, 0.0], &[-40.0], &eps, 2, 1.0, &mut p);
        let noisy = mc_predictive(&[2.0, 0.0], &[3.0], &eps, 2, 1.0, &mut p);
        assert!(noisy > sharp, "{noisy} <= {sharp}");
        mc_predictive(&[0.7, 0.7], &[3.0], &eps, 2, 1.0, &mut p);
        assert!((p[0] - 0.5).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn inference_noise_is_antithetic_standard_normal() {
        let e = inference_noise(9, 400, 5);
        assert_eq!(e.len(), 400 * NOISE_SAMPLES * 5);
        let n = e.len() as f64;
        let mean = e.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = e.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-6, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
        assert_eq!(
            e[..5].iter().map(|v| -v).collect::<Vec<_>>(),
            e[5..10].to_vec()
        );
        assert_eq!(inference_noise(9, 400, 5), e);
    }

    #[test]
    fn rotations_and_flips_are_a_group_of_eight() {
        let a = Array3::from_shape_fn((1, 3, 3), |(_, r, c)| (r * 3 + c) as i32);
        let outs: Vec<_> = (0..8).map(|code| augment(a.view(), code)).collect();
        for i in 0..8 {
            for j in i + 1..8 {
                assert_ne!(outs[i], outs[j], "codes {i} and {j}");
            }
        }
        // Four quarter turns give the identity.
        let mut v = a.clone();
        for _ in 0..4 {
            v = augment(v.view(), 1);
        }
        assert_eq!(v, a);
    }

    /// A model of every fusion on burn's CPU operators, and a raw window with clouds (optical
    /// missing), a SAR swath gap and a pixel with neither.
    fn model_and_window(fusion: Fusion, dropout: f64) -> (LearnedModel, Array3<f32>) {
        let rt = Runtime::new("cpu-burn").unwrap();
        let model = LearnedModel::random(&rt, NetSpec::raw(fusion, 16, 5), dropout, 3, 11);
        let mut rng = Rng::new(5);
        let (h, w) = (23, 30);
        let mut raw = Array3::from_shape_fn((RAW_BANDS, h, w), |_| rng.f64() as f32 * 2.0 - 0.5);
        raw.slice_mut(s![0..N_OPT, 2..9, 3..11]).fill(f32::NAN);
        raw.slice_mut(s![N_OPT.., .., 20..26]).fill(f32::NAN);
        raw[[0, 15, 22]] = f32::NAN;
        (model, raw)
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: native {x} vs burn {y}"
            );
        }
    }

    #[test]
    fn native_inference_equals_burn_for_every_fusion() {
        for fusion in [
            Fusion::Early,
            Fusion::Late,
            Fusion::Concat,
            Fusion::Add,
            Fusion::Bilinear,
            Fusion::Attention,
            Fusion::LearnedKernel,
            Fusion::FixedKernel,
            Fusion::OpticalOnly,
            Fusion::SarOnly,
        ] {
            let (model, raw) = model_and_window(fusion, 0.5);
            let net = native::NativeNet::from_burn(&model.net);
            let origin = (40, 7);
            let (bm, bl) = model.passes_burn(&raw, origin);
            let (nm, nl) = model.passes_native(&net, &raw, origin);
            assert_eq!(bm.len(), 3);
            for t in 0..3 {
                assert_close(&nm[t], &bm[t], 2e-4, &format!("{fusion:?} pass {t} logits"));
                assert_close(&nl[t], &bl[t], 2e-4, &format!("{fusion:?} pass {t} logvar"));
            }
            // The passes differ (dropout is on), so the comparison covers the masks.
            assert!(bm[0] != bm[1], "{fusion:?}: passes identical");
        }
    }

    #[test]
    fn native_prediction_equals_burn_prediction() {
        let (model, raw) = model_and_window(Fusion::LearnedKernel, 0.5);
        let mut cpu = LearnedModel::untrained(
            &Runtime::new("cpu").unwrap(),
            &model.meta.config,
            &model.meta.classes,
            &model.meta.optical_bands,
        );
        cpu.net = model.net.clone();
        assert!(cpu.native_net().is_some() && model.native_net().is_none());
        let (pb, eb) = model.predict(&raw, (3, 4));
        let (pn, en) = cpu.predict(&raw, (3, 4));
        assert_close(
            pn.as_slice().unwrap(),
            pb.as_slice().unwrap(),
            1e-4,
            "probs",
        );
        assert_close(
            en.as_slice().unwrap(),
            eb.as_slice().unwrap(),
            1e-4,
            "entropy",
        );
        let (mb, lb) = model.forward(&raw);
        let (mn, ln) = cpu.forward(&raw);
        assert_close(
            mn.as_slice().unwrap(),
            mb.as_slice().unwrap(),
            2e-4,
            "forward logits",
        );
        assert_close(
            ln.as_slice().unwrap(),
            lb.as_slice().unwrap(),
            2e-4,
            "forward logvar",
        );
    }

    #[test]
    fn assemble_zeroes_missing_modalities_and_sets_flags() {
        let mut raw = Array3::<f32>::from_elem((RAW_BANDS, 1, 2), 1.0);
        raw[[3, 0, 0]] = f32::NAN; // optical missing at pixel 0
        raw[[11, 0, 1]] = f32::NAN; // SAR missing at pixel 1
        let norm = Normalisation {
            mean: vec![0.5; RAW_BANDS],
            std: vec![0.5; RAW_BANDS],
        };
        let spec = NetSpec {
            fusion: Fusion::Concat,
            width: 2,
            kernel: 3,
            classes: 2,
            extra_opt: 0,
            extra_sar: 0,
        };
        let (opt_ch, in_ch) = (spec.opt_ch(), spec.in_ch());
        let x = assemble(&raw, &norm, &spec);
        assert_eq!(x[[opt_ch - 1, 0, 0]], 0.0);
        assert_eq!(x[[0, 0, 0]], 0.0);
        assert_eq!(x[[in_ch - 1, 0, 0]], 1.0);
        assert_eq!(x[[11, 0, 0]], 1.0);
        assert_eq!(x[[opt_ch - 1, 0, 1]], 1.0);
        assert_eq!(x[[0, 0, 1]], 1.0);
        assert_eq!(x[[in_ch - 1, 0, 1]], 0.0);
    }
}
