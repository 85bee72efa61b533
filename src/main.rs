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
    Run {
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
    },
    /// Train and save the models of a pipeline's methods without predicting.
    Train {
        /// Pipeline file (TOML).
        pipeline: PathBuf,
        /// Only this scene.
        #[arg(long)]
        scene: Option<String>,
        /// Only this method.
        #[arg(long)]
        method: Option<String>,
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
    Synth {
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
    },
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

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once('/').ok_or("use I/N, e.g. 0/4")?;
    let i: usize = a.trim().parse().map_err(|_| "I must be a number")?;
    let n: usize = b.trim().parse().map_err(|_| "N must be a number")?;
    if n == 0 || i >= n {
        return Err("need 0 <= I < N".into());
    }
    Ok((i, n))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    geofuse::io::quiet_gdal_errors();
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

fn run(cli: Cli) -> geofuse::Result<()> {
    match cli.command {
        Command::Run {
            pipeline: path,
            out,
            force,
            shard,
            device,
            quiet,
        } => {
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
        Command::Train {
            pipeline: path,
            scene,
            method,
            common,
        } => {
            let opts = common.run_options();
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
        Command::Synth {
            out,
            size,
            seed,
            cloud_cover,
        } => {
            let files = geofuse::synth::generate(
                &out,
                &geofuse::synth::SynthOptions {
                    size,
                    seed,
                    cloud_cover,
                    ..Default::default()
                },
            )?;
            for f in files {
                println!("{}", f.display());
            }
            Ok(())
        }
        Command::Inspect { input, json } => inspect(&input, json),
        Command::Features {
            pipeline: path,
            scene: name,
            out,
        } => {
            let p = pipeline::load_pipeline(&path, None)?;
            let s = match &name {
                Some(n) => p.scenes.iter().find(|s| &s.name == n).ok_or_else(|| {
                    geofuse::Error::config(&path, format!("no scene named `{n}`"))
                })?,
                None => &p.scenes[0],
            };
            let work = std::env::temp_dir().join(format!("geofuse-coreg-{}", std::process::id()));
            let src = scene::prepare_scene(&p, s, &work)?;
            let names = pipeline::handcrafted::write_scene_features(&p, &src, &out, -9999.0)?;
            let _ = std::fs::remove_dir_all(&work);
            println!("{} features -> {}", names.len(), out.display());
            Ok(())
        }
    }
}

/// Prints where the products are and a table of held-out metrics per scene and method.
fn print_summary(s: &pipeline::RunSummary) {
    println!(
        "geofuse: {} product(s) in {}",
        s.products.len(),
        s.out.display()
    );
    println!("held-out metrics (spatial blocks disjoint from training):");
    println!(
        "  {:<28} {:<22} {:>6} {:>6} {:>6}  product",
        "scene", "method", "OA", "kappa", "mIoU"
    );
    for p in &s.products {
        let f = |k: &str| {
            p.metrics
                .get(k)
                .and_then(|v| v.as_f64())
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "n/a".into())
        };
        println!(
            "  {:<28} {:<22} {:>6} {:>6} {:>6}  {}{}",
            p.scene,
            p.method,
            f("oa"),
            f("kappa"),
            f("miou"),
            p.product.display(),
            if p.skipped { " (up to date)" } else { "" }
        );
    }
    println!("report: {}", s.report.display());
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
        files.extend(s.labels.clone().map(|l| ("labels", l)));
        files.extend(s.mask.as_ref().map(|m| ("mask", m.path.clone())));
        if !json {
            println!("scene {}", s.name);
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
            all.push(serde_json::json!({"scene": s.name, "files": infos, "coregistration": verdict.coregistration}));
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
