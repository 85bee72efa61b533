//! The report's opening: per kind of evaluation, which method scores highest, whether its lead
//! over each other method is real (the paired block test, Holm), a figure of every method's
//! OA with its interval, and the pairwise tests as a colour matrix.

use std::fmt::Write as _;

use super::compare::{Comparison, MethodStats, PairTest};
use super::html_escape;
use crate::error::Result;
use crate::plot::{charts, Figure};

/// The kinds of evaluation, in order of appearance.
fn kinds(c: &Comparison) -> Vec<String> {
    let mut k: Vec<String> = Vec::new();
    for m in &c.methods {
        if !k.contains(&m.kind) {
            k.push(m.kind.clone());
        }
    }
    k
}

fn oa(m: &MethodStats) -> (f64, Option<(f64, f64)>) {
    m.scores.get("oa").copied().unwrap_or((f64::NAN, None))
}

/// The methods of one kind, highest OA first.
fn ranked<'a>(c: &'a Comparison, kind: &str) -> Vec<&'a MethodStats> {
    let mut ms: Vec<&MethodStats> = c.methods.iter().filter(|m| m.kind == kind).collect();
    ms.sort_by(|a, b| oa(b).0.total_cmp(&oa(a).0));
    ms
}

/// The test of `a` against `b` under `kind`, with the difference signed as a - b.
fn pair<'a>(c: &'a Comparison, kind: &str, a: &str, b: &str) -> Option<(&'a PairTest, f64)> {
    c.pairs.iter().filter(|p| p.kind == kind).find_map(|p| {
        if p.a == a && p.b == b {
            Some((p, p.mean_diff))
        } else if p.a == b && p.b == a {
            Some((p, -p.mean_diff))
        } else {
            None
        }
    })
}

fn ci(v: (f64, Option<(f64, f64)>)) -> String {
    match v.1 {
        Some((lo, hi)) => format!("{:.3} [{lo:.3}, {hi:.3}]", v.0),
        None => format!("{:.3}", v.0),
    }
}

/// The verdict of one kind in words.
fn sentence(c: &Comparison, kind: &str) -> Option<String> {
    let ms = ranked(c, kind);
    let lead = ms.first()?;
    let mut s = format!(
        "{kind}: {} has the highest OA, {} ({} scenes, {} blocks)",
        lead.method,
        ci(oa(lead)),
        lead.scenes.len(),
        lead.blocks
    );
    let (mut ahead, mut level, mut behind) = (Vec::new(), Vec::new(), Vec::new());
    for m in ms.iter().skip(1) {
        match pair(c, kind, &lead.method, &m.method) {
            Some((p, d)) if p.block_holm < 0.05 && d > 0.0 => ahead.push(format!(
                "{} ({d:+.3}, Holm p = {:.3})",
                m.method, p.block_holm
            )),
            Some((p, d)) if p.block_holm < 0.05 => behind.push(format!(
                "{} ({d:+.3}, Holm p = {:.3})",
                m.method, p.block_holm
            )),
            Some((p, d)) => level.push(format!("{} ({d:+.3}, p = {:.2})", m.method, p.block_holm)),
            None => level.push(format!("{} (not tested)", m.method)),
        }
    }
    if !ahead.is_empty() {
        let _ = write!(s, "; significantly ahead of {}", ahead.join(", "));
    }
    if !level.is_empty() {
        let _ = write!(s, "; not distinguishable from {}", level.join(", "));
    }
    if !behind.is_empty() {
        let _ = write!(s, "; behind on the block test {}", behind.join(", "));
    }
    if ms.len() == 1 {
        s.push_str("; the only method");
    }
    Some(s + ".")
}

const INTRO: &str = "Differences are mean block accuracy differences (leader minus method); \"significantly\" means the paired sign-flip test over spatial blocks, Holm-adjusted over every pair of the kind, is below 0.05. Details, intervals of every score and the tests follow.";

/// The verdict section (Markdown, HTML).
pub fn section(c: &Comparison) -> (String, String) {
    let lines: Vec<String> = kinds(c).iter().filter_map(|k| sentence(c, k)).collect();
    if lines.is_empty() {
        return (String::new(), String::new());
    }
    let md = format!(
        "\n## Verdict\n\n{}\n\n{INTRO}\n",
        lines
            .iter()
            .map(|l| format!("- {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let items: String = lines
        .iter()
        .map(|l| format!("<li>{}</li>", html_escape(l)))
        .collect();
    let html = format!(
        "<h2>Verdict</h2>\n<ul class=\"verdict\">{items}</ul>\n<p>{}</p>\n",
        html_escape(INTRO)
    );
    (md, html)
}

/// OA with its 95 % interval of every method, one panel per kind, highest first.
pub fn figure(c: &Comparison) -> Result<Option<Figure>> {
    let mut rows = Vec::new();
    for k in kinds(c) {
        for m in ranked(c, &k) {
            let (v, iv) = oa(m);
            let (lo, hi) = iv.unwrap_or((v, v));
            rows.push((format!("{} ({k})", m.method), v, lo, hi));
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure {
        stem: "overall-accuracy".into(),
        caption: "Overall accuracy with its 95 % block-bootstrap interval".into(),
        png: charts::intervals("Overall accuracy, 95 % interval", "OA", &rows)?,
    }))
}

/// The pairwise block tests of one kind as a matrix (HTML): row minus column, green where
/// the row is significantly ahead, red where behind, grey where not distinguishable.
pub fn matrix_html(c: &Comparison) -> String {
    let mut s = String::new();
    for kind in kinds(c) {
        let ms = ranked(c, &kind);
        if ms.len() < 2 {
            continue;
        }
        let _ = write!(s, "<h3>Pairwise block tests, {} (row minus column)</h3>\n<div class=\"wide\"><table class=\"matrix\"><tr><th></th>", html_escape(&kind));
        for m in &ms {
            let _ = write!(s, "<th>{}</th>", html_escape(&m.method));
        }
        s.push_str("</tr>\n");
        for a in &ms {
            let _ = write!(s, "<tr><th>{}</th>", html_escape(&a.method));
            for b in &ms {
                let cell = match pair(c, &kind, &a.method, &b.method) {
                    _ if a.method == b.method => "<td></td>".to_string(),
                    Some((p, d)) => {
                        let bg = if p.block_holm >= 0.05 {
                            "#eeeeee"
                        } else if d > 0.0 {
                            "#b7e4c7"
                        } else {
                            "#f4b6b6"
                        };
                        format!(
                            "<td style=\"background:{bg}\" title=\"Holm p = {:.3}\">{d:+.3}</td>",
                            p.block_holm
                        )
                    }
                    None => "<td>—</td>".to_string(),
                };
                s.push_str(&cell);
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table></div>\n");
    }
    if !s.is_empty() {
        s.push_str("<p>Green: the row's method is significantly ahead of the column's (block test, Holm p &lt; 0.05); red: behind; grey: not distinguishable. Hover a cell for its p-value.</p>\n");
    }
    s
}
