//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), kept in the library so that
//! `tests/fuzz_corpus.rs` replays the committed corpus through the same code on every test
//! run (a crash once found stays fixed even where cargo-fuzz does not run).

use std::path::{Path, PathBuf};

use crate::config::Pipeline;
use crate::error::Result;

fn small_scene(dir: &Path) -> Result<()> {
    let opts = crate::synth::SynthOptions {
        size: 32,
        seed: 1,
        ..Default::default()
    };
    crate::synth::generate(dir, &opts).map(|_| ())
}

/// Prepares `dir` for [`pipeline_config`]: a small synthetic scene in `dir/scene` (the
/// corpus's scene paths point there).
pub fn pipeline_setup(dir: &Path) -> Result<()> {
    small_scene(&dir.join("scene"))
}

/// Any bytes as a pipeline file in `dir`: loading and validating it gives a pipeline or an
/// error that is the user's to fix (exit code 2); a panic or another kind of error fails.
pub fn pipeline_config(dir: &Path, data: &[u8]) {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, data).expect("write the input");
    if let Err(e) = crate::pipeline::load_pipeline(&path, None) {
        assert_eq!(e.exit_code(), 2, "{e}");
    }
}

/// A small scene and its pipeline, for [`raster_header`].
pub struct RasterSetup {
    dir: PathBuf,
    pipeline: Pipeline,
}

impl RasterSetup {
    /// Writes a 32 px synthetic scene and its pipeline to `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        small_scene(dir)?;
        let text = crate::synth::pipeline_toml("out", ".", "fuzz")
            .replace("tile_size = 256", "tile_size = 32")
            .replace("block_size = 64", "block_size = 16");
        let p = dir.join("pipeline.toml");
        crate::io::writer::write_atomic(&p, text.as_bytes())?;
        Ok(RasterSetup {
            dir: dir.to_path_buf(),
            pipeline: crate::pipeline::load_pipeline(&p, None)?,
        })
    }
}

/// Any bytes as the scene's optical GeoTIFF: `inspect`'s header read, the scene checks
/// (bands, grids, nodata, co-registration) and a window read give a value or an error,
/// never a panic.
pub fn raster_header(s: &RasterSetup, data: &[u8]) {
    let optical = s.dir.join("optical.tif");
    std::fs::write(&optical, data).expect("write the input");
    let _ = crate::io::reader::raster_info(&optical);
    let work = s.dir.join("work");
    let scene = &s.pipeline.scenes[0];
    if let Ok(src) = crate::scene::prepare_scene(&s.pipeline, scene, &work) {
        if let Ok(reader) = crate::scene::SceneReader::open(&src) {
            let g = &src.grid;
            let win = crate::raster::Window {
                col: 0,
                row: 0,
                width: g.width.min(16),
                height: g.height.min(16),
            };
            let _ = reader.read(win);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}
