//! Random forest with class-probability leaves, trained with histogram splits.
//!
//! Features are binned once into at most 64 quantile bins; each node tries `mtry` random
//! features and picks the split with the largest weighted Gini decrease. Leaves store the
//! weighted class distribution and its entropy, so a prediction yields both the mean
//! probabilities (total uncertainty) and the mean per-tree entropy (aleatoric part).
//! Missing values (NaN) are mapped to -inf: they fall in the lowest bin and always go left.
//! Each tree draws from its own generator seeded by (seed, tree index), so training in
//! parallel gives the same forest as training serially.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::{mix64, Rng};

pub use crate::config::trees::ForestSettings;

/// Training parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForestParams {
    /// Trees.
    pub trees: usize,
    /// Maximum depth.
    pub max_depth: usize,
    /// Minimum (unweighted) samples per leaf.
    pub min_samples_leaf: usize,
    /// Features tried per split.
    pub mtry: usize,
    /// Seed.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Node {
    /// Feature index, or `u32::MAX` for a leaf.
    feature: u32,
    /// Go left when `x <= threshold`.
    threshold: f32,
    /// Left child, or the leaf index for a leaf.
    left: u32,
    /// Right child.
    right: u32,
}

impl Node {
    /// A node not yet decided.
    const EMPTY: Node = Node {
        feature: u32::MAX,
        threshold: 0.0,
        left: 0,
        right: 0,
    };
}

/// One tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tree {
    nodes: Vec<Node>,
    /// Leaf class distributions, `[leaf * K + class]`.
    leaf_probs: Vec<f32>,
    /// Leaf entropies (nats).
    leaf_entropy: Vec<f32>,
}

impl Tree {
    /// Index of the leaf that sample `x` reaches.
    #[inline]
    fn leaf(&self, x: &[f32]) -> usize {
        self.leaf_from(0, x)
    }

    /// Index of the leaf that sample `x` reaches from node `start`.
    #[inline]
    fn leaf_from(&self, start: usize, x: &[f32]) -> usize {
        let mut i = start;
        loop {
            let nd = &self.nodes[i];
            if nd.feature == u32::MAX {
                return nd.left as usize;
            }
            i = if clean(x[nd.feature as usize]) <= nd.threshold {
                nd.left
            } else {
                nd.right
            } as usize;
        }
    }
}

/// A trained forest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forest {
    /// Number of features.
    pub n_features: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Parameters it was trained with.
    pub params: ForestParams,
    trees: Vec<Tree>,
    /// The trees' top levels laid out for branch-free traversal, built on first use.
    #[serde(skip)]
    flat: std::sync::OnceLock<Vec<FlatTop>>,
}

/// Whether [`FlatTop`] can descend 16 samples with AVX-512 gathers on this CPU.
fn gathers_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Samples descended together in [`Forest::predict_block`].
const GROUP: usize = 64;

/// Levels of a tree laid out as a complete binary tree for [`Forest::predict_block`].
const FLAT_LEVELS: usize = 10;

/// The top `depth` levels of a tree as a complete binary tree (node i has children 2i + 1 and
/// 2i + 2): descending it is `i = 2i + 1 + (x[feature[i]] > threshold[i])`, with no branch to
/// mispredict. A leaf above the last level is padded with always-left nodes (threshold +inf;
/// NaN and +inf compare false, so they go left too, as in [`Tree::leaf`]). Each of the 2^depth
/// slots names the original node reached there: a leaf, or a deeper subtree that the pointer
/// walk finishes.
#[derive(Debug, Clone)]
struct FlatTop {
    depth: usize,
    feature: Vec<u32>,
    threshold: Vec<f32>,
    slot: Vec<u32>,
    /// Per slot: the leaf index when the slot's node is a leaf, else `u32::MAX`.
    slot_leaf: Vec<u32>,
    /// Per leaf: its K class probabilities, its entropy, zero padding to [`ROW`] lanes.
    rows: Vec<f32>,
}

