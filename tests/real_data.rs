//! `geofuse run` on the real WorldCereal Flanders chips (../shared/data); skips with a
//! message when the folder is absent.

mod common;

use common::*;
use geofuse::pipeline::{run, RunOptions};

#[test]
fn flanders_pipeline_produces_products_and_metrics() {
    if shared_data("worldcereal_flanders").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pipe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/flanders.toml");
    let s = run(
        &pipe,
        &RunOptions {
            out: Some(dir.path().to_path_buf()),
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.products.len(), 4);
    // The acquisition time comes from the S2 file's `date` metadata.
    let stac: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join("00002806639B424A_2018-04-19/handcrafted.stac.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(stac["properties"]["datetime"], "2018-04-19T11:01:27Z");
    assert_eq!(
        stac["properties"]["geofuse:datetime_source"],
        "optical metadata"
    );
    for p in &s.products {
        assert!(p.product.exists());
        let oa = p.metrics["oa"].as_f64().unwrap();
        let miou = p.metrics["miou"].as_f64().unwrap();
        eprintln!("{}: OA {oa:.3} mIoU {miou:.3}", p.scene);
        // Majority-class guessing gives about 0.43 (chip A) and 0.57 (chip B).
        assert!(oa > 0.65, "{}: OA {oa}", p.scene);
        let classes = band_values(&p.product, 1);
        assert!(classes
            .iter()
            .all(|&c| [11.0, 12.0, 13.0, 60.0, 99.0, 255.0].contains(&c)));
    }
}

#[test]
fn bigearthnet_patches_are_read_with_their_own_grids() {
    let Some(root) = shared_data("bigearthnet_mm_example") else {
        return;
    };
    // Every patch: S2 and S1 on identical grids, any UTM zone; inspect must agree.
    let mut n = 0;
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        if !e.path().is_dir() {
            continue;
        }
        let files: Vec<_> = std::fs::read_dir(e.path())
            .unwrap()
            .flatten()
            .map(|f| f.path())
            .collect();
        let s2 = files
            .iter()
            .find(|p| p.to_string_lossy().ends_with("S2L2A_10m_stack.tif"))
            .unwrap();
        let s1 = files
            .iter()
            .find(|p| p.to_string_lossy().ends_with("S1GRD_VV_VH.tif"))
            .unwrap();
        let a = geofuse::io::reader::raster_info(s2).unwrap();
        let b = geofuse::io::reader::raster_info(s1).unwrap();
        assert!(a.grid.epsg.is_some(), "{}", s2.display());
        assert_eq!(a.grid.epsg, b.grid.epsg);
        assert!(
            a.grid.transform_matches(&b.grid, 1e-6),
            "{} vs {}",
            s2.display(),
            s1.display()
        );
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn flanders_reference_polygons_give_the_same_training_pixels_as_the_label_rasters() {
    let Some(root) = shared_data("worldcereal_flanders") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pipe_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/flanders.toml");
    let p = geofuse::pipeline::load_pipeline(&pipe_path, Some(dir.path())).unwrap();
    for chip in ["00002806639B424A", "0000280849BAC91C"] {
        // gdal_polygonize the label raster into a GeoPackage, as a user would from QGIS.
        let labels = root.join(chip).join(format!("{chip}_label_LC.tif"));
        let gpkg = dir.path().join(format!("{chip}.gpkg"));
        let o = std::process::Command::new("gdal_polygonize.py")
            .args([labels.to_str().unwrap(), "-q", "-f", "GPKG"])
            .args([gpkg.to_str().unwrap(), "lc", "code"])
            .output()
            .expect("gdal_polygonize.py (python3-gdal; scripts/setup.sh installs it)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut s = p
            .scenes
            .iter()
            .find(|s| s.name.starts_with(chip))
            .unwrap()
            .clone();
        s.labels = None;
        s.reference = Some(geofuse::config::ReferenceDef {
            path: gpkg,
            class_field: "code".into(),
            filter: None,
            layer: Some("lc".into()),
        });
        let src = geofuse::scene::prepare_scene(&p, &s, &dir.path().join(chip)).unwrap();
        let got = band_values(src.labels.as_ref().unwrap(), 1);
        let want: Vec<f64> = band_values(&labels, 1)
            .into_iter()
            .map(|v| if v == 0.0 { 255.0 } else { v })
            .collect();
        assert_eq!(got, want, "{chip}");
        eprintln!(
            "{chip}: {} labelled pixels from polygons = raster",
            got.iter().filter(|&&v| v != 255.0).count()
        );
    }
}
