//! Spatial regularisation of the maps (`postprocess`): a regularised product beside the raw
//! one, tiled = untiled, majority equal to Orfeo ToolBox's ClassificationMapRegularization,
//! the sieve equal to `gdal_sieve.py`, the product's records, and bad settings.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use gdal::{Dataset, Metadata};

const METHODS: &str = r#"
[[methods]]
name = "bayes"
kind = "handcrafted"
trees = 20
max_depth = 18
postprocess = { smoothing = "bayesian", window = 7, min_pixels = 5 }

[[methods]]
name = "vote"
kind = "handcrafted"
trees = 20
max_depth = 18
postprocess = { smoothing = "majority", radius = 2 }

[[methods]]
name = "sieve"
kind = "handcrafted"
trees = 20
max_depth = 18
postprocess = { min_pixels = 6 }
"#;

/// A synthetic scene of `size` pixels with the three regularised methods, tiles of `tile`.
fn pipeline(dir: &Path, size: usize, tile: usize) -> std::path::PathBuf {
    let pipe = scene_with_pipeline(dir, size, 7, tile);
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(&pipe, text + METHODS).unwrap();
    pipe
}

fn run_ok(pipe: &Path, out: &Path) {
    let (code, err) = cli_run(pipe, out);
    assert_eq!(code, Some(0), "{err}");
}

fn bands(path: &Path) -> Vec<Vec<f64>> {
    let n = Dataset::open(path).unwrap().raster_count();
    (1..=n).map(|b| band_values(path, b)).collect()
}

#[test]
fn regularised_products_are_the_same_tiled_and_untiled() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = pipeline(dir.path(), 150, 40);
    // With the margin band, which Bayesian smoothing recomputes and the others keep.
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(&pipe, format!("{text}\n[product]\nmargin = true\n")).unwrap();
    let (tiled, whole) = (dir.path().join("tiled"), dir.path().join("whole"));
    run_ok(&pipe, &tiled);
    edit(&pipe, "tile_size = 40", "tile_size = 256");
    run_ok(&pipe, &whole);
    for name in ["bayes", "vote", "sieve"] {
        let f = |o: &Path, n: &str| o.join("synthetic").join(format!("{n}.tif"));
        let raw = bands(&f(&tiled, name));
        let reg = bands(&f(&tiled, &format!("{name}-regularised")));
        assert_eq!(
            reg,
            bands(&f(&whole, &format!("{name}-regularised"))),
            "{name}: tiled != untiled"
        );
        // It changed something, never a pixel without a prediction, and for a majority vote
        // or a sieve nothing but the class band.
        let changed = raw[0].iter().zip(&reg[0]).filter(|(a, b)| a != b).count();
        assert!(changed > 0, "{name}: nothing regularised");
        let nodata = |b: &[f64]| b.iter().map(|&v| v == 255.0).collect::<Vec<_>>();
        assert_eq!(nodata(&raw[0]), nodata(&reg[0]), "{name}: nodata moved");
        if name != "bayes" {
            assert_eq!(raw[1..], reg[1..], "{name}: only the class band may change");
        } else {
            assert_eq!(raw[2..4], reg[2..4], "bayes: aleatoric and epistemic stay");
            assert_ne!(
                raw[6], reg[6],
                "bayes: the margin follows the smoothed probabilities"
            );
        }
    }
}

