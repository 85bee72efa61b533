//! `[postprocess]` (and a method's own `postprocess = { ... }`): spatial regularisation of a
//! method's map after prediction. A method with a post-process writes its raw product and a
//! regularised one beside it, `<method>-regularised.tif`, from the same probabilities.

use serde::{Deserialize, Serialize};

/// Suffix of the regularised product's name (`<method>-regularised`).
pub const REGULARISED_SUFFIX: &str = "-regularised";

/// How the probabilities or the classes of neighbouring pixels are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Smoothing {
    /// No smoothing (a sieve alone may still run).
    #[default]
    None,
    /// Bayesian smoothing of the class log-odds over a square window (as sits' `sits_smooth`).
    Bayesian,
    /// Majority vote of the classes in a disc (as Orfeo ToolBox's
    /// ClassificationMapRegularization).
    Majority,
}

/// Smoothness: one prior variance of the log-odds for every class, or one per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Smoothness {
    /// The same for every class.
    All(f64),
    /// One per class, in class-table order.
    PerClass(Vec<f64>),
}

impl Smoothness {
    /// The smoothness of class index `k`.
    pub fn of(&self, k: usize) -> f64 {
        match self {
            Smoothness::All(v) => *v,
            Smoothness::PerClass(v) => v[k],
        }
    }
}

/// The post-process of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostProcess {
    /// Smoothing of the map.
    #[serde(default)]
    pub smoothing: Smoothing,
    /// Bayesian: side of the square window, odd, at least 3.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Bayesian: fraction of the window's highest log-odds that form the prior, in (0, 1].
    #[serde(default = "default_neigh_fraction")]
    pub neigh_fraction: f64,
    /// Bayesian: variance of a pixel's log-odds (larger smooths more), scalar or per class.
    #[serde(default = "default_smoothness")]
    pub smoothness: Smoothness,
    /// Majority: radius of the disc in pixels.
    #[serde(default = "default_radius")]
    pub radius: usize,
    /// Minimum mapping unit in pixels: smaller patches of one class take the class of their
    /// largest neighbour (GDAL's sieve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pixels: Option<usize>,
    /// Minimum mapping unit in hectares (instead of `min_pixels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_hectares: Option<f64>,
    /// Sieve connectedness: 4 (edges) or 8 (edges and corners).
    #[serde(default = "default_connectedness")]
    pub connectedness: u8,
    /// Exclusion mask: a vector file (any OGR format) whose polygons are left as predicted
    /// and never enter a neighbourhood (roads, water bodies, a mapped reference layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusion: Option<std::path::PathBuf>,
}

fn default_window() -> usize {
    9
}
fn default_neigh_fraction() -> f64 {
    0.5
}
fn default_smoothness() -> Smoothness {
    Smoothness::All(20.0)
}
fn default_radius() -> usize {
    1
}
fn default_connectedness() -> u8 {
    4
}

/// The largest window or disc a tile halo may carry.
pub const MAX_HALO: usize = 64;

impl PostProcess {
    /// Whether it changes anything (smoothing or a sieve).
    pub fn is_active(&self) -> bool {
        self.smoothing != Smoothing::None
            || self.min_pixels.is_some()
            || self.min_hectares.is_some()
    }

    /// Pixels of context a tile needs around its core for the smoothing to be exact.
    pub fn halo(&self) -> usize {
        match self.smoothing {
            Smoothing::None => 0,
            Smoothing::Bayesian => self.window / 2,
            Smoothing::Majority => self.radius,
        }
    }

    /// The sieve threshold in pixels for pixels of `pixel_area` square metres.
    pub fn sieve_pixels(&self, pixel_area: f64) -> Option<usize> {
        self.min_pixels.or_else(|| {
            self.min_hectares
                .map(|ha| (ha * 10_000.0 / pixel_area.max(f64::MIN_POSITIVE)).ceil() as usize)
        })
    }

