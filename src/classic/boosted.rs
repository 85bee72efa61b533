//! Histogram gradient-boosted trees for K classes (softmax loss, Newton leaves), in the
//! manner of LightGBM and XGBoost's `hist` method, with a virtual-ensemble uncertainty.
//!
//! Every feature is binned once into at most `bins` quantile bins plus one bin for missing
//! values (NaN). Each round fits one depth-limited regression tree per class to the class's
//! weighted gradients and hessians: a node's histogram of (gradient, hessian, count) per bin
//! gives every split's gain G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2), with the missing
//! bin tried on either side; the smaller child's histogram is built and the larger one's is
//! the parent's minus it. Leaves hold -G/(H+l2) x learning rate.
//!
//! Uncertainty: a single boosted model has no ensemble, so the bands come from a virtual
//! ensemble (Malinin, Prokhorenkova and Ustimenko 2021, "Uncertainty in Gradient Boosting
//! via Ensembles", ICLR): the model truncated after `ensemble` evenly spaced rounds of the
//! second half of the boosting trajectory. The prediction is the members' mean probability;
//! aleatoric = mean member entropy, epistemic = mutual information, total = entropy of the
//! mean. Members share their first half, so the epistemic part is a lower bound.
//!
//! Trees are stored as complete binary trees of their maximum depth (a node that stopped
//! early passes every sample to its left child), so prediction descends branch-free.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::stack::{StackClassifier, TrainingSet};

mod grow;
use grow::Grower;

use crate::product::BandMeanings;
use crate::uncertainty::entropy;

pub use crate::config::trees::BoostedSettings;

/// Smallest hessian of a sample (keeps Newton steps finite where p is 0 or 1).
const MIN_HESSIAN: f32 = 1e-6;

/// One tree as a complete binary tree of depth `depth`: internal node i has children
/// 2i+1 and 2i+2; leaf j (0-based, left to right) holds `values[j]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeapTree {
    feature: Vec<u32>,
    threshold: Vec<f32>,
    missing_left: Vec<bool>,
    values: Vec<f32>,
}

impl HeapTree {
    fn new(depth: usize) -> HeapTree {
        let inner = (1usize << depth) - 1;
        HeapTree {
            feature: vec![0; inner],
            // +inf: every value (and, with missing_left, NaN) goes left.
            threshold: vec![f32::INFINITY; inner],
            missing_left: vec![true; inner],
            values: vec![0.0; inner + 1],
        }
    }

    /// The leaf value of sample `x`.
    #[inline]
    fn value(&self, x: &[f32]) -> f32 {
        let inner = self.feature.len();
        let mut i = 0usize;
        while i < inner {
            let v = x[self.feature[i] as usize];
            let right = if v.is_nan() {
                !self.missing_left[i]
            } else {
                v > self.threshold[i]
            };
            i = 2 * i + 1 + right as usize;
        }
        self.values[i - inner]
    }

    /// The leaf values of 8 samples (rows of `x`, `nf` features each) at once: the descents
    /// are independent, so interleaving them keeps the loads in flight (same leaves as
    /// [`value`](Self::value)).
    #[inline]
    fn values8(&self, x: &[f32], nf: usize, out: &mut [f32; 8]) {
        let inner = self.feature.len();
        let mut idx = [0usize; 8];
        let mut width = inner + 1;
        while width > 1 {
            for (s, i) in idx.iter_mut().enumerate() {
                let v = x[s * nf + self.feature[*i] as usize];
                let right = (v > self.threshold[*i]) | (v.is_nan() & !self.missing_left[*i]);
                *i = 2 * *i + 1 + right as usize;
            }
            width /= 2;
        }
        for (o, &i) in out.iter_mut().zip(&idx) {
            *o = self.values[i - inner];
        }
    }
}

