//! Vector reference data (GeoPackage, GeoJSON, Shapefile, anything OGR reads): features with a
//! class, their geometry reprojected to a scene's CRS and handed over as `geo` types.

use std::path::Path;

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::vector::{FieldValue, Layer, LayerAccess};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};

use crate::config::{ClassDef, ReferenceDef};
use crate::error::{Error, Result};

/// One reference feature in the scene's CRS.
#[derive(Debug, Clone)]
pub struct ReferenceFeature {
    /// Feature id in the layer (stable across runs; seeds the by-polygon split).
    pub fid: u64,
    /// Class id from the class table.
    pub class: u8,
    /// Polygon(s) or point(s).
    pub geometry: geo::Geometry<f64>,
}

/// Reads the features of `r` (its layer, or the first; only those passing its filter),
/// reprojected to `crs_wkt`, each with the class id its `class_field` names (an id of the
/// class table, or a class name).
pub fn read_reference(
    r: &ReferenceDef,
    classes: &[ClassDef],
    crs_wkt: &str,
) -> Result<Vec<ReferenceFeature>> {
    let path = &r.path;
    let ds = open_vector(path)?;
    let mut layer = match &r.layer {
        Some(n) => ds.layer_by_name(n).map_err(|_| {
            Error::input(
                path,
                format!("has no layer `{n}`; layers: {}", layer_names(&ds)),
            )
        })?,
        None => ds.layer(0).map_err(|_| {
            Error::input(path, "has no layer; write the reference features into it")
        })?,
    };
    if let Some(f) = &r.filter {
        layer.set_attribute_filter(f).map_err(|e| {
            Error::input(
                path,
                format!(
                    "attribute filter `{f}` is not valid OGR SQL ({e}); fix `reference.filter`"
                ),
            )
        })?;
    }
    if layer.feature_count() == 0 {
        return Err(no_features(r));
    }
    let field = field_index(&layer, path, &r.class_field)?;
    let transform = to_scene_crs(&layer, path, crs_wkt)?;
    let mut out = Vec::new();
    for f in layer.features() {
        let fid = f.fid().unwrap_or(out.len() as u64);
        let class = class_of(f.field(field).ok().flatten(), classes)
            .map_err(|m| Error::input(path, format!("feature {fid}: {m}")))?;
        let Some(g) = f.geometry() else { continue };
        if !g.is_valid() {
            return Err(Error::input(path, format!("feature {fid} has an invalid geometry (self-intersecting or unclosed ring); repair it (QGIS: Vector > Geometry Tools > Fix Geometries, or ogr2ogr -makevalid)")));
        }
        let geometry = in_scene_crs(g, transform.as_ref(), path, fid)?;
        out.push(ReferenceFeature {
            fid,
            class,
            geometry,
        });
    }
    if out.is_empty() {
        return Err(no_features(r));
    }
    Ok(out)
}

/// Every geometry of the first layer of `path` (an exclusion mask: what the polygons cover is
/// left alone), reprojected to `crs_wkt`.
pub fn read_geometries(path: &Path, crs_wkt: &str) -> Result<Vec<geo::Geometry<f64>>> {
    let ds = open_vector(path)?;
    let mut layer = ds
        .layer(0)
        .map_err(|_| Error::input(path, "has no layer; draw the exclusion polygons into one"))?;
    let transform = to_scene_crs(&layer, path, crs_wkt)?;
    let mut out = Vec::new();
    for f in layer.features() {
        let fid = f.fid().unwrap_or(out.len() as u64);
        let Some(g) = f.geometry() else { continue };
        out.push(in_scene_crs(g, transform.as_ref(), path, fid)?);
    }
    Ok(out)
}

/// Feature `fid`'s geometry reprojected with `transform` (None: already in the scene's CRS),
/// as a `geo` geometry.
fn in_scene_crs(
    g: &gdal::vector::Geometry,
    transform: Option<&CoordTransform>,
    path: &Path,
    fid: u64,
) -> Result<geo::Geometry<f64>> {
    let g = match transform {
        Some(t) => g.transform(t).map_err(|e| {
            Error::input(
                path,
                format!("feature {fid} cannot be reprojected to the scene's CRS ({e})"),
            )
        })?,
        None => g.clone(),
    };
    g.to_geo()
        .map_err(|e| Error::input(path, format!("feature {fid}: unsupported geometry ({e})")))
}