    /// Checks the settings for `k` classes; `Err` is the message.
    pub fn validate(&self, k: usize) -> std::result::Result<(), String> {
        if self.window < 3 || self.window.is_multiple_of(2) {
            return Err(format!(
                "`postprocess.window` = {} must be odd and at least 3 (for example 9)",
                self.window
            ));
        }
        if self.halo() > MAX_HALO {
            return Err(format!("`postprocess` needs a halo of {} pixels, more than the {MAX_HALO} a tile carries; use `window` <= {} or `radius` <= {MAX_HALO}", self.halo(), 2 * MAX_HALO + 1));
        }
        if !(self.neigh_fraction > 0.0 && self.neigh_fraction <= 1.0) {
            return Err(format!(
                "`postprocess.neigh_fraction` = {} must be in (0, 1]",
                self.neigh_fraction
            ));
        }
        let s: Vec<f64> = match &self.smoothness {
            Smoothness::All(v) => vec![*v],
            Smoothness::PerClass(v) if v.len() == k => v.clone(),
            Smoothness::PerClass(v) => return Err(format!("`postprocess.smoothness` lists {} values for {k} classes; give one per class in class-table order, or one number", v.len())),
        };
        if s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(
                "`postprocess.smoothness` must be positive and finite (for example 20)".into(),
            );
        }
        if self.smoothing == Smoothing::Majority && self.radius == 0 {
            return Err("`postprocess.radius` must be at least 1".into());
        }
        if self.min_pixels.is_some() && self.min_hectares.is_some() {
            return Err(
                "give `postprocess.min_pixels` or `postprocess.min_hectares`, not both".into(),
            );
        }
        if self.min_pixels == Some(0)
            || self
                .min_hectares
                .is_some_and(|h| !(h.is_finite() && h > 0.0))
        {
            return Err(
                "the minimum mapping unit (`min_pixels` / `min_hectares`) must be positive".into(),
            );
        }
        if !matches!(self.connectedness, 4 | 8) {
            return Err(format!(
                "`postprocess.connectedness` = {} must be 4 or 8",
                self.connectedness
            ));
        }
        Ok(())
    }

    /// One line for the product's metadata and band descriptions.
    pub fn describe(&self, pixel_area: f64) -> String {
        let mut parts = Vec::new();
        match self.smoothing {
            Smoothing::None => {}
            Smoothing::Bayesian => parts.push(format!(
                "bayesian smoothing (window {}, neigh_fraction {}, smoothness {})",
                self.window,
                self.neigh_fraction,
                match &self.smoothness {
                    Smoothness::All(v) => v.to_string(),
                    Smoothness::PerClass(v) => format!("{v:?}"),
                }
            )),
            Smoothing::Majority => parts.push(format!("majority vote (radius {})", self.radius)),
        }
        if let Some(n) = self.sieve_pixels(pixel_area) {
            parts.push(format!(
                "sieve (minimum {n} pixels, {}-connected)",
                self.connectedness
            ));
        }
        parts.join(", then ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PostProcess {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn defaults_and_halo() {
        let p = parse("smoothing = \"bayesian\"");
        assert_eq!((p.window, p.neigh_fraction, p.halo()), (9, 0.5, 4));
        assert!(p.is_active() && p.validate(3).is_ok());
        assert_eq!(parse("smoothing = \"majority\"\nradius = 2").halo(), 2);
        assert!(!parse("").is_active());
        assert!(parse("min_pixels = 4").is_active());
    }

    #[test]
    fn hectares_become_pixels() {
        let p = parse("min_hectares = 0.5");
        // 10 m pixels: 100 m2 each, 0.5 ha = 50 pixels.
        assert_eq!(p.sieve_pixels(100.0), Some(50));
        assert_eq!(p.sieve_pixels(400.0), Some(13));
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (s, key) in [
            ("smoothing = \"bayesian\"\nwindow = 4", "window"),
            ("smoothing = \"bayesian\"\nwindow = 201", "halo"),
            ("neigh_fraction = 0.0", "neigh_fraction"),
            ("smoothness = [1.0, 2.0]", "smoothness"),
            ("smoothness = -1.0", "smoothness"),
            ("min_pixels = 3\nmin_hectares = 1.0", "min_hectares"),
            ("min_pixels = 0", "min_pixels"),
            ("connectedness = 6", "connectedness"),
            ("smoothing = \"majority\"\nradius = 0", "radius"),
        ] {
            let e = parse(s).validate(3).unwrap_err();
            assert!(e.contains(key), "{s}: {e}");
        }
        assert!(toml::from_str::<PostProcess>("smoothing = \"median\"").is_err());
        assert!(toml::from_str::<PostProcess>("windows = 3").is_err());
    }
}
