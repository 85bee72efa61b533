//! Batch runner: scenes → tiles → methods → products, metrics, manifest, report.
//!
//! Public entry points: [`run`] (`geofuse run`), [`load_pipeline`], [`train_models`],
//! [`predict`], [`scene_split`]. Inside:
//! - `method_run`: one method on one scene through the method interface: model, product,
//!   held-out evaluation.
//! - `models`: one model per method, trained once on the training scenes (or reused).
//! - `manifest`: product hashes for resumable, idempotent runs.
//! - `stac`, `qml`: the STAC Item and QGIS style beside every product.
//! - `lock`, `shared`: shards running at once into one folder; the files they share (the
//!   report itself is rendered by the `report` module).
//! - `compare`, `study`, `suggest`, `active`: the commands built on runs.

pub(crate) mod active;
pub(crate) mod compare;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod method_run;
pub(crate) mod models;
pub(crate) mod qml;
pub(crate) mod shared;
pub(crate) mod stac;
pub(crate) mod study;
pub(crate) mod suggest;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::config::Pipeline;
use crate::error::{Error, Result};
use manifest::{fingerprint, Manifest, ProductEntry};

// The layer below the runner, under the paths the runner's files use.
pub(crate) use crate::io::json::{read_json, write_json};
pub(crate) use crate::log::Log;
pub(crate) use crate::scene;
use crate::stop;

/// Options of `geofuse run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Override of the pipeline's output folder.
    pub out: Option<PathBuf>,
    /// Redo products even when their hashes match.
    pub force: bool,
    /// (I, N): run the I-th (0-based) of N disjoint parts.
    pub shard: (usize, usize),
    /// Silence progress lines.
    pub quiet: bool,
    /// Device for learned methods: auto, cpu or wgpu.
    pub device: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            out: None,
            force: false,
            shard: (0, 1),
            quiet: false,
            device: "auto".into(),
        }
    }
}

/// One product of a run.
#[derive(Debug, Clone)]
pub struct ProductSummary {
    /// Scene.
    pub scene: String,
    /// Method.
    pub method: String,
    /// Product path.
    pub product: PathBuf,
    /// Metrics of the method on this scene (JSON object).
    pub metrics: Value,
    /// Whether the product was up to date and skipped.
    pub skipped: bool,
}

/// What `run` did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Output folder.
    pub out: PathBuf,
    /// Products (made or skipped).
    pub products: Vec<ProductSummary>,
    /// Report path.
    pub report: PathBuf,
}

/// The spatial train/test split of a scene (the same for every method).
pub fn scene_split(p: &Pipeline, src: &scene::SceneSources) -> crate::eval::split::BlockSplit {
    let g = &src.grid;
    crate::eval::split::BlockSplit::new(
        g.width,
        g.height,
        p.split.block_size,
        p.split.test_fraction,
        p.split_seed(),
    )
    .with_sides(src.sides.clone())
    .with_training_fraction(p.split.training_fraction, p.seed)
}

/// Loads a pipeline file (parsed, paths resolved, scene sets and catalogue tables expanded,
/// validated; a bad file is an [`Error::Config`] naming it) and applies the `--out` override.
///
/// ```no_run
/// let p = geofuse::pipeline::load_pipeline("pipelines/demo.toml".as_ref(), None)?;
/// for s in &p.scenes {
///     println!("{}: {}", s.name, s.optical.path.display());
/// }
/// println!("methods: {:?}", p.product_names());
/// # Ok::<(), geofuse::Error>(())
/// ```
pub fn load_pipeline(path: &Path, out: Option<&Path>) -> Result<Pipeline> {
    let mut p = Pipeline::load(path)?;
    if let Some(o) = out {
        p.output = std::env::current_dir()
            .map(|d| d.join(o))
            .unwrap_or_else(|_| o.to_path_buf());
        p.check_output_folder()
            .map_err(|m| Error::config("--out", m))?;
    }
    Ok(p)
}

/// Runs a pipeline file: every scene of this shard, every method (what `geofuse run` does).
///
/// ```no_run
/// use geofuse::pipeline::{run, RunOptions};
/// let summary = run("pipelines/demo.toml".as_ref(), &RunOptions::default())?;
/// for p in &summary.products {
///     println!("{} {} -> {} (OA {})", p.scene, p.method, p.product.display(), p.metrics["oa"]);
/// }
/// println!("report: {}", summary.report.display());
/// # Ok::<(), geofuse::Error>(())
/// ```
pub fn run(pipeline_path: &Path, opts: &RunOptions) -> Result<RunSummary> {
    let p = load_pipeline(pipeline_path, opts.out.as_deref())?;
    run_pipeline(p, pipeline_path, opts)
}