/// Lanes of a leaf row in [`FlatTop::rows`] (K + 1 rounded up to a multiple of 8).
fn row_lanes(k: usize) -> usize {
    (k + 1).div_ceil(8) * 8
}

impl FlatTop {
    /// Flat index reached by each of `idx.len()` consecutive samples of `x` (`nf` features
    /// each).
    fn descend(&self, x: &[f32], nf: usize, idx: &mut [usize]) {
        for _ in 0..self.depth {
            for (s, i) in idx.iter_mut().enumerate() {
                let v = x[s * nf + self.feature[*i] as usize];
                *i = 2 * *i + 1 + (v > self.threshold[*i]) as usize;
            }
        }
    }

    /// [`descend`](Self::descend) for 16 samples in the lanes of AVX-512 registers: per level,
    /// three gathers (feature, threshold, the sample's value) and an ordered greater-than, so
    /// NaN goes left as in the scalar loop.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `x` holds 16 samples of `nf` features.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn descend_avx512(&self, x: &[f32], nf: usize, idx: &mut [usize; GROUP]) {
        use std::arch::x86_64::*;
        const R: usize = GROUP / 16;
        debug_assert!(x.len() >= GROUP * nf);
        let base = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(nf as i32),
        );
        let mut lane = [base; R];
        for (g, l) in lane.iter_mut().enumerate() {
            *l = _mm512_add_epi32(base, _mm512_set1_epi32((g * 16 * nf) as i32));
        }
        let one = _mm512_set1_epi32(1);
        // Independent registers of 16 samples each: their gathers overlap.
        let mut i = [_mm512_setzero_si512(); R];
        for _ in 0..self.depth {
            for g in 0..R {
                let f = _mm512_i32gather_epi32::<4>(i[g], self.feature.as_ptr() as *const i32);
                let thr = _mm512_i32gather_ps::<4>(i[g], self.threshold.as_ptr());
                let v = _mm512_i32gather_ps::<4>(_mm512_add_epi32(lane[g], f), x.as_ptr());
                let right = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, thr);
                let next = _mm512_add_epi32(_mm512_add_epi32(i[g], i[g]), one);
                i[g] = _mm512_mask_add_epi32(next, right, next, one);
            }
        }
        let mut out = [0u32; GROUP];
        for (g, v) in i.iter().enumerate() {
            _mm512_storeu_si512(out.as_mut_ptr().add(16 * g) as *mut __m512i, *v);
        }
        for (o, &v) in idx.iter_mut().zip(&out) {
            *o = v as usize;
        }
    }

    fn new(tree: &Tree, k: usize) -> FlatTop {
        fn height(t: &Tree, i: usize) -> usize {
            let nd = &t.nodes[i];
            if nd.feature == u32::MAX {
                0
            } else {
                1 + height(t, nd.left as usize).max(height(t, nd.right as usize))
            }
        }
        let depth = height(tree, 0).min(FLAT_LEVELS);
        let inner = (1usize << depth) - 1;
        let mut f = FlatTop {
            depth,
            feature: vec![0; inner],
            threshold: vec![f32::INFINITY; inner],
            slot: vec![0; 1 << depth],
            slot_leaf: Vec::new(),
            rows: Vec::new(),
        };
        // (flat index, original node, level)
        let mut stack = vec![(0usize, 0u32, 0usize)];
        while let Some((fi, node, level)) = stack.pop() {
            if level == depth {
                f.slot[fi - inner] = node;
                continue;
            }
            let nd = &tree.nodes[node as usize];
            let (l, r) = if nd.feature == u32::MAX {
                (node, node) // padding: both children carry the leaf
            } else {
                f.feature[fi] = nd.feature;
                f.threshold[fi] = nd.threshold;
                (nd.left, nd.right)
            };
            stack.push((2 * fi + 1, l, level + 1));
            stack.push((2 * fi + 2, r, level + 1));
        }
        f.slot_leaf = f
            .slot
            .iter()
            .map(|&node| {
                let nd = &tree.nodes[node as usize];
                if nd.feature == u32::MAX {
                    nd.left
                } else {
                    u32::MAX
                }
            })
            .collect();
        let kp = row_lanes(k);
        f.rows = vec![0.0; tree.leaf_entropy.len() * kp];
        for (leaf, row) in f.rows.chunks_exact_mut(kp).enumerate() {
            row[..k].copy_from_slice(&tree.leaf_probs[leaf * k..leaf * k + k]);
            row[k] = tree.leaf_entropy[leaf];
        }
        f
    }
}

