//! Training steps on the CPU with geofuse's own forward and backward passes instead of burn's
//! autodiff (what `train.rs` uses on `--device cpu`; burn keeps the GPU and `cpu-burn`).
//!
//! A batch's patches are independent until the loss sums them, so each patch runs its whole
//! forward and backward pass on one thread (rayon over patches) and the parameter gradients
//! are summed in patch order: the same bits whatever the thread count. The gradients go to
//! burn's AdamW keyed by each parameter's id, so the optimiser, the saved model and every
//! other path are burn's as before. Networks with temporal encoders or the learned kernel's
//! `align` cue train through burn's autodiff. The twins below hold every fusion's gradients,
//! with both encoders and the pixel path, to burn's.

use burn::optim::GradientsParams;
use burn::prelude::*;
use rayon::prelude::*;

use super::grad_conv::{ConvGrad, GradConv};
use super::grad_loss::{nll_back, LossIn};
use super::grad_ops::{fuse, fuse_back, Out};
use super::model::{Fusion, FusionNet, NetSpec};
use super::native::Map;
use super::train_encoder::{EncTrace, TrainEncoder};
use super::train_fusion::{head_backward, head_forward, HeadTrace, JointLayers, JointTrace};

/// A training batch as the burn step draws it: inputs `[b, in_ch, p, p]`, labels and loss
/// weights `[b, p, p]`, the heads' dropout mask `[b, experts * width, p, p]` and the
/// logit-noise samples `[b, K, p, p]` each (all planar, burn's layout).
pub(crate) struct Drawn {
    pub(crate) xs: Vec<f32>,
    pub(crate) ys: Vec<i64>,
    pub(crate) ws: Vec<f32>,
    pub(crate) b: usize,
    pub(crate) p: usize,
    pub(crate) mask: Option<Vec<f32>>,
    pub(crate) eps: Vec<Vec<f32>>,
}

/// Patch `i` of a planar batch of `c` channels as a pixel-major map.
fn patch_map(v: &[f32], i: usize, c: usize, p: usize) -> Map {
    let pp = p * p;
    let planes = &v[i * c * pp..(i + 1) * c * pp];
    let mut m = Map::zeros(p, p, c);
    for (px, o) in m.v.chunks_exact_mut(c).enumerate() {
        for (ch, o) in o.iter_mut().enumerate() {
            *o = planes[ch * pp + px];
        }
    }
    m
}

/// A branch's encoder, pixel path and input, with the encoder's trace.
struct BranchTrace {
    x: Map,
    enc: EncTrace,
}

/// A network's layers with their gradient slots.
pub(crate) struct TrainNet {
    spec: NetSpec,
    opt: Option<TrainEncoder>,
    sar: Option<TrainEncoder>,
    opt_px: Option<GradConv>,
    sar_px: Option<GradConv>,
    mix: Option<GradConv>,
    bil: Option<(GradConv, GradConv)>,
    heads: Vec<(GradConv, GradConv)>,
    slots: usize,
}

/// What one patch's forward pass keeps.
struct Forward {
    maps: Vec<Map>,
    presence: Vec<Option<Vec<f32>>>,
    branches: [Option<BranchTrace>; 2],
    joint: Option<JointTrace>,
}

impl TrainNet {
    /// Whether `spec` trains natively: anything but temporal encoders and the `align` cue.
    pub(crate) fn supports(spec: &NetSpec) -> bool {
        spec.temporal.is_none() && spec.align == 0
    }

    /// The layers of `net` (None when [`supports`](Self::supports) says no).
    pub(crate) fn from_burn(net: &FusionNet) -> Option<TrainNet> {
        let spec = net.spec();
        if !Self::supports(&spec) {
            return None;
        }
        let mut n = 0;
        let mut slot = |c: &burn::nn::conv::Conv2d| {
            n += 1;
            GradConv::from_burn(c, n - 1)
        };
        let opt = TrainEncoder::from_burn(net.opt.as_ref(), net.opt_unet.as_ref(), &mut slot);
        let sar = TrainEncoder::from_burn(net.sar.as_ref(), net.sar_unet.as_ref(), &mut slot);
        let opt_px = net.opt_px.as_ref().map(&mut slot);
        let sar_px = net.sar_px.as_ref().map(&mut slot);
        let mix = net.mix.as_ref().map(&mut slot);
        let bil = match (&net.bil_a, &net.bil_b) {
            (Some(a), Some(b)) => Some((slot(a), slot(b))),
            _ => None,
        };
        let heads = net
            .heads
            .iter()
            .map(|h| (slot(&h.hidden), slot(&h.out)))
            .collect();
        Some(TrainNet {
            spec,
            opt,
            sar,
            opt_px,
            sar_px,
            mix,
            bil,
            heads,
            slots: n,
        })
    }

