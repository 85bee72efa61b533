//! A `[[catalogue]]` table resolved into scenes: Items read (or searched), grouped by day,
//! SAR matched, assets picked, names and labels filled in. Problems of one Item (a missing
//! band, an asset that is not a raster, mask classes the asset does not have, no SAR in
//! reach) do not stop the pipeline: they are kept with the scene, which fails alone when it
//! runs. Problems of the table itself (an unreadable ItemCollection, a scene name that cannot
//! be a folder) stop the pipeline when it is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::catalogue::{select, Item};
use crate::config::catalogue::{AssetRef, CatalogueScene, CatalogueSetDef, SourceItem};
use crate::config::scene::{MaskDef, OpticalDef, ReferenceDef, SarDef, SarUnit, SceneDef};

impl CatalogueSetDef {
    /// The scenes of this table (with `[time]`, its seasons); `base` is the pipeline's
    /// folder. `Err` is the message.
    pub fn expand(
        &self,
        base: &Path,
        time: Option<&crate::config::TimeConfig>,
    ) -> Result<Vec<SceneDef>, String> {
        let (optical, sar) = self.items(base)?;
        if let Some(t) = time {
            return self.seasons(&optical, &sar, t, base);
        }
        let mut scenes = Vec::new();
        for group in select::day_groups(&optical) {
            scenes.push(self.scene(&group, &sar, base)?);
        }
        Ok(scenes)
    }

    /// The table's optical and SAR Items.
    fn items(&self, base: &Path) -> Result<(Vec<Item>, Vec<Item>), String> {
        self.check()?;
        let all = read_source(self.items.as_deref(), self.search.as_ref(), base, "items")?;
        let sar_all = match (&self.sar.items, &self.sar.search) {
            (None, None) => all.clone(),
            (i, s) => read_source(i.as_deref(), s.as_ref(), base, "sar.items")?,
        };
        let pols = &self.sar.polarisations;
        let sar: Vec<Item> = sar_all
            .into_iter()
            .filter(|i| select::is_sar(i, pols))
            .collect();
        let optical: Vec<Item> = all
            .into_iter()
            .filter(|i| !select::is_sar(i, pols))
            .filter(|i| {
                self.collections.is_empty()
                    || i.collection
                        .as_ref()
                        .is_some_and(|c| self.collections.contains(c))
            })
            .collect();
        Ok((optical, sar))
    }

    fn check(&self) -> Result<(), String> {
        if self.items.is_some() == self.search.is_some() {
            return Err("a [[catalogue]] table needs exactly one of `items` (a saved search, an Item or a catalog) and `search`".into());
        }
        if self.bands.is_empty() {
            return Err("`catalogue.bands` is empty; name the optical bands (asset keys, eo:bands names or common names)".into());
        }
        if let Some(g) = &self.grid {
            let [x0, y0, x1, y1] = g.bounds;
            if !(g.resolution > 0.0 && x1 > x0 && y1 > y0) {
                return Err("`catalogue.grid` needs bounds [xmin, ymin, xmax, ymax] with xmax > xmin, ymax > ymin and a positive resolution".into());
            }
        }
        Ok(())
    }

    /// The scene of one day's optical Items.
    fn scene(&self, group: &[Item], sar: &[Item], base: &Path) -> Result<SceneDef, String> {
        let first = &group[0];
        let fields = fields(group);
        let default_name = if group.len() == 1 {
            "{id}"
        } else {
            "{collection}_{date}"
        };
        let name = self.fill_name(default_name, &fields)?;
        let sar_items = select::nearest_sar(
            sar,
            &first.day(),
            self.sar.max_days,
            self.sar.orbit.as_deref(),
        );
        let (mut c, (scale, offset)) = self.optical_date(group);
        let sar_assets = self.sar_assets(&sar_items, &first.day());
        if let Err(m) = &sar_assets {
            c.problem.get_or_insert(m.clone());
        }
        c.sar_items = sar_items.iter().map(source_item).collect();
        c.sar = sar_assets.unwrap_or_default();
        let sar_source = sar_items.first().unwrap_or(first).source.clone();
        let mut def = self.scene_def(name, &fields, base, &first.source, (scale, offset))?;
        def.sar.path = PathBuf::from(sar_source);
        def.sar.unit = self
            .sar
            .unit
            .unwrap_or_else(|| sar_unit(&sar_items, &self.sar.polarisations));
        def.datetime = Some(first.datetime.clone());
        def.catalogue = Some(c);
        Ok(def)
    }

