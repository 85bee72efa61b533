//! `[features]`: spectral indices, SAR features, speckle filter and GLCM texture blocks.

use serde::{Deserialize, Serialize};

use super::SceneDef;
use crate::features::glcm::{Definitions, Quantisation, FEATURE_NAMES};
use crate::features::sar::{Polarisation, SarFeature, SpeckleFilter};

/// Hand-crafted features.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Include the optical reflectances themselves.
    #[serde(default = "yes")]
    pub optical_bands: bool,
    /// Spectral indices by name (see [`INDICES`]; case-insensitive).
    #[serde(default = "default_indices")]
    pub indices: Vec<String>,
    /// SAR features.
    #[serde(default = "default_sar")]
    pub sar: Vec<SarFeature>,
    /// Speckle filter applied before SAR features.
    #[serde(default)]
    pub speckle: SpeckleConfig,
    /// GLCM texture blocks, one per source band.
    #[serde(default)]
    pub glcm: Vec<GlcmConfig>,
}

fn yes() -> bool {
    true
}

fn default_indices() -> Vec<String> {
    [
        "NDVI", "NDWI", "MNDWI", "NDBI", "SAVI", "EVI", "NBR", "NDRE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn default_sar() -> Vec<SarFeature> {
    vec![
        SarFeature::VvDb,
        SarFeature::VhDb,
        SarFeature::VhVvRatioDb,
        SarFeature::Rvi,
    ]
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            optical_bands: true,
            indices: default_indices(),
            sar: default_sar(),
            speckle: SpeckleConfig::default(),
            glcm: Vec::new(),
        }
    }
}

/// Speckle filter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeckleConfig {
    /// The filter.
    #[serde(default = "default_filter")]
    pub filter: SpeckleFilter,
    /// Window radius in pixels.
    #[serde(default = "default_speckle_radius")]
    pub radius: usize,
    /// Equivalent number of looks of the input.
    #[serde(default = "default_looks")]
    pub looks: f64,
}

fn default_filter() -> SpeckleFilter {
    SpeckleFilter::Lee
}
fn default_speckle_radius() -> usize {
    2
}
fn default_looks() -> f64 {
    4.4
}

impl Default for SpeckleConfig {
    fn default() -> Self {
        SpeckleConfig {
            filter: default_filter(),
            radius: default_speckle_radius(),
            looks: default_looks(),
        }
    }
}

/// GLCM texture on one source band.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlcmConfig {
    /// Source: an optical band name (reflectance) or `VV` / `VH` (dB).
    pub band: String,
    /// Window radius (window = 2 radius + 1).
    #[serde(default = "default_glcm_radius")]
    pub radius: usize,
    /// Offsets `[dx, dy]` (x = column, y = row going down).
    #[serde(default = "default_offsets")]
    pub offsets: Vec<[i32; 2]>,
    /// Average features over the offsets (else one set per offset).
    #[serde(default = "yes")]
    pub average: bool,
    /// Grey levels (8..=64).
    #[serde(default = "default_levels")]
    pub levels: usize,
    /// Quantisation range: from percentiles of the data, or fixed.
    #[serde(default = "default_quant")]
    pub quantisation: Quantisation,
    /// Percentiles for the `percentile` range.
    #[serde(default = "default_percentiles")]
    pub percentiles: [f64; 2],
    /// Range for `fixed` quantisation, in the source's units.
    #[serde(default)]
    pub min: Option<f64>,
    /// Range for `fixed` quantisation.
    #[serde(default)]
    pub max: Option<f64>,
    /// Orfeo ToolBox definitions and quantisation, or textbook ones.
    #[serde(default = "default_defs")]
    pub definitions: Definitions,
    /// Feature names (default: all 13).
    #[serde(default)]
    pub features: Option<Vec<String>>,
}

fn default_glcm_radius() -> usize {
    2
}
fn default_offsets() -> Vec<[i32; 2]> {
    vec![[1, 0], [0, 1], [1, 1], [1, -1]]
}
fn default_levels() -> usize {
    16
}
fn default_quant() -> Quantisation {
    Quantisation::Percentile
}
fn default_percentiles() -> [f64; 2] {
    [1.0, 99.0]
}
fn default_defs() -> Definitions {
    Definitions::Otb
}

/// Optical bands each spectral index refers to.
pub use crate::features::indices::INDICES;

