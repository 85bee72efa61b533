//! Native CPU inference: a trained [`FusionNet`] evaluated with geofuse's own kernels instead
//! of burn's Flex operators. burn stays the training path and the GPU path; on the CPU this is
//! what predicts (about 4x faster than Flex on the shipped network, see BENCHMARKS.md).
//!
//! Feature maps are pixel-major (`[h][w][c]`, channels contiguous). A convolution is then, for
//! a block of pixels of one row, a sum over (tap, input channel) of a broadcast input value
//! times a row of output-channel weights: the accumulators of 6 pixels x 16 output channels (or
//! 12 x 8) stay in registers for the whole sum. On x86-64 with AVX2 and FMA (checked at run
//! time) the block uses 256-bit fused multiply-adds; elsewhere the same sums run as scalar
//! code. Every layer, the fusions and the precision weighting follow `model.rs` operation for
//! operation, so the outputs equal burn's to float rounding (tests below: every fusion,
//! missing modalities, Monte Carlo passes).

use std::ops::Range;

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;

use super::model::{Encoder, Fusion, FusionNet, NetSpec, LOGVAR_RANGE};
use super::native_unet::NativeUNet;
use super::unet::UNet;

/// Output channels per SIMD register.
const LANES: usize = 8;
/// Pixels per block when a block covers two registers (16 output channels) per pixel.
const PIX2: usize = 6;
/// Pixels per block when a block covers one register (8 output channels) per pixel.
const PIX1: usize = 12;

/// A pixel-major feature map: value of channel `ch` at pixel `i = row * w + col` is
/// `v[i * c + ch]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// Values.
    pub v: Vec<f32>,
}

impl Map {
    /// A map of zeros.
    pub fn zeros(h: usize, w: usize, c: usize) -> Map {
        Map {
            h,
            w,
            c,
            v: vec![0.0; h * w * c],
        }
    }

    /// Channel-major planes `[c][h][w]`, flattened (burn's `[1, c, h, w]` layout).
    pub fn to_planes(&self) -> Vec<f32> {
        let hw = self.h * self.w;
        let mut out = vec![0f32; self.c * hw];
        out.par_chunks_mut(hw).enumerate().for_each(|(ch, plane)| {
            for (i, o) in plane.iter_mut().enumerate() {
                *o = self.v[i * self.c + ch];
            }
        });
        out
    }

    pub(crate) fn px(&self, i: usize) -> &[f32] {
        &self.v[i * self.c..(i + 1) * self.c]
    }

    /// Channels `r` of every pixel.
    pub(crate) fn channels(&self, r: Range<usize>) -> Map {
        let c = r.len();
        let mut out = Map::zeros(self.h, self.w, c);
        out.v
            .par_chunks_mut(self.w * c)
            .zip(self.v.par_chunks(self.w * self.c))
            .for_each(|(o, x)| {
                for (o, px) in o.chunks_exact_mut(c).zip(x.chunks_exact(self.c)) {
                    o.copy_from_slice(&px[r.clone()]);
                }
            });
        out
    }

    /// One channel as a plane `[h * w]`.
    pub(crate) fn plane(&self, ch: usize) -> Vec<f32> {
        self.v.iter().skip(ch).step_by(self.c).copied().collect()
    }

    /// Channel-wise concatenation of maps and single-channel planes.
    pub(crate) fn cat(maps: &[&Map], planes: &[&[f32]]) -> Map {
        let (h, w) = (maps[0].h, maps[0].w);
        let c = maps.iter().map(|m| m.c).sum::<usize>() + planes.len();
        let mut out = Map::zeros(h, w, c);
        out.v
            .par_chunks_mut(w * c)
            .enumerate()
            .for_each(|(r, row)| {
                for (x, o) in row.chunks_exact_mut(c).enumerate() {
                    let i = r * w + x;
                    let mut at = 0;
                    for m in maps {
                        o[at..at + m.c].copy_from_slice(m.px(i));
                        at += m.c;
                    }
                    for (o, p) in o[at..].iter_mut().zip(planes) {
                        *o = p[i];
                    }
                }
            });
        out
    }

    pub(crate) fn zip(&self, o: &Map, f: impl Fn(f32, f32) -> f32 + Sync) -> Map {
        Map {
            v: self.v.iter().zip(&o.v).map(|(&a, &b)| f(a, b)).collect(),
            ..*self
        }
    }
}

