//! Temporal features of a season scene: each spectral index and SAR feature on every step of
//! the temporal grid (`NDVI_t00`, `vh_db_t03`, ...) followed by its statistics (`NDVI_p90`,
//! `vh_db_tmax`, ...; see [`crate::temporal::stats`]), then the number of valid optical and
//! SAR observations of the pixel (`obs_optical`, `obs_sar`). SAR features of the steps are
//! not speckle-filtered: a step's value is already a mean over dates.

use ndarray::{s, Array2, Array3, ArrayView2, Axis};

use super::sar::{Polarisation, SarFeature};
use super::{indices, TileInputs};
use crate::temporal::stats::{stats_image, STAT_NAMES};

/// Which temporal features a plan computes.
#[derive(Debug, Clone)]
pub struct TemporalPlan {
    centres: Vec<f64>,
    channels: Vec<String>,
    optical: Vec<bool>,
}

impl TemporalPlan {
    /// The plan for `indices` (name, band positions) and `sar` features on steps centred
    /// `centres` days after the season's start.
    pub fn new(indices: &[(String, Vec<usize>)], sar: &[SarFeature], centres: &[f64]) -> Self {
        let mut channels: Vec<String> = indices.iter().map(|(n, _)| n.clone()).collect();
        let mut optical = vec![true; channels.len()];
        channels.extend(sar.iter().map(|f| f.name().to_string()));
        optical.resize(channels.len(), false);
        TemporalPlan {
            centres: centres.to_vec(),
            channels,
            optical,
        }
    }

    fn per_channel(&self) -> usize {
        self.centres.len() + STAT_NAMES.len()
    }

    /// Feature names in output order.
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.channels {
            out.extend((0..self.centres.len()).map(|k| format!("{c}_t{k:02}")));
            out.extend(STAT_NAMES.iter().map(|s| format!("{c}_{s}")));
        }
        out.extend(["obs_optical".to_string(), "obs_sar".to_string()]);
        out
    }

    /// Whether each feature depends on the optical input.
    pub fn optical_mask(&self) -> Vec<bool> {
        self.optical
            .iter()
            .flat_map(|&o| std::iter::repeat_n(o, self.per_channel()))
            .chain([true, false])
            .collect()
    }

    /// The temporal features of a tile, `[feature, row, col]` (NaN where the season has no
    /// valid observation of the modality, and for inputs without a season).
    pub fn compute(
        &self,
        t: &TileInputs,
        idx: &[(String, Vec<usize>)],
        sar: &[SarFeature],
        refl: impl Fn(f32) -> f32,
        (h, w): (usize, usize),
    ) -> Array3<f32> {
        let n = self.centres.len();
        let nc = self.channels.len() * self.per_channel();
        let mut out = Array3::from_elem((nc + 2, h, w), f32::NAN);
        let Some(season) = &t.season else {
            return out;
        };
        let mut series = Array3::from_elem((self.channels.len() * n, h, w), f32::NAN);
        for k in 0..n {
            let r = season.optical_dn.index_axis(Axis(0), k).mapv(&refl);
            for (c, (name, pos)) in idx.iter().enumerate() {
                let views: Vec<ArrayView2<f32>> =
                    pos.iter().map(|&p| r.index_axis(Axis(0), p)).collect();
                if let Some(v) = indices::spectral_index(name, &views) {
                    series.index_axis_mut(Axis(0), c * n + k).assign(&v);
                }
            }
            let sar_k = season.sar_linear.index_axis(Axis(0), k);
            let band = |p: Polarisation| -> Option<Array2<f32>> {
                let i = t.sar_pols.iter().position(|&q| q == p)?;
                Some(sar_k.index_axis(Axis(0), i).to_owned())
            };
            let (vv, vh) = (band(Polarisation::Vv), band(Polarisation::Vh));
            for (j, f) in sar.iter().enumerate() {
                if let Some(v) = f.compute(vv.as_ref(), vh.as_ref()) {
                    series
                        .index_axis_mut(Axis(0), (idx.len() + j) * n + k)
                        .assign(&v);
                }
            }
        }
        for c in 0..self.channels.len() {
            let sc = series.slice(s![c * n..(c + 1) * n, .., ..]);
            let o = c * self.per_channel();
            out.slice_mut(s![o..o + n, .., ..]).assign(&sc);
            out.slice_mut(s![o + n..o + self.per_channel(), .., ..])
                .assign(&stats_image(sc, &self.centres));
        }
        out.index_axis_mut(Axis(0), nc)
            .assign(&season.n_optical.mapv(f32::from));
        out.index_axis_mut(Axis(0), nc + 1)
            .assign(&season.n_sar.mapv(f32::from));
        out
    }
}
