//! The sampled-softmax loss (`model::sampled_softmax_nll`) and its gradient on native maps,
//! eight pixels at a time: every per-class step runs across the eight pixels' lanes, so the
//! exponentials and logarithms vectorise (AVX2 with FMA where the CPU has it).

use super::grad_ops::Out;
use super::native::{exp_f32, simd_available, Map};

/// Pixels per block.
const L: usize = 8;

/// What the loss of one patch reads: labels, loss weights (already divided by the batch's
/// weight sum) and the logit-noise samples (pixel-major, `K` channels each).
pub(crate) struct LossIn<'a> {
    pub(crate) y: &'a [i64],
    pub(crate) wt: &'a [f32],
    pub(crate) eps: &'a [Map],
}

/// One block's values, class- (or sample-) major with the pixels in lanes.
struct Block {
    k: usize,
    mu: Vec<[f32; L]>,
    eps: Vec<[f32; L]>,
    lv: [f32; L],
    g: [f32; L],
    y: [i32; L],
    /// Softmax of each sample's noisy logits `[sample][class]`.
    p: Vec<[f32; L]>,
    dmu: Vec<[f32; L]>,
    dlv: [f32; L],
    loss: [f32; L],
}

impl Block {
    fn new(k: usize, n: usize) -> Block {
        Block {
            k,
            mu: vec![[0.0; L]; k],
            eps: vec![[0.0; L]; n * k],
            lv: [0.0; L],
            g: [0.0; L],
            y: [0; L],
            p: vec![[0.0; L]; n * k],
            dmu: vec![[0.0; L]; k],
            dlv: [0.0; L],
            loss: [0.0; L],
        }
    }

    /// Pixels `p0..p0 + L` (lanes past the patch get weight 0).
    fn load(&mut self, o: &Out, l: &LossIn, p0: usize) {
        let k = self.k;
        for lane in 0..L {
            let i = p0 + lane;
            if i >= o.lv.len() {
                self.g[lane] = 0.0;
                continue;
            }
            self.g[lane] = l.wt[i];
            self.y[lane] = l.y[i] as i32;
            self.lv[lane] = o.lv[i];
            for (c, &m) in o.mu.px(i).iter().enumerate() {
                self.mu[c][lane] = m;
            }
            for (s, e) in l.eps.iter().enumerate() {
                for (c, &v) in e.px(i).iter().enumerate() {
                    self.eps[s * k + c][lane] = v;
                }
            }
        }
    }

    fn store(&self, dmu: &mut Map, dlv: &mut [f32], p0: usize) -> f64 {
        let mut loss = 0f64;
        for lane in 0..L.min(dlv.len() - p0) {
            let i = p0 + lane;
            for (c, d) in dmu.v[i * self.k..(i + 1) * self.k].iter_mut().enumerate() {
                *d = self.dmu[c][lane];
            }
            dlv[i] = self.dlv[lane];
            loss += self.loss[lane] as f64;
        }
        loss
    }

    /// The loss and its gradient in every lane.
    #[inline(always)]
    fn run(&mut self) {
        let (k, n) = (self.k, self.eps.len() / self.k);
        let sigma: [f32; L] = std::array::from_fn(|j| exp_f32(self.lv[j] * 0.5));
        let mut lp = vec![[0f32; L]; n];
        for (s, lps) in lp.iter_mut().enumerate() {
            let p = &mut self.p[s * k..(s + 1) * k];
            let e = &self.eps[s * k..(s + 1) * k];
            let mut m = [f32::NEG_INFINITY; L];
            for c in 0..k {
                for j in 0..L {
                    p[c][j] = self.mu[c][j] + sigma[j] * e[c][j];
                    m[j] = m[j].max(p[c][j]);
                }
            }
            let zy: [f32; L] = std::array::from_fn(|j| p[self.y[j] as usize][j] - m[j]);
            let mut sum = [0f32; L];
            for pc in p.iter_mut() {
                for j in 0..L {
                    pc[j] = exp_f32(pc[j] - m[j]);
                    sum[j] += pc[j];
                }
            }
            for j in 0..L {
                lps[j] = zy[j] - ln_f32(sum[j]);
            }
            for pc in p.iter_mut() {
                for j in 0..L {
                    pc[j] /= sum[j];
                }
            }
        }
        self.gradient(&lp, &sigma);
    }

