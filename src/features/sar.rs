//! SAR features: unit conversion, polarimetric ratios and speckle filters (linear power).
//!
//! Window statistics are summed in a fixed order around every pixel (separable, f64), so a
//! pixel's value depends only on its neighbourhood and never on where a tile starts.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// Speckle filter applied before the SAR features (`features.speckle.filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpeckleFilter {
    /// No filtering.
    None,
    /// Lee (1980).
    Lee,
    /// Gamma-MAP (Lopes et al. 1990).
    GammaMap,
}

impl SpeckleFilter {
    /// The pipeline name (`none`, `lee`, `gamma-map`).
    pub fn name(self) -> &'static str {
        match self {
            SpeckleFilter::None => "none",
            SpeckleFilter::Lee => "lee",
            SpeckleFilter::GammaMap => "gamma-map",
        }
    }

    /// Filters linear power with a window of `radius` and `looks` equivalent looks.
    pub fn apply(self, img: ArrayView2<f32>, radius: usize, looks: f64) -> Array2<f32> {
        match self {
            SpeckleFilter::None => img.to_owned(),
            SpeckleFilter::Lee => lee_filter(img, radius, looks),
            SpeckleFilter::GammaMap => gamma_map_filter(img, radius, looks),
        }
    }
}

/// A SAR polarisation geofuse reads (Sentinel-1 IW: VV, VH or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Polarisation {
    /// Vertical transmit, vertical receive (co-polarised).
    Vv,
    /// Vertical transmit, horizontal receive (cross-polarised).
    Vh,
}

impl Polarisation {
    /// Every polarisation, in the order the SAR block of a tile holds them.
    pub const ALL: [Polarisation; 2] = [Polarisation::Vv, Polarisation::Vh];

    /// The name (`VV`, `VH`).
    pub fn name(self) -> &'static str {
        match self {
            Polarisation::Vv => "VV",
            Polarisation::Vh => "VH",
        }
    }

    /// The polarisation a band name denotes (any case), if geofuse reads it.
    pub fn parse(name: &str) -> Option<Polarisation> {
        Polarisation::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// `list` as the pipeline writes it (`VV VH`).
    pub fn join(list: &[Polarisation]) -> String {
        let names: Vec<&str> = list.iter().map(|p| p.name()).collect();
        names.join(" ")
    }

    /// The polarisations geofuse reads among `names` (a scene's `sar.polarisations`), in
    /// [`Polarisation::ALL`] order.
    pub fn read_from(names: &[String]) -> Vec<Polarisation> {
        Polarisation::ALL
            .into_iter()
            .filter(|p| names.iter().any(|n| Polarisation::parse(n) == Some(*p)))
            .collect()
    }
}

/// A SAR feature of the hand-crafted stack (`features.sar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SarFeature {
    /// VV backscatter, dB.
    VvDb,
    /// VH backscatter, dB.
    VhDb,
    /// VH - VV, dB.
    VhVvRatioDb,
    /// Radar vegetation index 4 VH / (VV + VH).
    Rvi,
    /// VV linear power.
    VvLin,
    /// VH linear power.
    VhLin,
}

impl SarFeature {
    /// The pipeline name (`vv_db`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SarFeature::VvDb => "vv_db",
            SarFeature::VhDb => "vh_db",
            SarFeature::VhVvRatioDb => "vh_vv_ratio_db",
            SarFeature::Rvi => "rvi",
            SarFeature::VvLin => "vv_lin",
            SarFeature::VhLin => "vh_lin",
        }
    }

    /// The polarisations the feature is computed from.
    pub fn needs(self) -> &'static [Polarisation] {
        use Polarisation::{Vh, Vv};
        match self {
            SarFeature::VvDb | SarFeature::VvLin => &[Vv],
            SarFeature::VhDb | SarFeature::VhLin => &[Vh],
            SarFeature::VhVvRatioDb | SarFeature::Rvi => &[Vv, Vh],
        }
    }

    /// The feature from speckle-filtered linear power of the polarisations it [needs]
    /// (`None` when the scene lacks one: pipelines are checked so that it never does, and the
    /// feature is then all NaN, never a guess).
    ///
    /// [needs]: SarFeature::needs
    pub fn compute(
        self,
        vv: Option<&Array2<f32>>,
        vh: Option<&Array2<f32>>,
    ) -> Option<Array2<f32>> {
        let needs_vv = self.needs().contains(&Polarisation::Vv);
        let needs_vh = self.needs().contains(&Polarisation::Vh);
        let (vv, vh) = match (vv, vh) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) if !needs_vh => (a, a),
            (None, Some(b)) if !needs_vv => (b, b),
            _ => return None,
        };
        let pair =
            |f: fn(f32, f32) -> f32| ndarray::Zip::from(vv).and(vh).map_collect(|&a, &b| f(a, b));
        Some(match self {
            SarFeature::VvDb => vv.mapv(linear_to_db),
            SarFeature::VhDb => vh.mapv(linear_to_db),
            SarFeature::VhVvRatioDb => pair(|a, b| linear_to_db(b) - linear_to_db(a)),
            SarFeature::Rvi => pair(rvi),
            SarFeature::VvLin => vv.clone(),
            SarFeature::VhLin => vh.clone(),
        })
    }
}

