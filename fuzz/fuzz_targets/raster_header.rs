//! Any bytes as the optical GeoTIFF of a scene (the corpus: small valid GeoTIFFs to mutate):
//! `inspect`'s header read, the scene checks (bands, grids, nodata, co-registration) and a
//! window read return a value or an error, never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

struct Setup {
    dir: PathBuf,
    pipeline: geofuse::config::Pipeline,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("geofuse-fuzz-raster-{}", std::process::id()));
        let opts = geofuse::synth::SynthOptions {
            size: 32,
            seed: 1,
            ..Default::default()
        };
        geofuse::synth::generate(&dir, &opts).expect("synthetic scene");
        let text = geofuse::synth::pipeline_toml("out", ".", "fuzz")
            .replace("tile_size = 256", "tile_size = 32")
            .replace("block_size = 64", "block_size = 16");
        std::fs::write(dir.join("pipeline.toml"), text).expect("pipeline");
        let pipeline = geofuse::pipeline::load_pipeline(&dir.join("pipeline.toml"), None)
            .expect("the fuzz pipeline loads");
        std::fs::copy(dir.join("optical.tif"), dir.join("optical.good.tif")).expect("copy");
        Setup { dir, pipeline }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let optical = s.dir.join("optical.tif");
    std::fs::write(&optical, data).expect("write the input");
    let _ = geofuse::io::reader::raster_info(&optical);
    let scene = &s.pipeline.scenes[0];
    let work = s.dir.join("work");
    if let Ok(src) = geofuse::pipeline::scene::prepare_scene(&s.pipeline, scene, &work) {
        if let Ok(reader) = geofuse::pipeline::scene::SceneReader::open(&src) {
            let g = &src.grid;
            let win = geofuse::raster::Window {
                col: 0,
                row: 0,
                width: g.width.min(16),
                height: g.height.min(16),
            };
            let _ = reader.read(win);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
});
