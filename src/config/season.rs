//! `[time]` and season scenes: the season window and temporal grid, and each scene's dated
//! optical, mask and SAR rasters found, paired by date and checked when the pipeline is read.
//!
//! With `[time]`, every scene is a season: `optical.path`, `sar.path` and `mask.path` are
//! globs (or `files` lists) of dated rasters, each dated by the first `YYYY-MM-DD` or
//! `YYYYMMDD` in its file name. A glob keeps the dates inside the season and leaves the rest
//! out (counted); a `files` list must be sorted by date, without duplicates, inside the season.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalogue::CatalogueScene;
use super::scene_set::{day_number, find_date};
use super::SceneDef;

/// `[time]`: the season window and the temporal grid every scene is resampled onto.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// First day of the season: `YYYY-MM-DD`, or `MM-DD` with each scene's `year`.
    pub start: String,
    /// Last day of the season (inclusive), in the same form; an `MM-DD` before `start` ends
    /// in the following year.
    pub end: String,
    /// Length of each step of the temporal grid in days.
    #[serde(default = "default_step_days")]
    pub step_days: u32,
}

fn default_step_days() -> u32 {
    30
}

/// Most steps a season may have (a daily grid over a year).
pub const MAX_STEPS: usize = 366;

/// A scene's season: its first and last day and the step length.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Season {
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day (inclusive), `YYYY-MM-DD`.
    pub end: String,
    /// Step length in days.
    pub step_days: u32,
}

/// One dated raster.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DatedFile {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The raster.
    pub path: PathBuf,
}

/// The dated rasters of a season scene, in date order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeasonScene {
    /// The season.
    pub season: Season,
    /// Optical rasters.
    pub optical: Vec<DatedFile>,
    /// The mask of each optical date (same order), when the scene has a mask.
    pub masks: Vec<PathBuf>,
    /// SAR rasters.
    pub sar: Vec<DatedFile>,
    /// Files a glob matched whose date lies outside the season (left out).
    pub outside: usize,
    /// The STAC Items behind each date of a season from a `[[catalogue]]` table (their
    /// assets are stacked when the scene runs); `None` for dated rasters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<SeasonItems>,
}

/// The Items of a catalogue season, one [`CatalogueScene`] per date: an optical date's
/// bands and mask (its SAR lists empty), a SAR date's polarisations (its optical lists empty).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeasonItems {
    /// Per optical date, in the order of [`SeasonScene::optical`].
    pub optical: Vec<CatalogueScene>,
    /// Per SAR date, in the order of [`SeasonScene::sar`].
    pub sar: Vec<CatalogueScene>,
    /// The unit of each SAR date's assets (`catalogue.sar.unit`, else what its Items declare).
    pub sar_units: Vec<super::scene::SarUnit>,
}

fn month_day(s: &str) -> Option<(u32, u32)> {
    let (m, d) = s.split_once('-')?;
    if m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (m, d): (u32, u32) = (m.parse().ok()?, d.parse().ok()?);
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((m, d))
}

fn full_date(s: &str) -> Option<i64> {
    (s.len() == 10).then(|| day_number(s)).flatten()
}

impl TimeConfig {
    /// Checks the form of `start`, `end` and `step_days`; `Err` is the message.
    pub fn validate(&self) -> Result<(), String> {
        let full = full_date(&self.start).is_some() && full_date(&self.end).is_some();
        let md = month_day(&self.start).is_some() && month_day(&self.end).is_some();
        if !full && !md {
            return Err(format!(
                "`time.start` ({}) and `time.end` ({}) must both be dates (\"2018-03-01\") or both month-days (\"03-01\", with `year` in each scene)",
                self.start, self.end
            ));
        }
        if full && full_date(&self.end) < full_date(&self.start) {
            return Err(format!(
                "`time.end` ({}) is before `time.start` ({}); give the season's last day",
                self.end, self.start
            ));
        }
        if self.step_days == 0 {
            return Err("`time.step_days` must be at least 1 (30 gives monthly steps)".into());
        }
        Ok(())
    }

    /// Whether `start` and `end` are month-days (each scene gives its `year`).
    pub fn is_month_day(&self) -> bool {
        month_day(&self.start).is_some() && month_day(&self.end).is_some()
    }

