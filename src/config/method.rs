//! `[[methods]]`: a method's name, its kind and the settings of that kind.
//!
//! The table is read in two steps: `name`, `kind` and `model` first, then the remaining keys
//! into the settings struct of the kind (unknown keys are an error naming the key, so a
//! forest setting on a network is refused rather than ignored).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::learned::Fusion;

/// The kinds of method this build can run: the registry in [`crate::method`] maps each to
/// its implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// Hand-crafted feature stack into a random forest.
    Handcrafted,
    /// Hand-crafted feature stack into histogram gradient-boosted trees.
    Boosted,
    /// CNN encoders fused by a learned (or fixed) strategy.
    Learned,
}

impl MethodKind {
    /// Every kind.
    pub const ALL: [MethodKind; 3] = [
        MethodKind::Handcrafted,
        MethodKind::Boosted,
        MethodKind::Learned,
    ];

    /// The pipeline name.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Handcrafted => "handcrafted",
            MethodKind::Boosted => "boosted",
            MethodKind::Learned => "learned",
        }
    }

    /// Parses a pipeline name.
    pub fn from_name(s: &str) -> Option<MethodKind> {
        MethodKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Every pipeline name, comma-separated (for messages).
    pub fn names() -> String {
        MethodKind::ALL.map(MethodKind::name).join(", ")
    }
}

/// A method to run.
#[derive(Debug, Clone, Serialize)]
pub struct MethodDef {
    /// Product name (`<out>/<scene>/<name>.tif`).
    pub name: String,
    /// Load this model instead of training one per scene.
    pub model: Option<PathBuf>,
    /// The kind and its settings.
    pub settings: MethodSettings,
}

/// The settings of one method kind.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MethodSettings {
    /// `kind = "handcrafted"`.
    Handcrafted(ForestSettings),
    /// `kind = "boosted"`.
    Boosted(BoostedSettings),
    /// `kind = "learned"`.
    Learned(NetworkSettings),
}

impl MethodDef {
    /// The method kind.
    pub fn kind(&self) -> MethodKind {
        match self.settings {
            MethodSettings::Handcrafted(_) => MethodKind::Handcrafted,
            MethodSettings::Boosted(_) => MethodKind::Boosted,
            MethodSettings::Learned(_) => MethodKind::Learned,
        }
    }

    /// Network settings, when the method is learned.
    pub fn network(&self) -> Option<&NetworkSettings> {
        match &self.settings {
            MethodSettings::Learned(n) => Some(n),
            _ => None,
        }
    }

    /// Checks the settings; `Err` is the message (the caller names the pipeline file).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.name.is_empty() || self.name.contains(['/', '\\', '.']) {
            return Err(format!(
                "method name `{}` must be a plain file stem",
                self.name
            ));
        }
        let r = match &self.settings {
            MethodSettings::Handcrafted(f) => f.validate(),
            MethodSettings::Boosted(b) => b.validate(),
            MethodSettings::Learned(n) => n.validate(),
        };
        r.map_err(|e| format!("method `{}`: {e}", self.name))
    }

    /// Makes a relative `model` path absolute against `base`.
    pub fn resolve_paths(&mut self, fix: &dyn Fn(&mut PathBuf)) {
        if let Some(p) = &mut self.model {
            fix(p);
        }
    }
}

/// Random forest settings (`kind = "handcrafted"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForestSettings {
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

impl ForestSettings {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.trees == 0 || self.max_depth == 0 || self.min_samples_leaf == 0 {
            return Err("trees, max_depth and min_samples_leaf must be positive".into());
        }
        if self.features_per_split == Some(0) {
            return Err("features_per_split must be positive".into());
        }
        Ok(())
    }
}

/// Histogram gradient-boosted trees settings (`kind = "boosted"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoostedSettings {
    /// Boosting rounds (one tree per class per round).
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// Shrinkage applied to every tree's leaf values.
    #[serde(default = "default_boost_lr")]
    pub learning_rate: f64,
    /// Maximum tree depth.
    #[serde(default = "default_boost_depth")]
    pub max_depth: usize,
    /// Minimum samples in a leaf.
    #[serde(default = "default_boost_leaf")]
    pub min_samples_leaf: usize,
    /// L2 regularisation of leaf values (lambda).
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Histogram bins per feature (2..=255; one more bin holds missing values).
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// Members of the virtual ensemble behind the uncertainty bands (truncations of the
    /// boosting trajectory).
    #[serde(default = "default_members")]
    pub ensemble: usize,
}

fn default_rounds() -> usize {
    100
}
fn default_boost_lr() -> f64 {
    0.1
}
fn default_boost_depth() -> usize {
    6
}
fn default_boost_leaf() -> usize {
    10
}
fn default_l2() -> f64 {
    1.0
}
fn default_bins() -> usize {
    64
}
fn default_members() -> usize {
    8
}

