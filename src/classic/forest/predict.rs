//! Forest prediction on binned features, sixteen trees at a time.
//!
//! Every split of a trained forest compares a feature with one of that feature's quantile-bin
//! edges, so `x > threshold` is exactly `bin(x) > bin(threshold)`, where `bin(v)` counts the
//! forest's distinct thresholds of the feature below `v`. A block of samples is binned once
//! (one byte per feature), and a node packs its feature and bin in one `u32`
//! (`feature | bin << 8`, bin 255 for "always left"). The top levels of each tree are a
//! complete binary tree (node i has children 2i + 1 and 2i + 2), descended branch-free.
//!
//! With AVX-512 (F, BW, VBMI) a register holds sixteen trees for one sample: per level one
//! gather of the sixteen nodes and one byte permute that picks the sample's bins from the
//! register its (up to 128) feature bytes are loaded into. Leaves add their padded rows of
//! class probabilities and entropy tree by tree, in the forest's order, so the sums are those
//! of [`Forest::predict_into`](super::Forest::predict_into), bit for bit (its slow twin).

use super::{Forest, Tree};

/// Trees descended together, one per lane.
const LANES: usize = 16;

/// Levels of a tree laid out flat; deeper trees finish with the pointer walk.
const FLAT_LEVELS: usize = 10;

/// Most distinct thresholds per feature (bins are bytes; 255 is "always left").
const MAX_EDGES: usize = 254;

/// Bin of a padding node: no sample's bin exceeds it.
const ALWAYS_LEFT: u32 = 255;

/// Marks a slot that stands for a subtree deeper than the flat levels (leaf indices are
/// below it).
const DEEPER: u32 = 1 << 31;

/// Samples descended before their leaves are added (their leaves fit in L1).
const SUB_BLOCK: usize = 512;

/// Features the byte permute reaches (two 64-byte registers).
const SIMD_FEATURES: usize = 128;

/// Largest per-feature table the AVX-512 binning holds in registers.
const SIMD_TABLE: usize = 64;

/// Bytes after the last sample's bins, so a 128-byte load from any sample stays inside.
const PAD: usize = SIMD_FEATURES;

/// A forest laid out for binned prediction.
#[derive(Debug, Clone)]
pub(super) struct Compiled {
    k: usize,
    kp: usize,
    nf: usize,
    /// Per feature, its distinct thresholds ascending, padded with +inf to `table` entries.
    edges: Vec<f32>,
    /// Entries per feature in `edges` (a power of two).
    table: usize,
    chunks: Vec<Chunk>,
}

/// Up to [`LANES`] consecutive trees, each padded to the same flat depth.
#[derive(Debug, Clone)]
struct Chunk {
    /// Index of the chunk's first tree in the forest.
    first: usize,
    trees: usize,
    depth: usize,
    /// `[lane][flat node]`: `feature | bin << 8`.
    nodes: Vec<u32>,
    /// `[lane][slot]`: the original node a slot stands for (a leaf or a deeper subtree).
    slot_node: Vec<u32>,
    /// `[lane][slot]`: the leaf index when the slot's node is a leaf, else [`DEEPER`] | slot.
    slot_leaf: Vec<u32>,
    /// Per lane: each leaf's K probabilities, its entropy, zero padding to `kp` lanes.
    rows: Vec<Vec<f32>>,
}

/// Lanes of a leaf row (K + 1 rounded up to a multiple of 8).
fn row_lanes(k: usize) -> usize {
    (k + 1).div_ceil(8) * 8
}

/// Whether the sixteen-tree descent can run on this CPU.
pub(super) fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Per feature, the distinct split thresholds of all trees, ascending; `None` when a feature
/// has more than [`MAX_EDGES`] or a threshold is NaN (such a forest predicts sample by sample).
fn thresholds(trees: &[Tree], nf: usize) -> Option<Vec<Vec<f32>>> {
    let mut per = vec![Vec::new(); nf];
    for t in trees {
        for nd in t.nodes.iter().filter(|nd| nd.feature != u32::MAX) {
            if nd.threshold.is_nan() || nd.feature as usize >= nf {
                return None;
            }
            per[nd.feature as usize].push(nd.threshold);
        }
    }
    for e in &mut per {
        e.sort_by(|a, b| a.total_cmp(b));
        e.dedup();
        if e.len() > MAX_EDGES {
            return None;
        }
    }
    Some(per)
}

/// Height of the subtree under node `i`.
fn height(t: &Tree, i: usize) -> usize {
    let nd = &t.nodes[i];
    if nd.feature == u32::MAX {
        0
    } else {
        1 + height(t, nd.left as usize).max(height(t, nd.right as usize))
    }
}