const MAX_BINS: usize = 64;

#[inline]
fn clean(v: f32) -> f32 {
    if v.is_nan() {
        f32::NEG_INFINITY
    } else {
        v
    }
}

/// Quantile bin edges of one feature (strictly increasing, finite).
fn bin_edges(values: &mut [f32]) -> Vec<f32> {
    values.sort_by(|a, b| a.total_cmp(b));
    let mut edges = Vec::new();
    let n = values.len();
    for b in 1..MAX_BINS {
        let v = values[(b * n / MAX_BINS).min(n - 1)];
        if v.is_finite() && edges.last().is_none_or(|&l| v > l) {
            edges.push(v);
        }
    }
    edges
}

#[inline]
fn bin_of(edges: &[f32], v: f32) -> u8 {
    // Bin b holds values in (edges[b-1], edges[b]]; the split "bin <= b" is "v <= edges[b]".
    edges.partition_point(|&e| e < v) as u8
}

/// Class weights that balance the classes: n / (K_present x n_c), 0 for absent classes.
pub fn balanced_weights(per_class: &[usize]) -> Vec<f64> {
    let n: usize = per_class.iter().sum();
    let present = per_class.iter().filter(|&&c| c > 0).count().max(1);
    per_class
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                n as f64 / (present as f64 * c as f64)
            }
        })
        .collect()
}