    /// Every layer, in slot order.
    fn layers(&self) -> Vec<&GradConv> {
        let mut all: Vec<&GradConv> = [&self.opt, &self.sar]
            .into_iter()
            .flatten()
            .flat_map(|e| e.layers())
            .chain(self.opt_px.iter())
            .chain(self.sar_px.iter())
            .chain(self.mix.iter())
            .chain(self.bil.iter().flat_map(|(a, b)| [a, b]))
            .chain(self.heads.iter().flat_map(|(a, b)| [a, b]))
            .collect();
        all.sort_by_key(|l| l.slot);
        debug_assert_eq!(all.len(), self.slots);
        all
    }

    fn joint(&self) -> JointLayers<'_> {
        JointLayers {
            fusion: self.spec.fusion,
            kernel: self.spec.kernel,
            mix: self.mix.as_ref(),
            bil: self.bil.as_ref(),
        }
    }

    fn branch(&self, b: usize) -> (&TrainEncoder, &Option<GradConv>) {
        match b {
            0 => (self.opt.as_ref().expect("optical encoder"), &self.opt_px),
            _ => (self.sar.as_ref().expect("SAR encoder"), &self.sar_px),
        }
    }

    fn branch_forward(&self, b: usize, x: Map) -> (Map, BranchTrace) {
        let (enc, px) = self.branch(b);
        let (f, tr) = enc.forward(&x);
        let f = match px {
            Some(p) => f.zip(&p.forward(&x, false), |a, b| a + b),
            None => f,
        };
        (f, BranchTrace { x, enc: tr })
    }

    fn branch_backward(&self, b: usize, tr: &BranchTrace, d: Map, sink: &mut [ConvGrad]) {
        let (enc, px) = self.branch(b);
        if let Some(p) = px {
            p.back_into(&tr.x, &d, false, sink);
        }
        enc.backward(&tr.enc, d, sink);
    }

    /// `FusionNet::latent` of one patch, keeping what the backward pass needs.
    fn forward(&self, x: Map) -> Forward {
        let s = &self.spec;
        let (opt_ch, in_ch) = (s.opt_ch(), s.in_ch());
        let single = |b: usize, x: Map| {
            let (f, tr) = self.branch_forward(b, x);
            let mut branches = [None, None];
            branches[b] = Some(tr);
            Forward {
                maps: vec![f],
                presence: vec![None],
                branches,
                joint: None,
            }
        };
        match s.fusion {
            Fusion::Early => single(0, x),
            Fusion::OpticalOnly => single(0, x.channels(0..opt_ch)),
            Fusion::SarOnly => single(1, x.channels(opt_ch..in_ch)),
            _ => {
                let (po, ps) = (x.plane(opt_ch - 1), x.plane(in_ch - 1));
                let (fo, to) = self.branch_forward(0, x.channels(0..opt_ch));
                let (fs, ts) = self.branch_forward(1, x.channels(opt_ch..in_ch));
                let joint = self.joint().forward((&fo, &fs), (&po, &ps));
                let both: Vec<f32> = po.iter().zip(&ps).map(|(a, b)| a * b).collect();
                let mut f = Forward {
                    maps: vec![fo, fs],
                    presence: vec![Some(po), Some(ps)],
                    branches: [Some(to), Some(ts)],
                    joint: None,
                };
                if let Some((j, tr)) = joint {
                    f.maps.push(j);
                    f.presence.push(Some(both));
                    f.joint = Some(tr);
                }
                f
            }
        }
    }

    /// The backward pass from each expert latent's gradient `dm`.
    fn backward(&self, f: &Forward, mut dm: Vec<Map>, sink: &mut [ConvGrad]) {
        if let (Some(tr), Some(dj)) = (&f.joint, dm.get(2).cloned()) {
            let (head, tail) = dm.split_at_mut(1);
            let grads = (&mut head[0], &mut tail[0]);
            self.joint()
                .backward(tr, (&f.maps[0], &f.maps[1]), dj, grads, sink);
        }
        for (b, tr) in f.branches.iter().enumerate() {
            if let Some(tr) = tr {
                let d = if f.maps.len() == 1 {
                    dm[0].clone()
                } else {
                    std::mem::replace(&mut dm[b], Map::zeros(0, 0, 0))
                };
                self.branch_backward(b, tr, d, sink);
            }
        }
    }
}

