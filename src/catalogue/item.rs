//! STAC Items as geofuse reads them: id, time, collection, the assets with their band names,
//! offsets and scales, and where relative hrefs resolve.
//!
//! Items are read from `serde_json::Value` rather than a fixed schema: catalogues differ in
//! which extension versions they use (`eo:bands` on the asset or in `bands`, `raster:bands`
//! or `raster:scale` / `raster:offset`), and geofuse needs a dozen fields of them.

use serde_json::Value;

/// One asset of an Item.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// The asset's key in the Item (`B04`, `red`, `SCL`, `vv`).
    pub key: String,
    /// Absolute href (relative hrefs resolved against the Item's location).
    pub href: String,
    /// Media type, when the Item gives one.
    pub media_type: Option<String>,
    /// Roles (`data`, `overview`, `metadata`, ...).
    pub roles: Vec<String>,
    /// Band names (`eo:bands` name) and common names of the asset's first band.
    pub names: Vec<String>,
    /// Reflectance = DN * scale + offset from `raster:bands`, when given.
    pub scale: Option<f64>,
    /// Offset from `raster:bands`, when given.
    pub offset: Option<f64>,
    /// Unit of the first band from `raster:bands` (`dB`, `linear`, ...), when given.
    pub unit: Option<String>,
    /// Class values of `classification:classes` (mask assets such as SCL), when given.
    pub classes: Option<Vec<i64>>,
}

/// One Item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Item id.
    pub id: String,
    /// Collection id, when given.
    pub collection: Option<String>,
    /// `datetime` (or `start_datetime`) as written in the Item.
    pub datetime: String,
    /// Where the Item was read from (file path or href), for messages and provenance.
    pub source: String,
    /// The Item's own href (`self` link, else its location), for `derived_from` links.
    pub self_href: Option<String>,
    /// Every property of the Item.
    pub properties: serde_json::Map<String, Value>,
    /// The assets, in the Item's order.
    pub assets: Vec<Asset>,
}

impl Item {
    /// Reads an Item from its JSON; `base` is the href or path of the document it came from
    /// (relative asset hrefs resolve against it). `Err` is the message.
    pub fn from_json(v: &Value, base: &str) -> Result<Item, String> {
        let id = v["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or("an Item has no `id`")?
            .to_string();
        let props = v["properties"]
            .as_object()
            .ok_or_else(|| format!("Item `{id}` has no `properties` object"))?;
        let datetime = ["datetime", "start_datetime"]
            .iter()
            .find_map(|k| props.get(*k).and_then(Value::as_str))
            .ok_or_else(|| {
                format!("Item `{id}` has no `datetime` (nor `start_datetime`) property")
            })?
            .to_string();
        let self_href = links(v)
            .find(|(rel, _)| rel == "self")
            .map(|(_, h)| resolve_href(base, &h));
        let own = self_href.clone().unwrap_or_else(|| base.to_string());
        let assets = v["assets"]
            .as_object()
            .ok_or_else(|| format!("Item `{id}` has no `assets` object"))?
            .iter()
            .map(|(k, a)| asset(k, a, &own))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| format!("Item `{id}`: {m}"))?;
        Ok(Item {
            id,
            collection: v["collection"].as_str().map(str::to_string),
            datetime,
            source: base.to_string(),
            self_href: self_href.or_else(|| Some(base.to_string())),
            properties: props.clone(),
            assets,
        })
    }

    /// The day of the acquisition, `YYYY-MM-DD`.
    pub fn day(&self) -> String {
        self.datetime.chars().take(10).collect()
    }

