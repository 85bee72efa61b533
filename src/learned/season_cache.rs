//! The raw bands of a season scene's whole grid, computed once for the training patches of
//! every epoch: a season's window reads and regularises every dated raster, which per patch
//! and epoch costs more than the training step. A patch cut from the whole grid equals the
//! patch read on its own (regularisation is per pixel; hybrid features are computed with
//! their halo, so they do not depend on the window). Scenes whose raw bands would exceed
//! [`SCENE_BYTES`] are read patch by patch; the cache keeps at most [`TOTAL_BYTES`].

use std::sync::{Arc, Mutex};

use super::scene_input::{raw_window, RawWindow};
use crate::error::Result;
use crate::raster::Window;
use crate::scene::FeaturePlan;
use crate::scene::{SceneReader, SceneSources};

/// Largest scene kept whole (bytes of raw bands).
pub const SCENE_BYTES: usize = 768 << 20;
/// Most bytes kept over all scenes (the oldest leave first).
pub const TOTAL_BYTES: usize = 1536 << 20;

type Entry = (String, Arc<RawWindow>, usize);

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// What identifies a scene's raw bands: its files (paths, sizes, times), grid, the hybrid
/// features and whether gaps stay NaN.
fn key(src: &SceneSources, hybrid: Option<&FeaturePlan>, gaps: bool) -> String {
    format!(
        "{}|{}|{:?}|{:?}|{gaps}",
        src.name,
        crate::scene::fingerprint(&src.input_files()),
        src.grid.transform,
        hybrid.map(|p| p.names.join(","))
    )
}

/// The whole-grid raw bands of a season scene, read once; None for a scene of one date or
/// one too large to keep.
pub fn season_raw(
    src: &SceneSources,
    (hybrid, gaps): (Option<&FeaturePlan>, bool),
) -> Result<Option<Arc<RawWindow>>> {
    let Some(ss) = &src.season else {
        return Ok(None);
    };
    let g = &src.grid;
    let channels = ss.steps.len() * (src.optical_bands.len() + src.sar_pols.len())
        + hybrid.map_or(0, |p| p.names.len());
    let bytes = channels * g.width * g.height * 4;
    if bytes > SCENE_BYTES {
        return Ok(None);
    }
    let k = key(src, hybrid, gaps);
    let mut cache = crate::error::lock(&CACHE)?;
    if let Some(e) = cache.iter().find(|e| e.0 == k) {
        return Ok(Some(e.1.clone()));
    }
    let reader = SceneReader::open(src)?;
    let whole = Window {
        row: 0,
        col: 0,
        width: g.width,
        height: g.height,
    };
    let raw = Arc::new(raw_window(
        &reader,
        src,
        whole,
        &src.sar_pols,
        (hybrid, gaps),
    )?);
    while !cache.is_empty() && cache.iter().map(|e| e.2).sum::<usize>() + bytes > TOTAL_BYTES {
        cache.remove(0);
    }
    cache.push((k, raw.clone(), bytes));
    Ok(Some(raw))
}
