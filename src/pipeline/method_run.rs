//! Running one method on one scene through the [`crate::method`] interface: train or load
//! its model, predict every tile into the product, evaluate on the held-out blocks.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::config::MethodDef;
use crate::error::Result;
use crate::eval::calibration::UncertaintyStats;
use crate::eval::class_index;
use crate::eval::metrics::Confusion;
use crate::io::writer::{ProductSpec, ProductWriter};
use crate::method::{Model, SceneContext, TilePrediction, TilePredictor};
use crate::pipeline::scene::SceneReader;
use crate::product::{BandMeanings, ProductTile, NODATA};
use crate::tiler::{tiles, Tile};

/// What one method run produced.
#[derive(Debug, Clone)]
pub struct MethodOutcome {
    /// Product COG.
    pub product: PathBuf,
    /// Model file (or learned path stem).
    pub model: PathBuf,
    /// Model hash.
    pub model_hash: String,
    /// What the product's uncertainty bands mean.
    pub band_meanings: BandMeanings,
    /// Held-out evaluation (None without labels).
    pub evaluation: Option<Evaluation>,
    /// Extra metrics of the model (e.g. `temperature`).
    pub model_metrics: serde_json::Map<String, serde_json::Value>,
    /// Training samples per class.
    pub samples_per_class: Vec<usize>,
    /// (train, test) block counts.
    pub blocks: (usize, usize),
    /// Wall seconds of the prediction pass (features + classifier + writing).
    pub predict_seconds: f64,
    /// Wall seconds of this product (the model is trained once per run, see `train_seconds`).
    pub seconds: f64,
}

/// Held-out statistics of a product.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Confusion matrix.
    pub confusion: Confusion,
    /// Uncertainty statistics of the product's bands.
    pub uncertainty: UncertaintyStats,
    /// Statistics of the uncalibrated probabilities (models that calibrate).
    pub uncalibrated: Option<UncertaintyStats>,
    /// Per-block and per-pixel record for the comparison statistics.
    pub record: crate::eval::record::RecordParts,
}

impl Evaluation {
    fn new(k: usize) -> Evaluation {
        Evaluation {
            confusion: Confusion::new(k),
            uncertainty: UncertaintyStats::default(),
            uncalibrated: None,
            record: Default::default(),
        }
    }

    fn merge(&mut self, o: &Evaluation) {
        self.confusion.merge(&o.confusion);
        self.record.merge(&o.record);
        self.uncertainty.merge(&o.uncertainty);
        if let Some(u) = &o.uncalibrated {
            self.uncalibrated
                .get_or_insert_with(UncertaintyStats::default)
                .merge(u);
        }
    }
}

