//! The committed fuzz corpus (fuzz/corpus/, with every input that once crashed a target)
//! replayed through the fuzz targets' code on every test run: cargo-fuzz needs an
//! instrumented build that CI cannot always afford, this needs none.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 5, "{}: the corpus is missing", dir.display());
    v
}

#[test]
fn the_pipeline_corpus_loads_or_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    geofuse::fuzz_harness::pipeline_setup(dir.path()).unwrap();
    for (name, bytes) in inputs("pipeline_config") {
        println!("{name}");
        geofuse::fuzz_harness::pipeline_config(dir.path(), &bytes);
    }
}

#[test]
fn the_raster_corpus_reads_or_is_refused_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let s = geofuse::fuzz_harness::RasterSetup::new(dir.path()).unwrap();
    for (name, bytes) in inputs("raster_header") {
        println!("{name}");
        geofuse::fuzz_harness::raster_header(&s, &bytes);
        // Truncated at every 997th byte too: the cut headers a full disk or a killed copy
        // leaves.
        for cut in (0..bytes.len()).step_by(997) {
            geofuse::fuzz_harness::raster_header(&s, &bytes[..cut]);
        }
    }
}
