//! The comparison report (`report.md`, `report.html`) of an output folder, from every
//! scene's `metrics.json` and `.eval.bin` records: the verdict, scores with block-bootstrap
//! intervals, pairwise tests, areas, figures, the learning curve and the active-learning
//! section. Reads files and renders; the runner ([`crate::pipeline`]) decides when.

pub mod active;
pub mod compare;
pub mod figures;
pub mod pooled;
pub mod stats;
pub mod study;
pub mod verdict;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::Pipeline;
use crate::error::Result;

/// The reports' style sheet (inlined: the report opens offline).
pub(crate) const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #999;padding:4px 8px;text-align:right}td{white-space:nowrap}figure{display:inline-block;margin:0.5em;vertical-align:top}img{max-width:100%}.wide{overflow-x:auto;max-width:100%}details{margin:0.5em 0 1em}summary{cursor:pointer;font-weight:bold}table.matrix td{text-align:center}ul.verdict li{margin-bottom:0.4em;font-size:105%}figcaption{font-size:90%;color:#333}";

/// A user string (scene or method name) for HTML text: `&`, `<`, `>`, `"` and `'` escaped.
pub(crate) fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A user string for a Markdown table cell: `|` and `\` escaped, line breaks as spaces.
pub(crate) fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

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
        if let Some(m) = crate::io::json::read_json(&out.join(&s.name).join("metrics.json")) {
            if let Some(obj) = m.get("methods").and_then(Value::as_object) {
                for (name, v) in obj {
                    r.push((s.name.clone(), name.clone(), v.clone()));
                }
            }
        }
    }
    r
}

/// (scene, method, metrics) rows of the report.
type Rows = [(String, String, Value)];

fn evaluated_on(v: &Value) -> &str {
    v.get("evaluation")
        .and_then(Value::as_str)
        .unwrap_or("held-out blocks")
}

/// The per-scene table in Markdown.
fn scenes_md(rows: &Rows) -> String {
    let mut md = String::from(
        "| scene | method | evaluated on | OA | kappa | mIoU | pixels | seconds | MP/s |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (s, m, v) in rows {
        let px = v
            .get("pixels")
            .and_then(Value::as_u64)
            .map(|x| x.to_string())
            .unwrap_or_else(|| "—".into());
        let (s, m) = (md_cell(s), md_cell(m));
        let _ = writeln!(
            md,
            "| {s} | {m} | {} | {} | {} | {} | {px} | {} | {} |",
            evaluated_on(v),
            num(v, "oa"),
            num(v, "kappa"),
            num(v, "miou"),
            num(v, "seconds"),
            num(v, "mpix_per_s")
        );
    }
    md
}

/// The per-class F1 table in Markdown.
fn f1_md(rows: &Rows, classes: &[&str]) -> String {
    let mut md = String::from("\n## Per-class F1\n\n");
    let names: Vec<String> = classes.iter().map(|c| md_cell(c)).collect();
    let _ = writeln!(md, "| scene | method | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(classes.len()));
    for (s, m, v) in rows {
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
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            md_cell(s),
            md_cell(m),
            f.join(" | ")
        );
    }
    md
}

/// The per-scene table in HTML.
fn scenes_html(rows: &Rows) -> String {
    let mut html = String::from("<div class=\"wide\"><table><tr><th>scene</th><th>method</th><th>evaluated on</th><th>OA</th><th>kappa</th><th>mIoU</th><th>seconds</th><th>MP/s</th></tr>\n");
    for (s, m, v) in rows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(s),
            html_escape(m),
            evaluated_on(v),
            num(v, "oa"),
            num(v, "kappa"),
            num(v, "miou"),
            num(v, "seconds"),
            num(v, "mpix_per_s")
        );
    }
    html.push_str("</table></div>\n");
    // A long table is folded: the verdict and the pooled scores above say the same in brief.
    if rows.len() > 12 {
        html = format!(
            "<details><summary>Every scene and method ({} rows)</summary>\n{html}</details>\n",
            rows.len()
        );
    }
    html
}

/// Figure snippets (Markdown, HTML): the one that opens the report, and the rest.
type Snippets = (Vec<(String, String)>, Vec<(String, String)>);

/// Draws and writes every figure of the report; the overall-accuracy figure comes first, apart.
fn report_figures(
    out: &Path,
    p: &Pipeline,
    comparison: &compare::Comparison,
    (study, active): (Option<&Value>, Option<&Value>),
) -> Result<Snippets> {
    let mut figs: Vec<crate::plot::Figure> = verdict::figure(comparison)?.into_iter().collect();
    let top = figs.len();
    figs.extend(figures::figures(comparison, study, Some((out, p)))?);
    if let Some(a) = active {
        figs.extend(active::figure(a)?);
    }
    let mut all = figures::write_each(out, &figs)?;
    let rest = all.split_off(top);
    Ok((all, rest))
}

/// Writes `report.md` and `report.html`: the verdict and the overall-accuracy figure first,
/// then the tables (the long ones folded in the HTML), the curves, and the other figures;
/// returns the Markdown path.
pub fn write(
    out: &Path,
    p: &Pipeline,
    pooled: &Value,
    comparison: &compare::Comparison,
) -> Result<PathBuf> {
    let rows = rows(out, p);
    let classes: Vec<&str> = p.classes.iter().map(|c| c.name.as_str()).collect();
    let study = crate::io::json::read_json(&out.join("study.json"));
    let active = crate::io::json::read_json(&out.join("active.json"));
    let (top, rest) = report_figures(out, p, comparison, (study.as_ref(), active.as_ref()))?;
    let (study_md, study_html) = study.as_ref().map(study::tables).unwrap_or_default();
    let (active_md, active_html) = active.as_ref().map(active::section).unwrap_or_default();
    let (verdict_md, verdict_html) = verdict::section(comparison);
    let intro = format!("Held-out metrics: on training scenes, spatial blocks disjoint from the training blocks (block {} px, {:.0}% held out, seed {}); on held-out scenes (`[evaluation] scenes`), every labelled pixel, the scene having given no training sample.", p.split.block_size, 100.0 * p.split.test_fraction, p.seed);
    let mut md = format!("# geofuse report\n{verdict_md}\n");
    top.iter().for_each(|t| md.push_str(&t.0));
    let _ = writeln!(md, "{intro}\n");
    md.push_str(&scenes_md(&rows));
    md.push_str(&pooled_md(pooled));
    md.push_str(&stats::markdown(comparison));
    if study.is_some() {
        let _ = write!(md, "\n## Learning curve\n\n{STUDY_INTRO}\n{study_md}");
    }
    md.push_str(&active_md);
    md.push_str(&f1_md(&rows, &classes));
    if !rest.is_empty() {
        md.push_str("\n## Figures\n\n");
        rest.iter().for_each(|t| md.push_str(&t.0));
    }
    let md_path = out.join("report.md");
    crate::io::writer::write_atomic(&md_path, md.as_bytes())?;
    let mut html = format!("<!doctype html><meta charset=\"utf-8\"><title>geofuse report</title><style>{STYLE}</style>\n<h1>geofuse report</h1>\n{verdict_html}");
    top.iter().for_each(|t| html.push_str(&t.1));
    let _ = writeln!(html, "<p>{}</p>", html_escape(&intro));
    html.push_str(&scenes_html(&rows));
    html.push_str(&pooled_html(pooled));
    html.push_str(&stats::html(comparison));
    if study.is_some() {
        let _ = write!(
            html,
            "<h2>Learning curve</h2>\n<p>{}</p>\n{study_html}",
            html_escape(STUDY_INTRO)
        );
    }
    html.push_str(&active_html);
    if !rest.is_empty() {
        html.push_str("<h2>Figures</h2>\n");
        rest.iter().for_each(|t| html.push_str(&t.1));
    }
    let html_path = out.join("report.html");
    crate::io::writer::write_atomic(&html_path, html.as_bytes())?;
    Ok(md_path)
}

/// Rows of the pooled table: (method, blocks OA, blocks mIoU, scenes OA, scenes mIoU, loss
/// in mIoU), "—" where a kind was not measured.
fn pooled_rows(pooled: &Value) -> Vec<[String; 6]> {
    let mut rows = Vec::new();
    for (m, v) in pooled["pooled"].as_object().into_iter().flatten() {
        let f = |kind: &str, key: &str| {
            v[kind][key]
                .as_f64()
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "—".into())
        };
        let loss = v["held-out scene minus held-out blocks"]["miou"]
            .as_f64()
            .map(|x| format!("{x:+.3}"))
            .unwrap_or_else(|| "—".into());
        rows.push([
            m.clone(),
            f("held-out blocks", "oa"),
            f("held-out blocks", "miou"),
            f("held-out scene", "oa"),
            f("held-out scene", "miou"),
            loss,
        ]);
    }
    rows
}

const STUDY_INTRO: &str = "`geofuse study`: each method trained on nested subsets of the training pixels with several seeds (subset, sampling and initialisation change; the held-out blocks and scenes do not), evaluated on the same held-out pixels. Where the curves cross says how much reference data a learned fusion needs before it overtakes the hand-crafted methods, if it does; the spread is the range over seeds, not an interval.";

const POOLED_INTRO: &str = "Confusion matrices summed over the scenes of each kind (every evaluated pixel weighs alike): within-scene held-out blocks of the training scenes, and held-out scenes the models never saw. The last column is what a method loses (negative) or gains on unseen scenes.";

/// Whether any method was scored on held-out scenes (else the pooled comparison is left out:
/// it would be a table of dashes).
fn has_held_out_scenes(pooled: &Value) -> bool {
    pooled_rows(pooled).iter().any(|r| r[3] != "—")
}

fn pooled_md(pooled: &Value) -> String {
    if !has_held_out_scenes(pooled) {
        return String::new();
    }
    let mut md = format!("\n## Within-scene blocks against held-out scenes (pooled)\n\n{POOLED_INTRO}\n\n| method | blocks OA | blocks mIoU | held-out scenes OA | held-out scenes mIoU | mIoU change |\n|---|---|---|---|---|---|\n");
    for r in pooled_rows(pooled) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            md_cell(&r[0]),
            r[1],
            r[2],
            r[3],
            r[4],
            r[5]
        );
    }
    md
}

fn pooled_html(pooled: &Value) -> String {
    if !has_held_out_scenes(pooled) {
        return String::new();
    }
    let mut h = format!("<h2>Within-scene blocks against held-out scenes (pooled)</h2>\n<p>{}</p>\n<table><tr><th>method</th><th>blocks OA</th><th>blocks mIoU</th><th>held-out scenes OA</th><th>held-out scenes mIoU</th><th>mIoU change</th></tr>\n", html_escape(POOLED_INTRO));
    for r in pooled_rows(pooled) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&r[0]),
            r[1],
            r[2],
            r[3],
            r[4],
            r[5]
        );
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_strings_are_escaped_for_html_and_markdown() {
        assert_eq!(
            html_escape("<b>a & 'b'\"</b>"),
            "&lt;b&gt;a &amp; &#39;b&#39;&quot;&lt;/b&gt;"
        );
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
    }
}
