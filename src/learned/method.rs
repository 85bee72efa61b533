//! The learned method kind behind the [`crate::method`] interface: trains a network on
//! patches of a scene's training blocks (or loads one), and predicts tiles with Monte Carlo
//! dropout.

use std::path::{Path, PathBuf};

use ndarray::s;
use serde::{Deserialize, Serialize};

use super::scene_input::{hybrid_names, patch_windows, raw_window, read_patches, RawWindow};
use super::{LearnedModel, NetSpec, Runtime, TrainConfig};
use crate::error::{Error, Result};
use crate::features::FeaturePlan;
use crate::learned::Fusion;
use crate::method::{Method, Model, SceneContext, TilePrediction, TilePredictor};
use crate::pipeline::features::scene_plan;
use crate::pipeline::scene::SceneReader;
use crate::product::{BandMeanings, TileProbabilities};
use crate::tiler::Tile;

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
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
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

/// `kind = "learned"`.
pub struct NetworkMethod {
    name: String,
    settings: NetworkSettings,
    device: String,
}

impl NetworkMethod {
    /// The method `name` with its settings, on `device` (auto, cpu, wgpu).
    pub fn new(name: &str, settings: NetworkSettings, device: &str) -> Self {
        NetworkMethod {
            name: name.into(),
            settings,
            device: device.into(),
        }
    }

    fn train_config(&self, ctx: &SceneContext, extra: (usize, usize)) -> TrainConfig {
        let n = &self.settings;
        TrainConfig {
            spec: NetSpec {
                fusion: n.fusion,
                width: n.width,
                kernel: n.kernel,
                classes: ctx.pipeline.classes.len(),
                optical: ctx.scene.optical_bands.len(),
                extra_opt: extra.0,
                extra_sar: extra.1,
            },
            epochs: n.epochs,
            patience: n.patience,
            batch: n.batch,
            learning_rate: n.learning_rate,
            modality_dropout: n.modality_dropout,
            dropout: n.dropout,
            mc_passes: n.mc_passes,
            seed: ctx.pipeline.seed,
        }
    }

    /// Training and validation patch windows inside the scene's training blocks.
    fn windows(
        &self,
        ctx: &SceneContext,
    ) -> Result<(Vec<crate::raster::Window>, Vec<crate::raster::Window>)> {
        let (p, src, split) = (ctx.pipeline, ctx.scene, &ctx.split);
        let (g, block, n) = (&src.grid, p.split.block_size, self.settings.patches);
        let patch = self.settings.patch.min(block).min(g.width).min(g.height);
        let train = patch_windows(src, split, block, patch, n, false, p.seed);
        let nv = (n / 4).max(8);
        let mut val = patch_windows(src, split, block, patch, nv, true, p.seed);
        if val.is_empty() {
            // Too few blocks for a separate validation group: validate on training blocks.
            val = patch_windows(src, split, block, patch, nv, false, p.seed ^ 1);
        }
        if train.is_empty() {
            return Err(Error::config(&src.optical, format!("scene `{}` has no training block of {block} px that fits a patch; lower `split.block_size`", src.name)));
        }
        Ok((train, val))
    }

    fn runtime(&self, ctx: &SceneContext) -> Result<Runtime> {
        Runtime::shared(&self.device, ctx.log)
    }

    fn finish(&self, mut model: LearnedModel, path: PathBuf, hash: String) -> Box<dyn Model> {
        // Monte Carlo passes are an inference setting: the pipeline's value applies to a loaded
        // model too (its temperature was fitted with the passes it was trained with).
        model.meta.config.mc_passes = self.settings.mc_passes;
        Box::new(NetModel { model, path, hash })
    }
}

impl Method for NetworkMethod {
    fn train(&self, ctx: &SceneContext, scene_out: &Path) -> Result<Box<dyn Model>> {
        let (p, src, log) = (ctx.pipeline, ctx.scene, ctx.log);
        let runtime = self.runtime(ctx)?;
        let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
        std::fs::create_dir_all(scene_out)
            .map_err(|e| Error::io(scene_out, "create scene folder", e))?;
        let (train_w, val_w) = self.windows(ctx)?;
        let plan = if self.settings.hybrid {
            Some(scene_plan(p, src)?)
        } else {
            None
        };
        let (hybrid_features, extra_opt, extra_sar) =
            plan.as_ref().map_or((Vec::new(), 0, 0), hybrid_names);
        let train = read_patches(src, &ids, &train_w, plan.as_ref())?;
        let val = read_patches(src, &ids, &val_w, plan.as_ref())?;
        let config = self.train_config(ctx, (extra_opt, extra_sar));
        log.info(&format!(
            "  training {} on {} ({} + {} patches of {} px)",
            self.settings.fusion.name(),
            runtime.name,
            train.len(),
            val.len(),
            train_w[0].width
        ));
        let bar = log.progress_in("training", config.epochs, "epochs");
        let mut m = LearnedModel::train(
            &runtime,
            &config,
            &p.classes,
            &src.optical_bands,
            &train,
            &val,
            |_, loss, miou| {
                bar.step(&format!("loss {loss:.4}, validation mIoU {miou:.3}"));
            },
        )?;
        log.info(&format!(
            "  kept epoch {} (validation mIoU {:.3})",
            m.meta.report.best_epoch, m.meta.report.best_val_miou
        ));
        m.meta.hybrid_features = hybrid_features;
        m.meta.glcm_ranges = plan
            .map(|pl| pl.glcm_blocks().iter().map(|b| b.range).collect())
            .unwrap_or_default();
        let path = scene_out.join(&self.name);
        let hash = m.save(&path)?;
        Ok(self.finish(m, path, hash))
    }