    /// The scene name from `catalogue.name` (or `default`) and a scene's template fields.
    pub(super) fn fill_name(
        &self,
        default: &str,
        fields: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let t = self.name.as_deref().unwrap_or(default);
        crate::config::scene_set::fill(t, fields).map_err(|f| {
            format!(
                "`catalogue.name` uses `{{{f}}}`; use {}",
                field_list(fields)
            )
        })
    }

    /// A scene of this table with its name, labels, reference and reflectance scaling; its
    /// rasters are the first optical Item's (the SAR's and the dates' are set by the caller).
    pub(super) fn scene_def(
        &self,
        name: String,
        fields: &BTreeMap<String, String>,
        base: &Path,
        source: &str,
        (scale, offset): (f64, f64),
    ) -> Result<SceneDef, String> {
        let file = |t: &String| -> Result<Option<PathBuf>, String> {
            let f = crate::config::scene_set::fill(t, fields).map_err(|f| {
                format!(
                    "`catalogue.labels` uses `{{{f}}}`; use {}",
                    field_list(fields)
                )
            })?;
            let p = crate::config::normalize(&base.join(f));
            Ok(p.exists().then_some(p))
        };
        let labels = self.labels.as_ref().map(file).transpose()?.flatten();
        let reference = self.reference.as_ref().map(|r| ReferenceDef {
            path: crate::config::normalize(&base.join(&r.path)),
            ..r.clone()
        });
        let source = PathBuf::from(source);
        Ok(SceneDef {
            name,
            optical: OpticalDef {
                path: source.clone(),
                files: Vec::new(),
                bands: self.bands.clone(),
                scale,
                offset,
            },
            sar: SarDef {
                path: source.clone(),
                files: Vec::new(),
                polarisations: self.sar.polarisations.clone(),
                unit: self.sar.unit.unwrap_or(SarUnit::Linear),
            },
            labels,
            reference,
            mask: self.mask.as_ref().map(|m| MaskDef {
                path: source.clone(),
                files: Vec::new(),
                invalid: m.invalid.clone(),
            }),
            datetime: None,
            year: None,
            season: None,
            catalogue: None,
        })
    }

    /// The catalogue side of one day's optical Items (bands, mask, reflectance scaling; no
    /// SAR) and the `(scale, offset)` the scene applies after the DN shift. A problem of an
    /// Item is kept in the scene, which fails alone when it runs.
    pub(super) fn optical_date(&self, group: &[Item]) -> (CatalogueScene, (f64, f64)) {
        let mut problem = None;
        let mut note = |r: Result<(), String>| {
            if let Err(m) = r {
                problem.get_or_insert(m);
            }
        };
        let bands = self.band_assets(group);
        note(bands.as_ref().map(|_| ()).map_err(Clone::clone));
        let mask = self.mask_assets(group);
        note(mask.as_ref().map(|_| ()).map_err(Clone::clone));
        let scaling =
            select::reflectance_scaling(&group[0], &self.bands, (self.scale, self.offset));
        note(scaling.as_ref().map(|_| ()).map_err(Clone::clone));
        let (scale, item_offset, offset_source) =
            scaling.unwrap_or((self.scale, self.offset, String::new()));
        let (dn_shift, offset) = dn_shift(scale, item_offset);
        let c = CatalogueScene {
            optical_items: group.iter().map(source_item).collect(),
            sar_items: Vec::new(),
            bands: bands.unwrap_or_default(),
            mask: mask.unwrap_or_default(),
            sar: Vec::new(),
            offset_source,
            dn_shift,
            item_offset,
            grid: self.grid.clone(),
            problem,
        };
        (c, (scale, offset))
    }

