//! Evaluation: the spatial block split and accuracy metrics.
//!
//! - [`split`]: disjoint train/test blocks and deterministic per-class sampling.
//! - `metrics`: confusion matrix, OA, kappa, per-class F1, mIoU.
//! - `calibration`: ECE, reliability, AUROC of uncertainty, masked-pixel statistics.

pub(crate) mod calibration;
pub(crate) mod metrics;
pub(crate) mod record;
pub mod split;
pub mod stats;

/// Class index of a label value: its position in the class table `ids`; None for NaN,
/// values outside 0..=255 and ids the table does not hold (unlabelled).
pub fn class_index(ids: &[u8], v: f32) -> Option<usize> {
    if v.is_nan() || !(0.0..=255.0).contains(&v) {
        return None;
    }
    ids.iter().position(|&id| id as f32 == v)
}
