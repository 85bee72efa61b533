//! SAR polarisations: a VV-only scene runs the forest and every learned method; what it
//! computes equals the VV half of a dual-polarisation scene; models record their
//! polarisations and refuse a scene that lacks one.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Learned runs one at a time (see tests/learned.rs: burn's CPU pool is per process).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `sar_vv.tif`: band 1 (VV) of the scene's `sar.tif`, nodata and georeferencing kept.
fn vv_only_copy(dir: &Path) {
    use gdal::raster::Buffer;
    let src = gdal::Dataset::open(dir.join("sar.tif")).unwrap();
    let (w, h) = src.raster_size();
    let dst = float_tiff_like(&src, &dir.join("sar_vv.tif"), 1);
    let band = src.rasterband(1).unwrap();
    let data = band.read_as::<f32>((0, 0), (w, h), (w, h), None).unwrap();
    let mut out = dst.rasterband(1).unwrap();
    out.set_no_data_value(band.no_data_value()).unwrap();
    out.write(
        (0, 0),
        (w, h),
        &mut Buffer::new((w, h), data.data().to_vec()),
    )
    .unwrap();
}

const DUAL: &str = "sar.tif\", polarisations = [\"VV\", \"VH\"]";
const VV_ONLY: &str = "sar_vv.tif\", polarisations = [\"VV\"]";
const DUAL_FEATURES: &str = "sar = [\"vv_db\", \"vh_db\", \"vh_vv_ratio_db\", \"rvi\"]";
const VV_FEATURES: &str = "sar = [\"vv_db\"]";

/// A 96 px scene with a VV-only copy of its SAR file, and two pipelines that differ only in
/// the SAR file: `dual.toml` (VV + VH, VV features only) and `vv.toml` (VV only), each with
/// `methods` appended to the forest.
fn scene_pair(methods: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pipe = scene_with_pipeline(dir.path(), 96, 12, 48);
    vv_only_copy(dir.path());
    edit(&pipe, DUAL_FEATURES, VV_FEATURES);
    let text = std::fs::read_to_string(&pipe).unwrap() + methods;
    let (dual, vv) = (dir.path().join("dual.toml"), dir.path().join("vv.toml"));
    std::fs::write(&dual, &text).unwrap();
    std::fs::write(&vv, text.replacen(DUAL, VV_ONLY, 1)).unwrap();
    (dir, dual, vv)
}

/// Every band's pixels of a product (the metadata differs: it names the pipeline's hash).
fn pixels(path: PathBuf) -> Vec<Vec<f64>> {
    assert!(path.exists(), "{}", path.display());
    (1..=PRODUCT_BANDS).map(|b| band_values(&path, b)).collect()
}

fn assert_same_pixels(a: PathBuf, b: PathBuf) {
    let (pa, pb) = (pixels(a.clone()), pixels(b.clone()));
    for (k, (x, y)) in pa.iter().zip(&pb).enumerate() {
        let differ = x.iter().zip(y).filter(|(u, v)| u != v).count();
        assert_eq!(
            differ,
            0,
            "band {}: {} vs {}",
            k + 1,
            a.display(),
            b.display()
        );
    }
}

const NET: &str =
    "width = 6\nepochs = 2\npatience = 2\npatches = 16\npatch = 16\nbatch = 8\nmc_passes = 2\n";

#[test]
fn the_forest_on_a_vv_only_file_equals_the_forest_on_the_vv_band_of_a_dual_file() {
    let (dir, dual, vv) = scene_pair("");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (code, err) = cli_run(&dual, &a);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = cli_run(&vv, &b);
    assert_eq!(code, Some(0), "{err}");
    // Same features from the same VV values: the same model and the same pixels in every band.
    assert_same_pixels(
        a.join("synthetic/handcrafted.tif"),
        b.join("synthetic/handcrafted.tif"),
    );
    let m = read_metrics(&b, "synthetic");
    assert!(m["methods"]["handcrafted"]["oa"].as_f64().unwrap() > 0.5);
}

#[test]
fn a_vv_only_scene_runs_every_learned_method_and_its_models_record_vv() {
    let _g = serial();
    let (dir, _, vv) = scene_pair(&every_learned_method(NET, "", ""));
    let out = dir.path().join("out");
    let (code, err) = cli_run(&vv, &out);
    assert_eq!(code, Some(0), "{err}");
    let m = read_metrics(&out, "synthetic");
    for f in every_learned_name() {
        // A smoke test of the SAR block's size (2 epochs); accuracy is other tests' business.
        assert!(
            m["methods"][f]["oa"].as_f64().is_some(),
            "{f}: {:?}",
            m["methods"][f]
        );
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("models/{f}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["config"]["spec"]["sar"], 1, "{f}");
        assert_eq!(meta["sar_polarisations"], serde_json::json!(["VV"]), "{f}");
    }
}

#[test]
fn a_vv_model_maps_a_dual_scene_and_a_dual_model_refuses_a_vv_scene() {
    let _g = serial();
    let net = format!("[[methods]]\nname = \"learned-kernel\"\n{NET}");
    let (dir, dual, vv) = scene_pair(&net);
    let (vv_out, dual_out) = (dir.path().join("vv-out"), dir.path().join("dual-out"));
    for (pipe, out) in [(&vv, &vv_out), (&dual, &dual_out)] {
        let (code, err) = cli_run(pipe, out);
        assert_eq!(code, Some(0), "{err}");
    }
    let dual_meta = std::fs::read_to_string(dual_out.join("models/learned-kernel.json")).unwrap();
    assert!(
        !dual_meta.contains("sar_polarisations"),
        "VV + VH is the default, left out"
    );
    let reuse = |pipe: &Path, model: &Path, name: &str| {
        let text = std::fs::read_to_string(pipe).unwrap();
        let head = text.split("[[methods]]").next().unwrap();
        let p = dir.path().join(format!("{name}.toml"));
        let m = model.join("models/learned-kernel");
        std::fs::write(&p, format!("{head}[[methods]]\nname = \"reused\"\nkind = \"learned\"\nfusion = \"learned-kernel\"\nmodel = \"{}\"\n{NET}", m.display())).unwrap();
        cli_run(&p, &dir.path().join(name))
    };
    // A VV model on a dual-polarisation scene reads its VV band: the product it wrote on the
    // VV-only scene, pixel for pixel.
    let (code, err) = reuse(&dual, &vv_out, "vv-on-dual");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = reuse(&vv, &vv_out, "vv-on-vv");
    assert_eq!(code, Some(0), "{err}");
    assert_same_pixels(
        dir.path().join("vv-on-dual/synthetic/reused.tif"),
        dir.path().join("vv-on-vv/synthetic/reused.tif"),
    );
    // A VV + VH model on a VV-only scene is refused, naming what is missing and the fix.
    let (code, err) = reuse(&vv, &dual_out, "dual-on-vv");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no VH") && err.contains("retrain"), "{err}");
    assert!(!dir.path().join("dual-on-vv/synthetic/reused.tif").exists());
}
