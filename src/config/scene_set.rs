//! `[[scene_sets]]`: scenes found by a pattern, for scheduled runs over a growing folder. A
//! glob finds the optical files; a rule finds each one's SAR, labels (or vector reference)
//! and mask from fields of its file name:
//!
//! ```toml
//! [[scene_sets]]
//! optical = "incoming/*/*_S2L2A_*.tif"       # glob, relative to the pipeline's folder
//! match = "{chip}_S2L2A_{date}"              # fields from the optical file's stem
//! name = "{chip}_{date}"                     # scene name (default "{stem}")
//! bands = ["B02", "B03", "B04", "B08"]
//! sar = { path = "{dir}/{chip}_S1GRDasc_*.tif", max_days = 6 }   # `*`: nearest date
//! labels = "{dir}/{chip}_label_LC.tif"       # optional; a missing file = unlabelled scene
//! mask = { path = "{dir}/{chip}_S2SCL_{date}.tif", invalid = [3, 8, 9, 10] }
//! ```
//!
//! Fields: `{dir}` (the optical file's folder), `{stem}` (its name without extension),
//! `{date}` (the first date in the stem, `YYYY-MM-DD` or `YYYYMMDD`, unless `match` captures
//! it) and every `{field}` of `match`. A SAR path with `*` takes the candidate whose date is
//! nearest the optical date, within `max_days` (Sentinel-1 and -2 rarely pass on one day).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scene::{MaskDef, OpticalDef, ReferenceDef, SarDef, SarUnit, SceneDef};

/// A set of scenes found by a pattern.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneSetDef {
    /// Glob for the optical files.
    pub optical: String,
    /// Pattern of the optical file's stem with `{field}` placeholders.
    #[serde(default, rename = "match")]
    pub pattern: Option<String>,
    /// Scene name template (default `{stem}`).
    #[serde(default)]
    pub name: Option<String>,
    /// Optical band names in file order.
    pub bands: Vec<String>,
    /// Reflectance = DN * scale + offset.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Reflectance offset.
    #[serde(default)]
    pub offset: f64,
    /// How each scene's SAR file is found.
    pub sar: SarRule,
    /// Label raster template (a missing file leaves the scene unlabelled).
    #[serde(default)]
    pub labels: Option<String>,
    /// Vector reference template (its `path` is a template; a missing file: unlabelled).
    #[serde(default)]
    pub reference: Option<ReferenceDef>,
    /// Mask template.
    #[serde(default)]
    pub mask: Option<MaskRule>,
}

fn default_scale() -> f64 {
    1e-4
}

fn default_max_days() -> u32 {
    12
}

/// The SAR file of a scene.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SarRule {
    /// Path template; `*` matches any text, and of several files the nearest date wins.
    pub path: String,
    /// Polarisations in file order.
    #[serde(default = "super::scene::default_pols")]
    pub polarisations: Vec<String>,
    /// Unit of the stored backscatter.
    #[serde(default)]
    pub unit: SarUnit,
    /// Largest gap in days between the optical and the SAR acquisition.
    #[serde(default = "default_max_days")]
    pub max_days: u32,
}

/// The mask of a scene.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    /// Path template.
    pub path: String,
    /// Invalid mask values.
    pub invalid: Vec<u16>,
}

impl SceneSetDef {
    /// The scenes of this set, sorted by optical file; `base` is the pipeline's folder.
    /// `Err` is the message.
    pub fn expand(&self, base: &Path) -> Result<Vec<SceneDef>, String> {
        let pattern = base.join(&self.optical);
        let pattern = pattern.to_string_lossy();
        let paths = glob::glob(&pattern).map_err(|e| {
            format!(
                "`scene_sets.optical` = `{}` is not a valid glob ({e})",
                self.optical
            )
        })?;
        let mut files: Vec<PathBuf> = paths
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files.iter().map(|f| self.scene(f)).collect()
    }

    /// The scene of one optical file.
    fn scene(&self, optical: &Path) -> Result<SceneDef, String> {
        let fields = self.fields(optical)?;
        let fill = |t: &str| {
            fill(t, &fields).map_err(|f| format!("scene set `{}`: the template `{t}` uses `{{{f}}}`, which neither `match` nor the file name `{}` gives", self.optical, optical.display()))
        };
        let name = fill(self.name.as_deref().unwrap_or("{stem}"))?;
        let sar_path = fill(&self.sar.path)?;
        let sar = if sar_path.contains('*') {
            nearest_date(
                &sar_path,
                fields.get("date").map(String::as_str),
                self.sar.max_days,
            )
        } else {
            PathBuf::from(sar_path)
        };
        let existing = |p: String| Some(PathBuf::from(p)).filter(|p| p.exists());
        let labels = match &self.labels {
            Some(t) => existing(fill(t)?),
            None => None,
        };
        let reference = match &self.reference {
            Some(r) => existing(fill(&r.path.to_string_lossy())?)
                .map(|path| ReferenceDef { path, ..r.clone() }),
            None => None,
        };
        let mask = match &self.mask {
            Some(m) => Some(MaskDef {
                path: PathBuf::from(fill(&m.path)?),
                files: Vec::new(),
                invalid: m.invalid.clone(),
            }),
            None => None,
        };
        Ok(SceneDef {
            name,
            optical: OpticalDef {
                path: optical.to_path_buf(),
                files: Vec::new(),
                bands: self.bands.clone(),
                scale: self.scale,
                offset: self.offset,
            },
            sar: SarDef {
                path: sar,
                files: Vec::new(),
                polarisations: self.sar.polarisations.clone(),
                unit: self.sar.unit,
            },
            labels,
            reference,
            mask,
            datetime: None,
            catalogue: None,
            year: None,
            season: None,
        })
    }