impl Compiled {
    /// Lays `forest` out for binned prediction; `None` when its thresholds cannot be binned in
    /// a byte.
    pub(super) fn new(forest: &Forest) -> Option<Compiled> {
        let (k, nf) = (forest.n_classes, forest.n_features);
        if nf >= 256 {
            return None;
        }
        let per = thresholds(&forest.trees, nf)?;
        let table = (per.iter().map(Vec::len).max().unwrap_or(0) + 1).next_power_of_two();
        let mut edges = vec![f32::INFINITY; nf * table];
        for (f, e) in per.iter().enumerate() {
            edges[f * table..f * table + e.len()].copy_from_slice(e);
        }
        let chunks = (0..forest.trees.len())
            .step_by(LANES)
            .map(|first| {
                let trees = &forest.trees[first..forest.trees.len().min(first + LANES)];
                Chunk::new(first, trees, &per, k)
            })
            .collect();
        Some(Compiled {
            k,
            kp: row_lanes(k),
            nf,
            edges,
            table,
            chunks,
        })
    }

    /// Bins `n` samples of row-major `x` into `bins` (`n` x `nf` bytes, then [`PAD`] zeros);
    /// `simd`: sixteen samples of a feature at a time with AVX-512 where the tables allow.
    fn bin_block(&self, x: &[f32], n: usize, bins: &mut Vec<u8>, simd: bool) {
        let nf = self.nf;
        bins.clear();
        bins.resize(n * nf + PAD, 0);
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if simd && self.table <= SIMD_TABLE && n * nf < i32::MAX as usize {
            done = n / 16 * 16;
            // SAFETY: the caller checked AVX-512 F/BW/VBMI; `x` holds `n` samples.
            unsafe { self.bin_block_avx512(x, done, bins) };
        }
        let _ = simd;
        for (row, b) in x[done * nf..n * nf]
            .chunks_exact(nf)
            .zip(bins[done * nf..].chunks_exact_mut(nf))
        {
            for (f, (&v, b)) in row.iter().zip(b.iter_mut()).enumerate() {
                *b = self.bin(f, v);
            }
        }
    }

    /// [`bin_block`](Self::bin_block) for `n` (a multiple of 16) samples: per feature, a
    /// gather of sixteen samples' values and a branch-free binary search in the feature's
    /// table held in four registers (`e < v` is false for NaN, as in [`bin`](Self::bin)).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW; `x` holds `n` samples of `nf` values; `bins`
    /// holds `n * nf` bytes; `self.table <= SIMD_TABLE`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn bin_block_avx512(&self, x: &[f32], n: usize, bins: &mut [u8]) {
        use std::arch::x86_64::*;
        let nf = self.nf;
        let lanes = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(nf as i32),
        );
        let mut col = [0u8; 16];
        let mut t = [f32::INFINITY; SIMD_TABLE];
        for f in 0..nf {
            t[..self.table].copy_from_slice(&self.edges[f * self.table..(f + 1) * self.table]);
            let tp = t.as_ptr();
            let (t0, t1) = (_mm512_loadu_ps(tp), _mm512_loadu_ps(tp.add(16)));
            let (t2, t3) = (_mm512_loadu_ps(tp.add(32)), _mm512_loadu_ps(tp.add(48)));
            let high = _mm512_set1_epi32(32);
            for s0 in (0..n).step_by(16) {
                let at = _mm512_add_epi32(lanes, _mm512_set1_epi32((s0 * nf + f) as i32));
                let v = _mm512_i32gather_ps::<4>(at, x.as_ptr());
                let mut i = _mm512_setzero_si512();
                let mut step = SIMD_TABLE as i32 / 2;
                while step > 0 {
                    let probe = _mm512_add_epi32(i, _mm512_set1_epi32(step - 1));
                    let lo = _mm512_permutex2var_ps(t0, probe, t1);
                    let hi = _mm512_permutex2var_ps(t2, probe, t3);
                    let e = _mm512_mask_blend_ps(_mm512_test_epi32_mask(probe, high), lo, hi);
                    let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(e, v);
                    i = _mm512_mask_add_epi32(i, below, i, _mm512_set1_epi32(step));
                    step /= 2;
                }
                _mm_storeu_si128(col.as_mut_ptr() as *mut __m128i, _mm512_cvtepi32_epi8(i));
                for (l, &b) in col.iter().enumerate() {
                    *bins.get_unchecked_mut((s0 + l) * nf + f) = b;
                }
            }
        }
    }

    /// Number of feature `f`'s thresholds below `v` (NaN: 0, so it goes left everywhere).
    #[inline]
    fn bin(&self, f: usize, v: f32) -> u8 {
        let e = &self.edges[f * self.table..(f + 1) * self.table];
        let mut i = 0;
        let mut step = self.table / 2;
        while step > 0 {
            if e[i + step - 1] < v {
                i += step;
            }
            step /= 2;
        }
        i as u8
    }

    /// Mean class probabilities (`probs`, `n` x K) and mean per-tree entropies (`entropy`)
    /// of `n` samples; `simd` (callers check [`simd_available`]) descends sixteen trees per
    /// register.
    pub(super) fn predict(
        &self,
        forest: &Forest,
        x: &[f32],
        n: usize,
        probs: &mut [f32],
        entropy: &mut [f32],
        simd: bool,
    ) {
        let (k, kp, nf) = (self.k, self.kp, self.nf);
        let mut bins = Vec::new();
        self.bin_block(x, n, &mut bins, simd);
        let mut acc = vec![0f32; n * kp];
        let mut leaves = vec![0u32; SUB_BLOCK * LANES];
        let simd = simd && nf <= SIMD_FEATURES;
        for chunk in &self.chunks {
            for s0 in (0..n).step_by(SUB_BLOCK) {
                let m = SUB_BLOCK.min(n - s0);
                let b = &bins[s0 * nf..];
                chunk.descend(b, nf, m, &mut leaves, simd);
                let xs = &x[s0 * nf..(s0 + m) * nf];
                let a = &mut acc[s0 * kp..(s0 + m) * kp];
                chunk.accumulate(forest, xs, nf, &leaves, a, kp);
            }
        }
        let nt = forest.trees.len() as f32;
        for (s, a) in acc.chunks_exact(kp).enumerate() {
            probs[s * k..s * k + k].copy_from_slice(&a[..k]);
            entropy[s] = a[k];
        }
        probs[..n * k].iter_mut().for_each(|p| *p /= nt);
        entropy[..n].iter_mut().for_each(|e| *e /= nt);
    }
}

