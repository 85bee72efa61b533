//! `geofuse active`: the active-learning loop simulated with the training scenes' dense labels
//! as the oracle. Each strategy and seed starts from the same few labelled patches per class
//! and training scene; each round trains the pipeline's first method on the labelled pixels
//! (the training scenes read them as `reference` points), maps every scene, scores the
//! held-out scenes, asks `suggest` for the next points by the strategy and labels them from the
//! dense labels. `<out>/active.json` holds held-out OA and mIoU against labelled pixels; the
//! report plots them.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::suggest::{suggest_in, SuggestOptions};
use super::{read_json, run_pipeline, write_json, Log, RunOptions};
use crate::config::{Pipeline, ReferenceDef, SceneRoles};
use crate::error::{Error, Result};
use crate::io::points::{write_gpkg, Point, Value as Field};
use crate::io::reader::RasterReader;
use crate::raster::{Grid, Window};
use crate::suggest::Rank;

/// What the simulation runs.
#[derive(Debug, Clone)]
pub struct ActiveOptions {
    /// Rounds of suggestions after the start.
    pub rounds: usize,
    /// Points suggested per round.
    pub n: usize,
    /// Strategies compared.
    pub strategies: Vec<Rank>,
    /// Repeats (start patches, suggestion ties, training seed).
    pub seeds: usize,
    /// Labelled 5 x 5 patches per class and training scene at the start.
    pub start: usize,
}

/// Side of a start patch in pixels.
const PATCH: usize = 5;

/// A training scene's dense labels: the oracle.
struct Oracle {
    name: String,
    grid: Grid,
    labels: Vec<f32>,
}

impl Oracle {
    /// The class id at world (`x`, `y`), if the pixel holds one of `ids`.
    fn at(&self, x: f64, y: f64, ids: &[u8]) -> Option<u8> {
        let t = self.grid.transform;
        let c = ((x - t[0]) / t[1]).floor();
        let r = ((y - t[3]) / t[5]).floor();
        if c < 0.0 || r < 0.0 || c >= self.grid.width as f64 || r >= self.grid.height as f64 {
            return None;
        }
        let v = self.labels[r as usize * self.grid.width + c as usize];
        ids.iter().copied().find(|&i| i as f32 == v)
    }

    /// A labelled point at the centre of pixel (`r`, `c`).
    fn point(&self, r: usize, c: usize, class: u8) -> Point {
        let t = self.grid.transform;
        let (x, y) = (
            t[0] + (c as f64 + 0.5) * t[1],
            t[3] + (r as f64 + 0.5) * t[5],
        );
        Point {
            x,
            y,
            crs_wkt: self.grid.crs_wkt.clone(),
            values: vec![Field::Text(self.name.clone()), Field::Int(class as i64)],
        }
    }
}

/// Reads the dense labels of every training scene; refuses a training scene without them.
fn oracles(p: &Pipeline, path: &Path, roles: &SceneRoles) -> Result<Vec<Oracle>> {
    roles
        .training
        .iter()
        .map(|&i| {
            let s = &p.scenes[i];
            let l = s.labels.as_ref().ok_or_else(|| Error::config(path, format!("scene `{}` trains but has no `labels` raster: the simulation labels suggested pixels from dense labels on every training scene", s.name)))?;
            let r = RasterReader::open(l)?;
            let grid = r.grid()?;
            let v = r.read_band(1, Window::full(grid.width, grid.height))?;
            Ok(Oracle {
                name: s.name.clone(),
                grid,
                labels: v.iter().copied().collect(),
            })
        })
        .collect()
}

