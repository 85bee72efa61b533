//! The pipeline file (TOML): scenes, classes, tiling, features, split, methods, output.
//!
//! Unknown keys are an error that names the key; relative paths resolve against the folder
//! of the pipeline file; `validate` checks everything that can be checked without opening
//! a raster.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A whole pipeline file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Output folder (products, metrics, manifest, report).
    pub output: PathBuf,
    /// Seed for every random choice (sampling, split, forest).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Class table: id (label and product value), name, colour.
    pub classes: Vec<ClassDef>,
    /// Scenes to process.
    pub scenes: Vec<SceneDef>,
    /// Tiling.
    #[serde(default)]
    pub tiling: Tiling,
    /// Co-registration policy.
    #[serde(default)]
    pub coregistration: Coregistration,
    /// Hand-crafted features.
    #[serde(default)]
    pub features: FeatureConfig,
    /// Spatial train/test split.
    #[serde(default)]
    pub split: SplitConfig,
    /// Methods to run on every scene.
    pub methods: Vec<MethodDef>,
}

fn default_seed() -> u64 {
    42
}

/// One class of the class table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassDef {
    /// Value in the label raster and in the product's class band (0..=254).
    pub id: u8,
    /// Name written to the product's category names.
    pub name: String,
    /// Colour as `#rrggbb`.
    pub color: String,
}

impl ClassDef {
    /// RGB triple of `color`.
    pub fn rgb(&self) -> Option<[u8; 3]> {
        let h = self.color.strip_prefix('#')?;
        if h.len() != 6 {
            return None;
        }
        let p = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
        Some([p(0)?, p(2)?, p(4)?])
    }
}

/// One scene: co-registered optical and SAR rasters, optional labels and mask.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneDef {
    /// Scene name: the product folder under the output folder.
    pub name: String,
    /// Optical (Sentinel-2-like) raster.
    pub optical: OpticalDef,
    /// SAR (Sentinel-1-like) raster.
    pub sar: SarDef,
    /// Optional reference labels (class ids of the class table; other values are unlabelled).
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// Optional validity/cloud mask for the optical raster.
    #[serde(default)]
    pub mask: Option<MaskDef>,
}

/// Optical raster description.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpticalDef {
    /// Path to the raster.
    pub path: PathBuf,
    /// Band names in file order (e.g. B02 B03 B04 B05 B06 B07 B08 B8A B11 B12).
    pub bands: Vec<String>,
    /// Reflectance = DN * scale + offset (Sentinel-2 L2A: 1e-4).
    #[serde(default = "default_reflectance_scale")]
    pub scale: f64,
    /// Reflectance offset.
    #[serde(default)]
    pub offset: f64,
}

fn default_reflectance_scale() -> f64 {
    1e-4
}

/// SAR raster description.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SarDef {
    /// Path to the raster.
    pub path: PathBuf,
    /// Polarisations in file order; must contain VV and VH.
    #[serde(default = "default_pols")]
    pub polarisations: Vec<String>,
    /// Unit of the stored backscatter.
    #[serde(default)]
    pub unit: SarUnit,
}

fn default_pols() -> Vec<String> {
    vec!["VV".into(), "VH".into()]
}

/// Unit of stored SAR backscatter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SarUnit {
    /// Decibels (10 log10 of linear power).
    #[default]
    Db,
    /// Linear power (sigma0 / gamma0).
    Linear,
}

/// Validity mask for the optical raster (e.g. a cloud mask or Sen2Cor SCL).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskDef {
    /// Path to the single-band mask raster.
    pub path: PathBuf,
    /// Mask values that make the optical pixel invalid (synthetic: 1 cloud, 2 shadow;
    /// SCL: 3 8 9 10).
    pub invalid: Vec<u16>,
}

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

