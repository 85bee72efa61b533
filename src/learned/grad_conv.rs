//! A convolution layer's backward pass on [`native`](super::native)'s pixel-major maps, for
//! training on the CPU without burn's autodiff.
//!
//! - Input gradient: the convolution of the output gradient with the mirrored, transposed
//!   kernel ([`Conv::transposed`]), run by the same register-blocked kernel as inference.
//! - Weight gradient: per tap, the product of the shifted input (pixels x input channels) and
//!   the output gradient (pixels x output channels), accumulated over the pixels with blocks
//!   of input channels x output channels held in registers.
//! - Bias gradient: the output gradient summed over the pixels.
//!
//! Every sum runs in a fixed order, so a gradient is the same bits whatever the thread count.

use burn::module::ParamId;
use burn::nn::conv::Conv2d;

use super::native::{simd_available, Conv, Map};

/// The gradients of one convolution's parameters: weights in native layout
/// (`[tap][cin][cout]`, see [`to_burn`](Self::to_burn)) and bias (`[cout]`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvGrad {
    pub(crate) dw: Vec<f32>,
    pub(crate) db: Vec<f32>,
    /// Input channels, output channels, kernel side.
    shape: [usize; 3],
}

impl ConvGrad {
    /// Adds `o` element by element.
    pub(crate) fn add(&mut self, o: &ConvGrad) {
        self.dw.iter_mut().zip(&o.dw).for_each(|(a, b)| *a += b);
        self.db.iter_mut().zip(&o.db).for_each(|(a, b)| *a += b);
    }

    /// The weight gradient in burn's layout `[cout][cin][k][k]`.
    pub(crate) fn to_burn(&self) -> Vec<f32> {
        let [cin, cout, k] = self.shape;
        let kk = k * k;
        let mut dw = vec![0f32; cout * cin * kk];
        for o in 0..cout {
            for i in 0..cin {
                for t in 0..kk {
                    dw[(o * cin + i) * kk + t] = self.dw[(t * cin + i) * cout + o];
                }
            }
        }
        dw
    }
}

/// A convolution with what its backward pass needs: the forward kernel, the transposed one,
/// and the ids of its burn parameters (to hand the gradients to burn's optimiser).
#[derive(Debug, Clone)]
pub(crate) struct GradConv {
    fwd: Conv,
    back: Conv,
    pub(crate) ids: (ParamId, Option<ParamId>),
    /// This layer's place in a network's gradient list.
    pub(crate) slot: usize,
}

impl GradConv {
    /// The layer of a burn convolution (stride 1, same padding).
    pub(crate) fn from_burn(c: &Conv2d, slot: usize) -> GradConv {
        let fwd = Conv::from_burn(c);
        GradConv {
            back: fwd.transposed(),
            fwd,
            ids: (c.weight.id, c.bias.as_ref().map(|b| b.id)),
            slot,
        }
    }

    /// A layer from burn-layout weights (tests).
    #[cfg(test)]
    pub(crate) fn from_raw(shape: [usize; 4], w: &[f32], b: &[f32]) -> GradConv {
        let fwd = Conv::from_raw(shape, w, Some(b));
        GradConv {
            back: fwd.transposed(),
            fwd,
            ids: (ParamId::from(0), None),
            slot: 0,
        }
    }

    /// The forward convolution (ReLU optional).
    pub(crate) fn forward(&self, x: &Map, relu: bool) -> Map {
        self.fwd.apply(x, relu)
    }

    /// Parameter gradients of the output gradient `dy` for input `x`, and the input gradient
    /// when `need_dx` (the first layer of an encoder needs none).
    #[cfg(test)]
    pub(crate) fn backward(&self, x: &Map, dy: &Map, need_dx: bool) -> (Option<Map>, ConvGrad) {
        let mut g = [self.zero_grad()];
        let dx = GradConv {
            slot: 0,
            ..self.clone()
        }
        .back_into(x, dy, need_dx, &mut g);
        let [g] = g;
        (dx, g)
    }

    /// Adds the parameter gradients of the output gradient `dy` for input `x` to
    /// `sink[self.slot]`; the input gradient when `need_dx` (the first layer of an encoder
    /// needs none).
    pub(crate) fn back_into(
        &self,
        x: &Map,
        dy: &Map,
        need_dx: bool,
        sink: &mut [ConvGrad],
    ) -> Option<Map> {
        let [cin, cout, k, dil] = self.fwd.shape();
        assert_eq!((x.c, dy.c), (cin, cout), "backward shapes");
        let g = &mut sink[self.slot];
        for px in dy.v.chunks_exact(cout) {
            g.db.iter_mut().zip(px).for_each(|(a, b)| *a += b);
        }
        weight_grad(x, dy, k, dil, &mut g.dw);
        need_dx.then(|| self.back.apply(dy, false))
    }

