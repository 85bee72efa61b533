//! The fusion operators' and the heads' forward and backward passes on native maps (training's
//! CPU path), as `model::FusionNet::latent` and the heads compute them.

use super::grad_conv::{relu_back, ConvGrad, GradConv};
use super::grad_ops::{join_head, kernel_fuse, kernel_fuse_back, split_head, KernelTrace, Out};
use super::model::Fusion;
use super::native::Map;

/// What the joint expert's backward pass needs.
pub(crate) enum JointTrace {
    Add,
    Concat {
        cat: Map,
        out: Map,
    },
    Bilinear {
        a: Map,
        b: Map,
    },
    Attention {
        cat: Map,
        g: Map,
    },
    Kernel {
        cat: Option<Map>,
        tr: Box<KernelTrace>,
    },
}

/// The layers a joint expert may use.
pub(crate) struct JointLayers<'a> {
    pub(crate) fusion: Fusion,
    pub(crate) kernel: usize,
    pub(crate) mix: Option<&'a GradConv>,
    pub(crate) bil: Option<&'a (GradConv, GradConv)>,
}

impl JointLayers<'_> {
    fn mix(&self) -> &GradConv {
        self.mix.expect("mix layer present")
    }

    /// The joint latent of `fo` and `fs` (None for late fusion).
    pub(crate) fn forward(
        &self,
        (fo, fs): (&Map, &Map),
        (po, ps): (&[f32], &[f32]),
    ) -> Option<(Map, JointTrace)> {
        let with_flags = || Map::cat(&[fo, fs], &[po, ps]);
        Some(match self.fusion {
            Fusion::Add => (fo.zip(fs, |a, b| a + b), JointTrace::Add),
            Fusion::Concat => {
                let cat = Map::cat(&[fo, fs], &[]);
                let out = self.mix().forward(&cat, true);
                (out.clone(), JointTrace::Concat { cat, out })
            }
            Fusion::Bilinear => {
                let (ca, cb) = self.bil.expect("bilinear layers present");
                let (a, b) = (ca.forward(fo, false), cb.forward(fs, false));
                (a.zip(&b, |x, y| x * y), JointTrace::Bilinear { a, b })
            }
            Fusion::Attention => {
                let cat = with_flags();
                let mut g = self.mix().forward(&cat, false);
                g.v.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
                let mut j = fo.clone();
                for ((o, &g), &s) in j.v.iter_mut().zip(&g.v).zip(&fs.v) {
                    *o = *o * g + s * (1.0 - g);
                }
                (j, JointTrace::Attention { cat, g })
            }
            Fusion::LearnedKernel => {
                let cat = with_flags();
                let logits = self.mix().forward(&cat, false);
                let (j, tr) = kernel_fuse((fo, fs), (po, ps), Some(&logits), self.kernel);
                let tr = Box::new(tr);
                (j, JointTrace::Kernel { cat: Some(cat), tr })
            }
            Fusion::FixedKernel => {
                let (j, tr) = kernel_fuse((fo, fs), (po, ps), None, self.kernel);
                let tr = Box::new(tr);
                (j, JointTrace::Kernel { cat: None, tr })
            }
            Fusion::Late | Fusion::Early | Fusion::OpticalOnly | Fusion::SarOnly => return None,
        })
    }

    /// Adds the gradients of the joint latent's gradient `dj` to `dfo`, `dfs` and `sink`.
    pub(crate) fn backward(
        &self,
        tr: &JointTrace,
        (fo, fs): (&Map, &Map),
        mut dj: Map,
        (dfo, dfs): (&mut Map, &mut Map),
        sink: &mut [ConvGrad],
    ) {
        let w = fo.c;
        let add = |d: &mut Map, g: &Map| d.v.iter_mut().zip(&g.v).for_each(|(a, b)| *a += b);
        let split = |dcat: Map, dfo: &mut Map, dfs: &mut Map| {
            add(dfo, &dcat.channels(0..w));
            add(dfs, &dcat.channels(w..2 * w));
        };
        match tr {
            JointTrace::Add => {
                add(dfo, &dj);
                add(dfs, &dj);
            }
            JointTrace::Concat { cat, out } => {
                relu_back(&mut dj, out);
                split(self.back(cat, &dj, sink), dfo, dfs);
            }
            JointTrace::Bilinear { a, b } => {
                let (ca, cb) = self.bil.expect("bilinear layers present");
                let da = dj.zip(b, |d, y| d * y);
                let db = dj.zip(a, |d, x| d * x);
                add(dfo, &ca.back_into(fo, &da, true, sink).expect("asked for"));
                add(dfs, &cb.back_into(fs, &db, true, sink).expect("asked for"));
            }
            JointTrace::Attention { cat, g } => {
                let mut dg = Map::zeros(dj.h, dj.w, w);
                for i in 0..dj.v.len() {
                    let (d, gv) = (dj.v[i], g.v[i]);
                    dfo.v[i] += d * gv;
                    dfs.v[i] += d * (1.0 - gv);
                    dg.v[i] = d * (fo.v[i] - fs.v[i]) * gv * (1.0 - gv);
                }
                split(self.back(cat, &dg, sink), dfo, dfs);
            }
            JointTrace::Kernel { cat, tr } => {
                let (go, gs, dlogits) = kernel_fuse_back(tr, &dj);
                add(dfo, &go);
                add(dfs, &gs);
                if let (Some(cat), Some(dl)) = (cat, dlogits) {
                    split(self.back(cat, &dl, sink), dfo, dfs);
                }
            }
        }
    }

    fn back(&self, cat: &Map, d: &Map, sink: &mut [ConvGrad]) -> Map {
        self.mix().back_into(cat, d, true, sink).expect("asked for")
    }
}

/// What a head's backward pass needs.
pub(crate) struct HeadTrace {
    hid: Map,
    mask: Option<Map>,
    z: Map,
    raw: Map,
}

/// A head on latent `m` with the dropout `mask` of its hidden channels (None: no dropout).
pub(crate) fn head_forward(
    (hidden, out): &(GradConv, GradConv),
    m: &Map,
    mask: Option<Map>,
) -> (Out, HeadTrace) {
    let hid = hidden.forward(m, true);
    let z = match &mask {
        Some(k) => hid.zip(k, |a, b| a * b),
        None => hid.clone(),
    };
    let raw = out.forward(&z, false);
    (split_head(&raw), HeadTrace { hid, mask, z, raw })
}

/// The head's backward pass: from d/dmu and d/dlogvar to d/d(latent), parameter gradients
/// into `sink`.
pub(crate) fn head_backward(
    (hidden, out): &(GradConv, GradConv),
    m: &Map,
    tr: &HeadTrace,
    d: &(Map, Vec<f32>),
    sink: &mut [ConvGrad],
) -> Map {
    let draw = join_head(&tr.raw, d);
    let dz = out.back_into(&tr.z, &draw, true, sink).expect("asked for");
    let mut dh = match &tr.mask {
        Some(k) => dz.zip(k, |a, b| a * b),
        None => dz,
    };
    relu_back(&mut dh, &tr.hid);
    hidden.back_into(m, &dh, true, sink).expect("asked for")
}