/// Records a scene's failure in its manifest (its products of earlier runs stay listed) and
/// removes its work folder.
fn record_failure(scene_out: &Path, e: &Error) -> Result<()> {
    std::fs::create_dir_all(scene_out)
        .map_err(|x| Error::io(scene_out, "create scene folder", x))?;
    let _ = std::fs::remove_dir_all(scene_out.join(".coreg"));
    let mut man = Manifest::load(scene_out);
    man.failure = Some(manifest::SceneFailure {
        kind: e.kind_name().into(),
        message: e.to_string(),
    });
    man.save(scene_out)
}

/// The worker pool of a run (`tiling.workers` threads, default all cores).
fn thread_pool(p: &Pipeline) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(w) = p.tiling.workers {
        builder = builder.num_threads(w);
    }
    builder
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))
}

/// geofuse writes only inside the output folder: a scene folder (or the models folder) that
/// is a symbolic link could lead its writes anywhere, so the run refuses it.
fn refuse_links(out: &Path, p: &Pipeline) -> Result<()> {
    let names = p.scenes.iter().map(|s| s.name.as_str()).chain(["models"]);
    for n in names {
        let f = out.join(n);
        if std::fs::symlink_metadata(&f).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::config(
                &f,
                "is a symbolic link; geofuse writes only inside the output folder: remove the link (or choose another output folder)",
            ));
        }
    }
    Ok(())
}

/// Creates the output folder; failing is bad configuration (exit 2), not an internal error.
fn create_output(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .and_then(|_| {
            // One probe per process: shards start together, and another one's sweep may
            // already have removed it.
            let probe = out.join(format!(".geofuse.write-test-{}.partial", std::process::id()));
            std::fs::write(&probe, b"").and_then(|_| match std::fs::remove_file(&probe) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            })
        })
        .map_err(|e| {
            Error::config(
                out,
                format!("the output folder cannot be created or written ({e}); choose a writable `output` in the pipeline or pass --out DIR"),
            )
        })
}

