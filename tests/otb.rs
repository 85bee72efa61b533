//! The GLCM texture equals Orfeo ToolBox's `otbcli_HaralickTextureExtraction` ("simple"
//! set) on the same input. Skips with a message when OTB is not installed (`make test`
//! installs Debian's otb-bin).

mod common;

use std::process::Command;

use gdal::raster::Buffer;
use gdal::{Dataset, DriverManager};
use geofuse::features::glcm::{glcm_features, quantise, Definitions, GlcmParams, FEATURE_NAMES};
use ndarray::Array2;

fn otb_available() -> bool {
    Command::new("otbcli_HaralickTextureExtraction")
        .arg("-help")
        .output()
        .is_ok()
}

#[test]
fn glcm_matches_orfeo_toolbox_haralick_simple() {
    if !otb_available() {
        eprintln!("SKIP: otbcli_HaralickTextureExtraction not found (install Debian's otb-bin; `make test` does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Input: the NIR band (B08 DN) of a synthetic scene, non-square.
    geofuse::synth::generate(
        dir.path(),
        &geofuse::synth::SynthOptions {
            size: 120,
            seed: 21,
            strip_rows: 64,
            cloud_cover: 0.12,
            ..Default::default()
        },
    )
    .unwrap();
    let src = Dataset::open(dir.path().join("optical.tif")).unwrap();
    let (w, h) = (120usize, 90usize);
    let nir = src
        .rasterband(7)
        .unwrap()
        .read_as::<u16>((0, 0), (w, h), (w, h), None)
        .unwrap();
    let max = *nir.data().iter().max().unwrap() as f64;
    let input = dir.path().join("nir.tif");
    {
        let drv = DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut ds = drv
            .create_with_band_type::<u16, _>(&input, w, h, 1)
            .unwrap();
        ds.set_geo_transform(&[0.0, 10.0, 0.0, 0.0, 0.0, -10.0])
            .unwrap();
        let mut buf = Buffer::new((w, h), nir.data().to_vec());
        ds.rasterband(1)
            .unwrap()
            .write((0, 0), (w, h), &mut buf)
            .unwrap();
    }
    let img =
        Array2::from_shape_vec((h, w), nir.data().iter().map(|&v| v as f32).collect()).unwrap();
    for (levels, (dx, dy)) in [
        (8usize, (1i32, 0i32)),
        (32, (1, 1)),
        (16, (0, 1)),
        (8, (-1, 2)),
    ] {
        let out = dir.path().join(format!("har_{levels}_{dx}_{dy}.tif"));
        let o = Command::new("otbcli_HaralickTextureExtraction")
            .args([
                "-in",
                input.to_str().unwrap(),
                "-channel",
                "1",
                "-texture",
                "simple",
            ])
            .args(["-parameters.xrad", "2", "-parameters.yrad", "2"])
            .args([
                "-parameters.xoff",
                &dx.to_string(),
                "-parameters.yoff",
                &dy.to_string(),
            ])
            .args([
                "-parameters.min",
                "0",
                "-parameters.max",
                &max.to_string(),
                "-parameters.nbbin",
                &levels.to_string(),
            ])
            .args(["-out", out.to_str().unwrap(), "float"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "OTB failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let q = quantise(img.view(), 0.0, max, levels, Definitions::Otb);
        let ours = glcm_features(
            q.view(),
            &GlcmParams {
                radius: 2,
                offset: (dx, dy),
                levels,
                definitions: Definitions::Otb,
            },
        );
        let theirs = Dataset::open(&out).unwrap();
        assert_eq!(theirs.raster_count(), 8);
        for f in 0..8 {
            let t = theirs
                .rasterband(f + 1)
                .unwrap()
                .read_as::<f32>((0, 0), (w, h), (w, h), None)
                .unwrap();
            let mut worst = (0.0f64, 0usize);
            for (i, &tv) in t.data().iter().enumerate() {
                let ov = ours[[f, i / w, i % w]];
                // Tolerance: float32 rounding of both tools, relative to the value's magnitude.
                let err = (ov as f64 - tv as f64).abs() / (1.0 + (tv as f64).abs());
                if err > worst.0 {
                    worst = (err, i);
                }
            }
            let (r, c) = (worst.1 / w, worst.1 % w);
            assert!(
                worst.0 <= 1e-4,
                "{} (levels {levels}, offset ({dx},{dy})): relative error {:.3e} at row {r} col {c}: ours {} OTB {}",
                FEATURE_NAMES[f],
                worst.0,
                ours[[f, r, c]],
                t.data()[worst.1]
            );
            eprintln!(
                "{:>22} levels {levels:>2} offset ({dx:>2},{dy}): max relative error {:.2e}",
                FEATURE_NAMES[f], worst.0
            );
        }
    }
}