/// A pixel-major map `v` (`h` x `w` x `c`) inside a zero border: `pad` rows above and below,
/// `pad` columns on the left and `wp - w - pad` on the right.
pub(crate) fn padded(v: &[f32], h: usize, w: usize, c: usize, pad: usize, wp: usize) -> Vec<f32> {
    let mut out = vec![0f32; (h + 2 * pad) * wp * c];
    out[pad * wp * c..(h + pad) * wp * c]
        .par_chunks_mut(wp * c)
        .zip(v.par_chunks(w * c))
        .for_each(|(o, x)| o[pad * c..(pad + w) * c].copy_from_slice(x));
    out
}

/// A 2-D convolution (stride 1, zero "same" padding, optional dilation) with its weights laid
/// out `[tap][input channel][output channel padded to LANES]`.
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    cin: usize,
    cout: usize,
    cpad: usize,
    k: usize,
    dil: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

impl Conv {
    pub(crate) fn from_burn(c: &Conv2d) -> Conv {
        let [cout, cin, k, _] = c.weight.val().dims();
        let bias = c.bias.as_ref().map(|b| values(b.val()));
        Conv::from_raw(
            [cout, cin, k, c.dilation[0]],
            &values(c.weight.val()),
            bias.as_deref(),
        )
    }

    /// A convolution of `[cout, cin, k, dilation]` from weights in burn's `[cout][cin][k][k]`
    /// layout and an optional bias.
    pub(crate) fn from_raw(
        [cout, cin, k, dil]: [usize; 4],
        wv: &[f32],
        bias: Option<&[f32]>,
    ) -> Conv {
        let cpad = cout.div_ceil(LANES) * LANES;
        let mut w = vec![0f32; k * k * cin * cpad];
        for o in 0..cout {
            for i in 0..cin {
                for t in 0..k * k {
                    w[(t * cin + i) * cpad + o] = wv[(o * cin + i) * k * k + t];
                }
            }
        }
        let mut b = vec![0f32; cpad];
        if let Some(bias) = bias {
            b[..cout].copy_from_slice(bias);
        }
        Conv {
            cin,
            cout,
            cpad,
            k,
            dil,
            w,
            b,
        }
    }

    /// The convolution whose output is this one's input gradient: taps mirrored, input and
    /// output channels swapped, no bias (same padding, so the mirrored taps line up).
    pub(crate) fn transposed(&self) -> Conv {
        let (cin, cout, k) = (self.cin, self.cout, self.k);
        let kk = k * k;
        let mut wv = vec![0f32; cin * cout * kk];
        for i in 0..cin {
            for o in 0..cout {
                for t in 0..kk {
                    wv[(i * cout + o) * kk + t] = self.w[((kk - 1 - t) * cin + i) * self.cpad + o];
                }
            }
        }
        Conv::from_raw([cin, cout, k, self.dil], &wv, None)
    }

    /// Input channels, output channels, kernel side and dilation.
    pub(crate) fn shape(&self) -> [usize; 4] {
        [self.cin, self.cout, self.k, self.dil]
    }

    pub(crate) fn apply(&self, x: &Map, relu: bool) -> Map {
        self.apply_with(x, relu, simd_available())
    }

    /// The convolution of `x`; `simd` selects the AVX2/FMA block (callers check
    /// [`simd_available`]).
    fn apply_with(&self, x: &Map, relu: bool, simd: bool) -> Map {
        assert_eq!(x.c, self.cin, "input channels");
        if self.k == 1 {
            return self.apply_pointwise(x, relu, simd);
        }
        let pad = self.dil * (self.k / 2);
        // Every row's columns, the last ones in narrower blocks (`row`).
        let wr = x.w;
        let wp = wr + 2 * pad;
        let cin = self.cin;
        let xp = padded(&x.v, x.h, x.w, cin, pad, wp);
        let mut out = Map::zeros(x.h, x.w, self.cout);
        let (cout, cpad) = (self.cout, self.cpad);
        out.v.par_chunks_mut(x.w * cout).enumerate().for_each_init(
            || vec![0f32; wr * cpad],
            |acc, (r, orow)| {
                self.row(&xp, wp, r, wr, acc, simd);
                self.store(acc, orow, relu);
            },
        );
        out
    }

    /// Copies the `cout` real channels of each pixel of `acc` into `out` (ReLU optional).
    fn store(&self, acc: &[f32], out: &mut [f32], relu: bool) {
        let (cout, cpad) = (self.cout, self.cpad);
        for (o, a) in out.chunks_exact_mut(cout).zip(acc.chunks_exact(cpad)) {
            if relu {
                o.iter_mut().zip(a).for_each(|(o, &a)| *o = a.max(0.0));
            } else {
                o.copy_from_slice(&a[..cout]);
            }
        }
    }

