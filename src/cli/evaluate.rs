//! The evaluation and labelling commands: `compare`, `study`, `suggest`, `active`.

use std::path::PathBuf;

use super::args::{parse_rank, StageOptions};
use crate::log::Log;
use crate::pipeline;

#[derive(clap::Args)]
pub(super) struct CompareArgs {
    /// Output folders of runs.
    #[arg(required = true)]
    outs: Vec<PathBuf>,
    /// Folder for compare.md / compare.html (default: the first output folder).
    #[arg(long)]
    report: Option<PathBuf>,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

/// `geofuse compare`.
pub(super) fn cmd_compare(a: CompareArgs) -> crate::Result<()> {
    let md = pipeline::compare::run_compare(&a.outs, a.report.as_deref(), &Log { quiet: a.quiet })?;
    println!("report: {}", md.display());
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct StudyArgs {
    /// Pipeline file (TOML).
    pipeline: PathBuf,
    /// Shares of the training pixels, comma-separated (overrides `[study] fractions`).
    #[arg(long, value_delimiter = ',')]
    fractions: Option<Vec<f64>>,
    /// Repeats with different seeds (overrides `[study] seeds`).
    #[arg(long)]
    seeds: Option<usize>,
    /// Methods, comma-separated (overrides `[study] methods`).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    #[command(flatten)]
    common: StageOptions,
}

/// `geofuse study`.
pub(super) fn cmd_study(a: StudyArgs) -> crate::Result<()> {
    let over = pipeline::study::Overrides {
        fractions: a.fractions,
        seeds: a.seeds,
        methods: a.methods,
    };
    let report = pipeline::study::run_study(&a.pipeline, &over, &a.common.run_options())?;
    println!("learning curve: {}", report.display());
    Ok(())
}

#[derive(clap::Args, Debug)]
pub(super) struct SuggestArgs {
    /// Output folder of a run.
    out: PathBuf,
    /// Number of points.
    #[arg(long, default_value_t = 200)]
    n: usize,
    /// Balance the points across the predicted classes.
    #[arg(long)]
    per_class: bool,
    /// Ranking: epistemic, total, least-confidence, margin (products with `[product] margin =
    /// true`) or random; `confident` writes the most
    /// confident pixels of each predicted class instead, labelled with the prediction
    /// (candidate training samples, OUT/confident.gpkg), never mixed with reference data.
    #[arg(long, default_value = "epistemic", value_parser = parse_rank)]
    by: crate::suggest::Rank,
    /// Minimum distance between two points, in CRS units (default: ten pixels).
    #[arg(long)]
    min_distance: Option<f64>,
    /// Product to rank (a method or `<method>-regularised`; default: the first method).
    #[arg(long)]
    method: Option<String>,
    /// GeoPackage to write (default OUT/suggested.gpkg, OUT/confident.gpkg for `confident`).
    #[arg(long = "to")]
    to: Option<PathBuf>,
    /// Seed of the order among equal scores.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `geofuse suggest`.
pub(super) fn cmd_suggest(a: SuggestArgs) -> crate::Result<()> {
    if a.n == 0 {
        return Err(crate::Error::config(&a.out, "--n must be at least 1"));
    }
    let o = pipeline::suggest::SuggestOptions {
        method: a.method,
        n: a.n,
        per_class: a.per_class,
        by: a.by,
        min_distance: a.min_distance,
        out: a.to,
        seed: a.seed,
    };
    let (path, n) = pipeline::suggest::run_suggest(&a.out, &o)?;
    println!("{n} points to label: {}", path.display());
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct ActiveArgs {
    /// Pipeline file (TOML) with dense labels on its training scenes and held-out scenes.
    pipeline: PathBuf,
    /// Rounds of suggestions after the start.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Points suggested (and labelled) per round.
    #[arg(long, default_value_t = 50)]
    n: usize,
    /// Strategies, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_rank, default_value = "epistemic,total,least-confidence,margin,random")]
    by: Vec<crate::suggest::Rank>,
    /// Repeats with other start patches, tie orders and training seeds.
    #[arg(long, default_value_t = 2)]
    seeds: usize,
    /// Labelled 5 x 5 patches per class and training scene at the start.
    #[arg(long, default_value_t = 1)]
    start: usize,
    #[command(flatten)]
    common: StageOptions,
}

/// `geofuse active`.
pub(super) fn cmd_active(a: ActiveArgs) -> crate::Result<()> {
    let o = pipeline::active::ActiveOptions {
        rounds: a.rounds,
        n: a.n,
        strategies: a.by,
        seeds: a.seeds,
        start: a.start,
    };
    let md = pipeline::active::run_active(&a.pipeline, &o, &a.common.run_options())?;
    println!("report: {}", md.display());
    Ok(())
}
