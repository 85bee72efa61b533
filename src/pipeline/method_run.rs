//! Running one method on one scene through the [`crate::method`] interface: train or load
//! its model, predict every tile into the product, evaluate on the held-out blocks.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::config::{MethodDef, PostProcess};
use crate::error::Result;
use crate::eval::calibration::UncertaintyStats;
use crate::eval::class_index;
use crate::eval::metrics::Confusion;
use crate::io::writer::{ProductSpec, ProductWriter};
use crate::method::{Model, SceneContext, TilePredictor};
use crate::product::{ProductBand, ProductTile, NODATA};
use crate::scene::SceneReader;
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
    /// The product's bands (names, descriptions, scale).
    pub bands: Vec<crate::io::writer::ByteBand>,
    /// The post-process of a regularised product, in words.
    pub postprocess: Option<String>,
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

/// Runs a method's model on one scene, writing `<scene_out>/<method>.tif` and, when the
/// method has a post-process, `<scene_out>/<method>-regularised.tif` from the same
/// probabilities; `metadata` are the products' common metadata items.
pub fn run_method(
    model: &dyn Model,
    def: &MethodDef,
    ctx: &SceneContext,
    scene_out: &Path,
    metadata: Vec<(String, String)>,
) -> Result<(MethodOutcome, Option<MethodOutcome>)> {
    let t0 = Instant::now();
    let (p, src) = (ctx.pipeline, ctx.scene);
    let predictor = model.predictor(ctx)?;
    let band_meanings = model.band_meanings(p.classes.len());
    let mut md = metadata;
    md.push(("GEOFUSE_MODEL_HASH".into(), model.hash().to_string()));
    md.extend(model.metadata());
    let bands =
        crate::product::product_bands(&band_meanings, src.season.is_some(), p.product.margin);
    let spec = ProductSpec {
        grid: src.grid.clone(),
        bands: bands.clone(),
        classes: p.classes.clone(),
        metadata: md.clone(),
        nodata: NODATA,
    };
    let writer = ProductWriter::create(&scene_out.join(format!("{}.tif", def.name)), &spec)?;
    let reg = match (def.regularisation(), def.regularised_name()) {
        (Some(pp), Some(name)) => Some(Regularised::create(pp, &name, spec, ctx, scene_out)?),
        _ => None,
    };
    let evaluation = predict_scene(&*predictor, ctx, &writer, reg.as_ref())?;
    let product = writer.finish()?;
    let predict_seconds = t0.elapsed().as_secs_f64();
    save_record(ctx, &evaluation, scene_out, &def.name)?;
    let outcome = |product: PathBuf, evaluation: Evaluation, bands, postprocess| MethodOutcome {
        product,
        model: model.path().to_path_buf(),
        model_hash: model.hash().to_string(),
        bands,
        postprocess,
        evaluation: src.labels.as_ref().map(|_| evaluation),
        model_metrics: model.metrics(),
        samples_per_class: model.samples_per_class(),
        blocks: ctx.split.counts(),
        predict_seconds,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let raw = outcome(product, evaluation, bands, None);
    let Some(reg) = reg else {
        return Ok((raw, None));
    };
    let (product, ev, bands, how) = reg.finish(ctx, &predictor_ids(p))?;
    save_record(
        ctx,
        &ev,
        scene_out,
        &def.regularised_name().unwrap_or_default(),
    )?;
    Ok((raw, Some(outcome(product, ev, bands, Some(how)))))
}

fn predictor_ids(p: &crate::config::Pipeline) -> Vec<u8> {
    p.classes.iter().map(|c| c.id).collect()
}

/// Saves the per-block record of a product's held-out evaluation (`<name>.eval.bin`).
fn save_record(ctx: &SceneContext, ev: &Evaluation, scene_out: &Path, name: &str) -> Result<()> {
    let (p, src) = (ctx.pipeline, ctx.scene);
    if src.labels.is_none() {
        return Ok(());
    }
    let record = ev
        .record
        .clone()
        .finish(p.classes.len(), src.grid.pixel_area());
    record.save(&scene_out.join(format!("{name}.eval.bin")))
}

/// The regularised product of a method being written.
struct Regularised<'a> {
    pp: &'a PostProcess,
    writer: ProductWriter,
    bands: Vec<crate::io::writer::ByteBand>,
    how: String,
    /// Pixels of the exclusion mask over the whole scene (left as predicted).
    excluded: Option<ndarray::Array2<bool>>,
}

