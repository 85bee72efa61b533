//! Comparison report (`report.md`, `report.html`) from every scene's `metrics.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::Pipeline;
use crate::error::{Error, Result};

fn num(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_f64)
        .map(|x| format!("{x:.3}"))
        .unwrap_or_else(|| "—".into())
}

/// Rows (scene, method, metrics) of every scene present in the output folder.
fn rows(out: &Path, p: &Pipeline) -> Vec<(String, String, Value)> {
    let mut r = Vec::new();
    for s in &p.scenes {
        if let Some(m) = super::read_json(&out.join(&s.name).join("metrics.json")) {
            if let Some(obj) = m.get("methods").and_then(Value::as_object) {
                for (name, v) in obj {
                    r.push((s.name.clone(), name.clone(), v.clone()));
                }
            }
        }
    }
    r
}

/// Writes `report.md` and `report.html`; returns the Markdown path.
pub fn write(out: &Path, p: &Pipeline) -> Result<PathBuf> {
    let rows = rows(out, p);
    let classes: Vec<&str> = p.classes.iter().map(|c| c.name.as_str()).collect();
    let mut md = String::new();
    let _ = writeln!(md, "# geofuse report\n");
    let _ = writeln!(md, "Held-out metrics are computed on spatial blocks disjoint from the training blocks (block {} px, {:.0}% held out, seed {}).\n", p.split.block_size, 100.0 * p.split.test_fraction, p.seed);
    let _ = writeln!(
        md,
        "| scene | method | OA | kappa | mIoU | pixels | seconds | MP/s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (s, m, v) in &rows {
        let px = v
            .get("pixels")
            .and_then(Value::as_u64)
            .map(|x| x.to_string())
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(
            md,
            "| {s} | {m} | {} | {} | {} | {px} | {} | {} |",
            num(v, "oa"),
            num(v, "kappa"),
            num(v, "miou"),
            num(v, "seconds"),
            num(v, "mpix_per_s")
        );
    }
    let _ = writeln!(md, "\n## Per-class F1\n");
    let _ = writeln!(md, "| scene | method | {} |", classes.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(classes.len()));
    for (s, m, v) in &rows {
        let f: Vec<String> = classes
            .iter()
            .map(|c| {
                v.get("f1")
                    .and_then(|f| f.get(*c))
                    .and_then(Value::as_f64)
                    .map(|x| format!("{x:.3}"))
                    .unwrap_or_else(|| "—".into())
            })
            .collect();
        let _ = writeln!(md, "| {s} | {m} | {} |", f.join(" | "));
    }
    let md_path = out.join("report.md");
    std::fs::write(&md_path, &md).map_err(|e| Error::io(&md_path, "write report", e))?;
    let mut html = String::from("<!doctype html><meta charset=\"utf-8\"><title>geofuse report</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px;text-align:right}</style>\n<h1>geofuse report</h1>\n<table><tr><th>scene</th><th>method</th><th>OA</th><th>kappa</th><th>mIoU</th><th>seconds</th></tr>\n");
    for (s, m, v) in &rows {
        let _ = writeln!(
            html,
            "<tr><td>{s}</td><td>{m}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            num(v, "oa"),
            num(v, "kappa"),
            num(v, "miou"),
            num(v, "seconds")
        );
    }
    html.push_str("</table>\n");
    let html_path = out.join("report.html");
    std::fs::write(&html_path, html).map_err(|e| Error::io(&html_path, "write report", e))?;
    Ok(md_path)
}
