//! A season from STAC Items (`[time]` with `[[catalogue]]`): a synthetic season's dated
//! rasters split into per-band Items (half the dates with processing-baseline 04.00 offsets,
//! one SAR date on another UTM zone in linear power) give the regularised inputs and the
//! products of the same season read from the dated rasters; the product's STAC Item spans the
//! season and points at every Item; Items outside the season are left out; a bad Item fails
//! its scene alone with exit 2. The real Flanders chip A's time series as per-band Items reads
//! what its dated rasters read, bit for bit (skipped with a message without ../shared/data).

mod common;

use std::path::{Path, PathBuf};

use common::stac::*;
use common::*;
use geofuse::config::Pipeline;
use geofuse::scene::plan::scene_features;
use geofuse::scene::prepare_scene;
use serde_json::{json, Value};

/// The season's dates as Items under `dir/served`: optical dates alternate between plain DN
/// and baseline 04.00 (+1000 DN, offset -0.1), the second SAR date is reprojected to UTM
/// 32N in linear power; plus one optical Item dated outside the season.
fn season_items(season: &Path, dir: &Path) -> Vec<Value> {
    let served = dir.join("served");
    let mut items = Vec::new();
    let optical = dated(&season.join("s2"), "S2_");
    for (k, (date, stack)) in optical.iter().enumerate() {
        let mask = season.join("s2").join(format!("MASK_{date}.tif"));
        let shift = if k % 2 == 1 { 1000 } else { 0 };
        let split = OpticalSplit {
            stack,
            mask: Some(&mask),
            common_keys: false,
            dn_shift: shift,
            native_20m: false,
        };
        let id = format!("S2_{date}");
        let assets = split_optical(&split, &served.join(&id), &id);
        let mut props = json!({"s2:mgrs_tile": "31UES"});
        if shift != 0 {
            props["s2:processing_baseline"] = json!("04.00");
        }
        items.push(item(
            &id,
            "sentinel-2-l2a",
            &format!("{date}T10:30:00Z"),
            props,
            assets,
        ));
    }
    let sar = dated(&season.join("s1"), "S1_");
    for (k, (date, stack)) in sar.iter().enumerate() {
        let id = format!("S1_{date}");
        let epsg = (k == 1).then_some(32632);
        let assets = split_sar(stack, &served.join(&id), &id, epsg);
        items.push(item(
            &id,
            "sentinel-1-rtc",
            &format!("{date}T17:40:00Z"),
            json!({"sat:orbit_state": "ascending"}),
            assets,
        ));
    }
    // Outside the season (March to October): left out.
    let (d0, s0) = &optical[0];
    let late = format!("{}-11-20", &d0[..4]);
    let split = OpticalSplit {
        stack: s0,
        mask: None,
        common_keys: false,
        dn_shift: 0,
        native_20m: false,
    };
    let assets = split_optical(&split, &served.join("S2_late"), "S2_late");
    items.push(item(
        "S2_late",
        "sentinel-2-l2a",
        &format!("{late}T10:30:00Z"),
        json!({"s2:mgrs_tile": "31UES"}),
        assets,
    ));
    items
}

/// The synthetic season's pipeline with its `[[scenes]]` replaced by a `[[catalogue]]`.
fn catalogue_pipeline(pipe: &Path, season: &Path, items: &str) -> PathBuf {
    let text = std::fs::read_to_string(pipe).unwrap();
    let (a, b) = (
        text.find("[[scenes]]").unwrap(),
        text.find("[tiling]").unwrap(),
    );
    let cat = format!(
        "[[catalogue]]\nitems = \"{items}\"\nbands = [\"B02\", \"B03\", \"B04\", \"B05\", \"B06\", \"B07\", \"B08\", \"B8A\", \"B11\", \"B12\"]\nlabels = \"{}\"\nmask = {{ asset = \"SCL\", invalid = [1, 2] }}\nsar = {{ }}\n\n",
        season.join("labels.tif").display()
    );
    let p = season.join("catalogue.toml");
    std::fs::write(&p, format!("{}{cat}{}", &text[..a], &text[b..])).unwrap();
    p
}