impl TrainNet {
    fn zero_sink(&self) -> Vec<ConvGrad> {
        self.layers().iter().map(|l| l.zero_grad()).collect()
    }

    /// Presence of expert `e` at pixel `j` of patch `i` (1 for a single expert).
    fn presence(&self, d: &Drawn, e: usize, i: usize, j: usize) -> f32 {
        let s = &self.spec;
        let pp = d.p * d.p;
        let plane = |ch: usize| d.xs[(i * s.in_ch() + ch) * pp + j];
        match (self.heads.len(), e) {
            (1, _) => 1.0,
            (_, 0) => plane(s.opt_ch() - 1),
            (_, 1) => plane(s.in_ch() - 1),
            _ => plane(s.opt_ch() - 1) * plane(s.in_ch() - 1),
        }
    }

    /// 1 / each loss term's weight sum over the batch: the fused prediction's, then each
    /// expert's (burn's `sum / sum(w).clamp_min(1e-6)`).
    fn scales(&self, d: &Drawn) -> Vec<f32> {
        let pp = d.p * d.p;
        let mut sums = vec![d.ws.iter().sum::<f32>()];
        if self.heads.len() > 1 {
            for e in 0..self.heads.len() {
                let s = (0..d.b * pp)
                    .map(|n| d.ws[n] * self.presence(d, e, n / pp, n % pp))
                    .sum::<f32>();
                sums.push(s);
            }
        }
        sums.into_iter().map(|s| 1.0 / s.max(1e-6)).collect()
    }

    /// The training loss of batch `d` (what `train::burn_loss` computes) and every layer's
    /// parameter gradients, in slot order. Patches run in fixed groups (an eighth of the batch
    /// each, one gradient buffer per group), and the groups' sums are added in order: the
    /// same bits whatever the thread count.
    pub(crate) fn gradients(&self, d: &Drawn) -> (f64, Vec<ConvGrad>) {
        let scales = self.scales(d);
        let group = d.b.div_ceil(8);
        let groups: Vec<Vec<usize>> = (0..d.b)
            .collect::<Vec<_>>()
            .chunks(group)
            .map(<[usize]>::to_vec)
            .collect();
        let per: Vec<(f64, Vec<ConvGrad>)> = groups
            .par_iter()
            .map(|g| {
                let mut sink = self.zero_sink();
                let loss = g
                    .iter()
                    .map(|&i| self.patch(d, i, &scales, &mut sink))
                    .sum();
                (loss, sink)
            })
            .collect();
        let mut it = per.into_iter();
        let (mut loss, mut grads) = it.next().expect("a batch holds a patch");
        for (l, g) in it {
            loss += l;
            grads.iter_mut().zip(&g).for_each(|(a, b)| a.add(b));
        }
        (loss, grads)
    }

    /// Heads of patch `i`: each expert's output and trace.
    fn heads_forward(&self, d: &Drawn, i: usize, maps: &[Map]) -> (Vec<Out>, Vec<HeadTrace>) {
        let w = self.spec.width;
        let hc = self.heads.len() * w;
        let mask = d.mask.as_ref().map(|m| patch_map(m, i, hc, d.p));
        self.heads
            .iter()
            .enumerate()
            .map(|(e, h)| {
                let me = mask.as_ref().map(|m| m.channels(e * w..(e + 1) * w));
                head_forward(h, &maps[e], me)
            })
            .unzip()
    }

