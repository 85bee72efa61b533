//! Registration of the SAR latent onto the optical grid inside the learned kernel (the
//! pipeline's `align`).
//!
//! The cue: for every offset o of the k x k kernel and every pixel p, the normalised
//! cross-correlation, over the (2R + 1)^2 window around p, of the optical latent's edge energy
//! with the SAR latent's edge energy shifted by o,
//!
//! ```text
//!   ncc_o(p) = B[e_opt * e_sar(. + o)](p) / sqrt(B[e_opt^2](p) * B[e_sar(. + o)^2](p)),
//! ```
//!
//! B the window sum (zero outside the map), minus its mean over the k^2 offsets. The edge energy
//! e(p) = sum_c |f_c(p + x) - f_c(p)| + |f_c(p + y) - f_c(p)| counts a pair only where both
//! pixels are present. Residual S1/S2 misregistration moves the SAR edges off the optical
//! ones; the cue peaks at the offset that puts them back. The SAR latent is then resampled,
//! fs'(p) = sum_o softmax_o(s * ncc_o(p)) fs(p + o) with one learned scale s ([`warp`]), and
//! every consumer of the SAR latent (the SAR expert, the kernel's tap predictor and taps) sees
//! fs'. The cue is the same function of the offset in every direction, so what training learns
//! (the scale) carries to shift directions the training scenes never showed, which a tap
//! predictor learned per offset does not. The cue is a measurement of the latents: no gradient
//! flows through it (the resampling passes gradients to the scale and the SAR encoder).
//!
//! [`cue`] and [`warp`] are the burn versions (training, wgpu); [`cue_native`] and
//! [`warp_native`] their CPU twins (same values up to float rounding).

use burn::prelude::*;
use burn::tensor::ops::PadMode;
use rayon::prelude::*;

/// Scale of the learned parameter: the resampling logits are `ALIGN_SCALE * a * cue`, `a`
/// starting at 1, so the optimiser moves them at a useful rate.
pub const ALIGN_SCALE: f32 = 10.0;

/// Extra receptive radius of the registration beyond the kernel's own: the window, the edge
/// pair and the k x k resampling of the SAR latent.
pub fn extra_radius(align: usize, k: usize) -> usize {
    if align == 0 {
        0
    } else {
        align + 1 + k / 2
    }
}

fn pad(t: Tensor<4>, (l, r, tp, b): (usize, usize, usize, usize)) -> Tensor<4> {
    t.pad((l, r, tp, b), PadMode::Constant(0.0))
}

/// Edge energy `[batch, 1, h, w]` of latent `f` with presence `p`.
fn edges(f: &Tensor<4>, p: &Tensor<4>) -> Tensor<4> {
    let [b, _, h, w] = f.dims();
    let mut e = Tensor::zeros([b, 1, h, w], &f.device());
    if w > 1 {
        let (a, z) = (s![.., .., .., 1..w], s![.., .., .., 0..w - 1]);
        let d = (f.clone().slice(a) - f.clone().slice(z)).abs().sum_dim(1)
            * p.clone().slice(a)
            * p.clone().slice(z);
        e = e + pad(d, (0, 1, 0, 0));
    }
    if h > 1 {
        let (a, z) = (s![.., .., 1..h, ..], s![.., .., 0..h - 1, ..]);
        let d = (f.clone().slice(a) - f.clone().slice(z)).abs().sum_dim(1)
            * p.clone().slice(a)
            * p.clone().slice(z);
        e = e + pad(d, (0, 0, 0, 1));
    }
    e
}

/// Window sums over (2r + 1)^2 pixels, zero outside the map: rows first, then columns.
fn box_sum(t: Tensor<4>, r: usize) -> Tensor<4> {
    let [_, _, h, w] = t.dims();
    let p = pad(t, (r, r, r, r));
    let rows = (0..=2 * r)
        .map(|d| p.clone().slice(s![.., .., d..d + h, ..]))
        .reduce(|a, b| a + b)
        .expect("one row");
    (0..=2 * r)
        .map(|d| rows.clone().slice(s![.., .., .., d..d + w]))
        .reduce(|a, b| a + b)
        .expect("one column")
}