/// The pixels of the scene's grid that the post-process's exclusion polygons cover.
fn exclusion_mask(
    pp: &PostProcess,
    grid: &crate::raster::Grid,
) -> Result<Option<ndarray::Array2<bool>>> {
    let Some(path) = &pp.exclusion else {
        return Ok(None);
    };
    let features: Vec<crate::io::vector::ReferenceFeature> =
        crate::io::vector::read_geometries(path, &grid.crs_wkt)?
            .into_iter()
            .enumerate()
            .map(|(i, geometry)| crate::io::vector::ReferenceFeature {
                fid: i as u64,
                class: 1,
                geometry,
            })
            .collect();
    let r = crate::reference::rasterize(&features, grid)
        .map_err(|m| crate::error::Error::input(path, format!("exclusion mask: {m}")))?;
    Ok(Some(r.labels.map(|&l| l != crate::reference::UNLABELLED)))
}

impl<'a> Regularised<'a> {
    /// Creates the staging product `<scene_out>/<name>.tif` with the raw product's `spec`.
    fn create(
        pp: &'a PostProcess,
        name: &str,
        mut spec: ProductSpec,
        ctx: &SceneContext,
        scene_out: &Path,
    ) -> Result<Self> {
        let how = pp.describe(ctx.scene.grid.pixel_area());
        let smoothed = pp.smoothing == crate::config::Smoothing::Bayesian;
        spec.bands = crate::product::regularised_bands(spec.bands, &how, smoothed);
        for (k, v) in spec.metadata.iter_mut() {
            if k == "GEOFUSE_METHOD" {
                *v = name.to_string();
            }
        }
        spec.metadata
            .push(("GEOFUSE_POSTPROCESS".into(), how.clone()));
        let excluded = exclusion_mask(pp, &ctx.scene.grid)?;
        let writer = ProductWriter::create(&scene_out.join(format!("{name}.tif")), &spec)?;
        Ok(Regularised {
            pp,
            writer,
            bands: spec.bands,
            how,
            excluded,
        })
    }

    /// Sieves the class band when asked, evaluates the product on the held-out pixels and
    /// moves it into place.
    fn finish(
        self,
        ctx: &SceneContext,
        ids: &[u8],
    ) -> Result<(
        PathBuf,
        Evaluation,
        Vec<crate::io::writer::ByteBand>,
        String,
    )> {
        let g = &ctx.scene.grid;
        if let Some(n) = self.pp.sieve_pixels(g.pixel_area()) {
            // Excluded pixels become nodata for the sieve (GDAL's mask), then get their class
            // back: they neither change nor merge into a patch.
            let kept = self.hide_excluded(ctx)?;
            self.writer.sieve_classes(n, self.pp.connectedness)?;
            for (win, classes) in kept {
                self.writer.write_band(win, 1, &classes)?;
            }
        }
        let ev = evaluate_written(&self.writer, ctx, ids)?;
        Ok((self.writer.finish()?, ev, self.bands, self.how))
    }
}

impl Regularised<'_> {
    /// Writes nodata over the excluded pixels of the class band; returns the class bytes of
    /// every window it changed.
    fn hide_excluded(
        &self,
        ctx: &SceneContext,
    ) -> Result<Vec<(crate::raster::Window, ndarray::Array2<u8>)>> {
        let Some(ex) = &self.excluded else {
            return Ok(Vec::new());
        };
        let g = &ctx.scene.grid;
        let mut kept = Vec::new();
        for t in tiles(g.width, g.height, ctx.pipeline.tiling.tile_size, 0) {
            let w = t.core;
            let part = ex.slice(ndarray::s![w.row..w.row + w.height, w.col..w.col + w.width]);
            if !part.iter().any(|&e| e) {
                continue;
            }
            let classes = self
                .writer
                .read_core(w)?
                .index_axis_move(ndarray::Axis(0), 0);
            let mut hidden = classes.clone();
            hidden.zip_mut_with(&part, |v, &e| {
                if e {
                    *v = NODATA;
                }
            });
            self.writer.write_band(w, 1, &hidden)?;
            kept.push((w, classes));
        }
        Ok(kept)
    }
}

/// The held-out evaluation of a written (staging) product, read back tile by tile.
fn evaluate_written(writer: &ProductWriter, ctx: &SceneContext, ids: &[u8]) -> Result<Evaluation> {
    let mut all = Evaluation::new(ids.len());
    if ctx.scene.labels.is_none() {
        return Ok(all);
    }
    let g = &ctx.scene.grid;
    let reader = SceneReader::open(ctx.scene)?;
    for t in tiles(g.width, g.height, ctx.pipeline.tiling.tile_size, 0) {
        let bands = ProductTile(writer.read_core(t.core)?);
        let best = bands
            .0
            .index_axis(ndarray::Axis(0), 0)
            .map(|&id| ids.iter().position(|&i| i == id).unwrap_or(usize::MAX));
        let labels = reader.read_labels(t.core)?;
        all.merge(&evaluate(
            labels.as_ref(),
            None,
            &bands,
            &best,
            ctx,
            &t,
            ids,
        ));
    }
    Ok(all)
}

