//! What the comparison statistics need beyond a confusion matrix, saved beside each product
//! (`<scene>/<method>.eval.bin`): the confusion matrix of every spatial block (the unit of the
//! block bootstrap and of the paired block test), whether each evaluated pixel was predicted
//! and right (bitsets in one fixed order, so two methods pair on the same pixels for
//! McNemar), and the mapped pixels per class (for area estimates).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Format version of [`EvalRecord`].
pub const FORMAT: u32 = 1;

/// The evaluation record of one method on one scene.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// [`FORMAT`].
    pub format: u32,
    /// Classes (confusion matrices are `classes` x `classes`, reference-major).
    pub classes: usize,
    /// Evaluated pixels (labelled, on the evaluated side), whatever the prediction.
    pub evaluable: u64,
    /// Confusion matrix of each block with evaluated pixels, by block index.
    pub blocks: BTreeMap<u32, Vec<u64>>,
    /// Bit per evaluable pixel: the method predicted a class there.
    pub predicted: Vec<u64>,
    /// Bit per evaluable pixel: the prediction equals the reference.
    pub correct: Vec<u64>,
    /// Pixels mapped as each class over the whole scene.
    pub mapped: Vec<u64>,
    /// Area of one pixel, in the CRS's units squared.
    pub pixel_area: f64,
}

/// The (predicted, correct) bits of one tile's evaluable pixels, with its core's origin.
type TileBits = ((usize, usize), Vec<(bool, bool)>);

/// One tile's share of a record (tiles finish in any order; parts are ordered by their core).
#[derive(Debug, Clone, Default)]
pub struct RecordParts {
    parts: Vec<TileBits>,
    blocks: BTreeMap<u32, Vec<u64>>,
    mapped: Vec<u64>,
}

impl RecordParts {
    /// Starts the part of the tile whose core begins at `core` (row, col).
    pub fn tile(core: (usize, usize), k: usize) -> Self {
        RecordParts {
            parts: vec![(core, Vec::new())],
            blocks: BTreeMap::new(),
            mapped: vec![0; k],
        }
    }

    /// One evaluable pixel of this tile (in row-major order within its core): its block,
    /// reference class and predicted class (None: no prediction).
    pub fn add(&mut self, block: u32, reference: usize, predicted: Option<usize>) {
        let k = self.mapped.len();
        if let Some(q) = predicted {
            self.blocks.entry(block).or_insert_with(|| vec![0; k * k])[reference * k + q] += 1;
        }
        if let Some(p) = self.parts.last_mut() {
            p.1.push((predicted.is_some(), predicted == Some(reference)));
        }
    }

    /// One mapped pixel of class `c` (every pixel of the core with a prediction).
    pub fn map(&mut self, c: usize) {
        self.mapped[c] += 1;
    }

    /// Adds another tile's parts.
    pub fn merge(&mut self, o: &RecordParts) {
        self.parts.extend(o.parts.iter().cloned());
        for (b, m) in &o.blocks {
            let e = self.blocks.entry(*b).or_insert_with(|| vec![0; m.len()]);
            e.iter_mut().zip(m).for_each(|(a, x)| *a += x);
        }
        if self.mapped.len() < o.mapped.len() {
            self.mapped.resize(o.mapped.len(), 0);
        }
        self.mapped
            .iter_mut()
            .zip(&o.mapped)
            .for_each(|(a, x)| *a += x);
    }

    /// The record, with the pixel bits in the order of the tiles' cores.
    pub fn finish(mut self, k: usize, pixel_area: f64) -> EvalRecord {
        self.parts.sort_by_key(|p| p.0);
        let bits: Vec<(bool, bool)> = self.parts.into_iter().flat_map(|p| p.1).collect();
        let pack = |f: &dyn Fn(&(bool, bool)) -> bool| {
            let mut v = vec![0u64; bits.len().div_ceil(64)];
            for (i, _) in bits.iter().enumerate().filter(|x| f(x.1)) {
                v[i / 64] |= 1 << (i % 64);
            }
            v
        };
        EvalRecord {
            format: FORMAT,
            classes: k,
            evaluable: bits.len() as u64,
            predicted: pack(&|b| b.0),
            correct: pack(&|b| b.1),
            blocks: self.blocks,
            mapped: if self.mapped.is_empty() {
                vec![0; k]
            } else {
                self.mapped
            },
            pixel_area,
        }
    }
}

