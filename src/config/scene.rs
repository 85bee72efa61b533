//! `[[scenes]]`: optical and SAR rasters, labels and mask of each scene.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::features::sar::Polarisation;

/// One scene: co-registered optical and SAR rasters, optional labels and mask.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneDef {
    /// Scene name: the product folder under the output folder.
    pub name: String,
    /// Optical (Sentinel-2-like) raster.
    pub optical: OpticalDef,
    /// SAR (Sentinel-1-like) raster.
    pub sar: SarDef,
    /// Optional reference labels (class ids of the class table; other values are unlabelled).
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// Optional reference data as vector features (instead of `labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceDef>,
    /// Optional validity/cloud mask for the optical raster.
    #[serde(default)]
    pub mask: Option<MaskDef>,
    /// Acquisition time (RFC 3339, or a date `YYYY-MM-DD`) for the STAC Items; default: the
    /// optical file's metadata (`date`, `DATETIME`, `ACQUISITION_DATE`, `SENSING_TIME`), else
    /// a date in its file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<String>,
    /// The STAC Items behind a scene of a `[[catalogue]]` table (filled when the pipeline is
    /// read; not a key of `[[scenes]]`).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<super::catalogue::CatalogueScene>,
    /// Year of the season when `[time]` gives month-days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// The dated rasters of a season scene (filled when a pipeline with `[time]` is read).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub season: Option<super::season::SeasonScene>,
}

/// Reference polygons or points (GeoPackage, GeoJSON, Shapefile: anything GDAL's vector API
/// reads), in any CRS: reprojected to the scene's. A polygon labels the pixels whose centres
/// it contains, a point its pixel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceDef {
    /// Vector file.
    pub path: PathBuf,
    /// Field holding the class: a class id of the class table or a class name.
    pub class_field: String,
    /// Optional OGR SQL attribute filter (e.g. `"year = 2018"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Layer name (default: the first layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

/// Optical raster description.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpticalDef {
    /// Path to the raster (a glob of dated rasters in a season scene).
    #[serde(default)]
    pub path: PathBuf,
    /// The dated rasters of a season scene, in date order (instead of a `path` glob).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// Band names in file order (e.g. B02 B03 B04 B05 B06 B07 B08 B8A B11 B12).
    pub bands: Vec<String>,
    /// Reflectance = DN * scale + offset (Sentinel-2 L2A: 1e-4).
    #[serde(default = "default_reflectance_scale")]
    pub scale: f64,
    /// Reflectance offset.
    #[serde(default)]
    pub offset: f64,
}

fn default_reflectance_scale() -> f64 {
    1e-4
}

/// SAR raster description.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SarDef {
    /// Path to the raster (a glob of dated rasters in a season scene).
    #[serde(default)]
    pub path: PathBuf,
    /// The dated rasters of a season scene, in date order (instead of a `path` glob).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// Band names of the SAR file in file order; VV, VH or both are read, other names
    /// (an incidence-angle band, say) are left alone.
    #[serde(default = "default_pols")]
    pub polarisations: Vec<String>,
    /// Unit of the stored backscatter.
    #[serde(default)]
    pub unit: SarUnit,
}

pub(super) fn default_pols() -> Vec<String> {
    vec!["VV".into(), "VH".into()]
}

/// Unit of stored SAR backscatter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SarUnit {
    /// Decibels (10 log10 of linear power).
    #[default]
    Db,
    /// Linear power (sigma0 / gamma0).
    Linear,
}

/// Validity mask for the optical raster (e.g. a cloud mask or Sen2Cor SCL).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskDef {
    /// Path to the single-band mask raster (in a season scene: a glob, or a path with
    /// `{date}` filled from each optical date).
    #[serde(default)]
    pub path: PathBuf,
    /// The masks of a season scene (instead of `path`), paired with the optical dates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// Mask values that make the optical pixel invalid (synthetic: 1 cloud, 2 shadow;
    /// SCL: 3 8 9 10).
    pub invalid: Vec<u16>,
}

