//! Uncertainty quality on held-out pixels: expected calibration error (15 bins) with
//! reliability-diagram data, AUROC of an uncertainty band for predicting errors, and accuracy
//! and epistemic uncertainty inside vs outside masked (missing-modality) pixels.
//!
//! Everything is accumulated in fixed-size histograms (the product's byte levels), so memory
//! does not grow with the scene and tiles merge exactly.

use serde::Serialize;

use crate::product::{ProductBand, ProductTile, BYTE_SCALE};

/// ECE bins.
pub const ECE_BINS: usize = 15;
const LEVELS: usize = 251; // byte values 0..=250 of the product's uncertainty bands

/// Streaming accumulator.
#[derive(Debug, Clone)]
pub struct UncertaintyStats {
    bin_n: [u64; ECE_BINS],
    bin_conf: [f64; ECE_BINS],
    bin_ok: [u64; ECE_BINS],
    total_err: Vec<u64>,
    total_ok: Vec<u64>,
    epi_err: Vec<u64>,
    epi_ok: Vec<u64>,
    epi_masked: Vec<u64>,
    epi_clear: Vec<u64>,
    masked: (u64, u64),
    clear: (u64, u64),
    by_modalities: [(u64, u64); 4],
}

impl Default for UncertaintyStats {
    fn default() -> Self {
        UncertaintyStats {
            bin_n: [0; ECE_BINS],
            bin_conf: [0.0; ECE_BINS],
            bin_ok: [0; ECE_BINS],
            total_err: vec![0; LEVELS],
            total_ok: vec![0; LEVELS],
            epi_err: vec![0; LEVELS],
            epi_ok: vec![0; LEVELS],
            epi_masked: vec![0; LEVELS],
            epi_clear: vec![0; LEVELS],
            masked: (0, 0),
            clear: (0, 0),
            by_modalities: [(0, 0); 4],
        }
    }
}

/// One reliability-diagram bin.
#[derive(Debug, Clone, Serialize)]
pub struct ReliabilityBin {
    /// Lower edge of the confidence bin.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Pixels in the bin.
    pub count: u64,
    /// Mean confidence.
    pub confidence: f64,
    /// Accuracy.
    pub accuracy: f64,
}

/// Area under the ROC curve for "higher score means error", from score histograms (ties count
/// one half; the Mann-Whitney statistic). None when either class is empty.
pub fn auroc(err: &[u64], ok: &[u64]) -> Option<f64> {
    let (ne, no): (u64, u64) = (err.iter().sum(), ok.iter().sum());
    if ne == 0 || no == 0 {
        return None;
    }
    let mut below_ok = 0u64; // correct pixels with a lower score
    let mut s = 0f64;
    for (e, o) in err.iter().zip(ok) {
        s += *e as f64 * (below_ok as f64 + 0.5 * *o as f64);
        below_ok += o;
    }
    Some(s / (ne as f64 * no as f64))
}

/// A histogram without its trailing empty levels.
fn trimmed(h: &[u64]) -> &[u64] {
    let n = h.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
    &h[..n]
}

/// Risk-coverage curve from histograms of an uncertainty score (index = level) of correct
/// and wrong pixels: dropping the most uncertain first, (share of pixels kept, accuracy of
/// the kept pixels) at every level that holds pixels.
pub fn risk_coverage(correct: &[u64], wrong: &[u64]) -> Vec<(f64, f64)> {
    let n: u64 = correct.iter().chain(wrong).sum();
    let (mut kept, mut ok, mut out) = (0u64, 0u64, Vec::new());
    for i in 0..correct.len().max(wrong.len()) {
        let (c, w) = (
            correct.get(i).copied().unwrap_or(0),
            wrong.get(i).copied().unwrap_or(0),
        );
        if c + w == 0 {
            continue;
        }
        kept += c + w;
        ok += c;
        out.push((kept as f64 / n as f64, ok as f64 / kept as f64));
    }
    out
}

fn median(h: &[u64]) -> Option<f64> {
    let n: u64 = h.iter().sum();
    if n == 0 {
        return None;
    }
    let mut acc = 0;
    for (v, c) in h.iter().enumerate() {
        acc += c;
        if 2 * acc >= n {
            return Some(v as f64);
        }
    }
    None
}