    /// Per band: its resampling and its asset in each Item of the day.
    pub(super) fn band_assets(
        &self,
        group: &[Item],
    ) -> Result<
        Vec<(
            String,
            crate::config::catalogue::BandResampling,
            Vec<AssetRef>,
        )>,
        String,
    > {
        let mut out = Vec::new();
        for b in &self.bands {
            let mut refs = Vec::new();
            for it in group {
                let a = it.band_asset(b).ok_or_else(|| {
                    format!(
                        "Item `{}` has no asset for band `{b}` (its assets: {}); remove `{b}` from `catalogue.bands` or use another Item",
                        it.id,
                        it.asset_keys()
                    )
                })?;
                refs.push(asset_ref(it, a)?);
            }
            let r = self
                .band_resampling
                .iter()
                .find(|(k, _)| crate::features::indices::same_band_name(k, b))
                .map_or(self.resampling, |(_, r)| *r);
            out.push((b.clone(), r, refs));
        }
        Ok(out)
    }

    /// The mask asset of each Item of the day, checked against its declared classes.
    pub(super) fn mask_assets(&self, group: &[Item]) -> Result<Vec<AssetRef>, String> {
        let Some(m) = &self.mask else {
            return Ok(Vec::new());
        };
        let mut refs = Vec::new();
        for it in group {
            let a = it.asset(&m.asset).ok_or_else(|| {
                format!("Item `{}` has no mask asset `{}`; set `catalogue.mask.asset` to one of its assets ({})", it.id, m.asset,
                    it.asset_keys())
            })?;
            let r = asset_ref(it, a)?;
            if let Some(classes) = &a.classes {
                if let Some(v) = m
                    .invalid
                    .iter()
                    .find(|v| !classes.contains(&i64::from(**v)))
                {
                    return Err(format!(
                        "Item `{}`, asset `{}`: `catalogue.mask.invalid` names class {v}, which the asset's classification:classes ({}) does not have; list only its classes",
                        it.id, a.key, classes.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            refs.push(r);
        }
        Ok(refs)
    }

    /// Per polarisation: its asset in each SAR Item of the matched day.
    pub(super) fn sar_assets(
        &self,
        items: &[Item],
        day: &str,
    ) -> Result<Vec<(String, Vec<AssetRef>)>, String> {
        if items.is_empty() {
            return Err(format!(
                "no Sentinel-1 Item with {} within {} days of {day}{}; raise `catalogue.sar.max_days` or add SAR Items",
                self.sar.polarisations.join("/"),
                self.sar.max_days,
                self.sar.orbit.as_ref().map(|o| format!(" on a {o} orbit")).unwrap_or_default()
            ));
        }
        let mut out = Vec::new();
        for p in &self.sar.polarisations {
            let mut refs = Vec::new();
            for it in items {
                let a = it.band_asset(p).ok_or_else(|| {
                    format!("SAR Item `{}` has no asset for polarisation `{p}`; set `catalogue.sar.polarisations` to what it has", it.id)
                })?;
                refs.push(asset_ref(it, a)?);
            }
            out.push((p.clone(), refs));
        }
        Ok(out)
    }
}

/// Reads the Items of `items` (a path relative to `base`, or an href) or of a search.
fn read_source(
    items: Option<&str>,
    search: Option<&crate::config::catalogue::SearchDef>,
    base: &Path,
    key: &str,
) -> Result<Vec<Item>, String> {
    match (items, search) {
        (Some(href), _) => {
            let h = if href.contains("://") {
                href.to_string()
            } else {
                crate::config::normalize(&base.join(href))
                    .to_string_lossy()
                    .to_string()
            };
            crate::catalogue::read_items(&h).map_err(|e| format!("`catalogue.{key}` = {h}: {e}"))
        }
        (None, Some(s)) => crate::catalogue::search::search(s).map(|(items, _)| items),
        (None, None) => Ok(Vec::new()),
    }
}

/// The reference to a raster asset of an Item.
fn asset_ref(it: &Item, a: &crate::catalogue::Asset) -> Result<AssetRef, String> {
    raster_asset(it, a)?;
    Ok(AssetRef {
        item: it.id.clone(),
        key: a.key.clone(),
        href: a.href.clone(),
    })
}

/// Refuses an asset whose media type or roles say it is not a raster.
fn raster_asset(it: &Item, a: &crate::catalogue::Asset) -> Result<(), String> {
    let t = a.media_type.as_deref().unwrap_or("").to_ascii_lowercase();
    let raster = t.is_empty()
        || t.starts_with("image/")
        || t.contains("tiff")
        || t.contains("jp2")
        || t.contains("vrt");
    let meta = a.roles.iter().any(|r| r == "metadata" || r == "thumbnail")
        && !a.roles.iter().any(|r| r == "data");
    if !raster || meta {
        return Err(format!(
            "Item `{}`, asset `{}` ({}) is not a raster ({}); name a band asset (a GeoTIFF or JPEG 2000)",
            it.id,
            a.key,
            a.href,
            if t.is_empty() { format!("roles {}", a.roles.join(", ")) } else { format!("type {t}") }
        ));
    }
    Ok(())
}

/// The unit the SAR Items declare (`raster:bands` unit), else linear power.
pub(super) fn sar_unit(items: &[Item], pols: &[String]) -> SarUnit {
    let declared = items
        .iter()
        .flat_map(|i| pols.iter().filter_map(|p| i.band_asset(p)))
        .find_map(|a| a.unit.clone());
    match declared {
        Some(u) if u.to_ascii_lowercase().contains("db") => SarUnit::Db,
        _ => SarUnit::Linear,
    }
}

/// `(shift, remaining offset)`: an offset that is a whole number of DN (`offset / scale`)
/// becomes a DN shift applied in the stack, so reflectance is `(DN + shift) * scale` exactly.
pub(super) fn dn_shift(scale: f64, offset: f64) -> (f64, f64) {
    let k = offset / scale;
    if offset != 0.0 && scale != 0.0 && (k - k.round()).abs() < 1e-6 && k.abs() < 1e6 {
        (k.round(), 0.0)
    } else {
        (0.0, offset)
    }
}

pub(super) fn source_item(it: &Item) -> SourceItem {
    SourceItem {
        id: it.id.clone(),
        collection: it.collection.clone(),
        href: it.self_href.clone(),
        datetime: it.datetime.clone(),
        processing_baseline: it.property("s2:processing_baseline"),
        updated: it.property("updated"),
    }
}

/// Template fields of a day's Items.
pub(super) fn fields(group: &[Item]) -> BTreeMap<String, String> {
    let first = &group[0];
    let tile = ["s2:mgrs_tile", "mgrs:tile", "grid:code", "s2:tile_id"]
        .iter()
        .find_map(|k| first.property(k))
        .unwrap_or_default();
    BTreeMap::from([
        ("id".to_string(), first.id.clone()),
        ("date".to_string(), first.day()),
        (
            "collection".to_string(),
            first.collection.clone().unwrap_or_else(|| "items".into()),
        ),
        ("tile".to_string(), tile),
    ])
}

/// The template fields a scene's names may use, for messages.
fn field_list(fields: &BTreeMap<String, String>) -> String {
    let names: Vec<String> = fields.keys().map(|k| format!("{{{k}}}")).collect();
    names.join(", ")
}