impl BoostedSettings {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.rounds == 0 || self.max_depth == 0 || self.min_samples_leaf == 0 {
            return Err("rounds, max_depth and min_samples_leaf must be positive".into());
        }
        if self.max_depth > 10 {
            return Err("max_depth must be at most 10 for boosted trees".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err("learning_rate must be in (0, 1]".into());
        }
        if self.l2.is_nan() || self.l2 < 0.0 {
            return Err("l2 must be >= 0".into());
        }
        if !(2..=255).contains(&self.bins) {
            return Err("bins must be 2..=255".into());
        }
        if self.ensemble == 0 || self.ensemble > self.rounds {
            return Err(format!(
                "ensemble = {} (virtual-ensemble members) must be 1..=rounds ({}); lower ensemble or raise rounds",
                self.ensemble, self.rounds
            ));
        }
        Ok(())
    }
}

/// Network settings (`kind = "learned"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// Fusion strategy (default: the method's name).
    pub fusion: Fusion,
    /// Latent channels per encoder.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Maximum training epochs.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation score.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// Patch side in pixels (capped by the split block size).
    #[serde(default = "default_patch")]
    pub patch: usize,
    /// Training patches sampled per epoch pool.
    #[serde(default = "default_patches")]
    pub patches: usize,
    /// Patches per optimiser step.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Adam learning rate.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Probability of dropping a whole modality for a training patch.
    #[serde(default = "default_modality_dropout")]
    pub modality_dropout: f64,
    /// Dropout rate on the heads' hidden layer, at training and in the Monte Carlo passes
    /// (epistemic uncertainty); 0 disables Monte Carlo dropout.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Monte Carlo dropout passes at inference (epistemic uncertainty). An inference setting:
    /// it also applies to a model loaded with `model`.
    #[serde(default = "default_mc")]
    pub mc_passes: usize,
    /// Kernel fusion: kernel side (odd).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// Also feed the hand-crafted features ([features]) to the network, optical ones to the
    /// optical branch and SAR ones to the SAR branch (hybrid).
    #[serde(default)]
    pub hybrid: bool,
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

impl NetworkSettings {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.width == 0
            || self.epochs == 0
            || self.batch == 0
            || self.patches == 0
            || self.mc_passes == 0
            || self.patch < 8
        {
            return Err(
                "width, epochs, batch, patches, mc_passes must be positive and patch >= 8".into(),
            );
        }
        if self.kernel.is_multiple_of(2) || self.kernel > 7 {
            return Err("kernel must be odd and <= 7".into());
        }
        if !(0.0..0.9).contains(&self.dropout) || !(0.0..0.5).contains(&self.modality_dropout) {
            return Err("dropout must be in [0, 0.9) and modality_dropout in [0, 0.5)".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return Err("learning_rate must be in (0, 1)".into());
        }
        Ok(())
    }
}

/// The kind of a method table: `kind` when given, else the fusion strategy or kind its name
/// spells.
fn kind_of(name: &str, kind: Option<MethodKind>) -> std::result::Result<MethodKind, String> {
    if let Some(k) = kind {
        return Ok(k);
    }
    if Fusion::from_name(name).is_some() {
        return Ok(MethodKind::Learned);
    }
    MethodKind::from_name(name).ok_or_else(|| {
        format!(
            "method `{name}` has no `kind` and its name is neither a kind ({}) nor a fusion strategy ({}); add kind = \"...\"",
            MethodKind::names(),
            Fusion::names()
        )
    })
}

/// Removes `key` from the table and parses it.
fn take<T: serde::de::DeserializeOwned>(
    t: &mut toml::Table,
    key: &str,
) -> std::result::Result<Option<T>, String> {
    t.remove(key)
        .map(|v| v.try_into::<T>().map_err(|e| format!("`{key}`: {e}")))
        .transpose()
}

fn settings<T: serde::de::DeserializeOwned>(t: toml::Table) -> std::result::Result<T, String> {
    toml::Value::Table(t)
        .try_into::<T>()
        .map_err(|e| e.to_string().trim_end().to_string())
}

/// Parses one `[[methods]]` table.
fn parse_method(mut t: toml::Table) -> std::result::Result<MethodDef, String> {
    let name: String = take(&mut t, "name")?.ok_or("a [[methods]] table lacks `name`")?;
    let ctx = |e: String| format!("method `{name}`: {e}");
    let kind = kind_of(&name, take(&mut t, "kind").map_err(ctx)?)?;
    let model: Option<PathBuf> = take(&mut t, "model").map_err(ctx)?;
    let settings = match kind {
        MethodKind::Handcrafted => MethodSettings::Handcrafted(settings(t).map_err(ctx)?),
        MethodKind::Boosted => MethodSettings::Boosted(settings(t).map_err(ctx)?),
        MethodKind::Learned => {
            if !t.contains_key("fusion") {
                let f = Fusion::from_name(&name).ok_or_else(|| {
                    ctx(format!(
                        "a learned method needs `fusion` (one of {}) unless its name is one",
                        Fusion::names()
                    ))
                })?;
                t.insert("fusion".into(), toml::Value::String(f.name().into()));
            }
            MethodSettings::Learned(settings(t).map_err(ctx)?)
        }
    };
    Ok(MethodDef {
        name,
        model,
        settings,
    })
}

impl<'de> Deserialize<'de> for MethodDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = toml::Table::deserialize(d)?;
        parse_method(t).map_err(serde::de::Error::custom)
    }
}
