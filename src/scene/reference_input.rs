//! A scene's vector reference data as the label raster the rest of the pipeline reads: the
//! features read through GDAL's vector API (reprojected to the scene's CRS), rasterised with
//! [`crate::reference`] into the scene's work folder, and the split side of every feature.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Pipeline, ReferenceDef, SplitBy};
use crate::error::{Error, Result};
use crate::eval::split::{BlockSplit, PixelSides};
use crate::raster::Grid;
use crate::reference::{centre, rasterize, sides, UNLABELLED};
use crate::rng::{hash4, unit};

/// The rasterised reference of one scene.
pub struct SceneReference {
    /// Label raster on the scene grid ([`UNLABELLED`] = no reference).
    pub labels: PathBuf,
    /// The split side of every labelled pixel (its feature's).
    pub sides: Arc<PixelSides>,
    /// What was read, for the log.
    pub summary: String,
}

/// Reads and rasterises `r` onto `grid`, writing the labels into `work_dir`.
pub fn rasterize_reference(
    p: &Pipeline,
    r: &ReferenceDef,
    grid: &Grid,
    work_dir: &Path,
) -> Result<SceneReference> {
    let features = crate::io::vector::read_reference(r, &p.classes, &grid.crs_wkt)?;
    let ras = rasterize(&features, grid).map_err(|m| Error::input(&r.path, m))?;
    let blocks = BlockSplit::new(
        grid.width,
        grid.height,
        p.split.block_size,
        p.split.test_fraction,
        p.split_seed(),
    );
    let s = sides(&ras, grid.width, |f| match p.split.by {
        SplitBy::Blocks => {
            let (row, col) = centre(f, grid.width);
            blocks.in_test_block(row, col)
        }
        SplitBy::Polygons => {
            unit(hash4(p.split_seed(), 0x9017_9017, f.fid, 0, 0)) < p.split.test_fraction
        }
    });
    std::fs::create_dir_all(work_dir).map_err(|e| Error::io(work_dir, "create folder", e))?;
    let path = work_dir.join("reference-labels.tif");
    let mut w = crate::io::writer::StreamWriter::create::<u8>(
        &path,
        grid,
        &["reference labels"],
        Some(f64::from(UNLABELLED)),
    )?;
    w.write(0, 0, &ras.labels.clone().insert_axis(ndarray::Axis(0)))?;
    let labels = w.finish()?;
    let labelled: usize = ras.features.iter().map(|f| f.pixels.len()).sum();
    let areas: Vec<String> = ras
        .areas
        .iter()
        .map(|(c, a)| format!("class {c}: {a:.0}"))
        .collect();
    let summary = format!(
        "reference {}: {} features label {labelled} pixels ({} of {} outside the scene), {} pixels with conflicting classes left unlabelled; polygon areas (CRS units^2) {}",
        r.path.display(),
        ras.features.len(),
        ras.outside,
        features.len(),
        ras.conflicts,
        areas.join(", ")
    );
    Ok(SceneReference {
        labels,
        sides: Arc::new(s),
        summary,
    })
}
