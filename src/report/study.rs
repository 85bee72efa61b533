//! The learning curve's part of the report: `study.json` as curves, figures and tables.

use std::fmt::Write as _;

use serde_json::Value;

use super::{html_escape, md_cell};
use crate::error::Result;
use crate::plot::{charts, Figure};

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
