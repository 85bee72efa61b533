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
}
