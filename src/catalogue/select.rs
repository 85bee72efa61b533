//! Which Items make a scene: optical Items grouped by day (adjacent tiles of one pass are
//! mosaicked), SAR Items matched to each day by date, and the reflectance offset and scale
//! each optical Item declares.

use super::item::Item;
use crate::time::day_number;

/// Whether `item` carries SAR backscatter: an asset for one of `pols` (key or band name).
pub fn is_sar(item: &Item, pols: &[String]) -> bool {
    pols.iter().any(|p| item.band_asset(p).is_some())
}

/// Optical Items grouped by (collection, day), in the order of their first Item; Items
/// within a group keep their order (the first one's grid leads a mosaic).
pub fn day_groups(items: &[Item]) -> Vec<Vec<Item>> {
    let mut groups: Vec<Vec<Item>> = Vec::new();
    for it in items {
        let key = (it.collection.clone(), it.day());
        match groups
            .iter_mut()
            .find(|g| (g[0].collection.clone(), g[0].day()) == key)
        {
            Some(g) => g.push(it.clone()),
            None => groups.push(vec![it.clone()]),
        }
    }
    groups
}

/// Whether a SAR Item is of orbit direction `orbit` (`sat:orbit_state`); any, when None.
pub fn orbit_fits(it: &Item, orbit: Option<&str>) -> bool {
    orbit.is_none_or(|o| {
        it.property("sat:orbit_state")
            .is_some_and(|s| s.eq_ignore_ascii_case(o))
    })
}

/// The SAR Items of the day nearest `day` within `max_days` (ties: the earlier day), of
/// orbit direction `orbit` when given; empty when none is in reach.
pub fn nearest_sar(sar: &[Item], day: &str, max_days: u32, orbit: Option<&str>) -> Vec<Item> {
    let Some(target) = day_number(day) else {
        return Vec::new();
    };
    let fits = |it: &Item| orbit_fits(it, orbit);
    let gap = |it: &Item| day_number(&it.day()).map(|d| (d - target).abs());
    let best = sar
        .iter()
        .filter(|it| fits(it))
        .filter_map(|it| Some((gap(it)?, it.day())))
        .filter(|(g, _)| *g <= i64::from(max_days))
        .min();
    match best {
        Some((_, d)) => sar
            .iter()
            .filter(|it| fits(it) && it.day() == d)
            .cloned()
            .collect(),
        None => Vec::new(),
    }
}