/// The cue `[batch, k^2, h, w]` (offsets in raster order, row-major from (-k/2, -k/2)) for
/// latents `fo`, `fs` with presences `po`, `ps`.
pub fn cue(
    fo: &Tensor<4>,
    fs: &Tensor<4>,
    po: &Tensor<4>,
    ps: &Tensor<4>,
    k: usize,
    r: usize,
) -> Tensor<4> {
    let [_, _, h, w] = fo.dims();
    let eo = edges(&fo.clone().detach(), po);
    let es = pad(
        edges(&fs.clone().detach(), ps),
        (k / 2, k / 2, k / 2, k / 2),
    );
    let kk = k * k;
    let shifted: Vec<Tensor<4>> = (0..kk)
        .map(|t| {
            es.clone()
                .slice(s![.., .., t / k..t / k + h, t % k..t % k + w])
        })
        .collect();
    let s = Tensor::cat(shifted, 1);
    let stack = Tensor::cat(
        vec![s.clone() * eo.clone(), s.powi_scalar(2), eo.powi_scalar(2)],
        1,
    );
    let b = box_sum(stack, r);
    let num = b.clone().slice(s![.., 0..kk, .., ..]);
    let ss = b.clone().slice(s![.., kk..2 * kk, .., ..]);
    let so = b.slice(s![.., 2 * kk..2 * kk + 1, .., ..]);
    let ncc = num / (ss * so + 1e-12).sqrt();
    (ncc.clone() - ncc.mean_dim(1)).detach()
}

/// The SAR latent `fs` resampled by the taps' `logits` `[batch, k^2, h, w]`: per pixel, the
/// softmax-weighted sum of its k x k neighbours (missing neighbours weigh exactly zero).
pub fn warp(fs: &Tensor<4>, ps: &Tensor<4>, logits: Tensor<4>, k: usize) -> Tensor<4> {
    let [_, _, h, w] = fs.dims();
    let r = k / 2;
    let (fp, pp) = (pad(fs.clone(), (r, r, r, r)), pad(ps.clone(), (r, r, r, r)));
    let at = |t: &Tensor<4>, i: usize| {
        t.clone()
            .slice(s![.., .., i / k..i / k + h, i % k..i % k + w])
    };
    let present = Tensor::cat((0..k * k).map(|i| at(&pp, i)).collect(), 1);
    let wts = burn::tensor::activation::softmax(logits + (present - 1.0) * 1e4, 1);
    (0..k * k)
        .map(|i| at(&fp, i) * wts.clone().slice(s![.., i..i + 1, .., ..]))
        .reduce(|a, b| a + b)
        .expect("one tap")
}

/// [`warp`] on a pixel-major map with pixel-major `logits` (`k^2` per pixel).
pub fn warp_native(
    fs: &[f32],
    ps: &[f32],
    logits: &[f32],
    (h, w, c): (usize, usize, usize),
    k: usize,
) -> Vec<f32> {
    let kk = k * k;
    let r = (k / 2) as isize;
    let mut out = vec![0f32; h * w * c];
    out.par_chunks_mut(w * c).enumerate().for_each(|(y, row)| {
        let mut wt = vec![0f32; kk];
        let mut idx = vec![usize::MAX; kk];
        for x in 0..w {
            let i = y * w + x;
            for t in 0..kk {
                let (yy, xx) = (
                    y as isize + (t / k) as isize - r,
                    x as isize + (t % k) as isize - r,
                );
                let inside = (0..h as isize).contains(&yy) && (0..w as isize).contains(&xx);
                let j = if inside {
                    yy as usize * w + xx as usize
                } else {
                    usize::MAX
                };
                let p = if inside { ps[j] } else { 0.0 };
                idx[t] = j;
                wt[t] = logits[i * kk + t] + (p - 1.0) * 1e4;
            }
            let m = wt.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            wt.iter_mut().for_each(|v| *v = (*v - m).exp());
            let sum: f32 = wt.iter().sum();
            let o = &mut row[x * c..(x + 1) * c];
            for (&e, &j) in wt.iter().zip(&idx) {
                if j == usize::MAX {
                    continue;
                }
                for (o, &f) in o.iter_mut().zip(&fs[j * c..j * c + c]) {
                    *o += f * e / sum;
                }
            }
        }
    });
    out
}

/// [`edges`] on a pixel-major map (`v[(y * w + x) * c + ch]`) with presence plane `p`.
fn edges_native(v: &[f32], p: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    let mut e = vec![0f32; h * w];
    let diff = |i: usize, j: usize| -> f32 {
        let (a, b) = (&v[j * c..j * c + c], &v[i * c..i * c + c]);
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).sum::<f32>() * p[j] * p[i]
    };
    e.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let i = y * w + x;
            let dx = if x + 1 < w { diff(i, i + 1) } else { 0.0 };
            let dy = if y + 1 < h { diff(i, i + w) } else { 0.0 };
            *o = dx + dy;
        }
    });
    e
}