impl UncertaintyStats {
    /// Adds pixel (`r`, `c`) of a product tile: its confidence, total and epistemic bands and
    /// modalities, and whether its class is right.
    pub fn add_product_pixel(&mut self, t: &ProductTile, r: usize, c: usize, correct: bool) {
        let confidence = (t.get(ProductBand::Confidence, r, c) as f64 * BYTE_SCALE) as f32;
        self.add(
            confidence,
            correct,
            t.get(ProductBand::Total, r, c),
            t.get(ProductBand::Epistemic, r, c),
            t.get(ProductBand::Modalities, r, c),
        );
    }

    /// Adds a held-out pixel: its confidence (0..1), whether the prediction is right, its
    /// total and epistemic uncertainty as product bytes (0..=250), and the modalities present
    /// there (the product's `modalities` code: bit 1 optical, bit 2 SAR; masked = not both).
    pub fn add(
        &mut self,
        confidence: f32,
        correct: bool,
        total: u8,
        epistemic: u8,
        modalities: u8,
    ) {
        let masked = modalities & 3 != 3;
        let m = &mut self.by_modalities[(modalities & 3) as usize];
        m.0 += 1;
        m.1 += correct as u64;
        let b = ((confidence as f64 * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        self.bin_n[b] += 1;
        self.bin_conf[b] += confidence as f64;
        self.bin_ok[b] += correct as u64;
        let (t, e) = (
            (total as usize).min(LEVELS - 1),
            (epistemic as usize).min(LEVELS - 1),
        );
        if correct {
            self.total_ok[t] += 1;
            self.epi_ok[e] += 1;
        } else {
            self.total_err[t] += 1;
            self.epi_err[e] += 1;
        }
        let slot = if masked {
            &mut self.masked
        } else {
            &mut self.clear
        };
        slot.0 += 1;
        slot.1 += correct as u64;
        if masked {
            self.epi_masked[e] += 1;
        } else {
            self.epi_clear[e] += 1;
        }
    }

    /// Adds another accumulator.
    pub fn merge(&mut self, o: &UncertaintyStats) {
        for i in 0..ECE_BINS {
            self.bin_n[i] += o.bin_n[i];
            self.bin_conf[i] += o.bin_conf[i];
            self.bin_ok[i] += o.bin_ok[i];
        }
        for (a, b) in [
            (&mut self.total_err, &o.total_err),
            (&mut self.total_ok, &o.total_ok),
            (&mut self.epi_err, &o.epi_err),
            (&mut self.epi_ok, &o.epi_ok),
            (&mut self.epi_masked, &o.epi_masked),
            (&mut self.epi_clear, &o.epi_clear),
        ] {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.masked.0 += o.masked.0;
        self.masked.1 += o.masked.1;
        self.clear.0 += o.clear.0;
        self.clear.1 += o.clear.1;
        for (a, b) in self.by_modalities.iter_mut().zip(&o.by_modalities) {
            a.0 += b.0;
            a.1 += b.1;
        }
    }

    /// Expected calibration error: sum over bins of |accuracy - confidence| weighted by the
    /// bin's share of pixels.
    pub fn ece(&self) -> Option<f64> {
        let n: u64 = self.bin_n.iter().sum();
        (n > 0).then(|| {
            (0..ECE_BINS)
                .filter(|&i| self.bin_n[i] > 0)
                .map(|i| {
                    let c = self.bin_n[i] as f64;
                    (self.bin_ok[i] as f64 / c - self.bin_conf[i] / c).abs() * c / n as f64
                })
                .sum()
        })
    }

    /// Reliability-diagram data.
    pub fn reliability(&self) -> Vec<ReliabilityBin> {
        (0..ECE_BINS)
            .map(|i| {
                let c = self.bin_n[i] as f64;
                ReliabilityBin {
                    lo: i as f64 / ECE_BINS as f64,
                    hi: (i + 1) as f64 / ECE_BINS as f64,
                    count: self.bin_n[i],
                    confidence: if c > 0.0 { self.bin_conf[i] / c } else { 0.0 },
                    accuracy: if c > 0.0 {
                        self.bin_ok[i] as f64 / c
                    } else {
                        0.0
                    },
                }
            })
            .collect()
    }

    /// The metrics docs/design.md names, as JSON fields (absent values are null).
    pub fn to_json(&self) -> serde_json::Value {
        let acc = |(n, ok): (u64, u64)| (n > 0).then(|| ok as f64 / n as f64);
        let (med_m, med_c) = (median(&self.epi_masked), median(&self.epi_clear));
        let ratio = match (med_m, med_c) {
            (Some(m), Some(c)) => Some(m.max(0.5) / c.max(0.5)),
            _ => None,
        };
        serde_json::json!({
            "ece": self.ece(),
            "auroc_total": auroc(&self.total_err, &self.total_ok),
            "auroc_epistemic": auroc(&self.epi_err, &self.epi_ok),
            "masked_accuracy": acc(self.masked),
            "clear_accuracy": acc(self.clear),
            "masked_pixels": self.masked.0,
            "masked_epistemic_ratio": ratio,
            "epistemic_median_masked": med_m.map(|v| v * BYTE_SCALE),
            "epistemic_median_clear": med_c.map(|v| v * BYTE_SCALE),
            "sar_gap_accuracy": acc(self.by_modalities[1]),
            "sar_gap_pixels": self.by_modalities[1].0,
            "cloud_accuracy": acc(self.by_modalities[2]),
            "cloud_pixels": self.by_modalities[2].0,
            "reliability": self.reliability(),
            "total_uncertainty_histogram": {
                "correct": trimmed(&self.total_ok),
                "wrong": trimmed(&self.total_err),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_coverage_by_hand() {
        // Level 0: 3 right; level 1: 1 right, 1 wrong; level 5: 1 wrong.
        let rc = risk_coverage(&[3, 1], &[0, 1, 0, 0, 0, 1]);
        assert_eq!(rc, vec![(0.5, 1.0), (5.0 / 6.0, 0.8), (1.0, 4.0 / 6.0)]);
        assert!(risk_coverage(&[], &[]).is_empty());
        assert_eq!(trimmed(&[1, 0, 2, 0, 0]), &[1, 0, 2]);
    }

    #[test]
    fn ece_of_hand_computed_bins() {
        // Bin [0.6, 0.667): 4 pixels at confidence 0.65, 2 correct (accuracy 0.5, gap 0.15).
        // Bin [0.933, 1]: 6 pixels at confidence 0.95, 6 correct (gap 0.05).
        let mut s = UncertaintyStats::default();
        for i in 0..4 {
            s.add(0.65, i < 2, 0, 0, 3);
        }
        for _ in 0..6 {
            s.add(0.95, true, 0, 0, 3);
        }
        let expect = 0.4 * 0.15 + 0.6 * 0.05;
        assert!((s.ece().unwrap() - expect).abs() < 1e-6, "{:?}", s.ece());
    }

    #[test]
    fn auroc_of_separable_tied_and_reversed_scores() {
        assert_eq!(auroc(&[0, 0, 3], &[2, 0, 0]), Some(1.0));
        assert_eq!(auroc(&[3, 0, 0], &[0, 0, 2]), Some(0.0));
        assert_eq!(auroc(&[0, 4, 0], &[0, 4, 0]), Some(0.5));
        // err scores {1, 2}, ok scores {0, 1}: pairs (1>0)=1, (1=1)=0.5, (2>0)=1, (2>1)=1 -> 3.5/4
        assert_eq!(auroc(&[0, 1, 1], &[1, 1, 0]), Some(0.875));
        assert_eq!(auroc(&[0, 0], &[1, 1]), None);
    }

    #[test]
    fn masked_statistics_and_merge() {
        let mut a = UncertaintyStats::default();
        let mut b = UncertaintyStats::default();
        a.add(0.9, true, 10, 40, 1);
        a.add(0.9, false, 10, 60, 2);
        b.add(0.9, true, 10, 10, 3);
        b.add(0.9, true, 10, 10, 3);
        a.merge(&b);
        let j = a.to_json();
        assert_eq!(j["masked_accuracy"], 0.5);
        assert_eq!(j["clear_accuracy"], 1.0);
        assert_eq!(j["masked_epistemic_ratio"], 4.0); // median 40 over median 10
        assert_eq!(j["sar_gap_accuracy"], 1.0);
        assert_eq!(j["cloud_accuracy"], 0.0);
        assert_eq!(j["sar_gap_pixels"], 1);
        assert_eq!(j["cloud_pixels"], 1);
        assert_eq!(j["reliability"].as_array().unwrap().len(), ECE_BINS);
    }
}