    /// From the samples' log-probabilities of the label: the loss, d/dmu and d/dlogvar.
    #[inline(always)]
    fn gradient(&mut self, lp: &[[f32; L]], sigma: &[f32; L]) {
        let (k, n) = (self.k, lp.len());
        let mut m = [f32::NEG_INFINITY; L];
        lp.iter()
            .for_each(|l| (0..L).for_each(|j| m[j] = m[j].max(l[j])));
        let mut sum = [0f32; L];
        lp.iter()
            .for_each(|l| (0..L).for_each(|j| sum[j] += exp_f32(l[j] - m[j])));
        let lse: [f32; L] = std::array::from_fn(|j| ln_f32(sum[j]) + m[j]);
        let ln_n = (n as f32).ln();
        self.loss = std::array::from_fn(|j| self.g[j] * -(lse[j] - ln_n));
        self.dmu.iter_mut().for_each(|d| *d = [0.0; L]);
        let mut dsig = [0f32; L];
        for (s, l) in lp.iter().enumerate() {
            let r: [f32; L] = std::array::from_fn(|j| self.g[j] * exp_f32(l[j] - lse[j]));
            for c in 0..k {
                let (p, e) = (&self.p[s * k + c], &self.eps[s * k + c]);
                for j in 0..L {
                    let hit = if self.y[j] as usize == c { 1.0 } else { 0.0 };
                    let dz = r[j] * (p[j] - hit);
                    self.dmu[c][j] += dz;
                    dsig[j] += dz * e[j];
                }
            }
        }
        for j in 0..L {
            self.dlv[j] = dsig[j] * sigma[j] * 0.5;
        }
    }
}

/// `model::sampled_softmax_nll` weighted by `l.wt` and summed over the pixels, with its
/// gradient: the loss, then d/dmu (`K` per pixel) and d/dlogvar.
pub(crate) fn nll_back(o: &Out, l: &LossIn) -> (f64, Map, Vec<f32>) {
    let (k, npx) = (o.mu.c, o.lv.len());
    let mut dmu = Map::zeros(o.mu.h, o.mu.w, k);
    let mut dlv = vec![0f32; npx];
    let mut loss = 0f64;
    let mut b = Block::new(k, l.eps.len());
    // The vector path holds up to 16 samples on its stack.
    let simd = simd_available() && l.eps.len() <= 16;
    for p0 in (0..npx).step_by(L) {
        if l.wt[p0..(p0 + L).min(npx)].iter().all(|&g| g == 0.0) {
            continue;
        }
        b.load(o, l, p0);
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: AVX2 and FMA were detected.
            unsafe { avx::run(&mut b) };
            loss += b.store(&mut dmu, &mut dlv, p0);
            continue;
        }
        let _ = simd;
        b.run();
        loss += b.store(&mut dmu, &mut dlv, p0);
    }
    (loss, dmu, dlv)
}

/// The polynomial of [`ln_f32`] in the reduced mantissa, highest power first (Cephes' logf),
/// shared by the scalar and vector paths.
const LN_POLY: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461_1e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_4e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// ln x for x >= 1 (Cephes' logf: mantissa in [sqrt(1/2), sqrt(2)), polynomial, relative
/// error about 1e-7), written without calls so loops over it vectorise.
#[inline(always)]
pub(crate) fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    if m < std::f32::consts::FRAC_1_SQRT_2 {
        e -= 1;
        m = m + m - 1.0;
    } else {
        m -= 1.0;
    }
    let z = m * m;
    let mut y = LN_POLY[0];
    for &c in &LN_POLY[1..] {
        y = y * m + c;
    }
    let ef = e as f32;
    y = y * m * z - 2.121_944_4e-4 * ef - 0.5 * z;
    m + y + 0.693_359_4 * ef
}

/// [`Block::run`] on 256-bit registers, the same steps and polynomials.
#[cfg(target_arch = "x86_64")]
mod avx {
    use super::super::native::EXP_POLY;
    use super::{Block, L};
    use std::arch::x86_64::*;

