//! Native CPU twin of [`super::temporal`]: the temporal attention encoders evaluated pixel by
//! pixel with plain loops (weights copied from burn), operation for operation as the burn
//! module, so the outputs equal burn's to float rounding (tests in `learned/mod.rs`).

use burn::nn::conv::Conv2d;
use rayon::prelude::*;

use super::model::{FusionNet, NetSpec};
use super::native::{values, Map};
use super::temporal::{Ltae, TemporalSpec, KEY, MASKED};

/// A 1 x 1 convolution as a dense layer, weights `[input][output]`.
#[derive(Debug, Clone)]
struct Dense {
    cin: usize,
    cout: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Dense {
    fn from_burn(c: &Conv2d) -> Dense {
        let [cout, cin, k, _] = c.weight.val().dims();
        assert_eq!(k, 1, "a 1 x 1 convolution");
        let wv = values(c.weight.val());
        let mut w = vec![0f32; cin * cout];
        for o in 0..cout {
            for i in 0..cin {
                w[i * cout + o] = wv[o * cin + i];
            }
        }
        let b = c
            .bias
            .as_ref()
            .map_or_else(|| vec![0f32; cout], |b| values(b.val()));
        Dense { cin, cout, w, b }
    }

    /// `out = W x + b`.
    fn apply(&self, x: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.b);
        for (i, &xi) in x[..self.cin].iter().enumerate() {
            let row = &self.w[i * self.cout..(i + 1) * self.cout];
            out.iter_mut().zip(row).for_each(|(o, &w)| *o += xi * w);
        }
    }
}

/// One modality's temporal attention encoder.
#[derive(Debug, Clone)]
struct NativeLtae {
    proj: Dense,
    key: Dense,
    query: Vec<f32>,
    out: Dense,
    pe: Vec<f32>,
    t: TemporalSpec,
}

/// Per-pixel buffers.
struct Scratch {
    e: Vec<f32>,
    keys: Vec<f32>,
    a: Vec<f32>,
    o: Vec<f32>,
}

impl NativeLtae {
    fn from_burn(l: &Ltae, t: TemporalSpec) -> NativeLtae {
        NativeLtae {
            proj: Dense::from_burn(&l.proj),
            key: Dense::from_burn(&l.key),
            query: values(l.query.val()),
            out: Dense::from_burn(&l.out),
            pe: t.positions(),
            t,
        }
    }

    fn scratch(&self) -> Scratch {
        let (s, d, h) = (self.t.steps, self.t.dim, self.t.heads);
        Scratch {
            e: vec![0.0; s * d],
            keys: vec![0.0; s * h * KEY],
            a: vec![0.0; s * h],
            o: vec![0.0; d],
        }
    }

    /// One pixel: `x` = steps x bands values, `observed` = one flag per step -> `out` (`dim`).
    fn pixel(&self, x: &[f32], observed: &[f32], sc: &mut Scratch, out: &mut [f32]) {
        let (s, d, heads) = (self.t.steps, self.t.dim, self.t.heads);
        let bands = self.proj.cin;
        for t in 0..s {
            let e = &mut sc.e[t * d..(t + 1) * d];
            self.proj.apply(&x[t * bands..(t + 1) * bands], e);
            e.iter_mut()
                .zip(&self.pe[t * d..(t + 1) * d])
                .for_each(|(e, p)| *e += p);
            let k = &mut sc.keys[t * heads * KEY..(t + 1) * heads * KEY];
            self.key.apply(&sc.e[t * d..(t + 1) * d], k);
        }
        let scale = 1.0 / (KEY as f32).sqrt();
        for h in 0..heads {
            let q = &self.query[h * KEY..(h + 1) * KEY];
            let mut max = f32::NEG_INFINITY;
            for (t, &seen) in observed[..s].iter().enumerate() {
                let k = &sc.keys[(t * heads + h) * KEY..(t * heads + h + 1) * KEY];
                let score = k.iter().zip(q).map(|(a, b)| a * b).sum::<f32>() * scale;
                let v = if seen < 0.5 { MASKED } else { score };
                sc.a[t * heads + h] = v;
                max = max.max(v);
            }
            let mut total = 0.0;
            for t in 0..s {
                let e = (sc.a[t * heads + h] - max).exp();
                sc.a[t * heads + h] = e;
                total += e;
            }
            let dh = d / heads;
            let o = &mut sc.o[h * dh..(h + 1) * dh];
            o.fill(0.0);
            for t in 0..s {
                let a = sc.a[t * heads + h] / total;
                let e = &sc.e[t * d + h * dh..t * d + (h + 1) * dh];
                o.iter_mut().zip(e).for_each(|(o, &e)| *o += a * e);
            }
        }
        self.out.apply(&sc.o, out);
        out.iter_mut().for_each(|v| *v = v.max(0.0));
    }
}

