//! Run manifest: every product with its config, input and model hashes, so a rerun skips
//! products whose hashes match and redoes the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Pipeline;
use crate::error::Result;

/// One product's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductEntry {
    /// Scene.
    pub scene: String,
    /// Method.
    pub method: String,
    /// Product file.
    pub product: PathBuf,
    /// Model file.
    pub model: PathBuf,
    /// Hash of the configuration that shapes the product.
    pub config_hash: String,
    /// Fingerprint of the input files.
    pub input_hash: String,
    /// Hash of the model file used.
    pub model_hash: String,
    /// Hash of the whole pipeline file.
    pub pipeline_hash: String,
    /// Metrics recorded when the product was made.
    pub metrics: Value,
}

impl ProductEntry {
    /// Whether the model file still has the recorded hash (`current`: its hash now, as the
    /// method computes it; None when it cannot be read).
    pub fn model_hash_matches(&self, current: Option<String>) -> bool {
        current.as_deref() == Some(self.model_hash.as_str())
    }
}

/// The per-scene manifest (`<out>/<scene>/manifest.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Products by method name.
    pub products: BTreeMap<String, ProductEntry>,
    /// Why the scene failed in the last run that tried it (None when it succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<SceneFailure>,
}

/// A scene that failed on bad input: the batch goes on without it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SceneFailure {
    /// Error kind (`input`, `config`, `grid-mismatch`, `model`).
    pub kind: String,
    /// The message, naming the file and the fix.
    pub message: String,
}

impl Manifest {
    /// Loads the scene manifest (empty when absent or unreadable).
    pub fn load(scene_out: &Path) -> Self {
        std::fs::read_to_string(scene_out.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Saves it atomically.
    pub fn save(&self, scene_out: &Path) -> Result<()> {
        super::write_json(
            &scene_out.join("manifest.json"),
            &serde_json::to_value(self).unwrap_or(Value::Null),
        )
    }
}

pub use crate::scene::fingerprint;

/// Writes `<out>/manifest.json` from every scene manifest present (so shards that run
/// separately all end up listed), with the mosaics' records.
pub fn write_top_level(out: &Path, p: &Pipeline, mosaics: &[Value]) -> Result<()> {
    let mut products = Vec::new();
    let mut failed = Vec::new();
    for s in &p.scenes {
        let m = Manifest::load(&out.join(&s.name));
        for e in m.products.values() {
            products.push(serde_json::to_value(e).unwrap_or(Value::Null));
        }
        if let Some(f) = &m.failure {
            failed.push(json!({"scene": s.name, "kind": f.kind, "message": f.message}));
        }
    }
    let v = json!({
        "geofuse_version": env!("CARGO_PKG_VERSION"),
        "pipeline_hash": p.hash(),
        "products": products,
        "failed_scenes": failed,
        "mosaics": mosaics,
    });
    super::write_json(&out.join("manifest.json"), &v)
}
