//! burn modules: per-modality encoders, the fusion strategies and the classification head.
//!
//! Input layout `[batch, channels, height, width]`: the optical block (10 normalised
//! reflectances, then `extra_opt` hand-crafted optical features in hybrid models, then the
//! optical presence flag) followed by the SAR block (VV, VH dB, `extra_sar` hand-crafted SAR
//! features, SAR presence flag). Missing values are 0. Every layer keeps the 10 m grid
//! (stride 1, same padding).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu, sigmoid, softmax};
use burn::tensor::ops::PadMode;
use serde::{Deserialize, Serialize};

/// Optical input channels without hand-crafted features (10 bands + presence flag).
pub const BASE_OPT_CH: usize = 11;
/// SAR input channels without hand-crafted features (VV, VH + presence flag).
pub const BASE_SAR_CH: usize = 3;
/// Receptive radius of an encoder (3x3, 3x3, 3x3 dilated by 2).
pub const ENCODER_RADIUS: usize = 4;

/// How the two modalities are fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fusion {
    /// Stacked inputs, one encoder.
    Early,
    /// Per-branch heads, probabilities averaged over the present modalities.
    Late,
    /// Latent vectors concatenated, mixed by a 1x1 convolution.
    Concat,
    /// Latent vectors added.
    Add,
    /// Low-rank multiplicative interaction of the latent vectors.
    Bilinear,
    /// Gated attention: a per-pixel, per-channel gate chooses between the branches.
    Attention,
    /// A small network predicts a normalised k x k x 2 kernel per pixel, applied to both
    /// branches' neighbourhoods.
    LearnedKernel,
    /// The same operator with hand-set weights (spatial distance and feature similarity).
    FixedKernel,
    /// Optical branch only.
    OpticalOnly,
    /// SAR branch only.
    SarOnly,
}

impl Fusion {
    /// Parses a pipeline name.
    pub fn from_name(s: &str) -> Option<Fusion> {
        Some(match s {
            "early" => Fusion::Early,
            "late" => Fusion::Late,
            "concat" => Fusion::Concat,
            "add" => Fusion::Add,
            "bilinear" => Fusion::Bilinear,
            "attention" => Fusion::Attention,
            "learned-kernel" => Fusion::LearnedKernel,
            "fixed-kernel" => Fusion::FixedKernel,
            "optical-only" => Fusion::OpticalOnly,
            "sar-only" => Fusion::SarOnly,
            _ => return None,
        })
    }

    fn two_branches(self) -> bool {
        !matches!(self, Fusion::Early | Fusion::OpticalOnly | Fusion::SarOnly)
    }
}

/// Shape of a network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Fusion strategy.
    pub fusion: Fusion,
    /// Latent channels.
    pub width: usize,
    /// Kernel side for kernel fusion.
    pub kernel: usize,
    /// Classes.
    pub classes: usize,
    /// Hybrid: hand-crafted optical features fed to the optical branch.
    #[serde(default)]
    pub extra_opt: usize,
    /// Hybrid: hand-crafted SAR features fed to the SAR branch.
    #[serde(default)]
    pub extra_sar: usize,
}

impl NetSpec {
    /// Optical block channels (presence flag included).
    pub fn opt_ch(&self) -> usize {
        BASE_OPT_CH + self.extra_opt
    }

    /// SAR block channels (presence flag included).
    pub fn sar_ch(&self) -> usize {
        BASE_SAR_CH + self.extra_sar
    }

    /// All input channels.
    pub fn in_ch(&self) -> usize {
        self.opt_ch() + self.sar_ch()
    }

    /// Receptive radius in pixels: the halo inference needs.
    pub fn receptive_radius(&self) -> usize {
        ENCODER_RADIUS
            + match self.fusion {
                Fusion::LearnedKernel | Fusion::FixedKernel => self.kernel / 2,
                _ => 0,
            }
    }
}

