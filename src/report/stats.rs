//! The report's statistics sections (Markdown and HTML) from a [`Comparison`]: scores with
//! block-bootstrap intervals, pairwise tests with their verdicts, error-adjusted areas.

use std::fmt::Write;

use super::compare::{with_ci, Comparison, MethodStats};
use super::{html_escape, md_cell};

/// A table: header and rows of cells (already formatted, not yet escaped).
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn md(&self) -> String {
        let mut s = format!(
            "| {} |\n|{}\n",
            self.head.join(" | "),
            "---|".repeat(self.head.len())
        );
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }

    fn html(&self) -> String {
        let th: String = self
            .head
            .iter()
            .map(|h| format!("<th>{}</th>", html_escape(h)))
            .collect();
        let mut s = format!("<div class=\"wide\"><table><tr>{th}</tr>\n");
        for r in &self.rows {
            let td: String = r
                .iter()
                .map(|c| format!("<td>{}</td>", html_escape(c)))
                .collect();
            let _ = writeln!(s, "<tr>{td}</tr>");
        }
        s.push_str("</table></div>\n");
        s
    }
}

fn scores_table(c: &Comparison) -> Table {
    let mut head: Vec<String> = [
        "method",
        "evaluated on",
        "scenes",
        "blocks",
        "pixels",
        "OA",
        "kappa",
        "mIoU",
        "ECE",
        "AUROC of total uncertainty for errors",
    ]
    .map(String::from)
    .to_vec();
    head.extend(c.classes.iter().map(|n| format!("F1 {n}")));
    let rows = c
        .methods
        .iter()
        .map(|m| {
            let mut r = vec![
                m.method.clone(),
                m.kind.clone(),
                m.scenes.len().to_string(),
                m.blocks.to_string(),
                m.pixels.to_string(),
            ];
            for k in ["oa", "kappa", "miou"] {
                r.push(m.scores.get(k).map(with_ci).unwrap_or_else(|| "—".into()));
            }
            let (ok, err) = &m.uncertainty_histogram;
            r.push(opt3(m.ece));
            r.push(opt3(crate::eval::calibration::auroc(err, ok)));
            for n in &c.classes {
                r.push(
                    m.scores
                        .get(&format!("f1:{n}"))
                        .map(with_ci)
                        .unwrap_or_else(|| "—".into()),
                );
            }
            r
        })
        .collect();
    Table { head, rows }
}

fn opt3(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into())
}

/// Per method, kind and class: precision, recall, F1 and IoU with their intervals.
fn class_table(c: &Comparison) -> Table {
    let head = [
        "method",
        "evaluated on",
        "class",
        "precision",
        "recall",
        "F1",
        "IoU",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for m in &c.methods {
        for n in &c.classes {
            let mut r = vec![m.method.clone(), m.kind.clone(), n.clone()];
            for k in ["precision", "recall", "f1", "iou"] {
                r.push(
                    m.scores
                        .get(&format!("{k}:{n}"))
                        .map(with_ci)
                        .unwrap_or_else(|| "—".into()),
                );
            }
            rows.push(r);
        }
    }
    Table { head, rows }
}

fn pairs_table(c: &Comparison) -> Table {
    let head = [
        "evaluated on",
        "A",
        "B",
        "only A right",
        "only B right",
        "McNemar p (Holm)",
        "blocks",
        "mean block accuracy A - B",
        "block test p (Holm)",
        "verdict",
    ]
    .map(String::from)
    .to_vec();
    let rows = c
        .pairs
        .iter()
        .map(|p| {
            vec![
                p.kind.clone(),
                p.a.clone(),
                p.b.clone(),
                p.mcnemar.only_a.to_string(),
                p.mcnemar.only_b.to_string(),
                format!(
                    "{:.2e} ({:.2e}){}",
                    p.mcnemar.p,
                    p.mcnemar_holm,
                    if p.mcnemar.exact { ", exact" } else { "" }
                ),
                p.blocks.to_string(),
                format!("{:+.4}", p.mean_diff),
                format!("{:.4} ({:.4})", p.block_p, p.block_holm),
                p.verdict(),
            ]
        })
        .collect();
    Table { head, rows }
}

fn area_table(c: &Comparison, m: &MethodStats) -> Option<Table> {
    let a = m.areas.as_ref()?;
    // Areas in hectares when the CRS is metric (pixel areas of 1..10000 m^2 are typical).
    let unit = 1e4;
    let head = [
        "class",
        "mapped (ha)",
        "error-adjusted (ha)",
        "95 % CI (ha)",
        "user's accuracy",
        "producer's accuracy",
    ]
    .map(String::from)
    .to_vec();
    let f = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into());
    let mut rows: Vec<Vec<String>> = c
        .classes
        .iter()
        .zip(&a.classes)
        .map(|(n, e)| {
            vec![
                n.clone(),
                format!("{:.1}", e.mapped / unit),
                format!("{:.1}", e.adjusted / unit),
                format!("± {:.1}", e.ci95 / unit),
                f(e.users),
                f(e.producers),
            ]
        })
        .collect();
    rows.push(vec![
        "overall accuracy (area-weighted)".into(),
        String::new(),
        String::new(),
        format!("± {:.3}", 1.96 * a.overall_se),
        format!("{:.3}", a.overall),
        String::new(),
    ]);
    Some(Table { head, rows })
}