    /// A property as text (`s2:processing_baseline`, `sat:orbit_state`, ...).
    pub fn property(&self, key: &str) -> Option<String> {
        match self.properties.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The asset for band `name`: by key, by `eo:bands` name or by common name, compared
    /// without case and without a leading zero (`B8A` = `b8a` = `nir08`, `B2` = `B02`).
    pub fn band_asset(&self, name: &str) -> Option<&Asset> {
        let names = std::iter::once(name).chain(s2_alias(name));
        for want in names {
            let same = |a: &str| crate::features::indices::same_band_name(a, want);
            let found = self
                .assets
                .iter()
                .find(|a| same(&a.key))
                .or_else(|| self.assets.iter().find(|a| a.names.iter().any(|n| same(n))));
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// The asset keys, comma-separated (for messages).
    pub fn asset_keys(&self) -> String {
        let keys: Vec<&str> = self.assets.iter().map(|a| a.key.as_str()).collect();
        keys.join(", ")
    }

    /// The asset with key `key` (case-insensitive).
    pub fn asset(&self, key: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.key.eq_ignore_ascii_case(key))
    }
}

/// Sentinel-2 band ids and their STAC common names (Earth Search names its assets and their
/// `eo:bands` by common name only).
const S2_COMMON_NAMES: [(&str, &str); 13] = [
    ("B01", "coastal"),
    ("B02", "blue"),
    ("B03", "green"),
    ("B04", "red"),
    ("B05", "rededge1"),
    ("B06", "rededge2"),
    ("B07", "rededge3"),
    ("B08", "nir"),
    ("B8A", "nir08"),
    ("B09", "nir09"),
    ("B10", "cirrus"),
    ("B11", "swir16"),
    ("B12", "swir22"),
];

/// The other name of a Sentinel-2 band: its common name for a band id, its id for a common
/// name.
fn s2_alias(name: &str) -> Option<&'static str> {
    let same = |a: &str| crate::features::indices::same_band_name(a, name);
    S2_COMMON_NAMES.iter().find_map(|(id, common)| {
        if same(id) {
            Some(*common)
        } else if same(common) {
            Some(*id)
        } else {
            None
        }
    })
}

/// The `(rel, href)` pairs of a document's `links`.
pub fn links(v: &Value) -> impl Iterator<Item = (String, String)> + '_ {
    v["links"].as_array().into_iter().flatten().filter_map(|l| {
        Some((
            l["rel"].as_str()?.to_string(),
            l["href"].as_str()?.to_string(),
        ))
    })
}

