//! Bad input gets a clear error naming the file and the fix, exit code 2, and no partial
//! product; warping repairs a mismatched grid when the pipeline allows it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use gdal::{Dataset, DriverManager};

/// A synthetic scene and its pipeline in a fresh folder.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pipe = scene_with_pipeline(dir.path(), 96, 4, 64);
    (dir, pipe)
}

/// Runs `geofuse run` and returns (exit code, stderr).
fn run_pipeline(pipe: &Path) -> (i32, String) {
    let o = geofuse(&["run", pipe.to_str().unwrap(), "-q"]);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// No product, sidecar or temporary file under the output folder.
fn assert_no_product(dir: &Path) {
    let out = dir.join("out");
    let leftovers: Vec<_> = files_under(&out)
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.ends_with(".tif")
                || s.contains(".tmp-")
                || s.ends_with(".partial")
                || s.ends_with(".aux.xml")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial products left behind: {leftovers:?}"
    );
}

/// Copies a raster and lets `f` modify the copy in place.
fn modified_copy(src: &Path, dst: &Path, f: impl FnOnce(&mut Dataset)) {
    let ds = Dataset::open(src).unwrap();
    let drv = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut copy = ds.create_copy(&drv, dst, &Default::default()).unwrap();
    f(&mut copy);
}

#[test]
fn unknown_key_in_pipeline_exits_2_and_names_the_key() {
    let (dir, pipe) = setup();
    edit(&pipe, "[tiling]\n", "[tiling]\ntile_sise = 3\n");
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tile_sise") && err.contains("pipeline.toml"),
        "{err}"
    );
    assert_no_product(dir.path());
}

#[test]
fn malformed_and_missing_pipeline_files_exit_2() {
    let (dir, pipe) = setup();
    std::fs::write(&pipe, "output = \"out\"\n[[classes]\nid = 1").unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pipeline.toml"), "{err}");
    let (code, err) = run_pipeline(&dir.path().join("nope.toml"));
    assert_eq!(code, 2);
    assert!(
        err.contains("nope.toml") && err.contains("cannot read"),
        "{err}"
    );
    // Missing required key.
    std::fs::write(&pipe, "output = \"out\"\nclasses = []\nscenes = []\n").unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2);
    assert!(err.contains("methods"), "{err}");
}

#[test]
fn missing_input_file_exits_2_and_names_it() {
    let (dir, pipe) = setup();
    std::fs::remove_file(dir.path().join("sar.tif")).unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sar.tif") && err.contains("not found"),
        "{err}"
    );
    assert_no_product(dir.path());
}

#[test]
fn empty_and_corrupt_files_exit_2() {
    let (dir, pipe) = setup();
    std::fs::write(dir.path().join("sar.tif"), b"").unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sar.tif") && err.contains("empty"), "{err}");
    std::fs::write(dir.path().join("sar.tif"), b"II*\0 this is not a real tiff").unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sar.tif") && err.contains("corrupt"), "{err}");
    assert_no_product(dir.path());
}

#[test]
fn mismatched_grid_exits_2_naming_both_grids_unless_warping_is_allowed() {
    let (dir, pipe) = setup();
    let sar = dir.path().join("sar.tif");
    let shifted = dir.path().join("sar_shifted.tif");
    modified_copy(&sar, &shifted, |ds| {
        let mut gt = ds.geo_transform().unwrap();
        gt[0] += 5.0; // half a pixel east
        gt[3] -= 5.0;
        ds.set_geo_transform(&gt).unwrap();
    });
    std::fs::rename(&shifted, &sar).unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("optical.tif") && err.contains("sar.tif") && err.contains("600005"),
        "{err}"
    );
    assert!(
        err.contains("allow_warp"),
        "the message gives the fix: {err}"
    );
    assert_no_product(dir.path());
    // inspect reports the same mismatch with exit 2.
    let o = geofuse(&["inspect", pipe.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    // With warping allowed the run succeeds and the product covers the optical grid.
    edit(
        &pipe,
        "[tiling]\n",
        "[coregistration]\nallow_warp = true\n\n[tiling]\n",
    );
    let o = geofuse(&["run", pipe.to_str().unwrap()]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("warped onto the optical grid"), "{log}");
    let prod = Dataset::open(dir.path().join("out/synthetic/handcrafted.tif")).unwrap();
    assert_eq!(prod.geo_transform().unwrap()[0], 600000.0);
    assert!(
        !dir.path().join("out/synthetic/.coreg").exists(),
        "warp work files are cleaned up"
    );
}

#[test]
fn tiny_geotransform_noise_counts_as_the_same_grid() {
    let (dir, pipe) = setup();
    let sar = dir.path().join("sar.tif");
    let noisy = dir.path().join("sar_noisy.tif");
    modified_copy(&sar, &noisy, |ds| {
        let mut gt = ds.geo_transform().unwrap();
        gt[0] += 1e-9;
        gt[1] += 1e-12;
        ds.set_geo_transform(&gt).unwrap();
    });
    std::fs::rename(&noisy, &sar).unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn wrong_crs_exits_2() {
    let (dir, pipe) = setup();
    let labels = dir.path().join("labels.tif");
    let other = dir.path().join("labels_32632.tif");
    modified_copy(&labels, &other, |ds| {
        ds.set_projection(&geofuse::io::writer::epsg_wkt(32632).unwrap())
            .unwrap();
    });
    std::fs::rename(&other, &labels).unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("labels.tif") && err.contains("EPSG:32632") && err.contains("different CRS"),
        "{err}"
    );
    assert_no_product(dir.path());
}

#[test]
fn nan_filled_band_exits_2_and_names_the_band() {
    let (dir, pipe) = setup();
    let sar = dir.path().join("sar.tif");
    let nan = dir.path().join("sar_nan.tif");
    modified_copy(&sar, &nan, |ds| {
        ds.rasterband(2).unwrap().fill(f64::NAN, None).unwrap();
    });
    std::fs::rename(&nan, &sar).unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sar.tif") && err.contains("VH") && err.contains("NaN"),
        "{err}"
    );
    assert_no_product(dir.path());
}

