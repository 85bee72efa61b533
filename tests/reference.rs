//! Vector reference data: polygons and points from GeoPackage and GeoJSON,
//! in the scene's CRS or another, with a class field and a filter; the split keeps every
//! polygon on one side; bad vector data exits 2 naming the file and the fix.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{band_values, edit, geofuse, scene_with_pipeline};
use geofuse::pipeline::{load_pipeline, scene_split};
use geofuse::scene::prepare_scene;

/// Runs a GDAL command-line tool (gdal-bin, python3-gdal: installed by scripts/setup.sh).
fn tool(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} ({e}): run scripts/setup.sh"));
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A synthetic scene whose labels are given as polygons: `gdal_polygonize` of its label
/// raster into `ref.gpkg` (layer `ref`, field `class`), and the pipeline pointing at them.
fn polygon_scene(dir: &Path) -> PathBuf {
    let pipe = scene_with_pipeline(dir, 128, 4, 64);
    let labels = dir.join("labels.tif");
    let gpkg = dir.join("ref.gpkg");
    tool(
        "gdal_polygonize.py",
        &[
            labels.to_str().unwrap(),
            "-q",
            "-f",
            "GPKG",
            gpkg.to_str().unwrap(),
            "ref",
            "class",
        ],
    );
    edit(
        &pipe,
        "labels = \"./labels.tif\"",
        "reference = { path = \"ref.gpkg\", class_field = \"class\" }",
    );
    pipe
}

/// The rasterised reference of the pipeline's first scene, and the scene's split.
fn prepared(pipe: &Path, work: &Path) -> (Vec<f64>, geofuse::eval::split::BlockSplit, usize) {
    let p = load_pipeline(pipe, None).unwrap();
    let src = prepare_scene(&p, &p.scenes[0], work).unwrap();
    let labels = band_values(src.labels.as_ref().unwrap(), 1);
    (labels, scene_split(&p, &src), src.grid.width)
}

/// Original label raster values, with its nodata (0) as the rasterised reference's 255.
fn raster_labels(dir: &Path) -> Vec<f64> {
    band_values(&dir.join("labels.tif"), 1)
        .into_iter()
        .map(|v| if v == 0.0 { 255.0 } else { v })
        .collect()
}

#[test]
fn polygons_from_the_label_raster_give_the_same_labelled_pixels_in_any_crs() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = polygon_scene(dir.path());
    let want = raster_labels(dir.path());
    let (got, _, _) = prepared(&pipe, &dir.path().join("work"));
    assert_eq!(got, want, "GeoPackage in the scene's CRS");
    // The same polygons as GeoJSON in WGS 84, reprojected back onto the UTM grid.
    let geojson = dir.path().join("ref4326.geojson");
    tool(
        "ogr2ogr",
        &[
            "-t_srs",
            "EPSG:4326",
            geojson.to_str().unwrap(),
            dir.path().join("ref.gpkg").to_str().unwrap(),
        ],
    );
    edit(&pipe, "path = \"ref.gpkg\"", "path = \"ref4326.geojson\"");
    let (got, _, _) = prepared(&pipe, &dir.path().join("work2"));
    let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "GeoJSON in EPSG:4326: {differ} pixels differ");
    // A filter keeps only some features.
    let keep = want[want.len() / 2];
    edit(
        &pipe,
        "class_field = \"class\"",
        &format!("class_field = \"class\", filter = \"class = {keep}\""),
    );
    let (got, _, _) = prepared(&pipe, &dir.path().join("work3"));
    assert!(got.iter().all(|&v| v == keep || v == 255.0));
    assert_eq!(
        got.iter().filter(|&&v| v == keep).count(),
        want.iter().filter(|&&v| v == keep).count()
    );
}