/// Reflectance `(scale, offset, source)` of an optical Item's bands: from the assets'
/// `raster:bands` when they give them, else from `s2:processing_baseline` (04.00 and later:
/// reflectance = (DN - 1000) / 10000), else `fallback` (the pipeline's). `Err` when the
/// bands disagree (geofuse applies one scale and offset per scene).
pub fn reflectance_scaling(
    item: &Item,
    bands: &[String],
    fallback: (f64, f64),
) -> Result<(f64, f64, String), String> {
    let declared: Vec<(String, Option<f64>, Option<f64>)> = bands
        .iter()
        .filter_map(|b| {
            item.band_asset(b)
                .map(|a| (a.key.clone(), a.scale, a.offset))
        })
        .collect();
    if declared.iter().any(|(_, s, o)| s.is_some() || o.is_some()) {
        let (k0, s0, o0) = &declared[0];
        let (s0, o0) = (s0.unwrap_or(1.0), o0.unwrap_or(0.0));
        for (k, s, o) in &declared {
            let (s, o) = (s.unwrap_or(1.0), o.unwrap_or(0.0));
            if s != s0 || o != o0 {
                return Err(format!(
                    "Item `{}`: asset `{k}` has scale {s} and offset {o} but asset `{k0}` has {s0} and {o0}; geofuse applies one reflectance scale and offset per scene: select bands that share them",
                    item.id
                ));
            }
        }
        return Ok((s0, o0, "raster:bands".into()));
    }
    if let Some(b) = item.property("s2:processing_baseline") {
        let v: f64 = b.trim().parse().unwrap_or(0.0);
        let offset = if v >= 4.0 { -0.1 } else { 0.0 };
        return Ok((1e-4, offset, format!("s2:processing_baseline {b}")));
    }
    Ok((fallback.0, fallback.1, "pipeline scale and offset".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(id: &str, dt: &str, extra: serde_json::Value) -> Item {
        let mut props = json!({"datetime": dt});
        for (k, v) in extra.as_object().unwrap() {
            props[k] = v.clone();
        }
        let v = json!({"type": "Feature", "id": id, "collection": "c", "properties": props,
            "assets": {"vv": {"href": "vv.tif"}, "B04": {"href": "b.tif", "raster:bands": [{"scale": 0.0001, "offset": -0.1}]},
                       "B03": {"href": "g.tif"}}});
        Item::from_json(&v, "x.json").unwrap()
    }

    #[test]
    fn sar_is_matched_by_nearest_day_within_reach_and_orbit() {
        let s = [
            item(
                "a",
                "2022-04-10T05:00:00Z",
                json!({"sat:orbit_state": "descending"}),
            ),
            item(
                "b",
                "2022-04-21T17:00:00Z",
                json!({"sat:orbit_state": "ascending"}),
            ),
            item(
                "b2",
                "2022-04-21T17:00:30Z",
                json!({"sat:orbit_state": "ascending"}),
            ),
            item(
                "c",
                "2022-04-17T05:00:00Z",
                json!({"sat:orbit_state": "descending"}),
            ),
        ];
        let ids = |v: Vec<Item>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(nearest_sar(&s, "2022-04-19", 3, None)), ["c"]);
        assert_eq!(
            ids(nearest_sar(&s, "2022-04-19", 3, Some("ascending"))),
            ["b", "b2"]
        );
        assert!(nearest_sar(&s, "2022-04-19", 1, None).is_empty());
        assert!(nearest_sar(&s, "2022-05-30", 12, None).is_empty());
    }

    #[test]
    fn items_of_one_day_form_one_group() {
        let g = day_groups(&[
            item("t1", "2022-04-19T10:56:00Z", json!({})),
            item("x", "2022-04-22T10:56:00Z", json!({})),
            item("t2", "2022-04-19T10:56:10Z", json!({})),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0].iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["t1", "t2"]
        );
        assert!(is_sar(&g[0][0], &["VV".into()]));
    }

    #[test]
    fn offsets_come_from_the_item_never_from_the_date() {
        let it = item("a", "2018-01-01T00:00:00Z", json!({}));
        let (s, o, why) = reflectance_scaling(&it, &["B04".into()], (1e-4, 0.0)).unwrap();
        assert_eq!((s, o, why.as_str()), (0.0001, -0.1, "raster:bands"));
        let e = reflectance_scaling(&it, &["B04".into(), "B03".into()], (1e-4, 0.0)).unwrap_err();
        assert!(e.contains("`B03`") && e.contains("`B04`"), "{e}");
        let it = item(
            "b",
            "2023-01-01T00:00:00Z",
            json!({"s2:processing_baseline": "05.09"}),
        );
        let (_, o, why) = reflectance_scaling(&it, &["B03".into()], (1e-4, 0.0)).unwrap();
        assert_eq!((o, why.as_str()), (-0.1, "s2:processing_baseline 05.09"));
        let it = item(
            "c",
            "2023-01-01T00:00:00Z",
            json!({"s2:processing_baseline": "03.01"}),
        );
        assert_eq!(
            reflectance_scaling(&it, &["B03".into()], (1e-4, 0.0))
                .unwrap()
                .1,
            0.0
        );
        let it = item("d", "2023-01-01T00:00:00Z", json!({}));
        let (s, o, _) = reflectance_scaling(&it, &["B03".into()], (2e-4, 0.5)).unwrap();
        assert_eq!((s, o), (2e-4, 0.5));
    }
}