    /// A 1x1 convolution: no neighbourhood, so the map is one long row of pixels read in
    /// place (no padded copy); only a last partial block goes through a zero-padded buffer.
    fn apply_pointwise(&self, x: &Map, relu: bool, simd: bool) -> Map {
        const CHUNK: usize = 32 * PIX1;
        let (cin, cout, cpad) = (self.cin, self.cout, self.cpad);
        let mut out = Map::zeros(x.h, x.w, cout);
        out.v
            .par_chunks_mut(CHUNK * cout)
            .enumerate()
            .for_each_init(
                || (vec![0f32; CHUNK * cpad], vec![0f32; PIX1 * cin]),
                |(acc, tail), (i, orow)| {
                    let m = orow.len() / cout;
                    let src = &x.v[i * CHUNK * cin..(i * CHUNK + m) * cin];
                    let full = m / PIX1 * PIX1;
                    self.row(src, full, 0, full, acc, simd);
                    if m > full {
                        tail.fill(0.0);
                        tail[..(m - full) * cin].copy_from_slice(&src[full * cin..]);
                        self.row(tail, PIX1, 0, PIX1, &mut acc[full * cpad..], simd);
                    }
                    self.store(&acc[..m * cpad], orow, relu);
                },
            );
        out
    }

    /// Output row `r` (`wr` columns, `cpad` channels each) into `acc`. Full blocks first; the
    /// last columns in narrower blocks, so no column past `wr` is computed. Every pixel's sums
    /// run in the same order whatever its block.
    fn row(&self, xp: &[f32], wp: usize, r: usize, wr: usize, acc: &mut [f32], simd: bool) {
        let mut o0 = 0;
        while o0 < self.cpad {
            // Two registers per pixel where 16 channels are left, else one (three spill).
            let wide = self.cpad - o0 >= 2 * LANES;
            let (pix, lanes) = if wide {
                (PIX2, 2 * LANES)
            } else {
                (PIX1, LANES)
            };
            let mut c0 = 0;
            while c0 < wr {
                let left = wr - c0;
                let p = if left >= pix {
                    pix
                } else {
                    [8, 4, 2, 1].into_iter().find(|&p| p <= left).unwrap_or(1)
                };
                #[cfg(target_arch = "x86_64")]
                if simd {
                    // SAFETY: `simd` is only true when AVX2 and FMA were detected, and every
                    // index the block touches is in bounds (see `block_scalar`, which indexes
                    // the same elements with checks).
                    unsafe { self.block_simd(xp, wp, (r, c0, o0), p, wide, acc) };
                    c0 += p;
                    continue;
                }
                let _ = simd;
                self.block_scalar(xp, wp, r, c0, p, o0, lanes, acc);
                c0 += p;
            }
            o0 += lanes;
        }
    }

    /// The AVX2 block of `p` pixels (a width [`row`](Self::row) picks) and one or two
    /// registers of output channels.
    ///
    /// # Safety
    /// As [`block_avx2`](Self::block_avx2).
    #[cfg(target_arch = "x86_64")]
    unsafe fn block_simd(
        &self,
        xp: &[f32],
        wp: usize,
        (r, c0, o0): (usize, usize, usize),
        p: usize,
        wide: bool,
        acc: &mut [f32],
    ) {
        match (wide, p) {
            (true, PIX2) => self.block_avx2::<PIX2, 2>(xp, wp, r, c0, o0, acc),
            (true, 4) => self.block_avx2::<4, 2>(xp, wp, r, c0, o0, acc),
            (true, 2) => self.block_avx2::<2, 2>(xp, wp, r, c0, o0, acc),
            (true, _) => self.block_avx2::<1, 2>(xp, wp, r, c0, o0, acc),
            (false, PIX1) => self.block_avx2::<PIX1, 1>(xp, wp, r, c0, o0, acc),
            (false, 8) => self.block_avx2::<8, 1>(xp, wp, r, c0, o0, acc),
            (false, 4) => self.block_avx2::<4, 1>(xp, wp, r, c0, o0, acc),
            (false, 2) => self.block_avx2::<2, 1>(xp, wp, r, c0, o0, acc),
            (false, _) => self.block_avx2::<1, 1>(xp, wp, r, c0, o0, acc),
        }
    }

    /// Pixels `c0..c0 + pix` of row `r`, output channels `o0..o0 + lanes`.
    #[allow(clippy::too_many_arguments)]
    fn block_scalar(
        &self,
        xp: &[f32],
        wp: usize,
        r: usize,
        c0: usize,
        pix: usize,
        o0: usize,
        lanes: usize,
        acc: &mut [f32],
    ) {
        let (cin, cpad, k, dil) = (self.cin, self.cpad, self.k, self.dil);
        for p in 0..pix {
            for o in o0..o0 + lanes {
                let mut s = self.b[o];
                for ky in 0..k {
                    for kx in 0..k {
                        let xb = ((r + ky * dil) * wp + c0 + p + kx * dil) * cin;
                        let wb = (ky * k + kx) * cin * cpad;
                        for ci in 0..cin {
                            s += xp[xb + ci] * self.w[wb + ci * cpad + o];
                        }
                    }
                }
                acc[(c0 + p) * cpad + o] = s;
            }
        }
    }