impl Forest {
    /// Trains on row-major `x` (`n` x `n_features`), class indices `y` and per-class weights.
    pub fn train(
        x: &[f32],
        y: &[u8],
        n_features: usize,
        n_classes: usize,
        class_weight: &[f64],
        params: &ForestParams,
    ) -> Forest {
        let n = y.len();
        assert_eq!(x.len(), n * n_features);
        // Bin every feature once (column-major for cache-friendly histograms).
        let cols: Vec<(Vec<f32>, Vec<u8>)> = (0..n_features)
            .into_par_iter()
            .map(|f| {
                let mut col: Vec<f32> = (0..n).map(|i| clean(x[i * n_features + f])).collect();
                let edges = bin_edges(&mut col.clone());
                let bins = (0..n)
                    .map(|i| bin_of(&edges, clean(x[i * n_features + f])))
                    .collect();
                col.clear();
                (edges, bins)
            })
            .collect();
        let trees = (0..params.trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = Rng::new(mix64(params.seed ^ 0xF0E5_7000) ^ t as u64);
                // Bootstrap with multiplicities.
                let mut mult = vec![0u32; n];
                for _ in 0..n {
                    mult[rng.below(n)] += 1;
                }
                let idx: Vec<u32> = (0..n as u32).filter(|&i| mult[i as usize] > 0).collect();
                let b = Builder {
                    cols: &cols,
                    y,
                    mult: &mult,
                    k: n_classes,
                    w: class_weight,
                    params,
                };
                b.build(idx, &mut rng)
            })
            .collect();
        Forest {
            n_features,
            n_classes,
            params: params.clone(),
            trees,
            flat: std::sync::OnceLock::new(),
        }
    }

    /// Predicts one sample: adds mean class probabilities into `probs` (length K, zeroed by
    /// the caller) and returns the mean per-tree entropy (nats).
    pub fn predict_into(&self, x: &[f32], probs: &mut [f32]) -> f32 {
        let k = self.n_classes;
        let mut ent = 0.0f32;
        for t in &self.trees {
            let leaf = t.leaf(x);
            for (p, l) in probs.iter_mut().zip(&t.leaf_probs[leaf * k..leaf * k + k]) {
                *p += l;
            }
            ent += t.leaf_entropy[leaf];
        }
        let nt = self.trees.len() as f32;
        probs.iter_mut().for_each(|p| *p /= nt);
        ent / nt
    }

    /// Predicts `n` samples (row-major `x`, `n` x `n_features`) tree by tree, so each tree
    /// stays in cache while it visits the whole block. Writes mean class probabilities to
    /// `probs` (`n` x K) and mean per-tree entropies (nats) to `entropy` (`n`). Same result,
    /// bit for bit, as [`predict_into`](Self::predict_into) per sample (its slow twin): the same
    /// leaves, summed in the same tree order. The top levels of every tree are descended
    /// branch-free for 16 samples at a time (a flat top); deeper trees finish with the
    /// pointer walk.
    pub fn predict_block(&self, x: &[f32], n: usize, probs: &mut [f32], entropy: &mut [f32]) {
        self.predict_block_with(x, n, probs, entropy, gathers_available());
    }

    /// [`predict_block`](Self::predict_block); `simd` (callers check [`gathers_available`])
    /// descends full groups of 16 samples with AVX-512 gathers.
    fn predict_block_with(
        &self,
        x: &[f32],
        n: usize,
        probs: &mut [f32],
        entropy: &mut [f32],
        simd: bool,
    ) {
        const G: usize = GROUP;
        let k = self.n_classes;
        let nf = self.n_features;
        let kp = row_lanes(k);
        let mut acc = vec![0f32; n * kp];
        let flat = self
            .flat
            .get_or_init(|| self.trees.iter().map(|t| FlatTop::new(t, k)).collect());
        let simd = simd && G * nf < i32::MAX as usize;
        for (t, ft) in self.trees.iter().zip(flat) {
            let inner = (1usize << ft.depth) - 1;
            for g0 in (0..n).step_by(G) {
                let m = G.min(n - g0);
                let mut idx = [0usize; G];
                #[cfg(target_arch = "x86_64")]
                if simd && m == G {
                    // SAFETY: AVX-512F was detected; the group's 16 samples lie in `x`.
                    unsafe { ft.descend_avx512(&x[g0 * nf..(g0 + G) * nf], nf, &mut idx) };
                } else {
                    ft.descend(&x[g0 * nf..], nf, &mut idx[..m]);
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = simd;
                    ft.descend(&x[g0 * nf..], nf, &mut idx[..m]);
                }
                for (s, &i) in idx.iter().enumerate().take(m) {
                    let smp = g0 + s;
                    let leaf = match ft.slot_leaf[i - inner] {
                        u32::MAX => {
                            let node = ft.slot[i - inner] as usize;
                            t.leaf_from(node, &x[smp * nf..smp * nf + nf])
                        }
                        l => l as usize,
                    };
                    // Probabilities and entropy in one padded row: whole-register adds.
                    for (a, l) in acc[smp * kp..smp * kp + kp]
                        .chunks_exact_mut(8)
                        .zip(ft.rows[leaf * kp..leaf * kp + kp].chunks_exact(8))
                    {
                        for (a, l) in a.iter_mut().zip(l) {
                            *a += l;
                        }
                    }
                }
            }
        }
        for (s, a) in acc.chunks_exact(kp).enumerate() {
            probs[s * k..s * k + k].copy_from_slice(&a[..k]);
            entropy[s] = a[k];
        }
        let nt = self.trees.len() as f32;
        probs[..n * k].iter_mut().for_each(|p| *p /= nt);
        entropy[..n].iter_mut().for_each(|e| *e /= nt);
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }
}

struct Builder<'a> {
    cols: &'a [(Vec<f32>, Vec<u8>)],
    y: &'a [u8],
    mult: &'a [u32],
    k: usize,
    w: &'a [f64],
    params: &'a ForestParams,
}

