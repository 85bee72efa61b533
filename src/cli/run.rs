//! The pipeline commands: `run`, `train`, `predict`, `merge`, `features`.

use std::path::PathBuf;

use super::args::{parse_shard, StageOptions};
use crate::pipeline::{self, RunOptions};
use crate::scene;

#[derive(clap::Args)]
pub(super) struct RunArgs {
    /// Pipeline file (TOML).
    pipeline: PathBuf,
    /// Output folder (overrides the pipeline's `output`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Redo every product even when its hashes match.
    #[arg(long)]
    force: bool,
    /// Run the I-th of N disjoint parts (0-based), e.g. 0/4 (Slurm arrays, Indexed Jobs).
    #[arg(long, value_parser = parse_shard, default_value = "0/1")]
    shard: (usize, usize),
    /// Compute device for learned methods: auto (a GPU through wgpu when present, else the
    /// CPU), cpu, or wgpu. Hand-crafted methods always run on the CPU.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "wgpu"])]
    device: String,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

pub(super) fn cmd_run(a: RunArgs) -> crate::Result<()> {
    let RunArgs {
        pipeline: path,
        out,
        force,
        shard,
        device,
        quiet,
    } = a;
    let s = pipeline::run(
        &path,
        &RunOptions {
            out,
            force,
            shard,
            quiet,
            device,
        },
    )?;
    print_summary(&s);
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct TrainArgs {
    /// Pipeline file (TOML).
    pipeline: PathBuf,
    /// Only this scene.
    #[arg(long)]
    scene: Option<String>,
    /// Only this method.
    #[arg(long)]
    method: Option<String>,
    /// Retrain even when the saved model is up to date.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: StageOptions,
}

/// `geofuse train`.
pub(super) fn cmd_train(a: TrainArgs) -> crate::Result<()> {
    let opts = RunOptions {
        force: a.force,
        ..a.common.run_options()
    };
    let trained =
        pipeline::train_models(&a.pipeline, &opts, a.scene.as_deref(), a.method.as_deref())?;
    for t in trained {
        println!(
            "{}/{}: {} (hash {})",
            t.scene,
            t.method,
            t.path.display(),
            t.hash
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct PredictArgs {
    /// Pipeline file (TOML).
    pipeline: PathBuf,
    /// Method whose settings and name are used.
    #[arg(long)]
    method: String,
    /// Saved model: a `.model` file (hand-crafted) or a `.bpk`/`.json` stem (learned).
    #[arg(long)]
    model: PathBuf,
    /// Only this scene.
    #[arg(long)]
    scene: Option<String>,
    #[command(flatten)]
    common: StageOptions,
}

/// `geofuse predict`.
pub(super) fn cmd_predict(a: PredictArgs) -> crate::Result<()> {
    let opts = a.common.run_options();
    let s = pipeline::predict(&a.pipeline, &opts, &a.method, &a.model, a.scene.as_deref())?;
    print_summary(&s);
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct MergeArgs {
    /// Output folder of a run.
    out: PathBuf,
    /// Print nothing but the result.
    #[arg(long, short)]
    quiet: bool,
}

/// `geofuse merge`.
pub(super) fn cmd_merge(a: MergeArgs) -> crate::Result<()> {
    let report = pipeline::shared::merge(&a.out, &crate::log::Log { quiet: a.quiet })?;
    println!("merged {} -> {}", a.out.display(), report.display());
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct FeaturesArgs {
    /// Pipeline file.
    pipeline: PathBuf,
    /// Scene name (default: the first).
    #[arg(long)]
    scene: Option<String>,
    /// Output GeoTIFF.
    #[arg(long)]
    out: PathBuf,
}

/// `geofuse features`: one scene's feature stack to a Float32 GeoTIFF.
pub(super) fn cmd_features(a: FeaturesArgs) -> crate::Result<()> {
    let (path, name, out) = (a.pipeline.as_path(), a.scene.as_deref(), a.out.as_path());
    let p = pipeline::load_pipeline(path, None)?;
    let s = match name {
        Some(n) => p
            .scenes
            .iter()
            .find(|s| s.name == n)
            .ok_or_else(|| crate::Error::config(path, format!("no scene named `{n}`")))?,
        None => &p.scenes[0],
    };
    let work = std::env::temp_dir().join(format!("geofuse-coreg-{}", std::process::id()));
    let src = scene::prepare_scene(&p, s, &work)?;
    let names = scene::plan::write_scene_features(&p, &src, out, -9999.0)?;
    let _ = std::fs::remove_dir_all(&work);
    println!("{} features -> {}", names.len(), out.display());
    Ok(())
}

/// Prints where the products are and a table of held-out metrics per scene and method.
pub(super) fn print_summary(s: &pipeline::RunSummary) {
    println!(
        "geofuse: {} product(s) in {}",
        s.products.len(),
        s.out.display()
    );
    println!(
        "held-out metrics (blocks: test blocks of a training scene; scene: a held-out scene):"
    );
    println!(
        "  {:<28} {:<22} {:>6} {:>6} {:>6} {:>6}  product",
        "scene", "method", "on", "OA", "kappa", "mIoU"
    );
    for p in &s.products {
        let f = |k: &str| {
            p.metrics
                .get(k)
                .and_then(|v| v.as_f64())
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "n/a".into())
        };
        let on = match p.metrics.get("evaluation").and_then(|v| v.as_str()) {
            Some("held-out scene") => "scene",
            _ => "blocks",
        };
        println!(
            "  {:<28} {:<22} {:>6} {:>6} {:>6} {:>6}  {}{}",
            p.scene,
            p.method,
            on,
            f("oa"),
            f("kappa"),
            f("miou"),
            p.product.display(),
            if p.skipped { " (up to date)" } else { "" }
        );
    }
    println!("report: {}", s.report.display());
}
