//! The encoders' forward and backward passes on native maps (training's CPU path): the small
//! encoder (three convolutions with ReLU) and the U-Net, as `model::Encoder` and
//! `unet::UNet` compute them.

use super::grad_conv::{relu_back, ConvGrad, GradConv};
use super::grad_ops::{pool2_back, up2_back};
use super::model::Encoder;
use super::native::Map;
use super::native_unet::{crop, pad_to, pool2, to_stride, up2};
use super::unet::{UNet, UNET_LEVELS};

/// A branch's encoder with its gradient slots.
#[derive(Debug, Clone)]
pub(crate) enum TrainEncoder {
    Small(Box<[GradConv; 3]>),
    Unet {
        down: Vec<(GradConv, GradConv)>,
        up: Vec<GradConv>,
    },
}

/// What an encoder's backward pass reads: every layer's input and output.
pub(crate) enum EncTrace {
    /// The input, then each convolution's output.
    Small(Vec<Map>),
    Unet(Box<UnetTrace>),
}

/// The U-Net's activations: per level the input of its first convolution and both outputs,
/// per decoder level its input (upsampled map and skip) and output.
pub(crate) struct UnetTrace {
    h: usize,
    w: usize,
    ins: Vec<Map>,
    a: Vec<Map>,
    b: Vec<Map>,
    cats: Vec<Map>,
    outs: Vec<Map>,
}

impl TrainEncoder {
    /// The small encoder or U-Net of a branch; `slot` numbers its layers.
    pub(crate) fn from_burn(
        e: Option<&Encoder>,
        u: Option<&UNet>,
        slot: &mut impl FnMut(&burn::nn::conv::Conv2d) -> GradConv,
    ) -> Option<TrainEncoder> {
        match (e, u) {
            (Some(e), _) => Some(TrainEncoder::Small(Box::new([
                slot(&e.c1),
                slot(&e.c2),
                slot(&e.c3),
            ]))),
            (None, Some(u)) => Some(TrainEncoder::Unet {
                down: u.down.iter().map(|p| (slot(&p.a), slot(&p.b))).collect(),
                up: u.up.iter().map(&mut *slot).collect(),
            }),
            (None, None) => None,
        }
    }

    /// Every layer.
    pub(crate) fn layers(&self) -> Vec<&GradConv> {
        match self {
            TrainEncoder::Small(c) => c.iter().collect(),
            TrainEncoder::Unet { down, up } => down
                .iter()
                .flat_map(|(a, b)| [a, b])
                .chain(up.iter())
                .collect(),
        }
    }

    /// The latent of `x` and what the backward pass needs.
    pub(crate) fn forward(&self, x: &Map) -> (Map, EncTrace) {
        match self {
            TrainEncoder::Small(c) => {
                let mut acts = vec![x.clone()];
                for conv in c.iter() {
                    let y = conv.forward(acts.last().expect("input"), true);
                    acts.push(y);
                }
                (acts.last().expect("output").clone(), EncTrace::Small(acts))
            }
            TrainEncoder::Unet { down, up } => {
                let (y, t) = unet_forward(down, up, x);
                (y, EncTrace::Unet(Box::new(t)))
            }
        }
    }

    /// Adds the parameter gradients of the output gradient `dy` to `sink` (the encoder's
    /// input is data: no input gradient).
    pub(crate) fn backward(&self, tr: &EncTrace, dy: Map, sink: &mut [ConvGrad]) {
        match (self, tr) {
            (TrainEncoder::Small(c), EncTrace::Small(acts)) => {
                let mut d = dy;
                for l in (0..3).rev() {
                    relu_back(&mut d, &acts[l + 1]);
                    match c[l].back_into(&acts[l], &d, l > 0, sink) {
                        Some(dx) => d = dx,
                        None => break,
                    }
                }
            }
            (TrainEncoder::Unet { down, up }, EncTrace::Unet(t)) => {
                unet_backward(down, up, t, dy, sink)
            }
            _ => unreachable!("an encoder's trace is its own kind"),
        }
    }
}

/// `unet::UNet::forward`, keeping every activation.
fn unet_forward(down: &[(GradConv, GradConv)], up: &[GradConv], x: &Map) -> (Map, UnetTrace) {
    let (h, w) = (x.h, x.w);
    let mut y = to_stride(x);
    let (hp, wp) = (y.h, y.w);
    let mut t = UnetTrace {
        h,
        w,
        ins: Vec::new(),
        a: Vec::new(),
        b: Vec::new(),
        cats: Vec::new(),
        outs: Vec::new(),
    };
    for (l, (ca, cb)) in down.iter().enumerate() {
        if l > 0 {
            y = pool2(&y);
        }
        let a = ca.forward(&y, true);
        t.ins.push(y);
        y = cb.forward(&a, true);
        t.a.push(a);
        t.b.push(y.clone());
    }
    for (i, conv) in up.iter().enumerate() {
        let skip = &t.b[UNET_LEVELS - 1 - i];
        let c = Map::cat(&[&up2(&y), skip], &[]);
        y = conv.forward(&c, true);
        t.cats.push(c);
        t.outs.push(y.clone());
    }
    let out = if (hp, wp) == (h, w) {
        y
    } else {
        crop(&y, h, w)
    };
    (out, t)
}

/// The U-Net's backward pass: decoder levels from the top, then encoder levels from the
/// deepest, each level's output gradient the sum of its skip's and its pooled successor's.
fn unet_backward(
    down: &[(GradConv, GradConv)],
    up: &[GradConv],
    t: &UnetTrace,
    dy: Map,
    sink: &mut [ConvGrad],
) {
    let (hp, wp) = (t.b[0].h, t.b[0].w);
    let mut d = if (hp, wp) == (t.h, t.w) {
        dy
    } else {
        pad_to(&dy, hp, wp)
    };
    let mut dskip: Vec<Option<Map>> = vec![None; UNET_LEVELS];
    for i in (0..up.len()).rev() {
        relu_back(&mut d, &t.outs[i]);
        let dc = up[i]
            .back_into(&t.cats[i], &d, true, sink)
            .expect("asked for");
        let l = UNET_LEVELS - 1 - i;
        let ch_up = t.cats[i].c - t.b[l].c;
        dskip[l] = Some(dc.channels(ch_up..t.cats[i].c));
        d = up2_back(&dc.channels(0..ch_up));
    }
    for l in (0..down.len()).rev() {
        if let Some(s) = dskip.get(l).and_then(|s| s.as_ref()) {
            d = d.zip(s, |a, b| a + b);
        }
        let (ca, cb) = &down[l];
        relu_back(&mut d, &t.b[l]);
        let mut da = cb.back_into(&t.a[l], &d, true, sink).expect("asked for");
        relu_back(&mut da, &t.a[l]);
        match ca.back_into(&t.ins[l], &da, l > 0, sink) {
            Some(din) => d = pool2_back(&din),
            None => break,
        }
    }
}
