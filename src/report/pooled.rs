//! Metrics pooled over scenes, kept apart by what they were measured on: the held-out blocks
//! of training scenes (within-scene) and held-out scenes (never trained on). Each method's
//! confusion matrices are summed over the scenes of each kind, so a pooled metric weighs every
//! evaluated pixel alike; the gap between the two says how much a method loses on scenes it
//! never saw. Written to `<out>/metrics.json` and shown in the report.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::config::Pipeline;
use crate::eval::metrics::Confusion;

/// The two kinds of evaluation, as metrics.json names them.
pub const KINDS: [&str; 2] = ["held-out blocks", "held-out scene"];

/// `{"<method>": {"held-out blocks": {...}, "held-out scene": {...}, "loss": {...}}}`.
pub fn pooled(out: &Path, p: &Pipeline) -> Value {
    let names: Vec<String> = p.classes.iter().map(|c| c.name.clone()).collect();
    let k = names.len();
    let mut methods = Map::new();
    for name in p.product_names() {
        let mut by_kind = Map::new();
        for kind in KINDS {
            let (mut c, mut scenes) = (Confusion::new(k), Vec::new());
            for s in &p.scenes {
                let Some(v) = crate::io::json::read_json(&out.join(&s.name).join("metrics.json"))
                else {
                    continue;
                };
                let mv = &v["methods"][&name];
                if mv["evaluation"].as_str().unwrap_or(KINDS[0]) != kind {
                    continue;
                }
                if let Some(rows) = mv["confusion"].as_array() {
                    add_rows(&mut c, rows, k);
                    scenes.push(s.name.clone());
                }
            }
            if c.total() > 0 {
                let mt = c.metrics(&names);
                by_kind.insert(
                    kind.into(),
                    json!({"oa": mt.oa, "kappa": mt.kappa, "miou": mt.miou,
                    "f1": mt.f1, "pixels": mt.pixels, "scenes": scenes}),
                );
            }
        }
        if let (Some(a), Some(b)) = (by_kind.get(KINDS[0]), by_kind.get(KINDS[1])) {
            let d = |key: &str| a[key].as_f64().zip(b[key].as_f64()).map(|(x, y)| y - x);
            let loss = json!({"oa": d("oa"), "miou": d("miou"), "kappa": d("kappa")});
            by_kind.insert("held-out scene minus held-out blocks".into(), loss);
        }
        methods.insert(name, Value::Object(by_kind));
    }
    json!({"pooled": methods})
}

fn add_rows(c: &mut Confusion, rows: &[Value], k: usize) {
    for (r, row) in rows.iter().enumerate().take(k) {
        for (q, v) in row.as_array().into_iter().flatten().enumerate().take(k) {
            c.add_n(r, q, v.as_u64().unwrap_or(0));
        }
    }
}
