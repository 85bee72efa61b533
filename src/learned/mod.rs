//! Learned encoders and fusion (burn). The only module that uses burn types; the rest of
//! geofuse talks to it through ndarray arrays.
//!
//! - [`model`]: encoders, fusion strategies, head.
//! - [`LearnedModel`]: training (patches, augmentation, modality dropout, class weights, early
//!   stopping), Monte Carlo dropout inference, saving and loading.
//! - [`Runtime`]: the compute device (`cpu` = burn's Flex backend, `wgpu` = GPU through wgpu).

pub mod model;

use std::path::{Path, PathBuf};

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use ndarray::{s, Array2, Array3, Axis};
use serde::{Deserialize, Serialize};

use crate::config::{hex_sha256, ClassDef};
use crate::error::{Error, Result};
use crate::eval::metrics::Confusion;
use crate::rng::{hash4, unit, Rng};
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
    /// Human description (`cpu (flex)`, `wgpu`).
    pub name: String,
}

impl Runtime {
    /// `cpu`: burn's Flex backend. `wgpu`: the default wgpu adapter (a GPU, or Mesa's lavapipe
    /// on a CPU-only machine). `auto`: a discrete or integrated GPU through wgpu when one
    /// initialises, else the CPU.
    pub fn new(choice: &str) -> Result<Runtime> {
        match choice {
            "cpu" => Ok(Runtime { device: Device::flex(), name: "cpu (flex)".into() }),
            "wgpu" => Device::wgpu_options()
                .init()
                .map(|device| Runtime { device, name: "wgpu".into() })
                .map_err(|e| Error::config("--device wgpu", format!("no wgpu adapter could be initialised ({e}); install a GPU driver or Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1), or use --device cpu"))),
            "auto" => {
                for kind in [burn::tensor::DeviceKind::DiscreteGpu(0), burn::tensor::DeviceKind::IntegratedGpu(0)] {
                    let k = format!("{kind:?}");
                    if let Ok(device) = Device::wgpu_options().device_kind(kind).init() {
                        return Ok(Runtime { device, name: format!("wgpu ({k})") });
                    }
                }
                Ok(Runtime { device: Device::flex(), name: "cpu (flex)".into() })
            }
            other => Err(Error::config("--device", format!("`{other}` is not a device; use auto, cpu or wgpu"))),
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
    let (eo, es) = (spec.extra_opt, spec.extra_sar);
    let (opt_ch, in_ch) = (spec.opt_ch(), spec.in_ch());
    let mut x = Array3::<f32>::zeros((in_ch, h, w));
    let z = |b: usize, v: f32| {
        if v.is_nan() {
            0.0
        } else {
            (v - norm.mean[b]) / norm.std[b]
        }
    };
    for r in 0..h {
        for c in 0..w {
            let opt_ok = (0..N_OPT).all(|b| !raw[[b, r, c]].is_nan());
            let sar_ok = (N_OPT..RAW_BANDS).all(|b| !raw[[b, r, c]].is_nan());
            if opt_ok {
                for b in 0..N_OPT {
                    x[[b, r, c]] = z(b, raw[[b, r, c]]);
                }
                for j in 0..eo {
                    x[[N_OPT + j, r, c]] = z(RAW_BANDS + j, raw[[RAW_BANDS + j, r, c]]);
                }
                x[[opt_ch - 1, r, c]] = 1.0;
            }
            if sar_ok {
                for b in N_OPT..RAW_BANDS {
                    x[[opt_ch + b - N_OPT, r, c]] = z(b, raw[[b, r, c]]);
                }
                for j in 0..es {
                    x[[opt_ch + 2 + j, r, c]] =
                        z(RAW_BANDS + eo + j, raw[[RAW_BANDS + eo + j, r, c]]);
                }
                x[[in_ch - 1, r, c]] = 1.0;
            }
        }
    }
    x
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
pub const LEARNED_FORMAT: &str = "geofuse-learned-1";

/// Output of [`LearnedModel::predict_full`].
pub struct Prediction {
    /// Calibrated mean class probabilities `[K, h, w]`.
    pub probs: Array3<f32>,
    /// Uncalibrated (temperature 1) mean class probabilities `[K, h, w]`.
    pub uncalibrated: Array3<f32>,
    /// Mean per-pass entropy of the calibrated probabilities (nats) `[h, w]`.
    pub entropy: Array2<f32>,
}

/// A trained network with its metadata.
pub struct LearnedModel {
    /// Metadata.
    pub meta: LearnedMeta,
    net: FusionNet,
    runtime: Runtime,
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
                let mask = (config.dropout > 0.0).then(|| {
                    let m: Vec<f32> = (0..b * head_ch * p * p)
                        .map(|_| {
                            if rng.f64() < keep {
                                (1.0 / keep) as f32
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    to_tensor(m, [b, head_ch, p, p], &train_device)
                });
                let logp = net.log_probs(&latent, mask.as_ref());
                let loss = (logp.gather(1, y).neg() * wt.clone()).sum() / wt.sum();
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
        let temperature = fit_temperature(&val_log_probs(&net, &norm, val, k, &runtime.device));
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
        }
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

    /// [`predict`](Self::predict) with the calibrated (temperature-scaled, the default) and the
    /// uncalibrated mean probabilities.
    pub fn predict_full(&self, raw: &Array3<f32>, origin: (usize, usize)) -> Prediction {
        let (_, h, w) = raw.dim();
        let k = self.meta.classes.len();
        let dev = &self.runtime.device;
        let spec = &self.meta.config.spec;
        let x = assemble(raw, &self.meta.normalisation, spec);
        let x = to_tensor(x.into_raw_vec_and_offset().0, [1, spec.in_ch(), h, w], dev);
        let latent = self.net.latent(x);
        let cfg = &self.meta.config;
        let passes = if cfg.dropout > 0.0 {
            cfg.mc_passes.max(1)
        } else {
            1
        };
        let keep = 1.0 - cfg.dropout;
        let hc = self.net.head_channels();
        let mut psum: Option<Tensor<4>> = None;
        let mut usum: Option<Tensor<4>> = None;
        let mut esum: Option<Tensor<4>> = None;
        let temperature = self.meta.report.temperature as f32;
        for t in 0..passes {
            let mask = (cfg.dropout > 0.0).then(|| {
                let mut m = Vec::with_capacity(hc * h * w);
                for ch in 0..hc {
                    for r in 0..h {
                        for c in 0..w {
                            let u = unit(hash4(
                                cfg.seed ^ 0xD80,
                                t as u64,
                                ch as u64,
                                (origin.0 + r) as u64,
                                (origin.1 + c) as u64,
                            ));
                            m.push(if u < keep { (1.0 / keep) as f32 } else { 0.0 });
                        }
                    }
                }
                to_tensor(m, [1, hc, h, w], dev)
            });
            let raw_logp = self.net.log_probs(&latent, mask.as_ref());
            let u = raw_logp.clone().exp();
            usum = Some(match usum {
                Some(a) => a + u,
                None => u,
            });
            let logp = if temperature == 1.0 {
                raw_logp
            } else {
                burn::tensor::activation::log_softmax(raw_logp / temperature, 1)
            };
            let p = logp.clone().exp();
            let ent = (p.clone() * logp).sum_dim(1).neg();
            psum = Some(match psum {
                Some(a) => a + p,
                None => p,
            });
            esum = Some(match esum {
                Some(a) => a + ent,
                None => ent,
            });
        }
        let n = passes as f32;
        let probs = to_vec(psum.expect("one pass") / n);
        let uncal = to_vec(usum.expect("one pass") / n);
        let ent = to_vec(esum.expect("one pass") / n);
        let a3 = |v: Vec<f32>| {
            Array3::from_shape_vec((k, h, w), v).unwrap_or_else(|_| Array3::zeros((k, h, w)))
        };
        Prediction {
            probs: a3(probs),
            uncalibrated: a3(uncal),
            entropy: Array2::from_shape_vec((h, w), ent).unwrap_or_else(|_| Array2::zeros((h, w))),
        }
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

/// Log-probabilities `[K]` and label of every labelled validation pixel (deterministic head).
fn val_log_probs(
    net: &FusionNet,
    norm: &Normalisation,
    val: &[Patch],
    k: usize,
    device: &Device,
) -> Vec<(Vec<f32>, usize)> {
    let spec = net.spec();
    let mut out = Vec::new();
    for chunk in val.chunks(16) {
        let pts: Vec<&Patch> = chunk.iter().collect();
        let zeros = vec![0usize; pts.len()];
        let (xs, ys, ws, p) = batch(
            &pts,
            norm,
            &spec,
            &vec![1.0; k],
            &zeros,
            &vec![0; pts.len()],
        );
        let b = pts.len();
        let logp = to_vec(net.log_probs(
            &net.latent(to_tensor(xs, [b, spec.in_ch(), p, p], device)),
            None,
        ));
        for i in 0..b {
            for px in 0..p * p {
                let idx = i * p * p + px;
                if ws[idx] > 0.0 {
                    out.push((
                        (0..k).map(|c| logp[(i * k + c) * p * p + px]).collect(),
                        ys[idx] as usize,
                    ));
                }
            }
        }
    }
    out
}

/// mIoU of `net` on validation patches (argmax of the deterministic head).
fn validate(
    net: &FusionNet,
    norm: &Normalisation,
    val: &[Patch],
    k: usize,
    device: &Device,
) -> f64 {
    let mut conf = Confusion::new(k);
    for (lp, y) in val_log_probs(net, norm, val, k, device) {
        let best = (0..k).max_by(|&a, &c| lp[a].total_cmp(&lp[c])).unwrap_or(0);
        conf.add(y, best);
    }
    let names: Vec<String> = (0..k).map(|i| i.to_string()).collect();
    conf.metrics(&names).miou
}

/// Temperature scaling (Guo et al. 2017): the T > 0 minimising the negative log-likelihood of
/// softmax(log p / T) on labelled samples, searched on a log grid over [0.25, 8].
pub fn fit_temperature(samples: &[(Vec<f32>, usize)]) -> f64 {
    if samples.is_empty() {
        return 1.0;
    }
    let nll = |t: f64| -> f64 {
        samples
            .iter()
            .map(|(lp, y)| {
                let z: Vec<f64> = lp.iter().map(|&v| v as f64 / t).collect();
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                lse - z[*y]
            })
            .sum::<f64>()
            / samples.len() as f64
    };
    let grid =
        (0..=80).map(|i| (0.25f64.ln() + i as f64 / 80.0 * (8.0f64.ln() - 0.25f64.ln())).exp());
    grid.map(|t| (nll(t), t))
        .fold((f64::INFINITY, 1.0), |a, b| if b.0 < a.0 { b } else { a })
        .1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_scaling_recovers_an_overconfidence_factor() {
        // Samples drawn from softmax(z), reported as log_softmax(3 z): over-confident by 3.
        let mut r = Rng::new(4);
        let samples: Vec<(Vec<f32>, usize)> = (0..4000)
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
                let z3: Vec<f64> = z.iter().map(|v| 3.0 * v).collect();
                let lse = z3.iter().map(|v| v.exp()).sum::<f64>().ln();
                (z3.iter().map(|v| (v - lse) as f32).collect(), y)
            })
            .collect();
        let t = fit_temperature(&samples);
        assert!((t - 3.0).abs() < 0.4, "fitted T = {t}");
        assert_eq!(fit_temperature(&[]), 1.0);
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
