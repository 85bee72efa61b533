//! Spatial train/test split in square blocks, so that no test pixel has a training neighbour
//! in the same block.

use crate::rng::{hash4, unit};

/// Which blocks of a scene are held out for testing; pixels of vector reference features
/// follow their feature's side instead (all pixels of one polygon on one side).
#[derive(Debug, Clone)]
pub struct BlockSplit {
    block: usize,
    blocks_x: usize,
    test: Vec<bool>,
    sides: Option<std::sync::Arc<PixelSides>>,
    subset: Option<(u64, f64)>,
}

/// A side (train or test) for some pixels of a scene: two bits per pixel.
#[derive(Debug, Clone)]
pub struct PixelSides {
    width: usize,
    set: Vec<u64>,
    test: Vec<u64>,
}

impl PixelSides {
    /// No pixel has a side yet; `width` columns, `n` pixels.
    pub fn new(width: usize, n: usize) -> Self {
        let words = n.div_ceil(64);
        PixelSides {
            width,
            set: vec![0; words],
            test: vec![0; words],
        }
    }

    /// Puts linear pixel `i` on the test side (`test`) or the training side.
    pub fn set(&mut self, i: usize, test: bool) {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        self.set[w] |= b;
        if test {
            self.test[w] |= b;
        } else {
            self.test[w] &= !b;
        }
    }

    /// The side of linear pixel `i` (Some(true) = test), None when it has none.
    #[inline]
    pub fn get(&self, i: usize) -> Option<bool> {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        (self.set.get(w)? & b != 0).then(|| self.test[w] & b != 0)
    }
}

impl BlockSplit {
    /// Assigns round(`test_fraction` x blocks) blocks (at least one, and at least one left
    /// for training) to the test set, chosen by a seeded hash of the block position.
    pub fn new(width: usize, height: usize, block: usize, test_fraction: f64, seed: u64) -> Self {
        let bx = width.div_ceil(block);
        let by = height.div_ceil(block);
        let n = bx * by;
        let mut order: Vec<(u64, usize)> = (0..n)
            .map(|i| (hash4(seed, 0xB10C, (i / bx) as u64, (i % bx) as u64, 0), i))
            .collect();
        order.sort_unstable();
        let n_test = if n < 2 {
            0
        } else {
            ((test_fraction * n as f64).round() as usize).clamp(1, n - 1)
        };
        let mut test = vec![false; n];
        for &(_, i) in order.iter().take(n_test) {
            test[i] = true;
        }
        BlockSplit {
            block,
            blocks_x: bx,
            test,
            sides: None,
            subset: None,
        }
    }

    /// The same split training on a share `fraction` of its training pixels, drawn per pixel
    /// by a hash of `seed`: for one seed the pixels kept at a smaller fraction are among
    /// those kept at a larger one (nested subsets). A fraction of 1 keeps every pixel.
    pub fn with_training_fraction(mut self, fraction: f64, seed: u64) -> Self {
        self.subset = (fraction < 1.0).then_some((seed, fraction));
        self
    }

    /// Whether pixel (row, col) may give a training sample: on the training side and in the
    /// training subset.
    #[inline]
    pub fn trains(&self, row: usize, col: usize) -> bool {
        !self.is_test(row, col)
            && self
                .subset
                .is_none_or(|(seed, f)| unit(hash4(seed, 0x5B5E7, row as u64, col as u64, 2)) < f)
    }

    /// The same split with per-pixel sides that take precedence over the blocks.
    pub fn with_sides(mut self, sides: Option<std::sync::Arc<PixelSides>>) -> Self {
        self.sides = sides;
        self
    }

    /// Whether pixel (row, col) is on the test side: its reference feature's side, or else
    /// whether it lies in a test block.
    #[inline]
    pub fn is_test(&self, row: usize, col: usize) -> bool {
        if let Some(t) = self.sides.as_ref().and_then(|s| s.get(row * s.width + col)) {
            return t;
        }
        self.in_test_block(row, col)
    }

    /// Whether pixel (row, col) lies in a test block.
    #[inline]
    pub fn in_test_block(&self, row: usize, col: usize) -> bool {
        self.test[(row / self.block) * self.blocks_x + col / self.block]
    }

    /// The index of the block holding pixel (row, col) (row-major over blocks).
    #[inline]
    pub fn block_of(&self, row: usize, col: usize) -> u32 {
        ((row / self.block) * self.blocks_x + col / self.block) as u32
    }

    /// (train blocks, test blocks).
    pub fn counts(&self) -> (usize, usize) {
        let t = self.test.iter().filter(|&&b| b).count();
        (self.test.len() - t, t)
    }
}

/// Deterministic Bernoulli choice of a training pixel with probability `rate`.
#[inline]
pub fn sampled(seed: u64, row: usize, col: usize, rate: f64) -> bool {
    rate >= 1.0 || unit(hash4(seed, 0x5A3F, row as u64, col as u64, 1)) < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_subsets_are_nested_and_of_the_asked_size() {
        let s = BlockSplit::new(200, 200, 50, 0.25, 3);
        let kept = |f: f64| -> Vec<(usize, usize)> {
            let t = s.clone().with_training_fraction(f, 9);
            (0..200)
                .flat_map(|r| (0..200).map(move |c| (r, c)))
                .filter(|&(r, c)| t.trains(r, c))
                .collect()
        };
        let (all, tenth, third) = (kept(1.0), kept(0.1), kept(0.3));
        assert_eq!(all.len(), 30_000);
        assert!(
            tenth.iter().all(|p| third.contains(p)),
            "subsets must be nested"
        );
        assert!(
            (tenth.len() as f64 / 3000.0 - 1.0).abs() < 0.08,
            "{}",
            tenth.len()
        );
        assert!(
            (third.len() as f64 / 9000.0 - 1.0).abs() < 0.05,
            "{}",
            third.len()
        );
        assert!(tenth.iter().all(|&(r, c)| !s.is_test(r, c)));
    }

    #[test]
    fn split_has_both_sets_and_is_deterministic() {
        let a = BlockSplit::new(300, 200, 32, 0.3, 7);
        let b = BlockSplit::new(300, 200, 32, 0.3, 7);
        let (tr, te) = a.counts();
        assert!(tr > 0 && te > 0);
        assert_eq!(te, (0.3f64 * 70.0).round() as usize);
        for r in (0..200).step_by(13) {
            for c in (0..300).step_by(11) {
                assert_eq!(a.is_test(r, c), b.is_test(r, c));
            }
        }
    }

    #[test]
    fn pixels_of_one_block_share_a_side() {
        let s = BlockSplit::new(128, 128, 16, 0.5, 1);
        for br in 0..8 {
            for bc in 0..8 {
                let first = s.is_test(br * 16, bc * 16);
                assert!((0..16).all(|d| s.is_test(br * 16 + d, bc * 16 + 15 - d) == first));
            }
        }
    }
}