/// Runs an already loaded pipeline (`pipeline_path` names it in messages).
pub fn run_pipeline(p: Pipeline, pipeline_path: &Path, opts: &RunOptions) -> Result<RunSummary> {
    let (si, sn) = opts.shard;
    if sn == 0 || si >= sn {
        return Err(Error::config(
            pipeline_path,
            format!("--shard {si}/{sn}: use I/N with 0 <= I < N"),
        ));
    }
    let log = Log { quiet: opts.quiet };
    let out = p.output.clone();
    create_output(&out)?;
    refuse_links(&out, &p)?;
    let pool = thread_pool(&p)?;
    let defs: Vec<&crate::config::MethodDef> = p.methods.iter().collect();
    let models = {
        // Shards started together: the first trains, the others wait and reuse its models.
        let _lock = lock::OutputLock::acquire(&out, "models", &log)?;
        lock::sweep_temporary(&out);
        lock::sweep_temporary(&models::models_dir(&p));
        shared::write_run_record(&out, pipeline_path)?;
        pool.install(|| models::obtain(&p, &defs, &opts.device, opts.force, None, &log))?
    };
    let roles =
        crate::config::SceneRoles::resolve(&p.scenes, &p.training, &p.evaluation, p.split_seed())
            .map_err(|m| Error::config(pipeline_path, m))?;
    let run = SceneRun {
        p: &p,
        opts,
        log: &log,
        pipeline_hash: p.hash(),
        models,
        training: roles.training,
    };
    let mut products = Vec::new();
    let (mut failed, mut tried, mut done) = (Vec::new(), 0, Vec::new());
    let mut stopped = None;
    for (i, s) in p.scenes.iter().enumerate() {
        if i % sn != si {
            continue;
        }
        if stop::requested() {
            stopped = Some(i);
            break;
        }
        tried += 1;
        // A scene that gave no training sample (held out, or simply not a training scene) is
        // scored on all its labelled pixels.
        match pool.install(|| run.scene(s, !run.training.contains(&i))) {
            Ok(ps) => {
                products.extend(ps);
                done.push(s.name.clone());
            }
            Err(Error::Interrupted(_)) => {
                let _ = std::fs::remove_dir_all(out.join(&s.name).join(".coreg"));
                stopped = Some(i);
                break;
            }
            // Bad input fails its scene alone: recorded, and the batch goes on.
            Err(e) if e.exit_code() == 2 => {
                log.info(&format!(
                    "scene {}: FAILED ({}): {e}",
                    s.name,
                    e.kind_name()
                ));
                record_failure(&out.join(&s.name), &e)?;
                failed.push((s.name.clone(), e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    let report = shared::finish(&out, &p, &log)?;
    if let Some(i) = stopped {
        let left: Vec<&str> = p.scenes[i..]
            .iter()
            .enumerate()
            .filter(|(j, _)| (i + j) % sn == si)
            .map(|(_, s)| s.name.as_str())
            .collect();
        return Err(Error::Interrupted(format!(
            "finished scenes: [{}]; not finished: [{}]; rerun the same command to go on",
            done.join(", "),
            left.join(", ")
        )));
    }
    if !failed.is_empty() {
        return Err(Error::ScenesFailed {
            failed,
            total: tried,
        });
    }
    Ok(RunSummary {
        out,
        products,
        report,
    })
}

/// What every scene of a run shares.
struct SceneRun<'a> {
    p: &'a Pipeline,
    opts: &'a RunOptions,
    log: &'a Log,
    pipeline_hash: String,
    /// One model per method, in `p.methods` order.
    models: Vec<models::RunModel>,
    /// Indices of the training scenes.
    training: Vec<usize>,
}

impl SceneRun<'_> {
    /// Every method on one scene: products, metrics.json, the scene's manifest.
    fn scene(&self, s: &crate::config::SceneDef, held_out: bool) -> Result<Vec<ProductSummary>> {
        let (p, log) = (self.p, self.log);
        let scene_out = p.output.join(&s.name);
        std::fs::create_dir_all(&scene_out)
            .map_err(|e| Error::io(&scene_out, "create scene folder", e))?;
        log.info(&format!("scene {}: checking inputs", s.name));
        // What a killed run of this scene left behind (only this shard writes here).
        lock::sweep_temporary(&scene_out);
        let src = scene::prepare_scene(p, s, &scene_out.join(".coreg"))?;
        for v in &src.coregistration {
            log.info(&format!("  {v}"));
        }
        let mut man = Manifest::load(&scene_out);
        let metrics_path = scene_out.join("metrics.json");
        let mut metrics =
            read_json(&metrics_path).unwrap_or_else(|| json!({"scene": s.name, "methods": {}}));
        let ctx = crate::method::SceneContext {
            pipeline: p,
            scene: &src,
            split: scene_split(p, &src),
            held_out,
            log,
        };
        let mut products = Vec::new();
        for (m, rm) in p.methods.iter().zip(&self.models) {
            let ps = self.method(s, (m, rm), &ctx, &scene_out, &mut man, &mut metrics)?;
            if ps.iter().any(|p| !p.skipped) {
                man.save(&scene_out)?;
                write_json(&metrics_path, &metrics)?;
            }
            for p in ps.iter().filter(|p| !p.skipped) {
                log.info(&format!("  product: {}", p.product.display()));
            }
            products.extend(ps);
        }
        write_json(&metrics_path, &metrics)?;
        if man.failure.take().is_some() {
            man.save(&scene_out)?;
        }
        let _ = std::fs::remove_dir_all(scene_out.join(".coreg"));
        Ok(products)
    }

    /// One method on one scene, or its up-to-date product.
    fn method(
        &self,
        s: &crate::config::SceneDef,
        (m, rm): (&crate::config::MethodDef, &models::RunModel),
        ctx: &crate::method::SceneContext,
        scene_out: &Path,
        man: &mut Manifest,
        metrics: &mut Value,
    ) -> Result<Vec<ProductSummary>> {
        let (p, log) = (self.p, self.log);
        let mut inputs = ctx.scene.input_files();
        inputs.extend(m.model.clone());
        inputs.extend(m.regularisation().and_then(|r| r.exclusion.clone()));
        let config_hash = p.product_config_hash(s, m);
        let input_hash = fingerprint(&inputs);
        let summary = |name: &str, metrics: Value, skipped: bool| ProductSummary {
            scene: s.name.clone(),
            method: name.to_string(),
            product: scene_out.join(format!("{name}.tif")),
            metrics,
            skipped,
        };
        let method = crate::registry::for_def(m, &self.opts.device);
        let up_to_date = |name: &String| {
            man.products.get(name).is_some_and(|e| {
                e.config_hash == config_hash
                    && e.input_hash == input_hash
                    && scene_out.join(format!("{name}.tif")).exists()
                    && e.model_hash_matches(method.model_hash(&e.model).ok())
            })
        };
        if !self.opts.force && m.product_names().iter().all(up_to_date) {
            log.info(&format!(
                "scene {}: {} is up to date (hashes match), skipped",
                s.name, m.name
            ));
            let names = m.product_names();
            return Ok(names
                .iter()
                .map(|n| {
                    let metrics = man.products.get(n).map(|e| e.metrics.clone());
                    summary(n, metrics.unwrap_or_default(), true)
                })
                .collect());
        }
        log.info(&format!(
            "scene {}: method {} ({})",
            s.name,
            m.name,
            m.kind().name()
        ));
        let meta = vec![
            (
                "GEOFUSE_VERSION".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (
                "GEOFUSE_PIPELINE_HASH".to_string(),
                self.pipeline_hash.clone(),
            ),
            ("GEOFUSE_CONFIG_HASH".to_string(), config_hash.clone()),
            ("GEOFUSE_METHOD".to_string(), m.name.clone()),
            ("GEOFUSE_SCENE".to_string(), s.name.clone()),
        ];
        let (raw, reg) = method_run::run_method(&*rm.model, m, ctx, scene_out, meta)?;
        let hashes = (config_hash, input_hash);
        let mj = self.record(s, (m, rm), ctx, &raw, &m.name, &hashes, (man, metrics))?;
        let mut out = vec![summary(&m.name, mj, false)];
        if let (Some(reg), Some(name)) = (reg, m.regularised_name()) {
            let mj = self.record(s, (m, rm), ctx, &reg, &name, &hashes, (man, metrics))?;
            out.push(summary(&name, mj, false));
        }
        Ok(out)
    }

    /// Records one product `name` of method `m`: its metrics, STAC Item, QGIS style and
    /// manifest entry; returns its metrics.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        s: &crate::config::SceneDef,
        (m, rm): (&crate::config::MethodDef, &models::RunModel),
        ctx: &crate::method::SceneContext,
        outcome: &method_run::MethodOutcome,
        name: &str,
        (config_hash, input_hash): &(String, String),
        (man, metrics): (&mut Manifest, &mut Value),
    ) -> Result<Value> {
        let p = self.p;
        let mut mj = method_metrics(p, (m, name), ctx, outcome, self.log);
        mj["train_seconds"] = json!(rm.train_seconds);
        mj["trained_on"] = json!(rm.trained_on);
        if let Some(how) = &outcome.postprocess {
            mj["postprocess"] = json!(how);
            mj["regularises"] = json!(m.name);
        }
        let def = crate::config::MethodDef {
            name: name.to_string(),
            ..m.clone()
        };
        stac::write_item(p, ctx.scene, &def, outcome, &self.pipeline_hash)?;
        qml::write_beside(&outcome.product, &p.classes)?;
        metrics["methods"][name] = mj.clone();
        man.products.insert(
            name.to_string(),
            ProductEntry {
                scene: s.name.clone(),
                method: name.to_string(),
                product: outcome.product.clone(),
                model: outcome.model.clone(),
                config_hash: config_hash.clone(),
                input_hash: input_hash.clone(),
                model_hash: outcome.model_hash.clone(),
                pipeline_hash: self.pipeline_hash.clone(),
                metrics: mj.clone(),
            },
        );
        Ok(mj)
    }
}

/// The metrics.json object of one method on one scene (and the held-out log line).
fn method_metrics(
    p: &Pipeline,
    (m, name): (&crate::config::MethodDef, &str),
    ctx: &crate::method::SceneContext,
    outcome: &method_run::MethodOutcome,
    log: &Log,
) -> Value {
    let names: Vec<String> = p.classes.iter().map(|c| c.name.clone()).collect();
    let mpix = ctx.scene.grid.pixels() as f64 / 1e6;
    let mut mj = json!({
        "kind": m.kind().name(),
        "product": outcome.product.file_name().map(|f| f.to_string_lossy().to_string()),
        "model_hash": outcome.model_hash,
        "seconds": outcome.seconds,
        "predict_seconds": outcome.predict_seconds,
        "mpix_per_s": mpix / outcome.predict_seconds.max(1e-9),
        "train_samples_per_class": outcome.samples_per_class,
        "blocks_train_test": [outcome.blocks.0, outcome.blocks.1],
        "evaluation": if ctx.held_out { "held-out scene" } else { "held-out blocks" },
    });
    let obj = mj.as_object_mut().expect("a JSON object");
    obj.extend(outcome.model_metrics.clone());
    if let Some(ev) = &outcome.evaluation {
        if let Some(v) = ev.uncalibrated.as_ref().and_then(|u| u.ece()) {
            obj.insert("ece_uncalibrated".into(), json!(v));
        }
        obj.extend(
            ev.uncertainty
                .to_json()
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let mt = ev.confusion.metrics(&names);
        if let Value::Object(o) = serde_json::to_value(&mt).unwrap_or(Value::Null) {
            obj.extend(o);
        }
        let which = if name == m.name {
            String::new()
        } else {
            format!(" ({name})")
        };
        log.info(&format!(
            "  held-out{which}: OA {:.3}, kappa {:.3}, mIoU {:.3} on {} pixels",
            mt.oa, mt.kappa, mt.miou, mt.pixels
        ));
    }
    mj
}

/// A model trained by [`train_models`].
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// The training scenes, comma-separated.
    pub scene: String,
    /// Method.
    pub method: String,
    /// Model file (hand-crafted) or path stem (learned: `.bpk` + `.json`).
    pub path: PathBuf,
    /// Model hash.
    pub hash: String,
}

/// `geofuse train`: trains and saves the models of the selected methods (all when `method` is
/// None) once on the pipeline's training scenes (only `scene` when given), without predicting
/// (an up-to-date model is kept unless `opts.force`);
/// a later `run` reuses them while their training inputs are unchanged, `predict` or
/// `model = "..."` can load them.
pub fn train_models(
    pipeline_path: &Path,
    opts: &RunOptions,
    scene: Option<&str>,
    method: Option<&str>,
) -> Result<Vec<TrainedModel>> {
    let p = load_pipeline(pipeline_path, opts.out.as_deref())?;
    let log = Log { quiet: opts.quiet };
    let methods: Vec<_> = p
        .methods
        .iter()
        .filter(|m| method.is_none_or(|n| m.name == n))
        .map(|m| {
            let mut d = m.clone();
            d.model = None;
            d
        })
        .collect();
    let known = scene.is_none_or(|n| p.scenes.iter().any(|s| s.name == n));
    if methods.is_empty() || !known {
        return Err(Error::config(
            pipeline_path,
            format!(
                "no scene `{}` or method `{}` in the pipeline",
                scene.unwrap_or("*"),
                method.unwrap_or("*")
            ),
        ));
    }
    let refs: Vec<_> = methods.iter().collect();
    let pool = thread_pool(&p)?;
    std::fs::create_dir_all(&p.output)
        .map_err(|e| Error::io(&p.output, "create output folder", e))?;
    let _lock = lock::OutputLock::acquire(&p.output, "models", &log)?;
    shared::write_run_record(&p.output, pipeline_path)?;
    let trained =
        pool.install(|| models::obtain(&p, &refs, &opts.device, opts.force, scene, &log))?;
    Ok(methods
        .iter()
        .zip(trained)
        .map(|(m, t)| TrainedModel {
            scene: t.trained_on.join(","),
            method: m.name.clone(),
            path: t.model.path().to_path_buf(),
            hash: t.model.hash().to_string(),
        })
        .collect())
}

/// `geofuse predict`: writes the products of one method with a saved model (no training), on
/// the selected scenes; products are always redone.
pub fn predict(
    pipeline_path: &Path,
    opts: &RunOptions,
    method: &str,
    model: &Path,
    scene: Option<&str>,
) -> Result<RunSummary> {
    let mut p = load_pipeline(pipeline_path, opts.out.as_deref())?;
    let Some(mut m) = p.methods.iter().find(|m| m.name == method).cloned() else {
        return Err(Error::config(
            pipeline_path,
            format!("no method `{method}` in the pipeline"),
        ));
    };
    m.model = Some(
        std::env::current_dir()
            .map(|d| d.join(model))
            .unwrap_or_else(|_| model.to_path_buf()),
    );
    p.methods = vec![m];
    if let Some(n) = scene {
        p.scenes.retain(|s| s.name == n);
        if p.scenes.is_empty() {
            return Err(Error::config(
                pipeline_path,
                format!("no scene `{n}` in the pipeline"),
            ));
        }
    }
    run_pipeline(
        p,
        pipeline_path,
        &RunOptions {
            force: true,
            ..opts.clone()
        },
    )
}
