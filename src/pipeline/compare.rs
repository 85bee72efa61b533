//! `geofuse compare`: one output folder's report rewritten, or several folders compared
//! together (the statistics and rendering are in [`crate::report`]).

use std::path::{Path, PathBuf};

use crate::config::Pipeline;

/// The folders' pipelines, found through their run records.
pub fn load_outputs(outs: &[PathBuf]) -> crate::error::Result<Vec<(PathBuf, Pipeline)>> {
    outs.iter()
        .map(|o| Ok((o.clone(), super::shared::pipeline_of(o)?)))
        .collect()
}

/// `geofuse compare OUT [OUT ...]`: one folder rewrites its report (report.md, report.html)
/// with the statistics; several are compared together (units pooled over the folders,
/// scenes labelled by folder) into `compare.md` and `compare.html` in `report_dir`
/// (default: the first folder). Returns the Markdown path.
pub fn run_compare(
    outs: &[PathBuf],
    report_dir: Option<&Path>,
    log: &super::Log,
) -> crate::error::Result<PathBuf> {
    let loaded = load_outputs(outs)?;
    if let ([(out, p)], None) = (loaded.as_slice(), report_dir) {
        let _lock = super::lock::OutputLock::acquire(out, "report", log)?;
        let pooled = crate::report::pooled::pooled(out, p);
        return crate::report::write(out, p, &pooled, &crate::report::compare::compare(&loaded));
    }
    let dir = report_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| outs[0].clone());
    std::fs::create_dir_all(&dir).map_err(|e| crate::error::Error::io(&dir, "create folder", e))?;
    let c = crate::report::compare::compare(&loaded);
    let names: Vec<String> = outs.iter().map(|o| o.display().to_string()).collect();
    let figs = crate::report::figures::figures(&c, None, None)?;
    let (fig_md, fig_html) = crate::report::figures::write(&dir, &figs)?;
    let (verdict_md, verdict_html) = crate::report::verdict::section(&c);
    let md = format!(
        "# geofuse comparison\n\nOutput folders: {}\n{verdict_md}{}{fig_md}",
        names.join(", "),
        crate::report::stats::markdown(&c)
    );
    let html = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>geofuse comparison</title><style>{}</style>\n<h1>geofuse comparison</h1>\n<p>Output folders: {}</p>\n{verdict_html}{}{fig_html}",
        crate::report::STYLE,
        crate::report::html_escape(&names.join(", ")),
        crate::report::stats::html(&c)
    );
    let md_path = dir.join("compare.md");
    crate::io::writer::write_atomic(&md_path, md.as_bytes())?;
    crate::io::writer::write_atomic(&dir.join("compare.html"), html.as_bytes())?;
    Ok(md_path)
}