    /// The loss of patch `i`, its gradients added to `sink`.
    fn patch(&self, d: &Drawn, i: usize, scales: &[f32], sink: &mut [ConvGrad]) -> f64 {
        let (p, k) = (d.p, self.spec.classes);
        let pp = p * p;
        let f = self.forward(patch_map(&d.xs, i, self.spec.in_ch(), p));
        let (outs, traces) = self.heads_forward(d, i, &f.maps);
        let eps: Vec<Map> = d.eps.iter().map(|v| patch_map(v, i, k, p)).collect();
        let (y, ws) = (&d.ys[i * pp..(i + 1) * pp], &d.ws[i * pp..(i + 1) * pp]);
        let pres: Vec<Option<&[f32]>> = f.presence.iter().map(|p| p.as_deref()).collect();
        let fused = fuse(&outs, &pres);
        let wt: Vec<f32> = ws.iter().map(|w| w * scales[0]).collect();
        let (mut loss, dmu, dlv) = nll_back(
            &fused,
            &LossIn {
                y,
                wt: &wt,
                eps: &eps,
            },
        );
        let mut dout: Vec<(Map, Vec<f32>)> = outs
            .iter()
            .map(|_| (Map::zeros(p, p, k), vec![0.0; pp]))
            .collect();
        fuse_back(&outs, &pres, &fused, (&dmu, &dlv), &mut dout);
        if outs.len() > 1 {
            for (e, o) in outs.iter().enumerate() {
                let we: Vec<f32> = (0..pp)
                    .map(|j| ws[j] * self.presence(d, e, i, j) * scales[e + 1])
                    .collect();
                let (l, dm, dl) = nll_back(
                    o,
                    &LossIn {
                        y,
                        wt: &we,
                        eps: &eps,
                    },
                );
                loss += l;
                let de = &mut dout[e];
                de.0.v.iter_mut().zip(&dm.v).for_each(|(a, b)| *a += b);
                de.1.iter_mut().zip(&dl).for_each(|(a, b)| *a += b);
            }
        }
        let dm: Vec<Map> = self
            .heads
            .iter()
            .enumerate()
            .map(|(e, h)| head_backward(h, &f.maps[e], &traces[e], &dout[e], sink))
            .collect();
        self.backward(&f, dm, sink);
        loss
    }

