//! The catalogue of bad catalogue input: each case starts from two good synthetic scenes
//! given as STAC Items (per-band COGs, a mask asset, Sentinel-1 Items), breaks one thing,
//! and runs `geofuse run` as a user would. Each exits 2 with a message naming the Item id,
//! the asset key and the fix; a bad Item fails its scene alone (the other scene's product is
//! written), a bad pipeline is refused before any training, and nothing partial is left.

mod common;

use std::path::{Path, PathBuf};

use common::http::FileServer;
use common::stac::*;
use common::*;
use serde_json::{json, Value};

/// Runs the pipeline with `items` written as the ItemCollection; (exit code, stderr, out).
fn run_with(dir: &Path, pipe: &Path, items: &[Value]) -> (Option<i32>, String, PathBuf) {
    write_items(&dir.join("served/items.json"), items.to_vec());
    let out = dir.join("out");
    let (code, err) = cli_run_short_network(pipe, &out);
    (code, err, out)
}

/// The second scene fails alone, naming `needles`; the first scene's product is written and
/// nothing partial is left.
fn second_fails_alone(dir: &Path, pipe: &Path, items: &[Value], needles: &[&str]) {
    let (code, err, out) = run_with(dir, pipe, items);
    assert_eq!(code, Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    assert!(out.join("T0_2022-05-01/handcrafted.tif").exists(), "{err}");
    assert!(!out.join("T1_2022-05-11/handcrafted.tif").exists());
    let failed = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(failed.contains("T1_2022-05-11"), "{failed}");
    assert!(!files_under(&out)
        .iter()
        .any(|f| f.to_string_lossy().contains(".partial")));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn good_items_run_and_every_bad_item_fails_its_scene_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pipe, items) = synthetic_catalogue(d, false);
    let (code, err, out) = run_with(d, &pipe, &items);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.join("T1_2022-05-11/handcrafted.tif").exists());
    std::fs::remove_dir_all(&out).unwrap();

    // An Item without a requested band.
    let mut bad = items.clone();
    bad[2]["assets"].as_object_mut().unwrap().remove("B11");
    second_fails_alone(d, &pipe, &bad, &["S2_1", "B11", "catalogue.bands"]);
    // A band asset that is not a raster.
    let mut bad = items.clone();
    bad[2]["assets"]["B04"]["type"] = json!("application/json");
    second_fails_alone(d, &pipe, &bad, &["S2_1", "`B04`", "not a raster"]);
    // A band asset whose href is missing (a 404 for a remote one).
    let mut bad = items.clone();
    bad[2]["assets"]["B08"]["href"] = json!("S2_1/gone.tif");
    second_fails_alone(d, &pipe, &bad, &["S2_1", "`B08`", "gone.tif", "reachable"]);
    // A remote asset the server answers 404 for.
    let server = FileServer::start(&d.join("served"));
    let mut bad = items.clone();
    bad[2]["assets"]["B08"]["href"] = json!(format!("{}/S2_1/gone.tif", server.url()));
    second_fails_alone(
        d,
        &pipe,
        &bad,
        &["S2_1", "`B08`", "/S2_1/gone.tif", "GDAL_HTTP_MAX_RETRY"],
    );
    // A mask asset whose declared classes lack an invalid class.
    let mut bad = items.clone();
    bad[2]["assets"]["SCL"]["classification:classes"] = json!([{"value": 0}, {"value": 1}]);
    second_fails_alone(d, &pipe, &bad, &["S2_1", "`SCL`", "class 2"]);
    // No SAR Item in reach.
    let mut bad = items.clone();
    bad[3]["properties"]["datetime"] = json!("2022-06-30T17:00:00Z");
    second_fails_alone(d, &pipe, &bad, &["max_days", "2022-05-11"]);
}

#[test]
fn items_of_two_crs_in_one_scene_need_a_declared_grid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pipe, mut items) = synthetic_catalogue(d, false);
    // A second tile of the second scene's day, on another UTM zone.
    let mut other = items[2].clone();
    other["id"] = json!("S2_1_east");
    let east = d.join("served/S2_1_east");
    std::fs::create_dir_all(&east).unwrap();
    for (name, ..) in S2_BANDS {
        let st = std::process::Command::new("gdalwarp")
            .args(["-q", "-t_srs", "EPSG:32632", "-of", "COG"])
            .arg(d.join(format!("served/S2_1/{name}.tif")))
            .arg(east.join(format!("{name}.tif")))
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::fs::copy(d.join("served/S2_1/SCL.tif"), east.join("SCL.tif")).unwrap();
    let text = serde_json::to_string(&other)
        .unwrap()
        .replace("\"S2_1/", "\"S2_1_east/");
    items.insert(3, serde_json::from_str(&text).unwrap());
    second_fails_alone(
        d,
        &pipe,
        &items,
        &["S2_1, S2_1_east", "different CRSs", "grid = {"],
    );
    // With the grid declared (the synthetic scenes' own), both tiles are warped onto it.
    let grid =
        "grid = { epsg = 32631, bounds = [600000, 5699040, 600960, 5700000], resolution = 10 }\n";
    common::edit(
        &pipe,
        "sar = { max_days = 3 }\n",
        &format!("sar = {{ max_days = 3 }}\n{grid}"),
    );
    let (code, err, out) = run_with(d, &pipe, &items);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        band_values(&out.join("T1_2022-05-11/handcrafted.tif"), 1).len(),
        96 * 96
    );
}

#[test]
fn bad_collections_and_names_are_refused_before_any_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pipe, items) = synthetic_catalogue(d, false);
    // A malformed ItemCollection.
    std::fs::write(
        d.join("served/items.json"),
        "{\"type\": \"FeatureCollection\", \"features\": [",
    )
    .unwrap();
    let (code, err) = cli_run(&pipe, &d.join("out"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("items.json") && err.contains("not valid JSON"),
        "{err}"
    );
    assert!(
        !d.join("out").exists(),
        "nothing is written for a pipeline refused when read"
    );
    // An Item id too long for a folder name.
    let mut bad = items.clone();
    bad[0]["id"] = json!("S2".repeat(150));
    write_items(&d.join("served/items.json"), bad);
    common::edit(&pipe, "name = \"{tile}_{date}\"\n", "");
    let (code, err) = cli_run(&pipe, &d.join("out"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot be a folder name") && err.contains("catalogue.name"),
        "{err}"
    );
    assert!(!d.join("out").exists());
    // An Item id with a character a folder name cannot carry.
    let mut bad = items.clone();
    bad[0]["id"] = json!("S2/0");
    write_items(&d.join("served/items.json"), bad);
    let (code, err) = cli_run(&pipe, &d.join("out"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`S2/0`") && err.contains("plain folder name"),
        "{err}"
    );
    assert!(!d.join("out").exists());
    // An unreachable ItemCollection href.
    let server = FileServer::start(&d.join("served"));
    let url = format!("{}/missing.json", server.url());
    common::edit(
        &pipe,
        "items = \"served/items.json\"",
        &format!("items = \"{url}\""),
    );
    let (code, err) = cli_run(&pipe, &d.join("out"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing.json") && err.contains("404"), "{err}");
}
