//! burn modules: per-modality encoders, the fusion strategies and the classification head.
//!
//! Input layout `[batch, channels, height, width]`: the optical block (10 normalised
//! reflectances, then `extra_opt` hand-crafted optical features in hybrid models, then the
//! optical presence flag) followed by the SAR block (VV and/or VH dB, `extra_sar` hand-crafted SAR
//! features, SAR presence flag). Missing values are 0. Every layer keeps the 10 m grid
//! (stride 1, same padding).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu, sigmoid, softmax};
use burn::tensor::ops::PadMode;
use serde::{Deserialize, Serialize};

pub use super::temporal::TemporalSpec;
use super::temporal::{Ltae, Temporal};
use super::unet::UNet;
pub(crate) use crate::config::network::is_off;
use crate::config::network::{is_no, is_yes, is_zero, yes};
pub use crate::config::network::{EncoderKind, Fusion};

/// Optical bands of a network unless its spec says otherwise (Sentinel-2's 10 m and 20 m
/// bands); saved models of that shape do not record the count, so their files and hashes
/// are those of earlier releases.
pub const DEFAULT_OPTICAL: usize = 10;

fn default_optical() -> usize {
    DEFAULT_OPTICAL
}

fn is_default_optical(n: &usize) -> bool {
    *n == DEFAULT_OPTICAL
}

/// SAR polarisations of a network unless its spec says otherwise (VV and VH); saved models
/// of that shape do not record the count.
pub const DEFAULT_SAR: usize = 2;

fn default_sar() -> usize {
    DEFAULT_SAR
}

fn is_default_sar(n: &usize) -> bool {
    *n == DEFAULT_SAR
}
/// Receptive radius of the small encoder (3x3, 3x3, 3x3 dilated by 2).
pub const ENCODER_RADIUS: usize = 4;

impl EncoderKind {
    /// Receptive radius in pixels.
    pub fn radius(self) -> usize {
        match self {
            EncoderKind::Small => ENCODER_RADIUS,
            EncoderKind::Unet => super::unet::UNET_RADIUS,
        }
    }

    /// The lattice a window must align to for a tile to equal an untiled run (1 = none).
    pub fn alignment(self) -> usize {
        match self {
            EncoderKind::Small => 1,
            EncoderKind::Unet => super::unet::UNET_STRIDE,
        }
    }
}

/// Shape of a network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Fusion strategy (stored under its model-file name, see `fusion::model_name`).
    #[serde(with = "super::fusion::model_name")]
    pub fusion: Fusion,
    /// Latent channels.
    pub width: usize,
    /// Kernel side for kernel fusion.
    pub kernel: usize,
    /// Classes.
    pub classes: usize,
    /// Optical bands of the input (whatever the scene declares: 13-band L1C, 10 or 12-band
    /// L2A, 4-band).
    #[serde(
        default = "default_optical",
        skip_serializing_if = "is_default_optical"
    )]
    pub optical: usize,
    /// SAR polarisations of the input (VV only: 1; VV and VH: 2).
    #[serde(default = "default_sar", skip_serializing_if = "is_default_sar")]
    pub sar: usize,
    /// Hybrid: hand-crafted optical features fed to the optical branch.
    #[serde(default)]
    pub extra_opt: usize,
    /// Hybrid: hand-crafted SAR features fed to the SAR branch.
    #[serde(default)]
    pub extra_sar: usize,
    /// Encoder of each branch (omitted from the model file when small, so earlier models and
    /// their hashes are unchanged).
    #[serde(default, skip_serializing_if = "EncoderKind::is_small")]
    pub encoder: EncoderKind,
    /// Whether the raw bands reach the network (false: hybrid features alone, the raw band
    /// channels held at 0); omitted from the model file when true.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub raw_inputs: bool,
    /// A pixel path beside each encoder: a 1 x 1 convolution of the branch input added to the
    /// encoder's output, so a pixel's own values reach the heads unblurred by the encoder's
    /// neighbourhood (parcel edges). Omitted from the model file when false.
    #[serde(default, skip_serializing_if = "is_no")]
    pub pixel_path: bool,
    /// Learned kernel: window radius of the registration cue (`super::align`) that resamples
    /// the SAR latent onto the optical grid, with a learned scale; 0 (the default, omitted
    /// from the model file) for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub align: usize,
    /// A season network's temporal encoders ([`super::temporal`]): `optical` and `sar` then
    /// count every band at every step, and each branch takes one observed flag per step. None
    /// (omitted from the model file): the steps are plain channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal: Option<TemporalSpec>,
}

