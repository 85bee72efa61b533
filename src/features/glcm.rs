//! GLCM (Haralick) texture with a sliding-window co-occurrence matrix.
//!
//! The window's co-occurrence state is kept as exact integers (cell counts, sums of powers of
//! `i + j` and `|i - j|`, row sums) plus fixed-point sums for the two features with irrational
//! weights (entropy, inverse difference moment / homogeneity). Moving the window one column
//! removes one column of pairs and adds one, and every feature is finalised in O(1) from the
//! state. Because the state is integer, the result is independent of the order in which pairs
//! were added: the sliding window, a window rebuilt from scratch and any tiling all give the
//! same bits. [`glcm_features_bruteforce`] is the slow twin with textbook formulas.
//!
//! Conventions follow Orfeo ToolBox 8.1 (`../shared/peers/OTB_HARALICK.md`): the window is
//! cropped at the image border; a pair (c, c + offset) counts when c is in the window and the
//! partner is inside the image (not necessarily inside the window); the matrix is symmetric
//! and normalised. Invalid pixels (quantised value [`INVALID`]) take part in no pair.

use ndarray::{Array2, Array3, ArrayView2};

/// Quantised value marking an invalid (nodata) pixel.
pub const INVALID: u8 = 255;

/// Output feature names, in band order.
pub const FEATURE_NAMES: [&str; 13] = [
    "energy",
    "entropy",
    "correlation",
    "idm",
    "inertia",
    "cluster_shade",
    "cluster_prominence",
    "haralick_correlation",
    "contrast",
    "homogeneity",
    "dissimilarity",
    "mean",
    "variance",
];

/// Feature definitions (`features.glcm.definitions`, `texture --definitions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Definitions {
    /// Orfeo ToolBox: entropy in bits over p > 1e-4, correlation divided by sigma^4,
    /// quantisation bin width (max + 1 - min) / levels.
    Otb,
    /// Textbook: entropy in nats, Pearson correlation, bin width (max - min) / levels.
    Standard,
}

impl Definitions {
    /// The pipeline name (`otb`, `standard`).
    pub fn name(self) -> &'static str {
        match self {
            Definitions::Otb => "otb",
            Definitions::Standard => "standard",
        }
    }
}

/// Where a GLCM block's quantisation range comes from (`features.glcm.quantisation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantisation {
    /// Percentiles of the training data.
    Percentile,
    /// `min` and `max` from the pipeline.
    Fixed,
}

/// GLCM parameters for one offset.
#[derive(Debug, Clone, Copy)]
pub struct GlcmParams {
    /// Window radius: the window is (2 radius + 1) square.
    pub radius: usize,
    /// Offset (dx = column, dy = row going down).
    pub offset: (i32, i32),
    /// Grey levels (2..=64).
    pub levels: usize,
    /// Feature definitions.
    pub definitions: Definitions,
}

/// Quantises `img` to `levels` grey levels over `[min, max]` (values clamped); NaN gives
/// [`INVALID`].
pub fn quantise(
    img: ArrayView2<f32>,
    min: f64,
    max: f64,
    levels: usize,
    defs: Definitions,
) -> Array2<u8> {
    let width = match defs {
        Definitions::Otb => (max + 1.0 - min) / levels as f64,
        Definitions::Standard => (max - min) / levels as f64,
    };
    let inv = if width > 0.0 { 1.0 / width } else { 0.0 };
    img.mapv(|v| {
        if v.is_nan() {
            return INVALID;
        }
        let v = (v as f64).clamp(min, max);
        let b = ((v - min) * inv).floor() as i64;
        b.clamp(0, levels as i64 - 1) as u8
    })
}

/// i128 to f64 with the same rounding as `as f64`, through the hardware i64 conversion when
/// the value fits (the i128 one is a slow software routine).
#[inline]
fn to_f64(v: i128) -> f64 {
    let x = v as i64;
    if x as i128 == v {
        x as f64
    } else {
        wide_to_f64(v)
    }
}

/// The software conversion, out of line: inlined, LLVM sees that both branches of
/// [`to_f64`] compute `v as f64` and keeps only the slow one (perf showed it at 10 %).
#[inline(never)]
fn wide_to_f64(v: i128) -> f64 {
    v as f64
}

/// Fixed-point scale for the irrational parts of the state.
const FX: f64 = 4294967296.0; // 2^32