    /// [`block_scalar`](Self::block_scalar) for `P` pixels and `V` registers of output
    /// channels, with fused multiply-adds.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `c0 + P <= wr` and `o0 + V * LANES <= cpad`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_avx2<const P: usize, const V: usize>(
        &self,
        xp: &[f32],
        wp: usize,
        r: usize,
        c0: usize,
        o0: usize,
        acc: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let (cin, cpad, k, dil) = (self.cin, self.cpad, self.k, self.dil);
        let mut a = [[_mm256_setzero_ps(); V]; P];
        for v in 0..V {
            let b = _mm256_loadu_ps(self.b.as_ptr().add(o0 + v * LANES));
            for ap in a.iter_mut() {
                ap[v] = b;
            }
        }
        let xptr = xp.as_ptr();
        let wptr = self.w.as_ptr();
        for ky in 0..k {
            for kx in 0..k {
                let xb = xptr.add(((r + ky * dil) * wp + c0 + kx * dil) * cin);
                let wb = wptr.add((ky * k + kx) * cin * cpad + o0);
                for ci in 0..cin {
                    let mut wv = [_mm256_setzero_ps(); V];
                    for (v, w) in wv.iter_mut().enumerate() {
                        *w = _mm256_loadu_ps(wb.add(ci * cpad + v * LANES));
                    }
                    for (p, ap) in a.iter_mut().enumerate() {
                        let x = _mm256_broadcast_ss(&*xb.add(p * cin + ci));
                        for v in 0..V {
                            ap[v] = _mm256_fmadd_ps(x, wv[v], ap[v]);
                        }
                    }
                }
            }
        }
        let optr = acc.as_mut_ptr();
        for (p, ap) in a.iter().enumerate() {
            for (v, &x) in ap.iter().enumerate() {
                _mm256_storeu_ps(optr.add((c0 + p) * cpad + o0 + v * LANES), x);
            }
        }
    }
}

/// Whether the AVX2/FMA convolution block can run on this CPU.
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[derive(Debug, Clone)]
struct Enc([Conv; 3]);

impl Enc {
    fn from_burn(e: &Encoder) -> Enc {
        Enc([
            Conv::from_burn(&e.c1),
            Conv::from_burn(&e.c2),
            Conv::from_burn(&e.c3),
        ])
    }

    fn forward(&self, x: &Map) -> Map {
        let [c1, c2, c3] = &self.0;
        c3.apply(&c2.apply(&c1.apply(x, true), true), true)
    }
}

/// A branch's encoder in native layout: the small one or the U-Net.
#[derive(Debug, Clone)]
enum NativeEncoder {
    Small(Box<Enc>),
    Unet(NativeUNet),
}

impl NativeEncoder {
    fn from_burn(e: Option<&Encoder>, u: Option<&UNet>) -> Option<NativeEncoder> {
        match (e, u) {
            (Some(e), _) => Some(NativeEncoder::Small(Box::new(Enc::from_burn(e)))),
            (None, Some(u)) => Some(NativeEncoder::Unet(NativeUNet::from_burn(u))),
            (None, None) => None,
        }
    }

    fn forward(&self, x: &Map) -> Map {
        match self {
            NativeEncoder::Small(e) => e.forward(x),
            NativeEncoder::Unet(u) => u.forward(x),
        }
    }
}

/// Latent maps of the experts with each expert's presence plane (`None` = present everywhere).
pub struct Latent {
    pub(crate) maps: Vec<Map>,
    presence: Vec<Option<Vec<f32>>>,
}

/// One Monte Carlo pass's precision-weighted output: mean logits `[K][h * w]` and
/// log-variance `[h * w]` (burn's planar layout).
pub struct Fused {
    /// Mean logits, plane per class.
    pub mu: Vec<f32>,
    /// Log-variance.
    pub logvar: Vec<f32>,
}

/// The network's weights in native layout.
#[derive(Debug, Clone)]
pub struct NativeNet {
    spec: NetSpec,
    opt: Option<NativeEncoder>,
    sar: Option<NativeEncoder>,
    opt_px: Option<Conv>,
    sar_px: Option<Conv>,
    mix: Option<Conv>,
    bil: Option<(Conv, Conv)>,
    heads: Vec<(Conv, Conv)>,
    /// Learned kernel with `align`: the registration cue's scale.
    align: Option<f32>,
    /// A season network's temporal encoders.
    temporal: Option<super::native_temporal::NativeTemporal>,
}

