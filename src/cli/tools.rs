//! The one-stage raster tools: `texture`, `indices`, `classify`.

use std::path::PathBuf;

use super::args::{parse_definitions, parse_offset, parse_range, split_list};

#[derive(clap::Args)]
pub(super) struct TextureArgs {
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
    definitions: crate::features::glcm::Definitions,
    /// Comma-separated feature names, `simple` (OTB's 8, in its order) or `all` (13).
    #[arg(long, default_value = "simple")]
    features: String,
    #[command(flatten)]
    output: OutputArgs,
}

/// `geofuse texture`.
pub(super) fn cmd_texture(a: TextureArgs) -> crate::Result<()> {
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
        output,
    } = a;
    use crate::features::glcm::FEATURE_NAMES;
    let features = match features.as_str() {
        "simple" => crate::tools::otb_simple()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "all" => FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        other => split_list(other),
    };
    let t = std::time::Instant::now();
    let names = crate::tools::texture(
        &input,
        &out,
        &crate::tools::TextureOptions {
            band,
            radius,
            offset,
            levels,
            range,
            definitions,
            features,
            output: output.options(),
        },
    )?;
    written(names.len(), "texture feature(s)", &out, t);
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct IndicesArgs {
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
    #[command(flatten)]
    output: OutputArgs,
}

/// `geofuse indices`.
pub(super) fn cmd_indices(a: IndicesArgs) -> crate::Result<()> {
    let IndicesArgs {
        input,
        out,
        bands,
        list,
        scale,
        offset,
        output,
    } = a;
    let t = std::time::Instant::now();
    let names = crate::tools::indices(
        &input,
        &out,
        &crate::tools::IndicesOptions {
            band_names: split_list(&bands),
            list: split_list(&list),
            scale,
            offset,
            output: output.options(),
        },
    )?;
    written(names.len(), "index band(s)", &out, t);
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct ClassifyArgs {
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
    #[command(flatten)]
    output: OutputArgs,
}

/// `geofuse classify`.
pub(super) fn cmd_classify(a: ClassifyArgs) -> crate::Result<()> {
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
        output,
    } = a;
    let boosted = (classifier == "boosted").then(|| crate::config::BoostedSettings {
        rounds,
        learning_rate,
        max_depth: max_depth.min(10),
        min_samples_leaf,
        l2: 1.0,
        bins: 64,
        ensemble: 8.min(rounds),
    });
    let r = crate::tools::classify(
        &stack,
        &labels,
        &out,
        &crate::tools::ClassifyOptions {
            boosted,
            trees,
            max_depth,
            min_samples_leaf,
            samples_per_class,
            seed,
            output: output.options(),
        },
    )?;
    println!(
        "classes {:?}, training pixels {:?}; sample {:.2} s, train {:.2} s, predict {:.2} s -> {}",
        r.classes,
        r.samples,
        r.sample_seconds,
        r.train_seconds,
        r.predict_seconds,
        out.display()
    );
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

/// The output options every tool takes.
#[derive(clap::Args)]
pub(super) struct OutputArgs {
    /// Tile side in pixels.
    #[arg(long, default_value_t = 512)]
    tile: usize,
    /// Output compression.
    #[arg(long, default_value = "deflate", value_parser = ["none", "deflate", "zstd"])]
    compress: String,
}

impl OutputArgs {
    /// As the tools' GeoTIFF options.
    fn options(&self) -> crate::tools::OutputOptions {
        crate::tools::OutputOptions {
            tile: self.tile.max(16),
            compression: crate::io::writer::Compression::from_name(&self.compress)
                .unwrap_or(crate::io::writer::Compression::Deflate),
        }
    }
}