#[test]
fn band_count_mismatch_exits_2() {
    let (dir, pipe) = setup();
    edit(&pipe, "\"B11\", \"B12\"]", "\"B11\", \"B12\", \"B13\"]");
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("optical.tif") && err.contains("10 bands") && err.contains("names 11"),
        "{err}"
    );
    assert_no_product(dir.path());
}

#[test]
fn labels_without_table_classes_exit_2() {
    let (dir, pipe) = setup();
    let t = std::fs::read_to_string(&pipe).unwrap();
    let t = (1..=7).fold(t, |t, i| {
        t.replacen(&format!("id = {i}\n"), &format!("id = {}\n", 100 + i), 1)
    });
    std::fs::write(&pipe, t).unwrap();
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("labels.tif") && err.contains("class"), "{err}");
    assert_no_product(dir.path());
}

#[test]
fn inspect_reports_grids_bands_and_verdict() {
    let (_dir, pipe) = setup();
    let o = geofuse(&["inspect", pipe.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for want in [
        "scene synthetic",
        "EPSG:32631",
        "band 10: B12 UInt16, nodata 0",
        "band 2: VH Float32, nodata NaN",
        "matches the optical grid",
    ] {
        assert!(
            text.contains(want),
            "inspect output lacks `{want}`:\n{text}"
        );
    }
}

/// Rewrites `path` as a DEFLATE GeoTIFF of 32 x 32 blocks and overwrites the compressed
/// bytes of block (`bx`, `by`) with garbage: a file whose header is fine and whose damage
/// only shows when that block is read.
fn corrupt_block(path: &Path, bx: usize, by: usize) {
    let tmp = path.with_extension("clean.tif");
    std::fs::rename(path, &tmp).unwrap();
    {
        let ds = Dataset::open(&tmp).unwrap();
        let drv = DriverManager::get_driver_by_name("GTiff").unwrap();
        let opts = gdal::raster::RasterCreationOptions::from_iter([
            "TILED=YES",
            "BLOCKXSIZE=32",
            "BLOCKYSIZE=32",
            "COMPRESS=DEFLATE",
        ]);
        ds.create_copy(&drv, path, &opts).unwrap();
    }
    std::fs::remove_file(&tmp).unwrap();
    let (offset, size) = {
        let ds = Dataset::open(path).unwrap();
        let band = ds.rasterband(1).unwrap();
        let item = |k: &str| -> u64 {
            gdal::Metadata::metadata_item(&band, &format!("{k}_{bx}_{by}"), "TIFF")
                .unwrap_or_else(|| panic!("no {k} for block {bx},{by}"))
                .parse()
                .unwrap()
        };
        (item("BLOCK_OFFSET"), item("BLOCK_SIZE"))
    };
    let mut bytes = std::fs::read(path).unwrap();
    for b in &mut bytes[offset as usize..(offset + size) as usize] {
        *b = 0xA5;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupt_block_in_the_middle_of_a_scene_exits_2_from_a_worker() {
    let (dir, pipe) = setup();
    // The labels are read tile by tile by the workers (scene checks only read their header).
    corrupt_block(&dir.path().join("labels.tif"), 1, 1);
    let (code, err) = run_pipeline(&pipe);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("labels.tif"), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    assert!(!err.contains("internal error"), "{err}");
    assert_no_product(dir.path());
}
