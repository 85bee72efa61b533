//! `geofuse compare`: the comparison a scientist can sign, from the evaluation records of one
//! or more output folders. Per method and kind of evaluation (held-out blocks of training
//! scenes, held-out scenes, kept apart): OA, kappa, mIoU and per-class scores with 95 %
//! intervals from a bootstrap over spatial blocks; error-adjusted class areas (Olofsson et
//! al. 2014). Per pair of methods: McNemar on the same pixels and a sign-flip test over
//! blocks, Holm-adjusted within each family; the verdict rests on the block-level test.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::Pipeline;
use crate::eval::metrics::Confusion;
use crate::eval::record::EvalRecord;
use crate::eval::stats::{
    bootstrap_cis, holm, mcnemar, olofsson, sign_flip_test, AreaEstimate, McNemar,
};

/// Bootstrap resamples.
pub const REPS: usize = 1000;
/// Sign-flip assignments (beyond 16 blocks).
pub const FLIPS: usize = 10_000;

/// One method under one kind of evaluation.
#[derive(Debug, Clone)]
pub struct MethodStats {
    /// Method name.
    pub method: String,
    /// "held-out blocks" or "held-out scene".
    pub kind: String,
    /// Scenes it was evaluated on.
    pub scenes: Vec<String>,
    /// Spatial blocks with evaluated pixels (the bootstrap's units).
    pub blocks: usize,
    /// Evaluated pixels.
    pub pixels: u64,
    /// Point estimate and 95 % interval of each score: `oa`, `kappa`, `miou`, and per class
    /// `f1:<class>`, `iou:<class>`, `precision:<class>`, `recall:<class>`.
    pub scores: BTreeMap<String, (f64, Option<(f64, f64)>)>,
    /// Error-adjusted areas.
    pub areas: Option<AreaEstimate>,
    /// Pooled confusion matrix (reference-major).
    pub confusion: Vec<u64>,
    /// Reliability diagram: (mean confidence, accuracy) of each non-empty confidence bin,
    /// pooled over the scenes.
    pub reliability: Vec<(f64, f64)>,
    /// Pooled histograms of the total-uncertainty byte of (correct, wrong) pixels.
    pub uncertainty_histogram: (Vec<u64>, Vec<u64>),
    /// Expected calibration error of the pooled bins.
    pub ece: Option<f64>,
}

/// Two methods compared on the same pixels and blocks.
#[derive(Debug, Clone)]
pub struct PairTest {
    /// Kind of evaluation.
    pub kind: String,
    /// First and second method.
    pub a: String,
    /// Second method.
    pub b: String,
    /// McNemar's test on the pixels both predicted.
    pub mcnemar: McNemar,
    /// Its Holm-adjusted p-value.
    pub mcnemar_holm: f64,
    /// Blocks in the paired test.
    pub blocks: usize,
    /// Mean over blocks of (accuracy of a - accuracy of b).
    pub mean_diff: f64,
    /// Sign-flip test p-value over blocks.
    pub block_p: f64,
    /// Its Holm-adjusted p-value.
    pub block_holm: f64,
}