fn conv(cin: usize, cout: usize, k: usize, dilation: usize, device: &Device) -> Conv2d {
    let pad = dilation * (k / 2);
    Conv2dConfig::new([cin, cout], [k, k])
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .init(device)
}

/// Three convolutions with ReLU: radius 1 + 1 + 2 = [`ENCODER_RADIUS`].
#[derive(Module, Debug)]
pub struct Encoder {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
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

/// Latent features before the head.
#[derive(Debug, Clone)]
pub enum Latent {
    /// One fused map `[batch, width, h, w]`.
    One(Box<Tensor<4>>),
    /// Late fusion: optical and SAR maps and presence flags `[batch, 1, h, w]` each.
    Two(Box<[Tensor<4>; 4]>),
}

/// The whole network.
#[derive(Module, Debug)]
pub struct FusionNet {
    opt: Option<Encoder>,
    sar: Option<Encoder>,
    mix: Option<Conv2d>,
    bil_a: Option<Conv2d>,
    bil_b: Option<Conv2d>,
    head: Conv2d,
    head_sar: Option<Conv2d>,
    #[module(skip)]
    spec: NetSpec,
}

fn channels(x: &Tensor<4>, r: std::ops::Range<usize>) -> Tensor<4> {
    x.clone().slice(s![.., r, .., ..])
}

impl FusionNet {
    /// A freshly initialised network.
    pub fn new(spec: NetSpec, device: &Device) -> Self {
        let w = spec.width;
        let taps = 2 * spec.kernel * spec.kernel;
        let (opt, sar) = match spec.fusion {
            Fusion::Early => (Some(Encoder::new(spec.in_ch(), w, device)), None),
            Fusion::OpticalOnly => (Some(Encoder::new(spec.opt_ch(), w, device)), None),
            Fusion::SarOnly => (None, Some(Encoder::new(spec.sar_ch(), w, device))),
            _ => (
                Some(Encoder::new(spec.opt_ch(), w, device)),
                Some(Encoder::new(spec.sar_ch(), w, device)),
            ),
        };
        let mix = match spec.fusion {
            Fusion::Concat => Some(conv(2 * w, w, 1, 1, device)),
            Fusion::Attention => Some(conv(2 * w + 2, w, 1, 1, device)),
            Fusion::LearnedKernel => Some(conv(2 * w + 2, taps, 3, 1, device)),
            Fusion::Bilinear => Some(conv(w, w, 1, 1, device)),
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
        let head_in = if spec.fusion == Fusion::Bilinear {
            rank
        } else {
            w
        };
        // Bilinear: the rank-r product feeds `mix` (r -> w) only when r == w; keep it simple:
        // the product goes straight to the head.
        let mix = if spec.fusion == Fusion::Bilinear {
            None
        } else {
            mix
        };
        FusionNet {
            opt,
            sar,
            mix,
            bil_a,
            bil_b,
            head: conv(head_in, spec.classes, 1, 1, device),
            head_sar: (spec.fusion == Fusion::Late).then(|| conv(w, spec.classes, 1, 1, device)),
            spec,
        }
    }

    /// The network's shape.
    pub fn spec(&self) -> NetSpec {
        self.spec
    }

    /// Encoders and fusion: `[batch, 14, h, w]` -> latent features.
    pub fn latent(&self, x: Tensor<4>) -> Latent {
        let (opt_ch, in_ch) = (self.spec.opt_ch(), self.spec.in_ch());
        let po = channels(&x, opt_ch - 1..opt_ch);
        let ps = channels(&x, in_ch - 1..in_ch);
        let enc = |e: &Option<Encoder>, x: Tensor<4>| {
            e.as_ref().map(|e| e.forward(x)).expect("encoder present")
        };
        match self.spec.fusion {
            Fusion::Early => Latent::One(Box::new(enc(&self.opt, x))),
            Fusion::OpticalOnly => Latent::One(Box::new(enc(&self.opt, channels(&x, 0..opt_ch)))),
            Fusion::SarOnly => Latent::One(Box::new(enc(&self.sar, channels(&x, opt_ch..in_ch)))),
            f => {
                debug_assert!(f.two_branches());
                let fo = enc(&self.opt, channels(&x, 0..opt_ch));
                let fs = enc(&self.sar, channels(&x, opt_ch..in_ch));
                let mix = || self.mix.as_ref().expect("mix layer present");
                Latent::One(Box::new(match f {
                    Fusion::Late => return Latent::Two(Box::new([fo, fs, po, ps])),
                    Fusion::Concat => relu(mix().forward(Tensor::cat(vec![fo, fs], 1))),
                    Fusion::Add => fo + fs,
                    Fusion::Bilinear => {
                        let a = self.bil_a.as_ref().expect("bilinear").forward(fo);
                        let b = self.bil_b.as_ref().expect("bilinear").forward(fs);
                        a * b
                    }
                    Fusion::Attention => {
                        let g = sigmoid(
                            mix().forward(Tensor::cat(vec![fo.clone(), fs.clone(), po, ps], 1)),
                        );
                        fo * g.clone() + fs * (g.neg() + 1.0)
                    }
                    Fusion::LearnedKernel => {
                        let logits = mix().forward(Tensor::cat(
                            vec![fo.clone(), fs.clone(), po.clone(), ps.clone()],
                            1,
                        ));
                        kernel_fuse(&fo, &fs, &po, &ps, Some(logits), self.spec.kernel)
                    }
                    Fusion::FixedKernel => kernel_fuse(&fo, &fs, &po, &ps, None, self.spec.kernel),
                    _ => unreachable!("single-branch fusions handled above"),
                }))
            }
        }
    }

    /// Head: latent (times an optional dropout `mask` of the same shape as each latent map)
    /// -> log class probabilities `[batch, classes, h, w]`.
    pub fn log_probs(&self, latent: &Latent, mask: Option<&Tensor<4>>) -> Tensor<4> {
        let drop = |t: Tensor<4>| match mask {
            Some(m) => t * m.clone(),
            None => t,
        };
        match latent {
            Latent::One(f) => log_softmax(self.head.forward(drop(f.as_ref().clone())), 1),
            Latent::Two(maps) => {
                let [fo, fs, po, ps] = maps.as_ref();
                // Average the branch probabilities over the modalities present at each pixel.
                let p_o = softmax(self.head.forward(drop(fo.clone())), 1);
                let p_s = softmax(
                    self.head_sar
                        .as_ref()
                        .expect("late head")
                        .forward(drop(fs.clone())),
                    1,
                );
                let n = (po.clone() + ps.clone()).clamp_min(1e-6);
                ((p_o * po.clone() + p_s * ps.clone()) / n + 1e-8).log()
            }
        }
    }

    /// Latent channels the head's dropout mask must have.
    pub fn head_channels(&self) -> usize {
        match self.spec.fusion {
            Fusion::Bilinear => self.spec.width.div_ceil(2).max(2),
            _ => self.spec.width,
        }
    }
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
        for &name in crate::config::FUSIONS {
            let spec = NetSpec {
                fusion: Fusion::from_name(name).unwrap(),
                width: 4,
                kernel: 3,
                classes: 3,
                extra_opt: 2,
                extra_sar: 1,
            };
            let net = FusionNet::new(spec, &dev);
            let x = Tensor::<4>::random(
                [2, spec.in_ch(), 9, 7],
                burn::tensor::Distribution::Default,
                &dev,
            );
            let lp = net.log_probs(&net.latent(x), None);
            assert_eq!(lp.dims(), [2, 3, 9, 7], "{name}");
            let sums = vals(lp.exp().sum_dim(1));
            assert!(
                sums.iter().all(|s| (s - 1.0).abs() < 1e-4),
                "{name}: {sums:?}"
            );
        }
    }
}