/// The regularised features of the two pipelines' one scene: optical ones bit for bit (the
/// 04.00 dates' DN shift undone in their VRTs, each date's own mask), SAR ones within the
/// bilinear round trip of the one date served on UTM 32N in linear power (read as the unit its
/// Item declares, then warped back).
fn same_regularised_inputs(files: &Path, catalogue: &Path, tmp: &Path) {
    let features = |pipe: &Path, work: &str| {
        let p = Pipeline::load(pipe).unwrap();
        let src = prepare_scene(&p, &p.scenes[0], &tmp.join(work)).unwrap();
        scene_features(&p, &src, 1024).unwrap()
    };
    let (names, a) = features(files, "work-files");
    let (names_b, b) = features(catalogue, "work-catalogue");
    assert_eq!(names, names_b);
    let mut worst_sar = (String::new(), 0f32);
    for (i, n) in names.iter().enumerate() {
        let (x, y) = (
            a.index_axis(ndarray::Axis(0), i),
            b.index_axis(ndarray::Axis(0), i),
        );
        if ["vv", "vh", "obs_sar"].iter().any(|p| n.starts_with(p)) {
            // Mean absolute difference (the date of the maximum, in days, is left out: a
            // small change can move it a step).
            let d = x
                .iter()
                .zip(y.iter())
                .map(|(p, q)| (p - q).abs())
                .sum::<f32>();
            let d = d / x.len() as f32;
            if !n.ends_with("_tmax") && d > worst_sar.1 {
                worst_sar = (n.clone(), d);
            }
        } else {
            let same = x
                .iter()
                .zip(y.iter())
                .all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{n} differs");
        }
    }
    eprintln!("largest mean SAR feature difference: {worst_sar:?}");
    // The round trip of the one reprojected date moves a step's mean by 0.85 dB; reading its
    // linear power as dB (one unit for the whole season) moves it by 17.6 dB.
    assert!(worst_sar.1 < 2.0, "{worst_sar:?}");
}

fn scene_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("handcrafted.tif").exists())
        .unwrap_or_else(|| panic!("no product under {}", out.display()))
}

#[test]
fn a_season_of_stac_items_gives_the_products_of_its_dated_rasters() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("season");
    let pipe = season(&sdir, 96, 6, 0.3);
    let items = season_items(&sdir, tmp.path());
    let n_items = items.len();
    write_items(&tmp.path().join("served/items.json"), items);
    let cat = catalogue_pipeline(
        &pipe,
        &sdir,
        &tmp.path().join("served/items.json").display().to_string(),
    );

    // The dated rasters are all on the optical grid; the catalogue's UTM 32N SAR date is
    // warped back onto it.
    let files_out = tmp.path().join("files");
    let (code, err) = cli_run(&pipe, &files_out);
    assert_eq!(code, Some(0), "{err}");
    let cat_out = tmp.path().join("catalogue");
    let (code, err) = cli_run(&cat, &cat_out);
    assert_eq!(code, Some(0), "{err}");

    same_regularised_inputs(&pipe, &cat, tmp.path());
    let (a, b) = (scene_dir(&files_out), scene_dir(&cat_out));
    assert_eq!(
        b.file_name().unwrap(),
        "31UES_2021",
        "the default name is {{tile}}_{{year}}"
    );
    for m in ["handcrafted", "boosted"] {
        let (pa, pb) = (a.join(format!("{m}.tif")), b.join(format!("{m}.tif")));
        let (ca, cb) = (band_values(&pa, 1), band_values(&pb, 1));
        let same = ca.iter().zip(&cb).filter(|(x, y)| x == y).count() as f64 / ca.len() as f64;
        // One SAR date of six went through a UTM 32N round trip (bilinear twice): a few
        // pixels may change class, the rest are the same.
        eprintln!("{m}: {same:.4} of the pixels in the same class");
        assert!(same > 0.97, "{m}: {same}");
        let obs = band_index(&pa, "obs_optical");
        assert_eq!(
            band_values(&pa, obs),
            band_values(&pb, obs),
            "{m}: optical observations"
        );
    }

    let stac: Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("handcrafted.stac.json")).unwrap())
            .unwrap();
    let files_stac: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("handcrafted.stac.json")).unwrap())
            .unwrap();
    let p = &stac["properties"];
    for k in [
        "start_datetime",
        "end_datetime",
        "geofuse:optical_dates",
        "geofuse:sar_dates",
    ] {
        assert_eq!(p[k], files_stac["properties"][k], "{k}");
    }
    let links = stac["links"].as_array().unwrap();
    assert_eq!(
        links.len(),
        n_items - 1,
        "every Item but the one outside the season: {links:?}"
    );
    let shifts = p["geofuse:reflectance"]["source"].as_str().unwrap();
    assert!(
        shifts.contains("DN shift per date") && shifts.contains("-1000"),
        "{shifts}"
    );
    assert!(!p["geofuse:source_items"].to_string().contains("S2_late"));
}

