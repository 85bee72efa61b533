//! The settings of the hand-crafted methods: the random forest (`kind = "handcrafted"`) and
//! histogram gradient-boosted trees (`kind = "boosted"`). The classifiers that read them live
//! in [`crate::classic`].

use serde::{Deserialize, Serialize};

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
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
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
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
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
