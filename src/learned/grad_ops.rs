//! Backward passes of the network's per-pixel operators on native maps (training's CPU path):
//! the precision weighting of the experts, the kernel fusion and the
//! U-Net's pooling and upsampling. Each follows its burn forward in `model.rs` / `unet.rs`
//! operation for operation; the twins in `native_train.rs` hold the gradients to burn's
//! autodiff.

use super::model::LOGVAR_RANGE;
use super::native::{padded, Map};

/// One expert's (or the fused) output per pixel: mean logits (`K` channels) and log-variance.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    pub(crate) mu: Map,
    pub(crate) lv: Vec<f32>,
}

/// `model::precision_fuse` of the experts `outs` (log-variances already clamped) with their
/// presence planes (`None` = everywhere).
pub(crate) fn fuse(outs: &[Out], presence: &[Option<&[f32]>]) -> Out {
    if outs.len() == 1 {
        return outs[0].clone();
    }
    let (h, w, k) = (outs[0].mu.h, outs[0].mu.w, outs[0].mu.c);
    let floor = (-LOGVAR_RANGE.1).exp() * 1e-3;
    let mut mu = Map::zeros(h, w, k);
    let mut lv = vec![0f32; h * w];
    for (i, lv) in lv.iter_mut().enumerate() {
        let mut total = 0f32;
        let m = &mut mu.v[i * k..(i + 1) * k];
        for (e, o) in outs.iter().enumerate() {
            let pi = precision(o, presence[e], i);
            total = if e == 0 { pi } else { total + pi };
            for (n, &v) in m.iter_mut().zip(o.mu.px(i)) {
                *n = if e == 0 { v * pi } else { *n + v * pi };
            }
        }
        let total = total.max(floor);
        m.iter_mut().for_each(|n| *n /= total);
        *lv = -total.ln();
    }
    Out { mu, lv }
}

fn precision(o: &Out, presence: Option<&[f32]>, i: usize) -> f32 {
    let pi = (-o.lv[i]).exp();
    presence.map_or(pi, |p| pi * p[i])
}

/// The gradient of [`fuse`]: given d/dmu and d/dlogvar of the fused output, adds each expert's
/// share to `d[e]` (d/dmu, d/dlogvar of its clamped log-variance).
pub(crate) fn fuse_back(
    outs: &[Out],
    presence: &[Option<&[f32]>],
    fused: &Out,
    (dmu, dlv): (&Map, &[f32]),
    d: &mut [(Map, Vec<f32>)],
) {
    if outs.len() == 1 {
        d[0].0.v.iter_mut().zip(&dmu.v).for_each(|(a, b)| *a += b);
        d[0].1.iter_mut().zip(dlv).for_each(|(a, b)| *a += b);
        return;
    }
    let k = fused.mu.c;
    let floor = (-LOGVAR_RANGE.1).exp() * 1e-3;
    for (i, &dl) in dlv.iter().enumerate() {
        let g = dmu.px(i);
        let total = outs
            .iter()
            .enumerate()
            .map(|(e, o)| precision(o, presence[e], i))
            .sum::<f32>();
        let tc = total.max(floor);
        let a: f32 = g.iter().zip(fused.mu.px(i)).map(|(a, b)| a * b).sum();
        let dtot = if total >= floor { (-a - dl) / tc } else { 0.0 };
        for (e, o) in outs.iter().enumerate() {
            let pi = precision(o, presence[e], i);
            let dpi = g.iter().zip(o.mu.px(i)).map(|(a, b)| a * b).sum::<f32>() / tc + dtot;
            let de = &mut d[e].0.v[i * k..(i + 1) * k];
            de.iter_mut().zip(g).for_each(|(d, &g)| *d += g * pi / tc);
            d[e].1[i] += -pi * dpi;
        }
    }
}

/// A head's raw output (`K + 1` channels) split into mean logits and clamped log-variance.
pub(crate) fn split_head(o: &Map) -> Out {
    let k = o.c - 1;
    let (lo, hi) = LOGVAR_RANGE;
    Out {
        mu: o.channels(0..k),
        lv: o
            .v
            .iter()
            .skip(k)
            .step_by(k + 1)
            .map(|v| v.clamp(lo, hi))
            .collect(),
    }
}

/// The gradient at a head's raw output from d/dmu and d/dlogvar (zero where the clamp held).
pub(crate) fn join_head(o: &Map, (dmu, dlv): &(Map, Vec<f32>)) -> Map {
    let k = o.c - 1;
    let (lo, hi) = LOGVAR_RANGE;
    let mut d = Map::zeros(o.h, o.w, k + 1);
    for (i, px) in d.v.chunks_exact_mut(k + 1).enumerate() {
        px[..k].copy_from_slice(dmu.px(i));
        let raw = o.v[i * (k + 1) + k];
        px[k] = if (lo..=hi).contains(&raw) {
            dlv[i]
        } else {
            0.0
        };
    }
    d
}

