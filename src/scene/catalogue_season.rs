//! A `[[catalogue]]` table under `[time]`: its Items become season scenes. The optical Items
//! inside the season are grouped by MGRS tile (one season scene per tile; per tile and year
//! when `[time]` gives month-days), each day of a tile is one optical date (adjacent Items
//! of a day mosaicked) with its own mask asset and reflectance offset, and every SAR day
//! inside the season is one SAR date, stacked on its own grid and warped onto the scene grid
//! when the scene runs. When the scene runs, each date's assets become VRTs in the work
//! folder ([`stack_season`]) and the season proceeds as one of dated rasters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::catalogue_scenes::{fields, sar_unit, source_item};
use crate::catalogue::{select, Item};
use crate::config::catalogue::{CatalogueScene, CatalogueSetDef};
use crate::config::season::{check_order, DatedFile, SeasonItems};
use crate::config::{SceneDef, Season, SeasonScene, TimeConfig};
use crate::error::{Error, Result};
use crate::time::day_number;

/// The optical day groups of one season scene.
struct SeasonGroup {
    tile: String,
    season: Season,
    days: Vec<Vec<Item>>,
}

impl CatalogueSetDef {
    /// The season scenes of this table's Items. `Err` is the message.
    pub(super) fn seasons(
        &self,
        optical: &[Item],
        sar: &[Item],
        t: &TimeConfig,
        base: &Path,
    ) -> std::result::Result<Vec<SceneDef>, String> {
        t.validate()?;
        let mut groups: Vec<SeasonGroup> = Vec::new();
        let mut outside: BTreeMap<String, usize> = BTreeMap::new();
        for (tile, day) in tile_days(optical) {
            let Some(season) = season_of(t, &day[0].day())? else {
                *outside.entry(tile).or_default() += 1;
                continue;
            };
            match groups
                .iter_mut()
                .find(|g| g.tile == tile && g.season == season)
            {
                Some(g) => g.days.push(day),
                None => groups.push(SeasonGroup {
                    tile,
                    season,
                    days: vec![day],
                }),
            }
        }
        if groups.is_empty() {
            return Err(format!(
                "no optical Item of the [[catalogue]] table is dated inside the season `[time]` {} to {} ({} Items, all outside); widen `[time]` or check the Items' datetimes",
                t.start, t.end, optical.len()
            ));
        }
        let orbit = self.sar.orbit.as_deref();
        let sar: Vec<&Item> = sar
            .iter()
            .filter(|i| select::orbit_fits(i, orbit))
            .collect();
        groups
            .iter_mut()
            .map(|g| {
                g.days.sort_by_key(|d| d[0].day());
                let out = outside.get(&g.tile).copied().unwrap_or(0);
                self.season_scene(g, &sar, out, base)
            })
            .collect()
    }

    /// One season scene: an optical date per day of the group, a SAR date per SAR day
    /// inside the season.
    fn season_scene(
        &self,
        g: &SeasonGroup,
        sar: &[&Item],
        outside: usize,
        base: &Path,
    ) -> std::result::Result<SceneDef, String> {
        let mut f = fields(&g.days[0]);
        f.insert("year".into(), g.season.start[..4].to_string());
        f.insert("start".into(), g.season.start.clone());
        f.insert("end".into(), g.season.end.clone());
        let default_name = if g.tile.is_empty() {
            "{collection}_{year}"
        } else {
            "{tile}_{year}"
        };
        let name = self.fill_name(default_name, &f)?;
        let dates: Vec<(CatalogueScene, (f64, f64))> =
            g.days.iter().map(|d| self.optical_date(d)).collect();
        let scaling = dates[0].1;
        let mut optical_items: Vec<CatalogueScene> = Vec::new();
        for (mut c, s) in dates {
            if s != scaling {
                let id = &c.optical_items[0].id;
                c.problem.get_or_insert(format!(
                    "Item `{id}` gives reflectance = DN x {} + {} after its whole-DN offset, unlike the season's first date (DN x {} + {}); geofuse applies one scale and offset per season: give `catalogue.scale` / `offset` or leave those Items out",
                    s.0, s.1, scaling.0, scaling.1
                ));
            }
            optical_items.push(c);
        }
        let sar_days = self.sar_dates(sar, &g.season);
        let sar_items: Vec<CatalogueScene> = sar_days.iter().map(|d| self.sar_date(d)).collect();
        let pols = &self.sar.polarisations;
        let sar_units: Vec<_> = sar_days
            .iter()
            .map(|d| self.sar.unit.unwrap_or_else(|| sar_unit(d, pols)))
            .collect();
        let mut def = self.scene_def(name.clone(), &f, base, &g.days[0][0].source, scaling)?;
        def.sar.unit = sar_units.first().copied().unwrap_or(def.sar.unit);
        let items = SeasonItems {
            optical: optical_items,
            sar: sar_items,
            sar_units,
        };
        def.season = Some(self.season_files(&name, g, items, outside)?);
        Ok(def)
    }