/// Runs a method's model on one scene, writing `<scene_out>/<method>.tif`; `metadata` are
/// the product's common metadata items.
pub fn run_method(
    model: &dyn Model,
    def: &MethodDef,
    ctx: &SceneContext,
    scene_out: &Path,
    metadata: Vec<(String, String)>,
) -> Result<MethodOutcome> {
    let t0 = Instant::now();
    let (p, src) = (ctx.pipeline, ctx.scene);
    let predictor = model.predictor(ctx)?;
    let band_meanings = model.band_meanings(p.classes.len());
    let mut md = metadata;
    md.push(("GEOFUSE_MODEL_HASH".into(), model.hash().to_string()));
    md.extend(model.metadata());
    let spec = ProductSpec {
        grid: src.grid.clone(),
        bands: crate::product::product_bands(&band_meanings, src.season.is_some()),
        classes: p.classes.clone(),
        metadata: md,
        nodata: NODATA,
    };
    let writer = ProductWriter::create(&scene_out.join(format!("{}.tif", def.name)), &spec)?;
    let evaluation = predict_scene(&*predictor, ctx, &writer)?;
    let product = writer.finish()?;
    if src.labels.is_some() {
        let [_, a, b, _, d, e] = src.grid.transform;
        let record = evaluation
            .record
            .clone()
            .finish(p.classes.len(), (a * e - b * d).abs());
        record.save(&scene_out.join(format!("{}.eval.bin", def.name)))?;
    }
    Ok(MethodOutcome {
        product,
        model: model.path().to_path_buf(),
        model_hash: model.hash().to_string(),
        band_meanings,
        evaluation: src.labels.as_ref().map(|_| evaluation),
        model_metrics: model.metrics(),
        samples_per_class: model.samples_per_class(),
        blocks: ctx.split.counts(),
        predict_seconds: t0.elapsed().as_secs_f64(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Predicts every tile of the scene into `writer` (in parallel when the predictor allows,
/// one reader per worker) and returns the held-out evaluation.
fn predict_scene(
    predictor: &dyn TilePredictor,
    ctx: &SceneContext,
    writer: &ProductWriter,
) -> Result<Evaluation> {
    let (p, src) = (ctx.pipeline, ctx.scene);
    let g = &src.grid;
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let tl = tiles(g.width, g.height, p.tiling.tile_size, predictor.halo());
    let progress = ctx.log.progress("predicting", tl.len());
    let one = |reader: &SceneReader, t: &Tile| -> Result<Evaluation> {
        super::stop::check()?;
        let pred = predictor.predict(reader, t)?;
        let (bands, best) = pred.probs.to_tile(&ids);
        writer.write_core(t.core, &bands.0)?;
        let ev = evaluate(&pred, &bands, &best, ctx, t, &ids);
        progress.tick();
        Ok(ev)
    };
    let parts: Vec<Evaluation> = if predictor.parallel() {
        tl.par_iter()
            .map_init(
                || SceneReader::open(src),
                |reader, t| one(reader.as_ref().map_err(Clone::clone)?, t),
            )
            .collect::<Result<_>>()?
    } else {
        let reader = SceneReader::open(src)?;
        tl.iter().map(|t| one(&reader, t)).collect::<Result<_>>()?
    };
    let mut all = Evaluation::new(ids.len());
    parts.iter().for_each(|e| all.merge(e));
    Ok(all)
}

/// The held-out pixels of one tile: confusion, product uncertainty bands, and the
/// uncalibrated probabilities where the model has them.
fn evaluate(
    pred: &TilePrediction,
    bands: &ProductTile,
    best: &ndarray::Array2<usize>,
    ctx: &SceneContext,
    t: &Tile,
    ids: &[u8],
) -> Evaluation {
    let mut ev = Evaluation::new(ids.len());
    let Some(labels) = &pred.labels else {
        return ev;
    };
    let mut uncal = pred
        .uncalibrated
        .as_ref()
        .map(|_| UncertaintyStats::default());
    ev.record = crate::eval::record::RecordParts::tile((t.core.row, t.core.col), ids.len());
    for &b in best.iter().filter(|&&b| b != usize::MAX) {
        ev.record.map(b);
    }
    for ((r, c), &v) in labels.indexed_iter() {
        let (row, col) = (t.core.row + r, t.core.col + c);
        let b = best[[r, c]];
        let Some(ci) = class_index(ids, v).filter(|_| ctx.evaluates(row, col)) else {
            continue;
        };
        let block = ctx.split.block_of(row, col);
        ev.record.add(block, ci, (b != usize::MAX).then_some(b));
        if b == usize::MAX {
            continue;
        }
        ev.confusion.add(ci, b);
        bands.add_to_stats(&mut ev.uncertainty, r, c, ci == b);
        if let (Some(u), Some(f)) = (uncal.as_mut(), &pred.uncalibrated) {
            let up = f(r, c);
            let uk = (0..up.len())
                .max_by(|&a, &b| up[a].total_cmp(&up[b]))
                .unwrap_or(0);
            u.add(up[uk], uk == ci, 0, 0, pred.probs.modalities[[r, c]]);
        }
    }
    ev.uncalibrated = uncal;
    ev
}