/// What kernel fusion keeps for its backward pass: the padded features and each pixel's tap
/// weights (`2 k^2` per pixel, optical taps first).
pub(crate) struct KernelTrace {
    k: usize,
    wp: usize,
    feats: [Vec<f32>; 2],
    weights: Vec<f32>,
    /// Fixed kernel: each pixel's reference feature (the presence-weighted mean).
    reference: Option<Map>,
    /// Fixed kernel: the branches' presence planes.
    presence: Option<(Vec<f32>, Vec<f32>)>,
}

/// Offsets of the taps from a window's top-left padded pixel.
fn offsets(k: usize, wp: usize) -> Vec<usize> {
    (0..k * k).map(|t| (t / k) * wp + t % k).collect()
}

/// `model::kernel_fuse` with what its backward pass needs.
pub(crate) fn kernel_fuse(
    (fo, fs): (&Map, &Map),
    (po, ps): (&[f32], &[f32]),
    logits: Option<&Map>,
    k: usize,
) -> (Map, KernelTrace) {
    let (h, w, c) = (fo.h, fo.w, fo.c);
    let r = k / 2;
    let wp = w + 2 * r;
    let feats = [padded(&fo.v, h, w, c, r, wp), padded(&fs.v, h, w, c, r, wp)];
    let pres = [padded(po, h, w, 1, r, wp), padded(ps, h, w, 1, r, wp)];
    let reference = logits.is_none().then(|| {
        let mut m = fo.clone();
        for (i, px) in m.v.chunks_exact_mut(c).enumerate() {
            let den = (po[i] + ps[i]).max(1e-6);
            for (v, &s) in px.iter_mut().zip(fs.px(i)) {
                *v = (*v * po[i] + s * ps[i]) / den;
            }
        }
        m
    });
    let mut tr = KernelTrace {
        k,
        wp,
        feats,
        weights: vec![0f32; h * w * 2 * k * k],
        presence: reference.as_ref().map(|_| (po.to_vec(), ps.to_vec())),
        reference,
    };
    let off = offsets(k, wp);
    let mut out = Map::zeros(h, w, c);
    let mut wt = vec![0f32; 2 * k * k];
    for i in 0..h * w {
        let base = (i / w) * wp + i % w;
        tap_weights(&tr, &pres, logits, &off, (i, base, c), &mut wt);
        let o = &mut out.v[i * c..(i + 1) * c];
        for (t, &wv) in wt.iter().enumerate() {
            let j = base + off[t % (k * k)];
            let f = &tr.feats[t / (k * k)][j * c..(j + 1) * c];
            o.iter_mut().zip(f).for_each(|(o, &f)| *o += f * wv);
        }
        tr.weights[i * 2 * k * k..(i + 1) * 2 * k * k].copy_from_slice(&wt);
    }
    (out, tr)
}

/// The softmax tap weights of pixel `i` (top-left padded pixel `base`).
fn tap_weights(
    tr: &KernelTrace,
    pres: &[Vec<f32>; 2],
    logits: Option<&Map>,
    off: &[usize],
    (i, base, c): (usize, usize, usize),
    lg: &mut [f32],
) {
    let kk = tr.k * tr.k;
    let r = (tr.k / 2) as f32;
    for (t, l) in lg.iter_mut().enumerate() {
        let j = base + off[t % kk];
        let raw = match (logits, &tr.reference) {
            (Some(l), _) => l.v[i * 2 * kk + t],
            (None, Some(rf)) => {
                let (dy, dx) = ((t % kk / tr.k) as f32 - r, (t % tr.k) as f32 - r);
                let f = &tr.feats[t / kk][j * c..(j + 1) * c];
                let sim = f
                    .iter()
                    .zip(rf.px(i))
                    .map(|(u, v)| (u - v) * (u - v))
                    .sum::<f32>();
                -(sim / (2.0 * c as f32)) - (dy * dy + dx * dx) / 2.0
            }
            (None, None) => unreachable!("fixed kernel keeps its reference"),
        };
        *l = raw + (pres[t / kk][j] - 1.0) * 1e4;
    }
    let m = lg.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    lg.iter_mut().for_each(|v| *v = (*v - m).exp());
    let sum: f32 = lg.iter().sum();
    lg.iter_mut().for_each(|v| *v /= sum);
}