#[test]
fn a_regularised_product_is_recorded_and_compared() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = pipeline(dir.path(), 128, 64);
    let out = dir.path().join("out");
    run_ok(&pipe, &out);
    let scene = out.join("synthetic");
    let ds = Dataset::open(scene.join("bayes-regularised.tif")).unwrap();
    let how = ds.metadata_item("GEOFUSE_POSTPROCESS", "").unwrap();
    assert!(
        how.contains("bayesian smoothing (window 7") && how.contains("sieve (minimum 5 pixels"),
        "{how}"
    );
    assert_eq!(
        ds.metadata_item("GEOFUSE_METHOD", "").as_deref(),
        Some("bayes-regularised")
    );
    let d = ds.rasterband(1).unwrap().description().unwrap();
    assert!(d.contains("regularised: bayesian"), "{d}");
    let raw = Dataset::open(scene.join("bayes.tif")).unwrap();
    assert_eq!(raw.metadata_item("GEOFUSE_POSTPROCESS", ""), None);
    let item: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scene.join("bayes-regularised.stac.json")).unwrap())
            .unwrap();
    assert_eq!(
        item["properties"]["geofuse:postprocess"].as_str(),
        Some(how.as_str())
    );
    let m = read_metrics(&out, "synthetic");
    for name in [
        "bayes",
        "bayes-regularised",
        "vote-regularised",
        "sieve-regularised",
    ] {
        assert!(m["methods"][name]["oa"].as_f64().is_some(), "{name}: {m}");
        assert!(scene.join(format!("{name}.eval.bin")).exists());
        assert!(out.join(format!("{name}.vrt")).exists());
    }
    assert_eq!(m["methods"]["vote-regularised"]["regularises"], "vote");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("vote-regularised"),
        "report lacks the regularised product"
    );
    // A second run finds both products up to date.
    let o = geofuse(&[
        "run",
        pipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("bayes is up to date"), "{log}");
}

fn tool(name: &str) -> bool {
    Command::new(name).arg("--help").output().is_ok()
}