/// Integer co-occurrence state of one window.
#[derive(Clone)]
struct Cooc {
    n: usize,
    cells: Vec<u32>,
    rows: Vec<u32>,
    total: u64,
    sum_c2: u64,
    sum_clogc: i64,
    sum_r2: u64,
    /// Sums over cell entries that are linear in the pairs: [`LIN`] order.
    lin: [u64; 8],
    /// What one symmetric pair (a, b) adds to `lin`, at `a * n + b`.
    lin_pair: Vec<[u64; 8]>,
    clogc: Vec<i64>,
}

/// Entries of [`Cooc::lin`]: sums over cell entries of s^1..s^4 (s = i + j), |i - j|,
/// (i - j)^2, fixed-point 1 / (1 + d^2) (IDM), fixed-point 1 / (1 + d) (homogeneity).
const M1: usize = 0;
const M2: usize = 1;
const M3: usize = 2;
const M4: usize = 3;
const D1: usize = 4;
const D2: usize = 5;
const IDM: usize = 6;
const HOM: usize = 7;

impl Cooc {
    fn new(n: usize, max_total: usize) -> Self {
        let clogc = (0..=max_total + 2)
            .map(|c| {
                let c = c as f64;
                if c > 0.0 {
                    (c * c.log2() * FX).round() as i64
                } else {
                    0
                }
            })
            .collect();
        Cooc {
            n,
            cells: vec![0; n * n],
            rows: vec![0; n],
            total: 0,
            sum_c2: 0,
            sum_clogc: 0,
            sum_r2: 0,
            lin: [0; 8],
            lin_pair: (0..n * n)
                .map(|ab| {
                    let (a, b) = ((ab / n) as u64, (ab % n) as u64);
                    let (s, d) = (a + b, a.abs_diff(b));
                    // Each symmetric pair is two cell entries.
                    [
                        2 * s,
                        2 * s * s,
                        2 * s * s * s,
                        2 * s * s * s * s,
                        2 * d,
                        2 * d * d,
                        2 * (FX / (1.0 + (d * d) as f64)).round() as u64,
                        2 * (FX / (1.0 + d as f64)).round() as u64,
                    ]
                })
                .collect(),
            clogc,
        }
    }

    fn clear(&mut self) {
        self.cells.iter_mut().for_each(|c| *c = 0);
        self.rows.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.sum_c2 = 0;
        self.sum_clogc = 0;
        self.sum_r2 = 0;
        self.lin = [0; 8];
    }

    #[inline]
    fn bump_cell(&mut self, idx: usize, delta: i32) {
        let c = self.cells[idx] as i64;
        let c2 = c + delta as i64;
        self.cells[idx] = c2 as u32;
        self.sum_c2 = (self.sum_c2 as i64 + c2 * c2 - c * c) as u64;
        self.sum_clogc += self.clogc[c2 as usize] - self.clogc[c as usize];
    }

    #[inline]
    fn bump_row(&mut self, i: usize, delta: i32) {
        let r = self.rows[i] as i64;
        let r2 = r + delta as i64;
        self.rows[i] = r2 as u32;
        self.sum_r2 = (self.sum_r2 as i64 + r2 * r2 - r * r) as u64;
    }

    /// Adds (`sign` = 1) or removes (`sign` = -1) the symmetric pair (a, b).
    #[inline]
    fn pair(&mut self, a: u8, b: u8, sign: i32) {
        let (a, b) = (a as usize, b as usize);
        if a == b {
            self.bump_cell(a * self.n + a, 2 * sign);
        } else {
            self.bump_cell(a * self.n + b, sign);
            self.bump_cell(b * self.n + a, sign);
        }
        self.bump_row(a, sign);
        self.bump_row(b, sign);
        let p = &self.lin_pair[a * self.n + b];
        if sign > 0 {
            self.total += 2;
            for (m, v) in self.lin.iter_mut().zip(p) {
                *m += v;
            }
        } else {
            self.total -= 2;
            for (m, v) in self.lin.iter_mut().zip(p) {
                *m -= v;
            }
        }
    }