/// dB to linear power; NaN stays NaN.
#[inline]
pub fn db_to_linear(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// Linear power to dB; non-positive or NaN gives NaN.
#[inline]
pub fn linear_to_db(lin: f32) -> f32 {
    if lin > 0.0 {
        10.0 * lin.log10()
    } else {
        f32::NAN
    }
}

/// Dual-polarisation radar vegetation index 4 VH / (VV + VH) (linear power).
#[inline]
pub fn rvi(vv: f32, vh: f32) -> f32 {
    let d = vv + vh;
    if d > 0.0 {
        4.0 * vh / d
    } else {
        f32::NAN
    }
}

/// Local mean, variance and count of valid pixels in a (2r+1)^2 window cropped at the border.
fn local_stats(img: ArrayView2<f32>, r: usize) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
    let (h, w) = img.dim();
    // Horizontal pass: sum, sum of squares, count over columns x-r..=x+r.
    let mut hs = Array2::<f64>::zeros((h, w));
    let mut hq = Array2::<f64>::zeros((h, w));
    let mut hn = Array2::<f64>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            let (mut s, mut q, mut n) = (0.0, 0.0, 0.0);
            for xx in x.saturating_sub(r)..=(x + r).min(w - 1) {
                let v = img[[y, xx]];
                if !v.is_nan() {
                    let v = v as f64;
                    s += v;
                    q += v * v;
                    n += 1.0;
                }
            }
            hs[[y, x]] = s;
            hq[[y, x]] = q;
            hn[[y, x]] = n;
        }
    }
    let mut mean = Array2::<f64>::zeros((h, w));
    let mut var = Array2::<f64>::zeros((h, w));
    let mut cnt = Array2::<f64>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            let (mut s, mut q, mut n) = (0.0, 0.0, 0.0);
            for yy in y.saturating_sub(r)..=(y + r).min(h - 1) {
                s += hs[[yy, x]];
                q += hq[[yy, x]];
                n += hn[[yy, x]];
            }
            if n > 0.0 {
                let m = s / n;
                mean[[y, x]] = m;
                var[[y, x]] = (q / n - m * m).max(0.0);
            }
            cnt[[y, x]] = n;
        }
    }
    (mean, var, cnt)
}

/// Lee filter (Lee 1980) on linear power with `looks` equivalent looks; NaN (no data) pixels
/// are ignored in the window and stay NaN.
pub fn lee_filter(img: ArrayView2<f32>, radius: usize, looks: f64) -> Array2<f32> {
    let (mean, var, cnt) = local_stats(img, radius);
    let cu2 = 1.0 / looks;
    Array2::from_shape_fn(img.dim(), |(y, x)| {
        let v = img[[y, x]];
        if v.is_nan() || cnt[[y, x]] == 0.0 {
            return f32::NAN;
        }
        let (m, s2) = (mean[[y, x]], var[[y, x]]);
        let var_x = ((s2 - m * m * cu2) / (1.0 + cu2)).max(0.0);
        let k = if s2 > 0.0 { var_x / s2 } else { 0.0 };
        (m + k * (v as f64 - m)) as f32
    })
}

