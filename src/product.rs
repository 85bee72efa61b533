//! The product contract (docs/design.md): the bands of every classified COG, their names,
//! descriptions, scale and offset, the modality bits, and how a pixel's class probabilities
//! become bytes. Writers, readers of products, metrics, STAC and the tools all go through it.

use std::path::Path;

use ndarray::{Array2, Array3};

use crate::error::{Error, Result};
use crate::io::reader::RasterReader;
use crate::io::writer::ByteBand;
use crate::raster::Window;
use crate::uncertainty::summarise;

/// Value of every band where a pixel has no prediction.
pub const NODATA: u8 = 255;

/// Scale of the uncertainty bands: physical = byte x BYTE_SCALE (0..=250 -> 0..1).
pub const BYTE_SCALE: f64 = 0.004;

/// The bands of a product, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductBand {
    /// Class id of the pipeline's class table.
    Class,
    /// Maximum mean class probability.
    Confidence,
    /// Expected entropy of the members / ln K.
    Aleatoric,
    /// Mutual information (total - aleatoric) / ln K.
    Epistemic,
    /// Entropy of the mean probabilities / ln K.
    Total,
    /// Bit 1 optical present, bit 2 SAR present.
    Modalities,
}

/// One row per band, in file order: the band, its name (the description's first word), its
/// scale (physical = byte x scale), and what it holds (`None`: what the method's uncertainty
/// bands mean, [`BandMeanings`]). Adding a band is a variant above, a row here, and the code
/// that computes it.
const TABLE: &[(ProductBand, &str, f64, Option<&str>)] = &[
    (
        ProductBand::Class,
        "class",
        1.0,
        Some("class id (see category names); 255 = nodata"),
    ),
    (
        ProductBand::Confidence,
        "confidence",
        BYTE_SCALE,
        Some("max class probability"),
    ),
    (ProductBand::Aleatoric, "aleatoric", BYTE_SCALE, None),
    (ProductBand::Epistemic, "epistemic", BYTE_SCALE, None),
    (ProductBand::Total, "total", BYTE_SCALE, None),
    (
        ProductBand::Modalities,
        "modalities",
        1.0,
        Some("bit 1 optical present, bit 2 SAR present"),
    ),
];

impl ProductBand {
    /// Every band in file order.
    pub const ALL: [ProductBand; TABLE.len()] = {
        let mut all = [ProductBand::Class; TABLE.len()];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    /// Number of bands.
    pub const COUNT: usize = ProductBand::ALL.len();

    /// 0-based index in the product (GDAL band = index + 1).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Band name (the description's first word).
    pub fn name(self) -> &'static str {
        TABLE[self.index()].1
    }

    /// Physical = byte x scale + offset.
    pub fn scale(self) -> f64 {
        TABLE[self.index()].2
    }

    /// Offset of the physical value.
    pub fn offset(self) -> f64 {
        0.0
    }
}

