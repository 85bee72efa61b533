//! Hand-crafted features: pure ndarray kernels and the raw inputs of a tile (the feature
//! plan that stacks them is [`crate::scene::FeaturePlan`]).
//!
//! - [`indices`]: spectral indices from named bands.
//! - `sar`: SAR conversions, ratios and speckle filters.
//! - [`glcm`]: sliding-window GLCM (Haralick) texture.
//! - `temporal`: indices and SAR features of a season, step by step, and their statistics.

pub mod glcm;
pub mod indices;
pub(crate) mod sar;
pub(crate) mod temporal;

use ndarray::{s, Array2, Array3, ArrayView2, Axis};

pub use sar::Polarisation;

/// Raw inputs of one tile (halo included).
#[derive(Debug, Clone)]
pub struct TileInputs {
    /// Optical values as stored (DN), `[band, row, col]`; NaN where nodata or masked.
    pub optical_dn: Array3<f32>,
    /// SAR linear power, `[polarisation, row, col]` in the order of `sar_pols`; NaN in swath
    /// gaps / nodata.
    pub sar_linear: Array3<f32>,
    /// The polarisations of `sar_linear` (VV, VH or both, in [`Polarisation::ALL`] order).
    pub sar_pols: Vec<Polarisation>,
    /// A season scene's inputs on its temporal grid (`optical_dn` and `sar_linear` then hold
    /// the season's mean of the valid observations).
    pub season: Option<crate::temporal::SeasonInputs>,
}

impl TileInputs {
    /// The linear power of polarisation `p`, when the scene has it.
    pub fn sar_band(&self, p: Polarisation) -> Option<ArrayView2<'_, f32>> {
        let i = self.sar_pols.iter().position(|&q| q == p)?;
        Some(self.sar_linear.index_axis(Axis(0), i))
    }
}

/// Source band of a GLCM block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GlcmSource {
    /// Optical band index (values as stored, DN).
    Optical(usize),
    /// SAR VV in dB.
    Vv,
    /// SAR VH in dB.
    Vh,
}

impl GlcmSource {
    /// Resolves a configured band name against the optical band names.
    pub fn resolve(name: &str, optical_bands: &[String]) -> Option<GlcmSource> {
        if name.eq_ignore_ascii_case("VV") {
            Some(GlcmSource::Vv)
        } else if name.eq_ignore_ascii_case("VH") {
            Some(GlcmSource::Vh)
        } else {
            optical_bands
                .iter()
                .position(|b| b.eq_ignore_ascii_case(name))
                .map(GlcmSource::Optical)
        }
    }

    /// The SAR polarisation the source is, if it is SAR.
    pub fn polarisation(&self) -> Option<Polarisation> {
        match self {
            GlcmSource::Optical(_) => None,
            GlcmSource::Vv => Some(Polarisation::Vv),
            GlcmSource::Vh => Some(Polarisation::Vh),
        }
    }

    /// The source image of a tile, in the units the quantisation range refers to (all NaN for
    /// a polarisation the scene lacks, which checked pipelines never ask for).
    pub fn image(&self, t: &TileInputs) -> Array2<f32> {
        if let GlcmSource::Optical(i) = self {
            return t.optical_dn.index_axis(Axis(0), *i).to_owned();
        }
        let (_, h, w) = t.optical_dn.dim();
        self.polarisation().and_then(|p| t.sar_band(p)).map_or_else(
            || Array2::from_elem((h, w), f32::NAN),
            |b| b.mapv(sar::linear_to_db),
        )
    }
}

/// Crops a `[band, row, col]` stack to a core window given relative to the stack.
pub fn crop(stack: &Array3<f32>, row: usize, col: usize, h: usize, w: usize) -> Array3<f32> {
    stack.slice(s![.., row..row + h, col..col + w]).to_owned()
}