    /// The gradients as burn's optimiser takes them (tensors on `device`, keyed by parameter).
    pub(crate) fn params(&self, grads: Vec<ConvGrad>, device: &Device) -> GradientsParams {
        let mut out = GradientsParams::new();
        for (l, g) in self.layers().into_iter().zip(grads) {
            let n = g.db.len();
            let dw = TensorData::new(g.to_burn(), l.weight_dims());
            out.register(l.ids.0, Tensor::<4>::from_data(dw, device));
            if let Some(b) = l.ids.1 {
                out.register(
                    b,
                    Tensor::<1>::from_data(TensorData::new(g.db, [n]), device),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::model::EncoderKind;
    use crate::learned::train::burn_loss;
    use crate::rng::Rng;

    /// A random batch for `spec`: inputs in [-1, 1] with each branch missing on some pixels
    /// (its channels and flag 0), some pixels unlabelled, dropout on, two noise pairs.
    fn drawn(spec: &NetSpec, heads: usize, (b, p): (usize, usize), rng: &mut Rng) -> Drawn {
        let (opt_ch, in_ch, k) = (spec.opt_ch(), spec.in_ch(), spec.classes);
        let pp = p * p;
        let mut xs = vec![0f32; b * in_ch * pp];
        for i in 0..b {
            for j in 0..pp {
                let (o, s) = (rng.f64() > 0.15, rng.f64() > 0.25);
                for ch in 0..in_ch {
                    let on = if ch < opt_ch { o } else { s };
                    let v = if ch == opt_ch - 1 || ch == in_ch - 1 {
                        1.0
                    } else {
                        rng.f64() as f32 * 2.0 - 1.0
                    };
                    xs[(i * in_ch + ch) * pp + j] = if on { v } else { 0.0 };
                }
            }
        }
        let ys = (0..b * pp).map(|_| rng.below(k) as i64).collect();
        let ws = (0..b * pp)
            .map(|_| {
                if rng.f64() < 0.2 {
                    0.0
                } else {
                    0.5 + rng.f64() as f32
                }
            })
            .collect();
        let n = b * heads * spec.width * pp;
        let mask = Some(crate::learned::train::dropout_mask(rng, n, 0.5));
        let mut eps = Vec::new();
        for _ in 0..2 {
            let e: Vec<f32> = (0..b * k * pp).map(|_| rng.normal() as f32).collect();
            eps.push(e.iter().map(|v| -v).collect());
            eps.push(e);
        }
        Drawn {
            xs,
            ys,
            ws,
            b,
            p,
            mask,
            eps,
        }
    }

    fn grad_values(g: &GradientsParams, l: &GradConv) -> (Vec<f32>, Vec<f32>) {
        let w = g.get::<4>(l.ids.0).expect("weight gradient");
        let b = l.ids.1.map(|id| g.get::<1>(id).expect("bias gradient"));
        (
            crate::learned::native::values(w),
            b.map(crate::learned::native::values).unwrap_or_default(),
        )
    }

    /// Native loss and gradients against burn's autodiff on one batch; the largest gradient
    /// error relative to the layer's largest gradient.
    fn twin(spec: NetSpec, (b, p): (usize, usize), seed: u64) -> f32 {
        let dev = Device::flex().autodiff();
        let net = {
            let _guard = super::super::INIT_LOCK
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            dev.seed(seed);
            FusionNet::new(spec, &dev).initialised(&dev)
        };
        let tn = TrainNet::from_burn(&net).expect("trains natively");
        let d = drawn(&spec, tn.heads.len(), (b, p), &mut Rng::new(seed));
        let loss = burn_loss(&net, &d, &dev);
        let burn_value = crate::learned::native::values(loss.clone())[0] as f64;
        let burn = GradientsParams::from_grads(loss.backward(), &net);
        let (value, grads) = tn.gradients(&d);
        let native = tn.params(grads, &Device::flex());
        assert!(
            (value - burn_value).abs() < 1e-4 * burn_value.abs().max(1.0),
            "{spec:?}: loss {value} against burn's {burn_value}"
        );
        let mut worst = 0f32;
        for l in tn.layers() {
            let (nw, nb) = grad_values(&native, l);
            let (bw, bb) = grad_values(&burn, l);
            for (a, e) in [(nw, bw), (nb, bb)] {
                let scale = e.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                for (x, y) in a.iter().zip(&e) {
                    worst = worst.max((x - y).abs() / scale);
                }
            }
        }
        worst
    }

    fn spec(fusion: Fusion, encoder: EncoderKind, width: usize, pixel_path: bool) -> NetSpec {
        NetSpec {
            encoder,
            pixel_path,
            extra_opt: 1,
            ..NetSpec::raw(fusion, width, 5)
        }
    }

    #[test]
    fn native_gradients_equal_burns_for_every_fusion() {
        for (i, fusion) in Fusion::ALL.into_iter().enumerate() {
            let s = spec(fusion, EncoderKind::Small, 8, i % 2 == 0);
            let worst = twin(s, (3, 9), 40 + i as u64);
            assert!(worst < 1e-4, "{fusion:?}: gradient error {worst}");
        }
    }

    #[test]
    fn native_gradients_equal_burns_with_the_unet_and_the_shipped_width() {
        // 12 x 12 patches: the U-Net pads them to 16 and crops back.
        for (fusion, encoder, p) in [
            (Fusion::LearnedKernel, EncoderKind::Unet, 12),
            (Fusion::Concat, EncoderKind::Unet, 16),
            (Fusion::LearnedKernel, EncoderKind::Small, 11),
        ] {
            let worst = twin(spec(fusion, encoder, 16, false), (2, p), 7);
            assert!(
                worst < 1e-4,
                "{fusion:?} {encoder:?}: gradient error {worst}"
            );
        }
    }
}
