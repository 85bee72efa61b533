//! The hand-crafted feature stack of a scene, tile by tile: GLCM quantisation ranges, the
//! feature plan, per-tile features, and whole-scene stacks (in memory or streamed to disk).

use std::path::Path;

use ndarray::{Array2, Array3};
use rayon::prelude::*;

use super::{SceneReader, SceneSources};
use crate::config::{GlcmConfig, Pipeline, SarUnit};
use crate::error::{lock, Error, Result};
use crate::features::glcm::Quantisation;
use crate::features::GlcmSource;
use crate::io::reader::{percentile, RasterReader};
use crate::scene::FeaturePlan;
use crate::tiler::{tiles, Tile};

/// A sample of the values of a GLCM block's source band in one scene (dB for SAR).
fn glcm_sample(src: &SceneSources, g: &GlcmConfig) -> Result<Vec<f32>> {
    let source = GlcmSource::resolve(&g.band, &src.optical_bands)
        .ok_or_else(|| Error::input(&src.optical, format!("GLCM band {} not found", g.band)))?;
    let (path, band, to_db) = match (source, source.polarisation()) {
        (GlcmSource::Optical(i), _) => (&src.optical, i + 1, false),
        (_, p) => {
            let k = src.sar_pols.iter().position(|&q| Some(q) == p);
            let band = k.map(|k| src.sar_bands[k]).ok_or_else(|| {
                Error::input(
                    &src.sar,
                    format!(
                        "GLCM band {} is not among the scene's polarisations",
                        g.band
                    ),
                )
            })?;
            (&src.sar, band, src.sar_unit == SarUnit::Linear)
        }
    };
    let v = RasterReader::open(path)?.sample(band, 1024)?;
    Ok(if to_db {
        v.into_iter()
            .map(crate::features::sar::linear_to_db)
            .filter(|x| !x.is_nan())
            .collect()
    } else {
        v
    })
}

