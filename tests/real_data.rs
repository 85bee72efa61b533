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