impl NativeNet {
    /// Copies the weights of `net`.
    pub fn from_burn(net: &FusionNet) -> NativeNet {
        NativeNet {
            spec: net.spec(),
            opt: NativeEncoder::from_burn(net.opt.as_ref(), net.opt_unet.as_ref()),
            sar: NativeEncoder::from_burn(net.sar.as_ref(), net.sar_unet.as_ref()),
            opt_px: net.opt_px.as_ref().map(Conv::from_burn),
            sar_px: net.sar_px.as_ref().map(Conv::from_burn),
            mix: net.mix.as_ref().map(Conv::from_burn),
            bil: net
                .bil_a
                .as_ref()
                .zip(net.bil_b.as_ref())
                .map(|(a, b)| (Conv::from_burn(a), Conv::from_burn(b))),
            heads: net
                .heads
                .iter()
                .map(|h| (Conv::from_burn(&h.hidden), Conv::from_burn(&h.out)))
                .collect(),
            align: net.align.as_ref().map(|a| {
                let v = a.val().into_data().convert::<f32>();
                v.try_to_vec::<f32>().expect("f32 scale")[0] * super::align::ALIGN_SCALE
            }),
            temporal: super::native_temporal::NativeTemporal::from_burn(net),
        }
    }

    /// Expert latents of a network input (`assemble`'s layout, pixel-major): `FusionNet::latent`.
    pub fn latent(&self, x: &Map) -> Latent {
        let through_time = self.temporal.as_ref().map(|t| t.apply(x));
        let x = through_time.as_ref().unwrap_or(x);
        let s = &self.spec.encoded();
        let (opt_ch, in_ch) = (s.opt_ch(), s.in_ch());
        let enc = |(e, px): (&Option<NativeEncoder>, &Option<Conv>), x: &Map| {
            let f = e.as_ref().expect("encoder present").forward(x);
            match px {
                Some(p) => f.zip(&p.apply(x, false), |a, b| a + b),
                None => f,
            }
        };
        let (eo, es) = ((&self.opt, &self.opt_px), (&self.sar, &self.sar_px));
        let one = |m: Map| Latent {
            maps: vec![m],
            presence: vec![None],
        };
        match s.fusion {
            Fusion::Early => one(enc(eo, x)),
            Fusion::OpticalOnly => one(enc(eo, &x.channels(0..opt_ch))),
            Fusion::SarOnly => one(enc(es, &x.channels(opt_ch..in_ch))),
            f => {
                let po = x.plane(opt_ch - 1);
                let ps = x.plane(in_ch - 1);
                let fo = enc(eo, &x.channels(0..opt_ch));
                let mut fs = enc(es, &x.channels(opt_ch..in_ch));
                if let Some(a) = self.align {
                    fs = register(&fs, &fo, (&po, &ps), (s.kernel, s.align), a);
                }
                let mix = || self.mix.as_ref().expect("mix layer present");
                let joint = match f {
                    Fusion::Late => None,
                    Fusion::Concat => Some(mix().apply(&Map::cat(&[&fo, &fs], &[]), true)),
                    Fusion::Add => Some(fo.zip(&fs, |a, b| a + b)),
                    Fusion::Bilinear => {
                        let (ca, cb) = self.bil.as_ref().expect("bilinear layers present");
                        Some(
                            ca.apply(&fo, false)
                                .zip(&cb.apply(&fs, false), |a, b| a * b),
                        )
                    }
                    Fusion::Attention => {
                        let g = mix().apply(&Map::cat(&[&fo, &fs], &[&po, &ps]), false);
                        let mut j = fo.clone();
                        for ((o, &gl), &b) in j.v.iter_mut().zip(&g.v).zip(&fs.v) {
                            let g = 1.0 / (1.0 + (-gl).exp());
                            *o = *o * g + b * (1.0 - g);
                        }
                        Some(j)
                    }
                    Fusion::LearnedKernel => {
                        let logits = mix().apply(&Map::cat(&[&fo, &fs], &[&po, &ps]), false);
                        Some(kernel_fuse(&fo, &fs, &po, &ps, Some(&logits), s.kernel))
                    }
                    Fusion::FixedKernel => Some(kernel_fuse(&fo, &fs, &po, &ps, None, s.kernel)),
                    Fusion::Early | Fusion::OpticalOnly | Fusion::SarOnly => {
                        unreachable!("single-branch fusions handled above")
                    }
                };
                let both: Vec<f32> = po.iter().zip(&ps).map(|(a, b)| a * b).collect();
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

    /// The heads' first layer (1x1 + ReLU) on each expert's latent.
    pub fn hidden(&self, latent: &Latent) -> Vec<Map> {
        self.heads
            .iter()
            .zip(&latent.maps)
            .map(|((hidden, _), m)| hidden.apply(m, true))
            .collect()
    }

    /// One pass of the heads' last layer and the precision weighting. `mask(expert, map)`
    /// returns the map the expert's last layer sees (dropout applied) or `None` for no dropout.
    pub fn pass(
        &self,
        latent: &Latent,
        hidden: &[Map],
        mask: impl Fn(usize, &Map) -> Option<Map>,
    ) -> Fused {
        let k = self.spec.classes;
        let outs: Vec<Map> = self
            .heads
            .iter()
            .zip(hidden)
            .enumerate()
            .map(|(e, ((_, out), z))| match mask(e, z) {
                Some(m) => out.apply(&m, false),
                None => out.apply(z, false),
            })
            .collect();
        let (h, w) = (hidden[0].h, hidden[0].w);
        let (lo, hi) = LOGVAR_RANGE;
        let floor = (-hi).exp() * 1e-3;
        // Pixel-major [K mean logits, log-variance] per pixel, then planes.
        let mut fused = Map::zeros(h, w, k + 1);
        fused
            .v
            .par_chunks_mut(w * (k + 1))
            .enumerate()
            .for_each(|(r, row)| {
                for (x, f) in row.chunks_exact_mut(k + 1).enumerate() {
                    let i = r * w + x;
                    if outs.len() == 1 {
                        let o = outs[0].px(i);
                        f[..k].copy_from_slice(&o[..k]);
                        f[k] = o[k].clamp(lo, hi);
                        continue;
                    }
                    let mut total = 0f32;
                    for (e, o) in outs.iter().enumerate() {
                        let o = o.px(i);
                        let mut pi = (-o[k].clamp(lo, hi)).exp();
                        if let Some(p) = &latent.presence[e] {
                            pi *= p[i];
                        }
                        total = if e == 0 { pi } else { total + pi };
                        for (n, &m) in f[..k].iter_mut().zip(o) {
                            *n = if e == 0 { m * pi } else { *n + m * pi };
                        }
                    }
                    let total = total.max(floor);
                    f[..k].iter_mut().for_each(|n| *n /= total);
                    f[k] = -total.ln();
                }
            });
        let mut planes = fused.to_planes();
        let logvar = planes.split_off(k * h * w);
        Fused { mu: planes, logvar }
    }
}

/// The SAR latent resampled by `scale` times the registration cue
/// ([`super::align::warp_native`], `FusionNet::registered`).
fn register(
    fs: &Map,
    fo: &Map,
    (po, ps): (&[f32], &[f32]),
    (k, align): (usize, usize),
    scale: f32,
) -> Map {
    let dims = (fs.h, fs.w, fs.c);
    let mut cue = super::align::cue_native(&fo.v, &fs.v, po, ps, dims, k, align);
    cue.iter_mut().for_each(|v| *v *= scale);
    Map {
        h: fs.h,
        w: fs.w,
        c: fs.c,
        v: super::align::warp_native(&fs.v, ps, &cue, dims, k),
    }
}

/// `model::kernel_fuse` on pixel-major maps: per pixel, a softmax over the 2 k^2 taps of both
/// branches' neighbourhoods (missing taps pushed to -1e4) weights the neighbours' features.
fn kernel_fuse(fo: &Map, fs: &Map, po: &[f32], ps: &[f32], logits: Option<&Map>, k: usize) -> Map {
    let (h, w, c) = (fo.h, fo.w, fo.c);
    let r = k / 2;
    let wp = w + 2 * r;
    // Zero-padded copies: taps outside the map read zero features and zero presence.
    let pad = |v: &[f32], c: usize| padded(v, h, w, c, r, wp);
    let padded = [(pad(&fo.v, c), pad(po, 1)), (pad(&fs.v, c), pad(ps, 1))];
    let ctx = FuseCtx {
        fo,
        fs,
        po,
        ps,
        logits,
        k,
        wp,
        padded: &padded,
    };
    let mut out = Map::zeros(h, w, c);
    let simd = simd_available();
    // The shipped width (16) gets a row loop with the channel count known at compile time.
    out.v
        .par_chunks_mut(w * c)
        .enumerate()
        .for_each(|(y, orow)| {
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: AVX2 and FMA were detected.
                unsafe {
                    if c == 16 {
                        ctx.row_avx2::<16>(y, orow)
                    } else {
                        ctx.row_avx2::<0>(y, orow)
                    }
                }
                return;
            }
            let _ = simd;
            if c == 16 {
                ctx.row::<16>(y, orow)
            } else {
                ctx.row::<0>(y, orow)
            }
        });
    out
}

/// What every row of [`kernel_fuse`] reads.
struct FuseCtx<'a> {
    fo: &'a Map,
    fs: &'a Map,
    po: &'a [f32],
    ps: &'a [f32],
    logits: Option<&'a Map>,
    k: usize,
    wp: usize,
    padded: &'a [(Vec<f32>, Vec<f32>); 2],
}

impl FuseCtx<'_> {
    /// [`row`](Self::row) compiled for AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_avx2<const C: usize>(&self, y: usize, orow: &mut [f32]) {
        self.row::<C>(y, orow)
    }

    /// Row `y` into `orow`; `C` is the channel count, or 0 to take it from the maps.
    #[inline(always)]
    fn row<const C: usize>(&self, y: usize, orow: &mut [f32]) {
        let (w, k, wp) = (self.fo.w, self.k, self.wp);
        let c = if C == 0 { self.fo.c } else { C };
        let r = (k / 2) as f32;
        let kk = k * k;
        // Offset of each tap from the window's top-left pixel (padded pixels) and its squared
        // distance to the centre over 2.
        let offsets: Vec<usize> = (0..kk).map(|t| (t / k) * wp + t % k).collect();
        let d2: Vec<f32> = (0..kk)
            .map(|t| (((t / k) as f32 - r).powi(2) + ((t % k) as f32 - r).powi(2)) / 2.0)
            .collect();
        let mut lg = vec![0f32; 2 * kk];
        let mut reference = vec![0f32; c];
        for x in 0..w {
            let i = y * w + x;
            // Padded index of the window's top-left pixel.
            let base = y * wp + x;
            if self.logits.is_none() {
                let (a, b) = (self.po[i], self.ps[i]);
                let den = (a + b).max(1e-6);
                for ((rf, &u), &v) in reference.iter_mut().zip(self.fo.px(i)).zip(self.fs.px(i)) {
                    *rf = (u * a + v * b) / den;
                }
            }
            for (b, (f, p)) in self.padded.iter().enumerate() {
                let lgb = &mut lg[b * kk..(b + 1) * kk];
                match self.logits {
                    Some(l) => {
                        let l = &l.v[i * 2 * kk + b * kk..i * 2 * kk + (b + 1) * kk];
                        for ((o, &l), &off) in lgb.iter_mut().zip(l).zip(&offsets) {
                            *o = l + (p[base + off] - 1.0) * 1e4;
                        }
                    }
                    None => {
                        for ((o, &off), &d2) in lgb.iter_mut().zip(&offsets).zip(&d2) {
                            let j = base + off;
                            let sim = f[j * c..j * c + c]
                                .iter()
                                .zip(&reference)
                                .map(|(u, v)| (u - v) * (u - v))
                                .sum::<f32>()
                                / (2.0 * c as f32);
                            *o = (-sim - d2) + (p[j] - 1.0) * 1e4;
                        }
                    }
                }
            }
            let m = lg.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            // Separate loops: the exponentials vectorise, the (ordered) sum does not.
            lg.iter_mut().for_each(|v| *v = exp_f32(*v - m));
            let sum: f32 = lg.iter().sum();
            let o = &mut orow[x * c..(x + 1) * c];
            o.iter_mut().for_each(|v| *v = 0.0);
            for (b, (f, _)) in self.padded.iter().enumerate() {
                for (&e, &off) in lg[b * kk..(b + 1) * kk].iter().zip(&offsets) {
                    let wt = e / sum;
                    let j = base + off;
                    for (o, &fv) in o.iter_mut().zip(&f[j * c..j * c + c]) {
                        *o += fv * wt;
                    }
                }
            }
        }
    }
}