#[test]
fn all_pixels_of_one_polygon_land_on_the_same_side_of_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = polygon_scene(dir.path());
    for by in ["blocks", "polygons"] {
        let text = std::fs::read_to_string(&pipe).unwrap();
        let text = text.replace("[split]\n", &format!("[split]\nby = \"{by}\"\n"));
        let pipe_by = dir.path().join(format!("pipeline-{by}.toml"));
        std::fs::write(&pipe_by, text).unwrap();
        let p = load_pipeline(&pipe_by, None).unwrap();
        let (_, split, w) = prepared(&pipe_by, &dir.path().join(format!("work-{by}")));
        let r = p.scenes[0].reference.clone().unwrap();
        let src = prepare_scene(&p, &p.scenes[0], &dir.path().join("w")).unwrap();
        let feats = geofuse::io::vector::read_reference(&r, &p.classes, &src.grid.crs_wkt).unwrap();
        let ras = geofuse::reference::rasterize(&feats, &src.grid).unwrap();
        let (mut train, mut test) = (0, 0);
        for f in &ras.features {
            let side = split.is_test(f.pixels[0] / w, f.pixels[0] % w);
            assert!(
                f.pixels
                    .iter()
                    .all(|&i| split.is_test(i / w, i % w) == side),
                "{by}: feature {} is split",
                f.fid
            );
            if side {
                test += 1
            } else {
                train += 1
            }
        }
        assert!(
            train > 0 && test > 0,
            "{by}: {train} training and {test} test polygons"
        );
    }
}

#[test]
fn points_in_another_crs_label_their_pixel_and_a_run_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = scene_with_pipeline(dir.path(), 128, 4, 64);
    let want = band_values(&dir.path().join("labels.tif"), 1);
    // Every 5th pixel centre (UTM 31N; origin 600000, 5700000, 10 m) as a WGS 84 point with
    // its class as a name.
    let p = load_pipeline(&pipe, None).unwrap();
    let utm = gdal::spatial_ref::SpatialRef::from_epsg(32631).unwrap();
    let mut wgs = gdal::spatial_ref::SpatialRef::from_epsg(4326).unwrap();
    wgs.set_axis_mapping_strategy(gdal::spatial_ref::AxisMappingStrategy::TraditionalGisOrder);
    let t = gdal::spatial_ref::CoordTransform::new(&utm, &wgs).unwrap();
    let mut feats = Vec::new();
    let mut expect = Vec::new();
    for i in (0..want.len()).step_by(37) {
        let (r, c) = (i / 128, i % 128);
        let cls = want[i] as usize;
        let Some(c_def) = p.classes.iter().find(|d| d.id as usize == cls) else {
            continue;
        };
        let (mut x, mut y) = (
            [600_000.0 + 10.0 * c as f64 + 5.0],
            [5_700_000.0 - 10.0 * r as f64 - 5.0],
        );
        t.transform_coords(&mut x, &mut y, &mut []).unwrap();
        feats.push(format!(
            r#"{{"type":"Feature","properties":{{"cls":"{}"}},"geometry":{{"type":"Point","coordinates":[{:.10},{:.10}]}}}}"#,
            c_def.name, x[0], y[0]
        ));
        expect.push((i, cls as f64));
    }
    assert!(expect.len() > 100);
    std::fs::write(
        dir.path().join("points.geojson"),
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            feats.join(",")
        ),
    )
    .unwrap();
    edit(
        &pipe,
        "labels = \"./labels.tif\"",
        "reference = { path = \"points.geojson\", class_field = \"cls\" }",
    );
    let (got, _, _) = prepared(&pipe, &dir.path().join("work"));
    for &(i, cls) in &expect {
        assert_eq!(got[i], cls, "pixel {i}");
    }
    assert_eq!(got.iter().filter(|&&v| v != 255.0).count(), expect.len());
    let o = geofuse(&["run", pipe.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.path().join("out/synthetic/handcrafted.tif").exists());
}

