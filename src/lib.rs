//! geofuse: a batch engine that fuses optical (Sentinel-2-like) and SAR (Sentinel-1-like)
//! imagery into classified Cloud-Optimized GeoTIFFs with per-pixel uncertainty.
//!
//! Stages, one module each:
//! - [`cli`]: the `geofuse` command line (one file per command group).
//! - [`config`]: the pipeline file (TOML) and its validation.
//! - `catalogue`: STAC Items as scenes, and STAC API searches.
//! - [`raster`]: grids, geotransforms, windows.
//! - [`io`]: the only place that calls GDAL (read windows, write COGs, warp).
//! - [`tiler`]: tiles with halos.
//! - [`features`]: spectral indices, SAR features, GLCM texture (pure kernels).
//! - `temporal`: time series regularised onto a season's grid, and temporal statistics.
//! - `log`: progress and log lines.
//! - [`scene`]: scene preparation and tile reading, seasons, reference data, the feature plan
//!   (the layer the runner and the methods both stand on).
//! - `stop`: a requested stop (SIGINT/SIGTERM) checked between tiles.
//! - `method`: the one interface every method kind implements, and its registry.
//! - `registry`: the implementation behind each method kind.
//! - [`classic`]: hand-crafted classifiers over the feature stack (random forest, boosted trees).
//! - [`learned`]: CNN encoders and fusion strategies (burn; CPU or wgpu).
//! - [`uncertainty`]: confidence, aleatoric, epistemic and total uncertainty.
//! - [`product`]: the product contract (bands, scale, modality bits, byte encoding).
//! - [`eval`]: spatial block split and accuracy metrics.
//! - [`pipeline`]: the batch runner (products, metrics, manifest, report).
//! - `report`: the comparison report (statistics, tables, figures).
//! - `postprocess`: spatial regularisation of the maps (Bayesian smoothing, majority vote).
//! - `plot`: the report's PNG figures.
//! - `suggest`: where to label next, ranked by the products' uncertainty.
//! - [`synth`]: the synthetic scene generator.
//! - `time`: calendar arithmetic for time stamps.
//! - [`tools`]: standalone one-stage raster tools (texture, indices).
//! - [`fuzz_harness`]: the fuzz targets' bodies, also replayed over the corpus in tests.
//!
//! # Using the library
//!
//! The `geofuse` command is a thin layer over [`pipeline`]: load a pipeline file, run it, read
//! the products. A small synthetic scene stands in for real data here:
//!
//! ```
//! use geofuse::pipeline::{load_pipeline, run_pipeline, RunOptions};
//! use geofuse::product::{read_band, ProductBand};
//! use geofuse::synth::{generate, SynthOptions};
//!
//! let dir = std::env::temp_dir().join(format!("geofuse-example-{}", std::process::id()));
//! // A 128 x 128 scene: optical.tif, sar.tif, labels.tif and its pipeline.toml.
//! generate(&dir, &SynthOptions { size: 128, ..Default::default() })?;
//! // Load and validate the pipeline file, writing into a folder of our choosing.
//! let file = dir.join("pipeline.toml");
//! let mut p = load_pipeline(&file, Some(&dir.join("out")))?;
//! p.methods.retain(|m| m.name == "handcrafted"); // the random forest alone: a few seconds
//! let quiet = RunOptions { quiet: true, ..Default::default() };
//! let summary = run_pipeline(p, &file, &quiet)?;
//!
//! // One product per scene and method, a Cloud-Optimized GeoTIFF with its bands named.
//! let product = &summary.products[0];
//! let class = read_band(&product.product, "class")?;
//! let total = read_band(&product.product, ProductBand::Total.name())?;
//! assert_eq!(class.dim(), (128, 128));
//! let mean_total = total.iter().map(|&b| b as f64 * ProductBand::Total.scale()).sum::<f64>()
//!     / total.len() as f64;
//! assert!((0.0..=1.0).contains(&mean_total));
//! println!("{}: held-out OA {}", product.method, product.metrics["oa"]);
//! std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), geofuse::Error>(())
//! ```

mod catalogue;
pub mod classic;
pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod features;
pub mod fuzz_harness;
pub mod io;
pub mod learned;
mod log;
mod method;
pub mod pipeline;
mod plot;
mod postprocess;
pub mod product;
pub mod raster;
pub mod reference;
mod registry;
mod report;
pub mod rng;
pub mod scene;
mod stop;
mod suggest;
pub mod synth;
mod temporal;
pub mod tiler;
mod time;
pub mod tools;
pub mod uncertainty;

pub use error::{Error, Result};
