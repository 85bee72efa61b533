//! The pipeline's models: one per method, loaded from `model = ...`, reused from an earlier
//! run, or trained once on the pooled training scenes and saved in `<out>/models/`.
//!
//! A trained model is reused while its training fingerprint (the method's settings, the
//! features, split, seed and class table, the training scenes and the contents of their
//! files, the geofuse version) and its file hash are unchanged; `<out>/models/<method>.train.json`
//! records both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::manifest::fingerprint;
use super::scene::{prepare_scene, SceneSources};
use super::{read_json, scene_split, write_json, Log};
use crate::config::{hex_sha256, MethodDef, Pipeline, SceneRoles};
use crate::error::{Error, Result};
use crate::method::{Method, Model, SceneContext};
use crate::registry::for_def;

/// A method's model for this run.
pub struct RunModel {
    /// The model.
    pub model: Box<dyn Model>,
    /// Seconds spent training it in this run (0 when loaded or reused).
    pub train_seconds: f64,
    /// Names of the scenes it was trained on (empty for a model given with `model`).
    pub trained_on: Vec<String>,
}

/// Where trained models are saved.
pub fn models_dir(p: &Pipeline) -> PathBuf {
    p.output.join("models")
}

/// What a trained model depends on (hex SHA-256).
fn training_fingerprint(p: &Pipeline, m: &MethodDef, scenes: &[usize]) -> String {
    let defs: Vec<_> = scenes.iter().map(|&i| &p.scenes[i]).collect();
    let files: Vec<PathBuf> = defs
        .iter()
        .flat_map(|s| super::scene::input_files(s))
        .collect();
    let v = json!({
        "method": m.for_training(), "features": p.features, "split": p.split, "seed": p.seed,
        "classes": p.classes, "coregistration": p.coregistration, "tile_size": p.tiling.tile_size,
        "scenes": defs, "inputs": fingerprint(&files), "geofuse": env!("CARGO_PKG_VERSION"),
    });
    hex_sha256(v.to_string().as_bytes())
}

/// The training scenes, prepared once for every method that trains. A training scene with
/// bad input is left out (its failure is recorded when the scene loop reaches it); the model
/// trains on the others.
struct TrainingScenes<'a> {
    p: &'a Pipeline,
    indices: Vec<usize>,
    prepared: Option<Vec<SceneSources>>,
    /// Names of the training scenes left out for bad input.
    skipped: Vec<String>,
}

