//! STAC Item (with raster, classification and projection extensions) beside each product.

use serde_json::{json, Value};

use crate::config::{MethodDef, Pipeline};
use crate::error::Result;
use crate::pipeline::method_run::MethodOutcome;
use crate::pipeline::scene::SceneSources;

/// UTC "now" as RFC 3339 (seconds precision).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Builds the STAC Item of a product.
pub fn item(
    p: &Pipeline,
    src: &SceneSources,
    method: &MethodDef,
    outcome: &MethodOutcome,
    pipeline_hash: &str,
) -> Value {
    let g = &src.grid;
    let (bbox, geometry) = match crate::io::reader::lonlat_bounds(g) {
        Some([w, s, e, n]) => (
            json!([w, s, e, n]),
            json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}),
        ),
        None => (Value::Null, Value::Null),
    };
    let bands: Vec<Value> = crate::product::bands(&outcome.band_meanings)
        .iter()
        .map(|b| json!({"name": b.name, "description": b.description, "data_type": "uint8", "nodata": 255, "scale": b.scale, "offset": b.offset}))
        .collect();
    let classes: Vec<Value> = p
        .classes
        .iter()
        .map(|c| json!({"value": c.id, "name": c.name, "color_hint": c.color.trim_start_matches('#').to_uppercase()}))
        .collect();
    let href = outcome
        .product
        .file_name()
        .map(|f| format!("./{}", f.to_string_lossy()))
        .unwrap_or_default();
    let now = utc_now();
    json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
        ],
        "id": format!("{}-{}", src.name, method.name),
        "bbox": bbox,
        "geometry": geometry,
        "properties": {
            "datetime": now,
            "created": now,
            "proj:epsg": g.epsg,
            "proj:shape": [g.height, g.width],
            "proj:transform": [g.transform[1], g.transform[2], g.transform[0], g.transform[4], g.transform[5], g.transform[3]],
            "geofuse:version": env!("CARGO_PKG_VERSION"),
            "geofuse:method": method.name,
            "geofuse:pipeline_hash": pipeline_hash,
            "geofuse:model_hash": outcome.model_hash,
        },
        "assets": {
            "classification": {
                "href": href,
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "title": format!("{} classification with uncertainty", method.name),
                "roles": ["data"],
                "raster:bands": bands,
                "classification:classes": classes,
            }
        },
        "links": []
    })
}

/// Writes `<scene>/<method>.stac.json`.
pub fn write_item(
    p: &Pipeline,
    src: &SceneSources,
    method: &MethodDef,
    outcome: &MethodOutcome,
    pipeline_hash: &str,
) -> Result<()> {
    let path = outcome
        .product
        .with_file_name(format!("{}.stac.json", method.name));
    super::write_json(&path, &item(p, src, method, outcome, pipeline_hash))
}
