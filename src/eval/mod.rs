//! Evaluation: the spatial block split and accuracy metrics.
//!
//! - [`split`]: disjoint train/test blocks and deterministic per-class sampling.
//! - [`metrics`]: confusion matrix, OA, kappa, per-class F1, mIoU.
//! - [`calibration`]: ECE, reliability, AUROC of uncertainty, masked-pixel statistics.

pub mod calibration;
pub mod metrics;
pub mod split;