/// Hand-crafted features.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Include the optical reflectances themselves.
    #[serde(default = "yes")]
    pub optical_bands: bool,
    /// Spectral indices by name (NDVI NDWI MNDWI NDBI SAVI EVI NBR NDRE).
    #[serde(default = "default_indices")]
    pub indices: Vec<String>,
    /// SAR features by name (vv_db vh_db vh_vv_ratio_db rvi).
    #[serde(default = "default_sar")]
    pub sar: Vec<String>,
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

fn default_sar() -> Vec<String> {
    ["vv_db", "vh_db", "vh_vv_ratio_db", "rvi"]
        .iter()
        .map(|s| s.to_string())
        .collect()
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
    /// `none`, `lee` or `gamma-map`.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// Window radius in pixels.
    #[serde(default = "default_speckle_radius")]
    pub radius: usize,
    /// Equivalent number of looks of the input.
    #[serde(default = "default_looks")]
    pub looks: f64,
}

fn default_filter() -> String {
    "lee".into()
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
    /// Quantisation range: `percentile` (from the scene) or `fixed`.
    #[serde(default = "default_quant")]
    pub quantisation: String,
    /// Percentiles for the `percentile` range.
    #[serde(default = "default_percentiles")]
    pub percentiles: [f64; 2],
    /// Range for `fixed` quantisation, in the source's units.
    #[serde(default)]
    pub min: Option<f64>,
    /// Range for `fixed` quantisation.
    #[serde(default)]
    pub max: Option<f64>,
    /// `otb` (Orfeo ToolBox definitions and quantisation) or `standard`.
    #[serde(default = "default_defs")]
    pub definitions: String,
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
fn default_quant() -> String {
    "percentile".into()
}
fn default_percentiles() -> [f64; 2] {
    [1.0, 99.0]
}
fn default_defs() -> String {
    "otb".into()
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
        }
    }
}

/// A method to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodDef {
    /// Product name (`<out>/<scene>/<name>.tif`).
    pub name: String,
    /// Method kind: `handcrafted` or `learned` (default: `learned` when the name is a fusion
    /// strategy, else the name).
    #[serde(default)]
    pub kind: Option<String>,
    /// Fusion strategy of a learned method (default: the name): early, late, concat, add,
    /// bilinear, attention, learned-kernel, fixed-kernel, optical-only, sar-only.
    #[serde(default)]
    pub fusion: Option<String>,
    /// Learned: latent channels per encoder.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Learned: maximum training epochs.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Learned: stop after this many epochs without a better validation score.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// Learned: patch side in pixels (capped by the split block size).
    #[serde(default = "default_patch")]
    pub patch: usize,
    /// Learned: training patches sampled per epoch pool.
    #[serde(default = "default_patches")]
    pub patches: usize,
    /// Learned: patches per optimiser step.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Learned: Adam learning rate.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Learned: probability of dropping a whole modality for a training patch.
    #[serde(default = "default_modality_dropout")]
    pub modality_dropout: f64,
    /// Learned: dropout rate on the heads' hidden layer, at training and in the Monte Carlo
    /// passes (epistemic uncertainty); 0 disables Monte Carlo dropout.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Learned: Monte Carlo dropout passes at inference (epistemic uncertainty). An inference
    /// setting: it also applies to a model loaded with `model`.
    #[serde(default = "default_mc")]
    pub mc_passes: usize,
    /// Learned kernel fusion: kernel side (odd).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// Learned: also feed the hand-crafted features ([features]) to the network, optical ones
    /// to the optical branch and SAR ones to the SAR branch (hybrid).
    #[serde(default)]
    pub hybrid: bool,
    /// Trees in the forest.
    #[serde(default = "default_trees")]
    pub trees: usize,
    /// Maximum tree depth.
    #[serde(default = "default_depth")]
    pub max_depth: usize,
    /// Minimum samples in a leaf.
    #[serde(default = "default_min_leaf")]
    pub min_samples_leaf: usize,
    /// Features tried per split (default: sqrt of the feature count).
    #[serde(default)]
    pub features_per_split: Option<usize>,
    /// Load this model instead of training one per scene.
    #[serde(default)]
    pub model: Option<PathBuf>,
}