/// Reads the band named `name` of a product COG: `class`, `confidence`, `aleatoric`,
/// `epistemic`, `total`, `modalities`, and where present `observations_optical`,
/// `observations_sar` (seasons) or `margin` (the band's description, or its first word before a
/// colon). Values as stored, `[row, col]`: class ids and modality codes as they are, the
/// uncertainty bands as bytes (physical value = byte x [`ProductBand::scale`], 0..1); nodata
/// pixels are NaN.
///
/// ```no_run
/// use geofuse::product::{read_band, ProductBand};
/// let path = std::path::Path::new("out/demo/demo/handcrafted.tif");
/// let class = read_band(path, "class")?;
/// let epistemic = read_band(path, ProductBand::Epistemic.name())?
///     .mapv(|b| b as f64 * ProductBand::Epistemic.scale());
/// println!("{} pixels, largest epistemic {:?}", class.len(), epistemic.iter().copied().fold(f64::NAN, f64::max));
/// # Ok::<(), geofuse::Error>(())
/// ```
pub fn read_band(path: &Path, name: &str) -> Result<Array2<f32>> {
    let r = RasterReader::open(path)?;
    let described = |b: usize| {
        let d = r.band_description(b);
        d == name || d.starts_with(&format!("{name}:"))
    };
    let band = (1..=r.band_count())
        .find(|&b| described(b))
        .ok_or_else(|| {
            let names: Vec<String> = (1..=r.band_count())
                .map(|b| {
                    r.band_description(b)
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            Error::input(
                path,
                format!(
                    "no band `{name}`; this product's bands are {}",
                    names.join(", ")
                ),
            )
        })?;
    let g = r.grid()?;
    r.read_band(band, Window::full(g.width, g.height))
}

/// What a method's uncertainty bands mean (written into the band descriptions), for K classes.
#[derive(Debug, Clone, PartialEq)]
pub struct BandMeanings {
    /// Aleatoric band.
    pub aleatoric: String,
    /// Epistemic band.
    pub epistemic: String,
    /// Total band.
    pub total: String,
}

impl BandMeanings {
    /// An ensemble's (forest trees, Monte Carlo passes): mean member entropy, mutual
    /// information, entropy of the mean.
    pub fn ensemble(k: usize) -> BandMeanings {
        BandMeanings {
            aleatoric: format!("aleatoric uncertainty, mean per-member entropy / ln {k}"),
            epistemic: format!("epistemic uncertainty, mutual information / ln {k}"),
            total: format!("total uncertainty, entropy of the mean / ln {k}"),
        }
    }
}

/// The band descriptions of a product whose uncertainty bands mean `m`.
pub fn bands(m: &BandMeanings) -> Vec<ByteBand> {
    ProductBand::ALL
        .iter()
        .map(|&b| {
            let what = TABLE[b.index()].3.unwrap_or(match b {
                ProductBand::Aleatoric => &m.aleatoric,
                ProductBand::Epistemic => &m.epistemic,
                _ => &m.total,
            });
            let description = if b.scale() == 1.0 {
                format!("{}: {what}", b.name())
            } else {
                format!(
                    "{}: {what}; physical = value x {BYTE_SCALE}, 0..1",
                    b.name()
                )
            };
            ByteBand {
                name: b.name().into(),
                description,
                scale: b.scale(),
                offset: b.offset(),
            }
        })
        .collect()
}

/// The bands of a regularised product: those of the raw product with descriptions that say
/// what `how` (the post-process, in words) changed. Bayesian smoothing (`smoothed`) changes
/// the class, confidence and total bands; a majority vote or a sieve the class band alone.
pub fn regularised_bands(raw: Vec<ByteBand>, how: &str, smoothed: bool) -> Vec<ByteBand> {
    raw.into_iter()
        .map(|mut b| {
            let band = ProductBand::ALL.iter().find(|p| p.name() == b.name);
            let note = match band {
                Some(ProductBand::Class) => format!("regularised: {how}"),
                Some(ProductBand::Confidence | ProductBand::Total) if smoothed => {
                    "of the smoothed probabilities".into()
                }
                Some(ProductBand::Modalities) | None => String::new(),
                Some(_) => "of the pixel's own prediction, before regularisation".into(),
            };
            if !note.is_empty() {
                b.description = format!("{} ({note})", b.description);
            }
            b
        })
        .collect()
}

/// The modality code of a pixel: bit 1 optical present, bit 2 SAR present. "Present" means
/// the raw input was observed there: every optical band valid and not masked, VV and VH both
/// valid (see `SceneReader::read`, which invalidates the bands of a modality together).
#[inline]
pub fn modality_bits(optical: bool, sar: bool) -> u8 {
    optical as u8 | (sar as u8) << 1
}

/// The modality codes of the `h` x `w` window at (`r0`, `c0`) of a tile's raw inputs: optical
/// present where every optical band holds a value, SAR where VV and VH hold a positive power.
pub fn modalities(
    inputs: &crate::features::TileInputs,
    (r0, c0): (usize, usize),
    (h, w): (usize, usize),
) -> Array2<u8> {
    let (opt, sar) = (&inputs.optical_dn, &inputs.sar_linear);
    Array2::from_shape_fn((h, w), |(r, c)| {
        let (rr, cc) = (r0 + r, c0 + c);
        let o = (0..opt.shape()[0]).all(|b| !opt[[b, rr, cc]].is_nan());
        let s = (0..sar.shape()[0]).all(|b| sar[[b, rr, cc]] > 0.0);
        modality_bits(o, s)
    })
}

/// The bands of a product: [`bands`], then a season's [`season_bands`], then the
/// [`margin_band`] when asked.
pub fn product_bands(m: &BandMeanings, season: bool, margin: bool) -> Vec<ByteBand> {
    let mut b = bands(m);
    if season {
        b.extend(season_bands());
    }
    if margin {
        b.push(margin_band());
    }
    b
}

/// Name of the optional margin band.
pub const MARGIN: &str = "margin";

/// The optional last band: the highest mean class probability minus the second highest.
pub fn margin_band() -> ByteBand {
    ByteBand {
        name: MARGIN.into(),
        description: format!(
            "{MARGIN}: highest minus second-highest class probability; physical = value x {BYTE_SCALE}, 0..1"
        ),
        scale: BYTE_SCALE,
        offset: 0.0,
    }
}

/// The margin byte of class probabilities `p`.
pub fn margin_byte(p: &[f32]) -> u8 {
    let (mut a, mut b) = (0f32, 0f32);
    for &v in p {
        if v > a {
            (a, b) = (v, a);
        } else if v > b {
            b = v;
        }
    }
    to_byte(a - b)
}

/// The bands a season's product adds after [`ProductBand::ALL`]: the valid optical and SAR
/// observations of each pixel in the season.
pub fn season_bands() -> Vec<ByteBand> {
    [
        (
            "obs_optical",
            "valid optical observations in the season (cloud-free, not nodata)",
        ),
        ("obs_sar", "valid SAR observations in the season"),
    ]
    .iter()
    .map(|(name, what)| ByteBand {
        name: (*name).into(),
        description: format!("{name}: {what}; 254 = 254 or more"),
        scale: 1.0,
        offset: 0.0,
    })
    .collect()
}

/// The observation counts of the `h` x `w` window at (`r0`, `c0`) of a season tile's inputs,
/// `[2, h, w]` (optical, SAR; at most 254); None for inputs of one date.
pub fn observations(
    inputs: &crate::features::TileInputs,
    (r0, c0): (usize, usize),
    (h, w): (usize, usize),
) -> Option<Array3<u8>> {
    let s = inputs.season.as_ref()?;
    Some(Array3::from_shape_fn((2, h, w), |(b, r, c)| {
        let n = if b == 0 { &s.n_optical } else { &s.n_sar };
        n[[r0 + r, c0 + c]].min(254) as u8
    }))
}

/// Quantises a 0..1 value to the byte encoding (scale [`BYTE_SCALE`], 0..=250).
#[inline]
pub fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) / BYTE_SCALE as f32).round() as u8
}

