//! The multi-scale encoder (`encoder = "unet"`): a small U-Net whose latent stays on the 10 m
//! grid, so every fusion strategy takes it as it takes the small encoder's.
//!
//! Four levels (full, 1/2, 1/4, 1/8 resolution), two 3x3 convolutions with ReLU per level,
//! 2x2 average pooling down, nearest-neighbour upsampling up, each decoder level a 3x3
//! convolution over the upsampled map concatenated with the encoder map of its level (skip
//! connection). Channels `w, 2w, 2w, 2w`; output `w`. The input is padded with zeros to a
//! multiple of [`UNET_STRIDE`] at the bottom and right and the output cropped back; inference
//! aligns each window to the scene's [`UNET_STRIDE`] lattice (see `predict.rs`), so a tile's
//! pooling cells are the untiled run's.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::ops::PadMode;

use super::model::conv;

/// Levels below full resolution.
pub const UNET_LEVELS: usize = 3;
/// Downsampling factor of the deepest level (2^[`UNET_LEVELS`]): windows align to it.
pub const UNET_STRIDE: usize = 1 << UNET_LEVELS;
/// Receptive radius in pixels, rounded up: 2 (level 0), 1 + 4 (level 1), 2 + 8 (level 2),
/// 4 + 16 (level 3), then per decoder level half a coarse cell for the upsampling and its
/// convolution (4 + 4, 2 + 2, 1 + 1): 51; 56 leaves room for where a pooling cell starts.
pub const UNET_RADIUS: usize = 56;

/// Channels of level `l` for latent width `w`.
pub fn level_channels(w: usize, l: usize) -> usize {
    if l == 0 {
        w
    } else {
        2 * w
    }
}

/// Two 3x3 convolutions with ReLU.
#[derive(Module, Debug)]
pub struct ConvPair {
    pub(crate) a: Conv2d,
    pub(crate) b: Conv2d,
}

impl ConvPair {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        ConvPair {
            a: conv(cin, cout, 3, 1, device),
            b: conv(cout, cout, 3, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.b.forward(relu(self.a.forward(x))))
    }
}

/// The U-Net: `down[l]` is level `l`'s pair, `up[i]` the decoder convolution of level
/// `UNET_LEVELS - 1 - i`.
#[derive(Module, Debug)]
pub struct UNet {
    pub(crate) down: Vec<ConvPair>,
    pub(crate) up: Vec<Conv2d>,
}

/// 2x2 average pooling (even sides).
pub fn pool2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / 2, 2])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([b, c, h / 2, w / 2])
}

/// Nearest-neighbour upsampling by 2.
pub fn up2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

impl UNet {
    /// A freshly initialised U-Net from `cin` input channels to `width` latent channels.
    pub fn new(cin: usize, width: usize, device: &Device) -> Self {
        let ch = |l| level_channels(width, l);
        let down = (0..=UNET_LEVELS)
            .map(|l| ConvPair::new(if l == 0 { cin } else { ch(l - 1) }, ch(l), device))
            .collect();
        let up = (0..UNET_LEVELS)
            .rev()
            .map(|l| conv(ch(l + 1) + ch(l), ch(l), 3, 1, device))
            .collect();
        UNet { down, up }
    }

    /// `[batch, cin, h, w]` -> `[batch, width, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let (hp, wp) = (h.div_ceil(UNET_STRIDE), w.div_ceil(UNET_STRIDE));
        let (hp, wp) = (hp * UNET_STRIDE, wp * UNET_STRIDE);
        let mut y = if (hp, wp) == (h, w) {
            x
        } else {
            x.pad((0, wp - w, 0, hp - h), PadMode::Constant(0.0))
        };
        let mut skips = Vec::with_capacity(UNET_LEVELS);
        for (l, pair) in self.down.iter().enumerate() {
            if l > 0 {
                y = pool2(y);
            }
            y = pair.forward(y);
            if l < UNET_LEVELS {
                skips.push(y.clone());
            }
        }
        for conv in &self.up {
            let skip = skips.pop().expect("one skip per decoder level");
            y = relu(conv.forward(Tensor::cat(vec![up2(y), skip], 1)));
        }
        let c = y.dims()[1];
        y.slice(s![0..b, 0..c, 0..h, 0..w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t4(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    fn vals(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn pooling_averages_cells_and_upsampling_repeats_pixels() {
        // One channel, 2 x 4: cells [[0, 1], [4, 5]] and [[2, 3], [6, 7]].
        let x = t4((0..8).map(|v| v as f32).collect(), [1, 1, 2, 4]);
        assert_eq!(vals(pool2(x)), [2.5, 4.5]);
        let y = t4(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]);
        assert_eq!(
            vals(up2(y)),
            [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]
        );
        // Two channels stay apart.
        let z = t4(vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0], [1, 2, 2, 2]);
        assert_eq!(vals(pool2(z)), [1.0, 5.0]);
    }

    #[test]
    fn the_latent_keeps_the_grid_for_any_size() {
        let dev = Device::flex();
        let u = UNet::new(3, 4, &dev);
        for (h, w) in [(8, 8), (23, 30), (1, 17)] {
            let y = u.forward(Tensor::zeros([2, 3, h, w], &dev));
            assert_eq!(y.dims(), [2, 4, h, w]);
        }
    }
}