fn no_features(r: &ReferenceDef) -> Error {
    let filter = r
        .filter
        .as_ref()
        .map(|f| format!(" passing the filter `{f}`"));
    Error::input(
        &r.path,
        format!(
            "has no features{}; draw reference polygons or points, or loosen `reference.filter`",
            filter.unwrap_or_default()
        ),
    )
}

fn open_vector(path: &Path) -> Result<Dataset> {
    if !path.exists() {
        return Err(Error::input(path, "file not found; check the path in the pipeline file (`reference.path` or `postprocess.exclusion`; relative paths resolve against the pipeline's folder)"));
    }
    let opts = DatasetOptions {
        open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_READONLY,
        ..Default::default()
    };
    Dataset::open_ex(path, opts).map_err(|e| {
        Error::input(
            path,
            format!(
                "GDAL cannot read it as vector data ({e}); give a GeoPackage, GeoJSON or Shapefile"
            ),
        )
    })
}

fn layer_names(ds: &Dataset) -> String {
    ds.layers().map(|l| l.name()).collect::<Vec<_>>().join(", ")
}

fn field_index(layer: &Layer, path: &Path, name: &str) -> Result<usize> {
    let fields: Vec<String> = layer.defn().fields().map(|f| f.name()).collect();
    fields.iter().position(|f| f == name).ok_or_else(|| {
        Error::input(path, format!("has no field `{name}` (its fields: {}); set `reference.class_field` to the field holding the class", fields.join(", ")))
    })
}

/// The transform from the layer's CRS to the scene's (None when they are the same). Both use
/// the GIS axis order (x = easting/longitude), whatever the CRS definition says.
fn to_scene_crs(layer: &Layer, path: &Path, crs_wkt: &str) -> Result<Option<CoordTransform>> {
    let Some(mut src) = layer.spatial_ref() else {
        return Err(Error::input(
            path,
            "has no CRS; assign one (QGIS: Layer CRS, or ogr2ogr -a_srs EPSG:...)",
        ));
    };
    let mut dst = SpatialRef::from_wkt(crs_wkt)
        .map_err(|e| Error::input(path, format!("the scene's CRS cannot be parsed ({e})")))?;
    if src == dst {
        return Ok(None);
    }
    src.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    dst.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    CoordTransform::new(&src, &dst).map(Some).map_err(|e| {
        Error::input(
            path,
            format!("no transform from its CRS to the scene's ({e}); reproject it"),
        )
    })
}

/// The class id a field value names: an integer id of the class table, or a class name.
fn class_of(v: Option<FieldValue>, classes: &[ClassDef]) -> std::result::Result<u8, String> {
    let shown = format!("{v:?}");
    let known = || {
        classes
            .iter()
            .map(|c| format!("{} ({})", c.id, c.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let id = match v {
        None => return Err("the class field is empty; give every feature a class".into()),
        Some(FieldValue::IntegerValue(i)) => Some(i as i64),
        Some(FieldValue::Integer64Value(i)) => Some(i),
        Some(FieldValue::RealValue(x)) if x.fract() == 0.0 => Some(x as i64),
        Some(FieldValue::StringValue(s)) => {
            if let Some(c) = classes.iter().find(|c| c.name == s) {
                return Ok(c.id);
            }
            s.trim().parse::<i64>().ok()
        }
        Some(other) => {
            return Err(format!(
                "class value {other:?} is neither a class id nor a class name"
            ))
        }
    };
    id.and_then(|i| classes.iter().find(|c| i64::from(c.id) == i))
        .map(|c| c.id)
        .ok_or_else(|| format!("its class {shown} is not in the class table ({}); add the class to `classes`, or leave such features out with `reference.filter`", known()))
}