/// The start: `per_class` pure 5 x 5 patches of each class in each training scene, at
/// positions drawn with `seed`.
fn start_points(oracles: &[Oracle], ids: &[u8], per_class: usize, seed: u64) -> Vec<Point> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut out = Vec::new();
    for o in oracles {
        let (w, h) = (o.grid.width, o.grid.height);
        if w < PATCH || h < PATCH {
            continue;
        }
        let mut found = vec![0usize; ids.len()];
        for _ in 0..20_000 {
            let (r0, c0) = (rng.below(h - PATCH + 1), rng.below(w - PATCH + 1));
            let v = o.labels[r0 * w + c0];
            let Some(k) = ids.iter().position(|&i| i as f32 == v) else {
                continue;
            };
            let pure =
                (0..PATCH * PATCH).all(|j| o.labels[(r0 + j / PATCH) * w + c0 + j % PATCH] == v);
            if found[k] >= per_class || !pure {
                continue;
            }
            found[k] += 1;
            for j in 0..PATCH * PATCH {
                out.push(o.point(r0 + j / PATCH, c0 + j % PATCH, ids[k]));
            }
            if found.iter().all(|&f| f >= per_class) {
                break;
            }
        }
    }
    out
}

/// The pipeline of one round: the first method, the training scenes reading `pool` (their
/// own points) as reference data, a seed of its own, output in `out`.
fn round_pipeline(
    p: &Pipeline,
    roles: &SceneRoles,
    pool: &Path,
    seed: u64,
    out: PathBuf,
) -> Pipeline {
    let mut q = p.clone();
    q.methods.truncate(1);
    q.seed = p.seed.wrapping_add(seed);
    q.split.seed = Some(p.split_seed());
    q.study = None;
    q.output = out;
    for &i in &roles.training {
        let s = &mut q.scenes[i];
        s.labels = None;
        s.reference = Some(ReferenceDef {
            path: pool.to_path_buf(),
            class_field: "class".into(),
            filter: Some(format!("scene = '{}'", s.name.replace('\'', "''"))),
            layer: None,
        });
    }
    q
}

/// Held-out-scene OA and mIoU of the run in `out`.
fn held_out(out: &Path) -> Value {
    let m = read_json(&out.join("metrics.json")).unwrap_or(Value::Null);
    let v = m["pooled"]
        .as_object()
        .and_then(|o| o.values().next())
        .map(|v| v["held-out scene"].clone())
        .unwrap_or(Value::Null);
    json!({"oa": v["oa"], "miou": v["miou"]})
}