/// The gradient of [`kernel_fuse`] from d/d(fused): d/d(fo), d/d(fs) and, for the learned
/// kernel, d/d(logits).
pub(crate) fn kernel_fuse_back(tr: &KernelTrace, dj: &Map) -> (Map, Map, Option<Map>) {
    let (h, w, c, k, wp) = (dj.h, dj.w, dj.c, tr.k, tr.wp);
    let (kk, r) = (k * k, k / 2);
    let off = offsets(k, wp);
    let mut dpad = [vec![0f32; tr.feats[0].len()], vec![0f32; tr.feats[1].len()]];
    let mut dlogits = Map::zeros(h, w, 2 * kk);
    let mut dref = tr.reference.as_ref().map(|m| Map::zeros(m.h, m.w, m.c));
    let mut dw = vec![0f32; 2 * kk];
    for i in 0..h * w {
        let base = (i / w) * wp + i % w;
        let g = dj.px(i);
        let wt = &tr.weights[i * 2 * kk..(i + 1) * 2 * kk];
        for (t, dwt) in dw.iter_mut().enumerate() {
            let j = base + off[t % kk];
            let f = &tr.feats[t / kk][j * c..(j + 1) * c];
            let d = &mut dpad[t / kk][j * c..(j + 1) * c];
            d.iter_mut().zip(g).for_each(|(d, &g)| *d += g * wt[t]);
            *dwt = f.iter().zip(g).map(|(a, b)| a * b).sum();
        }
        let mean: f32 = wt.iter().zip(&dw).map(|(a, b)| a * b).sum();
        let dl = &mut dlogits.v[i * 2 * kk..(i + 1) * 2 * kk];
        for t in 0..2 * kk {
            dl[t] = wt[t] * (dw[t] - mean);
        }
        if let (Some(rf), Some(dr)) = (&tr.reference, dref.as_mut()) {
            similarity_back(tr, (rf, dr), &mut dpad, (i, base, c), &off, dl);
        }
    }
    let interior = |d: &[f32]| {
        let mut m = Map::zeros(h, w, c);
        for (y, row) in m.v.chunks_exact_mut(w * c).enumerate() {
            row.copy_from_slice(&d[((y + r) * wp + r) * c..][..w * c]);
        }
        m
    };
    let (mut dfo, mut dfs) = (interior(&dpad[0]), interior(&dpad[1]));
    match (dref, &tr.reference) {
        (Some(dr), Some(_)) => {
            reference_back(&dr, &mut dfo, &mut dfs, tr);
            (dfo, dfs, None)
        }
        _ => (dfo, dfs, Some(dlogits)),
    }
}

/// Fixed kernel: the logit gradient `dl` of pixel `i` through the similarity
/// -|f - ref|^2 / (2 C) to the tap features (`dpad`) and to the reference (`dr`).
fn similarity_back(
    tr: &KernelTrace,
    (rf, dr): (&Map, &mut Map),
    dpad: &mut [Vec<f32>; 2],
    (i, base, c): (usize, usize, usize),
    off: &[usize],
    dl: &[f32],
) {
    let kk = tr.k * tr.k;
    let rv = rf.px(i);
    for (t, &g) in dl.iter().enumerate() {
        let j = base + off[t % kk];
        let scale = -g / c as f32;
        let f = &tr.feats[t / kk][j * c..(j + 1) * c];
        let d = &mut dpad[t / kk][j * c..(j + 1) * c];
        let drp = &mut dr.v[i * c..(i + 1) * c];
        for ((d, dr), (&u, &v)) in d.iter_mut().zip(drp).zip(f.iter().zip(rv)) {
            *d += scale * (u - v);
            *dr -= scale * (u - v);
        }
    }
}

/// The reference's gradient split onto the branches: ref = (fo po + fs ps) / max(po + ps, 1e-6).
fn reference_back(dr: &Map, dfo: &mut Map, dfs: &mut Map, tr: &KernelTrace) {
    let c = dr.c;
    let (po, ps) = tr
        .presence
        .as_ref()
        .expect("fixed kernel keeps the presence");
    for i in 0..dr.h * dr.w {
        let den = (po[i] + ps[i]).max(1e-6);
        let (a, b) = (po[i] / den, ps[i] / den);
        let g = dr.px(i);
        for ((o, s), &g) in dfo.v[i * c..(i + 1) * c]
            .iter_mut()
            .zip(&mut dfs.v[i * c..(i + 1) * c])
            .zip(g)
        {
            *o += g * a;
            *s += g * b;
        }
    }
}

/// The gradient of `native_unet::pool2` (2x2 mean): each input pixel gets a quarter of its
/// cell's.
pub(crate) fn pool2_back(d: &Map) -> Map {
    let (h, w, c) = (2 * d.h, 2 * d.w, d.c);
    let mut out = Map::zeros(h, w, c);
    for (i, px) in out.v.chunks_exact_mut(c).enumerate() {
        let (r, x) = (i / w, i % w);
        let src = d.px((r / 2) * d.w + x / 2);
        px.iter_mut().zip(src).for_each(|(o, &g)| *o = g * 0.25);
    }
    out
}

/// The gradient of `native_unet::up2` (nearest upsampling): each coarse pixel sums its four.
pub(crate) fn up2_back(d: &Map) -> Map {
    let (h, w, c) = (d.h / 2, d.w / 2, d.c);
    let mut out = Map::zeros(h, w, c);
    for (i, px) in d.v.chunks_exact(c).enumerate() {
        let (r, x) = (i / d.w, i % d.w);
        let o = &mut out.v[((r / 2) * w + x / 2) * c..][..c];
        o.iter_mut().zip(px).for_each(|(o, &g)| *o += g);
    }
    out
}
