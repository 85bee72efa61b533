//! The interface of a classifier over the hand-crafted feature stack, and the saved model
//! that wraps one with everything it depends on.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{hex_sha256, ClassDef};
use crate::error::{Error, Result};
use crate::product::BandMeanings;

/// Training samples: row-major features (`n` x `features`), class indices, class weights.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    /// Row-major features, NaN where missing.
    pub x: Vec<f32>,
    /// Class index of every sample.
    pub y: Vec<u8>,
    /// Features per sample.
    pub features: usize,
    /// Classes.
    pub classes: usize,
    /// Class weights that balance the classes.
    pub weights: Vec<f64>,
    /// Samples per class.
    pub per_class: Vec<usize>,
}

impl TrainingSet {
    /// The set of `(pixel index, class index, features)` samples sorted by pixel index (so it
    /// does not depend on the order they were gathered in), with balancing class weights.
    pub fn from_samples(
        mut samples: Vec<(usize, u8, Vec<f32>)>,
        features: usize,
        classes: usize,
    ) -> TrainingSet {
        samples.sort_unstable_by_key(|s| s.0);
        let mut set = TrainingSet {
            x: Vec::with_capacity(samples.len() * features),
            y: Vec::with_capacity(samples.len()),
            features,
            classes,
            weights: Vec::new(),
            per_class: vec![0; classes],
        };
        for (_, c, f) in samples {
            set.x.extend(f);
            set.y.push(c);
            set.per_class[c as usize] += 1;
        }
        set.weights = super::forest::balanced_weights(&set.per_class);
        set
    }
}

/// A classifier over feature vectors that gives class probabilities and an ensemble's mean
/// member entropy (the aleatoric part of the uncertainty).
pub trait StackClassifier: Serialize + DeserializeOwned + Send + Sync + Sized + 'static {
    /// The method's settings in the pipeline file.
    type Settings: Clone + Send + Sync;

    /// Format tag of saved models.
    const FORMAT: &'static str;

    /// Trains on `data` (deterministic for a seed, whatever the thread count).
    fn fit(settings: &Self::Settings, data: &TrainingSet, seed: u64) -> Self;

    /// One log line saying what [`fit`](Self::fit) trains.
    fn describe(settings: &Self::Settings, data: &TrainingSet) -> String;

    /// Predicts `n` samples (row-major `x`): mean class probabilities into `probs` (`n` x K)
    /// and mean member entropies (nats) into `member_entropy` (`n`).
    fn predict_block(&self, x: &[f32], n: usize, probs: &mut [f32], member_entropy: &mut [f32]);

    /// What the product's uncertainty bands mean for this classifier.
    fn band_meanings(&self, k: usize) -> BandMeanings;

    /// Facts for the readable model summary (`.model.json`).
    fn summary(&self) -> serde_json::Map<String, serde_json::Value>;
}

/// A trained hand-crafted model, self-describing enough to refuse a scene it does not fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "C: StackClassifier")]
pub struct HandcraftedModel<C> {
    /// Format tag ([`StackClassifier::FORMAT`]).
    pub format: String,
    /// geofuse version that trained it.
    pub geofuse_version: String,
    /// Feature names in the order the classifier expects them.
    pub feature_names: Vec<String>,
    /// Class table; class index k is `classes[k]`.
    pub classes: Vec<ClassDef>,
    /// GLCM quantisation ranges used at training time (reused at prediction).
    pub glcm_ranges: Vec<(f64, f64)>,
    /// Training samples per class.
    pub samples_per_class: Vec<usize>,
    /// Class weights used in training.
    pub class_weights: Vec<f64>,
    /// The classifier.
    pub classifier: C,
}

impl<C: StackClassifier> HandcraftedModel<C> {
    /// Saves the model (postcard binary) and a readable JSON summary beside it; returns the
    /// model hash (hex SHA-256 of the binary file).
    pub fn save(&self, path: &Path) -> Result<String> {
        let bytes = postcard::to_allocvec(self)
            .map_err(|e| Error::Internal(format!("encode model: {e}")))?;
        let hash = hex_sha256(&bytes);
        let tmp = path.with_extension("model.partial");
        std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, "write model", e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename model", e))?;
        let mut summary = serde_json::json!({
            "format": self.format, "geofuse_version": self.geofuse_version, "hash": hash,
            "feature_names": self.feature_names, "classes": self.classes,
            "glcm_ranges": self.glcm_ranges, "samples_per_class": self.samples_per_class,
            "class_weights": self.class_weights,
        });
        if let Some(o) = summary.as_object_mut() {
            o.extend(self.classifier.summary());
        }
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
        let bad = |msg: String| Error::Model {
            path: path.to_path_buf(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|e| {
            bad(format!(
                "cannot read it ({e}); check `model` in the pipeline"
            ))
        })?;
        // The format tag is the first field: check it before decoding the rest, so a model of
        // another kind is named as such rather than as a corrupt file.
        let tag: Option<(String, &[u8])> = postcard::take_from_bytes::<String>(&bytes).ok();
        match tag {
            Some((t, _)) if t == C::FORMAT => {}
            Some((t, _)) if t.starts_with("geofuse-") => {
                return Err(bad(format!(
                    "format `{t}`, expected `{}`; retrain it or use the method it was trained for",
                    C::FORMAT
                )))
            }
            _ => {
                return Err(bad(
                    "not a geofuse hand-crafted model; retrain it with `geofuse train`".into(),
                ))
            }
        }
        let m: Self = postcard::from_bytes(&bytes).map_err(|e| {
            bad(format!(
                "the model file is corrupt or truncated ({e}); retrain it with `geofuse train`"
            ))
        })?;
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
