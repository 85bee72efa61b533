//! The files the shards of a run share: the run record, the VRT mosaics, the top-level
//! manifest, the pooled metrics and the report. Every run writes them at its end under the output lock, from the
//! scene folders present, so the last shard to finish leaves them complete;
//! `geofuse merge OUT` rewrites them at any time.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::lock::{sweep_temporary, OutputLock};
use super::manifest::Manifest;
use super::{load_pipeline, read_json, write_json, Log};
use crate::config::Pipeline;
use crate::error::{Error, Result};

/// The run record: which pipeline file made this output folder (read by `geofuse merge`).
pub const RUN_RECORD: &str = "run.json";

/// Records the pipeline file of this output folder.
pub fn write_run_record(out: &Path, pipeline_path: &Path) -> Result<()> {
    let abs = std::fs::canonicalize(pipeline_path).unwrap_or(pipeline_path.to_path_buf());
    write_json(
        &out.join(RUN_RECORD),
        &json!({"pipeline": abs, "geofuse_version": env!("CARGO_PKG_VERSION")}),
    )
}

/// Writes the shared files from the scene folders, under the output lock; returns the
/// report's path.
pub fn finish(out: &Path, p: &Pipeline, log: &Log) -> Result<PathBuf> {
    let _lock = OutputLock::acquire(out, "manifest, mosaics and report", log)?;
    sweep_temporary(out);
    let mosaics = write_mosaics(out, p, log)?;
    super::manifest::write_top_level(out, p, &mosaics)?;
    let mut pooled = crate::report::pooled::pooled(out, p);
    let comparison = crate::report::compare::compare(&[(out.to_path_buf(), p.clone())]);
    pooled["comparison"] = comparison.to_json();
    write_json(&out.join("metrics.json"), &pooled)?;
    crate::report::write(out, p, &pooled, &comparison)
}

/// `geofuse merge OUT`: rewrites the top-level manifest, mosaics and report of an output
/// folder from its scene folders (after shards ran separately).
pub fn merge(out: &Path, log: &Log) -> Result<PathBuf> {
    let p = pipeline_of(out)?;
    finish(out, &p, log)
}

/// The pipeline that made output folder `out` (through its run record), writing to `out`.
pub fn pipeline_of(out: &Path) -> Result<Pipeline> {
    let record = out.join(RUN_RECORD);
    let pipeline = read_json(&record)
        .and_then(|v| v.get("pipeline")?.as_str().map(PathBuf::from))
        .ok_or_else(|| {
            Error::input(
                &record,
                "missing or unreadable: OUT is not a geofuse output folder, or no run has started in it; run `geofuse run PIPELINE --out OUT` first",
            )
        })?;
    load_pipeline(&pipeline, Some(out))
}

/// One mosaic per method and CRS over the products listed in the scene manifests; returns
/// their manifest records. A mosaic whose products are gone is removed.
fn write_mosaics(out: &Path, p: &Pipeline, log: &Log) -> Result<Vec<Value>> {
    let mut records = Vec::new();
    for name in p.product_names() {
        let mut groups: Vec<(String, Vec<String>, Vec<PathBuf>)> = Vec::new();
        for s in &p.scenes {
            let product = out.join(&s.name).join(format!("{name}.tif"));
            if !Manifest::load(&out.join(&s.name))
                .products
                .contains_key(&name)
                || !product.exists()
            {
                continue;
            }
            let wkt = crate::io::vrt::crs_wkt(&product)?;
            match groups
                .iter_mut()
                .find(|g| crate::io::reader::same_crs(&g.0, &wkt))
            {
                Some(g) => {
                    g.1.push(s.name.clone());
                    g.2.push(product);
                }
                None => groups.push((wkt, vec![s.name.clone()], vec![product])),
            }
        }
        let single = groups.len() == 1;
        let _ = std::fs::remove_file(out.join(format!("{name}.vrt")));
        for (wkt, scenes, products) in groups {
            let label = crate::io::vrt::crs_label(&wkt);
            let file = if single {
                format!("{name}.vrt")
            } else {
                format!("{name}_{label}.vrt")
            };
            crate::io::vrt::write_mosaic(&out.join(&file), &products)?;
            log.info(&format!("mosaic: {file} ({} scenes)", scenes.len()));
            records.push(json!({"method": name, "path": file, "crs": label, "scenes": scenes}));
        }
    }
    Ok(records)
}