/// Running sums of `n` values over the window [i - r, i + r]: `add(j, sign)` adds value j.
fn slide(n: usize, r: usize, mut add: impl FnMut(usize, f64), mut emit: impl FnMut(usize)) {
    (0..r.min(n)).for_each(|j| add(j, 1.0));
    for i in 0..n {
        if i + r < n {
            add(i + r, 1.0);
        }
        emit(i);
        if i >= r {
            add(i - r, -1.0);
        }
    }
}

/// Sliding window sums (f64 accumulators) of a plane over (2r + 1)^2, zero outside.
fn box_sum_native(v: &[f32], h: usize, w: usize, r: usize) -> Vec<f32> {
    let mut acc = vec![0f64; w];
    let mut cols = vec![0f64; h * w];
    {
        let acc = std::cell::RefCell::new(&mut acc);
        slide(
            h,
            r,
            |y, sign| {
                let mut a = acc.borrow_mut();
                for (a, &x) in a.iter_mut().zip(&v[y * w..(y + 1) * w]) {
                    *a += sign * x as f64;
                }
            },
            |y| cols[y * w..(y + 1) * w].copy_from_slice(&acc.borrow()),
        );
    }
    let mut out = vec![0f32; h * w];
    for (row, o) in cols.chunks(w).zip(out.chunks_mut(w)) {
        let acc = std::cell::Cell::new(0f64);
        slide(
            w,
            r,
            |x, sign| acc.set(acc.get() + sign * row[x]),
            |x| o[x] = acc.get() as f32,
        );
    }
    out
}