    /// `dir`, `stem`, `date` and the fields of `match` for one optical file.
    fn fields(&self, optical: &Path) -> Result<BTreeMap<String, String>, String> {
        let stem = optical
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let dir = optical
            .parent()
            .map(|d| d.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut f = BTreeMap::new();
        if let Some(p) = &self.pattern {
            f = match_fields(p, &stem).ok_or_else(|| {
                format!("`{}` does not match the scene set's `match` = `{p}`; fix the pattern or the glob", optical.display())
            })?;
        }
        if !f.contains_key("date") {
            if let Some(d) = find_date(&stem) {
                f.insert("date".into(), d);
            }
        }
        f.insert("stem".into(), stem);
        f.insert("dir".into(), dir);
        Ok(f)
    }
}

/// Fills `{field}` placeholders; `Err` is the first unknown field.
pub(crate) fn fill(template: &str, fields: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..]
            .find('}')
            .map(|j| i + j)
            .ok_or_else(|| rest[i..].to_string())?;
        let key = &rest[i + 1..j];
        out.push_str(fields.get(key).ok_or_else(|| key.to_string())?);
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Matches `text` against `pattern` (literal text and `{field}` placeholders, each matching
/// one or more characters, as few as possible); the fields, or None.
pub fn match_fields(pattern: &str, text: &str) -> Option<BTreeMap<String, String>> {
    let mut parts = Vec::new();
    let mut rest = pattern;
    while let Some(i) = rest.find('{') {
        let j = rest[i..].find('}')? + i;
        parts.push((rest[..i].to_string(), Some(rest[i + 1..j].to_string())));
        rest = &rest[j + 1..];
    }
    parts.push((rest.to_string(), None));
    let mut out = BTreeMap::new();
    match_from(&parts, text, &mut out).then_some(out)
}

fn match_from(
    parts: &[(String, Option<String>)],
    text: &str,
    out: &mut BTreeMap<String, String>,
) -> bool {
    let Some(((lit, field), tail)) = parts.split_first() else {
        return text.is_empty();
    };
    let Some(text) = text.strip_prefix(lit.as_str()) else {
        return false;
    };
    let Some(field) = field else {
        return match_from(tail, text, out);
    };
    for (end, _) in text
        .char_indices()
        .skip(1)
        .chain(std::iter::once((text.len(), ' ')))
    {
        if end == 0 {
            continue;
        }
        if match_from(tail, &text[end..], out) {
            out.insert(field.clone(), text[..end].to_string());
            return true;
        }
    }
    false
}

/// The first date in a name: `YYYY-MM-DD` or `YYYYMMDD`, returned as `YYYY-MM-DD`.
pub fn find_date(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits =
        |i: usize, n: usize| i + n <= b.len() && b[i..i + n].iter().all(u8::is_ascii_digit);
    for i in 0..b.len() {
        if i > 0 && b[i - 1].is_ascii_digit() {
            continue;
        }
        if digits(i, 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
        {
            let d = &s[i..i + 10];
            if day_number(d).is_some() {
                return Some(d.to_string());
            }
        }
        if digits(i, 8) && !digits(i + 8, 1) {
            let d = format!("{}-{}-{}", &s[i..i + 4], &s[i + 4..i + 6], &s[i + 6..i + 8]);
            if day_number(&d).is_some() {
                return Some(d);
            }
        }
    }
    None
}

pub use crate::time::day_number;

/// The file matching `pattern` whose date is nearest `date`, within `max_days`; without a
/// match, `pattern` itself (the scene then fails alone, naming it).
fn nearest_date(pattern: &str, date: Option<&str>, max_days: u32) -> PathBuf {
    let target = date.and_then(day_number);
    let mut best: Option<(i64, PathBuf)> = None;
    let mut files: Vec<PathBuf> = glob::glob(pattern)
        .map(|g| g.filter_map(|p| p.ok()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let gap = match (target, find_date(&name).as_deref().and_then(day_number)) {
            (Some(t), Some(d)) => (d - t).abs(),
            (None, _) => 0,
            (Some(_), None) => continue,
        };
        if gap <= i64::from(max_days) && best.as_ref().is_none_or(|b| gap < b.0) {
            best = Some((gap, f));
        }
    }
    best.map(|b| b.1).unwrap_or_else(|| PathBuf::from(pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_dates_and_templates() {
        let f = match_fields("{chip}_S2L2A_{date}", "00002806639B424A_S2L2A_2018-04-19").unwrap();
        assert_eq!(f["chip"], "00002806639B424A");
        assert_eq!(f["date"], "2018-04-19");
        assert!(match_fields("{chip}_S1_{date}", "A_S2L2A_2018").is_none());
        assert_eq!(
            find_date("T31UFS_20240503T105031"),
            Some("2024-05-03".into())
        );
        assert_eq!(find_date("x_2019-07-05_y"), Some("2019-07-05".into()));
        assert_eq!(find_date("x_2019-13-05_123"), None);
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2000-03-01"), Some(11_017));
        assert_eq!(
            day_number("2018-04-21").unwrap() - day_number("2018-04-19").unwrap(),
            2
        );
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), "x".to_string());
        assert_eq!(fill("{a}/{a}_b", &m).unwrap(), "x/x_b");
        assert_eq!(fill("{a}_{zz}", &m).unwrap_err(), "zz");
    }
}