/// The class band of `src` as a single-band GeoTIFF `dst` (nodata 255).
fn class_band(src: &Path, dst: &Path) {
    let st = Command::new("gdal_translate")
        .args(["-q", "-b", "1", "-a_nodata", "255"])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

fn agreement(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn majority_equals_orfeo_toolbox_and_the_sieve_equals_gdal_sieve() {
    if !tool("otbcli_ClassificationMapRegularization") || !tool("gdal_sieve.py") {
        eprintln!("SKIP: otbcli_ClassificationMapRegularization or gdal_sieve.py not found (install Debian's otb-bin and gdal-bin; `make test` does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pipe = pipeline(dir.path(), 150, 64);
    let out = dir.path().join("out");
    run_ok(&pipe, &out);
    let scene = out.join("synthetic");
    for (name, args) in [
        (
            "vote",
            vec![
                "otbcli_ClassificationMapRegularization",
                "-ip.radius",
                "2",
                "-ip.nodatalabel",
                "255",
            ],
        ),
        ("sieve", vec!["gdal_sieve.py", "-q", "-st", "6", "-4"]),
    ] {
        let raw = dir.path().join(format!("{name}-raw.tif"));
        class_band(&scene.join(format!("{name}.tif")), &raw);
        let peer = dir.path().join(format!("{name}-peer.tif"));
        let mut cmd = Command::new(args[0]);
        if name == "vote" {
            cmd.args(["-io.in"])
                .arg(&raw)
                .args(["-io.out"])
                .arg(&peer)
                .arg("uint8");
            cmd.args(&args[1..]);
        } else {
            cmd.args(&args[1..]).arg(&raw).arg(&peer);
        }
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let ours = band_values(&scene.join(format!("{name}-regularised.tif")), 1);
        let theirs = band_values(&peer, 1);
        let raw_v = band_values(&raw, 1);
        let a = agreement(&ours, &theirs);
        eprintln!(
            "{name}: agreement with the peer {:.4}; pixels changed: ours {}, peer {}",
            a,
            ours.iter().zip(&raw_v).filter(|(x, y)| x != y).count(),
            theirs.iter().zip(&raw_v).filter(|(x, y)| x != y).count()
        );
        assert_eq!(a, 1.0, "{name}: differs from the peer tool");
    }
}

#[test]
fn bad_postprocess_settings_exit_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for (edit_to, needle) in [
        (
            "postprocess = { smoothing = \"bayesian\", window = 301 }",
            "halo",
        ),
        (
            "postprocess = { smoothing = \"bayesian\", smoothness = [1.0, 2.0] }",
            "one per class",
        ),
        ("postprocess = { smoothing = \"median\" }", "median"),
        ("postprocess = { min_hectares = -1.0 }", "positive"),
    ] {
        let pipe = pipeline(dir.path(), 64, 64);
        edit(&pipe, "postprocess = { min_pixels = 6 }", edit_to);
        let (code, err) = cli_run(&pipe, &dir.path().join("out"));
        assert_eq!(code, Some(2), "{edit_to}: {err}");
        assert!(
            err.contains(needle) && err.contains("pipeline.toml"),
            "{edit_to}: {err}"
        );
    }
    let pipe = pipeline(dir.path(), 64, 64);
    edit(&pipe, "name = \"sieve\"", "name = \"vote-regularised\"");
    let (code, err) = cli_run(&pipe, &dir.path().join("out"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("regularised product of method `vote`"),
        "{err}"
    );
    assert!(!dir.path().join("out").join("synthetic").exists());
}

/// Keeps the labels of rows above `keep` only (0 = unlabelled below).
fn sparse_labels(scene_dir: &Path, keep: usize) {
    let ds = Dataset::open_ex(
        scene_dir.join("labels.tif"),
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
            ..Default::default()
        },
    )
    .unwrap();
    let (w, h) = ds.raster_size();
    let mut b = ds.rasterband(1).unwrap();
    let mut buf = b.read_as::<u8>((0, 0), (w, h), (w, h), None).unwrap();
    for r in keep..h {
        for c in 0..w {
            buf.data_mut()[r * w + c] = 0;
        }
    }
    b.write((0, 0), (w, h), &mut buf).unwrap();
}

fn ogr_sql(gpkg: &Path, sql: &str) -> String {
    let o = Command::new("ogrinfo")
        .args(["-q", "-dialect", "SQLite", "-sql", sql])
        .arg(gpkg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn suggest_writes_points_outside_the_reference_that_a_later_run_reads_back() {
    if !tool("ogrinfo") {
        eprintln!("SKIP: ogrinfo not found (install Debian's gdal-bin; `make test` does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pipe = scene_with_pipeline(dir.path(), 128, 5, 64);
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(&pipe, format!("{text}\n[product]\nmargin = true\n")).unwrap();
    sparse_labels(dir.path(), 60);
    let out = dir.path().join("out");
    run_ok(&pipe, &out);
    let gpkg = dir.path().join("next.gpkg");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "suggest",
            out.to_str().unwrap(),
            "--to",
            gpkg.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        geofuse(&a)
    };
    let o = args(&["--n", "40", "--min-distance", "50", "--per-class"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(gpkg.with_extension("qml").exists());
    let ds = Dataset::open(&gpkg).unwrap();
    let mut layer = ds.layer_by_name("suggested").unwrap();
    use gdal::vector::LayerAccess;
    assert_eq!(layer.feature_count(), 40);
    let grid = Dataset::open(out.join("synthetic").join("handcrafted.tif")).unwrap();
    let t = grid.geo_transform().unwrap();
    let mut pts = Vec::new();
    for f in layer.features() {
        let p = f.geometry().unwrap().get_point(0);
        let row = ((p.1 - t[3]) / t[5]).floor() as usize;
        assert!(row >= 60, "a point in the labelled rows: {row}");
        // The `class` field is left empty for the user (FIELDS order: the last of 14).
        assert!(f.field_as_integer(13).unwrap().is_none());
        pts.push((p.0, p.1));
    }
    for (i, a) in pts.iter().enumerate() {
        for b in &pts[i + 1..] {
            assert!((a.0 - b.0).hypot(a.1 - b.1) >= 50.0, "{a:?} {b:?}");
        }
    }
    // Label 30 points (the oracle: the predicted class) and run again with them as reference.
    ogr_sql(
        &gpkg,
        "UPDATE suggested SET class = predicted WHERE priority <= 30",
    );
    let text = std::fs::read_to_string(&pipe).unwrap();
    let text = text.replace(
        "labels = \"./labels.tif\"",
        &format!(
            "reference = {{ path = \"{}\", class_field = \"class\", filter = \"class IS NOT NULL\" }}",
            gpkg.display()
        ),
    );
    assert!(
        text.contains("reference = "),
        "the pipeline has no labels line"
    );
    let pipe2 = dir.path().join("again.toml");
    std::fs::write(&pipe2, text).unwrap();
    let out2 = dir.path().join("out2");
    run_ok(&pipe2, &out2);
    let m = read_metrics(&out2, "synthetic");
    let n: u64 = m["methods"]["handcrafted"]["train_samples_per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        n > 0 && n <= 30,
        "trained on {n} pixels of the 30 labelled points"
    );
    // The margin band: highest minus second-highest probability, ranked smallest first.
    let product = out.join("synthetic").join("handcrafted.tif");
    let ds = Dataset::open(&product).unwrap();
    assert_eq!(ds.raster_count(), 7);
    let d = ds.rasterband(7).unwrap().description().unwrap();
    assert!(d.starts_with("margin:"), "{d}");
    let (margin, confidence) = (
        named_band(&product, "margin"),
        named_band(&product, "confidence"),
    );
    assert!(margin
        .iter()
        .zip(&confidence)
        .all(|(m, c)| *m == 255.0 || m <= c));
    let by_margin = dir.path().join("margin.gpkg");
    let o = geofuse(&[
        "suggest",
        out.to_str().unwrap(),
        "--by",
        "margin",
        "--n",
        "10",
        "--to",
        by_margin.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Ranked smallest margin first: the first point holds the smallest margin of the
    // candidate rows, and scores never decrease with priority.
    let rows = ogr_sql(&by_margin, "SELECT score FROM suggested ORDER BY priority");
    let scores: Vec<f64> = rows
        .split("score (Real) = ")
        .skip(1)
        .map(|v| v.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(scores.len(), 10);
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    let least = margin
        .iter()
        .enumerate()
        .filter(|(i, m)| **m != 255.0 && i / 128 >= 60)
        .map(|(_, m)| *m)
        .fold(f64::INFINITY, f64::min);
    assert!(
        (scores[0] - least * 0.004).abs() < 1e-9,
        "{} vs {least}",
        scores[0]
    );
    // Confidence sampling: its own file, the prediction filled in as the class, balanced.
    let o = geofuse(&[
        "suggest",
        out.to_str().unwrap(),
        "--by",
        "confident",
        "--n",
        "21",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let conf = out.join("confident.gpkg");
    let same = ogr_sql(
        &conf,
        "SELECT COUNT(*) AS n FROM confident WHERE class = predicted",
    );
    assert!(same.contains("n (Integer) = 21"), "{same}");
    // Every predicted class gets its share before the most confident class fills the rest.
    let kinds = ogr_sql(
        &conf,
        "SELECT COUNT(DISTINCT predicted) AS k FROM confident",
    );
    let all = ogr_sql(
        &gpkg,
        "SELECT COUNT(DISTINCT predicted) AS k FROM suggested",
    );
    let k = |t: &str| {
        t.split("k (Integer) = ")
            .nth(1)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap()
    };
    assert!(k(&kinds) >= k(&all).min(7), "{kinds} {all}");
    // Bad input: more points than candidates, and a folder without a run.
    let o = args(&["--n", "1000000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("or fewer"));
    let o = geofuse(&["suggest", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("geofuse run"));
}

#[test]
fn the_active_learning_simulation_adds_oracle_labels_each_round_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let o = geofuse(&[
        "synth",
        "--out",
        dir.path().to_str().unwrap(),
        "--size",
        "96",
        "--seed",
        "3",
        "--scenes",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pipe = dir.path().join("pipeline.toml");
    let text = std::fs::read_to_string(&pipe).unwrap();
    let first = text.find("[[methods]]").unwrap();
    let second = text[first + 1..]
        .find("[[methods]]")
        .map_or(text.len(), |i| first + 1 + i);
    std::fs::write(&pipe, text[..second].replace("trees = 100", "trees = 20")).unwrap();
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "active",
            pipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ];
        a.extend_from_slice(extra);
        geofuse(&a)
    };
    let o = run(&[
        "--rounds",
        "2",
        "--n",
        "15",
        "--seeds",
        "1",
        "--by",
        "epistemic,random",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("active.json")).unwrap()).unwrap();
    let runs = a["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for s in ["epistemic", "random"] {
        let px: Vec<u64> = runs
            .iter()
            .filter(|r| r["strategy"] == s)
            .map(|r| r["labelled_pixels"].as_u64().unwrap())
            .collect();
        // Every round labels new pixels (the oracle labels each point it can) and scores
        // the held-out scene.
        assert!(
            px.windows(2).all(|w| w[1] > w[0] && w[1] <= w[0] + 15),
            "{s}: {px:?}"
        );
        assert!(runs.iter().all(|r| r["results"]["oa"].as_f64().is_some()));
    }
    // Both start from the same labelled patches.
    assert_eq!(runs[0]["labelled_pixels"], runs[3]["labelled_pixels"]);
    assert!(a["tests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["b"] == "random"));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Active learning") && report.contains("random sampling"));
    assert!(out.join("plots").join("active-learning.png").exists());
    // Without held-out scenes there is nothing to score: exit 2.
    edit(&pipe, "scenes = [\"scene-03\"]", "scenes = []");
    edit(
        &pipe,
        "scenes = [\"scene-01\", \"scene-02\"]",
        "scenes = [\"scene-01\", \"scene-02\", \"scene-03\"]",
    );
    let o = run(&["--rounds", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("[evaluation] scenes"), "{err}");
}

#[test]
fn an_exclusion_mask_is_left_as_predicted_and_never_votes() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = pipeline(dir.path(), 150, 40);
    // The left half of the scene (synthetic scenes: EPSG:32631, origin 600000, 5700000, 10 m).
    let mask = dir.path().join("exclude.geojson");
    std::fs::write(
        &mask,
        r#"{"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32631"}},
"features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon",
"coordinates": [[[600000, 5700000], [600750, 5700000], [600750, 5698500], [600000, 5698500], [600000, 5700000]]]}}]}"#,
    )
    .unwrap();
    for from in [
        "{ smoothing = \"bayesian\", window = 7, min_pixels = 5 }",
        "{ smoothing = \"majority\", radius = 2 }",
    ] {
        edit(
            &pipe,
            from,
            &from.replace(" }", ", exclusion = \"exclude.geojson\" }"),
        );
    }
    let (tiled, whole) = (dir.path().join("tiled"), dir.path().join("whole"));
    run_ok(&pipe, &tiled);
    edit(&pipe, "tile_size = 40", "tile_size = 256");
    run_ok(&pipe, &whole);
    for name in ["bayes", "vote"] {
        let f = |o: &Path, n: &str| o.join("synthetic").join(format!("{n}.tif"));
        let reg = bands(&f(&tiled, &format!("{name}-regularised")));
        assert_eq!(
            reg,
            bands(&f(&whole, &format!("{name}-regularised"))),
            "{name}: tiled != untiled"
        );
        let raw = bands(&f(&tiled, name));
        let (mut inside, mut outside) = (0, 0);
        for (i, (a, b)) in raw[0].iter().zip(&reg[0]).enumerate() {
            let left = i % 150 < 75;
            if a != b {
                if left {
                    inside += 1;
                } else {
                    outside += 1;
                }
            }
        }
        assert_eq!(inside, 0, "{name}: excluded pixels changed");
        assert!(outside > 0, "{name}: nothing regularised outside the mask");
        if name == "bayes" {
            let left = |b: &[f64]| {
                b.iter()
                    .enumerate()
                    .filter(|(i, _)| i % 150 < 75)
                    .map(|(_, v)| *v)
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                left(&raw[1]),
                left(&reg[1]),
                "bayes: confidence changed under the mask"
            );
        }
    }
}
