//! Per-pixel uncertainty from an ensemble: confidence, total, aleatoric, epistemic.
//!
//! With ensemble members m = 1..M giving class distributions p_m and their mean p̄:
//! total = H(p̄), aleatoric = mean_m H(p_m), epistemic = total - aleatoric (the mutual
//! information between the prediction and the member), each divided by ln K so that it
//! lies in 0..1. Confidence is max_k p̄_k.

/// Uncertainty summary of one pixel (all in 0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uncertainty {
    /// Maximum mean class probability.
    pub confidence: f32,
    /// Normalised expected entropy of the members.
    pub aleatoric: f32,
    /// Normalised mutual information.
    pub epistemic: f32,
    /// Normalised entropy of the mean.
    pub total: f32,
}

/// Entropy in nats of a distribution.
pub fn entropy(p: &[f32]) -> f32 {
    -p.iter()
        .filter(|&&v| v > 0.0)
        .map(|&v| v * v.ln())
        .sum::<f32>()
}

/// Summarises mean probabilities and the mean member entropy (nats) for K = `p.len()` classes.
pub fn summarise(mean_probs: &[f32], mean_member_entropy: f32) -> Uncertainty {
    let k = mean_probs.len().max(2) as f32;
    let norm = 1.0 / k.ln();
    let total = (entropy(mean_probs) * norm).clamp(0.0, 1.0);
    let aleatoric = (mean_member_entropy * norm).clamp(0.0, total);
    let confidence = mean_probs.iter().copied().fold(0.0, f32::max);
    Uncertainty {
        confidence,
        aleatoric,
        epistemic: (total - aleatoric).max(0.0),
        total,
    }
}

/// Quantises a 0..1 value to the product's byte encoding (scale [`BYTE_SCALE`], 0..=250).
#[inline]
pub fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) / BYTE_SCALE as f32).round() as u8
}

/// Writes one product pixel at (`r`, `c`) of `out` (`[band, row, col]`): band 0 the class
/// `ids[argmax p]` (ties to the lower index), bands 1-4 confidence, aleatoric, epistemic and
/// total uncertainty as bytes. `p` are mean class probabilities, `mean_member_entropy` in nats.
pub fn write_pixel(
    out: &mut ndarray::Array3<u8>,
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
    out[[0, r, c]] = ids[best];
    out[[1, r, c]] = to_byte(u.confidence);
    out[[2, r, c]] = to_byte(u.aleatoric);
    out[[3, r, c]] = to_byte(u.epistemic);
    out[[4, r, c]] = to_byte(u.total);
    best
}

/// Scale of the product's uncertainty bands: physical = byte * BYTE_SCALE.
pub const BYTE_SCALE: f64 = 0.004;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_uniform_is_ln_k() {
        assert!((entropy(&[0.25; 4]) - 4f32.ln()).abs() < 1e-6);
        assert_eq!(entropy(&[1.0, 0.0]), 0.0);
    }

    #[test]
    fn disagreeing_confident_members_are_epistemic() {
        // Two members: [1,0] and [0,1]; mean [0.5,0.5]; member entropies 0.
        let u = summarise(&[0.5, 0.5], 0.0);
        assert!((u.total - 1.0).abs() < 1e-6);
        assert_eq!(u.aleatoric, 0.0);
        assert!((u.epistemic - 1.0).abs() < 1e-6);
        assert_eq!(u.confidence, 0.5);
    }

    #[test]
    fn agreeing_uncertain_members_are_aleatoric() {
        let u = summarise(&[0.5, 0.5], 2f32.ln());
        assert!((u.aleatoric - 1.0).abs() < 1e-6);
        assert!(u.epistemic.abs() < 1e-6);
    }

    #[test]
    fn hand_computed_mutual_information() {
        // Members [0.9,0.1] and [0.5,0.5]: mean [0.7,0.3].
        let h = |p: f32| -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        let mean_ent = 0.5 * (h(0.9) + h(0.5));
        let u = summarise(&[0.7, 0.3], mean_ent);
        let ln2 = 2f32.ln();
        assert!((u.total - h(0.7) / ln2).abs() < 1e-6);
        assert!((u.epistemic - (h(0.7) - mean_ent) / ln2).abs() < 1e-6);
    }

    #[test]
    fn byte_encoding_round_trips_within_half_a_step() {
        for v in [0.0f32, 0.1234, 0.5, 0.999, 1.0] {
            assert!((to_byte(v) as f64 * BYTE_SCALE - v as f64).abs() <= BYTE_SCALE / 2.0 + 1e-9);
        }
        assert_eq!(to_byte(1.0), 250);
    }
}