    /// The shape of the burn weight `[cout, cin, k, k]`.
    pub(crate) fn weight_dims(&self) -> [usize; 4] {
        let [cin, cout, k, _] = self.fwd.shape();
        [cout, cin, k, k]
    }

    /// Zero gradients of this layer's shape.
    pub(crate) fn zero_grad(&self) -> ConvGrad {
        let [cin, cout, k, _] = self.fwd.shape();
        ConvGrad {
            dw: vec![0.0; cout * cin * k * k],
            db: vec![0.0; cout],
            shape: [cin, cout, k],
        }
    }
}

/// Zeroes the gradient `dy` where the ReLU output `y` is not positive.
pub(crate) fn relu_back(dy: &mut Map, y: &Map) {
    dy.v.iter_mut()
        .zip(&y.v)
        .for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 });
}

/// Output channels per block of the weight-gradient kernel.
const BLOCK: usize = 32;

/// What the weight-gradient kernel reads: the input inside its zero border, input channels
/// padded to the kernel's block (`cinp`).
struct Shifted {
    xp: Vec<f32>,
    wp: usize,
    cinp: usize,
    h: usize,
    w: usize,
    k: usize,
    dil: usize,
}

impl Shifted {
    fn new(x: &Map, k: usize, dil: usize, ib: usize) -> Shifted {
        let pad = dil * (k / 2);
        let (wp, cinp) = (x.w + 2 * pad, x.c.div_ceil(ib) * ib);
        let mut xp = vec![0f32; (x.h + 2 * pad) * wp * cinp];
        for (i, px) in x.v.chunks_exact(x.c).enumerate() {
            let (r, c) = (i / x.w + pad, i % x.w + pad);
            xp[(r * wp + c) * cinp..][..x.c].copy_from_slice(px);
        }
        Shifted {
            xp,
            wp,
            cinp,
            h: x.h,
            w: x.w,
            k,
            dil,
        }
    }
}

/// Adds the weight gradient in native layout `[tap][cin][cout]` to `out`: per tap t, the sum
/// over pixels p of x(p + offset t) dy(p).
fn weight_grad(x: &Map, dy: &Map, k: usize, dil: usize, out: &mut [f32]) {
    let (cin, cout) = (x.c, dy.c);
    let cop = cout.div_ceil(8) * 8;
    let co = cop.min(BLOCK);
    let ib = match co {
        8 => 12,
        16 => 6,
        24 => 4,
        _ => 2,
    };
    let s = Shifted::new(x, k, dil, ib);
    let kk = k * k;
    // Output channels in blocks of `co`, copied out of `dy` unless one block holds them all.
    let whole = cout == co;
    let mut blk = vec![0f32; if whole { 0 } else { dy.h * dy.w * co }];
    let mut acc = vec![0f32; kk * s.cinp * co];
    for o0 in (0..cout).step_by(co) {
        let n = co.min(cout - o0);
        if !whole {
            for (b, px) in blk.chunks_exact_mut(co).zip(dy.v.chunks_exact(cout)) {
                b[..n].copy_from_slice(&px[o0..o0 + n]);
            }
        }
        acc.fill(0.0);
        run_block(&s, if whole { &dy.v } else { &blk }, co, &mut acc);
        for t in 0..kk {
            for i in 0..cin {
                let src = &acc[(t * s.cinp + i) * co..][..n];
                let dst = &mut out[(t * cin + i) * cout + o0..][..n];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
        }
    }
}

/// One block of `co` output channels (8, 16, 24 or 32) into `acc` (`[tap][cinp][co]`).
fn run_block(s: &Shifted, dy: &[f32], co: usize, acc: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: AVX2 and FMA were detected.
        unsafe {
            match co {
                8 => wgrad_fma::<8, 12>(s, dy, acc),
                16 => wgrad_fma::<16, 6>(s, dy, acc),
                24 => wgrad_fma::<24, 4>(s, dy, acc),
                _ => wgrad_fma::<32, 2>(s, dy, acc),
            }
        }
        return;
    }
    match co {
        8 => wgrad::<8, 12, false>(s, dy, acc),
        16 => wgrad::<16, 6, false>(s, dy, acc),
        24 => wgrad::<24, 4, false>(s, dy, acc),
        _ => wgrad::<32, 2, false>(s, dy, acc),
    }
}

/// [`wgrad`] compiled for AVX2 with fused multiply-adds.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn wgrad_fma<const CO: usize, const IB: usize>(s: &Shifted, dy: &[f32], acc: &mut [f32]) {
    wgrad::<CO, IB, true>(s, dy, acc)
}

