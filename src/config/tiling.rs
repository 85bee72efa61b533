//! `[tiling]`, `[coregistration]` and `[split]`.

use serde::{Deserialize, Serialize};

/// Tiling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiling {
    /// Core tile size in pixels (square); the halo is derived from the features.
    #[serde(default = "default_tile")]
    pub tile_size: usize,
    /// Worker threads (default: all cores).
    #[serde(default)]
    pub workers: Option<usize>,
}

fn default_tile() -> usize {
    512
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling {
            tile_size: default_tile(),
            workers: None,
        }
    }
}

impl Tiling {
    /// Checks the settings; `Err` is the message.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.tile_size < 16 {
            return Err(format!(
                "`tiling.tile_size = {}`; use at least 16",
                self.tile_size
            ));
        }
        if self.workers == Some(0) {
            return Err("`tiling.workers` must be at least 1".into());
        }
        Ok(())
    }
}

/// Co-registration policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coregistration {
    /// Warp SAR, labels and mask onto the optical grid when grids differ.
    #[serde(default)]
    pub allow_warp: bool,
    /// Tolerance on origin and pixel size, in pixels.
    #[serde(default = "default_tol")]
    pub tolerance_pixels: f64,
}

fn default_tol() -> f64 {
    1e-6
}

impl Default for Coregistration {
    fn default() -> Self {
        Coregistration {
            allow_warp: false,
            tolerance_pixels: default_tol(),
        }
    }
}

/// Spatial train/test split in square blocks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Block side in pixels.
    #[serde(default = "default_block")]
    pub block_size: usize,
    /// Fraction of blocks held out for evaluation.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Training samples per class (cap; classes are balanced by sampling and weights).
    #[serde(default = "default_samples")]
    pub samples_per_class: usize,
    /// How vector reference features are split: each polygon (or point) on the side of the
    /// block holding its centre (`blocks`), or polygons drawn at random by seed with
    /// `test_fraction` (`polygons`). Either way all pixels of one polygon share a side.
    #[serde(default, skip_serializing_if = "SplitBy::is_blocks")]
    pub by: SplitBy,
    /// Seed of the split and of the held-out scene draw (default: the pipeline's `seed`), so
    /// that repeats with other seeds keep one held-out set (`geofuse study` sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Share of the labelled training pixels that train, drawn per pixel with the pipeline's
    /// seed (nested: the pixels kept at 0.1 are among those kept at 0.3). Default 1: all.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub training_fraction: f64,
}

fn one() -> f64 {
    1.0
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}

/// How reference polygons are split into training and test.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SplitBy {
    /// Spatial blocks (a polygon goes with the block of its centre).
    #[default]
    Blocks,
    /// Whole polygons drawn by seed.
    Polygons,
}

impl SplitBy {
    fn is_blocks(&self) -> bool {
        *self == SplitBy::Blocks
    }
}

fn default_block() -> usize {
    64
}
fn default_test_fraction() -> f64 {
    0.3
}
fn default_samples() -> usize {
    3000
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            block_size: default_block(),
            test_fraction: default_test_fraction(),
            samples_per_class: default_samples(),
            by: SplitBy::Blocks,
            seed: None,
            training_fraction: 1.0,
        }
    }
}

impl SplitConfig {
    /// Checks the settings; `Err` is the message.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.block_size < 4 {
            return Err("`split.block_size` must be at least 4 pixels".into());
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err("`split.test_fraction` must be strictly between 0 and 1".into());
        }
        if !(self.training_fraction > 0.0 && self.training_fraction <= 1.0) {
            return Err("`split.training_fraction` must be in (0, 1]".into());
        }
        if self.samples_per_class == 0 {
            return Err("`split.samples_per_class` must be positive".into());
        }
        Ok(())
    }
}
