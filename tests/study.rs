//! The learning curve (`geofuse study`) and the report's figures: nested training
//! subsets, repeats, study.json, the curve and its table in the report, and PNG figures
//! (reliability, risk-coverage, confusion, quicklooks) written and inlined.

mod common;

use std::path::Path;

use common::{geofuse, read_png, run_series, series};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Decoded RGB pixels of a PNG file.
fn rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let (w, h, _, px) = read_png(path);
    (w, h, px)
}

#[test]
fn study_trains_on_nested_subsets_with_repeats_and_the_report_plots_the_curve() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = series(dir.path(), 3, 96);
    let text = std::fs::read_to_string(&pipe).unwrap()
        + "\n[study]\nfractions = [0.05, 0.3, 1.0]\nseeds = 2\n";
    std::fs::write(&pipe, text).unwrap();
    let out = dir.path().join("out");
    let args = [
        "study",
        pipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    let o = geofuse(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&out.join("study.json"));
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    let px = |f: f64, seed: u64| {
        runs.iter()
            .find(|r| r["fraction"].as_f64() == Some(f) && r["seed"] == seed)
            .unwrap()["training_pixels"]
            .as_f64()
            .unwrap()
    };
    for seed in 0..2 {
        let full = px(1.0, seed);
        assert!(full > 1000.0, "{full}");
        // The subset is a per-pixel draw: its size is close to the fraction.
        assert!((px(0.3, seed) / full - 0.3).abs() < 0.03);
        assert!((px(0.05, seed) / full - 0.05).abs() < 0.015);
    }
    // The split does not change between seeds: every training pixel trains at 100 %.
    assert_eq!(px(1.0, 0), px(1.0, 1));
    // Other seeds draw other subsets.
    assert_ne!(px(0.3, 0), px(0.3, 1));
    for r in runs {
        for m in ["handcrafted", "boosted"] {
            for kind in ["held-out blocks", "held-out scene"] {
                let v = r["results"][m][kind]["miou"].as_f64();
                assert!(v.is_some_and(|v| v > 0.0 && v <= 1.0), "{m} {kind} {r}");
            }
        }
    }
    // The smallest subset trains on less than a tenth of the pixels: its models differ.
    let cell = |f: &str| {
        json(
            &out.join("study")
                .join(f)
                .join("models/handcrafted.train.json"),
        )
    };
    assert_ne!(cell("0.05-0")["model_hash"], cell("1-0")["model_hash"]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Learning curve"), "{report}");
    assert!(report.contains("| training pixels |"));
    assert!(report.contains("![Learning curve, held-out scene](plots/learning-curve-1.png)"));
    let (w, h, _) = rgb(&out.join("plots/learning-curve-1.png"));
    assert_eq!((w, h), (780, 420));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Learning curve</h2>"));
    // A rerun finds every cell done: the same study.json, no model retrained.
    let before = std::fs::read(out.join("study.json")).unwrap();
    let o = geofuse(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(before, std::fs::read(out.join("study.json")).unwrap());
}

#[test]
fn bad_study_settings_are_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = series(dir.path(), 2, 64);
    for (bad, key) in [
        ("fractions = [0.5, 0.1]", "study.fractions"),
        ("fractions = [0.0, 1.0]", "study.fractions"),
        ("seeds = 0", "study.seeds"),
        ("methods = [\"nope\"]", "study.methods"),
    ] {
        let text = std::fs::read_to_string(&pipe).unwrap() + "\n[study]\n" + bad + "\n";
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, text).unwrap();
        let o = geofuse(&["study", p.to_str().unwrap(), "-q"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(key), "{bad}: {err}");
        assert!(
            !dir.path().join("out").exists(),
            "{bad}: nothing is written"
        );
    }
    // The command line's settings are checked the same way.
    let o = geofuse(&[
        "study",
        pipe.to_str().unwrap(),
        "--fractions",
        "0.3,0.2",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("study.fractions"));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn the_report_draws_and_inlines_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = run_series(dir.path(), 3, 96);
    let mut pngs: Vec<String> = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    pngs.sort();
    for want in [
        "reliability-0.png",
        "reliability-1.png",
        "risk-coverage-0.png",
        "risk-coverage-1.png",
        "confusion-0-00.png",
        "confusion-1-01.png",
        "quicklook-000.png",
        "quicklook-002.png",
    ] {
        assert!(pngs.contains(&want.to_string()), "{want} missing: {pngs:?}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<img ").count(), pngs.len());
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        pngs.len()
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "opens offline"
    );
    // The quicklook shows the class colours of the class table (water #1f78b4, forest
    // #33a02c) read from the products' overviews.
    let (_, _, px) = rgb(&out.join("plots/quicklook-000.png"));
    let has = |c: [u8; 3]| px.chunks(3).any(|p| p == c);
    assert!(has([0x1f, 0x78, 0xb4]) && has([0x33, 0xa0, 0x2c]));
    // Figures are deterministic: a second report draws the same bytes.
    let before = std::fs::read(out.join("plots/confusion-0-00.png")).unwrap();
    let o = geofuse(&["compare", out.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        before,
        std::fs::read(out.join("plots/confusion-0-00.png")).unwrap()
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for s in [
        "## Per-class scores",
        "| ECE |",
        "AUROC of total uncertainty for errors",
    ] {
        assert!(md.contains(s), "{s}");
    }
}
