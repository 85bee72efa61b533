//! The catalogue of bad inputs: each case starts from a good synthetic
//! scene and its pipeline, breaks one thing, and runs `geofuse run` as a user would. A bad
//! case must exit 2 with a message naming the file (or key) and the fix, never panic, and
//! leave no product or temporary file; the accepted cases (a byte-order mark, CRLF line
//! ends, scene names with spaces or non-ASCII letters, an all-nodata tile) must run.

mod common;

use std::path::{Path, PathBuf};

use common::{files_under, geofuse, scene_with_pipeline};
use gdal::Dataset;

type Setup = fn(&Path, &Path);

fn text(pipe: &Path) -> String {
    std::fs::read_to_string(pipe).unwrap()
}

/// Replaces the first `from` (which must be there) in the pipeline.
fn edit(pipe: &Path, from: &str, to: &str) {
    common::edit(pipe, from, to);
}

/// Rewrites band `b` of a Float32 raster through `f`.
fn rewrite(path: &Path, b: usize, f: impl Fn(usize, f32) -> f32) {
    let ds = Dataset::open_ex(
        path,
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE | gdal::GdalOpenFlags::GDAL_OF_RASTER,
            ..Default::default()
        },
    )
    .unwrap();
    let (w, h) = ds.raster_size();
    let mut band = ds.rasterband(b).unwrap();
    let mut buf = band.read_as::<f32>((0, 0), (w, h), (w, h), None).unwrap();
    for (i, v) in buf.data_mut().iter_mut().enumerate() {
        *v = f(i, *v);
    }
    band.write((0, 0), (w, h), &mut buf).unwrap();
}

/// Sets the SAR file's geotransform or CRS.
fn sar_grid(dir: &Path, gt: Option<[f64; 6]>, epsg: Option<u32>) {
    let mut ds = Dataset::open_ex(
        dir.join("sar.tif"),
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE | gdal::GdalOpenFlags::GDAL_OF_RASTER,
            ..Default::default()
        },
    )
    .unwrap();
    if let Some(gt) = gt {
        ds.set_geo_transform(&gt).unwrap();
    }
    if let Some(e) = epsg {
        let srs = gdal::spatial_ref::SpatialRef::from_epsg(e).unwrap();
        ds.set_spatial_ref(&srs).unwrap();
    }
}

const GT: [f64; 6] = [600_000.0, 10.0, 0.0, 5_700_000.0, 0.0, -10.0];