    /// [`exp_f32`](super::exp_f32) in eight lanes.
    #[inline(always)]
    unsafe fn exp8(x: __m256) -> __m256 {
        let xc = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
            _mm256_set1_ps(88.0),
        );
        let shift = _mm256_set1_ps(12_582_912.0);
        let n = _mm256_sub_ps(
            _mm256_add_ps(
                _mm256_mul_ps(xc, _mm256_set1_ps(std::f32::consts::LOG2_E)),
                shift,
            ),
            shift,
        );
        let r = _mm256_add_ps(
            _mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(0.693_359_4))),
            _mm256_mul_ps(n, _mm256_set1_ps(2.121_944_4e-4)),
        );
        let mut p = _mm256_set1_ps(EXP_POLY[0]);
        for &c in &EXP_POLY[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let y = _mm256_add_ps(
            _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r),
            _mm256_set1_ps(1.0),
        );
        let e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
        let low = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0), _CMP_LT_OQ);
        _mm256_andnot_ps(low, _mm256_mul_ps(y, scale))
    }

    /// [`ln_f32`](super::ln_f32) in eight lanes (x >= 1).
    #[inline(always)]
    unsafe fn ln8(x: __m256) -> __m256 {
        let bits = _mm256_castps_si256(x);
        let e = _mm256_sub_epi32(
            _mm256_and_si256(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(0xff)),
            _mm256_set1_epi32(126),
        );
        let m = _mm256_castsi256_ps(_mm256_or_si256(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(0x3f00_0000),
        ));
        let small = _mm256_cmp_ps(
            m,
            _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
            _CMP_LT_OQ,
        );
        let ef = _mm256_sub_ps(
            _mm256_cvtepi32_ps(e),
            _mm256_and_ps(small, _mm256_set1_ps(1.0)),
        );
        let one = _mm256_set1_ps(1.0);
        let m = _mm256_sub_ps(_mm256_add_ps(m, _mm256_and_ps(small, m)), one);
        let z = _mm256_mul_ps(m, m);
        let mut y = _mm256_set1_ps(super::LN_POLY[0]);
        for &c in &super::LN_POLY[1..] {
            y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(c));
        }
        y = _mm256_mul_ps(_mm256_mul_ps(y, m), z);
        y = _mm256_sub_ps(y, _mm256_mul_ps(_mm256_set1_ps(2.121_944_4e-4), ef));
        y = _mm256_sub_ps(y, _mm256_mul_ps(_mm256_set1_ps(0.5), z));
        _mm256_add_ps(
            _mm256_add_ps(m, y),
            _mm256_mul_ps(_mm256_set1_ps(0.693_359_4), ef),
        )
    }

    unsafe fn ld(a: &[f32; L]) -> __m256 {
        _mm256_loadu_ps(a.as_ptr())
    }

    unsafe fn st(a: &mut [f32; L], v: __m256) {
        _mm256_storeu_ps(a.as_mut_ptr(), v)
    }

    /// Each sample's softmax into `b.p` and its log-probability of the label into `lp`.
    #[inline(always)]
    unsafe fn samples(b: &mut Block, sigma: __m256, lp: &mut [[f32; L]]) {
        let k = b.k;
        for (s, lps) in lp.iter_mut().enumerate() {
            let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
            for c in 0..k {
                let z = _mm256_fmadd_ps(sigma, ld(&b.eps[s * k + c]), ld(&b.mu[c]));
                st(&mut b.p[s * k + c], z);
                m = _mm256_max_ps(m, z);
            }
            let mut ma = [0f32; L];
            st(&mut ma, m);
            let zy: [f32; L] = std::array::from_fn(|j| b.p[s * k + b.y[j] as usize][j] - ma[j]);
            let mut sum = _mm256_setzero_ps();
            for c in 0..k {
                let v = exp8(_mm256_sub_ps(ld(&b.p[s * k + c]), m));
                st(&mut b.p[s * k + c], v);
                sum = _mm256_add_ps(sum, v);
            }
            st(lps, _mm256_sub_ps(ld(&zy), ln8(sum)));
            for c in 0..k {
                let v = _mm256_div_ps(ld(&b.p[s * k + c]), sum);
                st(&mut b.p[s * k + c], v);
            }
        }
    }

    /// The loss and its gradient in every lane.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run(b: &mut Block) {
        let (k, n) = (b.k, b.eps.len() / b.k);
        let g = ld(&b.g);
        let sigma = exp8(_mm256_mul_ps(ld(&b.lv), _mm256_set1_ps(0.5)));
        let mut lp = [[0f32; L]; 16];
        let lp = &mut lp[..n];
        samples(b, sigma, lp);
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        lp.iter().for_each(|l| m = _mm256_max_ps(m, ld(l)));
        let mut sum = _mm256_setzero_ps();
        lp.iter()
            .for_each(|l| sum = _mm256_add_ps(sum, exp8(_mm256_sub_ps(ld(l), m))));
        let lse = _mm256_add_ps(ln8(sum), m);
        let ln_n = _mm256_set1_ps((n as f32).ln());
        let neg_g = _mm256_sub_ps(_mm256_setzero_ps(), g);
        st(&mut b.loss, _mm256_mul_ps(neg_g, _mm256_sub_ps(lse, ln_n)));
        let y = _mm256_loadu_si256(b.y.as_ptr() as *const __m256i);
        let mut dmu = vec![_mm256_setzero_ps(); k];
        let mut dsig = _mm256_setzero_ps();
        for (s, l) in lp.iter().enumerate() {
            let r = _mm256_mul_ps(g, exp8(_mm256_sub_ps(ld(l), lse)));
            for (c, d) in dmu.iter_mut().enumerate() {
                let hit = _mm256_and_ps(
                    _mm256_castsi256_ps(_mm256_cmpeq_epi32(y, _mm256_set1_epi32(c as i32))),
                    _mm256_set1_ps(1.0),
                );
                let dz = _mm256_mul_ps(r, _mm256_sub_ps(ld(&b.p[s * k + c]), hit));
                *d = _mm256_add_ps(*d, dz);
                dsig = _mm256_fmadd_ps(dz, ld(&b.eps[s * k + c]), dsig);
            }
        }
        for (c, d) in dmu.into_iter().enumerate() {
            st(&mut b.dmu[c], d);
        }
        let half = _mm256_mul_ps(sigma, _mm256_set1_ps(0.5));
        st(&mut b.dlv, _mm256_mul_ps(dsig, half));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_loss_equals_the_scalar_loss() {
        if !simd_available() {
            eprintln!("skipped: no AVX2/FMA on this CPU, only the scalar loss runs here");
            return;
        }
        let mut rng = crate::rng::Rng::new(4);
        let (k, n) = (7, 4);
        let mut b = Block::new(k, n);
        for round in 0..50 {
            for c in 0..k {
                b.mu[c] = std::array::from_fn(|_| rng.normal() as f32 * 3.0);
            }
            for e in b.eps.iter_mut() {
                *e = std::array::from_fn(|_| rng.normal() as f32);
            }
            // Log-variances across the clamp range, one lane unweighted.
            b.lv = std::array::from_fn(|_| rng.f64() as f32 * 16.0 - 8.0);
            b.g = std::array::from_fn(|j| {
                if j == round % L {
                    0.0
                } else {
                    rng.f64() as f32
                }
            });
            b.y = std::array::from_fn(|_| rng.below(k) as i32);
            let mut v = Block { ..clone_of(&b) };
            b.run();
            // SAFETY: AVX2 and FMA were detected.
            unsafe { avx::run(&mut v) };
            let close = |a: &[f32], e: &[f32]| {
                for (x, y) in a.iter().zip(e) {
                    assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} against {y}");
                }
            };
            close(&v.loss, &b.loss);
            close(&v.dlv, &b.dlv);
            close(v.dmu.as_flattened(), b.dmu.as_flattened());
        }
    }

    fn clone_of(b: &Block) -> Block {
        Block {
            k: b.k,
            mu: b.mu.clone(),
            eps: b.eps.clone(),
            lv: b.lv,
            g: b.g,
            y: b.y,
            p: b.p.clone(),
            dmu: b.dmu.clone(),
            dlv: b.dlv,
            loss: b.loss,
        }
    }

    #[test]
    fn the_logarithm_matches_the_standard_library() {
        let mut x = 1.0f32;
        while x < 1e30 {
            for v in [x, x * 1.37, x * 1.9999] {
                let (a, b) = (ln_f32(v), v.ln());
                assert!(
                    (a - b).abs() <= 2e-7 * b.abs().max(1.0),
                    "ln {v}: {a} against {b}"
                );
            }
            x *= 2.0;
        }
    }
}
