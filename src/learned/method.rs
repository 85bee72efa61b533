//! The learned method kind behind the [`crate::method`] interface: trains a network on
//! patches of a scene's training blocks (or loads one), and predicts tiles with Monte Carlo
//! dropout.

use std::path::{Path, PathBuf};

use ndarray::s;

use super::scene_input::{
    class_balanced, hybrid_names, patch_windows, raw_window, read_patches, RawWindow,
};
use super::temporal::TemporalSpec;
use super::Patch;
use super::{LearnedModel, NetSpec, Runtime, TrainConfig};
pub use crate::config::network::{NetworkSettings, Sampling, TemporalKind, TEMPORAL_HEADS};
use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::features::Polarisation;
use crate::log::Log;
use crate::method::{Method, Model, SceneContext, TilePrediction, TilePredictor};
use crate::product::{BandMeanings, TileProbabilities};
use crate::raster::Window;
use crate::scene::plan::{glcm_ranges, plan_with};
use crate::scene::FeaturePlan;
use crate::scene::SceneReader;
use crate::tiler::Tile;

/// The patch-sampling seed of training scene `si`.
fn scene_seed(seed: u64, si: usize) -> u64 {
    seed ^ (si as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
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
        // A season's network takes every step of each band as a channel.
        let season = ctx.scene.season.as_ref();
        let steps = season.map_or(1, |s| s.steps.len());
        let temporal = season
            .filter(|_| n.temporal == TemporalKind::Ltae)
            .map(|s| TemporalSpec {
                steps,
                step_days: s.season.step_days as usize,
                dim: n.width,
                heads: TEMPORAL_HEADS,
            });
        TrainConfig {
            spec: NetSpec {
                fusion: n.fusion,
                width: n.width,
                kernel: n.kernel,
                classes: ctx.pipeline.classes.len(),
                optical: ctx.scene.optical_bands.len() * steps,
                sar: ctx.scene.sar_pols.len() * steps,
                extra_opt: extra.0,
                extra_sar: extra.1,
                encoder: n.encoder,
                raw_inputs: n.raw_inputs,
                pixel_path: n.pixel_path,
                align: n.align,
                temporal,
            },
            epochs: n.epochs,
            patience: n.patience,
            batch: n.batch,
            learning_rate: n.learning_rate,
            schedule: n.schedule,
            weight_decay: n.weight_decay,
            modality_dropout: n.modality_dropout,
            radiometric_jitter: n.radiometric_jitter,
            date_dropout: n.date_dropout,
            dropout: n.dropout,
            mc_passes: n.mc_passes,
            mc_dates: n.mc_dates,
            seed: ctx.pipeline.seed,
        }
    }

    /// The patch side: the setting, capped by the block size and the scene.
    fn patch_side(&self, ctx: &SceneContext) -> usize {
        let g = &ctx.scene.grid;
        self.settings
            .patch
            .min(ctx.pipeline.split.block_size)
            .min(g.width)
            .min(g.height)
    }

    /// Epoch `epoch`'s training patch windows inside the training blocks of scene `si`:
    /// `patches` of them, drawn afresh each epoch (epoch 1 with the scene's seed).
    fn train_windows(&self, ctx: &SceneContext, si: usize, epoch: usize) -> Result<Vec<Window>> {
        let seed = scene_seed(ctx.pipeline.seed, si)
            ^ ((epoch as u64).saturating_sub(1)).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let (p, patch) = (ctx.pipeline, self.patch_side(ctx));
        let n = self.settings.patches;
        let balanced = self.settings.sampling == Sampling::ClassBalanced;
        let draw = if balanced { 4 * n } else { n };
        let wins = patch_windows(
            ctx.scene,
            &ctx.split,
            p.split.block_size,
            patch,
            draw,
            false,
            seed,
        );
        if !balanced {
            return Ok(wins);
        }
        let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
        class_balanced(ctx.scene, &ctx.split, &ids, &wins, n, seed)
    }

    /// Validation patch windows (fixed over training) of scene `si`: a quarter of `patches`
    /// (at least 16), so early stopping and the temperature rest on as many pixels per scene
    /// as there are training scenes.
    fn val_windows(&self, ctx: &SceneContext, si: usize) -> Vec<Window> {
        let (p, patch) = (ctx.pipeline, self.patch_side(ctx));
        let seed = scene_seed(p.seed, si);
        let nv = (self.settings.patches / 4).max(16);
        let block = p.split.block_size;
        let val = patch_windows(ctx.scene, &ctx.split, block, patch, nv, true, seed);
        if val.is_empty() {
            // Too few blocks for a separate validation group: validate on training blocks.
            return patch_windows(ctx.scene, &ctx.split, block, patch, nv, false, seed ^ 1);
        }
        val
    }

    /// The patches of `wins` of every training scene.
    fn read_all(
        &self,
        scenes: &[SceneContext],
        ranges: Option<&[(f64, f64)]>,
        wins: impl Fn(usize, &SceneContext) -> Result<Vec<Window>>,
    ) -> Result<Vec<Patch>> {
        let gaps = self.settings.temporal == TemporalKind::Ltae;
        let p = scenes[0].pipeline;
        let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
        let mut out = Vec::new();
        for (si, ctx) in scenes.iter().enumerate() {
            let plan = ranges.map(|r| plan_with(p, ctx.scene, r));
            let w = wins(si, ctx)?;
            out.extend(read_patches(
                ctx.scene,
                &ctx.split,
                &ids,
                &w,
                (plan.as_ref(), gaps),
            )?);
        }
        Ok(out)
    }

    /// Epoch `epoch`'s training patches of every training scene (balanced: as many from each).
    fn epoch_patches(
        &self,
        scenes: &[SceneContext],
        ranges: Option<&[(f64, f64)]>,
        epoch: usize,
    ) -> Result<Vec<Patch>> {
        let train = self.read_all(scenes, ranges, |si, c| self.train_windows(c, si, epoch))?;
        if train.is_empty() {
            let (p, src) = (scenes[0].pipeline, scenes[0].scene);
            return Err(Error::config(&src.optical, format!("the training scenes have no training block of {} px that fits a patch; lower `split.block_size`", p.split.block_size)));
        }
        Ok(train)
    }

    /// Temporal encoders need season scenes; a season network trains on one number of steps.
    fn check_steps(&self, scenes: &[SceneContext]) -> Result<()> {
        let steps = |c: &SceneContext| c.scene.season.as_ref().map(|s| s.steps.len());
        let first = &scenes[0];
        if let Some(c) = scenes.iter().find(|c| steps(c) != steps(first)) {
            return Err(Error::config(&c.scene.optical, format!("training scene `{}` has {:?} steps, `{}` has {:?}; a network trains on one temporal grid: give every training scene the same [time] grid", c.scene.name, steps(c), first.scene.name, steps(first))));
        }
        if self.settings.temporal == TemporalKind::Ltae && steps(first).is_none() {
            return Err(Error::config(&first.scene.optical, format!("method `{}` has temporal = \"ltae\", which needs a season (a [time] section with dated rasters); add [time] or drop temporal", self.name)));
        }
        Ok(())
    }

    fn finish(&self, mut model: LearnedModel, path: PathBuf, hash: String) -> Box<dyn Model> {
        // Monte Carlo passes (and whether they drop dates) are inference settings: the
        // pipeline's values apply to a loaded model too (its temperature was fitted with the
        // passes it was trained with).
        model.meta.config.mc_passes = self.settings.mc_passes;
        model.meta.config.mc_dates = self.settings.mc_dates;
        Box::new(NetModel { model, path, hash })
    }
}

