//! Any bytes as a pipeline file (`geofuse::fuzz_harness::pipeline_config`): loading and
//! validating it returns a pipeline or an exit-2 error, never panics. The corpus's scene
//! paths point at a small synthetic scene written once per process.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn workdir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("geofuse-fuzz-pipeline-{}", std::process::id()));
        geofuse::fuzz_harness::pipeline_setup(&d).expect("synthetic scene");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    geofuse::fuzz_harness::pipeline_config(workdir(), data);
});