fn default_width() -> usize {
    16
}
fn default_epochs() -> usize {
    40
}
fn default_patience() -> usize {
    8
}
fn default_patch() -> usize {
    32
}
fn default_patches() -> usize {
    256
}
fn default_batch() -> usize {
    16
}
fn default_lr() -> f64 {
    3e-3
}
fn default_modality_dropout() -> f64 {
    0.2
}
fn default_dropout() -> f64 {
    0.5
}
fn default_mc() -> usize {
    16
}
fn default_kernel() -> usize {
    3
}

fn default_trees() -> usize {
    100
}
fn default_depth() -> usize {
    18
}
fn default_min_leaf() -> usize {
    2
}

impl MethodDef {
    /// The method kind.
    pub fn kind(&self) -> &str {
        match &self.kind {
            Some(k) => k,
            None if FUSIONS.contains(&self.name.as_str()) => "learned",
            None => &self.name,
        }
    }

    /// The fusion strategy of a learned method.
    pub fn fusion(&self) -> &str {
        self.fusion.as_deref().unwrap_or(&self.name)
    }
}

/// Method kinds this build can run.
pub const METHOD_KINDS: &[&str] = &["handcrafted", "learned"];
/// Fusion strategies of learned methods.
pub const FUSIONS: &[&str] = &[
    "early",
    "late",
    "concat",
    "add",
    "bilinear",
    "attention",
    "learned-kernel",
    "fixed-kernel",
    "optical-only",
    "sar-only",
];
/// Optical bands the indices refer to.
pub const INDEX_BANDS: &[(&str, &[&str])] = &[
    ("NDVI", &["B04", "B08"]),
    ("NDWI", &["B03", "B08"]),
    ("MNDWI", &["B03", "B11"]),
    ("NDBI", &["B08", "B11"]),
    ("SAVI", &["B04", "B08"]),
    ("EVI", &["B02", "B04", "B08"]),
    ("NBR", &["B08", "B12"]),
    ("NDRE", &["B05", "B08"]),
    ("NDMI", &["B08", "B11"]),
    ("BI", &["B03", "B04"]),
];
/// SAR feature names.
pub const SAR_FEATURES: &[&str] = &[
    "vv_db",
    "vh_db",
    "vh_vv_ratio_db",
    "rvi",
    "vv_lin",
    "vh_lin",
];