/// The polynomial of [`exp_f32`] in the reduced argument, highest power first (Cephes' expf),
/// shared with the training loss's vector path.
pub(crate) const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

/// e^x in f32 (Cephes' range reduction and polynomial, relative error about 1e-7), written
/// without calls so loops over it vectorise; exactly 0 below -87 (a masked tap's weight).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    let xc = x.clamp(-87.0, 88.0);
    // Round to nearest through the 1.5 * 2^23 shift (no SSE4.1 rounding instruction needed).
    let n = (xc * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = EXP_POLY[0];
    for &c in &EXP_POLY[1..] {
        p = p * r + c;
    }
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) << 23) as u32);
    if x < -87.0 {
        0.0
    } else {
        y * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use ndarray::Array3;

    fn from_planes(a: &Array3<f32>) -> Map {
        let (c, h, w) = a.dim();
        Map {
            h,
            w,
            c,
            v: a.view().permuted_axes([1, 2, 0]).iter().copied().collect(),
        }
    }

    fn random_map(rng: &mut Rng, h: usize, w: usize, c: usize) -> Map {
        Map {
            h,
            w,
            c,
            v: (0..h * w * c)
                .map(|_| rng.f64() as f32 * 2.0 - 1.0)
                .collect(),
        }
    }

    /// Textbook convolution in f64, zero padding outside the map.
    fn brute(conv: &Conv, x: &Map, relu: bool) -> Vec<f64> {
        let pad = (conv.dil * (conv.k / 2)) as isize;
        let mut out = Vec::new();
        for r in 0..x.h {
            for c in 0..x.w {
                for o in 0..conv.cout {
                    let mut s = conv.b[o] as f64;
                    for ky in 0..conv.k {
                        for kx in 0..conv.k {
                            let yy = r as isize + (ky * conv.dil) as isize - pad;
                            let xx = c as isize + (kx * conv.dil) as isize - pad;
                            if yy < 0 || xx < 0 || yy >= x.h as isize || xx >= x.w as isize {
                                continue;
                            }
                            let px = x.px(yy as usize * x.w + xx as usize);
                            for (ci, &v) in px.iter().enumerate() {
                                let wt =
                                    conv.w[((ky * conv.k + kx) * conv.cin + ci) * conv.cpad + o];
                                s += v as f64 * wt as f64;
                            }
                        }
                    }
                    out.push(if relu { s.max(0.0) } else { s });
                }
            }
        }
        out
    }

    #[test]
    fn convolution_blocks_equal_a_textbook_convolution() {
        let mut rng = Rng::new(3);
        // Output widths on both sides of the register blocks (16, 8; 24 = 16 + 8; 40), odd map
        // sizes (partial pixel blocks), dilation 2, 1x1 (one and several pixel chunks).
        for &(cin, cout, k, dil, h, w) in &[
            (11usize, 16usize, 3usize, 1usize, 7usize, 13usize),
            (16, 16, 3, 2, 9, 25),
            (34, 18, 3, 1, 5, 6),
            (16, 8, 1, 1, 3, 29),
            (5, 40, 1, 1, 3, 7),
            (16, 16, 1, 1, 30, 31),
            (3, 5, 3, 1, 4, 1),
        ] {
            let cpad = cout.div_ceil(LANES) * LANES;
            let mut conv = Conv {
                cin,
                cout,
                cpad,
                k,
                dil,
                w: vec![0.0; k * k * cin * cpad],
                b: vec![0.0; cpad],
            };
            for t in 0..k * k * cin {
                for o in 0..cout {
                    conv.w[t * cpad + o] = rng.f64() as f32 - 0.5;
                }
            }
            for o in 0..cout {
                conv.b[o] = rng.f64() as f32 - 0.5;
            }
            let x = random_map(&mut rng, h, w, cin);
            for relu in [false, true] {
                let want = brute(&conv, &x, relu);
                let mut paths = vec![conv.apply_with(&x, relu, false)];
                if simd_available() {
                    paths.push(conv.apply_with(&x, relu, true));
                }
                for got in paths {
                    assert_eq!((got.h, got.w, got.c), (h, w, cout));
                    for (g, wv) in got.v.iter().zip(&want) {
                        assert!(
                            (*g as f64 - wv).abs() <= 1e-5 * (1.0 + wv.abs()),
                            "{cin}->{cout} k{k} d{dil}: {g} vs {wv}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fast_exp_is_accurate_and_exactly_zero_for_masked_taps() {
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            assert!(
                (got - want).abs() <= 3e-7 * want,
                "exp({x}): {got} vs {want}"
            );
            x += 0.0137;
        }
        assert_eq!(exp_f32(-1e4), 0.0);
        assert_eq!(exp_f32(-87.5), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn pixel_major_round_trip() {
        let a = Array3::from_shape_fn((3, 4, 5), |(c, r, x)| (c * 100 + r * 10 + x) as f32);
        let m = from_planes(&a);
        assert_eq!(m.px(5 + 2), &[12.0, 112.0, 212.0][..]);
        assert_eq!(m.to_planes(), a.iter().copied().collect::<Vec<_>>());
        assert_eq!(
            m.plane(1),
            a.slice(ndarray::s![1, .., ..])
                .iter()
                .copied()
                .collect::<Vec<_>>()
        );
        assert_eq!(m.channels(1..3).px(0), &[100.0, 200.0][..]);
    }
}