#[test]
fn a_bad_item_fails_its_season_alone_and_an_empty_season_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("season");
    let pipe = season(&sdir, 96, 6, 0.3);
    let mut items = season_items(&sdir, tmp.path());
    // A second tile whose third date lacks band B11: that season fails, the first runs.
    let mut other: Vec<Value> = items
        .iter()
        .filter(|i| i["id"].as_str().unwrap().starts_with("S2_2"))
        .cloned()
        .collect();
    for (k, it) in other.iter_mut().enumerate() {
        it["id"] = json!(format!("{}_B", it["id"].as_str().unwrap()));
        it["properties"]["s2:mgrs_tile"] = json!("31UFS");
        if k == 2 {
            it["assets"].as_object_mut().unwrap().remove("B11");
        }
    }
    let broken = other[2]["id"].as_str().unwrap().to_string();
    items.extend(other);
    write_items(&tmp.path().join("served/items.json"), items);
    let items_path = tmp.path().join("served/items.json").display().to_string();
    let cat = catalogue_pipeline(&pipe, &sdir, &items_path);
    let out = tmp.path().join("out");
    let (code, err) = cli_run(&cat, &out);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&broken) && err.contains("B11"), "{err}");
    assert!(out.join("31UES_2021/handcrafted.tif").exists(), "{err}");
    assert!(!out.join("31UFS_2021/handcrafted.tif").exists());
    let partial = files_under(&out.join("31UFS_2021"))
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.ends_with(".tif") || n.contains(".partial") || n.contains(".tmp-")
        });
    assert_eq!(
        partial.count(),
        0,
        "no partial product of the failed season"
    );

    // A season in which no Item lies.
    let text = std::fs::read_to_string(&cat).unwrap();
    let text = text
        .replace("start = \"03-01\"", "start = \"2030-03-01\"")
        .replace("end = \"10-31\"", "end = \"2030-10-31\"");
    std::fs::write(&cat, text).unwrap();
    let (code, err) = cli_run(&cat, &tmp.path().join("out2"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no optical Item") && err.contains("widen `[time]`"),
        "{err}"
    );
}