impl PairTest {
    /// The verdict in words, and the test it rests on.
    pub fn verdict(&self) -> String {
        if self.block_holm < 0.05 {
            let (w, l) = if self.mean_diff > 0.0 {
                (&self.a, &self.b)
            } else {
                (&self.b, &self.a)
            };
            format!("{w} is more accurate than {l} (block-level sign-flip test over {} blocks, Holm p = {:.3})", self.blocks, self.block_holm)
        } else {
            format!("no significant difference (block-level sign-flip test over {} blocks, Holm p = {:.3})", self.blocks, self.block_holm)
        }
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Class names.
    pub classes: Vec<String>,
    /// Per method and kind.
    pub methods: Vec<MethodStats>,
    /// Per pair and kind.
    pub pairs: Vec<PairTest>,
}

/// (scene label, record, the scene's metrics of the method) of each method and kind, in
/// pipeline order.
pub(crate) type Records = Vec<(
    (String, String),
    Vec<(String, EvalRecord, serde_json::Value)>,
)>;

/// Reads the evaluation records of `outs` (each with its pipeline); scene labels are
/// prefixed by the folder name when there are several folders.
fn records(outs: &[(PathBuf, Pipeline)]) -> Records {
    let mut r: Records = Vec::new();
    for (out, p) in outs {
        let prefix = if outs.len() > 1 {
            format!(
                "{}/",
                out.file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default()
            )
        } else {
            String::new()
        };
        for s in &p.scenes {
            let Some(mj) = crate::io::json::read_json(&out.join(&s.name).join("metrics.json"))
            else {
                continue;
            };
            for name in p.product_names() {
                let kind = mj["methods"][&name]["evaluation"]
                    .as_str()
                    .unwrap_or("held-out blocks")
                    .to_string();
                let Some(rec) =
                    EvalRecord::load(&out.join(&s.name).join(format!("{name}.eval.bin")))
                else {
                    continue;
                };
                let key = (name.clone(), kind);
                let entry = match r.iter_mut().position(|e| e.0 == key) {
                    Some(i) => &mut r[i].1,
                    None => {
                        r.push((key, Vec::new()));
                        &mut r.last_mut().expect("just pushed").1
                    }
                };
                entry.push((
                    format!("{prefix}{}", s.name),
                    rec,
                    mj["methods"][&name].clone(),
                ));
            }
        }
    }
    r
}

/// The comparison of every method in `outs`.
pub fn compare(outs: &[(PathBuf, Pipeline)]) -> Comparison {
    let Some((_, p0)) = outs.first() else {
        return Comparison::default();
    };
    let classes: Vec<String> = p0.classes.iter().map(|c| c.name.clone()).collect();
    let recs = records(outs);
    let methods: Vec<MethodStats> = recs
        .iter()
        .filter_map(|((m, kind), rs)| method_stats(m, kind, rs, &classes, p0.seed))
        .collect();
    let pairs = pair_tests(&recs, p0.seed);
    Comparison {
        classes,
        methods,
        pairs,
    }
}

fn sum_into(acc: &mut [u64], m: &[u64]) {
    acc.iter_mut().zip(m).for_each(|(a, x)| *a += x);
}

/// The scores of one confusion matrix, by key.
fn scores(c: &[u64], classes: &[String]) -> BTreeMap<String, f64> {
    let k = classes.len();
    let mt = Confusion::from_counts(k, c.to_vec()).metrics(classes);
    let mut out = BTreeMap::new();
    out.insert("oa".to_string(), mt.oa);
    out.insert("kappa".to_string(), mt.kappa);
    out.insert("miou".to_string(), mt.miou);
    for (name, map) in [
        ("f1", &mt.f1),
        ("iou", &mt.iou),
        ("precision", &mt.precision),
        ("recall", &mt.recall),
    ] {
        for (cls, v) in map {
            if let Some(x) = v.as_f64() {
                out.insert(format!("{name}:{cls}"), x);
            }
        }
    }
    out
}

fn method_stats(
    m: &str,
    kind: &str,
    rs: &[(String, EvalRecord, serde_json::Value)],
    classes: &[String],
    seed: u64,
) -> Option<MethodStats> {
    let k = classes.len();
    let units: Vec<&Vec<u64>> = rs.iter().flat_map(|r| r.1.blocks.values()).collect();
    let mut pooled = vec![0u64; k * k];
    units.iter().for_each(|u| sum_into(&mut pooled, u));
    if pooled.iter().sum::<u64>() == 0 {
        return None;
    }
    let point = scores(&pooled, classes);
    let keys: Vec<&String> = point.keys().collect();
    let cis = bootstrap_cis(
        &units,
        vec![0u64; k * k],
        |a, u| sum_into(a, u),
        |a| {
            let sc = scores(a, classes);
            keys.iter()
                .map(|key| sc.get(*key).copied().unwrap_or(f64::NAN))
                .collect()
        },
        REPS,
        seed,
    );
    let out: BTreeMap<String, (f64, Option<(f64, f64)>)> = point
        .iter()
        .zip(cis)
        .map(|((key, v), ci)| (key.clone(), (*v, ci)))
        .collect();
    let mut mapped = vec![0u64; k];
    rs.iter().for_each(|r| sum_into(&mut mapped, &r.1.mapped));
    // Olofsson's sample is indexed [map][reference]: the transpose of the confusion matrix.
    let n: Vec<Vec<u64>> = (0..k)
        .map(|i| (0..k).map(|j| pooled[j * k + i]).collect())
        .collect();
    let pixel_area = rs.first().map(|r| r.1.pixel_area).unwrap_or(1.0);
    let (reliability, ece) = pooled_reliability(rs);
    Some(MethodStats {
        method: m.to_string(),
        kind: kind.to_string(),
        scenes: rs.iter().map(|r| r.0.clone()).collect(),
        blocks: units.len(),
        pixels: pooled.iter().sum(),
        scores: out,
        areas: olofsson(&n, &mapped, pixel_area),
        confusion: pooled,
        reliability,
        uncertainty_histogram: pooled_histogram(rs),
        ece,
    })
}

/// The reliability bins of the scenes' metrics pooled (counts add; mean confidence and
/// accuracy weighted by count), and the ECE of the pooled bins.
fn pooled_reliability(
    rs: &[(String, EvalRecord, serde_json::Value)],
) -> (Vec<(f64, f64)>, Option<f64>) {
    let mut bins: Vec<(f64, f64, f64)> = Vec::new(); // (count, confidence sum, correct)
    for (_, _, m) in rs {
        for (i, b) in m["reliability"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let n = b["count"].as_f64().unwrap_or(0.0);
            if bins.len() <= i {
                bins.resize(i + 1, (0.0, 0.0, 0.0));
            }
            bins[i].0 += n;
            bins[i].1 += n * b["confidence"].as_f64().unwrap_or(0.0);
            bins[i].2 += n * b["accuracy"].as_f64().unwrap_or(0.0);
        }
    }
    let total: f64 = bins.iter().map(|b| b.0).sum();
    let ece = (total > 0.0).then(|| {
        bins.iter()
            .filter(|b| b.0 > 0.0)
            .map(|b| (b.2 - b.1).abs() / total)
            .sum()
    });
    let pts = bins
        .iter()
        .filter(|b| b.0 > 0.0)
        .map(|b| (b.1 / b.0, b.2 / b.0))
        .collect();
    (pts, ece)
}

/// The scenes' total-uncertainty histograms of (correct, wrong) pixels, summed.
fn pooled_histogram(rs: &[(String, EvalRecord, serde_json::Value)]) -> (Vec<u64>, Vec<u64>) {
    let mut h = (Vec::new(), Vec::new());
    for (_, _, m) in rs {
        let hist = &m["total_uncertainty_histogram"];
        for (key, acc) in [("correct", &mut h.0), ("wrong", &mut h.1)] {
            for (i, v) in hist[key].as_array().into_iter().flatten().enumerate() {
                if acc.len() <= i {
                    acc.resize(i + 1, 0);
                }
                acc[i] += v.as_u64().unwrap_or(0);
            }
        }
    }
    h
}

/// Accuracy of a block's confusion matrix (None when empty).
fn accuracy(c: &[u64], k: usize) -> Option<f64> {
    let n: u64 = c.iter().sum();
    (n > 0).then(|| (0..k).map(|i| c[i * k + i]).sum::<u64>() as f64 / n as f64)
}

pub(crate) fn pair_tests(recs: &Records, seed: u64) -> Vec<PairTest> {
    let mut out = Vec::new();
    for (i, ((a, kind), ra)) in recs.iter().enumerate() {
        for ((b, kind_b), rb) in recs.iter().skip(i + 1) {
            if kind != kind_b {
                continue;
            }
            let (mut only_a, mut only_b, mut diffs) = (0, 0, Vec::new());
            for (i, j) in matched(ra, rb) {
                let (x, y) = (&ra[i].1, &rb[j].1);
                if let Some((p, q)) = x.discordant(y) {
                    only_a += p;
                    only_b += q;
                }
                for (blk, cx) in &x.blocks {
                    let Some(cy) = y.blocks.get(blk) else {
                        continue;
                    };
                    if let (Some(u), Some(v)) = (accuracy(cx, x.classes), accuracy(cy, y.classes)) {
                        diffs.push(u - v);
                    }
                }
            }
            if diffs.is_empty() {
                continue;
            }
            out.push(PairTest {
                kind: kind.clone(),
                a: a.clone(),
                b: b.clone(),
                mcnemar: mcnemar(only_a, only_b),
                mcnemar_holm: 1.0,
                blocks: diffs.len(),
                mean_diff: diffs.iter().sum::<f64>() / diffs.len() as f64,
                block_p: sign_flip_test(&diffs, FLIPS, seed),
                block_holm: 1.0,
            });
        }
    }
    adjust(&mut out);
    out
}

/// The pairs of records of two methods on the same scene, each record used once: the same
/// label first; then, across output folders (labels `folder/scene`), the same scene name
/// with the same reference pixels (a season and a single-date run of one scene, say).
fn matched(
    ra: &[(String, EvalRecord, serde_json::Value)],
    rb: &[(String, EvalRecord, serde_json::Value)],
) -> Vec<(usize, usize)> {
    let bare = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let mut used = vec![false; rb.len()];
    let mut out = Vec::new();
    let mut rest = Vec::new();
    for (i, x) in ra.iter().enumerate() {
        match (0..rb.len()).find(|&j| !used[j] && rb[j].0 == x.0) {
            Some(j) => {
                used[j] = true;
                out.push((i, j));
            }
            None => rest.push(i),
        }
    }
    for i in rest {
        let (name, x) = (bare(&ra[i].0), &ra[i].1);
        if let Some(j) = (0..rb.len())
            .find(|&j| !used[j] && bare(&rb[j].0) == name && x.same_reference(&rb[j].1))
        {
            used[j] = true;
            out.push((i, j));
        }
    }
    out
}

/// Holm within each kind and each family of tests.
fn adjust(pairs: &mut [PairTest]) {
    let kinds: Vec<String> = pairs.iter().map(|p| p.kind.clone()).collect();
    for kind in kinds.iter().collect::<std::collections::BTreeSet<_>>() {
        let idx: Vec<usize> = (0..pairs.len())
            .filter(|&i| &pairs[i].kind == kind)
            .collect();
        let m = holm(&idx.iter().map(|&i| pairs[i].mcnemar.p).collect::<Vec<_>>());
        let b = holm(&idx.iter().map(|&i| pairs[i].block_p).collect::<Vec<_>>());
        for (j, &i) in idx.iter().enumerate() {
            pairs[i].mcnemar_holm = m[j];
            pairs[i].block_holm = b[j];
        }
    }
}

/// A score with its interval, `0.912 [0.90, 0.93]`.
pub fn with_ci(v: &(f64, Option<(f64, f64)>)) -> String {
    match v.1 {
        Some((lo, hi)) => format!("{:.3} [{lo:.3}, {hi:.3}]", v.0),
        None => format!("{:.3}", v.0),
    }
}

impl Comparison {
    /// The comparison as JSON (for `<out>/metrics.json`): per method and kind the scores with
    /// their intervals, per pair the tests and the verdict.
    pub fn to_json(&self) -> serde_json::Value {
        let methods: Vec<serde_json::Value> = self
            .methods
            .iter()
            .map(|m| {
                let scores: serde_json::Map<String, serde_json::Value> = m
                    .scores
                    .iter()
                    .map(|(k, (v, ci))| {
                        (
                            k.clone(),
                            serde_json::json!({"value": v, "ci95": ci.map(|c| [c.0, c.1])}),
                        )
                    })
                    .collect();
                serde_json::json!({"method": m.method, "evaluation": m.kind, "scenes": m.scenes,
                    "blocks": m.blocks, "pixels": m.pixels, "scores": scores})
            })
            .collect();
        let pairs: Vec<serde_json::Value> = self
            .pairs
            .iter()
            .map(|p| serde_json::json!({"evaluation": p.kind, "a": p.a, "b": p.b,
                "only_a_right": p.mcnemar.only_a, "only_b_right": p.mcnemar.only_b,
                "mcnemar_p": p.mcnemar.p, "mcnemar_exact": p.mcnemar.exact, "mcnemar_p_holm": p.mcnemar_holm,
                "blocks": p.blocks, "mean_block_accuracy_difference": p.mean_diff,
                "block_p": p.block_p, "block_p_holm": p.block_holm, "verdict": p.verdict()}))
            .collect();
        serde_json::json!({"bootstrap_resamples": REPS, "methods": methods, "pairs": pairs})
    }
}
