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

mod predict;

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
    /// The trees laid out for binned prediction, built on first use (`None`: thresholds
    /// that do not bin in a byte; such a forest predicts sample by sample).
    #[serde(skip)]
    flat: std::sync::OnceLock<Option<predict::Compiled>>,
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

    /// Predicts `n` samples (row-major `x`, `n` x `n_features`): mean class probabilities to
    /// `probs` (`n` x K) and mean per-tree entropies (nats) to `entropy` (`n`). Same result,
    /// bit for bit, as [`predict_into`](Self::predict_into) per sample (its slow twin): the
    /// same leaves, summed in the same tree order, reached by comparing each feature's bin
    /// with the split's bin (exact, since every split is at a bin edge) sixteen trees at a
    /// time.
    pub fn predict_block(&self, x: &[f32], n: usize, probs: &mut [f32], entropy: &mut [f32]) {
        self.predict_block_with(x, n, probs, entropy, predict::simd_available());
    }

    /// [`predict_block`](Self::predict_block); `simd` (callers check
    /// [`predict::simd_available`]) descends sixteen trees per AVX-512 register.
    fn predict_block_with(
        &self,
        x: &[f32],
        n: usize,
        probs: &mut [f32],
        entropy: &mut [f32],
        simd: bool,
    ) {
        let k = self.n_classes;
        let nf = self.n_features;
        match self.flat.get_or_init(|| predict::Compiled::new(self)) {
            Some(c) => c.predict(self, x, n, probs, entropy, simd),
            None => {
                for s in 0..n {
                    let p = &mut probs[s * k..s * k + k];
                    p.fill(0.0);
                    entropy[s] = self.predict_into(&x[s * nf..s * nf + nf], p);
                }
            }
        }
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
        // above the last flat level; NaN and infinities take the missing-value path; 21 trees
        // leave a partial group of sixteen, 1101 samples a partial sub-block and group of four;
        // 4 classes fill one 8-lane leaf row, 10 classes two.
        let mut r = Rng::new(11);
        let n = 1200;
        let nf = 5;
        let x: Vec<f32> = (0..n * nf).map(|_| r.f64() as f32).collect();
        let nt = 1101;
        let mut xt: Vec<f32> = (0..nt * nf).map(|_| r.f64() as f32).collect();
        for (i, v) in xt.iter_mut().enumerate() {
            match i % 23 {
                0 => *v = f32::NAN,
                1 => *v = f32::INFINITY,
                2 => *v = f32::NEG_INFINITY,
                _ => {}
            }
        }
        for k in [4, 10] {
            let y: Vec<u8> = (0..n).map(|_| r.below(k) as u8).collect();
            for depth in [1, 3, 10, 11, 30] {
                let f = Forest::train(
                    &x,
                    &y,
                    nf,
                    k,
                    &vec![1.0; k],
                    &ForestParams {
                        trees: 21,
                        max_depth: depth,
                        min_samples_leaf: 1,
                        mtry: 2,
                        seed: depth as u64,
                    },
                );
                // The scalar descent, and the sixteen-tree AVX-512 one where the CPU has it.
                for simd in [false, predict::simd_available()] {
                    let mut probs = vec![0f32; nt * k];
                    let mut ent = vec![0f32; nt];
                    f.predict_block_with(&xt, nt, &mut probs, &mut ent, simd);
                    for s in 0..nt {
                        let mut p = vec![0f32; k];
                        let e = f.predict_into(&xt[s * nf..s * nf + nf], &mut p);
                        let at = format!("{k} classes, depth {depth}, sample {s}, simd {simd}");
                        assert_eq!(&probs[s * k..s * k + k], &p[..], "{at}");
                        assert_eq!(ent[s].to_bits(), e.to_bits(), "{at}");
                    }
                }
            }
        }
    }

    /// A chain of `n` splits on one feature: leaf i is reached for x in (i - 1, i].
    fn chain(n: usize) -> Forest {
        let mut t = Tree {
            nodes: Vec::new(),
            leaf_probs: Vec::new(),
            leaf_entropy: Vec::new(),
        };
        for i in 0..n {
            t.nodes.push(Node {
                feature: 0,
                threshold: i as f32,
                left: (n + i) as u32,
                right: (i + 1) as u32,
            });
        }
        for i in 0..=n {
            t.nodes.push(Node::EMPTY);
            let p = (i % 2) as f64;
            t.make_leaf(n + i, &[p, 1.0 - p], 1.0);
        }
        t.nodes[n - 1].right = (2 * n) as u32;
        Forest {
            n_features: 1,
            n_classes: 2,
            params: params(1),
            trees: vec![t],
            flat: std::sync::OnceLock::new(),
        }
    }

    #[test]
    fn forests_with_many_thresholds_per_feature_predict_like_the_pointer_walk() {
        // 100 thresholds: binned without the register table, a tree far deeper than the flat
        // levels; 300: more than a byte holds, so the forest predicts sample by sample.
        for (n, binned) in [(100, true), (300, false)] {
            let f = chain(n);
            assert_eq!(predict::Compiled::new(&f).is_some(), binned, "{n}");
            let xt: Vec<f32> = (0..700).map(|i| i as f32 * 0.5 - 20.0).collect();
            let mut probs = vec![0f32; 700 * 2];
            let mut ent = vec![0f32; 700];
            f.predict_block(&xt, 700, &mut probs, &mut ent);
            for (s, &x) in xt.iter().enumerate() {
                let mut p = [0f32; 2];
                let e = f.predict_into(&[x], &mut p);
                assert_eq!(&probs[s * 2..s * 2 + 2], &p, "{n} thresholds, sample {s}");
                assert_eq!(ent[s].to_bits(), e.to_bits());
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