/// The temporal encoders of a season network.
#[derive(Debug, Clone)]
pub(crate) struct NativeTemporal {
    opt: Option<NativeLtae>,
    sar: Option<NativeLtae>,
    spec: NetSpec,
}

impl NativeTemporal {
    /// The temporal encoders of `net`, None without.
    pub(crate) fn from_burn(net: &FusionNet) -> Option<NativeTemporal> {
        let (tm, t) = (net.temporal.as_ref()?, net.spec().temporal?);
        Some(NativeTemporal {
            opt: tm.opt.as_ref().map(|l| NativeLtae::from_burn(l, t)),
            sar: tm.sar.as_ref().map(|l| NativeLtae::from_burn(l, t)),
            spec: net.spec(),
        })
    }

    /// A network input (`assemble`'s layout) -> the layout of [`NetSpec::encoded`]: each
    /// branch's steps and flags replaced by its temporal latent and observed fraction (zeros
    /// for a branch the fusion ignores), features and presence flags kept.
    pub(crate) fn apply(&self, x: &Map) -> Map {
        let enc = self.spec.encoded();
        let t = self.spec.temporal.expect("a temporal network");
        let mut out = Map::zeros(x.h, x.w, enc.in_ch());
        let scratch = |l: &Option<NativeLtae>| l.as_ref().map(NativeLtae::scratch);
        out.v
            .par_chunks_mut(x.w * enc.in_ch())
            .zip(x.v.par_chunks(x.w * x.c))
            .for_each_init(
                || (scratch(&self.opt), scratch(&self.sar)),
                |(sa, sb), (orow, xrow)| {
                    let pixels = orow
                        .chunks_exact_mut(enc.in_ch())
                        .zip(xrow.chunks_exact(x.c));
                    for (o, px) in pixels {
                        let (oo, os) = o.split_at_mut(enc.opt_ch());
                        let (po, ps) = px.split_at(self.spec.opt_ch());
                        branch(&self.opt, sa.as_mut(), po, oo, self.spec.optical, &t);
                        branch(&self.sar, sb.as_mut(), ps, os, self.spec.sar, &t);
                    }
                },
            );
        out
    }
}

/// One branch of one pixel: `px` = values (`n` = steps x bands), flags, features, presence ->
/// `o` = temporal latent, observed fraction, features, presence (latent and fraction 0 for a
/// branch without an encoder, which its fusion ignores).
fn branch(
    l: &Option<NativeLtae>,
    sc: Option<&mut Scratch>,
    px: &[f32],
    o: &mut [f32],
    n: usize,
    t: &TemporalSpec,
) {
    let (d, steps) = (t.dim, t.steps);
    let flags = &px[n..n + steps];
    if let (Some(l), Some(sc)) = (l, sc) {
        l.pixel(&px[..n], flags, sc, &mut o[..d]);
        o[d] = flags.iter().sum::<f32>() / steps as f32;
    }
    o[d + 1..].copy_from_slice(&px[n + steps..]);
}