/// Longest scene name in bytes: a folder name (255 bytes on common file systems) that still
/// leaves room for the temporary suffixes geofuse appends.
pub const MAX_SCENE_NAME_BYTES: usize = 200;

impl SceneDef {
    /// Checks what can be checked without opening a raster; `Err` is the message.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let s = self;
        if s.name.is_empty() || s.name.contains(['/', '\\']) || s.name.starts_with('.') {
            return Err(format!(
                "scene name `{}` must be a plain folder name (no slashes, not starting with '.')",
                s.name
            ));
        }
        if s.name.len() > MAX_SCENE_NAME_BYTES || s.name.chars().any(char::is_control) {
            return Err(format!(
                "scene name `{}` cannot be a folder name ({}); give a shorter plain name{}",
                s.name.escape_debug(),
                if s.name.len() > MAX_SCENE_NAME_BYTES {
                    format!("{} bytes, at most {MAX_SCENE_NAME_BYTES}", s.name.len())
                } else {
                    "it holds a control character".to_string()
                },
                if s.catalogue.is_some() {
                    " (the Item id makes it: set `catalogue.name`, e.g. \"{tile}_{date}\")"
                } else {
                    ""
                }
            ));
        }
        if s.season.is_none() {
            let missing = [
                ("optical", s.optical.path.as_os_str().is_empty()),
                ("sar", s.sar.path.as_os_str().is_empty()),
                (
                    "mask",
                    s.mask
                        .as_ref()
                        .is_some_and(|m| m.path.as_os_str().is_empty()),
                ),
            ];
            if let Some((key, _)) = missing.iter().find(|m| m.1) {
                return Err(format!(
                    "scene `{}`: `{key}.path` is missing; give the raster's path",
                    s.name
                ));
            }
        }
        if s.labels.is_some() && s.reference.is_some() {
            return Err(format!(
                "scene `{}` has both `labels` and `reference`; give one (a label raster or vector reference data)",
                s.name
            ));
        }
        if s.optical.bands.is_empty() {
            return Err(format!(
                "scene `{}`: `optical.bands` is empty; name the bands in file order",
                s.name
            ));
        }
        if s.polarisations().is_empty() {
            return Err(format!(
                "scene `{}`: `sar.polarisations` ({}) names neither VV nor VH; name the bands of the SAR file in order (VV, VH or both)",
                s.name,
                s.sar.polarisations.join(" ")
            ));
        }
        for p in s.polarisations() {
            let n = s
                .sar
                .polarisations
                .iter()
                .filter(|x| Polarisation::parse(x) == Some(p))
                .count();
            if n > 1 {
                return Err(format!(
                    "scene `{}`: `sar.polarisations` names {} {n} times; name each band once",
                    s.name,
                    p.name()
                ));
            }
        }
        Ok(())
    }

    /// Whether the scene uses a key of season scenes (`files`, `year`).
    pub fn is_season_like(&self) -> bool {
        self.year.is_some()
            || !self.optical.files.is_empty()
            || !self.sar.files.is_empty()
            || self.mask.as_ref().is_some_and(|m| !m.files.is_empty())
    }

    /// Whether the scene has reference data (a label raster or vector features).
    pub fn has_reference(&self) -> bool {
        self.labels.is_some() || self.reference.is_some()
    }

    /// The reference data's file (label raster or vector file).
    pub fn reference_file(&self) -> Option<PathBuf> {
        self.labels
            .clone()
            .or_else(|| self.reference.as_ref().map(|r| r.path.clone()))
    }

    /// Whether the optical raster names band `b` (case-insensitive).
    pub fn has_optical_band(&self, b: &str) -> bool {
        self.optical.bands.iter().any(|x| x.eq_ignore_ascii_case(b))
    }

    /// The polarisations geofuse reads from the SAR file (VV, VH or both; other bands the
    /// file may hold are left alone).
    pub fn polarisations(&self) -> Vec<Polarisation> {
        Polarisation::read_from(&self.sar.polarisations)
    }
}

pub use crate::features::indices::same_band_name;
