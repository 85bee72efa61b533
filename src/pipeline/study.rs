//! `geofuse study`: the learning curve. Each studied method is trained on nested subsets of
//! the training pixels (`[study] fractions`), with several seeds (`[study] seeds`: the subset
//! draw, sampling and initialisation change; the split and held-out scenes do not), and
//! evaluated on the held-out blocks and held-out scenes. Each cell is an ordinary run into
//! `<out>/study/<fraction>-<seed>/` (so an interrupted study goes on where it stopped);
//! `<out>/study.json` collects held-out OA and mIoU against training pixels, and the report
//! plots them with their spread.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::report::{html_escape, md_cell};
use super::{read_json, run_pipeline, write_json, Log, RunOptions};
use crate::config::{Pipeline, StudyConfig};
use crate::error::Result;
use crate::plot::{charts, Figure};

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
        for kind in super::pooled::KINDS {
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

/// Per method and kind: (mean training pixels, mean, min, max of held-out mIoU, repeats) at
/// each fraction.
pub type Curve = Vec<(f64, f64, f64, f64, usize)>;

/// The curves of a study.json: `[(kind, [(method, curve)])]`.
pub fn curves(study: &Value) -> Vec<(String, Vec<(String, Curve)>)> {
    let runs = study["runs"].as_array().cloned().unwrap_or_default();
    let fractions: Vec<f64> = study["fractions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    let mut out = Vec::new();
    for kind in super::pooled::KINDS {
        let mut methods: Vec<String> = Vec::new();
        for r in &runs {
            for (m, v) in r["results"].as_object().into_iter().flatten() {
                if v[kind].is_object() && !methods.contains(m) {
                    methods.push(m.clone());
                }
            }
        }
        let per: Vec<(String, Curve)> = methods
            .into_iter()
            .map(|m| {
                let c = fractions
                    .iter()
                    .filter_map(|&f| point(&runs, f, &m, kind))
                    .collect();
                (m, c)
            })
            .collect();
        if !per.is_empty() {
            out.push((kind.to_string(), per));
        }
    }
    out
}

fn point(runs: &[Value], f: f64, m: &str, kind: &str) -> Option<(f64, f64, f64, f64, usize)> {
    let cell: Vec<(f64, f64)> = runs
        .iter()
        .filter(|r| r["fraction"].as_f64() == Some(f))
        .filter_map(|r| {
            Some((
                r["training_pixels"].as_f64()?,
                r["results"][m][kind]["miou"].as_f64()?,
            ))
        })
        .collect();
    if cell.is_empty() {
        return None;
    }
    let n = cell.len() as f64;
    let px = cell.iter().map(|c| c.0).sum::<f64>() / n;
    let ys = cell.iter().map(|c| c.1);
    let mean = ys.clone().sum::<f64>() / n;
    let lo = ys.clone().fold(f64::INFINITY, f64::min);
    let hi = ys.fold(f64::NEG_INFINITY, f64::max);
    Some((px, mean, lo, hi, cell.len()))
}

/// The learning-curve figures (one per kind of evaluation).
pub fn figures(study: &Value) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    for (ki, (kind, per)) in curves(study).iter().enumerate() {
        let xs = per
            .iter()
            .flat_map(|(_, c)| c.iter().map(|p| p.0))
            .filter(|x| *x > 0.0);
        let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(a, b), x| (a.min(x), b.max(x)));
        if !lo.is_finite() {
            continue;
        }
        let series: Vec<charts::Series> = per
            .iter()
            .map(|(m, c)| (m.clone(), c.iter().map(|p| (p.0, p.1)).collect()))
            .collect();
        let bands: Vec<Vec<(f64, f64, f64)>> = per
            .iter()
            .map(|(_, c)| c.iter().map(|p| (p.0, p.2, p.3)).collect())
            .collect();
        let title = format!("Learning curve ({kind}): mean and range over seeds");
        let axes = charts::Axes {
            title: &title,
            x: "training pixels (log scale)",
            y: "held-out mIoU",
            x_range: (lo / 1.5, hi * 1.5),
            y_range: (0.0, 1.0),
            log_x: true,
            diagonal: false,
        };
        figs.push(Figure {
            stem: format!("learning-curve-{ki}"),
            caption: format!("Learning curve, {kind}"),
            png: charts::lines(&axes, &series, &bands)?,
        });
    }
    Ok(figs)
}

/// The learning-curve tables (Markdown, HTML): mIoU mean [min, max] per method and fraction,
/// and the best method at each fraction.
pub fn tables(study: &Value) -> (String, String) {
    let fr: Vec<f64> = study["fractions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    let (mut md, mut html) = (String::new(), String::new());
    for (kind, per) in curves(study) {
        let head: Vec<String> = std::iter::once("method".to_string())
            .chain(fr.iter().map(|f| format!("{}%", 100.0 * f)))
            .collect();
        let _ = write!(md, "\n### Learning curve, {kind}: held-out mIoU, mean [min, max] over seeds\n\n| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
        let _ = write!(html, "<h3>Learning curve, {}: held-out mIoU, mean [min, max] over seeds</h3>\n<table><tr>{}</tr>\n", html_escape(&kind), head.iter().map(|h| format!("<th>{}</th>", html_escape(h))).collect::<String>());
        let px: Vec<String> = fr
            .iter()
            .enumerate()
            .map(|(i, _)| {
                per.iter()
                    .find_map(|(_, c)| c.get(i))
                    .map(|p| format!("{:.0}", p.0))
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(md, "| training pixels | {} |", px.join(" | "));
        let _ = writeln!(
            html,
            "<tr><td>training pixels</td>{}</tr>",
            px.iter()
                .map(|p| format!("<td>{p}</td>"))
                .collect::<String>()
        );
        for (m, c) in &per {
            let cells: Vec<String> = c
                .iter()
                .map(|p| format!("{:.3} [{:.3}, {:.3}]", p.1, p.2, p.3))
                .collect();
            let _ = writeln!(md, "| {} | {} |", md_cell(m), cells.join(" | "));
            let _ = writeln!(
                html,
                "<tr><td>{}</td>{}</tr>",
                html_escape(m),
                cells
                    .iter()
                    .map(|x| format!("<td>{x}</td>"))
                    .collect::<String>()
            );
        }
        let best: Vec<String> = (0..fr.len())
            .map(|i| {
                per.iter()
                    .filter_map(|(m, c)| c.get(i).map(|p| (m, p.1)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(m, _)| m.clone())
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(
            md,
            "| best mean | {} |",
            best.iter()
                .map(|b| md_cell(b))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(
            html,
            "<tr><td>best mean</td>{}</tr>\n</table>",
            best.iter()
                .map(|b| format!("<td>{}</td>", html_escape(b)))
                .collect::<String>()
        );
    }
    (md, html)
}
