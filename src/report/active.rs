//! The report's active-learning section (from `<out>/active.json`, `geofuse active`): held-out
//! accuracy against labelled pixels per strategy (mean and range over seeds), the tests of
//! each strategy against random sampling at the last round, and the verdict in words.

use std::fmt::Write as _;

use serde_json::Value;

use super::{html_escape, md_cell};
use crate::error::Result;
use crate::plot::{charts, Figure};

/// Per strategy: (round, mean labelled pixels, mean, min, max held-out OA, seeds).
type Curves = Vec<(String, Vec<(usize, f64, f64, f64, f64, usize)>)>;

fn curves(a: &Value) -> Curves {
    let runs = a["runs"].as_array().cloned().unwrap_or_default();
    let rounds = a["rounds"].as_u64().unwrap_or(0) as usize;
    let mut out = Vec::new();
    for s in a["strategies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let mut c = Vec::new();
        for r in 0..=rounds {
            let cell: Vec<(f64, f64)> = runs
                .iter()
                .filter(|x| x["strategy"] == s && x["round"].as_u64() == Some(r as u64))
                .filter_map(|x| {
                    Some((x["labelled_pixels"].as_f64()?, x["results"]["oa"].as_f64()?))
                })
                .collect();
            if cell.is_empty() {
                continue;
            }
            let n = cell.len() as f64;
            let ys = cell.iter().map(|c| c.1);
            c.push((
                r,
                cell.iter().map(|c| c.0).sum::<f64>() / n,
                ys.clone().sum::<f64>() / n,
                ys.clone().fold(f64::INFINITY, f64::min),
                ys.fold(f64::NEG_INFINITY, f64::max),
                cell.len(),
            ));
        }
        out.push((s.to_string(), c));
    }
    out
}

/// The verdict against random sampling, in words, from the last round's tests.
fn verdict(a: &Value) -> String {
    let tests = a["tests"].as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    for t in tests
        .iter()
        .filter(|t| t["b"] == "random" || t["a"] == "random")
    {
        let (s, sign) = if t["b"] == "random" {
            (&t["a"], 1.0)
        } else {
            (&t["b"], -1.0)
        };
        let d = sign * t["mean_block_accuracy_difference"].as_f64().unwrap_or(0.0);
        let p = t["block_p_holm"].as_f64().unwrap_or(1.0);
        let word = if p >= 0.05 {
            "not distinguishable from random sampling"
        } else if d > 0.0 {
            "better than random sampling"
        } else {
            "worse than random sampling"
        };
        lines.push(format!(
            "{}: {word} at the last round (mean block accuracy difference {d:+.3}, Holm p = {p:.3}, {} blocks)",
            s.as_str().unwrap_or("?"),
            t["blocks"]
        ));
    }
    lines.join("; ")
}

const INTRO: &str = "`geofuse active`: the active-learning loop simulated with the training scenes' dense labels as the oracle. Every strategy and seed starts from the same labelled 5 x 5 patches; each round adds the suggested pixels the oracle can label, retrains the first method and scores the held-out scenes (OA). The range is over seeds, not an interval; the tests pair each strategy's last-round map with random sampling's on the held-out blocks (seeds pooled, Holm).";

/// The section (Markdown, HTML).
pub fn section(a: &Value) -> (String, String) {
    let c = curves(a);
    let rounds = a["rounds"].as_u64().unwrap_or(0) as usize;
    let head: Vec<String> = std::iter::once("strategy".to_string())
        .chain((0..=rounds).map(|r| format!("round {r}")))
        .collect();
    let mut md = format!(
        "\n## Active learning\n\n{INTRO}\n\n**{}**\n\n| {} |\n|{}\n",
        verdict(a),
        head.join(" | "),
        "---|".repeat(head.len())
    );
    let mut html = format!(
        "<h2>Active learning</h2>\n<p>{}</p>\n<p><b>{}</b></p>\n<table><tr>{}</tr>\n",
        html_escape(INTRO),
        html_escape(&verdict(a)),
        head.iter()
            .map(|h| format!("<th>{}</th>", html_escape(h)))
            .collect::<String>()
    );
    for (s, pts) in &c {
        let cells: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.3} [{:.3}, {:.3}] ({:.0} px)", p.2, p.3, p.4, p.1))
            .collect();
        let _ = writeln!(md, "| {} | {} |", md_cell(s), cells.join(" | "));
        let _ = writeln!(
            html,
            "<tr><td>{}</td>{}</tr>",
            html_escape(s),
            cells
                .iter()
                .map(|x| format!("<td>{x}</td>"))
                .collect::<String>()
        );
    }
    html.push_str("</table>\n");
    (md, html)
}

/// The figure: held-out OA against labelled pixels, one line per strategy.
pub fn figure(a: &Value) -> Result<Option<Figure>> {
    let c = curves(a);
    let xs = c.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    if !lo.is_finite() || hi <= 0.0 {
        return Ok(None);
    }
    let ys = c
        .iter()
        .flat_map(|(_, p)| p.iter().flat_map(|q| [q.3, q.4]));
    let (ylo, yhi) = ys.fold((1f64, 0f64), |(a, b), y| (a.min(y), b.max(y)));
    let series: Vec<charts::Series> = c
        .iter()
        .map(|(s, p)| (s.clone(), p.iter().map(|q| (q.1, q.2)).collect()))
        .collect();
    let bands: Vec<Vec<(f64, f64, f64)>> = c
        .iter()
        .map(|(_, p)| p.iter().map(|q| (q.1, q.3, q.4)).collect())
        .collect();
    let axes = charts::Axes {
        title: "Active learning: held-out-scene OA, mean and range over seeds",
        x: "labelled pixels",
        y: "held-out OA",
        x_range: (lo * 0.95, hi * 1.05),
        y_range: ((ylo - 0.05).max(0.0), (yhi + 0.05).min(1.0).max(ylo + 0.1)),
        log_x: false,
        diagonal: false,
    };
    Ok(Some(Figure {
        stem: "active-learning".into(),
        caption: "Active learning: held-out OA against labelled pixels".into(),
        png: charts::lines(&axes, &series, &bands)?,
    }))
}