    /// The 13 features of the current window (NaN when it holds no pair).
    fn features(&self, defs: Definitions, out: &mut [f32; 13]) {
        if self.total == 0 {
            *out = [f32::NAN; 13];
            return;
        }
        let t = self.total as f64;
        let ti = self.total as i128;
        let n = self.n as f64;
        let m1 = self.lin[M1] as i128;
        let m2 = self.lin[M2] as i128;
        let m3 = self.lin[M3] as i128;
        let m4 = self.lin[M4] as i128;
        let b = self.lin[D2] as i128;
        // Exact integer numerators: var = (T(A+B) - M1^2) / (4 T^2), cov = (T(A-B) - M1^2) / (4 T^2).
        let var = to_f64(ti * (m2 + b) - m1 * m1) / (4.0 * t * t);
        let cov = to_f64(ti * (m2 - b) - m1 * m1) / (4.0 * t * t);
        let mean = self.lin[M1] as f64 / (2.0 * t);
        let energy = self.sum_c2 as f64 / (t * t);
        // T log2 T from the same fixed-point table, so the difference is an exact integer and a
        // single-cell matrix has entropy exactly 0.
        let entropy_bits =
            ((self.clogc[self.total as usize] - self.sum_clogc) as f64 / FX / t).max(0.0);
        let inertia = self.lin[D2] as f64 / t;
        let idm = self.lin[IDM] as f64 / FX / t;
        let shade = to_f64(m3 * ti * ti - 3 * m1 * m2 * ti + 2 * m1 * m1 * m1) / (t * t * t);
        let prominence = to_f64(
            m4 * ti * ti * ti - 4 * m1 * m3 * ti * ti + 6 * m1 * m1 * m2 * ti
                - 3 * m1 * m1 * m1 * m1,
        ) / (t * t * t * t);
        // sum i j p: the sum of 2 ((i + j)^2 - (i - j)^2) = 8 i j is exact in u64.
        let sij = ((self.lin[M2] - self.lin[D2]) / 4) as f64 / t;
        let rows_var = self.sum_r2 as f64 / (n * t * t) - 1.0 / (n * n);
        let haralick = if rows_var.abs() > 1e-8 {
            (sij - 1.0 / (n * n)) / rows_var
        } else {
            0.0
        };
        let (entropy, correlation) = match defs {
            Definitions::Otb => {
                let v2 = var * var;
                (entropy_bits, cov / if v2 < 1e-4 { 1.0 } else { v2 })
            }
            Definitions::Standard => (
                entropy_bits * std::f64::consts::LN_2,
                if var > 0.0 { cov / var } else { 1.0 },
            ),
        };
        *out = [
            energy as f32,
            entropy as f32,
            correlation as f32,
            idm as f32,
            inertia as f32,
            shade as f32,
            prominence as f32,
            haralick as f32,
            inertia as f32,
            (self.lin[HOM] as f64 / FX / t) as f32,
            (self.lin[D1] as f64 / t) as f32,
            mean as f32,
            var as f32,
        ];
    }
}

/// A quantised image as one row-major slice (borrowed when the view is contiguous).
struct Img<'a> {
    d: std::borrow::Cow<'a, [u8]>,
    h: usize,
    w: usize,
}

impl<'a> Img<'a> {
    fn new(q: &'a ArrayView2<'a, u8>) -> Self {
        let (h, w) = q.dim();
        let d = match q.as_slice() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(q.iter().copied().collect()),
        };
        Img { d, h, w }
    }
}

/// Adds or removes all pairs whose first pixel lies in column `col`, rows `r0..=r1`.
#[inline]
fn column_pairs(
    q: &Img,
    st: &mut Cooc,
    col: usize,
    r0: usize,
    r1: usize,
    off: (i32, i32),
    sign: i32,
) {
    let (h, w) = (q.h as i64, q.w as i64);
    let pc = col as i64 + off.0 as i64;
    if pc < 0 || pc >= w {
        return;
    }
    // Rows whose partner row r + dy lies inside the image.
    let lo = (r0 as i64).max(-(off.1 as i64));
    let hi = (r1 as i64).min(h - 1 - off.1 as i64);
    let d = &q.d[..];
    for r in lo..=hi {
        let a = d[(r * w) as usize + col];
        let b = d[((r + off.1 as i64) * w + pc) as usize];
        if a != INVALID && b != INVALID {
            st.pair(a, b, sign);
        }
    }
}

/// Sliding-window GLCM features of a quantised image.
///
/// Returns `[13, rows, cols]` (see [`FEATURE_NAMES`]); NaN where the centre pixel is invalid
/// or its window holds no valid pair.
pub fn glcm_features(q: ArrayView2<u8>, p: &GlcmParams) -> Array3<f32> {
    let (h, w) = q.dim();
    let r = p.radius;
    let mut out = Array3::<f32>::from_elem((13, h, w), f32::NAN);
    let win = 2 * r + 1;
    let mut st = Cooc::new(p.levels, 2 * win * win);
    let mut f = [0f32; 13];
    let img = Img::new(&q);
    for y in 0..h {
        let r0 = y.saturating_sub(r);
        let r1 = (y + r).min(h - 1);
        st.clear();
        for c in 0..=r.min(w - 1) {
            column_pairs(&img, &mut st, c, r0, r1, p.offset, 1);
        }
        for x in 0..w {
            if x > 0 {
                if x > r {
                    column_pairs(&img, &mut st, x - r - 1, r0, r1, p.offset, -1);
                }
                if x + r < w {
                    column_pairs(&img, &mut st, x + r, r0, r1, p.offset, 1);
                }
            }
            if q[[y, x]] == INVALID {
                continue;
            }
            st.features(p.definitions, &mut f);
            for (k, v) in f.iter().enumerate() {
                out[[k, y, x]] = *v;
            }
        }
    }
    out
}