/// [`cue`] on pixel-major latents: a pixel-major map of `k^2` channels, flattened.
#[allow(clippy::too_many_arguments)]
pub fn cue_native(
    fo: &[f32],
    fs: &[f32],
    po: &[f32],
    ps: &[f32],
    (h, w, c): (usize, usize, usize),
    k: usize,
    r: usize,
) -> Vec<f32> {
    let (eo, es) = (edges_native(fo, po, h, w, c), edges_native(fs, ps, h, w, c));
    let so = box_sum_native(&eo.iter().map(|v| v * v).collect::<Vec<_>>(), h, w, r);
    let kk = k * k;
    let rk = (k / 2) as isize;
    let planes: Vec<Vec<f32>> = (0..kk)
        .into_par_iter()
        .map(|t| {
            let (dy, dx) = ((t / k) as isize - rk, (t % k) as isize - rk);
            let at = |y: usize, x: usize| {
                let (yy, xx) = (y as isize + dy, x as isize + dx);
                let inside = (0..h as isize).contains(&yy) && (0..w as isize).contains(&xx);
                if inside {
                    es[yy as usize * w + xx as usize]
                } else {
                    0.0
                }
            };
            let s: Vec<f32> = (0..h * w).map(|i| at(i / w, i % w)).collect();
            let prod: Vec<f32> = s.iter().zip(&eo).map(|(a, b)| a * b).collect();
            let sq: Vec<f32> = s.iter().map(|a| a * a).collect();
            let (num, ss) = (box_sum_native(&prod, h, w, r), box_sum_native(&sq, h, w, r));
            (0..h * w)
                .map(|i| num[i] / (ss[i] * so[i] + 1e-12).sqrt())
                .collect()
        })
        .collect();
    let mut out = vec![0f32; h * w * kk];
    out.par_chunks_mut(kk).enumerate().for_each(|(i, o)| {
        o.iter_mut().zip(&planes).for_each(|(o, p)| *o = p[i]);
        let mean = o.iter().sum::<f32>() / kk as f32;
        o.iter_mut().for_each(|v| *v -= mean);
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn t4(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    /// A parcel map `[h][w]` of 4 x 5 blocks with a value per block.
    fn parcels(h: usize, w: usize, dy: isize, dx: isize) -> Vec<f32> {
        (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as isize - dy, (i % w) as isize - dx);
                let (by, bx) = (y.div_euclid(4), x.div_euclid(5));
                ((by * 7 + bx * 3).rem_euclid(5)) as f32
            })
            .collect()
    }

    #[test]
    fn the_cue_peaks_at_the_shift_that_realigns_the_sar_edges() {
        // SAR = the optical parcels moved by (+1, -2): the SAR pixel matching p is p + (1, -2),
        // the tap at row 3 + 1, column 3 - 2 of a 7 x 7 kernel.
        let (h, w, k) = (24, 28, 7);
        let fo = parcels(h, w, 0, 0);
        let fs = parcels(h, w, 1, -2);
        let ones = vec![1f32; h * w];
        let cue = cue_native(&fo, &fs, &ones, &ones, (h, w, 1), k, 6);
        let centre = (12 * w + 14) * k * k;
        let taps = &cue[centre..centre + k * k];
        let best = (0..k * k)
            .max_by(|&a, &b| taps[a].total_cmp(&taps[b]))
            .unwrap();
        assert_eq!((best / k, best % k), (4, 1), "cue {taps:?}");
        assert!(taps.iter().sum::<f32>().abs() < 1e-4, "mean not removed");
    }

    #[test]
    fn native_cue_equals_burn_cue() {
        let (h, w, c, k, r) = (13, 17, 3, 5, 4);
        let mut rng = crate::rng::Rng::new(3);
        let mut fo: Vec<f32> = (0..h * w * c).map(|_| rng.f64() as f32).collect();
        let fs: Vec<f32> = (0..h * w * c).map(|_| rng.f64() as f32).collect();
        let po: Vec<f32> = (0..h * w).map(|i| (i % 11 != 0) as u8 as f32).collect();
        let ps: Vec<f32> = (0..h * w).map(|i| (i % 7 != 3) as u8 as f32).collect();
        fo[5] = 4.0;
        let planar = |v: &[f32]| -> Tensor<4> {
            let p: Vec<f32> = (0..c * h * w)
                .map(|j| v[(j % (h * w)) * c + j / (h * w)])
                .collect();
            t4(p, [1, c, h, w])
        };
        let plane = |v: &[f32]| t4(v.to_vec(), [1, 1, h, w]);
        let b = cue(&planar(&fo), &planar(&fs), &plane(&po), &plane(&ps), k, r);
        let b: Vec<f32> = b.into_data().convert::<f32>().try_to_vec().unwrap();
        let n = cue_native(&fo, &fs, &po, &ps, (h, w, c), k, r);
        for t in 0..k * k {
            for i in 0..h * w {
                let (bv, nv) = (b[t * h * w + i], n[i * k * k + t]);
                assert!(
                    (bv - nv).abs() < 1e-5,
                    "tap {t} pixel {i}: burn {bv} native {nv}"
                );
            }
        }
    }

    #[test]
    fn warp_takes_the_favoured_neighbour_and_never_a_missing_one() {
        // 1 channel, 4 x 5 map, values = pixel index; logits favour offset (+1, +1) (tap 8 of
        // a 3 x 3 kernel) everywhere; pixel 6's neighbour 12 is missing.
        let (h, w, k) = (4, 5, 3);
        let fs: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
        let mut ps = vec![1f32; h * w];
        ps[12] = 0.0;
        let mut logits = vec![0f32; h * w * k * k];
        (0..h * w).for_each(|i| logits[i * k * k + 8] = 40.0);
        let out = warp_native(&fs, &ps, &logits, (h, w, 1), k);
        assert!(
            (out[0] - 6.0).abs() < 1e-4,
            "pixel 0 reads pixel 6: {}",
            out[0]
        );
        // Pixel 6 = (1, 1): its favoured neighbour (2, 2) = 12 is missing, so the weight
        // spreads over the 8 present ones, equally.
        let rest = [0.0, 1.0, 2.0, 5.0, 6.0, 7.0, 10.0, 11.0];
        let mean = rest.iter().sum::<f32>() / 8.0;
        assert!((out[6] - mean).abs() < 1e-4, "{} vs {mean}", out[6]);
        let planar = t4(fs.clone(), [1, 1, h, w]);
        let pp = t4(ps.clone(), [1, 1, h, w]);
        let lp: Vec<f32> = (0..k * k * h * w)
            .map(|j| logits[(j % (h * w)) * k * k + j / (h * w)])
            .collect();
        let b = warp(&planar, &pp, t4(lp, [1, k * k, h, w]), k);
        let b: Vec<f32> = b.into_data().convert::<f32>().try_to_vec().unwrap();
        for (i, (x, y)) in b.iter().zip(&out).enumerate() {
            assert!((x - y).abs() < 1e-4, "pixel {i}: burn {x}, native {y}");
        }
    }
}