/// One tile of a product: `[band, row, col]` bytes, every band [`NODATA`] until written.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductTile(pub Array3<u8>);

impl ProductTile {
    /// A tile of `h` x `w` pixels, all nodata.
    pub fn new(h: usize, w: usize) -> ProductTile {
        ProductTile(Array3::from_elem((ProductBand::COUNT, h, w), NODATA))
    }

    /// The byte of `band` at (`r`, `c`).
    #[inline]
    pub fn get(&self, band: ProductBand, r: usize, c: usize) -> u8 {
        self.0[[band.index(), r, c]]
    }

    /// Sets the modality code at (`r`, `c`).
    #[inline]
    pub fn set_modalities(&mut self, r: usize, c: usize, code: u8) {
        self.0[[ProductBand::Modalities.index(), r, c]] = code;
    }

    /// Writes the class `ids[argmax p]` (ties to the lower index) and the confidence,
    /// aleatoric, epistemic and total bytes of one pixel from its mean class probabilities
    /// `p` and mean member entropy (nats). Returns the class index.
    pub fn set_prediction(
        &mut self,
        r: usize,
        c: usize,
        ids: &[u8],
        p: &[f32],
        mean_member_entropy: f32,
    ) -> usize {
        let best = (0..p.len())
            .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        let u = summarise(p, mean_member_entropy);
        let mut put = |b: ProductBand, v: u8| self.0[[b.index(), r, c]] = v;
        put(ProductBand::Class, ids[best]);
        put(ProductBand::Confidence, to_byte(u.confidence));
        put(ProductBand::Aleatoric, to_byte(u.aleatoric));
        put(ProductBand::Epistemic, to_byte(u.epistemic));
        put(ProductBand::Total, to_byte(u.total));
        best
    }

