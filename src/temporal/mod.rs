//! Time series: dated observations of each modality regularised onto a season's temporal
//! grid, and the temporal statistics the trees learn from.
//!
//! - [`regularise`]: per-pixel means of the valid observations of each step, gaps filled by
//!   linear interpolation, the season's ends held, the valid observations counted.
//! - [`stats`]: percentiles, mean, spread, amplitude, date of the maximum and slope of a
//!   regular series.

pub mod regularise;
pub mod stats;

use ndarray::{Array2, Array3, Array4};

pub use regularise::StepAccumulator;

/// The regularised inputs of one tile of a season scene (halo included).
#[derive(Debug, Clone)]
pub struct SeasonInputs {
    /// Optical values as stored (DN) on the temporal grid, `[step, band, row, col]`; NaN where
    /// the season has no valid optical observation.
    pub optical_dn: Array4<f32>,
    /// SAR linear power on the temporal grid, `[step, polarisation, row, col]`.
    pub sar_linear: Array4<f32>,
    /// Valid optical observations per pixel in the season (cloud-free, not nodata).
    pub n_optical: Array2<u16>,
    /// Valid SAR observations per pixel in the season.
    pub n_sar: Array2<u16>,
    /// Steps with a valid optical observation `[step, row, col]` (the others are gap-filled).
    pub optical_observed: Array3<bool>,
    /// Steps with a valid SAR observation `[step, row, col]`.
    pub sar_observed: Array3<bool>,
}
