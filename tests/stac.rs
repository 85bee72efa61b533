//! Scenes straight from the catalogue, end to end over HTTP on 127.0.0.1: the real Flanders
//! chips (../shared/data) split into single-band COGs at their native 10 m and 20 m with the
//! SCL at 20 m, wrapped in STAC Items (one chip with processing-baseline 04.00 offsets, one
//! without) and Sentinel-1 Items, served by a range-answering file server started here.
//! `geofuse run` on the ItemCollection gives the products of the run on the pre-stacked files.
//! Skips with a message when ../shared/data is absent.

mod common;

use std::path::{Path, PathBuf};

use common::http::FileServer;
use common::stac::*;
use common::*;
use serde_json::json;

const CHIPS: [&str; 2] = ["00002806639B424A", "0000280849BAC91C"];

/// The Items of both chips under `root` (served as `url`): S2 per band, S1 on the optical
/// grid in dB (`s1_epsg` None) or reprojected to that UTM zone in linear power.
fn flanders_items(
    data: &Path,
    root: &Path,
    url: &str,
    s1_epsg: Option<u32>,
) -> Vec<serde_json::Value> {
    let mut items = Vec::new();
    for (ci, chip) in CHIPS.iter().enumerate() {
        let cdir = data.join(chip);
        for (s2, s1) in flanders_dates(&cdir, chip) {
            let id = format!("S2_{chip}_{s2}");
            let split = OpticalSplit {
                stack: &cdir.join(format!("{chip}_S2L2A_{s2}.tif")),
                mask: Some(&cdir.join(format!("{chip}_S2SCL_{s2}.tif"))),
                common_keys: ci == 0,
                dn_shift: if ci == 1 { 1000 } else { 0 },
                native_20m: true,
            };
            let assets = split_optical(&split, &root.join(&id), &format!("{url}/{id}"));
            let baseline = if ci == 1 { "04.00" } else { "02.06" };
            items.push(item(&id, "sentinel-2-l2a", &format!("{s2}T10:50:00Z"),
                json!({"s2:mgrs_tile": chip, "s2:processing_baseline": baseline, "eo:cloud_cover": 0.0}), assets));
            let sid = format!("S1_{chip}_{s1}");
            let sassets = split_sar(
                &cdir.join(format!("{chip}_S1GRDasc_{s1}.tif")),
                &root.join(&sid),
                &format!("{url}/{sid}"),
                s1_epsg,
            );
            items.push(item(
                &sid,
                "sentinel-1-rtc",
                &format!("{s1}T17:30:00Z"),
                json!({"sat:orbit_state": "ascending"}),
                sassets,
            ));
        }
    }
    items
}

/// The repo's Flanders pipeline with its `[[scene_sets]]` replaced by a `[[catalogue]]`.
fn catalogue_pipeline(dir: &Path, items_href: &str, labels: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/flanders.toml"),
    )
    .unwrap();
    let (a, b) = (
        text.find("[[scene_sets]]").unwrap(),
        text.find("[tiling]").unwrap(),
    );
    let cat = format!(
        "[[catalogue]]\nitems = \"{items_href}\"\nbands = [\"B02\", \"B03\", \"B04\", \"B05\", \"B06\", \"B07\", \"B08\", \"B8A\", \"B11\", \"B12\"]\nname = \"{{tile}}_{{date}}\"\nlabels = \"{}/{{tile}}/{{tile}}_label_LC.tif\"\nmask = {{ asset = \"scl\", invalid = [0, 1, 3, 8, 9, 10] }}\nsar = {{ max_days = 6 }}\n{extra}\n",
        labels.display()
    );
    let p = dir.join("catalogue.toml");
    std::fs::write(&p, format!("{}{cat}{}", &text[..a], &text[b..])).unwrap();
    p
}

/// Every band of every product of `a` equals `b`'s; the share of equal class pixels.
fn class_agreement(a: &Path, b: &Path, scenes: &[String], all_bands: bool) -> f64 {
    let (mut same, mut n) = (0usize, 0usize);
    for s in scenes {
        let (pa, pb) = (
            a.join(s).join("handcrafted.tif"),
            b.join(s).join("handcrafted.tif"),
        );
        let (ca, cb) = (band_values(&pa, 1), band_values(&pb, 1));
        same += ca.iter().zip(&cb).filter(|(x, y)| x == y).count();
        n += ca.len();
        if all_bands {
            for band in 2..=6 {
                assert_eq!(
                    band_values(&pa, band),
                    band_values(&pb, band),
                    "{s} band {band}"
                );
            }
        }
    }
    same as f64 / n as f64
}