/// Whether a GLCM source names SAR (`VV` or `VH`).
fn is_sar_band(band: &str) -> bool {
    band.eq_ignore_ascii_case("VV") || band.eq_ignore_ascii_case("VH")
}

impl FeatureConfig {
    /// Checks the feature settings; `Err` is the message.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for idx in &self.indices {
            if crate::features::indices::index(idx).is_none() {
                let known: Vec<_> = INDICES.iter().map(|i| i.name).collect();
                return Err(format!(
                    "unknown index `{idx}` in `features.indices`; known: {}",
                    known.join(", ")
                ));
            }
        }
        let sp = &self.speckle;
        if sp.filter != SpeckleFilter::None && (sp.radius == 0 || sp.radius > 15) {
            return Err("`features.speckle.radius` must be 1..=15".into());
        }
        if sp.looks.is_nan() || sp.looks < 1.0 {
            return Err("`features.speckle.looks` must be >= 1".into());
        }
        self.glcm.iter().try_for_each(GlcmConfig::validate)
    }

    /// Checks that a scene has every band the features need; `Err` is the message.
    pub fn validate_scene(&self, s: &SceneDef) -> std::result::Result<(), String> {
        for idx in &self.indices {
            if let Err(b) = crate::features::indices::index_band_positions(idx, &s.optical.bands) {
                let alt = if b == "B08" { " (or B8A)" } else { "" };
                return Err(format!(
                    "scene `{}`: index {idx} needs optical band {b}{alt}, which `optical.bands` does not name; add it or drop {idx} from `features.indices`",
                    s.name
                ));
            }
        }
        let pols = s.polarisations();
        let lacks = |need: &[Polarisation]| need.iter().find(|p| !pols.contains(p)).copied();
        for f in &self.sar {
            if let Some(p) = lacks(f.needs()) {
                return Err(format!(
                    "scene `{}`: `features.sar` has {}, which needs {}, but `sar.polarisations` ({}) has no {}; drop it from `features.sar` (a VV-only scene can use vv_db and vv_lin)",
                    s.name, f.name(), p.name(), s.sar.polarisations.join(" "), p.name()
                ));
            }
        }
        for g in &self.glcm {
            if let Some(p) = Polarisation::parse(&g.band).filter(|p| !pols.contains(p)) {
                return Err(format!(
                    "scene `{}`: `features.glcm.band = \"{}\"` but `sar.polarisations` ({}) has no {}; texture a band the scene has",
                    s.name, g.band, s.sar.polarisations.join(" "), p.name()
                ));
            }
            if !is_sar_band(&g.band) && !s.has_optical_band(&g.band) {
                return Err(format!(
                    "scene `{}`: `features.glcm.band = \"{}\"` is neither an optical band nor VV/VH",
                    s.name, g.band
                ));
            }
        }
        Ok(())
    }
}

impl GlcmConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        let g = self;
        if !(2..=64).contains(&g.levels) {
            return Err(format!(
                "`features.glcm.levels = {}`; use 2..=64 grey levels",
                g.levels
            ));
        }
        if g.radius == 0 || g.radius > 31 {
            return Err(format!("`features.glcm.radius = {}`; use 1..=31", g.radius));
        }
        if g.offsets.is_empty()
            || g.offsets
                .iter()
                .any(|o| (o[0] == 0 && o[1] == 0) || o[0].abs() > 8 || o[1].abs() > 8)
        {
            return Err(
                "`features.glcm.offsets` must list non-zero [dx, dy] pairs with |d| <= 8".into(),
            );
        }
        match g.quantisation {
            Quantisation::Percentile => {
                let [lo, hi] = g.percentiles;
                if !((0.0..100.0).contains(&lo) && lo < hi && hi <= 100.0) {
                    return Err("`features.glcm.percentiles` must be [low, high] with 0 <= low < high <= 100".into());
                }
            }
            Quantisation::Fixed => match (g.min, g.max) {
                (Some(a), Some(b)) if a < b => {}
                _ => {
                    return Err(
                        "`features.glcm.quantisation = \"fixed\"` needs `min` < `max`".into(),
                    )
                }
            },
        }
        for f in g.features.iter().flatten() {
            if !FEATURE_NAMES.contains(&f.as_str()) {
                return Err(format!(
                    "unknown GLCM feature `{f}`; known: {}",
                    FEATURE_NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }
}
