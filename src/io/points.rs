//! Writing labelled points (suggestions to label) as a GeoPackage layer: a temporary file
//! renamed into place when complete.

use std::path::Path;

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::vector::{Feature, FieldDefn, Geometry, LayerAccess, LayerOptions, OGRFieldType};
use gdal::DriverManager;

use crate::error::{Error, Result};

/// A field value of a point.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Integer.
    Int(i64),
    /// Real.
    Real(f64),
    /// Text.
    Text(String),
    /// Empty (NULL), for a field the user fills in.
    Null,
}

/// One point: coordinates in `crs_wkt` and its field values (in `fields` order).
#[derive(Debug, Clone)]
pub struct Point {
    /// x (easting or longitude).
    pub x: f64,
    /// y (northing or latitude).
    pub y: f64,
    /// The CRS of (x, y), as WKT.
    pub crs_wkt: String,
    /// Field values.
    pub values: Vec<Value>,
}

/// Writes `points` to the GeoPackage `path` (layer `layer`, CRS `crs_wkt`; a point in another
/// CRS is reprojected), with `fields` (name, is it an integer, real or text field by the first
/// non-null value; an all-null field is an integer).
pub fn write_gpkg(
    path: &Path,
    layer: &str,
    crs_wkt: &str,
    fields: &[&str],
    points: &[Point],
) -> Result<()> {
    let tmp = super::writer::append_ext(path, ".partial.gpkg");
    let _ = std::fs::remove_file(&tmp);
    let r = write_to(&tmp, layer, crs_wkt, fields, points);
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "move the points into place", e))
}

fn srs(wkt: &str, path: &Path) -> Result<SpatialRef> {
    let mut s = SpatialRef::from_wkt(wkt).map_err(|e| Error::gdal(path, "CRS", e))?;
    s.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(s)
}

fn field_type(fields_i: usize, points: &[Point]) -> OGRFieldType::Type {
    match points
        .iter()
        .map(|p| &p.values[fields_i])
        .find(|v| **v != Value::Null)
    {
        Some(Value::Real(_)) => OGRFieldType::OFTReal,
        Some(Value::Text(_)) => OGRFieldType::OFTString,
        _ => OGRFieldType::OFTInteger64,
    }
}

fn write_to(
    tmp: &Path,
    layer: &str,
    crs_wkt: &str,
    fields: &[&str],
    points: &[Point],
) -> Result<()> {
    let drv = DriverManager::get_driver_by_name("GPKG")
        .map_err(|e| Error::gdal(tmp, "GPKG driver", e))?;
    let mut ds = drv
        .create_vector_only(tmp)
        .map_err(|e| Error::gdal(tmp, "create GeoPackage", e))?;
    let out_srs = srs(crs_wkt, tmp)?;
    let lyr = ds
        .create_layer(LayerOptions {
            name: layer,
            srs: Some(&out_srs),
            ty: gdal::vector::OGRwkbGeometryType::wkbPoint,
            options: None,
        })
        .map_err(|e| Error::gdal(tmp, "create layer", e))?;
    for (i, f) in fields.iter().enumerate() {
        FieldDefn::new(f, field_type(i, points))
            .and_then(|d| d.add_to_layer(&lyr))
            .map_err(|e| Error::gdal(tmp, format!("field {f}"), e))?;
    }
    let mut transforms: Vec<(String, CoordTransform)> = Vec::new();
    for p in points {
        let (mut x, mut y) = (p.x, p.y);
        if !crate::io::reader::same_crs(&p.crs_wkt, crs_wkt) {
            if !transforms.iter().any(|(w, _)| w == &p.crs_wkt) {
                let t = CoordTransform::new(&srs(&p.crs_wkt, tmp)?, &out_srs)
                    .map_err(|e| Error::gdal(tmp, "coordinate transform", e))?;
                transforms.push((p.crs_wkt.clone(), t));
            }
            let t = &transforms
                .iter()
                .find(|(w, _)| w == &p.crs_wkt)
                .expect("added")
                .1;
            let (mut xs, mut ys) = ([x], [y]);
            t.transform_coords(&mut xs, &mut ys, &mut [0.0])
                .map_err(|e| Error::gdal(tmp, "reproject a point", e))?;
            (x, y) = (xs[0], ys[0]);
        }
        let mut g = Geometry::empty(gdal::vector::OGRwkbGeometryType::wkbPoint)
            .map_err(|e| Error::gdal(tmp, "point", e))?;
        g.add_point_2d((x, y));
        let mut f = Feature::new(lyr.defn()).map_err(|e| Error::gdal(tmp, "feature", e))?;
        f.set_geometry(g)
            .map_err(|e| Error::gdal(tmp, "geometry", e))?;
        for (i, v) in p.values.iter().enumerate() {
            let r = match v {
                Value::Int(n) => f.set_field_integer64(i, *n),
                Value::Real(r) => f.set_field_double(i, *r),
                Value::Text(s) => f.set_field_string(i, s),
                Value::Null => f.set_field_null(i),
            };
            r.map_err(|e| Error::gdal(tmp, format!("field {}", fields[i]), e))?;
        }
        f.create(&lyr)
            .map_err(|e| Error::gdal(tmp, "write a point", e))?;
    }
    Ok(())
}
