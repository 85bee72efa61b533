//! The temporal encoder of a season network (`temporal = "ltae"`): a lightweight temporal
//! attention encoder in the style of L-TAE (Garnot & Landrieu 2020), one per modality, run on
//! every pixel before the spatial encoders.
//!
//! Per pixel, step t's bands x_t are projected to `dim` channels (a shared 1 x 1 convolution)
//! and a fixed sinusoidal encoding of the step's day in the season is added: e_t. Each of
//! `heads` heads scores every step with a learned master query, s_{t,h} = <K_h e_t, q_h> /
//! sqrt([`KEY`]), and takes a softmax over the steps **that were observed** at that pixel: a
//! step with no valid observation (cloud, nodata, no acquisition) gets weight exactly zero, so
//! no gap-filled value is seen as real. Head h's output is sum_t a_{t,h} e_t restricted to its
//! `dim / heads` channels; the heads' outputs are concatenated and passed through a 1 x 1
//! convolution with ReLU. Beside the latent the branch passes on the fraction of its steps
//! observed at the pixel, so the heads can widen their variance (and the precision weighting
//! lean on the other modality) where dates were lost. A pixel with no observed step at all
//! attends uniformly to zeros and its modality's presence flag is 0, so the fusion ignores it.
//!
//! Input layout of a temporal branch (see `input.rs`): `steps x bands` values, step by step,
//! then one observed flag per step.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use super::model::conv;

/// Channels of a key.
pub const KEY: usize = 8;
/// The score of a step that was not observed (its softmax weight is exactly 0 unless no step
/// was observed).
pub const MASKED: f32 = -1.0e9;

/// Shape of the temporal encoders of a season network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemporalSpec {
    /// Steps of the season's temporal grid.
    pub steps: usize,
    /// Days per step (the positional encoding's unit).
    pub step_days: usize,
    /// Channels of each modality's temporal latent.
    pub dim: usize,
    /// Attention heads (`dim` is a multiple of it).
    pub heads: usize,
}

impl TemporalSpec {
    /// The positional encoding `[steps][dim]`: sin / cos of the day of each step's centre in
    /// the season at wavelengths 1000^(2i / dim) days.
    pub fn positions(&self) -> Vec<f32> {
        let mut pe = vec![0f32; self.steps * self.dim];
        for t in 0..self.steps {
            let day = (t as f64 + 0.5) * self.step_days as f64;
            for j in 0..self.dim {
                let rate = 1000f64.powf((2 * (j / 2)) as f64 / self.dim as f64);
                let a = day / rate;
                pe[t * self.dim + j] = if j % 2 == 0 { a.sin() } else { a.cos() } as f32;
            }
        }
        pe
    }
}

/// One modality's temporal attention encoder.
#[derive(Module, Debug)]
pub struct Ltae {
    /// Per-step projection, bands -> dim (1 x 1).
    pub(crate) proj: Conv2d,
    /// Keys, dim -> heads x [`KEY`] (1 x 1).
    pub(crate) key: Conv2d,
    /// The master query of each head `[heads, KEY]`.
    pub(crate) query: Param<Tensor<2>>,
    /// Output layer, dim -> dim (1 x 1, ReLU).
    pub(crate) out: Conv2d,
}

impl Ltae {
    /// A freshly initialised encoder of `bands` per step.
    pub fn new(bands: usize, t: &TemporalSpec, device: &Device) -> Self {
        Ltae {
            proj: conv(bands, t.dim, 1, 1, device),
            key: conv(t.dim, t.heads * KEY, 1, 1, device),
            query: Param::from_tensor(Tensor::random(
                [t.heads, KEY],
                Distribution::Normal(0.0, 1.0),
                device,
            )),
            out: conv(t.dim, t.dim, 1, 1, device),
        }
    }

    /// `x` `[batch, steps x bands, h, w]` and `observed` `[batch, steps, h, w]` (1 observed,
    /// 0 not) -> the temporal latent `[batch, dim, h, w]`.
    pub fn forward(&self, x: Tensor<4>, observed: Tensor<4>, t: &TemporalSpec) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let (s, dim, heads) = (t.steps, t.dim, t.heads);
        let device = x.device();
        let pe =
            Tensor::<1>::from_floats(t.positions().as_slice(), &device).reshape([1, s, dim, 1, 1]);
        let e = self
            .proj
            .forward(x.reshape([b * s, c / s, h, w]))
            .reshape([b, s, dim, h, w])
            + pe;
        let keys = self
            .key
            .forward(e.clone().reshape([b * s, dim, h, w]))
            .reshape([b, s, heads, KEY, h, w]);
        let q = self.query.val().reshape([1, 1, heads, KEY, 1, 1]);
        let scores = (keys * q).sum_dim(3).reshape([b, s, heads, h, w]) / (KEY as f64).sqrt();
        let hidden = observed
            .reshape([b, s, 1, h, w])
            .lower_elem(0.5)
            .expand([b, s, heads, h, w]);
        let a = softmax(scores.mask_fill(hidden, MASKED), 1);
        let v = e.reshape([b, s, heads, dim / heads, h, w]);
        let o = (v * a.reshape([b, s, heads, 1, h, w]))
            .sum_dim(1)
            .reshape([b, dim, h, w]);
        relu(self.out.forward(o))
    }
}

/// The temporal encoders of a season network (absent for a modality its fusion ignores).
#[derive(Module, Debug)]
pub struct Temporal {
    pub(crate) opt: Option<Ltae>,
    pub(crate) sar: Option<Ltae>,
}
