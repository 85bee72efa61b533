//! Any bytes as a scene's optical GeoTIFF (`geofuse::fuzz_harness::raster_header`; the
//! corpus: small valid GeoTIFFs to mutate): header read, scene checks and a window read
//! return a value or an error, never panic.
#![no_main]

use std::sync::OnceLock;

use geofuse::fuzz_harness::{raster_header, RasterSetup};
use libfuzzer_sys::fuzz_target;

fn setup() -> &'static RasterSetup {
    static S: OnceLock<RasterSetup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("geofuse-fuzz-raster-{}", std::process::id()));
        RasterSetup::new(&dir).expect("the fuzz scene")
    })
}

fuzz_target!(|data: &[u8]| {
    raster_header(setup(), data);
});
