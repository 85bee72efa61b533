//! The feature plan: which hand-crafted features a pipeline's `[features]` asks for, in stack
//! order, and how one tile's stack is computed from the kernels of [`crate::features`].

use ndarray::{s, Array3, ArrayView2, Axis};

use crate::config::{FeatureConfig, GlcmConfig};
use crate::features::glcm::{self, GlcmParams};
use crate::features::{indices, sar, temporal, GlcmSource, Polarisation, TileInputs};

/// One resolved GLCM block.
#[derive(Debug, Clone)]
pub struct GlcmBlock {
    /// Source band.
    pub source: GlcmSource,
    /// Configured name of the source band.
    pub band: String,
    /// Parameters.
    pub config: GlcmConfig,
    /// Quantisation range (source units).
    pub range: (f64, f64),
    /// Indices into [`glcm::FEATURE_NAMES`] that are output.
    pub features: Vec<usize>,
}

/// The ordered feature stack and how to compute it.
#[derive(Debug, Clone)]
pub struct FeaturePlan {
    /// Feature names, in stack order.
    pub names: Vec<String>,
    /// Halo in pixels that a tile needs for its core to be exact.
    pub halo: usize,
    optical_bands: bool,
    n_optical: usize,
    scale: f32,
    offset: f32,
    indices: Vec<(String, Vec<usize>)>,
    sar: Vec<sar::SarFeature>,
    speckle: crate::config::SpeckleConfig,
    glcm: Vec<GlcmBlock>,
    temporal: Option<temporal::TemporalPlan>,
}

/// Halo needed by a feature configuration: the widest window any stage reads.
pub fn halo_for(cfg: &FeatureConfig) -> usize {
    let speckle = if cfg.speckle.filter == sar::SpeckleFilter::None {
        0
    } else {
        cfg.speckle.radius
    };
    let texture = cfg
        .glcm
        .iter()
        .map(|g| {
            let reach = g
                .offsets
                .iter()
                .map(|o| o[0].unsigned_abs().max(o[1].unsigned_abs()))
                .max()
                .unwrap_or(0);
            g.radius + reach as usize
        })
        .max()
        .unwrap_or(0);
    speckle.max(texture)
}

impl FeaturePlan {
    /// Builds the plan; `glcm_ranges` gives the quantisation range of each GLCM block.
    pub fn new(
        cfg: &FeatureConfig,
        band_names: &[String],
        scale: f64,
        offset: f64,
        glcm_ranges: &[(f64, f64)],
    ) -> Self {
        let mut names = Vec::new();
        if cfg.optical_bands {
            names.extend(band_names.iter().map(|b| format!("refl_{b}")));
        }
        let mut indices = Vec::new();
        for name in &cfg.indices {
            let pos = indices::index_band_positions(name, band_names).unwrap_or_default();
            indices.push((name.to_ascii_uppercase(), pos));
            names.push(name.to_ascii_uppercase());
        }
        let filter = cfg.speckle.filter;
        for f in &cfg.sar {
            names.push(if filter == sar::SpeckleFilter::None {
                f.name().to_string()
            } else {
                format!("{}_{}", f.name(), filter.name())
            });
        }
        let mut glcm = Vec::new();
        for (g, range) in cfg.glcm.iter().zip(glcm_ranges) {
            let source = GlcmSource::resolve(&g.band, band_names).unwrap_or(GlcmSource::Vv);
            let features: Vec<usize> = match &g.features {
                Some(list) => list
                    .iter()
                    .filter_map(|f| glcm::FEATURE_NAMES.iter().position(|n| n == f))
                    .collect(),
                None => (0..glcm::FEATURE_NAMES.len()).collect(),
            };
            let groups: Vec<String> = if g.average {
                vec!["avg".into()]
            } else {
                g.offsets
                    .iter()
                    .map(|o| format!("dx{}dy{}", o[0], o[1]))
                    .collect()
            };
            for grp in &groups {
                for &f in &features {
                    names.push(format!(
                        "glcm_{}_{}_{}_{}",
                        g.band,
                        glcm::FEATURE_NAMES[f],
                        grp,
                        g.definitions.name()
                    ));
                }
            }
            glcm.push(GlcmBlock {
                source,
                band: g.band.clone(),
                config: g.clone(),
                range: *range,
                features,
            });
        }
        FeaturePlan {
            names,
            halo: halo_for(cfg),
            optical_bands: cfg.optical_bands,
            n_optical: band_names.len(),
            scale: scale as f32,
            offset: offset as f32,
            indices,
            sar: cfg.sar.clone(),
            speckle: cfg.speckle.clone(),
            glcm,
            temporal: None,
        }
    }

