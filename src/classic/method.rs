//! The hand-crafted method kinds behind the [`crate::method`] interface: the feature stack
//! of every tile into a [`StackClassifier`] (random forest, boosted trees).

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};

use super::sampling::{training_set, TrainingScene};
use super::stack::{HandcraftedModel, StackClassifier};
use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::log::Log;
use crate::method::{Method, Model, SceneContext, TilePrediction, TilePredictor};
use crate::product::{BandMeanings, TileProbabilities};
use crate::scene::plan::{glcm_ranges, plan_with, tile_features, CoreFeatures};
use crate::scene::FeaturePlan;
use crate::scene::SceneReader;
use crate::tiler::Tile;

/// A hand-crafted method: features, then classifier `C`.
pub struct StackMethod<C: StackClassifier> {
    name: String,
    settings: C::Settings,
    _c: PhantomData<C>,
}

impl<C: StackClassifier> StackMethod<C> {
    /// The method `name` with its settings.
    pub fn new(name: &str, settings: C::Settings) -> Self {
        StackMethod {
            name: name.into(),
            settings,
            _c: PhantomData,
        }
    }
}

impl<C: StackClassifier> Method for StackMethod<C> {
    fn train(&self, scenes: &[SceneContext], models_dir: &Path) -> Result<Box<dyn Model>> {
        let first = scenes
            .first()
            .ok_or_else(|| Error::Internal("no training scene".into()))?;
        let p = first.pipeline;
        let srcs: Vec<_> = scenes.iter().map(|c| c.scene).collect();
        let ranges = glcm_ranges(&srcs, &p.features.glcm)?;
        let train: Vec<TrainingScene> = scenes
            .iter()
            .map(|c| TrainingScene::new(c, plan_with(p, c.scene, &ranges)))
            .collect();
        let names = &train[0].plan.names;
        if let Some(t) = train.iter().find(|t| &t.plan.names != names) {
            return Err(Error::config(
                &t.ctx.scene.optical,
                format!(
                    "training scene `{}` gives other features than `{}` (its optical bands differ); give every training scene the same bands",
                    t.ctx.scene.name, first.scene.name
                ),
            ));
        }
        let data = training_set(&train)?;
        first
            .log
            .info(&format!("  {}", C::describe(&self.settings, &data)));
        let model = HandcraftedModel {
            format: C::FORMAT.into(),
            geofuse_version: env!("CARGO_PKG_VERSION").into(),
            feature_names: names.clone(),
            classes: p.classes.clone(),
            glcm_ranges: ranges,
            samples_per_class: data.per_class.clone(),
            class_weights: data.weights.clone(),
            classifier: C::fit(&self.settings, &data, p.seed),
        };
        std::fs::create_dir_all(models_dir)
            .map_err(|e| Error::io(models_dir, "create models folder", e))?;
        let path = models_dir.join(format!("{}.model", self.name));
        let hash = model.save(&path)?;
        Ok(Box::new(StackModel { model, path, hash }))
    }

    fn model_hash(&self, path: &Path) -> Result<String> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read model", e))?;
        Ok(crate::config::hex_sha256(&bytes))
    }

    fn load(&self, p: &Pipeline, path: &Path, _log: &Log) -> Result<Box<dyn Model>> {
        let (model, hash) = HandcraftedModel::<C>::load(path)?;
        let ids = |c: &[crate::config::ClassDef]| {
            c.iter().map(|c| (c.id, c.name.clone())).collect::<Vec<_>>()
        };
        if ids(&model.classes) != ids(&p.classes) {
            return Err(Error::Model {
                path: path.to_path_buf(),
                msg: "its class table (ids and names) differs from the pipeline's `classes`; use the same table or retrain".into(),
            });
        }
        Ok(Box::new(StackModel {
            model,
            path: path.to_path_buf(),
            hash,
        }))
    }
}

/// A trained hand-crafted model and where it is saved.
struct StackModel<C> {
    model: HandcraftedModel<C>,
    path: PathBuf,
    hash: String,
}

impl<C: StackClassifier> Model for StackModel<C> {
    fn path(&self) -> &Path {
        &self.path
    }

    fn hash(&self) -> &str {
        &self.hash
    }

    fn samples_per_class(&self) -> Vec<usize> {
        self.model.samples_per_class.clone()
    }

    fn band_meanings(&self, k: usize) -> BandMeanings {
        self.model.classifier.band_meanings(k)
    }