fn scene_names(data: &Path) -> Vec<String> {
    CHIPS
        .iter()
        .flat_map(|c| {
            flanders_dates(&data.join(c), c)
                .into_iter()
                .map(move |(s2, _)| format!("{c}_{s2}"))
        })
        .collect()
}

fn served_bytes(root: &Path) -> u64 {
    files_under(root)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "tif"))
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

/// Serves both chips' Items from `dir/served` and runs the catalogue pipeline and the repo's
/// pre-stacked Flanders pipeline: (server, catalogue output, pre-stacked output).
fn run_both(data: &Path, dir: &Path, s1_epsg: Option<u32>) -> (FileServer, PathBuf, PathBuf) {
    let root = dir.join("served");
    std::fs::create_dir_all(&root).unwrap();
    let server = FileServer::start(&root);
    let items = flanders_items(data, &root, &server.url(), s1_epsg);
    write_items(&root.join("items.json"), items);
    let pipe = catalogue_pipeline(dir, &format!("{}/items.json", server.url()), data, "");
    let out = dir.join("out");
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(0), "{err}");
    let reference = dir.join("reference");
    let flanders = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/flanders.toml");
    let (code, err) = cli_run(&flanders, &reference);
    assert_eq!(code, Some(0), "{err}");
    (server, out, reference)
}

#[test]
fn items_over_http_give_the_products_of_the_pre_stacked_files() {
    let Some(data) = shared_data("worldcereal_flanders") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served");
    let (server, out, reference) = run_both(&data, dir.path(), None);
    let scenes = scene_names(&data);
    // Same grid, nearest 20 m -> 10 m, the 04.00 offset folded back into whole DN: every
    // band of every product is identical.
    assert_eq!(class_agreement(&out, &reference, &scenes, true), 1.0);
    eprintln!(
        "HTTP: {} requests, {} bytes sent for {} bytes of served rasters (four scenes read for training and mapping)",
        server.requests(),
        server.bytes_sent(),
        served_bytes(&root)
    );
    // The product's Item points back at its sources and says which offset it applied.
    let chip_b = &scenes[2];
    let stac: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(chip_b).join("handcrafted.stac.json")).unwrap(),
    )
    .unwrap();
    let p = &stac["properties"];
    assert_eq!(p["geofuse:source_items"][0], format!("S2_{chip_b}"));
    assert_eq!(p["geofuse:processing_baseline"][0], "04.00");
    assert_eq!(p["geofuse:reflectance"]["offset"], -0.1);
    assert_eq!(p["geofuse:reflectance"]["dn_shift"], -1000.0);
    assert_eq!(p["geofuse:reflectance"]["source"], "raster:bands");
    assert_eq!(p["datetime"], format!("{}T10:50:00Z", &chip_b[17..]));
    let links: Vec<&str> = stac["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rel"] == "derived_from")
        .map(|l| l["title"].as_str().unwrap())
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links[1].starts_with("S1_0000280849BAC91C_"));
    let a = &scenes[0];
    let stac: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(a).join("handcrafted.stac.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stac["properties"]["geofuse:reflectance"]["offset"], 0.0);
    assert_eq!(
        stac["properties"]["geofuse:reflectance"]["source"],
        "s2:processing_baseline 02.06"
    );
}