/// The window state rebuilt from scratch for every pixel (same finaliser as the sliding
/// window); used to prove the incremental updates exact.
pub fn glcm_features_rebuilt(q: ArrayView2<u8>, p: &GlcmParams) -> Array3<f32> {
    let (h, w) = q.dim();
    let r = p.radius;
    let win = 2 * r + 1;
    let mut out = Array3::<f32>::from_elem((13, h, w), f32::NAN);
    let mut st = Cooc::new(p.levels, 2 * win * win);
    let mut f = [0f32; 13];
    let img = Img::new(&q);
    for y in 0..h {
        for x in 0..w {
            if q[[y, x]] == INVALID {
                continue;
            }
            st.clear();
            for c in x.saturating_sub(r)..=(x + r).min(w - 1) {
                column_pairs(
                    &img,
                    &mut st,
                    c,
                    y.saturating_sub(r),
                    (y + r).min(h - 1),
                    p.offset,
                    1,
                );
            }
            st.features(p.definitions, &mut f);
            for (k, v) in f.iter().enumerate() {
                out[[k, y, x]] = *v;
            }
        }
    }
    out
}

/// The symmetric co-occurrence counts of the window around (`y`, `x`) into `mat` (n x n);
/// returns their sum.
fn window_counts(q: ArrayView2<u8>, p: &GlcmParams, y: i64, x: i64, mat: &mut [f64]) -> f64 {
    let (h, w) = q.dim();
    let (n, r) = (p.levels, p.radius as i64);
    mat.iter_mut().for_each(|v| *v = 0.0);
    let mut tot = 0.0;
    for yy in (y - r).max(0)..=(y + r).min(h as i64 - 1) {
        for xx in (x - r).max(0)..=(x + r).min(w as i64 - 1) {
            let (py, px) = (yy + p.offset.1 as i64, xx + p.offset.0 as i64);
            if py < 0 || px < 0 || py >= h as i64 || px >= w as i64 {
                continue;
            }
            let a = q[[yy as usize, xx as usize]];
            let b = q[[py as usize, px as usize]];
            if a == INVALID || b == INVALID {
                continue;
            }
            mat[a as usize * n + b as usize] += 1.0;
            mat[b as usize * n + a as usize] += 1.0;
            tot += 2.0;
        }
    }
    tot
}

/// The 13 features of a normalised n x n matrix, textbook formulas (f64).
fn matrix_features(mat: &[f64], n: usize, definitions: Definitions) -> [f64; 13] {
    let pm = |i: usize, j: usize| mat[i * n + j];
    let (mut mu, mut energy, mut ent, mut idm, mut inertia, mut hom, mut dis) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let v = pm(i, j);
            let d = i as f64 - j as f64;
            mu += i as f64 * v;
            energy += v * v;
            if v > 0.0 {
                ent -= v * v.log2();
            }
            idm += v / (1.0 + d * d);
            inertia += d * d * v;
            hom += v / (1.0 + d.abs());
            dis += d.abs() * v;
        }
    }
    let (mut var, mut cov, mut shade, mut prom, mut sij) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut rowsum = vec![0.0; n];
    for (i, rs) in rowsum.iter_mut().enumerate() {
        for j in 0..n {
            let v = pm(i, j);
            let (a, b) = (i as f64 - mu, j as f64 - mu);
            var += a * a * v;
            cov += a * b * v;
            shade += (a + b).powi(3) * v;
            prom += (a + b).powi(4) * v;
            sij += (i * j) as f64 * v;
            *rs += v;
        }
    }
    let nn = n as f64;
    let rm = rowsum.iter().sum::<f64>() / nn;
    let rv = rowsum.iter().map(|s| (s - rm) * (s - rm)).sum::<f64>() / nn;
    let haralick = if rv.abs() > 1e-8 {
        (sij - rm * rm) / rv
    } else {
        0.0
    };
    let (entropy, corr) = match definitions {
        Definitions::Otb => (ent, cov / if var * var < 1e-4 { 1.0 } else { var * var }),
        Definitions::Standard => (
            ent * std::f64::consts::LN_2,
            if var > 0.0 { cov / var } else { 1.0 },
        ),
    };
    [
        energy, entropy, corr, idm, inertia, shade, prom, haralick, inertia, hom, dis, mu, var,
    ]
}