/// The dated rasters of `dir/dated` (`S2_<date>.tif` of the 20 m bands, `S2_SCL_<date>.tif`,
/// `S1_<date>.tif` of VH, VV in dB) as Items of one single-band GeoTIFF per band.
fn flanders_items(dir: &Path) -> Vec<Value> {
    let dir_dated = dir.join("dated");
    let bands = ["B05", "B06", "B07", "B11", "B12", "B8A"];
    let mut items = Vec::new();
    let single = |src: &Path, b: usize, dst: &Path| {
        let (v, size, gt, wkt, nd) = read_band(src, b);
        write_cog::<f32>(
            dst,
            size,
            gt,
            &wkt,
            v.iter().map(|&x| x as f32).collect(),
            nd,
        );
    };
    for (date, s2) in dated(&dir_dated, "S2_2") {
        let d = dir.join("served").join(&date);
        std::fs::create_dir_all(&d).unwrap();
        let mut assets = serde_json::Map::new();
        for (i, b) in bands.iter().enumerate() {
            let f = d.join(format!("{b}.tif"));
            single(&s2, i + 1, &f);
            assets.insert(
                b.to_string(),
                json!({"href": f, "type": "image/tiff", "roles": ["data"]}),
            );
        }
        let f = d.join("SCL.tif");
        single(&dir_dated.join(format!("S2_SCL_{date}.tif")), 1, &f);
        assets.insert(
            "SCL".into(),
            json!({"href": f, "type": "image/tiff", "roles": ["data"]}),
        );
        items.push(item(
            &format!("S2_{date}"),
            "sentinel-2-l2a",
            &format!("{date}T10:50:00Z"),
            json!({}),
            assets,
        ));
    }
    for (date, s1) in dated(&dir_dated, "S1_") {
        let d = dir.join("served").join(format!("S1_{date}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut assets = serde_json::Map::new();
        for (i, p) in ["vh", "vv"].iter().enumerate() {
            let f = d.join(format!("{p}.tif"));
            single(&s1, i + 1, &f);
            assets.insert(p.to_string(), json!({"href": f, "type": "image/tiff", "roles": ["data"], "raster:bands": [{"unit": "dB"}]}));
        }
        items.push(item(
            &format!("S1_{date}"),
            "sentinel-1-grd",
            &format!("{date}T17:40:00Z"),
            json!({}),
            assets,
        ));
    }
    items
}

/// `(date, file)` of the files `<prefix>...<date>.tif` in `dir`, in date order.
fn dated(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            (n.starts_with(prefix) && n.ends_with(".tif"))
                .then(|| (n[n.len() - 14..n.len() - 4].to_string(), e.path()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_real_flanders_season_from_items_reads_what_its_dated_rasters_read() {
    let Some(data) = shared_data("worldcereal_flanders") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pipe = flanders_season(&data, dir.path());
    let items = flanders_items(dir.path());
    let n = items.len();
    write_items(&dir.path().join("items.json"), items);
    let text = std::fs::read_to_string(&pipe).unwrap();
    let (a, b) = (
        text.find("[[scenes]]").unwrap(),
        text.find("[coregistration]").unwrap(),
    );
    let labels = text[a..b]
        .lines()
        .find(|l| l.starts_with("labels"))
        .unwrap()
        .to_string();
    let cat = format!(
        "[[catalogue]]\nitems = \"items.json\"\nname = \"A_{{year}}\"\nbands = [\"B05\", \"B06\", \"B07\", \"B11\", \"B12\", \"B8A\"]\nmask = {{ asset = \"SCL\", invalid = [0, 1, 3, 8, 9, 10] }}\nsar = {{ polarisations = [\"VH\", \"VV\"] }}\n{labels}\n\n"
    );
    // The Items run from August 2017: full dates keep the 2018 season alone (month-days
    // would make a partial 2017 season beside it).
    let head = text[..a]
        .replace("start = \"03-01\"", "start = \"2018-03-01\"")
        .replace("end = \"10-31\"", "end = \"2018-10-31\"");
    let cat_pipe = dir.path().join("catalogue.toml");
    std::fs::write(&cat_pipe, format!("{head}{cat}{}", &text[b..])).unwrap();
    println!("Flanders chip A as {n} Items (per-band GeoTIFFs)");
    let features = |pipe: &Path, work: &str| {
        let p = Pipeline::load(pipe).unwrap();
        let src = prepare_scene(&p, &p.scenes[0], &dir.path().join(work)).unwrap();
        let ss = src.season.clone().unwrap();
        (ss.dates(), scene_features(&p, &src, 16).unwrap())
    };
    let (dates, (names, x)) = features(&pipe, "work-files");
    let (dates_b, (names_b, y)) = features(&cat_pipe, "work-items");
    assert_eq!(dates, dates_b, "the same dates in the season");
    assert_eq!(names, names_b);
    let same = x
        .iter()
        .zip(y.iter())
        .all(|(p, q)| p.to_bits() == q.to_bits());
    assert!(same, "every regularised feature of the season, bit for bit");
    let (code, err) = cli_run(&cat_pipe, &dir.path().join("out"));
    assert_eq!(code, Some(0), "{err}");
}