/// The bad cases: (name, what breaks, needles the message must hold).
fn bad_cases() -> Vec<(&'static str, Setup, &'static [&'static str])> {
    vec![
        (
            "unknown top-level key",
            |_, p| edit(p, "output = ", "colour = 1\noutput = "),
            &["colour", "pipeline.toml"],
        ),
        (
            "unknown key in a table",
            |_, p| edit(p, "tile_size = 64", "tile_size = 64\ntile_sise = 3"),
            &["tile_sise"],
        ),
        (
            "zero tile size",
            |_, p| edit(p, "tile_size = 64", "tile_size = 0"),
            &["tile_size"],
        ),
        (
            "negative tile size",
            |_, p| edit(p, "tile_size = 64", "tile_size = -64"),
            &["tile_size"],
        ),
        (
            "empty scene list",
            |_, p| {
                let t = text(p);
                let (a, b) = (t.find("[[scenes]]").unwrap(), t.find("[tiling]").unwrap());
                std::fs::write(p, format!("scenes = []\n{}{}", &t[..a], &t[b..])).unwrap();
            },
            &["scenes", "empty"],
        ),
        (
            "duplicate class id",
            |_, p| edit(p, "id = 2\n", "id = 1\n"),
            &["class id 1 appears twice"],
        ),
        (
            "duplicate class name",
            |_, p| edit(p, "name = \"forest\"", "name = \"water\""),
            &["`water` appears twice"],
        ),
        (
            "class id 255",
            |_, p| edit(p, "id = 7\n", "id = 255\n"),
            &["255", "nodata"],
        ),
        (
            "bad colour",
            |_, p| edit(p, "color = \"#1f78b4\"", "color = \"blue\""),
            &["blue"],
        ),
        (
            "unknown method kind",
            |_, p| {
                edit(
                    p,
                    "name = \"handcrafted\"",
                    "name = \"handcrafted\"\nkind = \"svm\"",
                )
            },
            &["svm", "kind"],
        ),
        (
            "unknown fusion",
            |_, p| {
                std::fs::write(
                    p,
                    text(p)
                        + "\n[[methods]]\nname = \"x\"\nkind = \"learned\"\nfusion = \"magic\"\n",
                )
                .unwrap();
            },
            &["magic", "fusion"],
        ),
        (
            "duplicate scene name",
            |_, p| {
                let t = text(p);
                let (a, b) = (t.find("[[scenes]]").unwrap(), t.find("[tiling]").unwrap());
                std::fs::write(p, format!("{}{}{}", &t[..b], &t[a..b], &t[b..])).unwrap();
            },
            &["synthetic", "appears twice"],
        ),
        (
            "scene name with ..",
            |_, p| edit(p, "name = \"synthetic\"", "name = \"../evil\""),
            &["../evil", "plain folder name"],
        ),
        (
            "scene name with /",
            |_, p| edit(p, "name = \"synthetic\"", "name = \"a/b\""),
            &["a/b", "plain folder name"],
        ),
        (
            "method name with ..",
            |_, p| {
                edit(
                    p,
                    "name = \"handcrafted\"",
                    "name = \"../x\"\nkind = \"handcrafted\"",
                )
            },
            &["../x", "plain file name"],
        ),
        (
            "absolute method name",
            |_, p| {
                edit(
                    p,
                    "name = \"handcrafted\"",
                    "name = \"/tmp/x\"\nkind = \"handcrafted\"",
                )
            },
            &["/tmp/x", "plain file name"],
        ),
        (
            "non-UTF-8 pipeline",
            |_, p| {
                let mut b = std::fs::read(p).unwrap();
                b.splice(0..0, [0xff, 0xfe, b'#', b'\n']);
                std::fs::write(p, b).unwrap();
            },
            &["pipeline.toml", "UTF-8"],
        ),
        (
            "empty pipeline file",
            |_, p| std::fs::write(p, "").unwrap(),
            &["pipeline.toml", "missing"],
        ),
        (
            "test fraction out of range",
            |_, p| edit(p, "test_fraction = 0.3", "test_fraction = 1.5"),
            &["test_fraction"],
        ),
        (
            "zero samples per class",
            |_, p| edit(p, "samples_per_class = 600", "samples_per_class = 0"),
            &["samples_per_class"],
        ),
        (
            "held-out scene that does not exist",
            |_, p| {
                edit(
                    p,
                    "[tiling]",
                    "[evaluation]\nscenes = [\"nope\"]\n\n[tiling]",
                )
            },
            &["nope", "evaluation.scenes"],
        ),
        (
            "missing optical file",
            |d, _| std::fs::remove_file(d.join("optical.tif")).unwrap(),
            &["optical.tif", "not found"],
        ),
        (
            "missing SAR file",
            |d, _| std::fs::remove_file(d.join("sar.tif")).unwrap(),
            &["sar.tif", "not found"],
        ),
        (
            "missing mask file",
            |d, _| std::fs::remove_file(d.join("cloud_mask.tif")).unwrap(),
            &["cloud_mask.tif", "not found"],
        ),
        (
            "empty optical file",
            |d, _| std::fs::write(d.join("optical.tif"), "").unwrap(),
            &["optical.tif", "empty"],
        ),
        (
            "text file named .tif",
            |d, _| std::fs::write(d.join("sar.tif"), "not a raster\n").unwrap(),
            &["sar.tif"],
        ),
        (
            "truncated GeoTIFF",
            |d, _| {
                let f = d.join("optical.tif");
                let b = std::fs::read(&f).unwrap();
                std::fs::write(&f, &b[..b.len() / 3]).unwrap();
            },
            &["optical.tif"],
        ),
        (
            "more band names than bands",
            |_, p| edit(p, "\"B11\", \"B12\"]", "\"B11\", \"B12\", \"B13\"]"),
            &["optical.tif", "band"],
        ),
        (
            "an index's band not named",
            |_, p| edit(p, "\"B08\", \"B8A\"", "\"B8X\", \"B8A\""),
            &["B08"],
        ),
        (
            "polarisations without VH",
            |_, p| {
                edit(
                    p,
                    "polarisations = [\"VV\", \"VH\"]",
                    "polarisations = [\"VV\", \"HH\"]",
                )
            },
            &["VH"],
        ),
        (
            "VV only with features that need VH",
            |_, p| {
                edit(
                    p,
                    "polarisations = [\"VV\", \"VH\"]",
                    "polarisations = [\"VV\"]",
                )
            },
            &["vh_db", "needs VH", "features.sar"],
        ),
        (
            "polarisations naming neither VV nor VH",
            |_, p| {
                edit(
                    p,
                    "polarisations = [\"VV\", \"VH\"]",
                    "polarisations = [\"HH\", \"HV\"]",
                )
            },
            &["neither VV nor VH"],
        ),
        (
            "a polarisation named twice",
            |_, p| {
                edit(
                    p,
                    "polarisations = [\"VV\", \"VH\"]",
                    "polarisations = [\"VV\", \"vv\"]",
                )
            },
            &["VV 2 times"],
        ),
        (
            "linear SAR declared as dB",
            |d, _| {
                for b in [1, 2] {
                    rewrite(&d.join("sar.tif"), b, |_, v| 10f32.powf(v / 10.0));
                }
            },
            &["sar.tif", "linear"],
        ),
        (
            "dB SAR declared as linear",
            |_, p| edit(p, "unit = \"db\"", "unit = \"linear\""),
            &["sar.tif", "negative", "db"],
        ),
        (
            "all-NaN SAR band",
            |d, _| rewrite(&d.join("sar.tif"), 2, |_, _| f32::NAN),
            &["sar.tif", "VH", "NaN"],
        ),
        (
            "infinite SAR values",
            |d, _| {
                rewrite(&d.join("sar.tif"), 1, |i, v| {
                    if i % 7 == 0 {
                        f32::INFINITY
                    } else {
                        v
                    }
                })
            },
            &["sar.tif", "infinite"],
        ),
        (
            "SAR in another CRS",
            |d, _| sar_grid(d, None, Some(32632)),
            &["sar.tif", "CRS"],
        ),
        (
            "SAR shifted by 3 pixels",
            |d, _| sar_grid(d, Some([GT[0] + 30.0, 10.0, 0.0, GT[3], 0.0, -10.0]), None),
            &["sar.tif", "allow_warp"],
        ),
        (
            "SAR with rotated pixels",
            |d, _| sar_grid(d, Some([GT[0], 10.0, 0.5, GT[3], 0.5, -10.0]), None),
            &["sar.tif", "allow_warp"],
        ),
        (
            "SAR with 20 m pixels",
            |d, _| sar_grid(d, Some([GT[0], 20.0, 0.0, GT[3], 0.0, -20.0]), None),
            &["sar.tif", "allow_warp"],
        ),
        (
            "labels outside the class table",
            |d, _| rewrite(&d.join("labels.tif"), 1, |_, _| 99.0),
            &["labels.tif", "class"],
        ),
        (
            "vector reference without features",
            |d, p| {
                std::fs::write(
                    d.join("ref.geojson"),
                    r#"{"type":"FeatureCollection","features":[]}"#,
                )
                .unwrap();
                edit(
                    p,
                    "labels = \"./labels.tif\"",
                    "reference = { path = \"ref.geojson\", class_field = \"class\" }",
                );
            },
            &["ref.geojson", "no features"],
        ),
        (
            "vector reference with an unknown class field",
            |d, p| {
                std::fs::write(d.join("ref.geojson"), r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"cls":1},"geometry":{"type":"Point","coordinates":[3.1,51.4]}}]}"#).unwrap();
                edit(
                    p,
                    "labels = \"./labels.tif\"",
                    "reference = { path = \"ref.geojson\", class_field = \"class\" }",
                );
            },
            &["ref.geojson", "class_field"],
        ),
        (
            "corrupt model file",
            |d, p| {
                std::fs::write(d.join("bad.model"), b"\x00\x01garbage").unwrap();
                edit(
                    p,
                    "name = \"handcrafted\"",
                    "name = \"handcrafted\"\nmodel = \"bad.model\"",
                );
            },
            &["bad.model"],
        ),
        (
            "output folder that cannot be written",
            |_, p| edit(p, "output = \"out\"", "output = \"/proc/geofuse-out\""),
            &["/proc/geofuse-out", "output"],
        ),
        (
            "output folder is a file",
            |_, p| edit(p, "output = \"out\"", "output = \"labels.tif/out\""),
            &["labels.tif/out", "output"],
        ),
        (
            "output folder holds the inputs",
            |_, p| edit(p, "output = \"out\"", "output = \".\""),
            &["holds the input", "output"],
        ),
        (
            "labels and vector reference at once",
            |_, p| {
                edit(p, "labels = \"./labels.tif\"", "labels = \"./labels.tif\"\nreference = { path = \"x.gpkg\", class_field = \"c\" }")
            },
            &["both `labels` and `reference`"],
        ),
    ]
}