    /// Replaces the class, confidence and total bytes of pixel (`r`, `c`) by those of the
    /// smoothed probabilities `p`; the aleatoric and epistemic bytes stay. Returns the class
    /// index.
    pub fn set_smoothed(&mut self, r: usize, c: usize, ids: &[u8], p: &[f32]) -> usize {
        let (aleatoric, epistemic) = (
            self.get(ProductBand::Aleatoric, r, c),
            self.get(ProductBand::Epistemic, r, c),
        );
        let best = self.set_prediction(r, c, ids, p, 0.0);
        self.0[[ProductBand::Aleatoric.index(), r, c]] = aleatoric;
        self.0[[ProductBand::Epistemic.index(), r, c]] = epistemic;
        best
    }

    /// Sets the class id of pixel (`r`, `c`).
    #[inline]
    pub fn set_class(&mut self, r: usize, c: usize, id: u8) {
        self.0[[ProductBand::Class.index(), r, c]] = id;
    }
}

/// Per-pixel class probabilities of a tile core, before quantisation: what a method's
/// predictor hands to the product writer.
pub struct TileProbabilities {
    /// Mean class probabilities `[K, h, w]` (ignored where `modalities` is 0).
    pub probs: Array3<f32>,
    /// Mean member entropy in nats `[h, w]` (aleatoric part).
    pub member_entropy: Array2<f32>,
    /// Modality code per pixel `[h, w]` ([`modality_bits`]); 0 = no prediction (nodata).
    pub modalities: Array2<u8>,
    /// A season's observation counts `[2, h, w]` ([`observations`]), written after the six
    /// bands.
    pub observations: Option<Array3<u8>>,
}

impl TileProbabilities {
    /// The `h` x `w` window at (`r0`, `c0`).
    pub fn crop(&self, (r0, c0): (usize, usize), (h, w): (usize, usize)) -> TileProbabilities {
        use ndarray::s;
        TileProbabilities {
            probs: self.probs.slice(s![.., r0..r0 + h, c0..c0 + w]).to_owned(),
            member_entropy: self
                .member_entropy
                .slice(s![r0..r0 + h, c0..c0 + w])
                .to_owned(),
            modalities: self.modalities.slice(s![r0..r0 + h, c0..c0 + w]).to_owned(),
            observations: self
                .observations
                .as_ref()
                .map(|o| o.slice(s![.., r0..r0 + h, c0..c0 + w]).to_owned()),
        }
    }

