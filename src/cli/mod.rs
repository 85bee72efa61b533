//! The `geofuse` command line: parses, calls the library, prints the error chain, exits with
//! 0 (success), 2 (bad input or configuration) or 1 (internal error). One file per command
//! group: `run` (run, train, predict, merge, features), `evaluate` (compare, study, suggest,
//! active), `tools` (texture, indices, classify), `data` (synth, search, split-dates),
//! `inspect`, and `bench` (bench-net, the benchmark command of `benches/`).

mod args;
mod bench;
mod data;
mod evaluate;
mod inspect;
mod run;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "geofuse",
    version,
    about = "Fuse optical and SAR imagery into classified COGs with per-pixel uncertainty"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline file: every scene, every method; products, metrics, manifest, report.
    Run(run::RunArgs),
    /// Train and save the models of a pipeline's methods without predicting (a model whose
    /// training inputs and settings are unchanged is kept, unless --force).
    Train(run::TrainArgs),
    /// Write one method's products with a saved model (no training).
    Predict(run::PredictArgs),
    /// Write a synthetic scene: optical.tif, sar.tif, labels.tif, cloud_mask.tif, pipeline.toml.
    Synth(data::SynthArgs),
    /// Report each scene's grids, bands, nodata and co-registration verdict.
    Inspect(inspect::InspectArgs),
    /// Compute the hand-crafted feature stack of one scene to a Float32 GeoTIFF.
    Features(run::FeaturesArgs),
    /// GLCM (Haralick) texture of one band of any raster, like Orfeo ToolBox's
    /// HaralickTextureExtraction: a Float32 GeoTIFF with one band per feature (NaN = nodata).
    Texture(tools::TextureArgs),
    /// Spectral indices of a multi-band optical raster, like Orfeo ToolBox's
    /// RadiometricIndices: a Float32 GeoTIFF with one band per index (NaN = nodata).
    Indices(tools::IndicesArgs),
    /// Random forest (or boosted trees) on a feature stack: trains on a label raster, writes
    /// the product bands (class, confidence, aleatoric, epistemic, total uncertainty, Byte,
    /// scale 0.004, and modalities), like Orfeo ToolBox's TrainImagesClassifier +
    /// ImageClassifier -confmap.
    Classify(tools::ClassifyArgs),
    /// Times a learned network's forward pass on one tile with random weights and inputs
    /// (CPU or wgpu); prints `ms <median>` (benches/peers/run.sh compares it with PyTorch).
    BenchNet(bench::BenchNetArgs),
    /// The comparison report: scores with block-bootstrap intervals, pairwise McNemar and
    /// block-level tests (Holm), error-adjusted areas; one folder rewrites its report, several
    /// are compared together into compare.md / compare.html.
    Compare(evaluate::CompareArgs),
    /// The learning curve: train the `[study]` methods on nested subsets of the training
    /// pixels (`[study] fractions`, default 1 %, 3 %, 10 %, 30 %, 100 %) with several seeds,
    /// evaluate each on the held-out blocks and scenes; study.json and the report's plot.
    Study(evaluate::StudyArgs),
    /// Where to label next: the most uncertain pixels of a run's products, spread in space and
    /// outside the reference data, as a GeoPackage of points (with a QGIS style) whose `class`
    /// field a later run reads as reference data.
    Suggest(evaluate::SuggestArgs),
    /// The active-learning loop simulated with the training scenes' dense labels as the
    /// oracle: start from a few labelled patches, add `--n` suggested pixels per round, retrain,
    /// score the held-out scenes; per strategy and seed; active.json and the report's plot.
    Active(evaluate::ActiveArgs),
    /// Rewrite an output folder's shared files (top-level manifest, VRT mosaics, report) from
    /// its scene folders, e.g. after `--shard` jobs ran separately.
    Merge(run::MergeArgs),
    /// Search a STAC API and save the Items as an ItemCollection (a `[[catalogue]]` table's
    /// `items`).
    Search(data::SearchArgs),
    /// Split a NetCDF time series (variables x time) into one GeoTIFF per date.
    SplitDates(data::SplitDatesArgs),
}

/// Runs the command line of the process and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::io::quiet_gdal_errors();
    crate::io::configure_allocator();
    crate::io::configure_gdal();
    crate::io::http::configure_network();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            eprintln!("error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::from(code as u8)
        }
    }
}

fn dispatch(command: Command) -> crate::Result<()> {
    match command {
        Command::Run(a) => {
            crate::stop::install();
            run::cmd_run(a)
        }
        Command::Train(a) => run::cmd_train(a),
        Command::Predict(a) => run::cmd_predict(a),
        Command::Merge(a) => run::cmd_merge(a),
        Command::Features(a) => run::cmd_features(a),
        Command::Compare(a) => evaluate::cmd_compare(a),
        Command::Study(a) => evaluate::cmd_study(a),
        Command::Suggest(a) => evaluate::cmd_suggest(a),
        Command::Active(a) => evaluate::cmd_active(a),
        Command::Texture(a) => tools::cmd_texture(a),
        Command::Indices(a) => tools::cmd_indices(a),
        Command::Classify(a) => tools::cmd_classify(a),
        Command::Synth(a) => data::cmd_synth(a),
        Command::Search(a) => data::cmd_search(a),
        Command::SplitDates(a) => data::cmd_split_dates(a),
        Command::Inspect(a) => inspect::cmd_inspect(a),
        Command::BenchNet(a) => bench::cmd_bench_net(a),
    }
}