/// A trained boosted model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Boosted {
    classes: usize,
    features: usize,
    /// Initial raw score of each class (log of its weighted prior).
    base: Vec<f32>,
    /// Trees, round-major: tree `r * classes + j` is class j's tree of round r.
    trees: Vec<HeapTree>,
    /// Rounds after which the virtual-ensemble members are read (ascending, last = all).
    members: Vec<usize>,
    /// The settings it was trained with.
    settings: BoostedSettings,
}

/// Quantile bin edges of one feature's finite values (strictly increasing, at most
/// `bins - 1`); bin b holds values in (edges[b-1], edges[b]].
fn bin_edges(column: &[f32], bins: usize) -> Vec<f32> {
    let mut v: Vec<f32> = column.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let mut edges: Vec<f32> = Vec::new();
    if v.is_empty() {
        return edges;
    }
    for b in 1..bins {
        let e = v[(b * v.len() / bins).min(v.len() - 1)];
        if edges.last().is_none_or(|&l| e > l) {
            edges.push(e);
        }
    }
    edges
}

/// Binned features: `bins[f][i]` is sample i's bin of feature f (column-major, for
/// partitioning a node on one feature) and `rows[i * nf + f]` the same bin row-major (for
/// histograms: one sample's gradient and hessian are loaded once for all its features); the
/// missing bin of feature f is `edges[f].len() + 1`.
struct Binned {
    edges: Vec<Vec<f32>>,
    bins: Vec<Vec<u8>>,
    rows: Vec<u8>,
}

impl Binned {
    fn new(data: &TrainingSet, bins: usize) -> Binned {
        let (n, nf) = (data.y.len(), data.features);
        let cols: Vec<(Vec<f32>, Vec<u8>)> = (0..nf)
            .into_par_iter()
            .map(|f| {
                let col: Vec<f32> = (0..n).map(|i| data.x[i * nf + f]).collect();
                let edges = bin_edges(&col, bins);
                let missing = (edges.len() + 1) as u8;
                let b = col
                    .iter()
                    .map(|&v| {
                        if v.is_nan() {
                            missing
                        } else {
                            edges.partition_point(|&e| e < v) as u8
                        }
                    })
                    .collect();
                (edges, b)
            })
            .collect();
        let (edges, bins): (Vec<Vec<f32>>, Vec<Vec<u8>>) = cols.into_iter().unzip();
        let mut rows = vec![0u8; n * nf];
        for (f, col) in bins.iter().enumerate() {
            for (i, &b) in col.iter().enumerate() {
                rows[i * nf + f] = b;
            }
        }
        Binned { edges, bins, rows }
    }

    /// Histogram slots of feature f: value bins, then the missing bin.
    fn slots(&self, f: usize) -> usize {
        self.edges[f].len() + 2
    }
}

/// Softmax of raw scores into `p`.
fn softmax(raw: &[f32], p: &mut [f32]) {
    let m = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (q, &r) in p.iter_mut().zip(raw) {
        *q = (r - m).exp();
        sum += *q;
    }
    p.iter_mut().for_each(|q| *q /= sum);
}

/// Rounds after which the members of a virtual ensemble of `m` are read: evenly spaced over
/// the second half of `rounds`, the last one all rounds.
fn member_rounds(rounds: usize, m: usize) -> Vec<usize> {
    let half = rounds / 2;
    let mut v: Vec<usize> = (1..=m).map(|e| half + (rounds - half) * e / m).collect();
    v.dedup();
    v
}