#[test]
fn the_offset_of_baseline_04_gives_the_reflectances_of_unshifted_data() {
    let Some(data) = shared_data("worldcereal_flanders") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served");
    let chip = CHIPS[1];
    let cdir = data.join(chip);
    let (s2, s1) = flanders_dates(&cdir, chip).remove(0);
    let stack = cdir.join(format!("{chip}_S2L2A_{s2}.tif"));
    let mut items = Vec::new();
    // Two collections, so that each optical Item is a scene of its own.
    for (shift, id) in [(0, "plain"), (1000, "shifted")] {
        let split = OpticalSplit {
            stack: &stack,
            mask: None,
            common_keys: false,
            dn_shift: shift,
            native_20m: true,
        };
        let assets = split_optical(&split, &root.join(id), &root.join(id).to_string_lossy());
        let baseline = if shift > 0 { "04.00" } else { "02.06" };
        items.push(item(
            id,
            id,
            &format!("{s2}T10:50:00Z"),
            json!({"s2:processing_baseline": baseline, "s2:mgrs_tile": id}),
            assets,
        ));
    }
    let sar = cdir.join(format!("{chip}_S1GRDasc_{s1}.tif"));
    let sassets = split_sar(
        &sar,
        &root.join("s1"),
        &root.join("s1").to_string_lossy(),
        None,
    );
    items.push(item(
        "s1",
        "sentinel-1-rtc",
        &format!("{s1}T17:30:00Z"),
        json!({}),
        sassets,
    ));
    write_items(&root.join("items.json"), items);
    let p = catalogue_pipeline(
        dir.path(),
        &root.join("items.json").to_string_lossy(),
        &data,
        "",
    );
    let pipeline = geofuse::config::Pipeline::load(&p).unwrap();
    let refl = |i: usize| -> Vec<f64> {
        let s = &pipeline.scenes[i];
        let c = s.catalogue.as_ref().unwrap();
        let st = geofuse::io::stack::build_stacks(c, &dir.path().join(format!("w{i}"))).unwrap();
        (1..=10)
            .flat_map(|b| read_band(&st.optical, b).0)
            .map(|dn| {
                if dn.is_nan() || dn == 0.0 {
                    f64::NAN
                } else {
                    (dn as f32 * s.optical.scale as f32 + s.optical.offset as f32) as f64
                }
            })
            .collect()
    };
    let (a, b) = (refl(0), refl(1));
    assert_eq!(
        pipeline.scenes[1].catalogue.as_ref().unwrap().dn_shift,
        -1000.0
    );
    let valid = a.iter().filter(|x| !x.is_nan()).count();
    assert!(valid > 30_000, "{valid}");
    for (x, y) in a.iter().zip(&b) {
        assert!(x == y || (x.is_nan() && y.is_nan()), "{x} vs {y}");
    }
    // And the 10 m stack is the pre-stacked file, band for band.
    for band in 1..=10 {
        let (v, ..) = read_band(&stack, band);
        let (s, ..) = read_band(&dir.path().join("w0/optical.vrt"), band);
        assert_eq!(v, s, "band {band}");
    }
}

#[test]
fn sentinel1_on_another_utm_zone_is_warped_onto_the_optical_grid() {
    let Some(data) = shared_data("worldcereal_flanders") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_server, out, reference) = run_both(&data, dir.path(), Some(32632));
    let agree = class_agreement(&out, &reference, &scene_names(&data), false);
    // The SAR went 10 m -> 20 m in EPSG:32632 (bilinear) and back (bilinear, in linear
    // power): speckle is smoothed and pixels shift by sub-pixel amounts, so classes differ
    // where the SAR decides them.
    eprintln!(
        "class agreement with the pre-stacked run, S1 from EPSG:32632 at 20 m: {:.1} %",
        100.0 * agree
    );
    assert!(agree > 0.75, "{agree}");
    // `inspect` on the catalogue pipeline states the SAR's grid and the warp.
    let o = geofuse(&[
        "inspect",
        dir.path().join("catalogue.toml").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("EPSG:32632") && text.contains("warped onto the optical grid"),
        "{text}"
    );
}

#[test]
fn a_server_stopped_mid_run_fails_its_scene_alone_and_the_rerun_finishes_identical() {
    let Some(data) = shared_data("worldcereal_flanders") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    let mut server = FileServer::start(&root);
    let items = flanders_items(&data, &root, &server.url(), None);
    write_items(&root.join("items.json"), items);
    let scenes = scene_names(&data);
    // The first chip trains; the second chip's scenes are only mapped, after it.
    let extra = format!(
        "\n[training]\nscenes = [\"{}\", \"{}\"]\n",
        scenes[0], scenes[1]
    );
    let pipe = catalogue_pipeline(
        dir.path(),
        &format!("{}/items.json", server.url()),
        &data,
        &extra,
    );
    let whole = dir.path().join("whole");
    assert_eq!(cli_run(&pipe, &whole).0, Some(0));
    // The server goes down when the last scene's first asset is asked for.
    let last = format!("S2_{}", scenes[3]);
    server.stop_when_requested(&last);
    let out = dir.path().join("out");
    let (code, err) = cli_run_short_network(&pipe, &out);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&scenes[3]) && err.contains(&last), "{err}");
    for s in &scenes[..3] {
        assert!(out.join(s).join("handcrafted.tif").exists(), "{s}: {err}");
    }
    assert!(!out.join(&scenes[3]).join("handcrafted.tif").exists());
    assert!(!files_under(&out)
        .iter()
        .any(|f| f.to_string_lossy().contains(".partial")));
    server.restart();
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(class_agreement(&out, &whole, &scenes, true), 1.0);
}