impl NetSpec {
    /// A network of `fusion` on the raw bands alone (no hybrid features), 3 x 3 fusion kernel.
    pub fn raw(fusion: Fusion, width: usize, classes: usize) -> NetSpec {
        NetSpec {
            fusion,
            width,
            kernel: 3,
            classes,
            optical: DEFAULT_OPTICAL,
            sar: DEFAULT_SAR,
            extra_opt: 0,
            extra_sar: 0,
            encoder: EncoderKind::Small,
            raw_inputs: true,
            pixel_path: false,
            align: 0,
            temporal: None,
        }
    }

    /// Raw input bands: the optical bands, then the SAR polarisations (dB).
    pub fn raw_bands(&self) -> usize {
        self.optical + self.sar
    }

    /// Observed flags per branch: one per step with temporal encoders, else none.
    pub fn flags(&self) -> usize {
        self.temporal.map_or(0, |t| t.steps)
    }

    /// Optical block channels: bands, observed flags, features, presence flag.
    pub fn opt_ch(&self) -> usize {
        self.optical + self.flags() + self.extra_opt + 1
    }

    /// SAR block channels: polarisations, observed flags, features, presence flag.
    pub fn sar_ch(&self) -> usize {
        self.sar + self.flags() + self.extra_sar + 1
    }

    /// The spec the spatial encoders see: with temporal encoders each branch's bands and
    /// flags become its temporal latent (`dim` channels) and the fraction of its steps
    /// observed at the pixel (so the heads can widen their variance where dates were lost);
    /// unchanged without.
    pub fn encoded(&self) -> NetSpec {
        match self.temporal {
            Some(t) => NetSpec {
                optical: t.dim + 1,
                sar: t.dim + 1,
                temporal: None,
                ..*self
            },
            None => *self,
        }
    }

    /// All input channels.
    pub fn in_ch(&self) -> usize {
        self.opt_ch() + self.sar_ch()
    }

    /// Heads whose outputs are precision-weighted: 1 for single-branch fusions, 2 (optical,
    /// SAR) for late fusion, 3 (optical, SAR, joint) for the others.
    pub fn experts(&self) -> usize {
        match self.fusion {
            Fusion::Early | Fusion::OpticalOnly | Fusion::SarOnly => 1,
            Fusion::Late => 2,
            _ => 3,
        }
    }

    /// Receptive radius in pixels: the halo inference needs.
    pub fn receptive_radius(&self) -> usize {
        self.encoder.radius()
            + match self.fusion {
                Fusion::LearnedKernel => {
                    self.kernel / 2 + super::align::extra_radius(self.align, self.kernel)
                }
                Fusion::FixedKernel => self.kernel / 2,
                _ => 0,
            }
    }
}

pub(crate) fn conv(cin: usize, cout: usize, k: usize, dilation: usize, device: &Device) -> Conv2d {
    let pad = dilation * (k / 2);
    Conv2dConfig::new([cin, cout], [k, k])
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .init(device)
}

/// Three convolutions with ReLU: radius 1 + 1 + 2 = [`ENCODER_RADIUS`].
#[derive(Module, Debug)]
pub struct Encoder {
    pub(crate) c1: Conv2d,
    pub(crate) c2: Conv2d,
    pub(crate) c3: Conv2d,
}

impl Encoder {
    fn new(cin: usize, width: usize, device: &Device) -> Self {
        Encoder {
            c1: conv(cin, width, 3, 1, device),
            c2: conv(width, width, 3, 1, device),
            c3: conv(width, width, 3, 2, device),
        }
    }

    // [batch, cin, h, w] -> [batch, width, h, w]
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(
            self.c3
                .forward(relu(self.c2.forward(relu(self.c1.forward(x))))),
        )
    }
}

/// Clamp of a head's log-variance (keeps precisions finite: exp(8) ~ 3000).
pub const LOGVAR_RANGE: (f32, f32) = (-8.0, 8.0);

/// Latent features, one map per expert (the heads that see them), with each expert's presence
/// mask `[batch, 1, h, w]` (1 where its modalities are present; `None` = everywhere).
#[derive(Debug, Clone)]
pub struct Latent {
    /// Feature map of each expert `[batch, channels, h, w]`.
    pub maps: Vec<Tensor<4>>,
    /// Presence of each expert.
    pub presence: Vec<Option<Tensor<4>>>,
}

/// One expert's output: mean logits `[batch, K, h, w]` and log-variance `[batch, 1, h, w]`.
#[derive(Debug, Clone)]
pub struct HeadOut {
    /// Mean logits.
    pub mu: Tensor<4>,
    /// Log-variance of the logits (one per pixel, clamped to [`LOGVAR_RANGE`]).
    pub logvar: Tensor<4>,
}

