//! Growing one class's regression tree of a boosting round on binned features.
//!
//! A node's histogram holds, per feature and bin, the sums of its samples' gradients and
//! hessians (in f64, summed in sample order) and their count. The root's is built from every
//! sample; below it only the smaller child's is built, the larger one's is the parent's minus
//! it. Samples of a node are a range of one index buffer, split stably in place, so every
//! bin's sums add the same samples in the same order whatever the node.

use super::{Binned, BoostedSettings, HeapTree};

/// (gradient, hessian, count) sums of a node or a bin range.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sums {
    g: f64,
    h: f64,
    n: u32,
}

impl Sums {
    fn minus(self, o: Sums) -> Sums {
        Sums {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }

    fn plus(self, o: Sums) -> Sums {
        Sums {
            g: self.g + o.g,
            h: self.h + o.h,
            n: self.n + o.n,
        }
    }

    fn score(self, l2: f64) -> f64 {
        self.g * self.g / (self.h + l2)
    }
}

/// A node's histogram: per slot (feature offset + bin) the gradient and hessian sums side by
/// side, so one sample adds both with one two-lane add, and the counts apart.
struct Hist {
    gh: Vec<[f64; 2]>,
    n: Vec<u32>,
}

impl Hist {
    fn zeros(slots: usize) -> Hist {
        Hist {
            gh: vec![[0.0; 2]; slots],
            n: vec![0; slots],
        }
    }

    fn at(&self, slot: usize) -> Sums {
        Sums {
            g: self.gh[slot][0],
            h: self.gh[slot][1],
            n: self.n[slot],
        }
    }

    /// `self - o`, slot by slot.
    fn minus(&self, o: &Hist) -> Hist {
        Hist {
            gh: self
                .gh
                .iter()
                .zip(&o.gh)
                .map(|(p, s)| [p[0] - s[0], p[1] - s[1]])
                .collect(),
            n: self.n.iter().zip(&o.n).map(|(p, s)| p - s).collect(),
        }
    }
}

/// The best split of a node: feature, last bin going left, missing side, gain.
#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    bin: usize,
    missing_left: bool,
    gain: f64,
}

/// Grows one class's tree on fixed gradients and hessians.
pub(super) struct Grower<'a> {
    pub(super) data: &'a Binned,
    pub(super) g: &'a [f32],
    pub(super) h: &'a [f32],
    pub(super) s: &'a BoostedSettings,
    /// Offset of each feature's slots in a node histogram (features + 1 entries).
    pub(super) offsets: Vec<usize>,
}