    /// The season of a scene whose `year` is given (needed with month-days).
    pub fn season(&self, scene: &str, year: Option<i32>) -> Result<Season, String> {
        let (start, end) = match (month_day(&self.start), month_day(&self.end), year) {
            (Some(a), Some(b), Some(y)) => {
                let y_end = if b < a { y + 1 } else { y };
                (
                    format!("{y:04}-{:02}-{:02}", a.0, a.1),
                    format!("{y_end:04}-{:02}-{:02}", b.0, b.1),
                )
            }
            (Some(_), Some(_), None) => {
                return Err(format!(
                    "scene `{scene}`: `[time]` gives month-days ({} to {}); set `year` (e.g. year = 2018) in the scene",
                    self.start, self.end
                ))
            }
            _ => (self.start.clone(), self.end.clone()),
        };
        for d in [&start, &end] {
            if full_date(d).is_none() {
                return Err(format!(
                    "scene `{scene}`: {d} is not a calendar date; fix `time.start` / `time.end`"
                ));
            }
        }
        let s = Season {
            start,
            end,
            step_days: self.step_days,
        };
        if s.steps().len() > MAX_STEPS {
            return Err(format!(
                "`[time]` makes {} steps; at most {MAX_STEPS}: raise `step_days`",
                s.steps().len()
            ));
        }
        Ok(s)
    }
}

impl Season {
    /// Day number of the first day.
    pub fn start_day(&self) -> i64 {
        full_date(&self.start).unwrap_or(0)
    }

    /// Day number of the last day.
    pub fn end_day(&self) -> i64 {
        full_date(&self.end).unwrap_or(0)
    }

    /// Whether day `d` lies in the season.
    pub fn contains(&self, d: i64) -> bool {
        (self.start_day()..=self.end_day()).contains(&d)
    }

    /// The steps of the temporal grid: first and last day (inclusive) of each, the last one
    /// cut at the season's end.
    pub fn steps(&self) -> Vec<(i64, i64)> {
        let (a, b, n) = (self.start_day(), self.end_day(), i64::from(self.step_days));
        (0..)
            .map(|k| a + k * n)
            .take_while(|s| *s <= b)
            .map(|s| (s, (s + n - 1).min(b)))
            .collect()
    }
}

/// The files of one modality: a `files` list or a glob, with their dates.
fn dated_files(
    scene: &str,
    key: &str,
    pattern: &Path,
    files: &[PathBuf],
    season: &Season,
    exclude: Option<&glob::Pattern>,
) -> Result<(Vec<DatedFile>, usize), String> {
    let listed = !files.is_empty();
    let paths: Vec<PathBuf> = if listed {
        files.to_vec()
    } else {
        let pat = pattern.to_string_lossy();
        let mut v: Vec<PathBuf> = glob::glob(&pat)
            .map_err(|e| format!("scene `{scene}`: `{key}.path` {pat} is not a valid glob ({e})"))?
            .filter_map(|p| p.ok())
            .filter(|p| !exclude.is_some_and(|x| x.matches_path(p)))
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    let mut outside = 0;
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().to_string());
        let date = name.as_deref().and_then(find_date).ok_or_else(|| {
            format!(
                "scene `{scene}`: {} has no date (YYYY-MM-DD or YYYYMMDD) in its file name; name each dated raster by its date",
                p.display()
            )
        })?;
        let day = day_number(&date).unwrap_or(0);
        if !season.contains(day) {
            if listed {
                return Err(format!(
                    "scene `{scene}`: {} is dated {date}, outside the season {} to {}; remove it from `{key}.files` or widen `[time]`",
                    p.display(), season.start, season.end
                ));
            }
            outside += 1;
            continue;
        }
        out.push(DatedFile { date, path: p });
    }
    if !listed {
        out.sort_by(|a, b| a.date.cmp(&b.date).then(a.path.cmp(&b.path)));
    }
    check_order(scene, key, &out)?;
    Ok((out, outside))
}

/// Dates must increase strictly: a repeated date (two orbits, two tiles) or a list out of
/// date order is refused, naming both files.
pub(crate) fn check_order(scene: &str, key: &str, v: &[DatedFile]) -> Result<(), String> {
    for w in v.windows(2) {
        if w[1].date == w[0].date {
            return Err(format!(
                "scene `{scene}`: {} and {} are both dated {}; keep one raster per date in `{key}` (mosaic them first, e.g. gdalbuildvrt)",
                w[0].path.display(), w[1].path.display(), w[0].date
            ));
        }
        if w[1].date < w[0].date {
            return Err(format!(
                "scene `{scene}`: `{key}.files` is not in date order ({} {} comes after {} {}); sort the list by date",
                w[1].path.display(), w[1].date, w[0].path.display(), w[0].date
            ));
        }
    }
    Ok(())
}

