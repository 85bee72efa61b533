//! Several Items, one scene: two adjacent tiles of one day are mosaicked onto one grid, equal
//! to the scene they were cut from; a declared grid maps exactly its window.

mod common;

use std::path::Path;
use std::process::Command;

use common::stac::*;
use common::*;
use serde_json::json;

/// Cuts `src` to the pixel window `(x, y, w, h)` at `dst` (gdal_translate -srcwin).
fn cut(src: &Path, dst: &Path, win: [usize; 4]) {
    let w: Vec<String> = win.iter().map(|v| v.to_string()).collect();
    let st = Command::new("gdal_translate")
        .args(["-q", "-srcwin", &w[0], &w[1], &w[2], &w[3]])
        .arg(src)
        .arg(dst)
        .status()
        .expect("gdal_translate (Debian gdal-bin; scripts/setup.sh installs it)");
    assert!(st.success());
}

/// A west and an east tile of one synthetic scene as two Items of one day, its SAR as one
/// Item; the pipeline over them (`grid` appended to the [[catalogue]] table when given).
fn two_tiles(d: &Path, grid: &str) -> std::path::PathBuf {
    let (pipe, items) = synthetic_catalogue(d, false);
    let scene = d.join("synth0");
    let mut out = Vec::new();
    for (name, x) in [("west", 0), ("east", 48)] {
        let (stack, mask) = (
            d.join(format!("{name}.tif")),
            d.join(format!("{name}_mask.tif")),
        );
        cut(&scene.join("optical.tif"), &stack, [x, 0, 48, 96]);
        cut(&scene.join("cloud_mask.tif"), &mask, [x, 0, 48, 96]);
        let split = OpticalSplit {
            stack: &stack,
            mask: Some(&mask),
            common_keys: false,
            dn_shift: 0,
            native_20m: false,
        };
        let id = format!("S2_{name}");
        let assets = split_optical(&split, &d.join("served").join(&id), &id);
        out.push(item(
            &id,
            "sentinel-2-l2a",
            "2022-05-01T10:00:00Z",
            json!({}),
            assets,
        ));
    }
    out.push(items[1].clone());
    write_items(&d.join("served/items.json"), out);
    let text = std::fs::read_to_string(&pipe)
        .unwrap()
        .replace("name = \"{tile}_{date}\"\n", grid)
        .replace(
            "labels = \"labels_{tile}.tif\"",
            "labels = \"labels_T0.tif\"",
        );
    let text = text.replace("[training]\nscenes = [\"T0_2022-05-01\"]\n", "");
    std::fs::write(&pipe, text).unwrap();
    pipe
}

#[test]
fn adjacent_items_of_one_day_are_mosaicked_into_the_scene_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipe = two_tiles(d, "");
    let p = geofuse::config::Pipeline::load(&pipe).unwrap();
    assert_eq!(p.scenes.len(), 1);
    let s = &p.scenes[0];
    assert_eq!(s.name, "sentinel-2-l2a_2022-05-01");
    let c = s.catalogue.as_ref().unwrap();
    assert_eq!(c.optical_items.len(), 2);
    let st = geofuse::io::stack::build_stacks(c, &d.join("work")).unwrap();
    for b in 1..=10 {
        let (whole, size, gt, ..) = read_band(&d.join("synth0/optical.tif"), b);
        let (mosaic, msize, mgt, ..) = read_band(&st.optical, b);
        assert_eq!((size, gt), (msize, mgt));
        assert_eq!(whole, mosaic, "band {b}");
    }
    let (m, ..) = read_band(&d.join("synth0/cloud_mask.tif"), 1);
    assert_eq!(read_band(st.mask.as_ref().unwrap(), 1).0, m);
    let (code, err) = cli_run(&pipe, &d.join("out"));
    assert_eq!(code, Some(0), "{err}");
    let prod = d.join("out/sentinel-2-l2a_2022-05-01/handcrafted.tif");
    assert_eq!(band_values(&prod, 1).len(), 96 * 96);
}

#[test]
fn a_declared_grid_maps_exactly_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Columns 20..70 and rows 30..80 of the scene (origin 600000, 5700000; 10 m pixels).
    let grid =
        "grid = { epsg = 32631, bounds = [600200, 5699200, 600700, 5699700], resolution = 10 }\n";
    let pipe = two_tiles(d, grid);
    let p = geofuse::config::Pipeline::load(&pipe).unwrap();
    let st =
        geofuse::io::stack::build_stacks(p.scenes[0].catalogue.as_ref().unwrap(), &d.join("work"))
            .unwrap();
    for b in [1, 7, 10] {
        let (whole, ..) = read_band(&d.join("synth0/optical.tif"), b);
        let (win, size, gt, ..) = read_band(&st.optical, b);
        assert_eq!(size, (50, 50));
        assert_eq!(gt, [600200.0, 10.0, 0.0, 5699700.0, 0.0, -10.0]);
        let expected: Vec<f64> = (30..80)
            .flat_map(|r| (20..70).map(move |c| (r, c)))
            .map(|(r, c)| whole[r * 96 + c])
            .collect();
        assert_eq!(win, expected, "band {b}");
    }
}