impl Pipeline {
    /// Reads, parses, resolves relative paths and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                path,
                format!("cannot read the pipeline file ({e}); check the path"),
            )
        })?;
        let mut p: Pipeline = toml::from_str(&text)
            .map_err(|e| Error::config(path, e.to_string().trim_end().to_string()))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        p.resolve_paths(&base);
        p.validate(path)?;
        Ok(p)
    }

    /// Makes every relative path absolute against `base` (the pipeline file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = normalize(&base.join(&*p));
            }
        };
        fix(&mut self.output);
        for s in &mut self.scenes {
            fix(&mut s.optical.path);
            fix(&mut s.sar.path);
            if let Some(l) = &mut s.labels {
                fix(l);
            }
            if let Some(m) = &mut s.mask {
                fix(&mut m.path);
            }
        }
        for m in &mut self.methods {
            if let Some(p) = &mut m.model {
                fix(p);
            }
        }
    }

    /// Checks the configuration; errors name the key and the fix.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |msg: String| Err(Error::config(path, msg));
        if self.classes.is_empty() {
            return err(
                "`classes` is empty; list at least two classes with id, name, color".into(),
            );
        }
        if self.classes.len() < 2 {
            return err("`classes` needs at least two classes to classify".into());
        }
        let mut ids = std::collections::HashSet::new();
        for c in &self.classes {
            if c.id == 255 {
                return err(format!(
                    "class `{}` uses id 255, which is the product's nodata; pick 0..=254",
                    c.name
                ));
            }
            if !ids.insert(c.id) {
                return err(format!("class id {} appears twice in `classes`", c.id));
            }
            if c.rgb().is_none() {
                return err(format!(
                    "class `{}` has color `{}`; write it as #rrggbb",
                    c.name, c.color
                ));
            }
        }
        if self.scenes.is_empty() {
            return err("`scenes` is empty; add at least one [[scenes]] table".into());
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.scenes {
            if s.name.is_empty() || s.name.contains(['/', '\\']) || s.name.starts_with('.') {
                return err(format!(
                    "scene name `{}` must be a plain folder name (no slashes, not starting with '.')",
                    s.name
                ));
            }
            if !names.insert(&s.name) {
                return err(format!("scene name `{}` appears twice", s.name));
            }
            if s.optical.bands.is_empty() {
                return err(format!(
                    "scene `{}`: `optical.bands` is empty; name the bands in file order",
                    s.name
                ));
            }
            for want in ["VV", "VH"] {
                if !s
                    .sar
                    .polarisations
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(want))
                {
                    return err(format!(
                        "scene `{}`: `sar.polarisations` lacks {want}; geofuse needs VV and VH",
                        s.name
                    ));
                }
            }
            for idx in &self.features.indices {
                let Some((_, need)) = INDEX_BANDS
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(idx))
                else {
                    continue;
                };
                for b in *need {
                    if !s.optical.bands.iter().any(|x| x.eq_ignore_ascii_case(b)) {
                        return err(format!(
                            "scene `{}`: index {idx} needs optical band {b}, which `optical.bands` does not name; add it or drop {idx} from `features.indices`",
                            s.name
                        ));
                    }
                }
            }
            for g in &self.features.glcm {
                let is_sar = g.band.eq_ignore_ascii_case("VV") || g.band.eq_ignore_ascii_case("VH");
                if !is_sar
                    && !s
                        .optical
                        .bands
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(&g.band))
                {
                    return err(format!(
                        "scene `{}`: `features.glcm.band = \"{}\"` is neither an optical band nor VV/VH",
                        s.name, g.band
                    ));
                }
            }
        }
        for idx in &self.features.indices {
            if !INDEX_BANDS.iter().any(|(n, _)| n.eq_ignore_ascii_case(idx)) {
                let known: Vec<_> = INDEX_BANDS.iter().map(|(n, _)| *n).collect();
                return err(format!(
                    "unknown index `{idx}` in `features.indices`; known: {}",
                    known.join(", ")
                ));
            }
        }
        for f in &self.features.sar {
            if !SAR_FEATURES.contains(&f.as_str()) {
                return err(format!(
                    "unknown SAR feature `{f}` in `features.sar`; known: {}",
                    SAR_FEATURES.join(", ")
                ));
            }
        }
        let sp = &self.features.speckle;
        if !["none", "lee", "gamma-map"].contains(&sp.filter.as_str()) {
            return err(format!(
                "`features.speckle.filter = \"{}\"`; use none, lee or gamma-map",
                sp.filter
            ));
        }
        if sp.filter != "none" && (sp.radius == 0 || sp.radius > 15) {
            return err("`features.speckle.radius` must be 1..=15".into());
        }
        if sp.looks.is_nan() || sp.looks < 1.0 {
            return err("`features.speckle.looks` must be >= 1".into());
        }
        for g in &self.features.glcm {
            if !(2..=64).contains(&g.levels) {
                return err(format!(
                    "`features.glcm.levels = {}`; use 2..=64 grey levels",
                    g.levels
                ));
            }
            if g.radius == 0 || g.radius > 31 {
                return err(format!("`features.glcm.radius = {}`; use 1..=31", g.radius));
            }
            if g.offsets.is_empty()
                || g.offsets
                    .iter()
                    .any(|o| (o[0] == 0 && o[1] == 0) || o[0].abs() > 8 || o[1].abs() > 8)
            {
                return err(
                    "`features.glcm.offsets` must list non-zero [dx, dy] pairs with |d| <= 8"
                        .into(),
                );
            }
            match g.quantisation.as_str() {
                "percentile" => {
                    let [lo, hi] = g.percentiles;
                    if !((0.0..100.0).contains(&lo) && lo < hi && hi <= 100.0) {
                        return err("`features.glcm.percentiles` must be [low, high] with 0 <= low < high <= 100".into());
                    }
                }
                "fixed" => match (g.min, g.max) {
                    (Some(a), Some(b)) if a < b => {}
                    _ => {
                        return err(
                            "`features.glcm.quantisation = \"fixed\"` needs `min` < `max`".into(),
                        )
                    }
                },
                q => {
                    return err(format!(
                        "`features.glcm.quantisation = \"{q}\"`; use percentile or fixed"
                    ))
                }
            }
            if !["otb", "standard"].contains(&g.definitions.as_str()) {
                return err(format!(
                    "`features.glcm.definitions = \"{}\"`; use otb or standard",
                    g.definitions
                ));
            }
            if let Some(fs) = &g.features {
                for f in fs {
                    if !crate::features::glcm::FEATURE_NAMES.contains(&f.as_str()) {
                        return err(format!(
                            "unknown GLCM feature `{f}`; known: {}",
                            crate::features::glcm::FEATURE_NAMES.join(", ")
                        ));
                    }
                }
            }
        }
        if self.tiling.tile_size < 16 {
            return err(format!(
                "`tiling.tile_size = {}`; use at least 16",
                self.tiling.tile_size
            ));
        }
        if self.tiling.workers == Some(0) {
            return err("`tiling.workers` must be at least 1".into());
        }
        if self.split.block_size < 4 {
            return err("`split.block_size` must be at least 4 pixels".into());
        }
        if !(self.split.test_fraction > 0.0 && self.split.test_fraction < 1.0) {
            return err("`split.test_fraction` must be strictly between 0 and 1".into());
        }
        if self.split.samples_per_class == 0 {
            return err("`split.samples_per_class` must be positive".into());
        }
        if self.methods.is_empty() {
            return err("`methods` is empty; add [[methods]] name = \"handcrafted\"".into());
        }
        let mut mnames = std::collections::HashSet::new();
        for m in &self.methods {
            if !mnames.insert(&m.name) {
                return err(format!("method name `{}` appears twice", m.name));
            }
            if m.name.is_empty() || m.name.contains(['/', '\\', '.']) {
                return err(format!(
                    "method name `{}` must be a plain file stem",
                    m.name
                ));
            }
            if !METHOD_KINDS.contains(&m.kind()) {
                return err(format!(
                    "method `{}` has kind `{}`, which this build cannot run; available kinds: {}",
                    m.name,
                    m.kind(),
                    METHOD_KINDS.join(", ")
                ));
            }
            if m.kind() == "learned" {
                if !FUSIONS.contains(&m.fusion()) {
                    return err(format!(
                        "method `{}`: fusion `{}` is unknown; use one of {}",
                        m.name,
                        m.fusion(),
                        FUSIONS.join(", ")
                    ));
                }
                if m.width == 0
                    || m.epochs == 0
                    || m.batch == 0
                    || m.patches == 0
                    || m.mc_passes == 0
                    || m.patch < 8
                {
                    return err(format!("method `{}`: width, epochs, batch, patches, mc_passes must be positive and patch >= 8", m.name));
                }
                if m.kernel % 2 == 0 || m.kernel > 7 {
                    return err(format!("method `{}`: kernel must be odd and <= 7", m.name));
                }
                if !(0.0..0.9).contains(&m.dropout) || !(0.0..0.5).contains(&m.modality_dropout) {
                    return err(format!(
                        "method `{}`: dropout must be in [0, 0.9) and modality_dropout in [0, 0.5)",
                        m.name
                    ));
                }
                if !(m.learning_rate > 0.0 && m.learning_rate < 1.0) {
                    return err(format!(
                        "method `{}`: learning_rate must be in (0, 1)",
                        m.name
                    ));
                }
            }
            if m.trees == 0 || m.max_depth == 0 || m.min_samples_leaf == 0 {
                return err(format!(
                    "method `{}`: trees, max_depth and min_samples_leaf must be positive",
                    m.name
                ));
            }
        }
        Ok(())
    }

    /// Hash of everything that shapes the products (hex SHA-256 of the canonical JSON).
    pub fn hash(&self) -> String {
        hex_sha256(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    /// Hash of the parts that shape one method's product on one scene, and the geofuse version
    /// (a product made by another release is remade).
    pub fn product_config_hash(&self, scene: &SceneDef, method: &MethodDef) -> String {
        hex_sha256(self.product_config(scene, method).to_string().as_bytes())
    }

    /// What [`product_config_hash`](Self::product_config_hash) hashes.
    fn product_config(&self, scene: &SceneDef, method: &MethodDef) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed, "classes": self.classes, "scene": scene, "features": self.features,
            "split": self.split, "method": method, "coregistration": self.coregistration,
            "geofuse": env!("CARGO_PKG_VERSION"),
        })
    }
}

