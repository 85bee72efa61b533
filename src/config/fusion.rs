//! The fusion strategies of learned methods: the `fusion` vocabulary of the pipeline file.

use serde::{Deserialize, Serialize};

/// How the two modalities are fused. Pipeline names are kebab-case (`learned-kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fusion {
    /// Stacked inputs, one encoder.
    Early,
    /// Per-branch heads only, combined by precision weighting.
    Late,
    /// Latent vectors concatenated, mixed by a 1x1 convolution.
    Concat,
    /// Latent vectors added.
    Add,
    /// Low-rank multiplicative interaction of the latent vectors.
    Bilinear,
    /// Gated attention: a per-pixel, per-channel gate chooses between the branches.
    Attention,
    /// A small network predicts a normalised k x k x 2 kernel per pixel, applied to both
    /// branches' neighbourhoods.
    LearnedKernel,
    /// The same operator with hand-set weights (spatial distance and feature similarity).
    FixedKernel,
    /// Optical branch only.
    OpticalOnly,
    /// SAR branch only.
    SarOnly,
}

impl Fusion {
    /// Every strategy, in the order the documentation lists them.
    pub const ALL: [Fusion; 10] = [
        Fusion::Early,
        Fusion::Late,
        Fusion::Concat,
        Fusion::Add,
        Fusion::Bilinear,
        Fusion::Attention,
        Fusion::LearnedKernel,
        Fusion::FixedKernel,
        Fusion::OpticalOnly,
        Fusion::SarOnly,
    ];

    /// The pipeline name (`learned-kernel`).
    pub fn name(self) -> &'static str {
        match self {
            Fusion::Early => "early",
            Fusion::Late => "late",
            Fusion::Concat => "concat",
            Fusion::Add => "add",
            Fusion::Bilinear => "bilinear",
            Fusion::Attention => "attention",
            Fusion::LearnedKernel => "learned-kernel",
            Fusion::FixedKernel => "fixed-kernel",
            Fusion::OpticalOnly => "optical-only",
            Fusion::SarOnly => "sar-only",
        }
    }

    /// Parses a pipeline name.
    pub fn from_name(s: &str) -> Option<Fusion> {
        Fusion::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Every pipeline name, comma-separated (for messages).
    pub fn names() -> String {
        Fusion::ALL.map(Fusion::name).join(", ")
    }

    /// Whether the strategy has an optical and a SAR branch.
    pub fn two_branches(self) -> bool {
        !matches!(self, Fusion::Early | Fusion::OpticalOnly | Fusion::SarOnly)
    }
}

/// Model files (`<method>.json`, format `geofuse-learned-2`) store the strategy under its
/// variant name (`LearnedKernel`); kept so that saved models and their hashes stay valid.
pub mod model_name {
    use super::Fusion;

    /// Writes the variant name.
    pub fn serialize<S: serde::Serializer>(f: &Fusion, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{f:?}"))
    }

    /// Reads a variant name (or a pipeline name).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Fusion, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Fusion::ALL
            .into_iter()
            .find(|f| format!("{f:?}") == s || f.name() == s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown fusion `{s}`")))
    }
}