/// Quantisation range of each GLCM block, from the pipeline (`fixed`) or from percentiles of
/// the pooled samples of `scenes` (`percentile`: the training scenes, never the scene being
/// mapped).
pub fn glcm_ranges(scenes: &[&SceneSources], glcm: &[GlcmConfig]) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for g in glcm {
        if g.quantisation == Quantisation::Fixed {
            out.push((g.min.unwrap_or(0.0), g.max.unwrap_or(1.0)));
            continue;
        }
        let mut v = Vec::new();
        for src in scenes {
            v.extend(glcm_sample(src, g)?);
        }
        let lo = percentile(&v, g.percentiles[0]).ok_or_else(|| {
            Error::input(
                scenes
                    .first()
                    .map(|s| s.optical.clone())
                    .unwrap_or_default(),
                format!(
                    "GLCM band {} has no valid pixel for quantisation in the training scenes",
                    g.band
                ),
            )
        })?;
        let mut hi = percentile(&v, g.percentiles[1]).unwrap_or(lo + 1.0);
        if hi <= lo {
            hi = lo + 1.0;
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// The feature plan of a scene, with GLCM quantisation ranges taken from the scene itself
/// (`geofuse features` and one-scene studies; models use their training scenes' ranges).
pub fn scene_plan(p: &Pipeline, src: &SceneSources) -> Result<FeaturePlan> {
    let ranges = glcm_ranges(&[src], &p.features.glcm)?;
    Ok(plan_with(p, src, &ranges))
}

/// The feature plan of `src` with given GLCM ranges (and the temporal features of a season
/// scene).
pub fn plan_with(p: &Pipeline, src: &SceneSources, ranges: &[(f64, f64)]) -> FeaturePlan {
    let plan = FeaturePlan::new(
        &p.features,
        &src.optical_bands,
        src.scale,
        src.offset,
        ranges,
    );
    match &src.season {
        Some(s) => plan.with_season(&s.centres()),
        None => plan,
    }
}

/// Features of one tile, cropped to its core: `[feature, row, col]`, the core's labels, and
/// the core's modality codes ([`crate::product::modality_bits`] of the raw inputs).
pub fn tile_features(reader: &SceneReader, plan: &FeaturePlan, t: &Tile) -> Result<CoreFeatures> {
    let data = reader.read(t.read)?;
    let stack = plan.compute(&data.inputs);
    let (r0, c0) = t.core_offset();
    let (h, w) = (t.core.height, t.core.width);
    Ok(CoreFeatures {
        features: crate::features::crop(&stack, r0, c0, h, w),
        labels: data
            .labels
            .map(|l| l.slice(ndarray::s![r0..r0 + h, c0..c0 + w]).to_owned()),
        modalities: crate::product::modalities(&data.inputs, (r0, c0), (h, w)),
        observations: crate::product::observations(&data.inputs, (r0, c0), (h, w)),
    })
}

/// What [`tile_features`] returns for a tile core.
pub struct CoreFeatures {
    /// `[feature, row, col]`, NaN where missing.
    pub features: Array3<f32>,
    /// Reference labels (NaN = unlabelled), when the scene has labels.
    pub labels: Option<Array2<f32>>,
    /// Modality codes of the raw inputs.
    pub modalities: Array2<u8>,
    /// A season's observation counts ([`crate::product::observations`]).
    pub observations: Option<ndarray::Array3<u8>>,
}

/// Computes the feature stack of every tile of a scene (in parallel, one set of readers per
/// worker) and hands each tile core to `sink`. Returns the feature names.
fn for_each_tile_features<F>(
    p: &Pipeline,
    src: &SceneSources,
    tile_size: usize,
    sink: F,
) -> Result<Vec<String>>
where
    F: Fn(&Tile, Array3<f32>) -> Result<()> + Sync,
{
    let plan = scene_plan(p, src)?;
    let g = &src.grid;
    tiles(g.width, g.height, tile_size, plan.halo)
        .par_iter()
        .map_init(
            || SceneReader::open(src),
            |reader, t| -> Result<()> {
                let reader = reader.as_ref().map_err(Clone::clone)?;
                sink(t, tile_features(reader, &plan, t)?.features)
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok(plan.names)
}

/// Computes the full feature stack of a scene in memory (small scenes and tests):
/// `[feature, row, col]` with NaN where missing. [`write_scene_features`] streams instead.
pub fn scene_features(
    p: &Pipeline,
    src: &SceneSources,
    tile_size: usize,
) -> Result<(Vec<String>, Array3<f32>)> {
    let g = &src.grid;
    let out = std::sync::Mutex::new(None::<Array3<f32>>);
    let names = for_each_tile_features(p, src, tile_size, |t, f| {
        let mut guard = lock(&out)?;
        let stack =
            guard.get_or_insert_with(|| Array3::<f32>::zeros((f.shape()[0], g.height, g.width)));
        let c = t.core;
        stack
            .slice_mut(ndarray::s![
                ..,
                c.row..c.row + c.height,
                c.col..c.col + c.width
            ])
            .assign(&f);
        Ok(())
    })?;
    let stack = out
        .into_inner()
        .map_err(|_| Error::Internal("lock poisoned".into()))?;
    Ok((
        names,
        stack.unwrap_or_else(|| Array3::zeros((0, g.height, g.width))),
    ))
}

/// Streams the feature stack of a scene to a Float32 GeoTIFF at `out` (nodata `nodata`,
/// band descriptions = feature names), tile by tile: memory is bounded by the tile size and
/// worker count. Returns the feature names.
pub fn write_scene_features(
    p: &Pipeline,
    src: &SceneSources,
    out: &Path,
    nodata: f32,
) -> Result<Vec<String>> {
    let names = scene_plan(p, src)?.names;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let writer = std::sync::Mutex::new(crate::io::writer::StreamWriter::create::<f32>(
        out,
        &src.grid,
        &refs,
        Some(nodata as f64),
    )?);
    for_each_tile_features(p, src, p.tiling.tile_size, |t, f| {
        lock(&writer)?.write(
            t.core.row,
            t.core.col,
            &f.mapv(|v| if v.is_nan() { nodata } else { v }),
        )
    })?;
    writer
        .into_inner()
        .map_err(|_| Error::Internal("lock poisoned".into()))?
        .finish()?;
    Ok(names)
}