    /// Adds the temporal features of a season whose steps are centred `centres` days after
    /// its start: each index and SAR feature on every step, then its statistics.
    pub fn with_season(mut self, centres: &[f64]) -> Self {
        let t = temporal::TemporalPlan::new(&self.indices, &self.sar, centres);
        self.names.extend(t.names());
        self.temporal = Some(t);
        self
    }

    /// GLCM blocks of the plan.
    pub fn glcm_blocks(&self) -> &[GlcmBlock] {
        &self.glcm
    }

    /// Names of the features that depend on the optical input (the rest depend on SAR).
    pub fn optical_feature_mask(&self) -> Vec<bool> {
        let mut m = Vec::new();
        if self.optical_bands {
            m.extend(std::iter::repeat_n(true, self.n_optical));
        }
        m.extend(std::iter::repeat_n(true, self.indices.len()));
        m.extend(std::iter::repeat_n(false, self.sar.len()));
        let glcm_mask = self.glcm.iter().flat_map(|g| {
            let groups = if g.config.average {
                1
            } else {
                g.config.offsets.len()
            };
            let opt = matches!(g.source, GlcmSource::Optical(_));
            std::iter::repeat_n(opt, groups * g.features.len())
        });
        m.extend(glcm_mask);
        if let Some(t) = &self.temporal {
            m.extend(t.optical_mask());
        }
        m
    }

    /// Computes the feature stack `[feature, row, col]` of a tile (halo included). NaN marks
    /// a missing value (nodata input, masked optical, 0/0).
    pub fn compute(&self, t: &TileInputs) -> Array3<f32> {
        let (_, h, w) = t.optical_dn.dim();
        let mut out = Array3::<f32>::from_elem((self.names.len(), h, w), f32::NAN);
        let mut k = 0;
        let refl = t.optical_dn.mapv(|v| v * self.scale + self.offset);
        if self.optical_bands {
            for b in 0..self.n_optical {
                out.index_axis_mut(Axis(0), k)
                    .assign(&refl.index_axis(Axis(0), b));
                k += 1;
            }
        }
        for (name, pos) in &self.indices {
            let views: Vec<ArrayView2<f32>> =
                pos.iter().map(|&p| refl.index_axis(Axis(0), p)).collect();
            if let Some(v) = indices::spectral_index(name, &views) {
                out.index_axis_mut(Axis(0), k).assign(&v);
            }
            k += 1;
        }
        if !self.sar.is_empty() {
            let sp = &self.speckle;
            let filt = |p: Polarisation| {
                t.sar_band(p)
                    .map(|b| sp.filter.apply(b, sp.radius, sp.looks))
            };
            let (vv, vh) = (filt(Polarisation::Vv), filt(Polarisation::Vh));
            for f in &self.sar {
                if let Some(v) = f.compute(vv.as_ref(), vh.as_ref()) {
                    out.index_axis_mut(Axis(0), k).assign(&v);
                }
                k += 1;
            }
        }
        for g in &self.glcm {
            let defs = g.config.definitions;
            let img = g.source.image(t);
            let q = glcm::quantise(img.view(), g.range.0, g.range.1, g.config.levels, defs);
            let per_offset: Vec<Array3<f32>> = g
                .config
                .offsets
                .iter()
                .map(|o| {
                    let p = GlcmParams {
                        radius: g.config.radius,
                        offset: (o[0], o[1]),
                        levels: g.config.levels,
                        definitions: defs,
                    };
                    glcm::glcm_features(q.view(), &p)
                })
                .collect();
            if g.config.average {
                let n = per_offset.len() as f32;
                for &f in &g.features {
                    let mut acc = per_offset[0].index_axis(Axis(0), f).to_owned();
                    for o in &per_offset[1..] {
                        acc += &o.index_axis(Axis(0), f);
                    }
                    acc.mapv_inplace(|v| v / n);
                    out.index_axis_mut(Axis(0), k).assign(&acc);
                    k += 1;
                }
            } else {
                for o in &per_offset {
                    for &f in &g.features {
                        out.index_axis_mut(Axis(0), k)
                            .assign(&o.index_axis(Axis(0), f));
                        k += 1;
                    }
                }
            }
        }
        if let Some(tp) = &self.temporal {
            let refl = |x: f32| x * self.scale + self.offset;
            let f = tp.compute(t, &self.indices, &self.sar, refl, (h, w));
            out.slice_mut(s![k.., .., ..]).assign(&f);
            k += f.shape()[0];
        }
        debug_assert_eq!(k, self.names.len());
        out
    }
}
