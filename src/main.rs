//! The `geofuse` command line: parses, calls the library, prints the error chain, exits with
//! 0 (success), 2 (bad input or configuration) or 1 (internal error).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use geofuse::pipeline::{self, scene, RunOptions};

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
    Run(RunArgs),
    /// Train and save the models of a pipeline's methods without predicting (a model whose
    /// training inputs and settings are unchanged is kept, unless --force).
    Train {
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
    },
    /// Write one method's products with a saved model (no training).
    Predict {
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
    },
    /// Write a synthetic scene: optical.tif, sar.tif, labels.tif, cloud_mask.tif, pipeline.toml.
    Synth(SynthArgs),
    /// Report each scene's grids, bands, nodata and co-registration verdict.
    Inspect {
        /// Pipeline file (TOML), or a single raster.
        input: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compute the hand-crafted feature stack of one scene to a Float32 GeoTIFF.
    Features {
        /// Pipeline file.
        pipeline: PathBuf,
        /// Scene name (default: the first).
        #[arg(long)]
        scene: Option<String>,
        /// Output GeoTIFF.
        #[arg(long)]
        out: PathBuf,
    },
    /// GLCM (Haralick) texture of one band of any raster, like Orfeo ToolBox's
    /// HaralickTextureExtraction: a Float32 GeoTIFF with one band per feature (NaN = nodata).
    Texture(TextureArgs),
    /// Spectral indices of a multi-band optical raster, like Orfeo ToolBox's
    /// RadiometricIndices: a Float32 GeoTIFF with one band per index (NaN = nodata).
    Indices(IndicesArgs),
    /// Random forest (or boosted trees) on a feature stack: trains on a label raster, writes
    /// the product bands (class, confidence, aleatoric, epistemic, total uncertainty, Byte,
    /// scale 0.004, and modalities), like Orfeo ToolBox's TrainImagesClassifier +
    /// ImageClassifier -confmap.
    Classify(ClassifyArgs),
    /// Times a learned network's forward pass on one tile with random weights and inputs
    /// (CPU or wgpu); prints `ms <median>` (benches/peers/run.sh compares it with PyTorch).
    BenchNet(BenchNetArgs),
    /// The comparison report: scores with block-bootstrap intervals, pairwise McNemar and
    /// block-level tests (Holm), error-adjusted areas; one folder rewrites its report, several
    /// are compared together into compare.md / compare.html.
    Compare {
        /// Output folders of runs.
        #[arg(required = true)]
        outs: Vec<PathBuf>,
        /// Folder for compare.md / compare.html (default: the first output folder).
        #[arg(long)]
        report: Option<PathBuf>,
        /// No progress lines.
        #[arg(long, short)]
        quiet: bool,
    },
    /// The learning curve: train the `[study]` methods on nested subsets of the training
    /// pixels (`[study] fractions`, default 1 %, 3 %, 10 %, 30 %, 100 %) with several seeds,
    /// evaluate each on the held-out blocks and scenes; study.json and the report's plot.
    Study {
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
    },
    /// Where to label next: the most uncertain pixels of a run's products, spread in space and
    /// outside the reference data, as a GeoPackage of points (with a QGIS style) whose `class`
    /// field a later run reads as reference data.
    Suggest(SuggestArgs),
    /// The active-learning loop simulated with the training scenes' dense labels as the
    /// oracle: start from a few labelled patches, add `--n` suggested pixels per round, retrain,
    /// score the held-out scenes; per strategy and seed; active.json and the report's plot.
    Active(ActiveArgs),
    /// Rewrite an output folder's shared files (top-level manifest, VRT mosaics, report) from
    /// its scene folders, e.g. after `--shard` jobs ran separately.
    Merge {
        /// Output folder of a run.
        out: PathBuf,
        /// Print nothing but the result.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Search a STAC API and save the Items as an ItemCollection (a `[[catalogue]]` table's
    /// `items`).
    Search(SearchArgs),
    /// Split a NetCDF time series (variables x time) into one GeoTIFF per date.
    SplitDates(SplitDatesArgs),
}

#[derive(clap::Args)]
struct SplitDatesArgs {
    /// NetCDF file(s) with a time dimension (one variable per band: B02 ..., SCL, VV, VH).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// File name prefix (default: the input's file stem).
    #[arg(long)]
    prefix: Option<String>,
    /// The mask variable, written to files of its own (`<prefix>_<MASK>_<date>.tif`).
    #[arg(long)]
    mask: Option<String>,
    /// Write physical values (scale and offset applied, Float32, fill values NaN), e.g. SAR
    /// backscatter stored as integer dB x 1e4.
    #[arg(long)]
    physical: bool,
}

#[derive(clap::Args)]
struct SearchArgs {
    /// The STAC API's root URL (its /search endpoint is used).
    #[arg(long)]
    api: String,
    /// Collections, comma-separated (sentinel-2-l2a,sentinel-1-rtc).
    #[arg(long, value_delimiter = ',', required = true)]
    collections: Vec<String>,
    /// West,south,east,north in degrees.
    #[arg(long, value_delimiter = ',', num_args = 1, allow_hyphen_values = true)]
    bbox: Option<Vec<f64>>,
    /// A day (2022-04-19) or an interval (2022-04-01/2022-09-30).
    #[arg(long)]
    datetime: Option<String>,
    /// Largest eo:cloud_cover in percent.
    #[arg(long)]
    max_cloud: Option<f64>,
    /// Most Items kept (all pages).
    #[arg(long, default_value_t = 500)]
    max_items: usize,
    /// Where the ItemCollection is written.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct RunArgs {
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

#[derive(clap::Args)]
struct TextureArgs {
    /// Input raster.
    input: PathBuf,
    /// Output GeoTIFF.
    #[arg(long)]
    out: PathBuf,
    /// Input band (1-based).
    #[arg(long, default_value_t = 1)]
    band: usize,
    /// Window radius (window = 2 radius + 1).
    #[arg(long, default_value_t = 2)]
    radius: usize,
    /// Offset dx,dy (x = column, y = row going down).
    #[arg(long, default_value = "1,0", value_parser = parse_offset, allow_hyphen_values = true)]
    offset: (i32, i32),
    /// Grey levels (2..=64).
    #[arg(long, default_value_t = 8)]
    levels: usize,
    /// Quantisation range min,max in the band's units (default: its exact min and max).
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
    range: Option<(f64, f64)>,
    /// Feature definitions: otb (Orfeo ToolBox) or standard (textbook).
    #[arg(long, default_value = "otb", value_parser = parse_definitions)]
    definitions: geofuse::features::glcm::Definitions,
    /// Comma-separated feature names, `simple` (OTB's 8, in its order) or `all` (13).
    #[arg(long, default_value = "simple")]
    features: String,
    /// Tile side in pixels.
    #[arg(long, default_value_t = 512)]
    tile: usize,
    /// Output compression.
    #[arg(long, default_value = "deflate", value_parser = ["none", "deflate", "zstd"])]
    compress: String,
}

#[derive(clap::Args)]
struct IndicesArgs {
    /// Input raster.
    input: PathBuf,
    /// Output GeoTIFF.
    #[arg(long)]
    out: PathBuf,
    /// Names of the input bands in file order, comma-separated.
    #[arg(long, default_value = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12")]
    bands: String,
    /// Indices, comma-separated (NDVI NDWI MNDWI NDBI SAVI EVI NBR NDRE NDMI BI).
    #[arg(long, default_value = "NDVI,NDMI,MNDWI,BI")]
    list: String,
    /// Reflectance = value x scale + offset.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Reflectance offset.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    offset: f64,
    /// Tile side in pixels.
    #[arg(long, default_value_t = 512)]
    tile: usize,
    /// Output compression.
    #[arg(long, default_value = "deflate", value_parser = ["none", "deflate", "zstd"])]
    compress: String,
}

#[derive(clap::Args)]
struct ClassifyArgs {
    /// Feature stack (any number of bands).
    stack: PathBuf,
    /// Label raster on the same grid (values 1..254; 0 and 255 unlabelled).
    #[arg(long)]
    labels: PathBuf,
    /// Output GeoTIFF.
    #[arg(long)]
    out: PathBuf,
    /// Trees.
    #[arg(long, default_value_t = 100)]
    trees: usize,
    /// Maximum tree depth.
    #[arg(long, default_value_t = 18)]
    max_depth: usize,
    /// Minimum samples per leaf.
    #[arg(long, default_value_t = 1)]
    min_samples_leaf: usize,
    /// Training pixels per class (at most).
    #[arg(long, default_value_t = 2000)]
    samples_per_class: usize,
    /// Classifier: forest (random forest) or boosted (histogram gradient-boosted trees:
    /// --rounds, --learning-rate, --max-depth).
    #[arg(long, default_value = "forest", value_parser = ["forest", "boosted"])]
    classifier: String,
    /// Boosted trees: rounds.
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Boosted trees: learning rate.
    #[arg(long, default_value_t = 0.1)]
    learning_rate: f64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Tile side in pixels.
    #[arg(long, default_value_t = 512)]
    tile: usize,
    /// Output compression.
    #[arg(long, default_value = "deflate", value_parser = ["none", "deflate", "zstd"])]
    compress: String,
}

#[derive(clap::Args)]
struct BenchNetArgs {
    /// Fusion strategy.
    #[arg(long, default_value = "learned-kernel")]
    fusion: String,
    /// Tile side (the receptive-radius halo is added).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Latent width.
    #[arg(long, default_value_t = 16)]
    width: usize,
    /// Classes.
    #[arg(long, default_value_t = 7)]
    classes: usize,
    /// Monte Carlo passes: 0 times the deterministic forward pass only; N > 0 the full
    /// prediction with N passes.
    #[arg(long, default_value_t = 0)]
    passes: usize,
    /// Device: cpu, wgpu or auto; cpu-burn runs inference through burn's Flex operators
    /// instead of geofuse's native CPU kernels (for comparison).
    #[arg(long, default_value = "cpu", value_parser = ["auto", "cpu", "cpu-burn", "wgpu"])]
    device: String,
    /// Encoder of each branch: small or unet.
    #[arg(long, default_value = "small", value_parser = ["small", "unet"])]
    encoder: String,
    /// Time training steps instead of inference: batches of --batch random patches of
    /// --patch pixels, --steps steps (median printed).
    #[arg(long)]
    train: bool,
    /// Training: patches per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Training: patch side in pixels.
    #[arg(long, default_value_t = 32)]
    patch: usize,
    /// Training: timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Instead of timing: the same random network on --device and on the CPU (native
    /// kernels), its deterministic logits and full prediction (--passes, at least 1) on one
    /// tile; prints the largest difference of the logits, class probabilities and entropy.
    #[arg(long)]
    agree: bool,
    /// Kernel side of the kernel fusions (odd, <= 7).
    #[arg(long, default_value_t = 3)]
    kernel: usize,
    /// Learned kernel: window radius of the SAR registration (the pipeline's `align`; 0 =
    /// none).
    #[arg(long, default_value_t = 0)]
    align: usize,
}

#[derive(clap::Args)]
struct SynthArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Scene side in pixels.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Target cloud cover (0..1).
    #[arg(long, default_value_t = 0.12)]
    cloud_cover: f64,
    /// Write N scenes (scene-01 ...) from consecutive seeds with scene-to-scene variation
    /// (reflectance gain, backscatter shift, cloud cover) and one pipeline over all of them
    /// that holds out the last third.
    #[arg(long)]
    scenes: Option<usize>,
    /// With --scenes: misregister each scene's SAR by up to this many pixels in x and y
    /// (drawn per scene, sub-pixel, bilinear in linear power).
    #[arg(long, default_value_t = 0.0)]
    misregistration: f32,
    /// How --misregistration applies: `up-to` (a shift drawn per scene up to PX in x and y),
    /// `exact` (a shift of PX pixels in a direction drawn per scene) or `varying` (PX pixels in
    /// a direction that turns smoothly across each scene).
    #[arg(long, default_value = "up-to", value_parser = ["up-to", "exact", "varying"])]
    misregistration_mode: String,
    /// Write a season instead of one date: N optical dates over March to October with
    /// per-class phenology (s2/S2_<date>.tif, s2/MASK_<date>.tif), SAR dates (s1/S1_<date>.tif)
    /// and a pipeline with [time]; with --scenes, one season per scene (other years, shifted).
    #[arg(long)]
    dates: Option<usize>,
    /// With --dates: share of the optical dates heavily clouded (clustered in weeks).
    #[arg(long, default_value_t = 0.3)]
    cloudy_dates: f64,
    /// With --dates: days between SAR dates.
    #[arg(long, default_value_t = 6)]
    sar_every_days: u32,
    /// With --dates: year of the (first) season.
    #[arg(long, default_value_t = 2021)]
    year: i32,
}

/// Options shared by the stage commands.
#[derive(clap::Args)]
struct StageOptions {
    /// Output folder (overrides the pipeline's `output`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compute device for learned methods: auto, cpu or wgpu.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "wgpu"])]
    device: String,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

impl StageOptions {
    fn run_options(self) -> RunOptions {
        RunOptions {
            out: self.out,
            quiet: self.quiet,
            device: self.device,
            ..Default::default()
        }
    }
}

fn parse_pair<T: std::str::FromStr>(s: &str, what: &str) -> Result<(T, T), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("use {what}, e.g. 1,0"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<T>()
            .map_err(|_| format!("`{v}` is not a number"))
    };
    Ok((p(a)?, p(b)?))
}

fn parse_offset(s: &str) -> Result<(i32, i32), String> {
    parse_pair(s, "dx,dy")
}

fn parse_range(s: &str) -> Result<(f64, f64), String> {
    parse_pair(s, "min,max")
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn parse_definitions(s: &str) -> Result<geofuse::features::glcm::Definitions, String> {
    use geofuse::features::glcm::Definitions;
    [Definitions::Otb, Definitions::Standard]
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| "use otb or standard".into())
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once('/').ok_or("use I/N, e.g. 0/4")?;
    let i: usize = a.trim().parse().map_err(|_| "I must be a number")?;
    let n: usize = b.trim().parse().map_err(|_| "N must be a number")?;
    if n == 0 || i >= n {
        return Err("need 0 <= I < N".into());
    }
    Ok((i, n))
}

/// The network `bench-net` times.
fn bench_spec(a: &BenchNetArgs) -> geofuse::Result<geofuse::learned::NetSpec> {
    use geofuse::learned::{EncoderKind, Fusion, NetSpec};
    let f = Fusion::from_name(&a.fusion).ok_or_else(|| {
        geofuse::Error::config("--fusion", format!("unknown fusion `{}`", a.fusion))
    })?;
    let encoder = if a.encoder == "unet" {
        EncoderKind::Unet
    } else {
        EncoderKind::Small
    };
    if a.kernel.is_multiple_of(2) || a.kernel > 7 {
        return Err(geofuse::Error::config("--kernel", "must be odd and <= 7"));
    }
    if a.align > 0 && f != Fusion::LearnedKernel {
        return Err(geofuse::Error::config(
            "--align",
            "applies to --fusion learned-kernel only",
        ));
    }
    Ok(NetSpec {
        encoder,
        kernel: a.kernel,
        align: a.align,
        ..NetSpec::raw(f, a.width, a.classes)
    })
}

/// `bench-net --agree`: one random network's prediction on --device against the CPU's.
fn bench_agree(a: &BenchNetArgs, spec: geofuse::learned::NetSpec) -> geofuse::Result<()> {
    use geofuse::learned::{LearnedModel, Runtime};
    let cpu = Runtime::new("cpu")?;
    let passes = a.passes.max(1);
    let model = LearnedModel::random(&cpu, spec, 0.5, passes, 1);
    let dir = std::env::temp_dir().join(format!("geofuse-agree-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| geofuse::Error::io(&dir, "create", e))?;
    let stem = dir.join("net");
    model.save(&stem)?;
    let other = LearnedModel::load(&stem, &Runtime::new(&a.device)?);
    let _ = std::fs::remove_dir_all(&dir);
    let (other, _) = other?;
    let side = a.size + 2 * model.halo();
    let mut rng = geofuse::rng::Rng::new(7);
    let raw = ndarray::Array3::from_shape_fn((spec.raw_bands(), side, side), |_| rng.f64() as f32);
    let (pc, ec) = model.predict(&raw, (0, 0));
    let (pd, ed) = other.predict(&raw, (0, 0));
    let worst = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max)
    };
    let dp = worst(pc.as_slice().unwrap_or(&[]), pd.as_slice().unwrap_or(&[]));
    let de = worst(ec.as_slice().unwrap_or(&[]), ed.as_slice().unwrap_or(&[]));
    let ((mc, _), (md, _)) = (model.forward(&raw), other.forward(&raw));
    let dl = worst(mc.as_slice().unwrap_or(&[]), md.as_slice().unwrap_or(&[]));
    println!(
        "{} ({} encoder), {} vs {}, tile {side}^2, {passes} MC passes",
        a.fusion,
        a.encoder,
        other.runtime_name(),
        model.runtime_name()
    );
    println!("max_abs_logit {dl:.3e}");
    println!("max_abs_prob {dp:.3e}");
    println!("max_abs_entropy {de:.3e}");
    Ok(())
}

fn bench_net(a: &BenchNetArgs) -> geofuse::Result<()> {
    use geofuse::learned::{LearnedModel, Runtime};
    let spec = bench_spec(a)?;
    if a.agree {
        return bench_agree(a, spec);
    }
    let rt = Runtime::new(&a.device)?;
    if a.train {
        if a.batch == 0 || a.patch < 8 || a.steps == 0 {
            return Err(geofuse::Error::config(
                "--batch/--patch/--steps",
                "give a positive batch and step count and a patch of 8 px or more",
            ));
        }
        let mut t = geofuse::learned::time_training_steps(&rt, spec, (a.batch, a.patch), a.steps);
        t.sort_by(f64::total_cmp);
        println!(
            "{} ({} encoder) training on {}, batch {} x {}^2 px, {} steps",
            a.fusion, a.encoder, rt.name, a.batch, a.patch, a.steps
        );
        println!("ms {:.2}", t[t.len() / 2]);
        return Ok(());
    }
    let passes = a.passes;
    let dropout = if passes > 1 { 0.5 } else { 0.0 };
    let model = LearnedModel::random(&rt, spec, dropout, passes, 1);
    let side = a.size + 2 * model.halo();
    let mut rng = geofuse::rng::Rng::new(7);
    let raw = ndarray::Array3::from_shape_fn((spec.raw_bands(), side, side), |_| rng.f64() as f32);
    let mut times = Vec::new();
    for i in 0..9 {
        let t = std::time::Instant::now();
        if passes == 0 {
            std::hint::black_box(model.forward(&raw));
        } else {
            std::hint::black_box(model.predict(&raw, (0, 0)));
        }
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{} ({} encoder) on {}, tile {}^2 + halo {}, {}",
        a.fusion,
        a.encoder,
        rt.name,
        a.size,
        model.halo(),
        if passes == 0 {
            "forward pass".to_string()
        } else {
            format!("prediction with {passes} MC passes")
        }
    );
    println!("ms {:.2}", times[times.len() / 2]);
    Ok(())
}

/// Prints what a one-stage tool wrote and how long it took.
fn written(n: usize, what: &str, out: &std::path::Path, t: std::time::Instant) {
    println!(
        "{n} {what} -> {} in {:.2} s",
        out.display(),
        t.elapsed().as_secs_f64()
    );
}

fn output_options(tile: usize, compress: &str) -> geofuse::tools::OutputOptions {
    geofuse::tools::OutputOptions {
        tile: tile.max(16),
        compression: compression(compress),
    }
}

fn compression(name: &str) -> geofuse::io::writer::Compression {
    geofuse::io::writer::Compression::from_name(name)
        .unwrap_or(geofuse::io::writer::Compression::Deflate)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    geofuse::io::quiet_gdal_errors();
    geofuse::io::configure_allocator();
    geofuse::io::configure_gdal();
    geofuse::io::http::configure_network();
    match run(cli) {
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

/// `geofuse split-dates`: NetCDF time series to one GeoTIFF per date.
fn cmd_split_dates(a: SplitDatesArgs) -> geofuse::Result<()> {
    for input in &a.inputs {
        let ts = geofuse::io::netcdf::read_series(input)?;
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let prefix = a.prefix.clone().unwrap_or(stem);
        let files =
            geofuse::io::netcdf::split_dates(&ts, &a.out, &prefix, a.mask.as_deref(), a.physical)?;
        let names: Vec<&str> = ts.variables.iter().map(|v| v.name.as_str()).collect();
        println!(
            "{}: {} steps of {} -> {} files in {}",
            input.display(),
            ts.times.len(),
            names.join(" "),
            files.len(),
            a.out.display()
        );
    }
    Ok(())
}

/// `geofuse search`: a STAC API search saved as an ItemCollection.
fn cmd_search(a: SearchArgs) -> geofuse::Result<()> {
    let bbox = match a.bbox.as_deref() {
        None => None,
        Some([w, s, e, n]) if w < e && s < n => Some([*w, *s, *e, *n]),
        Some(_) => {
            return Err(geofuse::Error::config(
                "--bbox",
                "give west,south,east,north in degrees with west < east and south < north",
            ))
        }
    };
    let def = geofuse::config::catalogue::SearchDef {
        api: a.api.clone(),
        collections: a.collections,
        bbox,
        datetime: a.datetime,
        max_cloud: a.max_cloud,
        max_items: a.max_items,
    };
    let (items, fc) =
        geofuse::catalogue::search::search(&def).map_err(|m| geofuse::Error::input(&a.api, m))?;
    let text =
        serde_json::to_string_pretty(&fc).map_err(|e| geofuse::Error::Internal(e.to_string()))?;
    let tmp = geofuse::io::writer::append_ext(&a.out, ".partial");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &a.out))
        .map_err(|e| geofuse::Error::io(&a.out, "write the ItemCollection", e))?;
    println!("{} Items -> {}", items.len(), a.out.display());
    Ok(())
}

fn run(cli: Cli) -> geofuse::Result<()> {
    match cli.command {
        Command::Run(a) => {
            pipeline::stop::install();
            cmd_run(a)
        }
        Command::Train {
            pipeline: path,
            scene,
            method,
            force,
            common,
        } => {
            let opts = RunOptions {
                force,
                ..common.run_options()
            };
            for t in pipeline::train_models(&path, &opts, scene.as_deref(), method.as_deref())? {
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
        Command::Predict {
            pipeline: path,
            method,
            model,
            scene,
            common,
        } => {
            let opts = common.run_options();
            let s = pipeline::predict(&path, &opts, &method, &model, scene.as_deref())?;
            print_summary(&s);
            Ok(())
        }
        Command::Synth(a) => cmd_synth(a),
        Command::Suggest(a) => cmd_suggest(a),
        Command::Active(a) => cmd_active(a),
        Command::Inspect { input, json } => inspect(&input, json),
        Command::Texture(a) => cmd_texture(a),
        Command::Classify(a) => cmd_classify(a),
        Command::BenchNet(a) => cmd_bench_net(a),
        Command::Compare {
            outs,
            report,
            quiet,
        } => {
            let md =
                pipeline::compare::run_compare(&outs, report.as_deref(), &pipeline::Log { quiet })?;
            println!("report: {}", md.display());
            Ok(())
        }
        Command::Study {
            pipeline: path,
            fractions,
            seeds,
            methods,
            common,
        } => {
            let over = pipeline::study::Overrides {
                fractions,
                seeds,
                methods,
            };
            let report = pipeline::study::run_study(&path, &over, &common.run_options())?;
            println!("learning curve: {}", report.display());
            Ok(())
        }
        Command::Merge { out, quiet } => {
            let report = pipeline::shared::merge(&out, &pipeline::Log { quiet })?;
            println!("merged {} -> {}", out.display(), report.display());
            Ok(())
        }
        Command::Indices(a) => cmd_indices(a),
        Command::Search(a) => cmd_search(a),
        Command::SplitDates(a) => cmd_split_dates(a),
        Command::Features {
            pipeline: path,
            scene: name,
            out,
        } => cmd_features(&path, name.as_deref(), &out),
    }
}

/// `geofuse features`: one scene's feature stack to a Float32 GeoTIFF.
fn cmd_features(
    path: &std::path::Path,
    name: Option<&str>,
    out: &std::path::Path,
) -> geofuse::Result<()> {
    let p = pipeline::load_pipeline(path, None)?;
    let s = match name {
        Some(n) => p
            .scenes
            .iter()
            .find(|s| s.name == n)
            .ok_or_else(|| geofuse::Error::config(path, format!("no scene named `{n}`")))?,
        None => &p.scenes[0],
    };
    let work = std::env::temp_dir().join(format!("geofuse-coreg-{}", std::process::id()));
    let src = scene::prepare_scene(&p, s, &work)?;
    let names = pipeline::features::write_scene_features(&p, &src, out, -9999.0)?;
    let _ = std::fs::remove_dir_all(&work);
    println!("{} features -> {}", names.len(), out.display());
    Ok(())
}

fn cmd_run(a: RunArgs) -> geofuse::Result<()> {
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

fn cmd_texture(a: TextureArgs) -> geofuse::Result<()> {
    let TextureArgs {
        input,
        out,
        band,
        radius,
        offset,
        levels,
        range,
        definitions,
        features,
        tile,
        compress,
    } = a;
    use geofuse::features::glcm::FEATURE_NAMES;
    let features = match features.as_str() {
        "simple" => geofuse::tools::otb_simple()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "all" => FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        other => split_list(other),
    };
    let t = std::time::Instant::now();
    let names = geofuse::tools::texture(
        &input,
        &out,
        &geofuse::tools::TextureOptions {
            band,
            radius,
            offset,
            levels,
            range,
            definitions,
            features,
            output: output_options(tile, &compress),
        },
    )?;
    written(names.len(), "texture feature(s)", &out, t);
    Ok(())
}

fn cmd_indices(a: IndicesArgs) -> geofuse::Result<()> {
    let IndicesArgs {
        input,
        out,
        bands,
        list,
        scale,
        offset,
        tile,
        compress,
    } = a;
    let t = std::time::Instant::now();
    let names = geofuse::tools::indices(
        &input,
        &out,
        &geofuse::tools::IndicesOptions {
            band_names: split_list(&bands),
            list: split_list(&list),
            scale,
            offset,
            output: output_options(tile, &compress),
        },
    )?;
    written(names.len(), "index band(s)", &out, t);
    Ok(())
}

fn cmd_classify(a: ClassifyArgs) -> geofuse::Result<()> {
    let ClassifyArgs {
        stack,
        labels,
        out,
        trees,
        max_depth,
        min_samples_leaf,
        samples_per_class,
        classifier,
        rounds,
        learning_rate,
        seed,
        tile,
        compress,
    } = a;
    let boosted = (classifier == "boosted").then(|| geofuse::config::BoostedSettings {
        rounds,
        learning_rate,
        max_depth: max_depth.min(10),
        min_samples_leaf,
        l2: 1.0,
        bins: 64,
        ensemble: 8.min(rounds),
    });
    let r = geofuse::tools::classify(
        &stack,
        &labels,
        &out,
        &geofuse::tools::ClassifyOptions {
            boosted,
            trees,
            max_depth,
            min_samples_leaf,
            samples_per_class,
            seed,
            output: output_options(tile, &compress),
        },
    )?;
    println!(
        "classes {:?}, training pixels {:?}; train {:.2} s, predict {:.2} s -> {}",
        r.classes,
        r.samples,
        r.train_seconds,
        r.predict_seconds,
        out.display()
    );
    Ok(())
}

fn cmd_bench_net(a: BenchNetArgs) -> geofuse::Result<()> {
    bench_net(&a)
}

/// `geofuse suggest`.
#[derive(clap::Args, Debug)]
struct SuggestArgs {
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
    by: geofuse::suggest::Rank,
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

fn parse_rank(s: &str) -> std::result::Result<geofuse::suggest::Rank, String> {
    geofuse::suggest::Rank::ALL
        .iter()
        .find(|(_, n)| *n == s)
        .map(|(r, _)| *r)
        .ok_or_else(|| {
            let names: Vec<&str> = geofuse::suggest::Rank::ALL
                .iter()
                .map(|(_, n)| *n)
                .collect();
            format!("`{s}` is not a ranking; use one of {}", names.join(", "))
        })
}

fn cmd_suggest(a: SuggestArgs) -> geofuse::Result<()> {
    if a.n == 0 {
        return Err(geofuse::Error::config(&a.out, "--n must be at least 1"));
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

/// `geofuse active`.
#[derive(clap::Args)]
struct ActiveArgs {
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
    by: Vec<geofuse::suggest::Rank>,
    /// Repeats with other start patches, tie orders and training seeds.
    #[arg(long, default_value_t = 2)]
    seeds: usize,
    /// Labelled 5 x 5 patches per class and training scene at the start.
    #[arg(long, default_value_t = 1)]
    start: usize,
    #[command(flatten)]
    common: StageOptions,
}

fn cmd_active(a: ActiveArgs) -> geofuse::Result<()> {
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

fn cmd_synth(a: SynthArgs) -> geofuse::Result<()> {
    let SynthArgs {
        out,
        size,
        seed,
        cloud_cover,
        scenes,
        misregistration,
        misregistration_mode,
        dates,
        cloudy_dates,
        sar_every_days,
        year,
    } = a;
    if let Some(n) = dates {
        if !(0.0..=1.0).contains(&cloudy_dates) {
            return Err(geofuse::Error::config(
                "--cloudy-dates",
                format!("{cloudy_dates}: give a share between 0 and 1"),
            ));
        }
        let o = geofuse::synth::season::SeasonOptions {
            size,
            seed,
            dates: n,
            cloudy_dates,
            sar_every_days,
            year,
            shift_days: 0.0,
        };
        for f in geofuse::synth::season::generate_seasons(&out, scenes.unwrap_or(1), &o)? {
            println!("{}", f.display());
        }
        return Ok(());
    }
    let opts = geofuse::synth::SynthOptions {
        size,
        seed,
        cloud_cover,
        ..Default::default()
    };
    if !(0.0..=16.0).contains(&misregistration) {
        return Err(geofuse::Error::config(
            "--misregistration",
            format!("{misregistration} px: give a shift between 0 and 16 pixels"),
        ));
    }
    use geofuse::synth::Misregistration;
    let mis = match misregistration_mode.as_str() {
        "exact" => Misregistration::Exact(misregistration),
        "varying" => Misregistration::Varying(misregistration),
        _ => Misregistration::UpTo(misregistration),
    };
    let files = match scenes {
        Some(n) => geofuse::synth::generate_series(&out, n, &opts, mis)?,
        None => geofuse::synth::generate(&out, &opts)?,
    };
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

/// Prints where the products are and a table of held-out metrics per scene and method.
fn print_summary(s: &pipeline::RunSummary) {
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

/// The Items and assets behind a catalogue scene.
fn print_catalogue_scene(c: &geofuse::config::catalogue::CatalogueScene) {
    let ids = |v: &[geofuse::config::catalogue::SourceItem]| {
        v.iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  optical Items: {}", ids(&c.optical_items));
    println!("  SAR Items: {}", ids(&c.sar_items));
    for (band, r, refs) in &c.bands {
        let keys: Vec<&str> = refs.iter().map(|a| a.key.as_str()).collect();
        println!("    {band}: asset {} ({:?})", keys.join(", "), r);
    }
    println!("  reflectance scale and offset from {}", c.offset_source);
    if let Some(p) = &c.problem {
        println!("  problem: {p}");
    }
}

fn inspect(input: &std::path::Path, json: bool) -> geofuse::Result<()> {
    let is_toml = input.extension().is_some_and(|e| e == "toml");
    if !is_toml {
        let info = geofuse::io::reader::raster_info(input)?;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&info).unwrap_or_default()
            );
        } else {
            print_raster(&info);
        }
        return Ok(());
    }
    let p = pipeline::load_pipeline(input, None)?;
    let mut all = Vec::new();
    for s in &p.scenes {
        let mut files = vec![
            ("optical", s.optical.path.clone()),
            ("sar", s.sar.path.clone()),
        ];
        if let Some(ss) = &s.season {
            files = vec![
                ("optical (first date)", ss.optical[0].path.clone()),
                ("sar (first date)", ss.sar[0].path.clone()),
            ];
            files.extend(ss.masks.first().map(|m| ("mask (first date)", m.clone())));
        }
        if s.catalogue.is_some() {
            // A catalogue scene's rasters are its Items' assets, stacked when it is prepared.
            files.clear();
        }
        files.extend(s.labels.clone().map(|l| ("labels", l)));
        files.extend(
            s.mask
                .as_ref()
                .map(|m| ("mask", m.path.clone()))
                .filter(|_| s.catalogue.is_none() && s.season.is_none()),
        );
        if !json {
            println!("scene {}", s.name);
            if let Some(c) = &s.catalogue {
                print_catalogue_scene(c);
            }
            if let Some(ss) = &s.season {
                print_season(ss);
            }
        }
        let mut infos = Vec::new();
        for (what, f) in files {
            let info = geofuse::io::reader::raster_info(&f)?;
            if !json {
                print!("  {what}: ");
                print_raster(&info);
            }
            infos.push(info);
        }
        let work = std::env::temp_dir().join(format!("geofuse-inspect-{}", std::process::id()));
        let verdict = scene::prepare_scene(&p, s, &work);
        let _ = std::fs::remove_dir_all(&work);
        let verdict = verdict?;
        if json {
            all.push(serde_json::json!({"scene": s.name, "files": infos, "catalogue": s.catalogue, "season": s.season, "coregistration": verdict.coregistration}));
        } else {
            println!("  co-registration:");
            for v in &verdict.coregistration {
                println!("    {v}");
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    }
    Ok(())
}

fn print_season(ss: &geofuse::config::SeasonScene) {
    let s = &ss.season;
    let span = |v: &[geofuse::config::season::DatedFile]| match (v.first(), v.last()) {
        (Some(a), Some(b)) => format!("{} dates, {} to {}", v.len(), a.date, b.date),
        _ => "no date".into(),
    };
    println!(
        "  season {} to {}: {} steps of {} days",
        s.start,
        s.end,
        s.steps().len(),
        s.step_days
    );
    println!("    optical: {}", span(&ss.optical));
    println!("    sar: {}", span(&ss.sar));
    if ss.outside > 0 {
        println!(
            "    {} matched files dated outside the season left out",
            ss.outside
        );
    }
}

fn print_raster(info: &geofuse::io::reader::RasterInfo) {
    println!("{}", info.path.display());
    println!("    grid: {}", info.grid.describe());
    for b in &info.bands {
        println!(
            "    band {}: {} {}{}",
            b.index,
            if b.description.is_empty() {
                "(no description)"
            } else {
                &b.description
            },
            b.data_type,
            b.nodata
                .map(|v| format!(", nodata {v}"))
                .unwrap_or_default()
        );
    }
}