    /// The margin bytes of every pixel `[1, h, w]` ([`margin_byte`]; nodata where there is no
    /// prediction).
    pub fn margins(&self) -> Array3<u8> {
        let (k, h, w) = self.probs.dim();
        let mut p = vec![0f32; k];
        Array3::from_shape_fn((1, h, w), |(_, r, c)| {
            if self.modalities[[r, c]] == 0 {
                return NODATA;
            }
            p.iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = self.probs[[j, r, c]]);
            margin_byte(&p)
        })
    }

    /// The class index of the highest probability of each pixel (ties to the lower index;
    /// `usize::MAX` where there is no prediction), as [`ProductTile::set_prediction`] picks it.
    pub fn best(&self) -> Array2<usize> {
        let (k, h, w) = self.probs.dim();
        Array2::from_shape_fn((h, w), |(r, c)| {
            if self.modalities[[r, c]] == 0 {
                return usize::MAX;
            }
            (0..k)
                .max_by(|&a, &b| {
                    self.probs[[a, r, c]]
                        .total_cmp(&self.probs[[b, r, c]])
                        .then(b.cmp(&a))
                })
                .unwrap_or(0)
        })
    }

    /// Quantises into product bytes; pixels without any modality stay nodata (modalities 0).
    pub fn to_tile(&self, ids: &[u8]) -> (ProductTile, Array2<usize>) {
        let (k, h, w) = self.probs.dim();
        let mut t = ProductTile::new(h, w);
        let mut best = Array2::from_elem((h, w), usize::MAX);
        let mut pv = vec![0f32; k];
        for r in 0..h {
            for c in 0..w {
                let m = self.modalities[[r, c]];
                t.set_modalities(r, c, m);
                if m == 0 {
                    continue;
                }
                for (j, v) in pv.iter_mut().enumerate() {
                    *v = self.probs[[j, r, c]];
                }
                best[[r, c]] = t.set_prediction(r, c, ids, &pv, self.member_entropy[[r, c]]);
            }
        }
        if let Some(o) = &self.observations {
            t.0 = ndarray::concatenate(ndarray::Axis(0), &[t.0.view(), o.view()])
                .unwrap_or_else(|_| t.0.clone());
        }
        (t, best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_table_is_in_file_order_with_unique_names() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.0.index(), i, "{}", row.1);
            assert_eq!(ProductBand::ALL[i], row.0);
        }
        let mut names: Vec<&str> = TABLE.iter().map(|r| r.1).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ProductBand::COUNT);
        let d = bands(&BandMeanings::ensemble(7));
        assert_eq!(
            d[0].description,
            "class: class id (see category names); 255 = nodata"
        );
        assert_eq!(
            d[1].description,
            "confidence: max class probability; physical = value x 0.004, 0..1"
        );
        assert!(d[3]
            .description
            .starts_with("epistemic: epistemic uncertainty, mutual"));
        assert_eq!(
            d[5].description,
            "modalities: bit 1 optical present, bit 2 SAR present"
        );
    }

    #[test]
    fn band_layout_matches_the_design_contract() {
        let names: Vec<_> = ProductBand::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(
            names,
            [
                "class",
                "confidence",
                "aleatoric",
                "epistemic",
                "total",
                "modalities"
            ]
        );
        for (i, b) in ProductBand::ALL.iter().enumerate() {
            assert_eq!(b.index(), i);
        }
        let d = bands(&BandMeanings::ensemble(7));
        assert_eq!(d.len(), ProductBand::COUNT);
        assert!(d[2].description.contains("ln 7"), "{}", d[2].description);
        assert_eq!(d[1].scale, BYTE_SCALE);
        assert_eq!(d[5].scale, 1.0);
    }

    #[test]
    fn a_pixel_without_modalities_stays_nodata() {
        let p = TileProbabilities {
            probs: Array3::from_shape_vec((2, 1, 2), vec![0.9, 0.2, 0.1, 0.8]).unwrap(),
            member_entropy: Array2::zeros((1, 2)),
            modalities: Array2::from_shape_vec((1, 2), vec![3, 0]).unwrap(),
            observations: None,
        };
        let (t, best) = p.to_tile(&[4, 9]);
        assert_eq!(t.get(ProductBand::Class, 0, 0), 4);
        assert_eq!(best[[0, 0]], 0);
        assert_eq!(t.get(ProductBand::Confidence, 0, 0), to_byte(0.9));
        assert_eq!(t.get(ProductBand::Modalities, 0, 0), 3);
        assert_eq!(t.get(ProductBand::Class, 0, 1), NODATA);
        assert_eq!(t.get(ProductBand::Total, 0, 1), NODATA);
        assert_eq!(t.get(ProductBand::Modalities, 0, 1), 0);
    }

    #[test]
    fn the_margin_is_the_gap_between_the_two_highest_probabilities() {
        assert_eq!(margin_byte(&[0.1, 0.6, 0.3]), to_byte(0.3));
        assert_eq!(margin_byte(&[0.5, 0.5]), 0);
        assert_eq!(margin_byte(&[1.0, 0.0, 0.0]), 250);
        let b = product_bands(&BandMeanings::ensemble(3), true, true);
        assert_eq!(b.len(), ProductBand::ALL.len() + 3);
        assert_eq!(b.last().unwrap().name, MARGIN);
    }

    #[test]
    fn byte_encoding_round_trips_within_half_a_step() {
        for i in 0..=100 {
            let v = i as f32 / 100.0;
            let back = to_byte(v) as f64 * BYTE_SCALE;
            assert!((back - v as f64).abs() <= BYTE_SCALE / 2.0 + 1e-6, "{v}");
        }
    }
}