impl Method for NetworkMethod {
    fn train(&self, scenes: &[SceneContext], models_dir: &Path) -> Result<Box<dyn Model>> {
        let first = scenes
            .first()
            .ok_or_else(|| Error::Internal("no training scene".into()))?;
        let (p, src, log) = (first.pipeline, first.scene, first.log);
        if let Some(c) = scenes
            .iter()
            .find(|c| c.scene.optical_bands != src.optical_bands)
        {
            return Err(Error::config(&c.scene.optical, format!("training scene `{}` has optical bands {:?}, `{}` has {:?}; a network trains on one band list: give every training scene the same bands", c.scene.name, c.scene.optical_bands, src.name, src.optical_bands)));
        }
        self.check_steps(scenes)?;
        if let Some(c) = scenes.iter().find(|c| c.scene.sar_pols != src.sar_pols) {
            return Err(Error::config(&c.scene.sar, format!("training scene `{}` has polarisations {}, `{}` has {}; a network trains on one polarisation list: give every training scene the same `sar.polarisations`", c.scene.name, Polarisation::join(&c.scene.sar_pols), src.name, Polarisation::join(&src.sar_pols))));
        }
        let runtime = Runtime::shared(&self.device, log)?;
        std::fs::create_dir_all(models_dir)
            .map_err(|e| Error::io(models_dir, "create models folder", e))?;
        let ranges = if self.settings.hybrid {
            let srcs: Vec<_> = scenes.iter().map(|c| c.scene).collect();
            Some(glcm_ranges(&srcs, &p.features.glcm)?)
        } else {
            None
        };
        let plan = ranges.as_deref().map(|r| plan_with(p, src, r));
        let (hybrid_features, extra_opt, extra_sar) =
            plan.as_ref().map_or((Vec::new(), 0, 0), hybrid_names);
        let val = self.read_all(scenes, ranges.as_deref(), |si, c| {
            Ok(self.val_windows(c, si))
        })?;
        let config = self.train_config(first, (extra_opt, extra_sar));
        log.info(&format!(
            "  training {} on {} ({} patches of {} px per scene and epoch, {} validation)",
            self.settings.fusion.name(),
            runtime.name,
            self.settings.patches,
            self.patch_side(first),
            val.len(),
        ));
        // A stop request (SIGTERM, SIGINT) ends training at the next epoch, not after it.
        let mut draw = |epoch| {
            crate::stop::check()?;
            self.epoch_patches(scenes, ranges.as_deref(), epoch)
        };
        let bar = log.progress_in("training", config.epochs, "epochs");
        let mut m = LearnedModel::train(
            &runtime,
            &config,
            (&p.classes, &src.optical_bands),
            &mut draw,
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
        m.meta.sar_polarisations = src.sar_pols.clone();
        m.meta.glcm_ranges = ranges.unwrap_or_default();
        let path = models_dir.join(&self.name);
        let hash = m.save(&path)?;
        Ok(self.finish(m, path, hash))
    }

    fn model_hash(&self, path: &Path) -> Result<String> {
        super::model_hash(path)
    }

    fn load(&self, p: &Pipeline, path: &Path, log: &Log) -> Result<Box<dyn Model>> {
        let (m, hash) = LearnedModel::load(path, &Runtime::shared(&self.device, log)?)?;
        let same = m
            .meta
            .classes
            .iter()
            .map(|c| (c.id, &c.name))
            .eq(p.classes.iter().map(|c| (c.id, &c.name)));
        if !same {
            return Err(Error::Model {
                path: path.to_path_buf(),
                msg: format!(
                    "it was trained on classes {:?}, the pipeline has {:?}; retrain it or fix the pipeline",
                    m.meta.classes.iter().map(|c| &c.name).collect::<Vec<_>>(),
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
        if meta.optical_bands != src.optical_bands {
            return Err(Error::Model {
                path: self.path.clone(),
                msg: format!(
                    "it was trained on bands {:?}; scene `{}` has bands {:?}; retrain it on scenes with these bands or fix `optical.bands`",
                    meta.optical_bands, src.name, src.optical_bands
                ),
            });
        }
        if let Some(p) = meta
            .sar_polarisations
            .iter()
            .find(|p| !src.sar_pols.contains(p))
        {
            return Err(Error::Model {
                path: self.path.clone(),
                msg: format!(
                    "it was trained on polarisations {}; scene `{}` has {} (no {}); retrain it on scenes with these polarisations or fix `sar.polarisations`",
                    Polarisation::join(&meta.sar_polarisations),
                    src.name,
                    Polarisation::join(&src.sar_pols),
                    p.name()
                ),
            });
        }
        let spec = &meta.config.spec;
        let steps = src.season.as_ref().map_or(1, |s| s.steps.len());
        if spec.optical != src.optical_bands.len() * steps {
            return Err(Error::Model {
                path: self.path.clone(),
                msg: format!(
                    "it was trained on {} optical channels; scene `{}` gives {} ({} bands x {} steps); use the [time] grid it was trained with or retrain",
                    spec.optical, src.name, src.optical_bands.len() * steps, src.optical_bands.len(), steps
                ),
            });
        }
        // Hybrid models rebuild the feature plan with their training-time GLCM ranges and
        // refuse a pipeline whose features differ.
        let plan = if meta.hybrid_features.is_empty() {
            None
        } else {
            let plan = plan_with(p, src, &meta.glcm_ranges);
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
    src: crate::scene::SceneSources,
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
            observations,
        } = raw_window(
            reader,
            &self.src,
            t.read,
            &self.model.meta.sar_polarisations,
            (
                self.plan.as_ref(),
                self.model.meta.config.spec.temporal.is_some(),
            ),
        )?;
        let pred = self.model.predict_full(&raw, (t.read.row, t.read.col));
        let (r0, c0) = t.core_offset();
        let (h, w) = (t.core.height, t.core.width);
        let core = s![r0..r0 + h, c0..c0 + w];
        let probs = TileProbabilities {
            probs: pred.probs.slice(s![.., r0..r0 + h, c0..c0 + w]).to_owned(),
            member_entropy: pred.entropy.slice(core).to_owned(),
            modalities: modalities.slice(core).to_owned(),
            observations: observations.map(|o| o.slice(s![.., r0..r0 + h, c0..c0 + w]).to_owned()),
        };
        Ok(TilePrediction {
            probs,
            labels: labels.map(|l| l.slice(core).to_owned()),
            uncalibrated: Some(Box::new(move |r, c| pred.uncalibrated(r0 + r, c0 + c))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::Fusion;

    fn settings(extra: &str) -> NetworkSettings {
        toml::from_str(&format!("fusion = \"learned-kernel\"\n{extra}")).unwrap()
    }

    #[test]
    fn features_only_inputs_need_the_hybrid_features() {
        assert!(settings("").raw_inputs);
        let err = settings("raw_inputs = false").validate().unwrap_err();
        assert!(err.contains("hybrid = true"), "{err}");
        settings("raw_inputs = false\nhybrid = true")
            .validate()
            .unwrap();
    }

    #[test]
    fn the_default_raw_inputs_stay_out_of_settings_and_model_files() {
        // Earlier pipelines and models hash as before; features-only ones say so.
        let s = serde_json::to_string(&settings("")).unwrap();
        assert!(!s.contains("raw_inputs"), "{s}");
        let spec = NetSpec {
            raw_inputs: false,
            ..NetSpec::raw(Fusion::Concat, 4, 3)
        };
        let j = serde_json::to_string(&spec).unwrap();
        assert!(j.contains("\"raw_inputs\":false"), "{j}");
        let back: NetSpec = serde_json::from_str(&j).unwrap();
        assert_eq!(back, spec);
        let old: NetSpec = serde_json::from_str(
            &serde_json::to_string(&NetSpec::raw(Fusion::Concat, 4, 3)).unwrap(),
        )
        .unwrap();
        assert!(old.raw_inputs);
    }

    #[test]
    fn align_is_a_learned_kernel_setting_that_stays_out_of_hashes_when_off() {
        settings("align = 12").validate().unwrap();
        let err = settings("align = 40").validate().unwrap_err();
        assert!(err.contains("at most 32"), "{err}");
        let concat: NetworkSettings = toml::from_str("fusion = \"concat\"\nalign = 4").unwrap();
        let err = concat.validate().unwrap_err();
        assert!(err.contains("learned-kernel"), "{err}");
        let s = serde_json::to_string(&settings("")).unwrap();
        assert!(!s.contains("align"), "{s}");
        let j = serde_json::to_string(&NetSpec::raw(Fusion::LearnedKernel, 4, 3)).unwrap();
        assert!(!j.contains("align"), "{j}");
    }

    #[test]
    fn date_dropout_needs_temporal_attention_and_stays_out_of_hashes_when_off() {
        let ltae = |extra: &str| settings(&format!("temporal = \"ltae\"\n{extra}"));
        ltae("date_dropout = 0.3").validate().unwrap();
        let err = ltae("date_dropout = 0.95").validate().unwrap_err();
        assert!(err.contains("[0, 0.9)"), "{err}");
        let err = settings("date_dropout = 0.3").validate().unwrap_err();
        assert!(err.contains("temporal = \"ltae\""), "{err}");
        let s = serde_json::to_string(&ltae("")).unwrap();
        assert!(!s.contains("date_dropout"), "{s}");
    }
}
