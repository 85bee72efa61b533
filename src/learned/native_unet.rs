//! [`super::unet::UNet`] on [`native`](super::native)'s pixel-major maps: the same zero
//! padding to the [`UNET_STRIDE`] lattice, 2x2 average pooling, nearest upsampling, skip
//! concatenation and crop, operation for operation.

use rayon::prelude::*;

use super::native::{Conv, Map};
use super::unet::{UNet, UNET_LEVELS, UNET_STRIDE};

/// The U-Net's weights in native layout.
#[derive(Debug, Clone)]
pub struct NativeUNet {
    down: Vec<(Conv, Conv)>,
    up: Vec<Conv>,
}

/// `m` inside a zero border on the bottom and right, `hp` x `wp` pixels.
pub(crate) fn pad_to(m: &Map, hp: usize, wp: usize) -> Map {
    let mut out = Map::zeros(hp, wp, m.c);
    out.v
        .par_chunks_mut(wp * m.c)
        .take(m.h)
        .zip(m.v.par_chunks(m.w * m.c))
        .for_each(|(o, x)| o[..m.w * m.c].copy_from_slice(x));
    out
}

/// The top-left `h` x `w` pixels of `m`.
pub(crate) fn crop(m: &Map, h: usize, w: usize) -> Map {
    let mut out = Map::zeros(h, w, m.c);
    out.v
        .par_chunks_mut(w * m.c)
        .zip(m.v.par_chunks(m.w * m.c))
        .for_each(|(o, x)| o.copy_from_slice(&x[..w * m.c]));
    out
}

/// `m` padded with zeros at the bottom and right to the [`UNET_STRIDE`] lattice (a copy when
/// it already lies on it).
pub(crate) fn to_stride(m: &Map) -> Map {
    let (hp, wp) = (
        m.h.div_ceil(UNET_STRIDE) * UNET_STRIDE,
        m.w.div_ceil(UNET_STRIDE) * UNET_STRIDE,
    );
    if (hp, wp) == (m.h, m.w) {
        m.clone()
    } else {
        pad_to(m, hp, wp)
    }
}

/// 2x2 average pooling (even sides): the mean of each cell's two rows' column means, as
/// burn's `mean_dim(5)` then `mean_dim(3)`.
pub(crate) fn pool2(m: &Map) -> Map {
    let (h, w, c) = (m.h / 2, m.w / 2, m.c);
    let mut out = Map::zeros(h, w, c);
    out.v
        .par_chunks_mut(w * c)
        .enumerate()
        .for_each(|(r, row)| {
            let at = |rr: usize, cc: usize, ch: usize| m.v[(rr * m.w + cc) * c + ch];
            for (x, o) in row.chunks_exact_mut(c).enumerate() {
                for (ch, o) in o.iter_mut().enumerate() {
                    let top = (at(2 * r, 2 * x, ch) + at(2 * r, 2 * x + 1, ch)) / 2.0;
                    let bottom = (at(2 * r + 1, 2 * x, ch) + at(2 * r + 1, 2 * x + 1, ch)) / 2.0;
                    *o = (top + bottom) / 2.0;
                }
            }
        });
    out
}

/// Nearest-neighbour upsampling by 2.
pub(crate) fn up2(m: &Map) -> Map {
    let (h, w, c) = (2 * m.h, 2 * m.w, m.c);
    let mut out = Map::zeros(h, w, c);
    out.v
        .par_chunks_mut(w * c)
        .enumerate()
        .for_each(|(r, row)| {
            for (x, o) in row.chunks_exact_mut(c).enumerate() {
                let i = ((r / 2) * m.w + x / 2) * c;
                o.copy_from_slice(&m.v[i..i + c]);
            }
        });
    out
}

impl NativeUNet {
    /// Copies the weights of `u`.
    pub fn from_burn(u: &UNet) -> NativeUNet {
        NativeUNet {
            down: u
                .down
                .iter()
                .map(|p| (Conv::from_burn(&p.a), Conv::from_burn(&p.b)))
                .collect(),
            up: u.up.iter().map(Conv::from_burn).collect(),
        }
    }

    /// `UNet::forward` on a pixel-major map.
    pub fn forward(&self, x: &Map) -> Map {
        let (h, w) = (x.h, x.w);
        let mut y = to_stride(x);
        let (hp, wp) = (y.h, y.w);
        let mut skips = Vec::with_capacity(UNET_LEVELS);
        for (l, (a, b)) in self.down.iter().enumerate() {
            if l > 0 {
                y = pool2(&y);
            }
            y = b.apply(&a.apply(&y, true), true);
            if l < UNET_LEVELS {
                skips.push(y.clone());
            }
        }
        for conv in &self.up {
            let skip = skips.pop().expect("one skip per decoder level");
            y = conv.apply(&Map::cat(&[&up2(&y), &skip], &[]), true);
        }
        if (hp, wp) == (h, w) {
            y
        } else {
            crop(&y, h, w)
        }
    }
}
