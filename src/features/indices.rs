//! Spectral indices from named Sentinel-2 bands (reflectance 0..1).
//!
//! A zero denominator or a missing input gives NaN (nodata), never infinity.

use ndarray::{Array2, ArrayView2, Zip};

/// Bands an index needs, in the order its formula takes them.
pub fn index_bands(name: &str) -> Option<&'static [&'static str]> {
    crate::config::INDEX_BANDS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, b)| *b)
}

/// The positions in `bands` of the bands index `name` needs, in its formula's order; a scene
/// without B08 uses B8A for it (20 m archives hold B8A, not B08). `Err` names the band
/// missing. Unknown indices need nothing.
pub fn index_band_positions(name: &str, bands: &[String]) -> Result<Vec<usize>, &'static str> {
    let find = |b: &str| {
        bands
            .iter()
            .position(|x| crate::config::scene::same_band_name(x, b))
    };
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
    if inputs.len() != index_bands(name)?.len() {
        return None;
    }
    let upper = name.to_ascii_uppercase();
    let out = match upper.as_str() {
        // (B08 - B04) / (B08 + B04) etc.: inputs are (b1, b2) with index = nd(b2, b1) or nd(b1, b2).
        "NDVI" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&red, &nir| normalised_difference(nir, red)),
        "NDWI" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&g, &nir| normalised_difference(g, nir)),
        "MNDWI" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&g, &swir| normalised_difference(g, swir)),
        "NDBI" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&nir, &swir| normalised_difference(swir, nir)),
        "SAVI" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&red, &nir| ratio(1.5 * (nir - red), nir + red + 0.5)),
        "EVI" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .and(&inputs[2])
            .map_collect(|&blue, &red, &nir| {
                ratio(2.5 * (nir - red), nir + 6.0 * red - 7.5 * blue + 1.0)
            }),
        "NBR" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&nir, &swir2| normalised_difference(nir, swir2)),
        "NDRE" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&re1, &nir| normalised_difference(nir, re1)),
        // Gao's NDWI (Orfeo ToolBox's Water:NDWI): moisture from NIR and SWIR.
        "NDMI" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&nir, &swir| normalised_difference(nir, swir)),
        // Brightness index (Orfeo ToolBox's Soil:BI): sqrt((R^2 + G^2) / 2).
        "BI" => Zip::from(&inputs[0])
            .and(&inputs[1])
            .map_collect(|&g, &r| ((r * r + g * g) / 2.0).sqrt()),
        _ => return None,
    };
    Some(out)
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
    fn every_configured_index_is_implemented() {
        for (name, bands) in crate::config::INDEX_BANDS {
            let arrays: Vec<_> = bands.iter().map(|_| arr2(&[[0.2f32]])).collect();
            let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
            assert!(spectral_index(name, &views).is_some(), "{name}");
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