/// The mask of each optical date: `mask.path` with `{date}` filled in, else the mask files
/// (glob or list) paired by date.
fn masks_for(s: &SceneDef, optical: &[DatedFile], season: &Season) -> Result<Vec<PathBuf>, String> {
    let Some(m) = &s.mask else {
        return Ok(Vec::new());
    };
    let template = m.path.to_string_lossy().to_string();
    if m.files.is_empty() && template.contains("{date}") {
        return Ok(optical
            .iter()
            .map(|o| PathBuf::from(template.replace("{date}", &o.date)))
            .collect());
    }
    let (masks, _) = dated_files(&s.name, "mask", &m.path, &m.files, season, None)?;
    optical
        .iter()
        .map(|o| {
            masks
                .iter()
                .find(|k| k.date == o.date)
                .map(|k| k.path.clone())
                .ok_or_else(|| {
                    format!(
                        "scene `{}`: no mask dated {} for {}; give one mask per optical date (`mask.path` may use {{date}})",
                        s.name, o.date, o.path.display()
                    )
                })
        })
        .collect()
}

/// Finds and checks the dated rasters of a season scene.
pub fn resolve(s: &SceneDef, time: &TimeConfig) -> Result<SeasonScene, String> {
    let season = time.season(&s.name, s.year)?;
    // An optical glob such as `S2_*.tif` also matches masks named `S2_SCL_<date>.tif`.
    let masks_glob = s
        .mask
        .as_ref()
        .filter(|m| m.files.is_empty())
        .and_then(|m| glob::Pattern::new(&m.path.to_string_lossy().replace("{date}", "*")).ok());
    let (optical, out_o) = dated_files(
        &s.name,
        "optical",
        &s.optical.path,
        &s.optical.files,
        &season,
        masks_glob.as_ref(),
    )?;
    let (sar, out_s) = dated_files(&s.name, "sar", &s.sar.path, &s.sar.files, &season, None)?;
    let what = |key: &str, p: &Path, f: &[PathBuf]| {
        if f.is_empty() {
            format!("`{key}.path` {}", p.display())
        } else {
            format!("`{key}.files`")
        }
    };
    if optical.is_empty() {
        return Err(format!(
            "scene `{}`: no optical raster dated inside the season {} to {} ({}); check the glob and `[time]`",
            s.name, season.start, season.end, what("optical", &s.optical.path, &s.optical.files)
        ));
    }
    if sar.is_empty() {
        return Err(format!(
            "scene `{}`: no SAR raster dated inside the season {} to {} ({}); check the glob and `[time]`",
            s.name, season.start, season.end, what("sar", &s.sar.path, &s.sar.files)
        ));
    }
    let masks = masks_for(s, &optical, &season)?;
    Ok(SeasonScene {
        season,
        optical,
        masks,
        sar,
        outside: out_o + out_s,
        catalogue: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(start: &str, end: &str, step: u32) -> TimeConfig {
        TimeConfig {
            start: start.into(),
            end: end.into(),
            step_days: step,
        }
    }

    #[test]
    fn steps_cover_the_season_the_last_one_cut() {
        let s = time("2018-03-01", "2018-03-31", 10)
            .season("a", None)
            .unwrap();
        let d = s.start_day();
        assert_eq!(
            s.steps(),
            vec![
                (d, d + 9),
                (d + 10, d + 19),
                (d + 20, d + 29),
                (d + 30, d + 30)
            ]
        );
    }

    #[test]
    fn month_days_take_the_scene_year_and_may_cross_new_year() {
        let t = time("10-01", "07-31", 30);
        let s = t.season("a", Some(2018)).unwrap();
        assert_eq!(
            (s.start.as_str(), s.end.as_str()),
            ("2018-10-01", "2019-07-31")
        );
        assert!(t.season("a", None).unwrap_err().contains("set `year`"));
        assert!(time("2018-05-01", "2018-04-01", 30).validate().is_err());
        assert!(time("03-01", "2018-10-31", 30).validate().is_err());
        assert!(time("03-01", "10-31", 0).validate().is_err());
    }

    #[test]
    fn duplicated_and_unsorted_dates_are_refused() {
        let f = |d: &str, p: &str| DatedFile {
            date: d.into(),
            path: p.into(),
        };
        let dup = [f("2018-04-01", "a.tif"), f("2018-04-01", "b.tif")];
        assert!(check_order("s", "optical", &dup)
            .unwrap_err()
            .contains("both dated 2018-04-01"));
        let uns = [f("2018-05-01", "a.tif"), f("2018-04-01", "b.tif")];
        assert!(check_order("s", "optical", &uns)
            .unwrap_err()
            .contains("not in date order"));
    }
}