impl Grower<'_> {
    /// Per feature and bin, the sums of samples `idx`, each bin summed in the order of `idx`.
    fn histogram(&self, idx: &[u32]) -> Hist {
        let nf = self.offsets.len() - 1;
        let mut hist = Hist::zeros(self.offsets[nf]);
        let offsets = &self.offsets[..nf];
        for &i in idx {
            let i = i as usize;
            let (g, h) = (self.g[i] as f64, self.h[i] as f64);
            let row = &self.data.rows[i * nf..(i + 1) * nf];
            for (&o, &b) in offsets.iter().zip(row) {
                let slot = o + b as usize;
                debug_assert!(slot < hist.n.len());
                // SAFETY: a bin of feature f is at most its missing bin, the last of its
                // slots, so `o + b` < offsets[f + 1] <= the histogram's length.
                unsafe {
                    let e = hist.gh.get_unchecked_mut(slot);
                    e[0] += g;
                    e[1] += h;
                    *hist.n.get_unchecked_mut(slot) += 1;
                }
            }
        }
        hist
    }

    fn best_split(&self, hist: &Hist, node: Sums) -> Option<Split> {
        let (l2, min_leaf) = (self.s.l2, self.s.min_samples_leaf as u32);
        let parent = node.score(l2);
        let mut best: Option<Split> = None;
        for f in 0..self.data.edges.len() {
            let (first, last) = (self.offsets[f], self.offsets[f + 1] - 1);
            let missing = hist.at(last);
            // With no missing value both sides give the same gain, and the first wins.
            let sides: &[bool] = if missing.n == 0 {
                &[true]
            } else {
                &[true, false]
            };
            let mut left = Sums::default();
            // The last value bin cannot split (nothing would go right but missing values).
            for b in 0..(last - first).saturating_sub(1) {
                left = left.plus(hist.at(first + b));
                for &missing_left in sides {
                    let l = if missing_left {
                        left.plus(missing)
                    } else {
                        left
                    };
                    let r = node.minus(l);
                    if l.n < min_leaf || r.n < min_leaf {
                        continue;
                    }
                    let gain = l.score(l2) + r.score(l2) - parent;
                    if gain > 1e-12 && best.is_none_or(|s| gain > s.gain) {
                        best = Some(Split {
                            feature: f,
                            bin: b,
                            missing_left,
                            gain,
                        });
                    }
                }
            }
        }
        best
    }

    /// Splits node `pos` (heap index, at `depth`) holding samples `idx` with histogram
    /// `hist`; writes leaf values and the samples' raw-score updates into `update`.
    /// `scratch` holds the right-hand samples while `idx` is split.
    fn grow(&self, node: Node<'_>, hist: Hist, scratch: &mut Vec<u32>, update: &mut [f32]) {
        let Node {
            tree,
            pos,
            depth,
            idx,
        } = node;
        let sums = (0..self.offsets[1]).fold(Sums::default(), |a, s| a.plus(hist.at(s)));
        let split = (depth < self.s.max_depth)
            .then(|| self.best_split(&hist, sums))
            .flatten();
        let Some(sp) = split else {
            let v = (-sums.g / (sums.h + self.s.l2) * self.s.learning_rate) as f32;
            // A leaf above the maximum depth fills its leftmost descendant leaf.
            let leaf = ((pos + 1) << (self.s.max_depth - depth)) - 1 - tree.feature.len();
            tree.values[leaf] = v;
            idx.iter().for_each(|&i| update[i as usize] = v);
            return;
        };
        tree.feature[pos] = sp.feature as u32;
        tree.threshold[pos] = self.data.edges[sp.feature][sp.bin];
        tree.missing_left[pos] = sp.missing_left;
        let nl = self.partition(idx, &sp, scratch);
        let (l, r) = idx.split_at_mut(nl);
        let small_left = l.len() <= r.len();
        let hs = self.histogram(if small_left { l } else { r });
        let hb = hist.minus(&hs);
        drop(hist);
        let (hl, hr) = if small_left { (hs, hb) } else { (hb, hs) };
        let (a, b) = (2 * pos + 1, 2 * pos + 2);
        let depth = depth + 1;
        self.grow(Node::new(&mut *tree, a, depth, l), hl, scratch, update);
        self.grow(Node::new(tree, b, depth, r), hr, scratch, update);
    }

    /// Moves the samples of `idx` going left to its front and those going right after them,
    /// each side in its original order; returns the number going left.
    fn partition(&self, idx: &mut [u32], sp: &Split, scratch: &mut Vec<u32>) -> usize {
        let col = &self.data.bins[sp.feature];
        // The missing bin lies above every value bin, so `b <= bin` is false for it.
        let missing_bin = self.data.edges[sp.feature].len() + 1;
        let (bin, missing_left) = (sp.bin, sp.missing_left);
        scratch.clear();
        scratch.resize(idx.len(), 0);
        let (mut nl, mut nr) = (0, 0);
        // Branch-free: each sample is written to both sides, and only its side advances
        // (writing idx[nl] is safe: nl <= k, and idx[k] is already read).
        for k in 0..idx.len() {
            let i = idx[k];
            let b = col[i as usize] as usize;
            let left = (b <= bin) | ((b == missing_bin) & missing_left);
            idx[nl] = i;
            scratch[nr] = i;
            nl += left as usize;
            nr += !left as usize;
        }
        scratch.truncate(nr);
        idx[nl..].copy_from_slice(scratch);
        nl
    }

    /// The tree of this round and class; `update` receives each sample's leaf value.
    pub(super) fn tree(&self, update: &mut [f32]) -> HeapTree {
        let mut tree = HeapTree::new(self.s.max_depth);
        let mut idx: Vec<u32> = (0..self.g.len() as u32).collect();
        let hist = self.histogram(&idx);
        let mut scratch = Vec::with_capacity(idx.len());
        self.grow(
            Node::new(&mut tree, 0, 0, &mut idx),
            hist,
            &mut scratch,
            update,
        );
        tree
    }
}

