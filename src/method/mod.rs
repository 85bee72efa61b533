//! One interface for every method kind: a [`Method`] trains or loads a [`Model`]; a model
//! gives a [`TilePredictor`] for a scene, which turns a tile into per-pixel class
//! probabilities and the uncertainty parts the product needs. The scene loop, products,
//! metrics, manifest and STAC (in [`crate::pipeline`]) only see these traits.
//!
//! [`crate::registry::for_def`] maps the pipeline's `kind` to an implementation.

use std::path::Path;

use ndarray::Array2;

use crate::config::Pipeline;
use crate::error::Result;
use crate::eval::split::BlockSplit;
use crate::log::Log;
use crate::product::{BandMeanings, TileProbabilities};
use crate::scene::{SceneReader, SceneSources};
use crate::tiler::Tile;

/// What a method sees of one scene.
pub struct SceneContext<'a> {
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// The scene's co-registered inputs.
    pub scene: &'a SceneSources,
    /// The scene's spatial train/test split.
    pub split: BlockSplit,
    /// A scene that gives no training sample (held out in `[evaluation] scenes`, or not among
    /// the training scenes): all its labelled pixels are evaluated, not only its test blocks.
    pub held_out: bool,
    /// Progress and log lines.
    pub log: &'a Log,
}

impl SceneContext<'_> {
    /// Whether the labelled pixel (`row`, `col`) of the scene is evaluated.
    pub fn evaluates(&self, row: usize, col: usize) -> bool {
        self.held_out || self.split.is_test(row, col)
    }
}

/// A method kind's implementation.
pub trait Method: Send + Sync {
    /// Trains one model on the training blocks of the training scenes `scenes` (pooled; each
    /// has labels, checked by the caller) and saves it in `models_dir`.
    fn train(&self, scenes: &[SceneContext], models_dir: &Path) -> Result<Box<dyn Model>>;

    /// Loads a saved model and checks that it fits the pipeline (each scene is checked by
    /// [`Model::predictor`]).
    fn load(&self, p: &Pipeline, path: &Path, log: &Log) -> Result<Box<dyn Model>>;

    /// The hash of the model saved at `path` (what [`Model::hash`] reports), read without
    /// loading it: a rerun compares it with the manifest's.
    fn model_hash(&self, path: &Path) -> Result<String>;
}

/// A trained model of one method.
pub trait Model: Send + Sync {
    /// Where it is saved (a file, or the `.bpk` + `.json` stem of a network).
    fn path(&self) -> &Path;

    /// Its hash (recorded in products and the manifest).
    fn hash(&self) -> &str;

    /// Training samples (pixels) per class.
    fn samples_per_class(&self) -> Vec<usize>;

    /// What the product's uncertainty bands mean for this model, for `k` classes.
    fn band_meanings(&self, k: usize) -> BandMeanings;

    /// Product metadata items specific to the model (after the common ones).
    fn metadata(&self) -> Vec<(String, String)>;

    /// Extra metrics of the model (for example a fitted temperature).
    fn metrics(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }

    /// A predictor for one scene; refuses a scene the model does not fit (other bands or
    /// features).
    fn predictor<'a>(&'a self, ctx: &SceneContext) -> Result<Box<dyn TilePredictor + 'a>>;
}

/// Uncalibrated class probabilities of a core pixel (row, col), on request.
pub type Uncalibrated = Box<dyn Fn(usize, usize) -> Vec<f32> + Send>;

/// A tile's prediction over its core.
pub struct TilePrediction {
    /// Class probabilities, member entropy and modality codes.
    pub probs: TileProbabilities,
    /// Reference labels over the core (NaN = unlabelled), when the scene has labels.
    pub labels: Option<Array2<f32>>,
    /// Uncalibrated probabilities, for models whose probabilities are calibrated.
    pub uncalibrated: Option<Uncalibrated>,
}

/// Predicts tiles of one scene.
pub trait TilePredictor: Sync {
    /// Halo a tile needs for its core to be exact.
    fn halo(&self) -> usize;

    /// Whether tiles run in parallel (one reader per worker); false when one tile already
    /// uses every core.
    fn parallel(&self) -> bool;

    /// Predicts the core of `tile`.
    fn predict(&self, reader: &SceneReader, tile: &Tile) -> Result<TilePrediction>;
}