/// A heteroscedastic head: 1x1 convolution + ReLU (deterministic, run once), then dropout (the
/// Monte Carlo part) and a 1x1 convolution to K mean logits and one log-variance.
#[derive(Module, Debug)]
pub struct Head {
    pub(crate) hidden: Conv2d,
    pub(crate) out: Conv2d,
}

impl Head {
    fn new(cin: usize, width: usize, classes: usize, device: &Device) -> Self {
        Head {
            hidden: conv(cin, width, 1, 1, device),
            out: conv(width, classes + 1, 1, 1, device),
        }
    }
}

/// The whole network: encoders, fusion, and one heteroscedastic head per expert. Experts:
/// single-branch fusions (early, optical-only, sar-only) have one; late fusion has an optical
/// and a SAR expert; the other fusions have an optical, a SAR and a joint expert (the fused
/// latent, present where both modalities are). Experts are combined by precision weighting
/// ([`precision_fuse`]).
#[derive(Module, Debug)]
pub struct FusionNet {
    pub(crate) opt: Option<Encoder>,
    pub(crate) sar: Option<Encoder>,
    pub(crate) opt_unet: Option<UNet>,
    pub(crate) sar_unet: Option<UNet>,
    pub(crate) opt_px: Option<Conv2d>,
    pub(crate) sar_px: Option<Conv2d>,
    pub(crate) mix: Option<Conv2d>,
    pub(crate) bil_a: Option<Conv2d>,
    pub(crate) bil_b: Option<Conv2d>,
    pub(crate) heads: Vec<Head>,
    /// Learned kernel with `align`: the scale of the registration cue's resampling logits
    /// (times [`super::align::ALIGN_SCALE`]).
    pub(crate) align: Option<Param<Tensor<1>>>,
    /// A season network's temporal encoders.
    pub(crate) temporal: Option<Temporal>,
    #[module(skip)]
    spec: NetSpec,
}

fn channels(x: &Tensor<4>, r: std::ops::Range<usize>) -> Tensor<4> {
    x.clone().slice(s![.., r, .., ..])
}

/// Each expert's precision presence * exp(-logvar) `[batch, 1, h, w]`.
fn precisions(outs: &[HeadOut], presence: &[Option<Tensor<4>>]) -> Vec<Tensor<4>> {
    outs.iter()
        .zip(presence)
        .map(|(o, pr)| {
            let pi = o.logvar.clone().neg().exp();
            match pr {
                Some(p) => pi * p.clone(),
                None => pi,
            }
        })
        .collect()
}

/// Precision-weighted fusion of expert logits (inverse-variance weighting, the product of the
/// experts' Gaussian logit estimates): with precision pi_e = presence_e * exp(-logvar_e),
/// mu = sum_e pi_e mu_e / sum_e pi_e and logvar = -ln(sum_e pi_e). A missing expert has
/// presence 0, so its weight is exactly zero and the others carry the pixel. Where no expert is
/// present the result is mu = 0 with the widest variance.
pub fn precision_fuse(outs: &[HeadOut], presence: &[Option<Tensor<4>>]) -> HeadOut {
    if outs.len() == 1 {
        return outs[0].clone();
    }
    let pis = precisions(outs, presence);
    let total = pis
        .iter()
        .cloned()
        .reduce(|a, b| a + b)
        .expect("one expert");
    let mut num: Option<Tensor<4>> = None;
    for (o, pi) in outs.iter().zip(&pis) {
        let term = o.mu.clone() * pi.clone();
        num = Some(match num {
            Some(a) => a + term,
            None => term,
        });
    }
    let floor = (-LOGVAR_RANGE.1).exp() * 1e-3;
    let total = total.clamp_min(floor);
    HeadOut {
        mu: num.expect("one expert") / total.clone(),
        logvar: total.log().neg(),
    }
}

/// Precision weights of the experts `[batch, 1, h, w]` each (they sum to 1 where any expert is
/// present): what [`precision_fuse`] uses.
pub fn precision_weights(outs: &[HeadOut], presence: &[Option<Tensor<4>>]) -> Vec<Tensor<4>> {
    let pis = precisions(outs, presence);
    let total = pis
        .iter()
        .cloned()
        .reduce(|a, b| a + b)
        .expect("one expert")
        .clamp_min(1e-30);
    pis.into_iter().map(|p| p / total.clone()).collect()
}

/// Numbers a network's parameters 1, 2, 3, ... in module order instead of burn's random ids,
/// so that a saved model (`.bpk`, which stores each parameter's id) is the same bytes for the
/// same weights. The ids only key the optimiser's state; the arithmetic never sees them.
struct SequentialIds(u64);