/// A node being grown: its tree, heap position, depth and samples.
struct Node<'t> {
    tree: &'t mut HeapTree,
    pos: usize,
    depth: usize,
    idx: &'t mut [u32],
}

impl<'t> Node<'t> {
    fn new(tree: &'t mut HeapTree, pos: usize, depth: usize, idx: &'t mut [u32]) -> Self {
        Node {
            tree,
            pos,
            depth,
            idx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classic::TrainingSet;

    /// 500 samples of 4 features, some missing, with gradients and hessians of all signs.
    fn setup() -> (Binned, Vec<f32>, Vec<f32>, BoostedSettings) {
        let mut r = crate::rng::Rng::new(3);
        let (n, nf) = (500, 4);
        let x: Vec<f32> = (0..n * nf)
            .map(|i| {
                if i % 13 == 0 {
                    f32::NAN
                } else {
                    r.normal() as f32
                }
            })
            .collect();
        let data = TrainingSet {
            x,
            y: vec![0; n],
            features: nf,
            classes: 1,
            weights: vec![1.0],
            per_class: vec![n],
        };
        let s = BoostedSettings {
            rounds: 1,
            learning_rate: 0.1,
            max_depth: 4,
            min_samples_leaf: 3,
            l2: 1.0,
            bins: 16,
            ensemble: 1,
        };
        let g = (0..n).map(|_| r.normal() as f32).collect();
        let h = (0..n).map(|_| r.f64() as f32 + 0.01).collect();
        (Binned::new(&data, s.bins), g, h, s)
    }

    fn grower<'a>(b: &'a Binned, g: &'a [f32], h: &'a [f32], s: &'a BoostedSettings) -> Grower<'a> {
        let mut offsets = vec![0];
        for f in 0..b.edges.len() {
            offsets.push(offsets[f] + b.slots(f));
        }
        Grower {
            data: b,
            g,
            h,
            s,
            offsets,
        }
    }

    #[test]
    fn the_row_major_histogram_equals_feature_by_feature_sums_bit_for_bit() {
        let (b, g, h, s) = setup();
        let gr = grower(&b, &g, &h, &s);
        // Every third sample, as a node holds a subset in ascending order.
        let idx: Vec<u32> = (0..500).step_by(3).collect();
        let hist = gr.histogram(&idx);
        for (f, col) in b.bins.iter().enumerate() {
            for slot in 0..b.slots(f) {
                let (mut sg, mut sh, mut sn) = (0f64, 0f64, 0u32);
                for &i in idx.iter().filter(|&&i| col[i as usize] as usize == slot) {
                    sg += g[i as usize] as f64;
                    sh += h[i as usize] as f64;
                    sn += 1;
                }
                let got = hist.at(gr.offsets[f] + slot);
                assert_eq!(got.g.to_bits(), sg.to_bits(), "feature {f} slot {slot}");
                assert_eq!(got.h.to_bits(), sh.to_bits(), "feature {f} slot {slot}");
                assert_eq!(got.n, sn, "feature {f} slot {slot}");
            }
        }
    }

    #[test]
    fn the_in_place_partition_is_a_stable_partition() {
        let (b, g, h, s) = setup();
        let gr = grower(&b, &g, &h, &s);
        for (feature, bin, missing_left) in [(0, 3, true), (1, 7, false), (3, 0, true)] {
            let sp = Split {
                feature,
                bin,
                missing_left,
                gain: 1.0,
            };
            let missing = b.edges[feature].len() + 1;
            let goes_left = |i: &u32| {
                let v = b.bins[feature][*i as usize] as usize;
                if v == missing {
                    missing_left
                } else {
                    v <= bin
                }
            };
            let mut idx: Vec<u32> = (0..500).filter(|i| i % 4 != 1).collect();
            let (l, r): (Vec<u32>, Vec<u32>) = idx.iter().partition(|i| goes_left(i));
            let nl = gr.partition(&mut idx, &sp, &mut Vec::new());
            assert_eq!(nl, l.len());
            assert_eq!(&idx[..nl], &l[..]);
            assert_eq!(&idx[nl..], &r[..]);
        }
    }
}
