//! Any bytes as a pipeline file: loading and validating it returns a pipeline or an error
//! (exit code 2 for the user), never panics. The scene paths of the corpus point at a small
//! synthetic scene written once per process, so validation goes past the file checks.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn workdir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("geofuse-fuzz-pipeline-{}", std::process::id()));
        let opts = geofuse::synth::SynthOptions {
            size: 32,
            seed: 1,
            ..Default::default()
        };
        geofuse::synth::generate(&d.join("scene"), &opts).expect("synthetic scene");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = workdir();
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, data).expect("write the input");
    if let Err(e) = geofuse::pipeline::load_pipeline(&path, None) {
        // Every refusal is the user's to fix (exit 2), never an internal error.
        assert_eq!(e.exit_code(), 2, "{e}");
    }
});
