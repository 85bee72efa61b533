//! The comparison report: scores with block-bootstrap intervals, pairwise tests
//! whose counts are checked here against the products themselves, `geofuse compare` over one
//! and several folders.

mod common;

use std::path::Path;

use common::{band_values, geofuse, run_series};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn pairwise_counts_equal_the_products_and_the_report_shows_intervals_and_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let (pipe, out) = run_series(dir.path(), 3, 96);
    let m = json(&out.join("metrics.json"));
    let c = &m["comparison"];
    // The held-out scene (scene-03): every labelled pixel is evaluated, so McNemar's counts
    // can be recomputed from the two products' class bands and the label raster.
    let refs = band_values(&dir.path().join("scene-03/labels.tif"), 1);
    let a = band_values(&out.join("scene-03/handcrafted.tif"), 1);
    let b = band_values(&out.join("scene-03/boosted.tif"), 1);
    let ids: Vec<f64> = (1..=7).map(f64::from).collect();
    let (mut only_a, mut only_b) = (0u64, 0u64);
    for i in 0..refs.len() {
        if !ids.contains(&refs[i]) || a[i] == 255.0 || b[i] == 255.0 {
            continue;
        }
        only_a += u64::from(a[i] == refs[i] && b[i] != refs[i]);
        only_b += u64::from(b[i] == refs[i] && a[i] != refs[i]);
    }
    let pair = c["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["evaluation"] == "held-out scene")
        .unwrap();
    assert_eq!(pair["a"], "handcrafted");
    assert_eq!(pair["only_a_right"], only_a);
    assert_eq!(pair["only_b_right"], only_b);
    let p = geofuse::eval::stats::mcnemar(only_a, only_b).p;
    assert_eq!(pair["mcnemar_p"].as_f64().unwrap(), p);
    // One pair per kind: Holm leaves a single p-value as it is.
    assert_eq!(pair["block_p_holm"], pair["block_p"]);
    let verdict = pair["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("block-level sign-flip test over 9 blocks"),
        "{verdict}"
    );
    // Point estimates equal the pooled confusion; intervals contain them.
    for s in c["methods"].as_array().unwrap() {
        let (method, kind) = (
            s["method"].as_str().unwrap(),
            s["evaluation"].as_str().unwrap(),
        );
        let oa = &s["scores"]["oa"];
        let pooled = m["pooled"][method][kind]["oa"].as_f64().unwrap();
        assert!((oa["value"].as_f64().unwrap() - pooled).abs() < 1e-12);
        let ci = oa["ci95"].as_array().unwrap();
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        assert!(
            lo <= pooled + 1e-12 && pooled <= hi + 1e-12,
            "{method} {kind}: {lo} {pooled} {hi}"
        );
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in [
        "Scores with confidence intervals",
        "Pairwise tests",
        "Area estimates",
        "overall accuracy (area-weighted)",
    ] {
        assert!(report.contains(section), "{section}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Pairwise tests</h2>") && html.contains(verdict));
    // `compare` over two folders: scenes labelled by folder, written beside.
    let other = dir.path().join("again");
    let o = geofuse(&[
        "run",
        pipe.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success());
    let rep = dir.path().join("both");
    let o = geofuse(&[
        "compare",
        out.to_str().unwrap(),
        other.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(rep.join("compare.md")).unwrap();
    assert!(text.contains("Pairwise tests") && rep.join("compare.html").exists());
    // Twice the blocks: the same method in two identical folders.
    assert!(
        text.contains("| handcrafted | held-out scene | 2 | 18 |"),
        "{text}"
    );
}