impl TrainingScenes<'_> {
    fn get(&mut self, log: &Log) -> Result<&[SceneSources]> {
        if self.prepared.is_none() {
            let mut v = Vec::new();
            let mut first_error = None;
            for &i in &self.indices {
                let s = &self.p.scenes[i];
                log.info(&format!("training scene {}: checking inputs", s.name));
                let work = models_dir(self.p).join(format!(".coreg-{}", s.name));
                match prepare_scene(self.p, s, &work) {
                    Ok(src) => v.push(src),
                    Err(e) if e.exit_code() == 2 => {
                        log.info(&format!(
                            "training scene {}: left out of training, bad input: {e}",
                            s.name
                        ));
                        self.skipped.push(s.name.clone());
                        first_error.get_or_insert(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            // Every training scene is bad: nothing to train on; the first one's error says why.
            if let (true, Some(e)) = (v.is_empty(), first_error) {
                return Err(e);
            }
            self.prepared = Some(v);
        }
        Ok(self.prepared.as_deref().unwrap_or(&[]))
    }

    fn clean(&self) {
        for &i in &self.indices {
            let work = models_dir(self.p).join(format!(".coreg-{}", self.p.scenes[i].name));
            let _ = std::fs::remove_dir_all(work);
        }
    }
}

/// The model of every method in `methods` for this run: `model = ...` when given, else the
/// recorded model when its fingerprint matches (and `force` is off), else trained now on the
/// training scenes (`only` restricts them to one scene, for `geofuse train --scene`).
pub fn obtain(
    p: &Pipeline,
    methods: &[&MethodDef],
    device: &str,
    force: bool,
    only: Option<&str>,
    log: &Log,
) -> Result<Vec<RunModel>> {
    let mut roles = SceneRoles::resolve(&p.scenes, &p.training, &p.evaluation, p.split_seed())
        .map_err(|m| Error::config(&p.output, m))?;
    if let Some(n) = only {
        roles.training.retain(|&i| p.scenes[i].name == n);
    }
    let mut scenes = TrainingScenes {
        p,
        indices: roles.training.clone(),
        prepared: None,
        skipped: Vec::new(),
    };
    let out = methods
        .iter()
        .map(|m| obtain_one(p, m, device, force, &mut scenes, log))
        .collect();
    scenes.clean();
    out
}

fn obtain_one(
    p: &Pipeline,
    m: &MethodDef,
    device: &str,
    force: bool,
    scenes: &mut TrainingScenes,
    log: &Log,
) -> Result<RunModel> {
    let method = for_def(m, device);
    if let Some(path) = &m.model {
        return Ok(RunModel {
            model: method.load(p, path, log)?,
            train_seconds: 0.0,
            trained_on: Vec::new(),
        });
    }
    let dir = models_dir(p);
    let record_path = dir.join(format!("{}.train.json", m.name));
    let fp = training_fingerprint(p, m, &scenes.indices);
    let names: Vec<String> = scenes
        .indices
        .iter()
        .map(|&i| p.scenes[i].name.clone())
        .collect();
    if !force {
        if let Some(model) = reuse(p, &*method, &record_path, &fp, log) {
            log.info(&format!(
                "method {}: model up to date (training inputs unchanged), reused",
                m.name
            ));
            return Ok(RunModel {
                model,
                train_seconds: 0.0,
                trained_on: names,
            });
        }
    }
    if scenes.indices.is_empty() {
        return Err(Error::config(
            &p.output,
            format!("method `{}` must be trained, but no scene gives training samples (none has `labels`, or all are held out); add labels, list `[training] scenes`, or set `model` on the method", m.name),
        ));
    }
    let t0 = Instant::now();
    let model = train(p, m, &*method, scenes, &dir, log)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| !scenes.skipped.contains(n))
        .collect();
    let record = json!({"fingerprint": fp, "model": model.path(), "model_hash": model.hash(),
        "trained_on": names, "train_seconds": train_seconds});
    write_json(&record_path, &record)?;
    Ok(RunModel {
        model,
        train_seconds,
        trained_on: names,
    })
}

/// The recorded model, when its fingerprint and file hash still match.
fn reuse(
    p: &Pipeline,
    method: &dyn Method,
    record_path: &Path,
    fp: &str,
    log: &Log,
) -> Option<Box<dyn Model>> {
    let r = read_json(record_path)?;
    let path = PathBuf::from(r.get("model")?.as_str()?);
    let same = r.get("fingerprint")?.as_str()? == fp
        && method.model_hash(&path).ok()?.as_str() == r.get("model_hash")?.as_str()?;
    same.then(|| method.load(p, &path, log).ok()).flatten()
}

fn train(
    p: &Pipeline,
    m: &MethodDef,
    method: &dyn Method,
    scenes: &mut TrainingScenes,
    dir: &Path,
    log: &Log,
) -> Result<Box<dyn Model>> {
    let names: Vec<String> = scenes
        .indices
        .iter()
        .map(|&i| p.scenes[i].name.clone())
        .collect();
    log.info(&format!(
        "method {}: training on {}",
        m.name,
        names.join(", ")
    ));
    let srcs = scenes.get(log)?;
    let ctxs: Vec<SceneContext> = srcs
        .iter()
        .map(|src| SceneContext {
            pipeline: p,
            scene: src,
            split: scene_split(p, src),
            held_out: false,
            log,
        })
        .collect();
    method.train(&ctxs, dir)
}

/// Labelled pixels of the training scenes that may train (training side and training
/// subset), the x axis of a learning curve.
pub fn training_pixels(p: &Pipeline, log: &Log) -> Result<u64> {
    let roles = SceneRoles::resolve(&p.scenes, &p.training, &p.evaluation, p.split_seed())
        .map_err(|m| Error::config(&p.output, m))?;
    let mut scenes = TrainingScenes {
        p,
        indices: roles.training,
        prepared: None,
        skipped: Vec::new(),
    };
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let mut n = 0u64;
    for src in scenes.get(log)? {
        let split = scene_split(p, src);
        let reader = super::scene::SceneReader::open(src)?;
        let g = &src.grid;
        let win = crate::raster::Window {
            col: 0,
            row: 0,
            width: g.width,
            height: g.height,
        };
        if let Some(l) = reader.read_labels(win)? {
            n += l
                .indexed_iter()
                .filter(|((r, c), &v)| {
                    crate::eval::class_index(&ids, v).is_some() && split.trains(*r, *c)
                })
                .count() as u64;
        }
    }
    scenes.clean();
    Ok(n)
}