const SCORES_INTRO: &str = "95 % intervals: percentile bootstrap over spatial blocks (1000 resamples; neighbouring pixels are not independent samples, blocks are the unit). Held-out blocks of training scenes and held-out scenes are kept apart. ECE: expected calibration error over 15 confidence bins (pooled); AUROC: how well the total-uncertainty band ranks wrong pixels above right ones (0.5 = chance). These two are point estimates.";
const CLASS_INTRO: &str = "Precision (user's accuracy), recall (producer's accuracy), F1 and IoU of every class, with 95 % block-bootstrap intervals; — where a class has no reference or no mapped pixel.";
const PAIRS_INTRO: &str = "Same pixels, same blocks. McNemar counts the pixels only one method got right; it treats every pixel as independent and so overstates significance on maps. The verdict rests on the paired sign-flip test over blocks (the honest effective sample size), Holm-adjusted over all pairs of one kind; \"no significant difference\" is a finding too.";
const AREA_INTRO: &str = "Olofsson et al. (2014): the reference pixels taken as a sample stratified by map class (they are where reference data exist, not a designed probability sample, so read the intervals as indicative); areas in hectares for a metric CRS.";

/// The statistics sections in Markdown.
pub fn markdown(c: &Comparison) -> String {
    if c.methods.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "\n## Scores with confidence intervals\n\n{SCORES_INTRO}\n\n{}",
        scores_table(c).md()
    );
    let _ = write!(
        s,
        "\n## Per-class scores\n\n{CLASS_INTRO}\n\n{}",
        class_table(c).md()
    );
    let _ = write!(
        s,
        "\n## Pairwise tests\n\n{PAIRS_INTRO}\n\n{}",
        pairs_table(c).md()
    );
    let _ = write!(s, "\n## Area estimates\n\n{AREA_INTRO}\n");
    for m in &c.methods {
        if let Some(t) = area_table(c, m) {
            let _ = write!(
                s,
                "\n### {} ({})\n\n{}",
                md_cell(&m.method),
                md_cell(&m.kind),
                t.md()
            );
        }
    }
    s
}

/// The statistics sections in HTML (every string escaped).
pub fn html(c: &Comparison) -> String {
    if c.methods.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "<h2>Scores with confidence intervals</h2>\n<p>{}</p>\n{}",
        html_escape(SCORES_INTRO),
        scores_table(c).html()
    );
    let _ = write!(
        s,
        "<h2>Per-class scores</h2>\n<p>{}</p>\n{}",
        html_escape(CLASS_INTRO),
        class_table(c).html()
    );
    let pairs = pairs_table(c);
    let _ = write!(
        s,
        "<h2>Pairwise tests</h2>\n<p>{}</p>\n{}<details><summary>Every pair: McNemar and block tests ({} rows)</summary>\n{}</details>\n",
        html_escape(PAIRS_INTRO),
        super::verdict::matrix_html(c),
        pairs.rows.len(),
        pairs.html()
    );
    let _ = write!(
        s,
        "<h2>Area estimates</h2>\n<p>{}</p>\n<details><summary>Error-adjusted areas of every method</summary>\n",
        html_escape(AREA_INTRO)
    );
    for m in &c.methods {
        if let Some(t) = area_table(c, m) {
            let _ = write!(
                s,
                "<h3>{} ({})</h3>\n{}",
                html_escape(&m.method),
                html_escape(&m.kind),
                t.html()
            );
        }
    }
    s.push_str("</details>\n");
    s
}