impl burn::module::ModuleMapper for SequentialIds {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.id = burn::module::ParamId::from(self.0);
        self.0 += 1;
        param
    }
}

impl FusionNet {
    /// A freshly initialised network.
    pub fn new(full: NetSpec, device: &Device) -> Self {
        let temporal = full.temporal.map(|t| Temporal {
            opt: (full.fusion != Fusion::SarOnly)
                .then(|| Ltae::new(full.optical / t.steps, &t, device)),
            sar: (full.fusion != Fusion::OpticalOnly)
                .then(|| Ltae::new(full.sar / t.steps, &t, device)),
        });
        let spec = full.encoded();
        let w = spec.width;
        let taps = 2 * spec.kernel * spec.kernel;
        let (opt_in, sar_in) = match spec.fusion {
            Fusion::Early => (Some(spec.in_ch()), None),
            Fusion::OpticalOnly => (Some(spec.opt_ch()), None),
            Fusion::SarOnly => (None, Some(spec.sar_ch())),
            _ => (Some(spec.opt_ch()), Some(spec.sar_ch())),
        };
        let small = spec.encoder == EncoderKind::Small;
        let (opt, sar) = (
            opt_in.filter(|_| small).map(|c| Encoder::new(c, w, device)),
            sar_in.filter(|_| small).map(|c| Encoder::new(c, w, device)),
        );
        let (opt_unet, sar_unet) = (
            opt_in.filter(|_| !small).map(|c| UNet::new(c, w, device)),
            sar_in.filter(|_| !small).map(|c| UNet::new(c, w, device)),
        );
        let px = |c: Option<usize>| {
            c.filter(|_| spec.pixel_path)
                .map(|c| conv(c, w, 1, 1, device))
        };
        let (opt_px, sar_px) = (px(opt_in), px(sar_in));
        let mix = match spec.fusion {
            Fusion::Concat => Some(conv(2 * w, w, 1, 1, device)),
            Fusion::Attention => Some(conv(2 * w + 2, w, 1, 1, device)),
            Fusion::LearnedKernel => Some(conv(2 * w + 2, taps, 3, 1, device)),
            _ => None,
        };
        let rank = w.div_ceil(2).max(2);
        let (bil_a, bil_b) = if spec.fusion == Fusion::Bilinear {
            (
                Some(conv(w, rank, 1, 1, device)),
                Some(conv(w, rank, 1, 1, device)),
            )
        } else {
            (None, None)
        };
        // The joint expert of bilinear fusion sees the rank-r product.
        let joint_in = if spec.fusion == Fusion::Bilinear {
            rank
        } else {
            w
        };
        let k = spec.classes;
        let heads = match spec.experts() {
            1 => vec![Head::new(w, w, k, device)],
            2 => vec![Head::new(w, w, k, device), Head::new(w, w, k, device)],
            _ => vec![
                Head::new(w, w, k, device),
                Head::new(w, w, k, device),
                Head::new(joint_in, w, k, device),
            ],
        };
        FusionNet {
            opt,
            sar,
            opt_unet,
            sar_unet,
            opt_px,
            sar_px,
            mix,
            bil_a,
            bil_b,
            heads,
            align: (spec.fusion == Fusion::LearnedKernel && spec.align > 0)
                .then(|| Param::from_tensor(Tensor::from_floats([1.0], device))),
            temporal,
            spec: full,
        }
        .map(&mut SequentialIds(1))
    }

    /// The network with every parameter's initial values drawn now. burn initialises a
    /// parameter lazily, at its first use; this runs one forward pass on a one-pixel input, so
    /// the draws come in the order a training step first uses them (the order of every model
    /// trained before this existed). Call it right after seeding, under `INIT_LOCK`, so that no
    /// other draw from burn's generator comes between.
    pub fn initialised(self, device: &Device) -> Self {
        let x = Tensor::<4>::zeros([1, self.spec.in_ch(), 1, 1], device);
        let hidden = self.hidden(&self.latent(x));
        std::hint::black_box(self.expert_outputs(&hidden, None));
        self
    }

    /// The network's shape.
    pub fn spec(&self) -> NetSpec {
        self.spec
    }