/// Products, sidecars or temporary files under `dir` (outside the inputs).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("out"))
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            (s.ends_with(".tif") && !s.contains("/models/"))
                || s.contains(".partial")
                || s.contains(".tmp-")
                || s.contains(".coreg")
        })
        .collect()
}

#[test]
fn every_bad_input_exits_2_naming_the_file_and_the_fix() {
    let cases = bad_cases();
    let mut failed = Vec::new();
    for (name, setup, needles) in &cases {
        let dir = tempfile::tempdir().unwrap();
        let pipe = scene_with_pipeline(dir.path(), 64, 4, 64);
        setup(dir.path(), &pipe);
        let o = geofuse(&["run", pipe.to_str().unwrap(), "-q", "--device", "cpu"]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        let missing: Vec<_> = needles.iter().filter(|n| !err.contains(*n)).collect();
        let mut left = leftovers(dir.path());
        left.extend(files_under(&dir.path().join("elsewhere")));
        if o.status.code() != Some(2)
            || !missing.is_empty()
            || err.contains("panicked")
            || !left.is_empty()
        {
            failed.push(format!(
                "{name}: exit {:?}, missing {missing:?}, left {left:?}\n  {err}",
                o.status.code()
            ));
        }
    }
    eprintln!(
        "catalogue: {} bad-input cases, {} failed",
        cases.len(),
        failed.len()
    );
    assert!(cases.len() >= 40);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn accepted_oddities_run() {
    let cases: Vec<(&str, Setup)> = vec![
        ("byte-order mark", |_, p| {
            std::fs::write(p, format!("\u{feff}{}", text(p))).unwrap();
        }),
        ("CRLF line ends", |_, p| {
            std::fs::write(p, text(p).replace('\n', "\r\n")).unwrap()
        }),
        ("scene name with spaces", |_, p| {
            edit(p, "name = \"synthetic\"", "name = \"my scene 1\"")
        }),
        ("non-ASCII scene name", |_, p| {
            edit(p, "name = \"synthetic\"", "name = \"scène_été\"")
        }),
        ("an all-nodata tile in a good scene", |d, _| {
            let tile = |i: usize| i % 128 < 64 && i / 128 < 64;
            for b in [1, 2] {
                rewrite(
                    &d.join("sar.tif"),
                    b,
                    |i, v| if tile(i) { f32::NAN } else { v },
                );
            }
            for b in 1..=10 {
                rewrite(
                    &d.join("optical.tif"),
                    b,
                    |i, v| if tile(i) { 0.0 } else { v },
                );
            }
        }),
    ];
    for (name, setup) in cases {
        let dir = tempfile::tempdir().unwrap();
        let pipe = scene_with_pipeline(dir.path(), 128, 4, 64);
        setup(dir.path(), &pipe);
        let o = geofuse(&["run", pipe.to_str().unwrap(), "-q", "--device", "cpu"]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let products: Vec<_> = files_under(&dir.path().join("out"))
            .into_iter()
            .filter(|p| p.ends_with("handcrafted.tif"))
            .collect();
        assert_eq!(products.len(), 1, "{name}");
        if name.contains("nodata tile") {
            let class = common::band_values(&products[0], 1);
            assert_eq!(class[0], 255.0, "no input: nodata");
            assert_eq!(class[5 * 128 + 10], 255.0);
            assert_ne!(class[100 * 128 + 100], 255.0, "the rest is mapped");
        }
    }
}