#[inline(always)]
fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The weight-gradient kernel: `IB` input channels x `CO` output channels accumulate in
/// registers over every pixel of a tap.
#[inline(always)]
fn wgrad<const CO: usize, const IB: usize, const F: bool>(
    s: &Shifted,
    dy: &[f32],
    acc: &mut [f32],
) {
    let cinp = s.cinp;
    for t in 0..s.k * s.k {
        let (ky, kx) = (t / s.k, t % s.k);
        for i0 in (0..cinp).step_by(IB) {
            let mut a = [[0f32; CO]; IB];
            for r in 0..s.h {
                let xrow = ((r + ky * s.dil) * s.wp + kx * s.dil) * cinp + i0;
                let drow = &dy[r * s.w * CO..(r + 1) * s.w * CO];
                for (c, d) in drow.chunks_exact(CO).enumerate() {
                    let d: &[f32; CO] = d.try_into().expect("block width");
                    let xs: &[f32; IB] = s.xp[xrow + c * cinp..][..IB]
                        .try_into()
                        .expect("input block");
                    for j in 0..IB {
                        for o in 0..CO {
                            a[j][o] = madd::<F>(xs[j], d[o], a[j][o]);
                        }
                    }
                }
            }
            for (j, aj) in a.iter().enumerate() {
                acc[(t * cinp + i0 + j) * CO..][..CO].copy_from_slice(aj);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.f64() as f32 * 2.0 - 1.0).collect()
    }

    /// The textbook sums in f64: dW[o][i][t] = sum_p x(p + off t - pad)[i] dy(p)[o] and
    /// dX(q)[i] = sum over (p, t) with p + off t - pad = q of W[o][i][t] dy(p)[o].
    fn brute(
        [cin, cout, k, dil]: [usize; 4],
        w: &[f32],
        x: &Map,
        dy: &Map,
    ) -> (Vec<f64>, Vec<f64>) {
        let pad = (dil * (k / 2)) as isize;
        let mut dw = vec![0f64; cout * cin * k * k];
        let mut dx = vec![0f64; x.h * x.w * cin];
        for r in 0..x.h as isize {
            for c in 0..x.w as isize {
                let p = (r * x.w as isize + c) as usize;
                for t in 0..k * k {
                    let yy = r + ((t / k) * dil) as isize - pad;
                    let xx = c + ((t % k) * dil) as isize - pad;
                    if yy < 0 || xx < 0 || yy >= x.h as isize || xx >= x.w as isize {
                        continue;
                    }
                    let q = (yy * x.w as isize + xx) as usize;
                    for o in 0..cout {
                        let g = dy.v[p * cout + o] as f64;
                        for i in 0..cin {
                            let wi = (o * cin + i) * k * k + t;
                            dw[wi] += x.v[q * cin + i] as f64 * g;
                            dx[q * cin + i] += w[wi] as f64 * g;
                        }
                    }
                }
            }
        }
        (dw, dx)
    }

    #[test]
    fn convolution_gradients_equal_the_textbook_sums() {
        let mut rng = Rng::new(11);
        // Output widths below, at and above one register block (8, 16, 18 -> 24, 32, 40 -> two
        // blocks), input channels off the kernel's block, dilation 2, 1x1, odd map sides.
        for &(cin, cout, k, dil, h, w) in &[
            (11usize, 16usize, 3usize, 1usize, 7usize, 9usize),
            (16, 16, 3, 2, 9, 10),
            (34, 18, 3, 1, 5, 6),
            (16, 8, 1, 1, 3, 29),
            (48, 32, 3, 1, 4, 4),
            (5, 40, 1, 1, 3, 7),
            (3, 5, 3, 1, 4, 1),
        ] {
            let (wv, bv) = (random(&mut rng, cout * cin * k * k), random(&mut rng, cout));
            let layer = GradConv::from_raw([cout, cin, k, dil], &wv, &bv);
            let x = Map {
                h,
                w,
                c: cin,
                v: random(&mut rng, h * w * cin),
            };
            let dy = Map {
                h,
                w,
                c: cout,
                v: random(&mut rng, h * w * cout),
            };
            let (dx, g) = layer.backward(&x, &dy, true);
            let (bw, bx) = brute([cin, cout, k, dil], &wv, &x, &dy);
            let close = |a: &[f32], b: &[f64], what: &str| {
                for (i, (&a, &b)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                        "{what} {i} of {cin}->{cout} k{k} d{dil}: {a} against {b}"
                    );
                }
            };
            close(&g.to_burn(), &bw, "dW");
            close(&dx.expect("asked for").v, &bx, "dX");
            for o in 0..cout {
                let s: f64 = dy.v.iter().skip(o).step_by(cout).map(|&v| v as f64).sum();
                assert!((g.db[o] as f64 - s).abs() < 1e-4);
            }
        }
    }
}