impl Builder<'_> {
    fn weight(&self, i: u32) -> f64 {
        self.mult[i as usize] as f64 * self.w[self.y[i as usize] as usize]
    }

    /// The best split of feature `f` for the node holding `idx` (class weights `dist`, their
    /// sum `total`, bootstrap count `count`): (Gini gain, last bin going left). The first bin
    /// with the largest gain wins. `hist`/`hcount` are scratch space.
    #[allow(clippy::too_many_arguments)]
    fn best_bin(
        &self,
        f: usize,
        idx: &[u32],
        dist: &[f64],
        (total, count, gini_parent): (f64, u64, f64),
        hist: &mut [f64],
        hcount: &mut [u32],
    ) -> Option<(f64, usize)> {
        let (edges, bins) = &self.cols[f];
        if edges.is_empty() {
            return None;
        }
        let min_leaf = self.params.min_samples_leaf as u64;
        let nb = edges.len() + 1;
        hist[..nb * self.k].iter_mut().for_each(|v| *v = 0.0);
        hcount[..nb].iter_mut().for_each(|v| *v = 0);
        for &i in idx {
            let b = bins[i as usize] as usize;
            hist[b * self.k + self.y[i as usize] as usize] += self.weight(i);
            hcount[b] += self.mult[i as usize];
        }
        let mut left = vec![0f64; self.k];
        let mut lcount = 0u64;
        let mut best: Option<(f64, usize)> = None;
        for b in 0..nb - 1 {
            for c in 0..self.k {
                left[c] += hist[b * self.k + c];
            }
            lcount += hcount[b] as u64;
            let rcount = count - lcount;
            if lcount < min_leaf || rcount < min_leaf {
                continue;
            }
            let lt: f64 = left.iter().sum();
            let rt = total - lt;
            if lt <= 0.0 || rt <= 0.0 {
                continue;
            }
            let lsq: f64 = left.iter().map(|v| v * v).sum();
            let rsq: f64 = left.iter().zip(dist).map(|(l, d)| (d - l) * (d - l)).sum();
            let gini = (lt - lsq / lt) + (rt - rsq / rt);
            let gain = gini_parent - gini;
            if gain > 1e-12 && best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, b));
            }
        }
        best
    }

    /// Class weights and bootstrap count of the samples `idx`.
    fn node_stats(&self, idx: &[u32]) -> (Vec<f64>, u64) {
        let mut dist = vec![0f64; self.k];
        let mut count = 0u64;
        for &i in idx {
            dist[self.y[i as usize] as usize] += self.weight(i);
            count += self.mult[i as usize] as u64;
        }
        (dist, count)
    }

    fn build(&self, root: Vec<u32>, rng: &mut Rng) -> Tree {
        let mut tree = Tree {
            nodes: vec![Node::EMPTY],
            leaf_probs: Vec::new(),
            leaf_entropy: Vec::new(),
        };
        // Explicit stack of (node slot, sample indices, depth).
        let mut stack = vec![(0usize, root, 0usize)];
        let nf = self.cols.len();
        let mut feats: Vec<usize> = (0..nf).collect();
        let mut hist = vec![0f64; MAX_BINS * self.k];
        let mut hcount = vec![0u32; MAX_BINS];
        while let Some((slot, idx, depth)) = stack.pop() {
            let (dist, count) = self.node_stats(&idx);
            let total: f64 = dist.iter().sum();
            let pure = dist.iter().filter(|&&d| d > 0.0).count() <= 1;
            let min_leaf = self.params.min_samples_leaf as u64;
            let mut best: Option<(f64, usize, usize)> = None;
            if !pure && depth < self.params.max_depth && count >= 2 * min_leaf {
                let gini_parent = total - dist.iter().map(|d| d * d).sum::<f64>() / total;
                // Partial Fisher-Yates: first mtry entries of `feats` are this node's candidates.
                for j in 0..self.params.mtry.min(nf) {
                    let r = j + rng.below(nf - j);
                    feats.swap(j, r);
                }
                for &f in &feats[..self.params.mtry.min(nf)] {
                    let node = (total, count, gini_parent);
                    if let Some((gain, b)) =
                        self.best_bin(f, &idx, &dist, node, &mut hist, &mut hcount)
                    {
                        if best.is_none_or(|(g, _, _)| gain > g) {
                            best = Some((gain, f, b));
                        }
                    }
                }
            }
            match best {
                None => tree.make_leaf(slot, &dist, total),
                Some((_, f, b)) => {
                    let bins = &self.cols[f].1;
                    let (l, r): (Vec<u32>, Vec<u32>) =
                        idx.iter().partition(|&&i| (bins[i as usize] as usize) <= b);
                    let li = tree.nodes.len();
                    tree.nodes.extend([Node::EMPTY, Node::EMPTY]);
                    tree.nodes[slot] = Node {
                        feature: f as u32,
                        threshold: self.cols[f].0[b],
                        left: li as u32,
                        right: li as u32 + 1,
                    };
                    stack.push((li + 1, r, depth + 1));
                    stack.push((li, l, depth + 1));
                }
            }
        }
        tree
    }
}