/// Brute-force GLCM with textbook formulas on the normalised matrix (f64): the slow twin.
pub fn glcm_features_bruteforce(q: ArrayView2<u8>, p: &GlcmParams) -> Array3<f32> {
    let (h, w) = q.dim();
    let n = p.levels;
    let mut out = Array3::<f32>::from_elem((13, h, w), f32::NAN);
    let mut mat = vec![0f64; n * n];
    for y in 0..h {
        for x in 0..w {
            if q[[y, x]] == INVALID {
                continue;
            }
            let tot = window_counts(q, p, y as i64, x as i64, &mut mat);
            if tot == 0.0 {
                continue;
            }
            mat.iter_mut().for_each(|v| *v /= tot);
            for (k, v) in matrix_features(&mat, n, p.definitions).iter().enumerate() {
                out[[k, y, x]] = *v as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random_q(h: usize, w: usize, levels: usize, invalid_frac: f64, seed: u64) -> Array2<u8> {
        let mut r = Rng::new(seed);
        Array2::from_shape_fn((h, w), |_| {
            if r.f64() < invalid_frac {
                INVALID
            } else {
                r.below(levels) as u8
            }
        })
    }

    fn close(a: f32, b: f32) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn sliding_window_equals_rebuilt_window_bit_for_bit() {
        for (seed, levels, radius, off) in [
            (1, 8, 2, (1, 0)),
            (2, 16, 3, (1, -1)),
            (3, 64, 1, (-2, 3)),
            (4, 5, 4, (0, 1)),
        ] {
            let q = random_q(23, 31, levels, 0.05, seed);
            let p = GlcmParams {
                radius,
                offset: off,
                levels,
                definitions: Definitions::Otb,
            };
            let a = glcm_features(q.view(), &p);
            let b = glcm_features_rebuilt(q.view(), &p);
            assert!(
                a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn sliding_window_equals_bruteforce_on_random_inputs() {
        for (seed, levels, radius, off, defs) in [
            (11, 8, 2, (1, 0), Definitions::Otb),
            (12, 32, 3, (1, 1), Definitions::Standard),
            (13, 64, 2, (0, -1), Definitions::Otb),
            (14, 16, 5, (2, 1), Definitions::Standard),
        ] {
            let q = random_q(19, 27, levels, 0.1, seed);
            let p = GlcmParams {
                radius,
                offset: off,
                levels,
                definitions: defs,
            };
            let a = glcm_features(q.view(), &p);
            let b = glcm_features_bruteforce(q.view(), &p);
            for ((k, y, x), v) in a.indexed_iter() {
                let u = b[[k, y, x]];
                assert!(
                    close(*v, u),
                    "feature {} at ({y},{x}): sliding {v} brute {u} (seed {seed})",
                    FEATURE_NAMES[k]
                );
            }
        }
    }

    #[test]
    fn constant_window_has_zero_entropy_and_unit_energy() {
        let q = Array2::from_elem((7, 7), 3u8);
        let p = GlcmParams {
            radius: 1,
            offset: (1, 0),
            levels: 8,
            definitions: Definitions::Otb,
        };
        let f = glcm_features(q.view(), &p);
        assert_eq!(f[[0, 3, 3]], 1.0);
        assert_eq!(f[[1, 3, 3]], 0.0);
        assert_eq!(f[[11, 3, 3]], 3.0);
        assert_eq!(f[[4, 3, 3]], 0.0);
    }

    #[test]
    fn otb_quantisation_uses_max_plus_one() {
        let img = Array2::from_shape_vec((1, 4), vec![0.0f32, 7.0, 8.0, f32::NAN]).unwrap();
        let q = quantise(img.view(), 0.0, 7.0, 8, Definitions::Otb);
        assert_eq!(q.as_slice().unwrap(), &[0, 7, 7, INVALID]);
        let q = quantise(img.view(), 0.0, 8.0, 4, Definitions::Standard);
        assert_eq!(q.as_slice().unwrap(), &[0, 3, 3, INVALID]);
    }
}
