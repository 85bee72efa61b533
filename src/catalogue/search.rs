//! STAC API item search (`POST /search`, following `next` links page by page) into an
//! ItemCollection.

use serde_json::{json, Value};

use super::item::{links, Item};
use crate::config::catalogue::SearchDef;

/// Items per page asked of the API.
const PAGE_SIZE: usize = 100;

/// The body of the first `POST /search` request; `query` when the API conforms to the query
/// extension (the cloud cover is filtered here in any case).
pub fn request_body(s: &SearchDef, query: bool) -> Value {
    let mut b = json!({"collections": s.collections, "limit": PAGE_SIZE.min(s.max_items.max(1))});
    if let Some(bb) = s.bbox {
        b["bbox"] = json!(bb);
    }
    if let Some(dt) = &s.datetime {
        b["datetime"] = json!(interval(dt));
    }
    if let (Some(c), true) = (s.max_cloud, query) {
        b["query"] = json!({"eo:cloud_cover": {"lte": c}});
    }
    b
}

/// An RFC 3339 interval from a day, a day range or timestamps (`2022-04-01` is that day).
fn interval(dt: &str) -> String {
    let full = |d: &str, end: bool| match d.trim() {
        d if d.len() == 10 => format!("{d}T{}", if end { "23:59:59Z" } else { "00:00:00Z" }),
        d => d.to_string(),
    };
    match dt.split_once('/') {
        Some((a, b)) => format!(
            "{}/{}",
            if a.is_empty() || a == ".." {
                "..".into()
            } else {
                full(a, false)
            },
            if b.is_empty() || b == ".." {
                "..".into()
            } else {
                full(b, true)
            }
        ),
        None => format!("{}/{}", full(dt, false), full(dt, true)),
    }
}

/// Runs the search; the Items (at most `max_items`) and the ItemCollection as returned,
/// pages joined. Items above `max_cloud` are dropped here too, as an API may ignore `query`.
/// `Err` is the message.
pub fn search(s: &SearchDef) -> Result<(Vec<Item>, Value), String> {
    crate::io::http::configure_network();
    let root = s.api.trim_end_matches('/');
    let url = format!("{root}/search");
    let mut body = Some(request_body(s, conforms_to_query(root)?));
    let mut next_url = url.clone();
    let mut features: Vec<Value> = Vec::new();
    for _page in 0..1000 {
        let text =
            crate::io::http::fetch(&next_url, body.as_ref().map(|b| b.to_string()).as_deref())
                .map_err(|e| {
                    format!("the STAC API search failed ({e}); check `api` and the network")
                })?;
        let page: Value = serde_json::from_slice(&text).map_err(|e| {
            format!("{next_url}: the STAC API answered something that is not JSON ({e}); check that `api` is a STAC API root")
        })?;
        let feats = page["features"].as_array().ok_or_else(|| {
            format!("{next_url}: the answer has no `features`; check that `api` is a STAC API root (its /search endpoint)")
        })?;
        features.extend(feats.iter().cloned());
        let next = page["links"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["rel"] == "next");
        match next {
            Some(l) if features.len() < s.max_items && !feats.is_empty() => {
                next_url = l["href"].as_str().unwrap_or(&url).to_string();
                body = match l["method"].as_str() {
                    Some("POST") => Some(l["body"].clone()),
                    _ => None,
                };
            }
            _ => break,
        }
    }
    features.retain(
        |f| match (s.max_cloud, f["properties"]["eo:cloud_cover"].as_f64()) {
            (Some(m), Some(c)) => c <= m,
            _ => true,
        },
    );
    features.truncate(s.max_items);
    let items = features
        .iter()
        .map(|f| Item::from_json(f, &self_link(f).unwrap_or_else(|| url.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let fc = json!({"type": "FeatureCollection", "features": features});
    Ok((items, fc))
}

/// Whether the API's landing page lists the item-search query extension (an API that does
/// not may answer a `query` with nothing).
fn conforms_to_query(root: &str) -> Result<bool, String> {
    let text = crate::io::http::fetch(root, None)
        .map_err(|e| format!("the STAC API search failed ({e}); check `api` and the network"))?;
    let landing: Value = serde_json::from_slice(&text).map_err(|e| {
        format!("{root}: the landing page is not JSON ({e}); check that `api` is a STAC API root")
    })?;
    Ok(landing["conformsTo"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|c| c.contains("item-search#query")))
}

fn self_link(f: &Value) -> Option<String> {
    links(f).find(|(r, _)| r == "self").map(|(_, h)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_every_criterion() {
        let s = SearchDef {
            api: "http://127.0.0.1:1/".into(),
            collections: vec!["sentinel-2-l2a".into()],
            bbox: Some([3.0, 50.0, 4.0, 51.0]),
            datetime: Some("2022-04-01/2022-09-30".into()),
            max_cloud: Some(20.0),
            max_items: 500,
        };
        let b = request_body(&s, true);
        assert_eq!(b["collections"][0], "sentinel-2-l2a");
        assert_eq!(b["bbox"][3], 51.0);
        assert_eq!(b["datetime"], "2022-04-01T00:00:00Z/2022-09-30T23:59:59Z");
        assert_eq!(b["query"]["eo:cloud_cover"]["lte"], 20.0);
        assert_eq!(b["limit"], 100);
        assert!(request_body(&s, false).get("query").is_none());
        assert_eq!(
            interval("2022-04-01"),
            "2022-04-01T00:00:00Z/2022-04-01T23:59:59Z"
        );
        assert_eq!(interval("2022-04-01/.."), "2022-04-01T00:00:00Z/..");
    }
}