    fn metadata(&self) -> Vec<(String, String)> {
        vec![(
            "GEOFUSE_FEATURES".into(),
            self.model.feature_names.join(","),
        )]
    }

    fn predictor<'a>(&'a self, ctx: &SceneContext) -> Result<Box<dyn TilePredictor + 'a>> {
        let (p, src) = (ctx.pipeline, ctx.scene);
        // The plan uses the training-time GLCM ranges, never the mapped scene's.
        let plan = plan_with(p, src, &self.model.glcm_ranges);
        self.model
            .check_compatible(&self.path, &plan.names, &p.classes)?;
        Ok(Box::new(StackPredictor {
            classifier: &self.model.classifier,
            classes: p.classes.len(),
            plan,
        }))
    }
}

/// Predicts tiles in parallel, one reader per worker.
struct StackPredictor<'a, C> {
    classifier: &'a C,
    classes: usize,
    plan: FeaturePlan,
}

impl<C: StackClassifier> TilePredictor for StackPredictor<'_, C> {
    fn halo(&self) -> usize {
        self.plan.halo
    }

    fn parallel(&self) -> bool {
        true
    }

    fn predict(&self, reader: &SceneReader, t: &Tile) -> Result<TilePrediction> {
        let CoreFeatures {
            features,
            labels,
            modalities,
            observations,
        } = tile_features(reader, &self.plan, t)?;
        let mut probs = predict_stack(self.classifier, self.classes, &features, modalities);
        probs.observations = observations;
        Ok(TilePrediction {
            probs,
            labels,
            uncalibrated: None,
        })
    }
}

/// Class probabilities of every pixel of a feature stack `[feature, row, col]` that has a
/// modality (`modalities` != 0), predicted in blocks of samples.
pub fn predict_stack<C: StackClassifier>(
    classifier: &C,
    k: usize,
    features: &Array3<f32>,
    modalities: Array2<u8>,
) -> TileProbabilities {
    let nf = features.dim().0;
    predict_pixels(classifier, k, nf, modalities, |r, c, dst| {
        for (j, d) in dst.iter_mut().enumerate() {
            *d = features[[j, r, c]];
        }
    })
}

/// [`predict_stack`] of a pixel-interleaved stack: `x` holds `[row][col][feature]`, `nf`
/// features per pixel, on the grid of `modalities`.
pub fn predict_interleaved<C: StackClassifier>(
    classifier: &C,
    k: usize,
    x: &[f32],
    nf: usize,
    modalities: Array2<u8>,
) -> TileProbabilities {
    let w = modalities.ncols();
    assert_eq!(x.len(), modalities.len() * nf);
    predict_pixels(classifier, k, nf, modalities, |r, c, dst| {
        dst.copy_from_slice(&x[(r * w + c) * nf..(r * w + c + 1) * nf]);
    })
}

/// Class probabilities of every pixel with a modality, `fill(row, col, dst)` writing its `nf`
/// features, predicted in blocks of samples.
fn predict_pixels<C: StackClassifier>(
    classifier: &C,
    k: usize,
    nf: usize,
    modalities: Array2<u8>,
    fill: impl Fn(usize, usize, &mut [f32]),
) -> TileProbabilities {
    const BLOCK: usize = 1024;
    let (h, w) = modalities.dim();
    let pixels: Vec<(usize, usize)> = modalities
        .indexed_iter()
        .filter(|(_, &m)| m != 0)
        .map(|(rc, _)| rc)
        .collect();
    let mut out = TileProbabilities {
        probs: Array3::zeros((k, h, w)),
        member_entropy: Array2::zeros((h, w)),
        modalities,
        observations: None,
    };
    let mut x = vec![0f32; BLOCK * nf];
    let mut probs = vec![0f32; BLOCK * k];
    let mut ent = vec![0f32; BLOCK];
    for chunk in pixels.chunks(BLOCK) {
        for (s, &(r, c)) in chunk.iter().enumerate() {
            fill(r, c, &mut x[s * nf..(s + 1) * nf]);
        }
        let n = chunk.len();
        classifier.predict_block(&x[..n * nf], n, &mut probs[..n * k], &mut ent[..n]);
        for (s, &(r, c)) in chunk.iter().enumerate() {
            for j in 0..k {
                out.probs[[j, r, c]] = probs[s * k + j];
            }
            out.member_entropy[[r, c]] = ent[s];
        }
    }
    out
}