impl Tree {
    /// Turns node `slot` into a leaf with the class distribution `dist` (sum `total`).
    fn make_leaf(&mut self, slot: usize, dist: &[f64], total: f64) {
        let leaf = self.leaf_entropy.len() as u32;
        let p: Vec<f32> = dist
            .iter()
            .map(|d| (d / total.max(1e-300)) as f32)
            .collect();
        self.leaf_entropy.push(crate::uncertainty::entropy(&p));
        self.leaf_probs.extend_from_slice(&p);
        self.nodes[slot] = Node {
            feature: u32::MAX,
            threshold: 0.0,
            left: leaf,
            right: 0,
        };
    }
}

impl super::StackClassifier for Forest {
    type Settings = ForestSettings;
    const FORMAT: &'static str = "geofuse-handcrafted-rf-1";

    fn fit(s: &Self::Settings, data: &super::TrainingSet, seed: u64) -> Self {
        Forest::train(
            &data.x,
            &data.y,
            data.features,
            data.classes,
            &data.weights,
            &forest_params(s, data.features, seed),
        )
    }

    fn describe(s: &Self::Settings, data: &super::TrainingSet) -> String {
        format!(
            "training {} trees on {} samples x {} features (per class {:?})",
            s.trees,
            data.y.len(),
            data.features,
            data.per_class
        )
    }

    fn predict_block(&self, x: &[f32], n: usize, probs: &mut [f32], member_entropy: &mut [f32]) {
        Forest::predict_block(self, x, n, probs, member_entropy)
    }

    fn band_meanings(&self, k: usize) -> crate::product::BandMeanings {
        crate::product::BandMeanings::ensemble(k)
    }

    fn summary(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("trees".into(), self.n_trees().into());
        m.insert(
            "params".into(),
            serde_json::to_value(&self.params).unwrap_or_default(),
        );
        m
    }
}

