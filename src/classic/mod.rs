//! Hand-crafted baseline classifier: a random forest over the feature stack.
//!
//! - [`forest`]: the forest itself (training, prediction).
//! - [`HandcraftedModel`]: forest + feature list + class table + quantisation ranges, saved
//!   with its hash.

pub mod forest;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{hex_sha256, ClassDef};
use crate::error::{Error, Result};
pub use forest::{Forest, ForestParams};

/// A trained hand-crafted model, self-describing enough to refuse a scene it does not fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandcraftedModel {
    /// Format tag.
    pub format: String,
    /// geofuse version that trained it.
    pub geofuse_version: String,
    /// Feature names in the order the forest expects them.
    pub feature_names: Vec<String>,
    /// Class table; forest class index k is `classes[k]`.
    pub classes: Vec<ClassDef>,
    /// GLCM quantisation ranges used at training time (reused at prediction).
    pub glcm_ranges: Vec<(f64, f64)>,
    /// Training samples per class.
    pub samples_per_class: Vec<usize>,
    /// Class weights used in the split criterion.
    pub class_weights: Vec<f64>,
    /// The forest.
    pub forest: Forest,
}

/// Model format tag.
pub const MODEL_FORMAT: &str = "geofuse-handcrafted-rf-1";

impl HandcraftedModel {
    /// Saves the model (postcard binary) and a readable JSON summary beside it; returns the
    /// model hash (hex SHA-256 of the binary file).
    pub fn save(&self, path: &Path) -> Result<String> {
        let bytes = postcard::to_allocvec(self)
            .map_err(|e| Error::Internal(format!("encode model: {e}")))?;
        let hash = hex_sha256(&bytes);
        let tmp = path.with_extension("model.partial");
        std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, "write model", e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename model", e))?;
        let summary = serde_json::json!({
            "format": self.format, "geofuse_version": self.geofuse_version, "hash": hash,
            "feature_names": self.feature_names, "classes": self.classes,
            "glcm_ranges": self.glcm_ranges, "samples_per_class": self.samples_per_class,
            "class_weights": self.class_weights, "trees": self.forest.n_trees(),
            "params": self.forest.params,
        });
        let jpath = path.with_extension("model.json");
        std::fs::write(
            &jpath,
            serde_json::to_string_pretty(&summary).unwrap_or_default(),
        )
        .map_err(|e| Error::io(&jpath, "write model summary", e))?;
        Ok(hash)
    }

    /// Loads a model saved by [`save`](Self::save); returns it with its hash.
    pub fn load(path: &Path) -> Result<(Self, String)> {
        let bytes = std::fs::read(path).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            msg: format!("cannot read it ({e}); check `model` in the pipeline"),
        })?;
        let m: HandcraftedModel = postcard::from_bytes(&bytes).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            msg: format!("not a geofuse hand-crafted model ({e}); retrain it with `geofuse train`"),
        })?;
        if m.format != MODEL_FORMAT {
            return Err(Error::Model {
                path: path.to_path_buf(),
                msg: format!(
                    "format `{}`, expected `{MODEL_FORMAT}`; retrain it",
                    m.format
                ),
            });
        }
        Ok((m, hex_sha256(&bytes)))
    }

    /// Refuses a model whose features or classes do not match the scene's configuration.
    pub fn check_compatible(
        &self,
        path: &Path,
        feature_names: &[String],
        classes: &[ClassDef],
    ) -> Result<()> {
        if self.feature_names != feature_names {
            let missing: Vec<_> = feature_names
                .iter()
                .filter(|f| !self.feature_names.contains(f))
                .take(5)
                .collect();
            return Err(Error::Model {
                path: path.to_path_buf(),
                msg: format!(
                    "it was trained on {} features, the pipeline computes {} (first differences: {:?}); use the same [features] and bands as at training, or retrain",
                    self.feature_names.len(),
                    feature_names.len(),
                    missing
                ),
            });
        }
        let ids = |c: &[ClassDef]| c.iter().map(|c| (c.id, c.name.clone())).collect::<Vec<_>>();
        if ids(&self.classes) != ids(classes) {
            return Err(Error::Model {
                path: path.to_path_buf(),
                msg: "its class table (ids and names) differs from the pipeline's `classes`; use the same table or retrain".into(),
            });
        }
        Ok(())
    }
}