    /// Encoders and fusion: `[batch, in_ch, h, w]` -> each expert's latent map and presence.
    pub fn latent(&self, x: Tensor<4>) -> Latent {
        let x = self.through_time(x);
        let spec = self.spec.encoded();
        let (opt_ch, in_ch) = (spec.opt_ch(), spec.in_ch());
        let po = channels(&x, opt_ch - 1..opt_ch);
        let ps = channels(&x, in_ch - 1..in_ch);
        type Branch<'a> = (&'a Option<Encoder>, &'a Option<UNet>, &'a Option<Conv2d>);
        let enc = |(e, u, px): Branch, x: Tensor<4>| {
            let f = match (e, u) {
                (Some(e), _) => e.forward(x.clone()),
                (None, Some(u)) => u.forward(x.clone()),
                (None, None) => unreachable!("encoder present"),
            };
            match px {
                Some(p) => f + p.forward(x),
                None => f,
            }
        };
        let eo = (&self.opt, &self.opt_unet, &self.opt_px);
        let es = (&self.sar, &self.sar_unet, &self.sar_px);
        let one = |m: Tensor<4>| Latent {
            maps: vec![m],
            presence: vec![None],
        };
        match self.spec.fusion {
            Fusion::Early => one(enc(eo, x)),
            Fusion::OpticalOnly => one(enc(eo, channels(&x, 0..opt_ch))),
            Fusion::SarOnly => one(enc(es, channels(&x, opt_ch..in_ch))),
            f => {
                debug_assert!(f.two_branches());
                let fo = enc(eo, channels(&x, 0..opt_ch));
                let fs = enc(es, channels(&x, opt_ch..in_ch));
                let fs = self.registered(fs, &fo, &po, &ps);
                let mix = || self.mix.as_ref().expect("mix layer present");
                let joint = match f {
                    Fusion::Late => None,
                    Fusion::Concat => Some(relu(
                        mix().forward(Tensor::cat(vec![fo.clone(), fs.clone()], 1)),
                    )),
                    Fusion::Add => Some(fo.clone() + fs.clone()),
                    Fusion::Bilinear => {
                        let a = self.bil_a.as_ref().expect("bilinear").forward(fo.clone());
                        let b = self.bil_b.as_ref().expect("bilinear").forward(fs.clone());
                        Some(a * b)
                    }
                    Fusion::Attention => {
                        let g = sigmoid(mix().forward(Tensor::cat(
                            vec![fo.clone(), fs.clone(), po.clone(), ps.clone()],
                            1,
                        )));
                        Some(fo.clone() * g.clone() + fs.clone() * (g.neg() + 1.0))
                    }
                    Fusion::LearnedKernel => {
                        let logits = mix().forward(Tensor::cat(
                            vec![fo.clone(), fs.clone(), po.clone(), ps.clone()],
                            1,
                        ));
                        Some(kernel_fuse(
                            &fo,
                            &fs,
                            &po,
                            &ps,
                            Some(logits),
                            self.spec.kernel,
                        ))
                    }
                    Fusion::FixedKernel => {
                        Some(kernel_fuse(&fo, &fs, &po, &ps, None, self.spec.kernel))
                    }
                    _ => unreachable!("single-branch fusions handled above"),
                };
                let both = po.clone() * ps.clone();
                let mut l = Latent {
                    maps: vec![fo, fs],
                    presence: vec![Some(po), Some(ps)],
                };
                if let Some(j) = joint {
                    l.maps.push(j);
                    l.presence.push(Some(both));
                }
                l
            }
        }
    }

    /// A season network's input with each branch's steps and flags replaced by its temporal
    /// latent (the layout of [`NetSpec::encoded`]); unchanged without temporal encoders.
    fn through_time(&self, x: Tensor<4>) -> Tensor<4> {
        let (Some(tm), Some(t)) = (&self.temporal, self.spec.temporal) else {
            return x;
        };
        let s = self.spec;
        let [b, _, h, w] = x.dims();
        let branch = |enc: &Option<Ltae>, start: usize, n: usize| match enc {
            Some(e) => {
                let flags = channels(&x, start + n..start + n + t.steps);
                let seen = flags.clone().mean_dim(1);
                Tensor::cat(
                    vec![e.forward(channels(&x, start..start + n), flags, &t), seen],
                    1,
                )
            }
            None => Tensor::zeros([b, t.dim + 1, h, w], &x.device()),
        };
        let so = s.opt_ch();
        Tensor::cat(
            vec![
                branch(&tm.opt, 0, s.optical),
                channels(&x, s.optical + t.steps..so),
                branch(&tm.sar, so, s.sar),
                channels(&x, so + s.sar + t.steps..s.in_ch()),
            ],
            1,
        )
    }

    /// With `align`: the SAR latent resampled onto the optical grid by the registration cue
    /// ([`super::align::warp`]); unchanged without.
    fn registered(
        &self,
        fs: Tensor<4>,
        fo: &Tensor<4>,
        po: &Tensor<4>,
        ps: &Tensor<4>,
    ) -> Tensor<4> {
        let Some(a) = &self.align else {
            return fs;
        };
        let k = self.spec.kernel;
        let cue = super::align::cue(fo, &fs, po, ps, k, self.spec.align);
        let scale = (a.val() * super::align::ALIGN_SCALE).reshape([1, 1, 1, 1]);
        super::align::warp(&fs, ps, cue * scale, k)
    }

    /// The deterministic part of every head (run once per window).
    pub fn hidden(&self, latent: &Latent) -> Vec<Tensor<4>> {
        self.heads
            .iter()
            .zip(&latent.maps)
            .map(|(h, m)| relu(h.hidden.forward(m.clone())))
            .collect()
    }

    /// The Monte Carlo part of every head: hidden maps times the dropout `mask`
    /// (`[batch, experts * width, h, w]`, expert e using channels `e * width..(e + 1) * width`)
    /// -> each expert's mean logits and log-variance.
    pub fn expert_outputs(&self, hidden: &[Tensor<4>], mask: Option<&Tensor<4>>) -> Vec<HeadOut> {
        let w = self.spec.width;
        let k = self.spec.classes;
        self.heads
            .iter()
            .zip(hidden)
            .enumerate()
            .map(|(e, (h, z))| {
                let z = match mask {
                    Some(m) => z.clone() * channels(m, e * w..(e + 1) * w),
                    None => z.clone(),
                };
                let o = h.out.forward(z);
                HeadOut {
                    mu: channels(&o, 0..k),
                    logvar: channels(&o, k..k + 1).clamp(LOGVAR_RANGE.0, LOGVAR_RANGE.1),
                }
            })
            .collect()
    }

    /// Mean logits and log-variance of the precision-weighted experts.
    pub fn fused(&self, latent: &Latent, mask: Option<&Tensor<4>>) -> HeadOut {
        let outs = self.expert_outputs(&self.hidden(latent), mask);
        precision_fuse(&outs, &latent.presence)
    }

    /// Log class probabilities of the fused mean logits `[batch, classes, h, w]` (no logit
    /// noise): what validation and the argmax use.
    pub fn log_probs(&self, latent: &Latent, mask: Option<&Tensor<4>>) -> Tensor<4> {
        log_softmax(self.fused(latent, mask).mu, 1)
    }

    /// Dropout mask channels: experts x width.
    pub fn head_channels(&self) -> usize {
        self.heads.len() * self.spec.width
    }
}