/// Forest parameters of a method's settings for `nf` features: `features_per_split`
/// defaults to the square root of the feature count.
pub fn forest_params(s: &ForestSettings, nf: usize, seed: u64) -> ForestParams {
    ForestParams {
        trees: s.trees,
        max_depth: s.max_depth,
        min_samples_leaf: s.min_samples_leaf,
        mtry: s
            .features_per_split
            .unwrap_or(((nf as f64).sqrt().round() as usize).max(1))
            .min(nf),
        seed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        // Two informative features, one noise feature, three classes.
        let mut r = Rng::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let c = r.below(3) as u8;
            let a = c as f32 + 0.3 * r.normal() as f32;
            let b = if c == 2 { 1.0 } else { 0.0 } + 0.3 * r.normal() as f32;
            x.extend_from_slice(&[a, b, r.f64() as f32]);
            y.push(c);
        }
        (x, y)
    }

    fn params(seed: u64) -> ForestParams {
        ForestParams {
            trees: 20,
            max_depth: 10,
            min_samples_leaf: 2,
            mtry: 2,
            seed,
        }
    }

    #[test]
    fn forest_learns_a_separable_problem() {
        let (x, y) = toy(1500, 1);
        let f = Forest::train(&x, &y, 3, 3, &[1.0; 3], &params(5));
        let (xt, yt) = toy(500, 2);
        let mut ok = 0;
        for i in 0..yt.len() {
            let mut p = [0f32; 3];
            f.predict_into(&xt[i * 3..i * 3 + 3], &mut p);
            let c = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            ok += (c as u8 == yt[i]) as usize;
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        assert!(
            ok as f64 / yt.len() as f64 > 0.9,
            "accuracy {}",
            ok as f64 / yt.len() as f64
        );
    }

    #[test]
    fn training_is_deterministic_and_thread_count_independent() {
        let (x, y) = toy(600, 3);
        let a = Forest::train(&x, &y, 3, 3, &[1.0; 3], &params(9));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| Forest::train(&x, &y, 3, 3, &[1.0; 3], &params(9)));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    #[test]
    fn block_prediction_equals_per_sample_prediction() {
        let (x, y) = toy(800, 6);
        let f = Forest::train(&x, &y, 3, 3, &[1.0; 3], &params(2));
        let (xt, _) = toy(300, 7);
        let mut probs = vec![0f32; 300 * 3];
        let mut ent = vec![0f32; 300];
        f.predict_block(&xt, 300, &mut probs, &mut ent);
        for s in 0..300 {
            let mut p = [0f32; 3];
            let e = f.predict_into(&xt[s * 3..s * 3 + 3], &mut p);
            assert_eq!(&probs[s * 3..s * 3 + 3], &p, "sample {s}");
            assert_eq!(ent[s].to_bits(), e.to_bits());
        }
    }

    #[test]
    fn flat_top_traversal_equals_the_pointer_walk_at_every_depth() {
        // Noise labels grow full trees (deeper than the flat levels), shallow limits pad leaves
        // above the last flat level; NaN and infinities take the missing-value path; 301
        // samples leave a partial group of 16.
        let mut r = Rng::new(11);
        let n = 1200;
        let nf = 5;
        let x: Vec<f32> = (0..n * nf).map(|_| r.f64() as f32).collect();
        let y: Vec<u8> = (0..n).map(|_| r.below(4) as u8).collect();
        let mut xt: Vec<f32> = (0..301 * nf).map(|_| r.f64() as f32).collect();
        for (i, v) in xt.iter_mut().enumerate() {
            match i % 23 {
                0 => *v = f32::NAN,
                1 => *v = f32::INFINITY,
                2 => *v = f32::NEG_INFINITY,
                _ => {}
            }
        }
        for depth in [1, 3, 10, 11, 30] {
            let f = Forest::train(
                &x,
                &y,
                nf,
                4,
                &[1.0; 4],
                &ForestParams {
                    trees: 7,
                    max_depth: depth,
                    min_samples_leaf: 1,
                    mtry: 2,
                    seed: depth as u64,
                },
            );
            // The scalar descent, and the AVX-512 one where the CPU has it.
            for simd in [false, gathers_available()] {
                let mut probs = vec![0f32; 301 * 4];
                let mut ent = vec![0f32; 301];
                f.predict_block_with(&xt, 301, &mut probs, &mut ent, simd);
                for s in 0..301 {
                    let mut p = [0f32; 4];
                    let e = f.predict_into(&xt[s * nf..s * nf + nf], &mut p);
                    let at = format!("depth {depth}, sample {s}, simd {simd}");
                    assert_eq!(&probs[s * 4..s * 4 + 4], &p, "{at}");
                    assert_eq!(ent[s].to_bits(), e.to_bits(), "{at}");
                }
            }
        }
    }

    #[test]
    fn missing_values_are_handled() {
        let (mut x, y) = toy(600, 4);
        for i in (0..x.len()).step_by(7) {
            x[i] = f32::NAN;
        }
        let f = Forest::train(&x, &y, 3, 3, &[1.0; 3], &params(1));
        let mut p = [0f32; 3];
        f.predict_into(&[f32::NAN, f32::NAN, f32::NAN], &mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
