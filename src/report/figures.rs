//! The report's figures: per kind of evaluation, reliability diagrams, risk-coverage curves
//! and row-normalised confusion matrices of every method; the learning curve of
//! `geofuse study`; per scene, quicklooks of the products. Written to `<dir>/plots/*.png`
//! and inlined in report.html.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::compare::Comparison;
use super::{html_escape, md_cell};
use crate::config::Pipeline;
use crate::error::Result;
use crate::eval::calibration::risk_coverage;
use crate::plot::{charts, data_uri, quicklook::quicklook, Figure};

/// The kinds of evaluation present, in order of appearance.
fn kinds(c: &Comparison) -> Vec<String> {
    let mut k: Vec<String> = Vec::new();
    for m in &c.methods {
        if !k.contains(&m.kind) {
            k.push(m.kind.clone());
        }
    }
    k
}

/// At most `n` points of a curve, evenly spaced along it (the last one kept).
fn thin(v: Vec<(f64, f64)>, n: usize) -> Vec<(f64, f64)> {
    if v.len() <= n {
        return v;
    }
    let step = v.len() as f64 / n as f64;
    let mut out: Vec<(f64, f64)> = (0..n).map(|i| v[(i as f64 * step) as usize]).collect();
    out.push(v[v.len() - 1]);
    out
}

/// Reliability, risk-coverage and confusion figures of the comparison.
fn comparison_figures(c: &Comparison) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    for (ki, kind) in kinds(c).iter().enumerate() {
        let ms: Vec<_> = c.methods.iter().filter(|m| &m.kind == kind).collect();
        let rel: Vec<charts::Series> = ms
            .iter()
            .map(|m| (m.method.clone(), m.reliability.clone()))
            .collect();
        figs.push(Figure {
            stem: format!("reliability-{ki}"),
            caption: format!("Reliability diagram, {kind}"),
            png: charts::reliability(&format!("Reliability ({kind})"), &rel)?,
        });
        let rc: Vec<charts::Series> = ms
            .iter()
            .map(|m| {
                let (ok, err) = &m.uncertainty_histogram;
                (m.method.clone(), thin(risk_coverage(ok, err), 60))
            })
            .filter(|s| !s.1.is_empty())
            .collect();
        if !rc.is_empty() {
            figs.push(Figure {
                stem: format!("risk-coverage-{ki}"),
                caption: format!("Risk-coverage (total uncertainty), {kind}"),
                png: charts::risk_coverage(&format!("Risk-coverage ({kind})"), &rc)?,
            });
        }
        for (mi, m) in ms.iter().enumerate() {
            figs.push(Figure {
                stem: format!("confusion-{ki}-{mi:02}"),
                caption: format!("Confusion matrix of {}, {kind}", m.method),
                png: charts::confusion(
                    &format!("{} ({kind})", m.method),
                    &c.classes,
                    &m.confusion,
                )?,
            });
        }
    }
    Ok(figs)
}

/// One quicklook per scene of `p` with products in `out`.
fn quicklooks(out: &Path, p: &Pipeline) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    for (si, s) in p.scenes.iter().enumerate() {
        let products: Vec<(String, PathBuf)> = p
            .methods
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    out.join(&s.name).join(format!("{}.tif", m.name)),
                )
            })
            .filter(|(_, f)| f.is_file())
            .collect();
        if products.is_empty() {
            continue;
        }
        figs.push(Figure {
            stem: format!("quicklook-{si:03}"),
            caption: format!("Quicklook of scene {}", s.name),
            png: quicklook(&s.name, &products, &p.classes)?,
        });
    }
    Ok(figs)
}

/// Every figure of a report: the comparison's, the learning curve when `study` is given,
/// and the quicklooks of `products` (an output folder and its pipeline) when given.
pub fn figures(
    c: &Comparison,
    study: Option<&Value>,
    products: Option<(&Path, &Pipeline)>,
) -> Result<Vec<Figure>> {
    let mut figs = comparison_figures(c)?;
    if let Some(s) = study {
        figs.extend(super::study::figures(s)?);
    }
    if let Some((out, p)) = products {
        figs.extend(quicklooks(out, p)?);
    }
    Ok(figs)
}

/// Writes the figures to `<dir>/plots/` (removing PNGs of earlier reports that are no
/// longer drawn); returns the Markdown and HTML sections that show them.
pub fn write(dir: &Path, figs: &[Figure]) -> Result<(String, String)> {
    if figs.is_empty() {
        let _ = write_each(dir, figs)?;
        return Ok((String::new(), String::new()));
    }
    let (mut md, mut html) = (
        String::from("\n## Figures\n\n"),
        String::from("<h2>Figures</h2>\n"),
    );
    for (m, h) in write_each(dir, figs)? {
        md.push_str(&m);
        html.push_str(&h);
    }
    Ok((md, html))
}

/// [`write()`], returning each figure's Markdown and HTML on its own (no heading).
pub fn write_each(dir: &Path, figs: &[Figure]) -> Result<Vec<(String, String)>> {
    let plots = dir.join("plots");
    if figs.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(&plots)
        .map_err(|e| crate::error::Error::io(&plots, "create folder", e))?;
    let keep: Vec<String> = figs.iter().map(|f| format!("{}.png", f.stem)).collect();
    for e in std::fs::read_dir(&plots).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.ends_with(".png") && !keep.contains(&n) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let mut out = Vec::new();
    for (f, name) in figs.iter().zip(&keep) {
        crate::io::writer::write_atomic(&plots.join(name), &f.png)?;
        let md = format!("![{}](plots/{name})\n\n", md_cell(&f.caption));
        let cap = html_escape(&f.caption);
        let html = format!(
            "<figure><img alt=\"{cap}\" src=\"{}\"><figcaption>{cap}</figcaption></figure>\n",
            data_uri(&f.png)
        );
        out.push((md, html));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thin_keeps_the_ends() {
        let v: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 0.0)).collect();
        let t = thin(v.clone(), 10);
        assert_eq!(t.len(), 11);
        assert_eq!(t[0], v[0]);
        assert_eq!(*t.last().unwrap(), v[99]);
        assert_eq!(thin(v[..5].to_vec(), 10).len(), 5);
    }
}