/// Removes `.` and `name/..` components lexically (no filesystem access), so messages show
/// `out/demo` rather than `pipelines/../out/demo`.
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// Hex SHA-256 of bytes.
pub fn hex_sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r##"
output = "out"
[[classes]]
id = 1
name = "water"
color = "#0000ff"
[[classes]]
id = 2
name = "forest"
color = "#00ff00"
[[scenes]]
name = "s"
optical = { path = "opt.tif", bands = ["B02","B03","B04","B05","B06","B07","B08","B8A","B11","B12"] }
sar = { path = "sar.tif" }
[[methods]]
name = "handcrafted"
"##;

    fn parse(text: &str) -> Result<Pipeline> {
        let path = Path::new("/tmp/p/pipeline.toml");
        let mut p: Pipeline =
            toml::from_str(text).map_err(|e| Error::config(path, e.to_string()))?;
        p.resolve_paths(Path::new("/tmp/p"));
        p.validate(path)?;
        Ok(p)
    }

    #[test]
    fn minimal_pipeline_parses_and_resolves_paths() {
        let p = parse(MINIMAL).unwrap();
        assert_eq!(p.scenes[0].optical.path, PathBuf::from("/tmp/p/opt.tif"));
        assert_eq!(p.output, PathBuf::from("/tmp/p/out"));
        assert_eq!(p.tiling.tile_size, 512);
    }

    #[test]
    fn product_hash_covers_the_geofuse_version_and_the_method() {
        let p = parse(MINIMAL).unwrap();
        let (s, m) = (&p.scenes[0], &p.methods[0]);
        assert_eq!(p.product_config(s, m)["geofuse"], env!("CARGO_PKG_VERSION"));
        let mut m2 = m.clone();
        m2.name = "other".into();
        assert_ne!(p.product_config_hash(s, m), p.product_config_hash(s, &m2));
    }

    #[test]
    fn normalize_removes_parent_components() {
        assert_eq!(
            normalize(Path::new("pipelines/../out/demo")),
            PathBuf::from("out/demo")
        );
        assert_eq!(
            normalize(Path::new("../../shared/x")),
            PathBuf::from("../../shared/x")
        );
        assert_eq!(normalize(Path::new("./a/./b")), PathBuf::from("a/b"));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse(&format!("{MINIMAL}\nbogus_key = 3\n")).unwrap_err();
        assert!(e.to_string().contains("bogus_key"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn missing_band_for_index_is_explained() {
        let text = MINIMAL.replace("\"B11\",", "");
        let e = parse(&text).unwrap_err();
        assert!(e.to_string().contains("B11"), "{e}");
    }

    #[test]
    fn unavailable_method_kind_is_refused() {
        let text = format!("{MINIMAL}[[methods]]\nname = \"x\"\nkind = \"nope\"\n");
        let e = parse(&text).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn bad_colour_is_refused() {
        let e = parse(&MINIMAL.replace("#0000ff", "blue")).unwrap_err();
        assert!(e.to_string().contains("#rrggbb"), "{e}");
    }
}
