//! geofuse: a batch engine that fuses optical (Sentinel-2-like) and SAR (Sentinel-1-like)
//! imagery into classified Cloud-Optimized GeoTIFFs with per-pixel uncertainty.
//!
//! Stages, one module each:
//! - [`config`]: the pipeline file (TOML) and its validation.
//! - [`catalogue`]: STAC Items as scenes, and STAC API searches.
//! - [`raster`]: grids, geotransforms, windows.
//! - [`io`]: the only place that calls GDAL (read windows, write COGs, warp).
//! - [`tiler`]: tiles with halos.
//! - [`features`]: spectral indices, SAR features, GLCM texture (pure kernels).
//! - [`temporal`]: time series regularised onto a season's grid, and temporal statistics.
//! - [`log`]: progress and log lines.
//! - [`scene`]: scene preparation and tile reading, seasons, reference data, the feature plan
//!   (the layer the runner and the methods both stand on).
//! - [`stop`]: a requested stop (SIGINT/SIGTERM) checked between tiles.
//! - [`method`]: the one interface every method kind implements, and its registry.
//! - [`registry`]: the implementation behind each method kind.
//! - [`classic`]: hand-crafted classifiers over the feature stack (random forest, boosted trees).
//! - [`learned`]: CNN encoders and fusion strategies (burn; CPU or wgpu).
//! - [`uncertainty`]: confidence, aleatoric, epistemic and total uncertainty.
//! - [`product`]: the product contract (bands, scale, modality bits, byte encoding).
//! - [`eval`]: spatial block split and accuracy metrics.
//! - [`pipeline`]: the batch runner (products, metrics, manifest, report).
//! - [`postprocess`]: spatial regularisation of the maps (Bayesian smoothing, majority vote).
//! - [`plot`]: the report's PNG figures.
//! - [`suggest`]: where to label next, ranked by the products' uncertainty.
//! - [`synth`]: the synthetic scene generator.
//! - [`time`]: calendar arithmetic for time stamps.
//! - [`tools`]: standalone one-stage raster tools (texture, indices).
//! - [`fuzz_harness`]: the fuzz targets' bodies, also replayed over the corpus in tests.

pub mod catalogue;
pub mod classic;
pub mod config;
pub mod error;
pub mod eval;
pub mod features;
pub mod fuzz_harness;
pub mod io;
pub mod learned;
pub mod log;
pub mod method;
pub mod pipeline;
pub mod plot;
pub mod postprocess;
pub mod product;
pub mod raster;
pub mod reference;
pub mod registry;
pub mod rng;
pub mod scene;
pub mod stop;
pub mod suggest;
pub mod synth;
pub mod temporal;
pub mod tiler;
pub mod time;
pub mod tools;
pub mod uncertainty;

pub use error::{Error, Result};