/// The tile whose core is `t`'s grown by `halo` (clipped to the scene), read with `t`'s
/// window (which holds the predictor's halo around it).
fn grown(t: &Tile, halo: usize, (width, height): (usize, usize)) -> Tile {
    let c = t.core;
    let (r0, c0) = (c.row.saturating_sub(halo), c.col.saturating_sub(halo));
    let r1 = (c.row + c.height + halo).min(height);
    let c1 = (c.col + c.width + halo).min(width);
    Tile {
        index: t.index,
        core: crate::raster::Window {
            col: c0,
            row: r0,
            width: c1 - c0,
            height: r1 - r0,
        },
        read: t.read,
    }
}

/// Predicts every tile of the scene into `writer` (and the regularised product, when there
/// is one), in parallel when the predictor allows (one reader per worker), and returns the
/// held-out evaluation of the raw product.
fn predict_scene(
    predictor: &dyn TilePredictor,
    ctx: &SceneContext,
    writer: &ProductWriter,
    reg: Option<&Regularised>,
) -> Result<Evaluation> {
    let (p, src) = (ctx.pipeline, ctx.scene);
    let g = &src.grid;
    let ids = predictor_ids(p);
    let extra = reg.map_or(0, |r| r.pp.halo());
    let margin = p.product.margin;
    let tl = tiles(
        g.width,
        g.height,
        p.tiling.tile_size,
        predictor.halo() + extra,
    );
    let progress = ctx.log.progress("predicting", tl.len());
    let one = |reader: &SceneReader, t: &Tile| -> Result<Evaluation> {
        super::stop::check()?;
        let gt = grown(t, extra, (g.width, g.height));
        let pred = predictor.predict(reader, &gt)?;
        let off = (t.core.row - gt.core.row, t.core.col - gt.core.col);
        let dims = (t.core.height, t.core.width);
        let core = pred.probs.crop(off, dims);
        let (mut bands, best) = core.to_tile(&ids);
        if margin {
            bands.0 =
                ndarray::concatenate(ndarray::Axis(0), &[bands.0.view(), core.margins().view()])
                    .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
        }
        writer.write_core(t.core, &bands.0)?;
        let labels = pred.labels.as_ref().map(|l| {
            l.slice(ndarray::s![off.0..off.0 + dims.0, off.1..off.1 + dims.1])
                .to_owned()
        });
        let uncal = pred
            .uncalibrated
            .as_ref()
            .map(|f| move |r: usize, c: usize| f(off.0 + r, off.1 + c));
        let ev = evaluate(
            labels.as_ref(),
            uncal
                .as_ref()
                .map(|f| f as &dyn Fn(usize, usize) -> Vec<f32>),
            &bands,
            &best,
            ctx,
            t,
            &ids,
        );
        if let Some(r) = reg {
            let rb_last = bands.0.shape()[0] - 1;
            let c = gt.core;
            let usable = ndarray::Array2::from_shape_fn(pred.probs.modalities.dim(), |(y, x)| {
                pred.probs.modalities[[y, x]] != 0
                    && !r
                        .excluded
                        .as_ref()
                        .is_some_and(|e| e[[c.row + y, c.col + x]])
            });
            let (rb, _) = crate::postprocess::regularise(
                r.pp,
                &pred.probs,
                usable.view(),
                off,
                (bands, best),
                (&ids, margin.then_some(rb_last)),
            );
            r.writer.write_core(t.core, &rb.0)?;
        }
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
    labels: Option<&ndarray::Array2<f32>>,
    uncalibrated: Option<&dyn Fn(usize, usize) -> Vec<f32>>,
    bands: &ProductTile,
    best: &ndarray::Array2<usize>,
    ctx: &SceneContext,
    t: &Tile,
    ids: &[u8],
) -> Evaluation {
    let mut ev = Evaluation::new(ids.len());
    let Some(labels) = labels else {
        return ev;
    };
    let mut uncal = uncalibrated.map(|_| UncertaintyStats::default());
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
        ev.uncertainty.add_product_pixel(bands, r, c, ci == b);
        if let (Some(u), Some(f)) = (uncal.as_mut(), uncalibrated) {
            let up = f(r, c);
            let uk = (0..up.len())
                .max_by(|&a, &b| up[a].total_cmp(&up[b]))
                .unwrap_or(0);
            u.add(
                up[uk],
                uk == ci,
                0,
                0,
                bands.get(ProductBand::Modalities, r, c),
            );
        }
    }
    ev.uncalibrated = uncal;
    ev
}
