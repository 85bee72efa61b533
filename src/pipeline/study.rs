//! `geofuse study`: the learning curve. Each studied method is trained on nested subsets of
//! the training pixels (`[study] fractions`), with several seeds (`[study] seeds`: the subset
//! draw, sampling and initialisation change; the split and held-out scenes do not), and
//! evaluated on the held-out blocks and held-out scenes. Each cell is an ordinary run into
//! `<out>/study/<fraction>-<seed>/` (so an interrupted study goes on where it stopped);
//! `<out>/study.json` collects held-out OA and mIoU against training pixels, and the report
//! plots them with their spread.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::{read_json, run_pipeline, write_json, Log, RunOptions};
use crate::config::{Pipeline, StudyConfig};
use crate::error::Result;

/// The study's cells: (fraction, seed index, the pipeline of that run).
fn cells(p: &Pipeline, cfg: &StudyConfig) -> Vec<(f64, usize, Pipeline)> {
    let mut out = Vec::new();
    for r in 0..cfg.seeds {
        for &f in &cfg.fractions {
            let mut q = p.clone();
            q.study = None;
            q.split.seed = Some(p.split_seed());
            q.split.training_fraction = f;
            q.seed = p.seed.wrapping_add(r as u64);
            if !cfg.methods.is_empty() {
                q.methods.retain(|m| cfg.methods.contains(&m.name));
            }
            q.output = p.output.join("study").join(format!("{f}-{r}"));
            out.push((f, r, q));
        }
    }
    out
}

/// Held-out OA and mIoU of each method and kind in a run's pooled metrics.
fn results(out: &Path) -> Value {
    let mut m = Map::new();
    let pooled = read_json(&out.join("metrics.json")).unwrap_or(Value::Null);
    for (name, v) in pooled["pooled"].as_object().into_iter().flatten() {
        let mut kinds = Map::new();
        for kind in crate::report::pooled::KINDS {
            if v[kind].is_object() {
                kinds.insert(
                    kind.into(),
                    json!({"oa": v[kind]["oa"], "miou": v[kind]["miou"]}),
                );
            }
        }
        m.insert(name.clone(), Value::Object(kinds));
    }
    Value::Object(m)
}

/// Command-line settings that replace the pipeline's `[study]` ones.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--fractions`.
    pub fractions: Option<Vec<f64>>,
    /// `--seeds`.
    pub seeds: Option<usize>,
    /// `--methods`.
    pub methods: Option<Vec<String>>,
}

/// The study settings: `[study]` (or the defaults) with the overrides applied, checked.
fn settings(p: &Pipeline, path: &Path, over: &Overrides) -> Result<StudyConfig> {
    let mut cfg = p.study.clone().unwrap_or_else(|| {
        toml::from_str::<StudyConfig>("").expect("every study setting has a default")
    });
    if let Some(f) = &over.fractions {
        cfg.fractions = f.clone();
    }
    if let Some(s) = over.seeds {
        cfg.seeds = s;
    }
    if let Some(m) = &over.methods {
        cfg.methods = m.clone();
    }
    cfg.validate(&p.methods)
        .map_err(|m| crate::error::Error::config(path, m))?;
    Ok(cfg)
}

/// Runs the study of the pipeline at `path`; returns the report's path.
pub fn run_study(path: &Path, over: &Overrides, opts: &RunOptions) -> Result<PathBuf> {
    let p = super::load_pipeline(path, opts.out.as_deref())?;
    let cfg = settings(&p, path, over)?;
    let log = Log { quiet: opts.quiet };
    let mut runs = Vec::new();
    for (f, r, q) in cells(&p, &cfg) {
        log.info(&format!(
            "study: {:.0}% of the training pixels, seed {r}",
            100.0 * f
        ));
        let o = RunOptions {
            out: None,
            quiet: true,
            ..opts.clone()
        };
        let out = q.output.clone();
        let pixels = super::models::training_pixels(&q, &log)?;
        run_pipeline(q, path, &o)?;
        runs.push(json!({"fraction": f, "seed": r, "training_pixels": pixels,
            "folder": format!("study/{f}-{r}"), "results": results(&out)}));
    }
    let study = json!({"fractions": cfg.fractions, "seeds": cfg.seeds, "runs": runs});
    write_json(&p.output.join("study.json"), &study)?;
    super::shared::write_run_record(&p.output, path)?;
    super::shared::finish(&p.output, &p, &log)
}
