//! Saving and loading models: weights (`.bpk`), metadata (`.json`) and their hashes.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::config::{hex_sha256, ClassDef};
use crate::error::{Error, Result};
use crate::features::Polarisation;

/// Everything about a learned model except its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnedMeta {
    /// Format tag.
    pub format: String,
    /// geofuse version.
    pub geofuse_version: String,
    /// Training settings (network shape included).
    pub config: TrainConfig,
    /// Input normalisation.
    pub normalisation: Normalisation,
    /// Class table (class index k is `classes[k]`).
    pub classes: Vec<ClassDef>,
    /// Optical band names the model was trained on.
    pub optical_bands: Vec<String>,
    /// SAR polarisations the model was trained on (omitted when VV and VH, so earlier models
    /// and their hashes are unchanged).
    #[serde(default = "both_polarisations", skip_serializing_if = "is_both")]
    pub sar_polarisations: Vec<Polarisation>,
    /// Training report.
    pub report: TrainReport,
    /// Hybrid models: names of the hand-crafted features fed to the network (optical ones,
    /// then SAR ones), empty otherwise.
    #[serde(default)]
    pub hybrid_features: Vec<String>,
    /// Hybrid models: GLCM quantisation ranges used at training (reused at prediction).
    #[serde(default)]
    pub glcm_ranges: Vec<(f64, f64)>,
    /// SHA-256 of the weight values (burn's parameter ids are random, so the `.bpk` bytes of
    /// two identical trainings differ; this hash does not).
    #[serde(default)]
    pub weights_sha256: String,
}

fn both_polarisations() -> Vec<Polarisation> {
    Polarisation::ALL.to_vec()
}

fn is_both(p: &[Polarisation]) -> bool {
    p == Polarisation::ALL
}

/// Hashes every float parameter's values in module order.
pub(crate) struct WeightHasher(sha2::Sha256);

impl burn::module::ModuleVisitor for WeightHasher {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        use sha2::Digest;
        if let Ok(v) = param.val().into_data().convert::<f32>().try_to_vec::<f32>() {
            for x in v {
                self.0.update(x.to_le_bytes());
            }
        }
    }
}

pub(crate) fn weights_sha256(net: &FusionNet) -> String {
    use sha2::Digest;
    let mut h = WeightHasher(sha2::Sha256::new());
    net.visit(&mut h);
    h.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Model format tag.
pub const LEARNED_FORMAT: &str = "geofuse-learned-2";

impl LearnedModel {
    /// Saves weights to `<path>.bpk` and metadata to `<path>.json`; returns the model hash
    /// (SHA-256 of both files).
    pub fn save(&self, path: &Path) -> Result<String> {
        let bpk = path.with_extension("bpk");
        let json = path.with_extension("json");
        let _ = std::fs::remove_file(&bpk);
        let mut store = BurnpackStore::from_file(&bpk).auto_extension(false);
        self.net
            .save_into(&mut store)
            .map_err(|e| Error::Internal(format!("save {}: {e}", bpk.display())))?;
        let mut meta = self.meta.clone();
        meta.weights_sha256 = weights_sha256(&self.net);
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        std::fs::write(&json, &text).map_err(|e| Error::io(&json, "write model metadata", e))?;
        model_hash(path)
    }

    /// Loads a model saved by [`save`](Self::save) onto `runtime`; returns it with its hash.
    pub fn load(path: &Path, runtime: &Runtime) -> Result<(LearnedModel, String)> {
        let json = path.with_extension("json");
        let bpk = path.with_extension("bpk");
        let bad = |msg: String| Error::Model {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(&json).map_err(|e| {
            bad(format!(
                "cannot read {} ({e}); train the model first",
                json.display()
            ))
        })?;
        let meta: LearnedMeta = serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "{} is not a geofuse learned model ({e})",
                json.display()
            ))
        })?;
        if meta.format != LEARNED_FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{LEARNED_FORMAT}`; retrain it",
                meta.format
            )));
        }
        let mut net = FusionNet::new(meta.config.spec, &runtime.device);
        let mut store = BurnpackStore::from_file(&bpk).auto_extension(false);
        net.load_from(&mut store)
            .map_err(|e| bad(format!("cannot load weights {} ({e})", bpk.display())))?;
        if !meta.weights_sha256.is_empty() && weights_sha256(&net) != meta.weights_sha256 {
            return Err(bad(format!(
                "the weights in {} do not match {} (hash differs); the files belong to different models",
                bpk.display(),
                json.display()
            )));
        }
        let hash = model_hash(path)?;
        Ok((
            LearnedModel {
                meta,
                net: net.valid(),
                runtime: runtime.clone(),
                native: Default::default(),
            },
            hash,
        ))
    }

    /// Files the model consists of.
    pub fn files(path: &Path) -> [PathBuf; 2] {
        [path.with_extension("bpk"), path.with_extension("json")]
    }
}

/// Hash of a saved model: SHA-256 of its metadata file, which records the hash of the weight
/// values (checked against the `.bpk` on load).
pub fn model_hash(path: &Path) -> Result<String> {
    let json = path.with_extension("json");
    let bytes = std::fs::read(&json).map_err(|e| Error::io(&json, "read model", e))?;
    Ok(hex_sha256(&bytes))
}