impl Chunk {
    fn new(first: usize, trees: &[Tree], per: &[Vec<f32>], k: usize) -> Chunk {
        let depth = trees
            .iter()
            .map(|t| height(t, 0))
            .max()
            .unwrap_or(0)
            .min(FLAT_LEVELS);
        let inner = (1usize << depth) - 1;
        let slots = 1usize << depth;
        let mut c = Chunk {
            first,
            trees: trees.len(),
            depth,
            nodes: vec![ALWAYS_LEFT << 8; LANES * inner],
            slot_node: vec![0; LANES * slots],
            slot_leaf: vec![0; LANES * slots],
            rows: Vec::new(),
        };
        for (lane, t) in trees.iter().enumerate() {
            c.lay_out(lane, t, per);
            c.rows.push(leaf_rows(t, k));
        }
        c
    }

    /// Writes tree `t`'s top levels into lane `lane`. A leaf above the last level is padded
    /// with always-left nodes whose both children carry the leaf.
    fn lay_out(&mut self, lane: usize, t: &Tree, per: &[Vec<f32>]) {
        let inner = (1usize << self.depth) - 1;
        let slots = inner + 1;
        // (flat index, original node, level)
        let mut stack = vec![(0usize, 0u32, 0usize)];
        while let Some((fi, node, level)) = stack.pop() {
            let nd = &t.nodes[node as usize];
            if level == self.depth {
                self.slot_node[lane * slots + fi - inner] = node;
                self.slot_leaf[lane * slots + fi - inner] = if nd.feature == u32::MAX {
                    nd.left
                } else {
                    DEEPER | (fi - inner) as u32
                };
                continue;
            }
            let (l, r) = if nd.feature == u32::MAX {
                (node, node)
            } else {
                let e = &per[nd.feature as usize];
                let bin = e.partition_point(|&v| v < nd.threshold) as u32;
                self.nodes[lane * inner + fi] = nd.feature | bin << 8;
                (nd.left, nd.right)
            };
            stack.push((2 * fi + 1, l, level + 1));
            stack.push((2 * fi + 2, r, level + 1));
        }
    }