    /// The SAR Items inside the season, a group per day (Items of one day mosaicked), in
    /// date order.
    fn sar_dates(&self, sar: &[&Item], season: &Season) -> Vec<Vec<Item>> {
        let inside: Vec<Item> = sar
            .iter()
            .filter(|i| day_number(&i.day()).is_some_and(|d| season.contains(d)))
            .map(|i| (*i).clone())
            .collect();
        let mut days: Vec<Vec<Item>> = Vec::new();
        for it in inside {
            match days.iter_mut().find(|d| d[0].day() == it.day()) {
                Some(d) => d.push(it),
                None => days.push(vec![it]),
            }
        }
        days.sort_by_key(|d| d[0].day());
        days
    }

    /// The catalogue side of one SAR day: its polarisation assets.
    fn sar_date(&self, day: &[Item]) -> CatalogueScene {
        let sar = self.sar_assets(day, &day[0].day());
        CatalogueScene {
            optical_items: Vec::new(),
            sar_items: day.iter().map(source_item).collect(),
            bands: Vec::new(),
            mask: Vec::new(),
            sar: sar.as_ref().cloned().unwrap_or_default(),
            offset_source: String::new(),
            dn_shift: 0.0,
            item_offset: 0.0,
            grid: None,
            problem: sar.err(),
        }
    }