/// One strategy and seed: the rounds, each a run; returns their records.
fn one_loop(
    p: &Pipeline,
    path: &Path,
    (roles, oracles): (&SceneRoles, &[Oracle]),
    (rank, seed): (Rank, usize),
    o: &ActiveOptions,
    opts: &RunOptions,
) -> Result<Vec<Value>> {
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let dir = p
        .output
        .join("active")
        .join(format!("{}-{seed}", rank.name()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create folder", e))?;
    let mut pool = start_points(oracles, &ids, o.start, p.seed ^ (seed as u64 + 1));
    let crs = oracles[0].grid.crs_wkt.clone();
    let pool_path = dir.join("labelled.gpkg");
    let mut records = Vec::new();
    for round in 0..=o.rounds {
        write_gpkg(&pool_path, "labelled", &crs, &["scene", "class"], &pool)?;
        let out = dir.join(format!("round-{round}"));
        let q = round_pipeline(p, roles, &pool_path, seed as u64, out.clone());
        let ro = RunOptions {
            out: None,
            quiet: true,
            ..opts.clone()
        };
        run_pipeline(q.clone(), path, &ro)?;
        records.push(
            json!({"strategy": rank.name(), "seed": seed, "round": round,
            "labelled_pixels": pool.len(), "results": held_out(&out),
            "folder": format!("active/{}-{seed}/round-{round}", rank.name())}),
        );
        if round == o.rounds {
            break;
        }
        let so = SuggestOptions {
            method: None,
            n: o.n,
            per_class: false,
            by: rank,
            min_distance: None,
            out: None,
            seed: seed as u64,
        };
        let (points, _) = suggest_in(&q, &out, &so)?;
        for pt in points {
            let Field::Text(scene) = &pt.values[1] else {
                continue;
            };
            let Some(or) = oracles.iter().find(|x| &x.name == scene) else {
                continue;
            };
            if let Some(class) = or.at(pt.x, pt.y, &ids) {
                let (r, c) = pixel_of(&or.grid, pt.x, pt.y);
                pool.push(or.point(r, c, class));
            }
        }
    }
    Ok(records)
}

fn pixel_of(g: &Grid, x: f64, y: f64) -> (usize, usize) {
    let t = g.transform;
    (
        ((y - t[3]) / t[5]).floor() as usize,
        ((x - t[0]) / t[1]).floor() as usize,
    )
}

/// Each pair of strategies' last-round maps on the held-out scenes (records of every seed
/// pooled, scenes labelled by seed): McNemar and block tests with Holm, as the report's.
fn last_round_tests(p: &Pipeline, roles: &SceneRoles, o: &ActiveOptions) -> Value {
    let method = &p.methods[0].name;
    let mut recs: crate::report::compare::Records = Vec::new();
    for rank in &o.strategies {
        let mut rs = Vec::new();
        for seed in 0..o.seeds {
            let dir = p
                .output
                .join("active")
                .join(format!("{}-{seed}", rank.name()))
                .join(format!("round-{}", o.rounds));
            for &i in &roles.held_out {
                let name = &p.scenes[i].name;
                let f = dir.join(name).join(format!("{method}.eval.bin"));
                if let Some(r) = crate::eval::record::EvalRecord::load(&f) {
                    rs.push((format!("seed{seed}/{name}"), r, Value::Null));
                }
            }
        }
        recs.push(((rank.name().to_string(), "held-out scene".to_string()), rs));
    }
    let tests: Vec<Value> = crate::report::compare::pair_tests(&recs, p.seed)
        .iter()
        .map(|t| {
            json!({"a": t.a, "b": t.b, "blocks": t.blocks,
            "mean_block_accuracy_difference": t.mean_diff, "block_p": t.block_p,
            "block_p_holm": t.block_holm, "mcnemar_p_holm": t.mcnemar_holm, "verdict": t.verdict()})
        })
        .collect();
    Value::Array(tests)
}

/// Runs the simulation of the pipeline at `path`; returns the report's path.
pub fn run_active(path: &Path, o: &ActiveOptions, opts: &RunOptions) -> Result<PathBuf> {
    let mut p = super::load_pipeline(path, opts.out.as_deref())?;
    // Margin sampling reads the products' margin band.
    p.product.margin |= o.strategies.contains(&Rank::Margin);
    let roles = SceneRoles::resolve(&p.scenes, &p.training, &p.evaluation, p.split_seed())
        .map_err(|m| Error::config(path, m))?;
    if roles.held_out.is_empty() {
        return Err(Error::config(
            path,
            "the simulation scores held-out scenes; list them in [evaluation] scenes",
        ));
    }
    if o.n == 0 || o.seeds == 0 || o.start == 0 || o.strategies.is_empty() {
        return Err(Error::config(
            path,
            "--n, --seeds, --start and --by must each ask for at least one",
        ));
    }
    let oracles = oracles(&p, path, &roles)?;
    let log = Log { quiet: opts.quiet };
    let mut runs = Vec::new();
    for seed in 0..o.seeds {
        for &rank in &o.strategies {
            log.info(&format!(
                "active learning: {} sampling, seed {seed}",
                rank.name()
            ));
            runs.extend(one_loop(
                &p,
                path,
                (&roles, &oracles),
                (rank, seed),
                o,
                opts,
            )?);
        }
    }
    let names: Vec<&str> = o.strategies.iter().map(|r| r.name()).collect();
    let tests = last_round_tests(&p, &roles, o);
    let v = json!({"method": p.methods[0].name, "rounds": o.rounds, "n": o.n,
        "start_patches_per_class": o.start, "seeds": o.seeds, "strategies": names, "runs": runs,
        "tests": tests});
    write_json(&p.output.join("active.json"), &v)?;
    super::shared::write_run_record(&p.output, path)?;
    super::shared::finish(&p.output, &p, &log)
}
