//! Reading STAC documents from a path or an href, and collecting their Items: an Item, an
//! ItemCollection (what a STAC API search returns, saved), a GeoJSON FeatureCollection, or a
//! static Catalog / Collection whose `item` and `child` links are followed.

use serde_json::Value;

use super::item::{links, resolve_href, Item};

/// Depth of `child` links followed in a static catalog.
const MAX_CATALOG_DEPTH: usize = 8;

/// Reads the JSON document at `href` (a local path, `file://`, or `http(s)://` through GDAL's
/// HTTP client with its retries and timeout). `Err` is the message.
pub fn read_json(href: &str) -> Result<Value, String> {
    let bytes =
        if href.starts_with("http://") || href.starts_with("https://") {
            crate::io::http::configure_network();
            crate::io::http::fetch(href, None)
                .map_err(|e| format!("cannot download it ({e}); check the href and the network"))?
        } else {
            let path = href.strip_prefix("file://").unwrap_or(href);
            match std::fs::metadata(path) {
                Ok(m) if !m.is_file() => return Err(
                    "is not a file; give the saved search (a JSON file), an Item or a catalog.json"
                        .into(),
                ),
                _ => {}
            }
            std::fs::read(path).map_err(|e| format!("cannot read it ({e}); check the path"))?
        };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    serde_json::from_str(text).map_err(|e| {
        format!("is not valid JSON ({e}); save the STAC search result (an ItemCollection) or an Item again")
    })
}

/// Every Item reachable from the document at `href`, in document order.
pub fn read_items(href: &str) -> Result<Vec<Item>, String> {
    let doc = read_json(href)?;
    let mut out = Vec::new();
    collect(&doc, href, 0, &mut out)?;
    Ok(out)
}

/// Collects the Items of `doc` (found at `base`) into `out`.
pub fn collect(doc: &Value, base: &str, depth: usize, out: &mut Vec<Item>) -> Result<(), String> {
    match doc["type"].as_str() {
        Some("Feature") => out.push(Item::from_json(doc, base)?),
        Some("FeatureCollection") => {
            let features = doc["features"].as_array().ok_or(
                "is a FeatureCollection without a `features` array; save the search result again",
            )?;
            for (i, f) in features.iter().enumerate() {
                if f["type"].as_str() != Some("Feature") {
                    return Err(format!(
                        "feature {i} of the ItemCollection is not a STAC Item (`type` is not \"Feature\")"
                    ));
                }
                out.push(Item::from_json(f, base)?);
            }
        }
        Some("Catalog") | Some("Collection") => {
            if depth >= MAX_CATALOG_DEPTH {
                return Err(format!(
                    "the catalog nests deeper than {MAX_CATALOG_DEPTH} levels; point geofuse at a sub-catalog"
                ));
            }
            for (rel, href) in links(doc) {
                if rel == "item" || rel == "child" {
                    let h = resolve_href(base, &href);
                    let d = read_json(&h).map_err(|e| format!("{h}: {e}"))?;
                    collect(&d, &h, depth + 1, out)?;
                }
            }
        }
        other => {
            return Err(format!(
                "is not a STAC Item, ItemCollection or Catalog (`type` is {}); give the saved search result (an ItemCollection), an Item or a catalog.json",
                other.map_or("missing".to_string(), |t| format!("\"{t}\""))
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feature(id: &str) -> Value {
        json!({"type": "Feature", "id": id, "properties": {"datetime": "2019-05-16T10:40:00Z"},
               "assets": {"B02": {"href": format!("{id}/B02.tif")}}})
    }

    #[test]
    fn a_static_catalog_is_walked_through_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::write(d.join("a/a1.json"), feature("a1").to_string()).unwrap();
        let child =
            json!({"type": "Collection", "id": "c", "links": [{"rel": "item", "href": "a1.json"}]});
        std::fs::write(d.join("a/collection.json"), child.to_string()).unwrap();
        let root = json!({"type": "Catalog", "id": "root", "links": [
            {"rel": "child", "href": "./a/collection.json"}, {"rel": "self", "href": "x"}]});
        std::fs::write(d.join("catalog.json"), root.to_string()).unwrap();
        let items = read_items(&d.join("catalog.json").to_string_lossy()).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, "a1");
        assert_eq!(
            items[0].assets[0].href,
            d.join("a/a1/B02.tif").to_string_lossy()
        );
    }

    #[test]
    fn malformed_documents_are_refused_with_the_reason() {
        let mut out = Vec::new();
        let e = collect(&json!({"type": "FeatureCollection"}), "x", 0, &mut out).unwrap_err();
        assert!(e.contains("features"), "{e}");
        let e = collect(&json!({"features": []}), "x", 0, &mut out).unwrap_err();
        assert!(e.contains("ItemCollection"), "{e}");
        let fc =
            json!({"type": "FeatureCollection", "features": [feature("ok"), {"type": "Point"}]});
        let e = collect(&fc, "x", 0, &mut out).unwrap_err();
        assert!(e.contains("feature 1"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.json");
        std::fs::write(&p, "{\"type\": \"FeatureCollection\", ").unwrap();
        let e = read_items(&p.to_string_lossy()).unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
    }
}
