//! Spectral indices from named Sentinel-2 bands (reflectance 0..1).
//!
//! A zero denominator or a missing input gives NaN (nodata), never infinity.

use ndarray::{Array2, ArrayView2, Zip};

/// A spectral index: its name, the bands its formula takes (in that order) and the formula
/// over one pixel's values of those bands.
pub struct SpectralIndex {
    /// Name (matched case-insensitively in pipeline files).
    pub name: &'static str,
    /// Sentinel-2 bands, in the formula's order.
    pub bands: &'static [&'static str],
    /// The formula: `v[i]` is the reflectance of `bands[i]`.
    pub formula: fn(&[f32]) -> f32,
}

/// Every spectral index geofuse computes: the one table the pipeline's validation, the
/// feature stack and the tools read.
pub const INDICES: &[SpectralIndex] = &[
    SpectralIndex {
        name: "NDVI",
        bands: &["B04", "B08"],
        formula: |v| normalised_difference(v[1], v[0]),
    },
    SpectralIndex {
        name: "NDWI",
        bands: &["B03", "B08"],
        formula: |v| normalised_difference(v[0], v[1]),
    },
    SpectralIndex {
        name: "MNDWI",
        bands: &["B03", "B11"],
        formula: |v| normalised_difference(v[0], v[1]),
    },
    SpectralIndex {
        name: "NDBI",
        bands: &["B08", "B11"],
        formula: |v| normalised_difference(v[1], v[0]),
    },
    SpectralIndex {
        name: "SAVI",
        bands: &["B04", "B08"],
        formula: |v| ratio(1.5 * (v[1] - v[0]), v[1] + v[0] + 0.5),
    },
    SpectralIndex {
        name: "EVI",
        bands: &["B02", "B04", "B08"],
        formula: |v| ratio(2.5 * (v[2] - v[1]), v[2] + 6.0 * v[1] - 7.5 * v[0] + 1.0),
    },
    SpectralIndex {
        name: "NBR",
        bands: &["B08", "B12"],
        formula: |v| normalised_difference(v[0], v[1]),
    },
    SpectralIndex {
        name: "NDRE",
        bands: &["B05", "B08"],
        formula: |v| normalised_difference(v[1], v[0]),
    },
    // Gao's NDWI (Orfeo ToolBox's Water:NDWI): moisture from NIR and SWIR.
    SpectralIndex {
        name: "NDMI",
        bands: &["B08", "B11"],
        formula: |v| normalised_difference(v[0], v[1]),
    },
    // Brightness index (Orfeo ToolBox's Soil:BI): sqrt((R^2 + G^2) / 2).
    SpectralIndex {
        name: "BI",
        bands: &["B03", "B04"],
        formula: |v| ((v[1] * v[1] + v[0] * v[0]) / 2.0).sqrt(),
    },
];

/// The index named `name` (case-insensitive).
pub fn index(name: &str) -> Option<&'static SpectralIndex> {
    INDICES.iter().find(|i| i.name.eq_ignore_ascii_case(name))
}

/// Bands an index needs, in the order its formula takes them.
pub fn index_bands(name: &str) -> Option<&'static [&'static str]> {
    index(name).map(|i| i.bands)
}

/// The positions in `bands` of the bands index `name` needs, in its formula's order; a scene
/// without B08 uses B8A for it (20 m archives hold B8A, not B08). `Err` names the band
/// missing. Unknown indices need nothing.
pub fn index_band_positions(name: &str, bands: &[String]) -> Result<Vec<usize>, &'static str> {
    let find = |b: &str| bands.iter().position(|x| same_band_name(x, b));
    index_bands(name)
        .unwrap_or(&[])
        .iter()
        .map(|&b| {
            find(b)
                .or_else(|| (b == "B08").then(|| find("B8A")).flatten())
                .ok_or(b)
        })
        .collect()
}

#[inline]
fn ratio(num: f32, den: f32) -> f32 {
    if den == 0.0 || num.is_nan() || den.is_nan() {
        f32::NAN
    } else {
        num / den
    }
}

#[inline]
fn normalised_difference(a: f32, b: f32) -> f32 {
    ratio(a - b, a + b)
}