    fn model_hash(&self, path: &Path) -> Result<String> {
        super::model_hash(path)
    }

    fn load(&self, ctx: &SceneContext, path: &Path) -> Result<Box<dyn Model>> {
        let (p, src) = (ctx.pipeline, ctx.scene);
        let (m, hash) = LearnedModel::load(path, &self.runtime(ctx)?)?;
        let same = m
            .meta
            .classes
            .iter()
            .map(|c| (c.id, &c.name))
            .eq(p.classes.iter().map(|c| (c.id, &c.name)));
        if !same || m.meta.optical_bands != src.optical_bands {
            return Err(Error::Model {
                path: path.to_path_buf(),
                msg: format!(
                    "it was trained on bands {:?} and classes {:?}; the scene has bands {:?} and the pipeline classes {:?}; retrain it or fix the pipeline",
                    m.meta.optical_bands,
                    m.meta.classes.iter().map(|c| &c.name).collect::<Vec<_>>(),
                    src.optical_bands,
                    p.classes.iter().map(|c| &c.name).collect::<Vec<_>>()
                ),
            });
        }
        Ok(self.finish(m, path.to_path_buf(), hash))
    }
}

/// A trained network and where it is saved.
struct NetModel {
    model: LearnedModel,
    path: PathBuf,
    hash: String,
}

impl Model for NetModel {
    fn path(&self) -> &Path {
        &self.path
    }

    fn hash(&self) -> &str {
        &self.hash
    }

    fn samples_per_class(&self) -> Vec<usize> {
        self.model.meta.report.class_pixels.clone()
    }

    fn band_meanings(&self, k: usize) -> BandMeanings {
        BandMeanings::ensemble(k)
    }

    fn metadata(&self) -> Vec<(String, String)> {
        vec![
            (
                "GEOFUSE_DEVICE".into(),
                self.model.runtime_name().to_string(),
            ),
            (
                "GEOFUSE_FUSION".into(),
                self.model.meta.config.spec.fusion.name().to_string(),
            ),
        ]
    }

    fn metrics(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert(
            "temperature".into(),
            self.model.meta.report.temperature.into(),
        );
        m
    }

    fn predictor<'a>(&'a self, ctx: &SceneContext) -> Result<Box<dyn TilePredictor + 'a>> {
        let (p, src) = (ctx.pipeline, ctx.scene);
        let meta = &self.model.meta;
        // Hybrid models rebuild the feature plan with their training-time GLCM ranges and
        // refuse a pipeline whose features differ.
        let plan = if meta.hybrid_features.is_empty() {
            None
        } else {
            let plan = FeaturePlan::new(
                &p.features,
                &src.optical_bands,
                src.scale,
                src.offset,
                &meta.glcm_ranges,
            );
            if hybrid_names(&plan).0 != meta.hybrid_features {
                return Err(Error::Model {
                    path: self.path.clone(),
                    msg: "it is a hybrid model trained on other hand-crafted features than the pipeline's [features]; use the same [features] or retrain".into(),
                });
            }
            Some(plan)
        };
        Ok(Box::new(NetPredictor {
            model: &self.model,
            src: ctx.scene.clone(),
            plan,
        }))
    }
}

/// Predicts tiles one after another: the backend already uses every core inside a tile.
struct NetPredictor<'a> {
    model: &'a LearnedModel,
    src: crate::pipeline::scene::SceneSources,
    plan: Option<FeaturePlan>,
}

impl TilePredictor for NetPredictor<'_> {
    fn halo(&self) -> usize {
        self.model.halo()
    }

    fn parallel(&self) -> bool {
        false
    }

    fn predict(&self, reader: &SceneReader, t: &Tile) -> Result<TilePrediction> {
        let RawWindow {
            raw,
            labels,
            modalities,
        } = raw_window(reader, &self.src, t.read, self.plan.as_ref())?;
        let pred = self.model.predict_full(&raw, (t.read.row, t.read.col));
        let (r0, c0) = t.core_offset();
        let (h, w) = (t.core.height, t.core.width);
        let core = s![r0..r0 + h, c0..c0 + w];
        let probs = TileProbabilities {
            probs: pred.probs.slice(s![.., r0..r0 + h, c0..c0 + w]).to_owned(),
            member_entropy: pred.entropy.slice(core).to_owned(),
            modalities: modalities.slice(core).to_owned(),
        };
        Ok(TilePrediction {
            probs,
            labels: labels.map(|l| l.slice(core).to_owned()),
            uncalibrated: Some(Box::new(move |r, c| pred.uncalibrated(r0 + r, c0 + c))),
        })
    }
}
