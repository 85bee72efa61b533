//! STAC Item (with raster, classification and projection extensions) beside each product.

use serde_json::{json, Value};

use crate::config::{MethodDef, Pipeline};
use crate::error::Result;
use crate::pipeline::method_run::MethodOutcome;
use crate::scene::SceneSources;

/// UTC "now" as RFC 3339 (seconds precision).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    crate::time::rfc3339_from_epoch(secs)
}

/// A time stamp as RFC 3339 UTC (`2018-04-19T11:01:27Z`) or a day (`2018-04-19`), from the
/// forms satellite metadata uses (`2018-04-19 11:01:27`, `2018-04-19T11:01:27.123Z`,
/// `20180419`, `2018:04:19 11:01:27`); None when it is neither.
pub fn parse_time(s: &str) -> Option<String> {
    let t = s.trim();
    // Compact `YYYYMMDDTHHMMSS` (Sentinel product names).
    if t.len() >= 15
        && t.as_bytes()[8] == b'T'
        && t[..8]
            .bytes()
            .chain(t[9..15].bytes())
            .all(|b| b.is_ascii_digit())
    {
        let spaced = format!(
            "{}-{}-{} {}:{}:{}",
            &t[..4],
            &t[4..6],
            &t[6..8],
            &t[9..11],
            &t[11..13],
            &t[13..15]
        );
        return parse_time(&spaced);
    }
    let date = crate::config::scene_set::find_date(
        &t.replace(':', "-").chars().take(10).collect::<String>(),
    )?;
    crate::time::day_number(&date)?;
    let rest = t.get(10..).unwrap_or("").trim_start_matches(['T', ' ']);
    let hms: Vec<u32> = rest
        .get(..8)
        .unwrap_or("")
        .split(':')
        .filter_map(|x| x.parse().ok())
        .collect();
    match hms.as_slice() {
        [h, m, sec] if *h < 24 && *m < 60 && *sec < 61 => {
            Some(format!("{date}T{h:02}:{m:02}:{sec:02}Z"))
        }
        _ if rest.is_empty() => Some(date),
        _ => None,
    }
}

/// The acquisition time of a scene for STAC: `(properties, source)`: `datetime` (a day gives
/// `start_datetime`/`end_datetime` over that day and a null `datetime`), from the pipeline,
/// the optical file's metadata or a date in its name; else the processing time, said so.
fn acquisition(src: &SceneSources, now: &str) -> (serde_json::Map<String, Value>, &'static str) {
    if let Some(s) = &src.season {
        return (season_times(s), "season");
    }
    let keys = [
        "date",
        "DATETIME",
        "datetime",
        "ACQUISITION_DATE",
        "SENSING_TIME",
        "PRODUCT_START_TIME",
    ];
    let name = src
        .optical
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let found = [
        (src.datetime.as_deref().and_then(parse_time), "pipeline"),
        (
            crate::io::reader::metadata_value(&src.optical, &keys)
                .as_deref()
                .and_then(parse_time),
            "optical metadata",
        ),
        (
            crate::config::scene_set::find_date(&name),
            "optical file name",
        ),
    ];
    let mut props = serde_json::Map::new();
    match found.into_iter().find_map(|(t, why)| t.map(|t| (t, why))) {
        Some((t, why)) if t.len() == 10 => {
            props.insert("datetime".into(), Value::Null);
            props.insert("start_datetime".into(), json!(format!("{t}T00:00:00Z")));
            props.insert("end_datetime".into(), json!(format!("{t}T23:59:59Z")));
            (props, why)
        }
        Some((t, why)) => {
            props.insert("datetime".into(), json!(t));
            (props, why)
        }
        None => {
            props.insert("datetime".into(), json!(now));
            (props, "unknown: the processing time")
        }
    }
}

/// A season's product spans the season: `start_datetime` / `end_datetime` of its first and
/// last day, and the dates of the observations used.
fn season_times(s: &crate::scene::season::SeasonSources) -> serde_json::Map<String, Value> {
    let (optical, sar) = s.dates();
    let mut props = serde_json::Map::new();
    props.insert("datetime".into(), Value::Null);
    let start = format!("{}T00:00:00Z", s.season.start);
    props.insert("start_datetime".into(), json!(start));
    let end = format!("{}T23:59:59Z", s.season.end);
    props.insert("end_datetime".into(), json!(end));
    props.insert("geofuse:step_days".into(), json!(s.season.step_days));
    props.insert("geofuse:optical_dates".into(), json!(optical));
    props.insert("geofuse:sar_dates".into(), json!(sar));
    props
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
    let bands: Vec<Value> = outcome
        .bands
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
    let (mut time, source) = acquisition(src, &now);
    time.insert("created".into(), json!(now));
    time.insert("geofuse:datetime_source".into(), json!(source));
    let mut v = json!({
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
    });
    if let Some(props) = v["properties"].as_object_mut() {
        props.extend(time);
        if let Some(how) = &outcome.postprocess {
            props.insert("geofuse:postprocess".into(), json!(how));
        }
    }
    if let Some(c) = &src.catalogue {
        add_provenance(&mut v, c, src);
    }
    v
}

/// A catalogue scene's product points back at its source Items: a `derived_from` link per
/// Item, their ids, processing baselines, and the reflectance scale and offset applied.
fn add_provenance(v: &mut Value, c: &crate::config::catalogue::CatalogueScene, src: &SceneSources) {
    let items = c.optical_items.iter().chain(&c.sar_items);
    v["links"] = json!(items
        .clone()
        .filter_map(|i| i.href.as_ref().map(|h| json!({"rel": "derived_from", "href": h, "type": "application/geo+json", "title": i.id})))
        .collect::<Vec<_>>());
    let p = &mut v["properties"];
    p["geofuse:source_items"] = json!(c.optical_items.iter().map(|i| &i.id).collect::<Vec<_>>());
    p["geofuse:source_sar_items"] = json!(c.sar_items.iter().map(|i| &i.id).collect::<Vec<_>>());
    let baselines: Vec<&String> = c
        .optical_items
        .iter()
        .filter_map(|i| i.processing_baseline.as_ref())
        .collect();
    if !baselines.is_empty() {
        p["geofuse:processing_baseline"] = json!(baselines);
    }
    let offset = if c.dn_shift != 0.0 {
        c.item_offset
    } else {
        src.offset
    };
    p["geofuse:reflectance"] = json!({"scale": src.scale, "offset": offset, "dn_shift": c.dn_shift, "source": c.offset_source});
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

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn acquisition_times_in_the_forms_metadata_uses() {
        let t = |s: &str| parse_time(s);
        assert_eq!(
            t("2018-04-19 11:01:27").as_deref(),
            Some("2018-04-19T11:01:27Z")
        );
        assert_eq!(
            t("2018-04-19T11:01:27.123Z").as_deref(),
            Some("2018-04-19T11:01:27Z")
        );
        assert_eq!(
            t("2018:04:19 11:01:27").as_deref(),
            Some("2018-04-19T11:01:27Z")
        );
        assert_eq!(
            t("20170613T101031").as_deref(),
            Some("2017-06-13T10:10:31Z")
        );
        assert_eq!(t("2018-04-19").as_deref(), Some("2018-04-19"));
        assert_eq!(t("20180419").as_deref(), Some("2018-04-19"));
        assert_eq!(t("2018-13-19"), None);
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("2018-04-19 25:00:00"), None);
    }
}
