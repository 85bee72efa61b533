//! Catalogue input: STAC Items as scenes (per-band assets, mask assets, offsets from the
//! Item's metadata, Sentinel-1 Items matched by date) and STAC API searches.
//!
//! - [`item`]: an Item's id, time, assets, band names, offsets; href resolution.
//! - [`document`]: reading Items from an Item, an ItemCollection or a static catalog.
//! - [`select`]: optical Items grouped by day, SAR Items matched by date, reflectance scaling.
//! - [`search`]: STAC API item search, page by page.
//!
//! The Items are read as JSON rather than through the `stac` crate's types: geofuse needs a
//! dozen fields, and catalogues in the wild mix extension versions (`eo:bands` or `bands`,
//! `raster:bands` or `raster:scale`) that a tolerant reader takes in one place.

pub mod document;
pub mod item;
pub mod search;
pub mod select;

pub use document::read_items;
pub use item::{Asset, Item};