    /// The slot's `slot_leaf` entry reached by each of `m` samples in each lane (a leaf, or
    /// [`DEEPER`] | slot): `leaves[s * LANES + lane]`.
    fn descend(&self, bins: &[u8], nf: usize, m: usize, leaves: &mut [u32], simd: bool) {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the caller checked AVX-512 F/BW/VBMI; `bins` holds `m` samples of `nf`
            // bytes and [`PAD`] bytes after them, so every 128-byte load stays inside.
            unsafe { self.descend_avx512(bins, nf, m, leaves) };
            return;
        }
        let _ = simd;
        let inner = (1usize << self.depth) - 1;
        for s in 0..m {
            let b = &bins[s * nf..s * nf + nf];
            for lane in 0..self.trees {
                let nodes = &self.nodes[lane * inner..(lane + 1) * inner];
                let mut i = 0usize;
                for _ in 0..self.depth {
                    let nd = nodes[i];
                    let right = b[(nd & 0xff) as usize] as u32 > nd >> 8;
                    i = 2 * i + 1 + right as usize;
                }
                leaves[s * LANES + lane] = self.slot_leaf[(lane << self.depth) + i - inner];
            }
        }
    }

    /// [`descend`](Self::descend) with one sample's sixteen trees in the lanes of a register,
    /// four samples interleaved so their gathers overlap.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VBMI; `bins` holds `m` samples of `nf` bytes and
    /// then at least [`PAD`] bytes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn descend_avx512(&self, bins: &[u8], nf: usize, m: usize, leaves: &mut [u32]) {
        use std::arch::x86_64::*;
        const P: usize = 4;
        debug_assert!(bins.len() >= (m.max(1) - 1) * nf + PAD);
        let inner = (1i32 << self.depth) - 1;
        let base = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(inner),
        );
        // Lane l's slots start at l << depth; slot = i - inner.
        let slot_base = _mm512_sub_epi32(
            _mm512_sllv_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(self.depth as i32),
            ),
            _mm512_set1_epi32(inner),
        );
        let (one, low) = (_mm512_set1_epi32(1), _mm512_set1_epi32(0xff));
        let slot_leaf = self.slot_leaf.as_ptr() as *const i32;
        let nodes = self.nodes.as_ptr() as *const i32;
        for s0 in (0..m).step_by(P) {
            let mut lo = [_mm512_setzero_si512(); P];
            let mut hi = [_mm512_setzero_si512(); P];
            for j in 0..P.min(m - s0) {
                let p = bins.as_ptr().add((s0 + j) * nf);
                lo[j] = _mm512_loadu_si512(p as *const __m512i);
                hi[j] = _mm512_loadu_si512(p.add(64) as *const __m512i);
            }
            let mut i = [_mm512_setzero_si512(); P];
            for _ in 0..self.depth {
                for j in 0..P {
                    let nd = _mm512_i32gather_epi32::<4>(_mm512_add_epi32(base, i[j]), nodes);
                    // Byte 0 of each lane indexes the sample's 128 feature bytes.
                    let v = _mm512_and_si512(_mm512_permutex2var_epi8(lo[j], nd, hi[j]), low);
                    let right = _mm512_cmpgt_epu32_mask(v, _mm512_srli_epi32::<8>(nd));
                    let next = _mm512_add_epi32(_mm512_add_epi32(i[j], i[j]), one);
                    i[j] = _mm512_mask_add_epi32(next, right, next, one);
                }
            }
            for (j, &i) in i.iter().enumerate().take(m - s0) {
                let leaf = _mm512_i32gather_epi32::<4>(_mm512_add_epi32(slot_base, i), slot_leaf);
                let out = leaves.as_mut_ptr().add((s0 + j) * LANES) as *mut __m512i;
                _mm512_storeu_si512(out, leaf);
            }
        }
    }

    /// Adds each sample's leaf rows to `acc` (`kp` lanes per sample, a multiple of 8), tree
    /// by tree in the forest's order, eight lanes at a time.
    fn accumulate(
        &self,
        forest: &Forest,
        x: &[f32],
        nf: usize,
        leaves: &[u32],
        acc: &mut [f32],
        kp: usize,
    ) {
        let w = kp / 8;
        let (acc, _) = acc.as_chunks_mut::<8>();
        for lane in 0..self.trees {
            let (rows, _) = self.rows[lane].as_chunks::<8>();
            for (s, a) in acc.chunks_exact_mut(w).enumerate() {
                let leaf = self.leaf(forest, lane, leaves[s * LANES + lane], x, nf, s);
                for (a, r) in a.iter_mut().zip(&rows[leaf * w..leaf * w + w]) {
                    for q in 0..8 {
                        a[q] += r[q];
                    }
                }
            }
        }
    }

    /// The leaf of a descent's `slot_leaf` entry `v`; a slot that stands for a deeper subtree
    /// finishes with the pointer walk on sample `s`'s values.
    #[inline(always)]
    fn leaf(&self, forest: &Forest, lane: usize, v: u32, x: &[f32], nf: usize, s: usize) -> usize {
        if v & DEEPER == 0 {
            return v as usize;
        }
        let node = self.slot_node[(lane << self.depth) + (v & !DEEPER) as usize] as usize;
        forest.trees[self.first + lane].leaf_from(node, &x[s * nf..s * nf + nf])
    }
}

/// A tree's leaves as padded rows: K probabilities, the entropy, zeros to [`row_lanes`].
fn leaf_rows(t: &Tree, k: usize) -> Vec<f32> {
    let kp = row_lanes(k);
    let mut rows = vec![0.0; t.leaf_entropy.len() * kp];
    for (leaf, row) in rows.chunks_exact_mut(kp).enumerate() {
        row[..k].copy_from_slice(&t.leaf_probs[leaf * k..leaf * k + k]);
        row[k] = t.leaf_entropy[leaf];
    }
    rows
}
