//! `[[catalogue]]`: scenes from STAC Items instead of pre-stacked rasters.
//!
//! ```toml
//! [[catalogue]]
//! items = "search.json"          # ItemCollection, Item or catalog.json: path or http(s)/file href
//! bands = ["B02", "B03", "B04", "B08", "B8A", "B11", "B12"]   # asset key, eo:bands or common name
//! mask = { asset = "scl", invalid = [0, 1, 3, 8, 9, 10] }
//! sar = { items = "s1.json", max_days = 3, unit = "linear" }
//! labels = "labels/{tile}_{date}.tif"   # optional; a missing file = unlabelled scene
//! ```
//!
//! Each day of optical Items (one Item, or several adjacent tiles mosaicked) is one scene,
//! named by `name` (default: the Item id, or `<collection>_<date>` for a mosaic). The
//! resolution into scenes happens when the pipeline is read; what needs the rasters (their
//! grids, the VRT stacks, the SAR warp) happens when the scene runs, so a bad Item fails its
//! scene alone.
//!
//! With `[time]`, the table's Items make season scenes instead (one per MGRS tile and
//! season; see `scene::catalogue_season`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::scene::{default_pols, ReferenceDef, SarUnit};

/// One `[[catalogue]]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSetDef {
    /// The optical Items: a saved search (ItemCollection), an Item or a static catalog, as a
    /// path (relative to the pipeline's folder) or an `http(s)://` / `file://` href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// A STAC API search run each time the pipeline is read (instead of `items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchDef>,
    /// Only Items of these collections are optical scenes (default: every Item that is not
    /// a SAR Item).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// Optical bands, in the order geofuse stacks them.
    pub bands: Vec<String>,
    /// Resampling of every band onto the finest band's grid.
    #[serde(default)]
    pub resampling: BandResampling,
    /// Per-band exceptions to `resampling` (`{ B11 = "bilinear" }`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub band_resampling: BTreeMap<String, BandResampling>,
    /// The mask asset (Sen2Cor SCL, a cloud mask) and the classes that make a pixel invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskAssetDef>,
    /// How each scene's Sentinel-1 Items are found.
    pub sar: CatalogueSarDef,
    /// Scene name template: `{id}`, `{date}`, `{collection}`, `{tile}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Label raster template (same fields; relative to the pipeline's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Vector reference data for every scene of the set (clipped to each scene).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceDef>,
    /// A fixed output grid instead of the Items' own (needed when a day's Items are on
    /// different CRSs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<GridDef>,
    /// Reflectance scale when an Item gives neither `raster:bands` nor a processing baseline.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Reflectance offset in that case.
    #[serde(default)]
    pub offset: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn default_scale() -> f64 {
    1e-4
}

fn default_max_days() -> u32 {
    12
}

/// Resampling of a band onto the scene grid.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BandResampling {
    /// Nearest neighbour: keeps values (a 20 m pixel becomes four 10 m pixels).
    #[default]
    Nearest,
    /// Bilinear.
    Bilinear,
    /// Cubic convolution.
    Cubic,
    /// Average (for bands finer than the grid).
    Average,
}

impl BandResampling {
    /// The method's name in a VRT source's `resampling` attribute.
    pub fn vrt_name(self) -> &'static str {
        match self {
            BandResampling::Nearest => "nearest",
            other => other.gdal_name(),
        }
    }

    /// The method's name for gdalwarp's `-r`.
    pub fn gdal_name(self) -> &'static str {
        match self {
            BandResampling::Nearest => "near",
            BandResampling::Bilinear => "bilinear",
            BandResampling::Cubic => "cubic",
            BandResampling::Average => "average",
        }
    }
}

/// A STAC API search.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SearchDef {
    /// The API's root (its `/search` endpoint is used).
    pub api: String,
    /// Collections searched.
    pub collections: Vec<String>,
    /// `[west, south, east, north]` in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
    /// RFC 3339 interval, `2022-04-01/2022-09-30` (a day: `2022-04-01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<String>,
    /// Largest `eo:cloud_cover` in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cloud: Option<f64>,
    /// Most Items taken (all pages).
    #[serde(default = "default_search_limit")]
    pub max_items: usize,
}

fn default_search_limit() -> usize {
    500
}

/// The mask asset of the optical Items.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskAssetDef {
    /// Asset key (`SCL`, `scl`, a cloud mask's key).
    #[serde(default = "default_mask_asset")]
    pub asset: String,
    /// Mask values that make the optical pixel invalid (SCL: 0 no data, 1 saturated, 3 cloud
    /// shadow, 8 and 9 cloud, 10 cirrus).
    pub invalid: Vec<u16>,
}

fn default_mask_asset() -> String {
    "SCL".into()
}

/// How each scene's SAR Items are found.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSarDef {
    /// The SAR Items (default: the Items of `items` that carry the polarisations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// A search for them (instead of `items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchDef>,
    /// Polarisations read (asset keys or band names, case-insensitive).
    #[serde(default = "default_pols")]
    pub polarisations: Vec<String>,
    /// Unit of the assets; default: the Item's `raster:bands` unit, else linear power (RTC
    /// gamma0 as catalogues serve it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<SarUnit>,
    /// Largest gap in days between the optical and the SAR acquisition (nearest wins).
    #[serde(default = "default_max_days")]
    pub max_days: u32,
    /// Only this orbit direction (`ascending` or `descending`, from `sat:orbit_state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orbit: Option<String>,
}

/// A fixed output grid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GridDef {
    /// EPSG code of the grid's CRS.
    pub epsg: u32,
    /// `[xmin, ymin, xmax, ymax]` in that CRS.
    pub bounds: [f64; 4],
    /// Pixel size in CRS units.
    pub resolution: f64,
}

/// One asset a scene reads: which Item, which key, where.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AssetRef {
    /// Item id.
    pub item: String,
    /// Asset key.
    pub key: String,
    /// Absolute href.
    pub href: String,
}

/// One source Item of a scene, for the product's provenance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceItem {
    /// Item id.
    pub id: String,
    /// Collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The Item's href (`derived_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Acquisition time.
    pub datetime: String,
    /// `s2:processing_baseline`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_baseline: Option<String>,
    /// `updated`, when given: a reprocessed Item makes a new product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
}

/// The catalogue side of a scene: what to stack, mosaic and warp when it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogueScene {
    /// The optical Items (several: mosaicked).
    pub optical_items: Vec<SourceItem>,
    /// The SAR Items.
    pub sar_items: Vec<SourceItem>,
    /// Per optical band: its resampling and its asset in each optical Item.
    pub bands: Vec<(String, BandResampling, Vec<AssetRef>)>,
    /// The mask asset in each optical Item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask: Vec<AssetRef>,
    /// Per polarisation: its asset in each SAR Item.
    pub sar: Vec<(String, Vec<AssetRef>)>,
    /// Where the reflectance scale and offset came from.
    pub offset_source: String,
    /// The Item's offset as a whole number of DN (`offset / scale`, -1000 for processing
    /// baseline 04.00), added to every optical DN in the stack so that reflectance is
    /// `(DN + shift) * scale`: the same numbers, bit for bit, as data without the offset.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dn_shift: f64,
    /// The reflectance offset the Item declares (provenance).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub item_offset: f64,
    /// The fixed output grid, when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<GridDef>,
    /// Why this scene cannot run (an Item without a band, no SAR Item in reach, ...): it
    /// fails alone with this message when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}