impl Boosted {
    /// Trains on `data` with `s` (deterministic; classes of a round train in parallel).
    pub fn train(s: &BoostedSettings, data: &TrainingSet) -> Boosted {
        let (n, k) = (data.y.len(), data.classes);
        let binned = Binned::new(data, s.bins);
        let mut offsets = vec![0];
        for f in 0..data.features {
            offsets.push(offsets[f] + binned.slots(f));
        }
        let w: Vec<f32> = data
            .y
            .iter()
            .map(|&c| data.weights[c as usize] as f32)
            .collect();
        let total: f64 = w.iter().map(|&x| x as f64).sum::<f64>().max(1e-12);
        let base: Vec<f32> = (0..k)
            .map(|j| {
                let wj: f64 = (0..n)
                    .filter(|&i| data.y[i] as usize == j)
                    .map(|i| w[i] as f64)
                    .sum();
                (wj / total).max(1e-6).ln() as f32
            })
            .collect();
        let mut raw: Vec<f32> = (0..n).flat_map(|_| base.iter().copied()).collect();
        let mut trees = Vec::with_capacity(s.rounds * k);
        let mut p = vec![0f32; n * k];
        for _ in 0..s.rounds {
            raw.chunks(k)
                .zip(p.chunks_mut(k))
                .for_each(|(r, q)| softmax(r, q));
            let round: Vec<(HeapTree, Vec<f32>)> = (0..k)
                .into_par_iter()
                .map(|j| {
                    let (g, h): (Vec<f32>, Vec<f32>) = (0..n)
                        .map(|i| {
                            let pij = p[i * k + j];
                            let y = (data.y[i] as usize == j) as u8 as f32;
                            (
                                w[i] * (pij - y),
                                w[i] * (pij * (1.0 - pij)).max(MIN_HESSIAN),
                            )
                        })
                        .unzip();
                    let grower = Grower {
                        data: &binned,
                        g: &g,
                        h: &h,
                        s,
                        offsets: offsets.clone(),
                    };
                    let mut update = vec![0f32; n];
                    let tree = grower.tree(&mut update);
                    (tree, update)
                })
                .collect();
            for (j, (tree, update)) in round.into_iter().enumerate() {
                update
                    .iter()
                    .enumerate()
                    .for_each(|(i, u)| raw[i * k + j] += u);
                trees.push(tree);
            }
        }
        Boosted {
            classes: k,
            features: data.features,
            base,
            trees,
            members: member_rounds(s.rounds, s.ensemble),
            settings: s.clone(),
        }
    }

    /// Predicts one sample: the members' mean probabilities into `probs` (length K) and the
    /// mean member entropy (nats).
    pub fn predict_into(&self, x: &[f32], probs: &mut [f32]) -> f32 {
        let k = self.classes;
        let mut raw = self.base.clone();
        let mut member = vec![0f32; k];
        probs.iter_mut().for_each(|p| *p = 0.0);
        let mut ent = 0.0;
        let mut next = 0;
        for (r, round) in self.trees.chunks(k).enumerate() {
            for (j, t) in round.iter().enumerate() {
                raw[j] += t.value(x);
            }
            if self.members.get(next) == Some(&(r + 1)) {
                softmax(&raw, &mut member);
                probs.iter_mut().zip(&member).for_each(|(p, m)| *p += m);
                ent += entropy(&member);
                next += 1;
            }
        }
        let m = self.members.len() as f32;
        probs.iter_mut().for_each(|p| *p /= m);
        ent / m
    }
}

impl Boosted {
    /// [`predict_into`](Self::predict_into) for `n` samples, tree by tree (each tree stays in
    /// cache while it visits the block; no allocation per sample). The same sums in the same
    /// order, so the same bits as the per-sample path (its slow twin, tested).
    pub fn predict_rows(&self, x: &[f32], n: usize, probs: &mut [f32], member_entropy: &mut [f32]) {
        let (nf, k) = (self.features, self.classes);
        let mut raw: Vec<f32> = (0..n).flat_map(|_| self.base.iter().copied()).collect();
        let mut member = vec![0f32; k];
        probs[..n * k].iter_mut().for_each(|p| *p = 0.0);
        member_entropy[..n].iter_mut().for_each(|e| *e = 0.0);
        let mut next = 0;
        for (r, round) in self.trees.chunks(k).enumerate() {
            for (j, t) in round.iter().enumerate() {
                let mut v8 = [0f32; 8];
                let full = n / 8 * 8;
                for g in (0..full).step_by(8) {
                    t.values8(&x[g * nf..(g + 8) * nf], nf, &mut v8);
                    for (s, v) in v8.iter().enumerate() {
                        raw[(g + s) * k + j] += v;
                    }
                }
                for i in full..n {
                    raw[i * k + j] += t.value(&x[i * nf..(i + 1) * nf]);
                }
            }
            if self.members.get(next) == Some(&(r + 1)) {
                for i in 0..n {
                    softmax(&raw[i * k..(i + 1) * k], &mut member);
                    probs[i * k..(i + 1) * k]
                        .iter_mut()
                        .zip(&member)
                        .for_each(|(p, m)| *p += m);
                    member_entropy[i] += entropy(&member);
                }
                next += 1;
            }
        }
        let m = self.members.len() as f32;
        probs[..n * k].iter_mut().for_each(|p| *p /= m);
        member_entropy[..n].iter_mut().for_each(|e| *e /= m);
    }
}