impl EvalRecord {
    /// Saves it (postcard) under a temporary name, then renames.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = postcard::to_allocvec(self)
            .map_err(|e| Error::Internal(format!("encode evaluation record: {e}")))?;
        crate::io::writer::write_atomic(path, &bytes)
    }

    /// Loads a saved record (None when absent, unreadable or of another format).
    pub fn load(path: &Path) -> Option<EvalRecord> {
        let bytes = std::fs::read(path).ok()?;
        postcard::from_bytes::<EvalRecord>(&bytes)
            .ok()
            .filter(|r| r.format == FORMAT)
    }

    /// Whether `o` can have been evaluated on the same reference pixels: as many, with the
    /// same classes, and in every block the reference class counts of the predicted pixels
    /// differ by no more than the pixels one of the two left unpredicted.
    pub fn same_reference(&self, o: &EvalRecord) -> bool {
        if self.evaluable != o.evaluable || self.classes != o.classes {
            return false;
        }
        let k = self.classes.max(1);
        let rows = |c: &[u64]| -> Vec<u64> { c.chunks(k).map(|r| r.iter().sum()).collect() };
        let unpredicted = |r: &EvalRecord| {
            r.evaluable
                - r.predicted
                    .iter()
                    .map(|w| w.count_ones() as u64)
                    .sum::<u64>()
        };
        let slack = unpredicted(self) + unpredicted(o);
        let keys: std::collections::BTreeSet<&u32> =
            self.blocks.keys().chain(o.blocks.keys()).collect();
        let zero = vec![0u64; k * k];
        let gap: u64 = keys
            .into_iter()
            .map(|b| {
                let x = rows(self.blocks.get(b).unwrap_or(&zero));
                let y = rows(o.blocks.get(b).unwrap_or(&zero));
                x.iter().zip(&y).map(|(a, c)| a.abs_diff(*c)).sum::<u64>()
            })
            .sum();
        gap <= slack
    }

    /// McNemar's discordant counts against `o` on the pixels both predicted: (only this one
    /// right, only `o` right); None when the two were not evaluated on the same pixels.
    pub fn discordant(&self, o: &EvalRecord) -> Option<(u64, u64)> {
        if self.evaluable != o.evaluable {
            return None;
        }
        let (mut a, mut b) = (0, 0);
        for i in 0..self.correct.len() {
            let both = self.predicted[i] & o.predicted[i];
            a += (self.correct[i] & !o.correct[i] & both).count_ones() as u64;
            b += (o.correct[i] & !self.correct[i] & both).count_ones() as u64;
        }
        Some((a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_in_any_order_give_one_record_and_pair_pixels() {
        let k = 2;
        let tile = |core, px: &[(u32, usize, Option<usize>)]| {
            let mut t = RecordParts::tile(core, k);
            for &(b, r, p) in px {
                t.add(b, r, p);
                if let Some(c) = p {
                    t.map(c);
                }
            }
            t
        };
        let t1 = tile((0, 0), &[(0, 0, Some(0)), (0, 1, Some(0)), (1, 1, None)]);
        let t2 = tile((0, 64), &[(2, 1, Some(1))]);
        let (mut a, mut b) = (RecordParts::default(), RecordParts::default());
        a.merge(&t1);
        a.merge(&t2);
        b.merge(&t2);
        b.merge(&t1);
        let (ra, rb) = (a.finish(k, 100.0), b.finish(k, 100.0));
        assert_eq!(ra, rb);
        assert_eq!(ra.evaluable, 4);
        assert_eq!(ra.predicted, vec![0b1011]);
        assert_eq!(ra.correct, vec![0b1001]);
        assert_eq!(ra.blocks[&0], vec![1, 0, 1, 0]);
        assert_eq!(ra.mapped, vec![2, 1]);
        // Another method: right where the first was wrong, wrong on the last pixel.
        let t3 = tile((0, 0), &[(0, 0, Some(0)), (0, 1, Some(1)), (1, 1, Some(1))]);
        let t4 = tile((0, 64), &[(2, 1, Some(0))]);
        let mut c = RecordParts::default();
        c.merge(&t3);
        c.merge(&t4);
        let rc = c.finish(k, 100.0);
        // Pixels both predicted: 0 (both right), 1 (only c), 3 (only a).
        assert_eq!(ra.discordant(&rc), Some((1, 1)));
        // Same reference pixels whatever the predictions; another labelling is not.
        assert!(ra.same_reference(&rc) && rc.same_reference(&ra));
        let t5 = tile((0, 0), &[(0, 0, Some(0)), (0, 0, Some(1)), (1, 1, Some(1))]);
        let mut d = RecordParts::default();
        d.merge(&t5);
        d.merge(&t4);
        assert!(!ra.same_reference(&d.finish(k, 100.0)));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.eval.bin");
        ra.save(&p).unwrap();
        assert_eq!(EvalRecord::load(&p), Some(ra));
    }
}