/// One asset; relative hrefs resolve against `base`.
fn asset(key: &str, a: &Value, base: &str) -> Result<Asset, String> {
    let href = a["href"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("asset `{key}` has no `href`"))?;
    let bands = band_list(a);
    let first = bands.first();
    let mut names = Vec::new();
    for k in ["name", "common_name", "eo:common_name"] {
        if let Some(n) = first.and_then(|b| b[k].as_str()) {
            names.push(n.to_string());
        }
    }
    let raster = a["raster:bands"].get(0).unwrap_or(&Value::Null);
    let num = |k: &str| {
        raster[k]
            .as_f64()
            .or_else(|| a[format!("raster:{k}")].as_f64())
            .or_else(|| first.and_then(|b| b[k].as_f64()))
    };
    let classes = a["classification:classes"].as_array().map(|cs| {
        cs.iter()
            .filter_map(|c| c["value"].as_i64())
            .collect::<Vec<_>>()
    });
    Ok(Asset {
        key: key.to_string(),
        href: resolve_href(base, href),
        media_type: a["type"].as_str().map(str::to_string),
        roles: a["roles"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        names,
        scale: num("scale"),
        offset: num("offset"),
        unit: raster["unit"].as_str().map(str::to_string),
        classes,
    })
}

/// `eo:bands` (STAC 1.0) or `bands` (STAC 1.1) of an asset.
fn band_list(a: &Value) -> Vec<Value> {
    ["eo:bands", "bands"]
        .iter()
        .find_map(|k| a[*k].as_array().cloned())
        .unwrap_or_default()
}

/// Resolves `href` against `base` (a URL or a file path of the document holding it).
pub fn resolve_href(base: &str, href: &str) -> String {
    if href.contains("://") || href.starts_with('/') {
        return href.to_string();
    }
    let dir = match base.rfind('/') {
        Some(i) => &base[..=i],
        None => "",
    };
    let (root, path) = match dir.find("://") {
        Some(i) => {
            let after = i + 3;
            let host_end = dir[after..].find('/').map_or(dir.len(), |j| after + j);
            (&dir[..host_end], &dir[host_end..])
        }
        None => ("", dir),
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/').chain(href.split('/')) {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let lead = if path.starts_with('/') { "/" } else { "" };
    let joined = format!("{lead}{}", parts.join("/"));
    format!("{root}{joined}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::stack::gdal_path;
    use serde_json::json;

    fn item() -> Value {
        json!({
            "type": "Feature", "stac_version": "1.0.0", "id": "S2A_31UDS_20220419_0_L2A",
            "collection": "sentinel-2-l2a",
            "properties": {"datetime": "2022-04-19T10:56:21Z", "s2:processing_baseline": "04.00"},
            "links": [{"rel": "self", "href": "https://example.test/items/x.json"}],
            "assets": {
                "red": {"href": "B04.tif", "type": "image/tiff; application=geotiff",
                         "eo:bands": [{"name": "B04", "common_name": "red"}],
                         "raster:bands": [{"scale": 0.0001, "offset": -0.1}]},
                "nir08": {"href": "../c/B8A.tif", "eo:bands": [{"name": "B8A", "common_name": "nir08"}]},
                "scl": {"href": "/abs/SCL.tif", "classification:classes": [{"value": 0}, {"value": 4}]}
            }
        })
    }

    #[test]
    fn bands_are_found_by_key_name_or_common_name() {
        let it = Item::from_json(&item(), "/data/items.json").unwrap();
        assert_eq!(it.band_asset("B04").unwrap().key, "red");
        assert_eq!(it.band_asset("red").unwrap().key, "red");
        assert_eq!(it.band_asset("b8a").unwrap().key, "nir08");
        assert_eq!(it.band_asset("nir08").unwrap().key, "nir08");
        assert!(it.band_asset("B11").is_none());
        let red = it.band_asset("B4").unwrap();
        assert_eq!((red.scale, red.offset), (Some(0.0001), Some(-0.1)));
        assert_eq!(it.asset("SCL").unwrap().classes, Some(vec![0, 4]));
        assert_eq!(it.day(), "2022-04-19");
        assert_eq!(it.property("s2:processing_baseline").unwrap(), "04.00");
    }

    #[test]
    fn earth_search_assets_named_by_common_name_are_found_by_band_id() {
        let v = json!({"type": "Feature", "id": "es", "properties": {"datetime": "2024-05-01T10:00:00Z"},
        "assets": {
            "blue-jp2": {"href": "B02.jp2", "eo:bands": [{"name": "blue", "common_name": "blue"}]},
            "blue": {"href": "B02.tif", "eo:bands": [{"name": "blue", "common_name": "blue"}]},
            "nir08": {"href": "B8A.tif", "eo:bands": [{"name": "nir08", "common_name": "nir08"}]}
        }});
        let it = Item::from_json(&v, "/x/items.json").unwrap();
        assert_eq!(it.band_asset("B02").unwrap().key, "blue");
        assert_eq!(it.band_asset("B8A").unwrap().key, "nir08");
        assert!(it.band_asset("B08").is_none());
        assert_eq!(s2_alias("nir"), Some("B08"));
        assert_eq!(s2_alias("b8a"), Some("nir08"));
        assert_eq!(s2_alias("VV"), None);
    }

    #[test]
    fn relative_hrefs_resolve_against_the_items_location() {
        let it = Item::from_json(&item(), "/data/items.json").unwrap();
        assert_eq!(
            it.band_asset("red").unwrap().href,
            "https://example.test/items/B04.tif"
        );
        assert_eq!(
            it.band_asset("B8A").unwrap().href,
            "https://example.test/c/B8A.tif"
        );
        assert_eq!(it.asset("scl").unwrap().href, "/abs/SCL.tif");
        assert_eq!(
            resolve_href("/data/x/items.json", "a/b.tif"),
            "/data/x/a/b.tif"
        );
        assert_eq!(resolve_href("items.json", "b.tif"), "b.tif");
        assert_eq!(
            resolve_href("http://127.0.0.1:8000/s/items.json", "../b.tif"),
            "http://127.0.0.1:8000/b.tif"
        );
        assert_eq!(gdal_path("https://h/x.tif"), "/vsicurl/https://h/x.tif");
        assert_eq!(gdal_path("file:///tmp/x.tif"), "/tmp/x.tif");
    }

    #[test]
    fn an_item_without_id_or_datetime_is_refused_with_the_reason() {
        let mut v = item();
        v["properties"] = json!({});
        let e = Item::from_json(&v, "x.json").unwrap_err();
        assert!(
            e.contains("S2A_31UDS_20220419_0_L2A") && e.contains("datetime"),
            "{e}"
        );
        v["id"] = json!(null);
        assert!(Item::from_json(&v, "x.json").unwrap_err().contains("`id`"));
    }
}