impl StackClassifier for Boosted {
    type Settings = BoostedSettings;
    const FORMAT: &'static str = "geofuse-handcrafted-gbdt-1";

    fn fit(settings: &BoostedSettings, data: &TrainingSet, _seed: u64) -> Self {
        // Deterministic without a seed: no row or feature subsampling.
        Boosted::train(settings, data)
    }

    fn describe(s: &BoostedSettings, data: &TrainingSet) -> String {
        format!(
            "boosting {} rounds x {} classes of depth-{} trees on {} samples x {} features (per class {:?})",
            s.rounds,
            data.classes,
            s.max_depth,
            data.y.len(),
            data.features,
            data.per_class
        )
    }

    fn predict_block(&self, x: &[f32], n: usize, probs: &mut [f32], member_entropy: &mut [f32]) {
        self.predict_rows(x, n, probs, member_entropy)
    }

    fn band_meanings(&self, k: usize) -> BandMeanings {
        let m = self.members.len();
        BandMeanings {
            aleatoric: format!("aleatoric uncertainty, mean entropy of a virtual ensemble of {m} truncations of the boosting trajectory / ln {k}"),
            epistemic: format!("epistemic uncertainty, mutual information over the {m} truncations / ln {k}"),
            total: format!("total uncertainty, entropy of the truncations' mean / ln {k}"),
        }
    }