/// Gamma-MAP filter (Lopes et al. 1990) on linear power with `looks` equivalent looks.
pub fn gamma_map_filter(img: ArrayView2<f32>, radius: usize, looks: f64) -> Array2<f32> {
    let (mean, var, cnt) = local_stats(img, radius);
    let cu = 1.0 / looks.sqrt();
    let cmax = std::f64::consts::SQRT_2 * cu;
    Array2::from_shape_fn(img.dim(), |(y, x)| {
        let v = img[[y, x]];
        if v.is_nan() || cnt[[y, x]] == 0.0 {
            return f32::NAN;
        }
        let (m, s2) = (mean[[y, x]], var[[y, x]]);
        if m <= 0.0 {
            return v;
        }
        let ci = s2.sqrt() / m;
        if ci <= cu {
            m as f32
        } else if ci >= cmax {
            v
        } else {
            let alpha = (1.0 + cu * cu) / (ci * ci - cu * cu);
            let b = alpha - looks - 1.0;
            let d = m * m * b * b + 4.0 * alpha * looks * m * v as f64;
            ((b * m + d.max(0.0).sqrt()) / (2.0 * alpha)) as f32
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn polarisations_parse_in_any_case_and_read_in_fixed_order() {
        assert_eq!(Polarisation::parse(" vh"), Some(Polarisation::Vh));
        assert_eq!(Polarisation::parse("HH"), None);
        let names: Vec<String> = ["VH", "angle", "vv"].map(String::from).to_vec();
        assert_eq!(Polarisation::read_from(&names), Polarisation::ALL.to_vec());
        assert_eq!(Polarisation::join(&Polarisation::ALL), "VV VH");
    }

    #[test]
    fn a_feature_is_computed_from_the_polarisations_it_needs_and_only_those() {
        let vv = Array2::from_elem((2, 2), 0.1f32);
        let vh = Array2::from_elem((2, 2), 0.02f32);
        for f in [
            SarFeature::VvDb,
            SarFeature::VhDb,
            SarFeature::VhVvRatioDb,
            SarFeature::Rvi,
        ] {
            let both = f.compute(Some(&vv), Some(&vh)).unwrap();
            let has = |p| f.needs().contains(&p);
            let vv_only = f.compute(Some(&vv), None);
            let vh_only = f.compute(None, Some(&vh));
            assert_eq!(vv_only.is_some(), !has(Polarisation::Vh), "{f:?}");
            assert_eq!(vh_only.is_some(), !has(Polarisation::Vv), "{f:?}");
            for one in vv_only.iter().chain(vh_only.iter()) {
                assert_eq!(one, &both, "{f:?}");
            }
        }
        assert!((SarFeature::VvDb.compute(Some(&vv), None).unwrap()[[0, 0]] + 10.0).abs() < 1e-5);
        assert_eq!(SarFeature::Rvi.compute(None, None), None);
    }

    #[test]
    fn db_linear_roundtrip() {
        for db in [-25.0f32, -10.0, 0.0, 3.0] {
            assert!((linear_to_db(db_to_linear(db)) - db).abs() < 1e-4);
        }
        assert!(linear_to_db(0.0).is_nan());
    }

    fn speckled(mean: f32, n: usize, seed: u64) -> Array2<f32> {
        let mut r = Rng::new(seed);
        Array2::from_shape_fn((n, n), |_| mean * (r.gamma(4.0) / 4.0) as f32)
    }

    fn cv(a: &Array2<f32>) -> f64 {
        let v: Vec<f64> = a.iter().map(|&x| x as f64).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt() / m
    }

    #[test]
    fn lee_reduces_speckle_and_keeps_the_mean() {
        let img = speckled(0.1, 64, 5);
        let f = lee_filter(img.view(), 2, 4.0);
        assert!(cv(&f) < 0.5 * cv(&img), "cv {} -> {}", cv(&img), cv(&f));
        let (mi, mf) = (img.mean().unwrap(), f.mean().unwrap());
        assert!((mi - mf).abs() / mi < 0.02);
    }

    #[test]
    fn gamma_map_reduces_speckle_and_keeps_the_mean() {
        let img = speckled(0.05, 64, 6);
        let f = gamma_map_filter(img.view(), 2, 4.0);
        assert!(cv(&f) < 0.5 * cv(&img));
        assert!((img.mean().unwrap() - f.mean().unwrap()).abs() / img.mean().unwrap() < 0.05);
    }

    #[test]
    fn filters_keep_nodata_and_ignore_it_in_windows() {
        let mut img = speckled(0.1, 16, 7);
        img[[5, 5]] = f32::NAN;
        let f = lee_filter(img.view(), 2, 4.0);
        assert!(f[[5, 5]].is_nan());
        assert!(f.iter().filter(|v| v.is_nan()).count() == 1);
    }

    #[test]
    fn lee_on_a_constant_is_the_constant() {
        let img = Array2::from_elem((9, 9), 0.3f32);
        let f = lee_filter(img.view(), 2, 4.0);
        assert!(f.iter().all(|&v| (v - 0.3).abs() < 1e-6));
    }
}