/// Runs the pipeline after writing `geojson` as `bad.geojson` and pointing the reference at
/// it with `settings`; returns (exit code, stderr).
fn run_with_reference(dir: &Path, geojson: Option<&str>, settings: &str) -> (i32, String) {
    let pipe = scene_with_pipeline(dir, 64, 4, 64);
    if let Some(g) = geojson {
        std::fs::write(dir.join("bad.geojson"), g).unwrap();
    }
    edit(
        &pipe,
        "labels = \"./labels.tif\"",
        &format!("reference = {{ {settings} }}"),
    );
    let o = geofuse(&["run", pipe.to_str().unwrap(), "--quiet"]);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

const SQUARE: &str = r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::32631"}},"features":[{"type":"Feature","properties":{"class":GEOM_CLASS},"geometry":GEOM}]}"#;

fn collection(class: &str, geometry: &str) -> String {
    SQUARE
        .replace("GEOM_CLASS", class)
        .replace("GEOM", geometry)
}

#[test]
fn bad_vector_reference_data_exits_2_naming_the_file_and_the_fix() {
    let square = r#"{"type":"Polygon","coordinates":[[[600000,5700000],[600300,5700000],[600300,5699700],[600000,5699700],[600000,5700000]]]}"#;
    let bowtie = r#"{"type":"Polygon","coordinates":[[[600000,5700000],[600300,5699700],[600300,5700000],[600000,5699700],[600000,5700000]]]}"#;
    let line = r#"{"type":"LineString","coordinates":[[600000,5700000],[600300,5699700]]}"#;
    let good = collection("3", square);
    let cases: Vec<(&str, Option<String>, &str, &[&str])> = vec![
        (
            "missing file",
            None,
            r#"path = "nope.gpkg", class_field = "class""#,
            &["nope.gpkg", "not found"],
        ),
        (
            "not vector data",
            Some("just text".into()),
            r#"path = "bad.geojson", class_field = "class""#,
            &["bad.geojson", "vector"],
        ),
        (
            "unknown class field",
            Some(good.clone()),
            r#"path = "bad.geojson", class_field = "klass""#,
            &["klass", "class_field", "class"],
        ),
        (
            "filter leaves nothing",
            Some(good.clone()),
            r#"path = "bad.geojson", class_field = "class", filter = "class = 99""#,
            &["no features", "class = 99"],
        ),
        (
            "bad filter",
            Some(good.clone()),
            r#"path = "bad.geojson", class_field = "class", filter = "class ==== ""#,
            &["filter", "OGR SQL"],
        ),
        (
            "class not in the table",
            Some(collection("42", square)),
            r#"path = "bad.geojson", class_field = "class""#,
            &["42", "class table"],
        ),
        (
            "invalid geometry",
            Some(collection("3", bowtie)),
            r#"path = "bad.geojson", class_field = "class""#,
            &["invalid geometry", "Fix Geometries"],
        ),
        (
            "a line",
            Some(collection("3", line)),
            r#"path = "bad.geojson", class_field = "class""#,
            &["line", "polygons or points"],
        ),
        (
            "no features",
            Some(r#"{"type":"FeatureCollection","features":[]}"#.into()),
            r#"path = "bad.geojson", class_field = "class""#,
            &["no features"],
        ),
    ];
    for (what, g, settings, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, err) = run_with_reference(dir.path(), g.as_deref(), settings);
        assert_eq!(code, 2, "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: `{n}` not in: {err}");
        }
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(
            !dir.path().join("out/synthetic/handcrafted.tif").exists(),
            "{what}"
        );
    }
    // Both labels and reference on one scene.
    let dir = tempfile::tempdir().unwrap();
    let pipe = scene_with_pipeline(dir.path(), 64, 4, 64);
    edit(
        &pipe,
        "labels = \"./labels.tif\"",
        "labels = \"./labels.tif\"\nreference = { path = \"x.gpkg\", class_field = \"c\" }",
    );
    let o = geofuse(&["run", pipe.to_str().unwrap(), "--quiet"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("both `labels` and `reference`"), "{err}");
}