    fn summary(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("trees".into(), self.trees.len().into());
        m.insert("ensemble_rounds".into(), serde_json::json!(self.members));
        m.insert(
            "params".into(),
            serde_json::to_value(&self.settings).unwrap_or_default(),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BoostedSettings {
        BoostedSettings {
            rounds: 30,
            learning_rate: 0.3,
            max_depth: 3,
            min_samples_leaf: 5,
            l2: 1.0,
            bins: 32,
            ensemble: 4,
        }
    }

    /// Three classes separated by feature 0 (with noise in feature 1 and missing values).
    fn toy(n: usize) -> TrainingSet {
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut rng = crate::rng::Rng::new(7);
        for i in 0..n {
            let c = (i % 3) as u8;
            let f0 = c as f32 + 0.3 * (rng.below(1000) as f32 / 1000.0);
            let f1 = if i % 11 == 0 {
                f32::NAN
            } else {
                rng.below(1000) as f32
            };
            x.extend([f0, f1]);
            y.push(c);
        }
        TrainingSet {
            x,
            y,
            features: 2,
            classes: 3,
            weights: vec![1.0; 3],
            per_class: vec![n / 3; 3],
        }
    }

    #[test]
    fn boosting_learns_a_separable_problem_and_gives_distributions() {
        let data = toy(600);
        let m = Boosted::train(&settings(), &data);
        let mut ok = 0;
        for i in 0..600 {
            let mut p = vec![0f32; 3];
            let e = m.predict_into(&data.x[i * 2..i * 2 + 2], &mut p);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            assert!(e >= 0.0 && e <= 3f32.ln() + 1e-5);
            let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            ok += (best == data.y[i] as usize) as usize;
        }
        assert!(ok >= 590, "{ok} of 600");
    }

    #[test]
    fn block_prediction_equals_per_sample_prediction_and_training_is_deterministic() {
        let data = toy(300);
        let a = Boosted::train(&settings(), &data);
        let b = Boosted::train(&settings(), &data);
        assert_eq!(
            postcard::to_allocvec(&a).unwrap(),
            postcard::to_allocvec(&b).unwrap()
        );
        let n = 300;
        let (mut probs, mut ent) = (vec![0f32; n * 3], vec![0f32; n]);
        a.predict_block(&data.x, n, &mut probs, &mut ent);
        for i in 0..n {
            let mut p = vec![0f32; 3];
            let e = a.predict_into(&data.x[i * 2..i * 2 + 2], &mut p);
            assert_eq!(&probs[i * 3..i * 3 + 3], &p[..]);
            assert_eq!(ent[i], e);
        }
    }

    /// Two classes with unit weights.
    fn two_classes(x: Vec<f32>, y: Vec<u8>, features: usize) -> TrainingSet {
        let per_class = vec![
            y.iter().filter(|&&c| c == 0).count(),
            y.iter().filter(|&&c| c == 1).count(),
        ];
        TrainingSet {
            x,
            y,
            features,
            classes: 2,
            weights: vec![1.0; 2],
            per_class,
        }
    }

    #[test]
    fn a_stump_splits_where_a_hand_computed_gain_is_largest() {
        // Feature 0 separates the two classes exactly at 0.5; feature 1 is useless.
        let x: Vec<f32> = (0..40)
            .flat_map(|i| [if i < 20 { 0.0 } else { 1.0 }, (i % 2) as f32])
            .collect();
        let y: Vec<u8> = (0..40).map(|i| (i >= 20) as u8).collect();
        let data = two_classes(x, y, 2);
        let s = BoostedSettings {
            rounds: 1,
            learning_rate: 1.0,
            max_depth: 1,
            min_samples_leaf: 1,
            l2: 0.0,
            bins: 8,
            ensemble: 1,
        };
        let m = Boosted::train(&s, &data);
        let t = &m.trees[0];
        assert_eq!(t.feature[0], 0);
        assert_eq!(t.threshold[0], 0.0);
        // Base scores are ln 0.5 for both classes, so p = 0.5: g = 0.5 - y, h = 0.25.
        // Class 0's tree, left leaf (the class 0 samples, y = 1): g = -0.5 each, so the leaf is
        // -sum g / sum h = (20 x 0.5) / (20 x 0.25) = 2; the right leaf -2.
        assert!((t.values[0] - 2.0).abs() < 1e-5, "{:?}", t.values);
        assert!((t.values[1] + 2.0).abs() < 1e-5, "{:?}", t.values);
    }

    #[test]
    fn member_rounds_cover_the_second_half() {
        assert_eq!(member_rounds(100, 4), vec![62, 75, 87, 100]);
        assert_eq!(member_rounds(10, 1), vec![10]);
    }

    #[test]
    fn missing_values_follow_the_learned_side() {
        // Class 1 is exactly the samples whose feature is missing.
        let x: Vec<f32> = (0..60)
            .map(|i| if i % 2 == 0 { f32::NAN } else { (i % 7) as f32 })
            .collect();
        let y: Vec<u8> = (0..60).map(|i| (i % 2 == 0) as u8).collect();
        let data = two_classes(x, y, 1);
        let s = BoostedSettings {
            rounds: 10,
            learning_rate: 0.5,
            max_depth: 2,
            min_samples_leaf: 2,
            bins: 8,
            ensemble: 2,
            ..settings()
        };
        let m = Boosted::train(&s, &data);
        let mut p = vec![0f32; 2];
        m.predict_into(&[f32::NAN], &mut p);
        assert!(p[1] > 0.9, "{p:?}");
        m.predict_into(&[3.0], &mut p);
        assert!(p[0] > 0.9, "{p:?}");
    }
}