/// Heteroscedastic classification loss (Kendall & Gal 2017): the negative log of the mean over
/// noise samples of softmax(mu + sigma eps)_y, per pixel `[batch, 1, h, w]`. `eps` holds the
/// standard-normal samples, each `[batch, K, h, w]`.
pub fn sampled_softmax_nll(out: &HeadOut, y: &Tensor<4, Int>, eps: &[Tensor<4>]) -> Tensor<4> {
    let sigma = (out.logvar.clone() * 0.5).exp();
    let lps: Vec<Tensor<4>> = eps
        .iter()
        .map(|e| log_softmax(out.mu.clone() + sigma.clone() * e.clone(), 1).gather(1, y.clone()))
        .collect();
    let n = lps.len() as f64;
    let stacked = Tensor::cat(lps, 1);
    let m = stacked.clone().max_dim(1).detach();
    let lse = (stacked - m.clone()).exp().sum_dim(1).log() + m;
    (lse - n.ln()).neg()
}

/// Kernel fusion: for every pixel p, fused(p) = sum over taps t = (modality m, offset o) of
/// w_t(p) f_m(p + o), with w(p) normalised over the 2 k^2 taps. Taps on missing pixels get
/// weight exactly zero. With `logits` (learned kernel) w = softmax(logits); without (fixed
/// kernel) the logits are hand-set: -|o|^2 / 2 - |f_m(p + o) - r(p)|^2 / (2 C), with r(p) the
/// mean of the present modalities' features at p (a joint bilateral filter across modalities).
pub fn kernel_fuse(
    fo: &Tensor<4>,
    fs: &Tensor<4>,
    po: &Tensor<4>,
    ps: &Tensor<4>,
    logits: Option<Tensor<4>>,
    k: usize,
) -> Tensor<4> {
    let r = k / 2;
    let [_, c, h, w] = fo.dims();
    let pad = |t: &Tensor<4>| t.clone().pad((r, r, r, r), PadMode::Constant(0.0));
    let (fo_p, fs_p, po_p, ps_p) = (pad(fo), pad(fs), pad(po), pad(ps));
    let shift =
        |t: &Tensor<4>, dy: usize, dx: usize| t.clone().slice(s![.., .., dy..dy + h, dx..dx + w]);
    let reference = (fo.clone() * po.clone() + fs.clone() * ps.clone())
        / (po.clone() + ps.clone()).clamp_min(1e-6);
    let mut feats = Vec::with_capacity(2 * k * k);
    let mut masks = Vec::with_capacity(2 * k * k);
    let mut fixed = Vec::with_capacity(2 * k * k);
    for (f_p, p_p) in [(&fo_p, &po_p), (&fs_p, &ps_p)] {
        for dy in 0..k {
            for dx in 0..k {
                let f = shift(f_p, dy, dx);
                if logits.is_none() {
                    let d2 =
                        ((dy as f32 - r as f32).powi(2) + (dx as f32 - r as f32).powi(2)) / 2.0;
                    let sim = (f.clone() - reference.clone()).powi_scalar(2).sum_dim(1)
                        / (2.0 * c as f32);
                    fixed.push(sim.neg() - d2);
                }
                feats.push(f);
                masks.push(shift(p_p, dy, dx));
            }
        }
    }
    let logits = logits.unwrap_or_else(|| Tensor::cat(fixed, 1));
    let present = Tensor::cat(masks, 1);
    // Missing taps: logit - 1e4, so softmax gives them weight 0 (exp underflows).
    let weights = softmax(logits + (present - 1.0) * 1e4, 1);
    let mut fused: Option<Tensor<4>> = None;
    for (t, f) in feats.into_iter().enumerate() {
        let term = f * weights.clone().slice(s![.., t..t + 1, .., ..]);
        fused = Some(match fused {
            Some(acc) => acc + term,
            None => term,
        });
    }
    fused.expect("at least one tap")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t4(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    fn vals(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn missing_modality_gets_exactly_zero_weight_in_kernel_fusion() {
        // 1 channel, 3x3 image; SAR absent everywhere: the fused value is a convex
        // combination of optical values only, whatever the (learned) logits say.
        let fo = t4((0..9).map(|v| v as f32).collect(), [1, 1, 3, 3]);
        let fs = t4(vec![1000.0; 9], [1, 1, 3, 3]);
        let po = t4(vec![1.0; 9], [1, 1, 3, 3]);
        let ps = t4(vec![0.0; 9], [1, 1, 3, 3]);
        // Logits strongly favour SAR taps (indices 9..18).
        let mut l = vec![0.0f32; 18 * 9];
        for t in 9..18 {
            for px in 0..9 {
                l[t * 9 + px] = 50.0;
            }
        }
        let out = vals(kernel_fuse(
            &fo,
            &fs,
            &po,
            &ps,
            Some(t4(l, [1, 18, 3, 3])),
            3,
        ));
        for v in &out {
            assert!(
                (0.0..=8.0).contains(v),
                "SAR leaked into the fused value: {v}"
            );
        }
        // The centre pixel sees all 9 optical taps with equal logits: their mean, 4.
        assert!((out[4] - 4.0).abs() < 1e-4, "{}", out[4]);
    }

    fn head(mu: Vec<f32>, logvar: f32, k: usize) -> HeadOut {
        HeadOut {
            mu: t4(mu, [1, k, 1, 1]),
            logvar: t4(vec![logvar], [1, 1, 1, 1]),
        }
    }

    #[test]
    fn precision_weights_by_hand() {
        // Variances 1 and 4 (log-variances 0 and ln 4): precisions 1 and 0.25, weights 0.8 and
        // 0.2; fused logits 0.8 * [2, 0] + 0.2 * [0, 1] = [1.6, 0.2]; fused variance
        // 1 / 1.25 = 0.8.
        let outs = [
            head(vec![2.0, 0.0], 0.0, 2),
            head(vec![0.0, 1.0], 4f32.ln(), 2),
        ];
        let pres = [Some(t4(vec![1.0], [1, 1, 1, 1])), None];
        let w: Vec<f32> = precision_weights(&outs, &pres)
            .into_iter()
            .flat_map(vals)
            .collect();
        assert!(
            (w[0] - 0.8).abs() < 1e-6 && (w[1] - 0.2).abs() < 1e-6,
            "{w:?}"
        );
        let f = precision_fuse(&outs, &pres);
        let mu = vals(f.mu);
        assert!(
            (mu[0] - 1.6).abs() < 1e-5 && (mu[1] - 0.2).abs() < 1e-5,
            "{mu:?}"
        );
        assert!((vals(f.logvar)[0] - 0.8f32.ln()).abs() < 1e-5);
        // Three experts with variances 1, 1 and 0.5: weights 0.25, 0.25, 0.5.
        let outs3 = [
            head(vec![0.0], 0.0, 1),
            head(vec![4.0], 0.0, 1),
            head(vec![8.0], 0.5f32.ln(), 1),
        ];
        let f3 = precision_fuse(&outs3, &[None, None, None]);
        assert!((vals(f3.mu)[0] - 5.0).abs() < 1e-5);
        assert!((vals(f3.logvar)[0] - 0.25f32.ln()).abs() < 1e-5);
    }

    #[test]
    fn a_missing_modality_gets_exactly_zero_weight() {
        // The SAR expert claims a tiny variance but is absent: the result is the optical
        // expert's, bit for bit, and its weight is exactly 0.
        let outs = [
            head(vec![0.3, -1.2, 2.0], 1.5, 3),
            head(vec![50.0, 0.0, 0.0], -8.0, 3),
        ];
        let pres = [
            Some(t4(vec![1.0], [1, 1, 1, 1])),
            Some(t4(vec![0.0], [1, 1, 1, 1])),
        ];
        let w = precision_weights(&outs, &pres);
        assert_eq!(vals(w[1].clone())[0], 0.0);
        assert_eq!(vals(w[0].clone())[0], 1.0);
        let f = precision_fuse(&outs, &pres);
        let mu = vals(f.mu);
        for (a, b) in mu.iter().zip([0.3f32, -1.2, 2.0]) {
            assert!((a - b).abs() < 1e-6, "{mu:?}");
        }
        assert!((vals(f.logvar)[0] - 1.5).abs() < 1e-5);
    }

    #[test]
    fn sampled_softmax_loss_by_hand() {
        let y =
            Tensor::<4, Int>::from_data(TensorData::new(vec![0i64], [1, 1, 1, 1]), &Device::flex());
        let e = t4(vec![0.7, -1.3], [1, 2, 1, 1]);
        // Zero variance: plain cross-entropy, -log softmax([1, 0])_0 = ln(1 + e^-1).
        let sharp = head(vec![1.0, 0.0], LOGVAR_RANGE.0, 2);
        let l = vals(sampled_softmax_nll(&sharp, &y, std::slice::from_ref(&e)))[0];
        assert!((l - (1.0 + (-1f32).exp()).ln()).abs() < 2e-2, "{l}");
        // Equal means, antithetic noise: softmax(s e)_0 + softmax(-s e)_0 = 1 for two classes, so
        // the mean probability is exactly 1/2 and the loss ln 2, whatever the variance.
        let flat = head(vec![0.5, 0.5], 2.0, 2);
        let l = vals(sampled_softmax_nll(&flat, &y, &[e.clone(), e.neg()]))[0];
        assert!((l - 2f32.ln()).abs() < 1e-6, "{l}");
        // One sample, hand-computed: mu = [1, 0], sigma = 2, eps = [0.7, -1.3]:
        // logits [2.4, -2.6], loss ln(1 + e^-5).
        let h = head(vec![1.0, 0.0], 4f32.ln(), 2);
        let l = vals(sampled_softmax_nll(
            &h,
            &y,
            &[t4(vec![0.7, -1.3], [1, 2, 1, 1])],
        ))[0];
        assert!((l - (1.0 + (-5f32).exp()).ln()).abs() < 1e-6, "{l}");
    }

    #[test]
    fn fixed_kernel_on_a_constant_image_returns_the_constant() {
        let f = t4(vec![2.5; 2 * 16], [1, 2, 4, 4]);
        let p = t4(vec![1.0; 16], [1, 1, 4, 4]);
        let out = vals(kernel_fuse(&f, &f, &p, &p, None, 3));
        assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-5), "{out:?}");
    }

    #[test]
    fn every_fusion_keeps_the_grid_and_gives_log_probabilities() {
        let dev = Device::flex();
        for (i, fusion) in Fusion::ALL.into_iter().enumerate() {
            let spec = NetSpec {
                fusion,
                width: 4,
                kernel: 3,
                classes: 3,
                optical: 13,
                sar: 1 + i % 2,
                extra_opt: 2,
                extra_sar: 1,
                encoder: EncoderKind::Small,
                raw_inputs: i % 3 != 0,
                pixel_path: i % 2 == 0,
                align: if fusion == Fusion::LearnedKernel {
                    3
                } else {
                    0
                },
                temporal: None,
            };
            let net = FusionNet::new(spec, &dev);
            let x = Tensor::<4>::random(
                [2, spec.in_ch(), 9, 7],
                burn::tensor::Distribution::Default,
                &dev,
            );
            let lp = net.log_probs(&net.latent(x), None);
            assert_eq!(lp.dims(), [2, 3, 9, 7], "{fusion:?}");
            let sums = vals(lp.exp().sum_dim(1));
            assert!(
                sums.iter().all(|s| (s - 1.0).abs() < 1e-4),
                "{fusion:?}: {sums:?}"
            );
        }
    }
}