/// Computes the index `name` from its input bands (as listed by [`index_bands`]).
pub fn spectral_index(name: &str, inputs: &[ArrayView2<f32>]) -> Option<Array2<f32>> {
    let ix = index(name)?;
    if inputs.len() != ix.bands.len() {
        return None;
    }
    let f = ix.formula;
    let out = match inputs {
        [a, b] => Zip::from(a).and(b).map_collect(|&x, &y| f(&[x, y])),
        [a, b, c] => Zip::from(a)
            .and(b)
            .and(c)
            .map_collect(|&x, &y, &z| f(&[x, y, z])),
        _ => Array2::from_shape_fn(inputs[0].dim(), |p| {
            let v: Vec<f32> = inputs.iter().map(|i| i[p]).collect();
            f(&v)
        }),
    };
    Some(out)
}

/// Sentinel-2 band names compare without case and without a leading zero (`B2` = `B02`,
/// `b8a` = `B8A`).
pub fn same_band_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let u = s.trim().to_ascii_uppercase();
        match u.strip_prefix("B0") {
            Some(rest) if !rest.is_empty() => format!("B{rest}"),
            _ => u,
        }
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr2;

    #[test]
    fn b8a_stands_in_for_a_missing_b08() {
        let b = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let twenty = b(&["B05", "B06", "B07", "B8A", "B11", "B12"]);
        assert_eq!(index_band_positions("NDRE", &twenty), Ok(vec![0, 3]));
        assert_eq!(index_band_positions("NDVI", &twenty), Err("B04"));
        let all = b(&["B04", "B05", "B08", "B8A"]);
        assert_eq!(index_band_positions("NDRE", &all), Ok(vec![1, 2]));
        assert!(spectral_index("NDVI", &[]).is_none());
    }

    #[test]
    fn ndvi_of_vegetation_and_zero_denominator() {
        let red = arr2(&[[0.05f32, 0.0, f32::NAN]]);
        let nir = arr2(&[[0.45f32, 0.0, 0.3]]);
        let v = spectral_index("NDVI", &[red.view(), nir.view()]).unwrap();
        assert!((v[[0, 0]] - 0.8).abs() < 1e-6);
        assert!(v[[0, 1]].is_nan());
        assert!(v[[0, 2]].is_nan());
    }

    #[test]
    fn every_index_of_the_table_matches_its_formula_by_hand() {
        // One pixel: B02 0.1, B03 0.2, B04 0.3, B05 0.35, B08 0.5, B11 0.25, B12 0.15.
        let refl = |b: &str| match b {
            "B02" => 0.1f32,
            "B03" => 0.2,
            "B04" => 0.3,
            "B05" => 0.35,
            "B08" => 0.5,
            "B11" => 0.25,
            _ => 0.15,
        };
        let want = [
            ("NDVI", 0.25),
            ("NDWI", -0.428_571),
            ("MNDWI", -0.111_111),
            ("NDBI", -0.333_333),
            ("SAVI", 0.230_769),
            ("EVI", 0.196_078),
            ("NBR", 0.538_462),
            ("NDRE", 0.176_471),
            ("NDMI", 0.333_333),
            ("BI", 0.254_951),
        ];
        assert_eq!(want.len(), INDICES.len());
        for (name, v) in want {
            let arrays: Vec<_> = index_bands(name)
                .unwrap()
                .iter()
                .map(|b| arr2(&[[refl(b)]]))
                .collect();
            let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
            let got = spectral_index(name, &views).unwrap()[[0, 0]];
            assert!((got - v).abs() < 1e-5, "{name}: {got} vs {v}");
        }
    }

    #[test]
    fn ndmi_and_brightness_by_hand() {
        let (nir, swir) = (arr2(&[[0.4f32]]), arr2(&[[0.2f32]]));
        let v = spectral_index("NDMI", &[nir.view(), swir.view()]).unwrap();
        assert!((v[[0, 0]] - 0.2 / 0.6).abs() < 1e-6);
        let (g, r) = (arr2(&[[0.3f32]]), arr2(&[[0.4f32]]));
        let v = spectral_index("BI", &[g.view(), r.view()]).unwrap();
        assert!((v[[0, 0]] - (0.25f32 / 2.0).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn evi_matches_hand_computation() {
        let (b, r, n) = (arr2(&[[0.04f32]]), arr2(&[[0.06f32]]), arr2(&[[0.40f32]]));
        let v = spectral_index("EVI", &[b.view(), r.view(), n.view()]).unwrap();
        let expect = 2.5 * (0.40 - 0.06) / (0.40 + 6.0 * 0.06 - 7.5 * 0.04 + 1.0);
        assert!((v[[0, 0]] - expect).abs() < 1e-6);
    }
}