    /// The dated list of a catalogue season: each date named by its first asset (for
    /// messages and `geofuse inspect`), the Items kept to be stacked when the scene runs.
    fn season_files(
        &self,
        name: &str,
        g: &SeasonGroup,
        items: SeasonItems,
        outside: usize,
    ) -> std::result::Result<SeasonScene, String> {
        let (optical, sar) = (&items.optical, &items.sar);
        if sar.is_empty() {
            return Err(format!(
                "scene `{name}`: no Sentinel-1 Item with {} dated inside the season {} to {}{}; add SAR Items (`catalogue.sar.items` or `sar.search`) or widen `[time]`",
                self.sar.polarisations.join("/"),
                g.season.start,
                g.season.end,
                self.sar.orbit.as_ref().map(|o| format!(" on a {o} orbit")).unwrap_or_default()
            ));
        }
        let dated = |c: &CatalogueScene, first: Option<&String>| DatedFile {
            date: c
                .optical_items
                .first()
                .or(c.sar_items.first())
                .map_or(String::new(), |i| i.datetime.chars().take(10).collect()),
            path: PathBuf::from(first.cloned().unwrap_or_default()),
        };
        let first_href = |c: &CatalogueScene| {
            let b = c
                .bands
                .first()
                .map(|b| &b.2)
                .or(c.sar.first().map(|s| &s.1));
            b.and_then(|refs| refs.first())
                .map(|r| crate::io::stack::gdal_path(&r.href))
        };
        let optical_files: Vec<DatedFile> = optical
            .iter()
            .map(|c| dated(c, first_href(c).as_ref()))
            .collect();
        let sar_files: Vec<DatedFile> = sar
            .iter()
            .map(|c| dated(c, first_href(c).as_ref()))
            .collect();
        let masks = match &self.mask {
            Some(_) => optical
                .iter()
                .map(|c| {
                    PathBuf::from(
                        c.mask
                            .first()
                            .map(|m| crate::io::stack::gdal_path(&m.href))
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        check_order(name, "catalogue Items of", &optical_files).map_err(|m| {
            format!(
                "{m}; two collections give Items of one day: keep one with `catalogue.collections`"
            )
        })?;
        Ok(SeasonScene {
            season: g.season.clone(),
            optical: optical_files,
            masks,
            sar: sar_files,
            outside,
            catalogue: Some(items),
        })
    }
}

/// The optical Items as `(tile, one day's Items)`: grouped by tile first (each tile is a
/// season of its own), then by day within the tile.
fn tile_days(optical: &[Item]) -> Vec<(String, Vec<Item>)> {
    let mut tiles: Vec<(String, Vec<Item>)> = Vec::new();
    for it in optical {
        let tile = fields(std::slice::from_ref(it))["tile"].clone();
        match tiles.iter_mut().find(|t| t.0 == tile) {
            Some(t) => t.1.push(it.clone()),
            None => tiles.push((tile, vec![it.clone()])),
        }
    }
    tiles
        .into_iter()
        .flat_map(|(tile, items)| {
            select::day_groups(&items)
                .into_iter()
                .map(move |d| (tile.clone(), d))
        })
        .collect()
}

/// The season of `[time]` that contains `day`: the season itself for full dates; with
/// month-days, the one starting in the day's year or the year before (a season across New
/// Year).
fn season_of(t: &TimeConfig, day: &str) -> std::result::Result<Option<Season>, String> {
    let Some(d) = day_number(day) else {
        return Ok(None);
    };
    let years: Vec<Option<i32>> = if t.is_month_day() {
        let y: i32 = day[..4].parse().unwrap_or(0);
        vec![Some(y - 1), Some(y)]
    } else {
        vec![None]
    };
    for y in years {
        let s = t.season("catalogue", y)?;
        if s.contains(d) {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// A catalogue season made a season of rasters: every date's assets stacked into VRTs under
/// `work_dir` (`optical_<date>/`, `sar_<date>/`). A date whose Items had a problem when the
/// pipeline was read fails the scene here, naming the Item.
pub(crate) fn stack_season(
    s: &SceneDef,
    ss: &SeasonScene,
    items: &SeasonItems,
    work_dir: &Path,
) -> Result<SeasonScene> {
    for (c, d) in items
        .optical
        .iter()
        .zip(&ss.optical)
        .chain(items.sar.iter().zip(&ss.sar))
    {
        if let Some(why) = &c.problem {
            let path = if d.path.as_os_str().is_empty() {
                &s.optical.path
            } else {
                &d.path
            };
            return Err(Error::input(
                path,
                format!("{} ({}): {why}", s.name, d.date),
            ));
        }
    }
    let mut out = ss.clone();
    for (i, c) in items.optical.iter().enumerate() {
        let dir = work_dir.join(format!("optical_{}", ss.optical[i].date));
        let (optical, mask) = crate::io::stack::build_optical(c, &dir)?;
        out.optical[i].path = optical;
        if let (Some(m), Some(slot)) = (mask, out.masks.get_mut(i)) {
            *slot = m;
        }
    }
    for (i, c) in items.sar.iter().enumerate() {
        let dir = work_dir.join(format!("sar_{}", ss.sar[i].date));
        out.sar[i].path = crate::io::stack::stack_sar(c, &dir)?;
    }
    Ok(out)
}

/// The Items of a catalogue season as one catalogue scene, for the product's provenance:
/// every optical and SAR Item; the first date's reflectance scaling, with each date's DN
/// shift named when they differ (a season across a processing-baseline change).
pub(crate) fn provenance(items: &SeasonItems) -> Option<CatalogueScene> {
    let first = items.optical.first()?;
    let shifts: Vec<String> = items
        .optical
        .iter()
        .map(|c| {
            let day: String = c.optical_items[0].datetime.chars().take(10).collect();
            format!("{day}: {}", c.dn_shift)
        })
        .collect();
    let differ = items.optical.iter().any(|c| c.dn_shift != first.dn_shift);
    let offset_source = if differ {
        format!(
            "{}; DN shift per date: {}",
            first.offset_source,
            shifts.join(", ")
        )
    } else {
        first.offset_source.clone()
    };
    Some(CatalogueScene {
        optical_items: items
            .optical
            .iter()
            .flat_map(|c| c.optical_items.clone())
            .collect(),
        sar_items: items.sar.iter().flat_map(|c| c.sar_items.clone()).collect(),
        bands: Vec::new(),
        mask: Vec::new(),
        sar: Vec::new(),
        offset_source,
        dn_shift: first.dn_shift,
        item_offset: first.item_offset,
        grid: first.grid.clone(),
        problem: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(start: &str, end: &str) -> TimeConfig {
        TimeConfig {
            start: start.into(),
            end: end.into(),
            step_days: 30,
        }
    }

    #[test]
    fn a_day_falls_in_its_season_or_none() {
        let t = time("2022-03-01", "2022-10-31");
        assert_eq!(
            season_of(&t, "2022-05-04").unwrap().unwrap().start,
            "2022-03-01"
        );
        assert!(season_of(&t, "2022-11-01").unwrap().is_none());
        assert!(season_of(&t, "2021-05-04").unwrap().is_none());
        // Month-days: the season of the day's year, or of the year before across New Year.
        let md = time("10-01", "07-31");
        assert_eq!(
            season_of(&md, "2022-11-15").unwrap().unwrap().start,
            "2022-10-01"
        );
        assert_eq!(
            season_of(&md, "2023-02-15").unwrap().unwrap().start,
            "2022-10-01"
        );
        assert!(season_of(&md, "2023-08-15").unwrap().is_none());
        let summer = time("03-01", "10-31");
        assert_eq!(
            season_of(&summer, "2019-06-01").unwrap().unwrap().end,
            "2019-10-31"
        );
    }
}
