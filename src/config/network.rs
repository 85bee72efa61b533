//! The settings of a learned method (`kind = "learned"`) and their vocabulary: encoders,
//! learning-rate schedules, temporal encoders, patch sampling. The networks that read them
//! live in [`crate::learned`].

use serde::{Deserialize, Serialize};

pub use super::fusion::Fusion;

/// Largest window radius `align` accepts.
pub const MAX_ALIGN: usize = 32;

/// The encoder of each modality branch (the pipeline's `encoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// Three convolutions, receptive radius `crate::learned::model::ENCODER_RADIUS` (9 x 9 pixels).
    #[default]
    Small,
    /// The multi-scale encoder-decoder of `crate::learned::unet` (receptive radius
    /// `crate::learned::unet::UNET_RADIUS`).
    Unet,
}

impl EncoderKind {
    /// Whether this is the small encoder (the default).
    pub fn is_small(&self) -> bool {
        *self == EncoderKind::Small
    }
}

/// The learning rate over the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same rate every epoch.
    #[default]
    Constant,
    /// Cosine decay from the peak rate at the first epoch to 1 % of it at the last.
    Cosine,
}

/// Serde helper shared with the pipeline settings and the training configuration: a rate that is off.
pub(crate) fn is_off(rate: &f64) -> bool {
    *rate == 0.0
}

/// Serde helper shared with the pipeline settings (`method`).
pub(crate) fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Serde helper shared with the pipeline settings (`method`).
pub(crate) fn is_no(b: &bool) -> bool {
    !*b
}

/// Serde helper shared with the pipeline settings (`method`).
pub(crate) fn yes() -> bool {
    true
}

/// Serde helper shared with the pipeline settings (`method`).
pub(crate) fn is_yes(b: &bool) -> bool {
    *b
}

/// Network settings (`kind = "learned"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// Fusion strategy (default: the method's name).
    pub fusion: Fusion,
    /// Latent channels per encoder.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Maximum training epochs.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation score.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// Patch side in pixels (capped by the split block size).
    #[serde(default = "default_patch")]
    pub patch: usize,
    /// Training patches drawn afresh from each training scene for every epoch (so more
    /// scenes, and more epochs, mean more of the training area seen).
    #[serde(default = "default_patches")]
    pub patches: usize,
    /// Patches per optimiser step.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Peak learning rate (AdamW).
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Learning-rate schedule: `cosine` (from the peak to 1 % over `epochs`) or `constant`.
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    /// Decoupled weight decay (AdamW); 0 for none.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Probability of dropping a whole modality for a training patch.
    #[serde(default = "default_modality_dropout")]
    pub modality_dropout: f64,
    /// Radiometric augmentation `[gain, db]`: each training patch's reflectances times a gain
    /// in [1 - gain, 1 + gain], its backscatter plus an offset in [-db, db] dB (season,
    /// illumination, soil moisture between scenes). Default none.
    #[serde(default, skip_serializing_if = "no_jitter")]
    pub radiometric_jitter: (f64, f64),
    /// Date dropout (seasons with `temporal = "ltae"`): each observed optical step of a
    /// training patch is hidden, over the whole patch as a cloudy date would be, with this
    /// probability, so the network sees seasons with fewer clear dates than its training
    /// scenes hold. Kept in the Monte Carlo passes at inference (each pass hides each step
    /// with this probability, the same steps for the whole scene). Default 0 (off).
    #[serde(default, skip_serializing_if = "is_off")]
    pub date_dropout: f64,
    /// Dropout rate on the heads' hidden layer, at training and in the Monte Carlo passes
    /// (epistemic uncertainty); 0 disables Monte Carlo dropout.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Monte Carlo dropout passes at inference (epistemic uncertainty). An inference setting:
    /// it also applies to a model loaded with `model`.
    #[serde(default = "default_mc")]
    pub mc_passes: usize,
    /// With `date_dropout`: keep it in the Monte Carlo passes (default true). False runs the
    /// network once on every clear date, `mc_passes` times faster, and the epistemic band
    /// then no longer says how much a prediction hangs on which dates were clear. An
    /// inference setting, like `mc_passes`.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub mc_dates: bool,
    /// Kernel fusion: kernel side (odd).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// Also feed the hand-crafted features (`[features]`) to the network, optical ones to the
    /// optical branch and SAR ones to the SAR branch (hybrid).
    #[serde(default)]
    pub hybrid: bool,
    /// Whether the network sees the raw bands (default true). `raw_inputs = false` with
    /// `hybrid = true` feeds the hand-crafted features alone (presence flags still come from
    /// the raw bands).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub raw_inputs: bool,
    /// A pixel path beside each encoder (a 1 x 1 convolution of the input added to its
    /// output): parcel edges stay sharp. Default false.
    #[serde(default, skip_serializing_if = "is_no")]
    pub pixel_path: bool,
    /// How training patches are drawn: `uniform` (default: anywhere in the training blocks)
    /// or `class-balanced` (from four times as many candidates, favouring those that hold
    /// rare classes, so every class carries the same weight).
    #[serde(default, skip_serializing_if = "Sampling::is_uniform")]
    pub sampling: Sampling,
    /// Encoder of each branch: `small` (three convolutions, 9 x 9 pixels) or `unet` (the
    /// multi-scale encoder-decoder, receptive field 113 x 113 pixels). Left out of the
    /// pipeline's hash when small, so earlier runs' models are reused.
    #[serde(default, skip_serializing_if = "EncoderKind::is_small")]
    pub encoder: EncoderKind,
    /// Learned kernel only: window radius in pixels of the registration cue (the optical/SAR
    /// edge cross-correlation at each kernel offset, `crate::learned::align`) by which the SAR latent
    /// is resampled onto the optical grid, for residual S1/S2 misregistration; 0 (the
    /// default, left out of the hash) for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub align: usize,
    /// Season scenes only: how the network sees the steps. `stack` (the default, left out of
    /// the hash): every band at every step is an input channel, gaps filled. `ltae`: a
    /// temporal attention encoder per modality ([`crate::learned::temporal`]) attends to the observed
    /// steps of each pixel only, then the spatial encoders and the fusion work on its latent.
    #[serde(default, skip_serializing_if = "TemporalKind::is_stack")]
    pub temporal: TemporalKind,
}

/// How a season network sees the steps (`temporal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TemporalKind {
    /// Every step of every band is a channel.
    #[default]
    Stack,
    /// Temporal attention encoders, masked to the observed steps.
    Ltae,
}

impl TemporalKind {
    fn is_stack(&self) -> bool {
        *self == TemporalKind::Stack
    }
}

/// Attention heads of a temporal encoder (its latent has `width` channels).
pub const TEMPORAL_HEADS: usize = 4;

/// How training patches are drawn (`sampling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Uniformly inside the training blocks.
    #[default]
    Uniform,
    /// Class-balanced ([`crate::learned::scene_input::class_balanced`]).
    ClassBalanced,
}

impl Sampling {
    fn is_uniform(&self) -> bool {
        *self == Sampling::Uniform
    }
}

fn default_width() -> usize {
    16
}
fn default_epochs() -> usize {
    40
}
fn default_patience() -> usize {
    8
}
fn default_patch() -> usize {
    32
}
fn default_patches() -> usize {
    256
}
fn default_batch() -> usize {
    16
}
fn default_lr() -> f64 {
    3e-3
}
fn default_schedule() -> Schedule {
    Schedule::Cosine
}
fn default_weight_decay() -> f64 {
    1e-4
}
fn no_jitter(j: &(f64, f64)) -> bool {
    *j == (0.0, 0.0)
}
fn default_modality_dropout() -> f64 {
    0.2
}
fn default_dropout() -> f64 {
    0.5
}
fn default_mc() -> usize {
    16
}
fn default_kernel() -> usize {
    3
}

impl NetworkSettings {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.width == 0
            || self.epochs == 0
            || self.batch == 0
            || self.patches == 0
            || self.mc_passes == 0
            || self.patch < 8
        {
            return Err(
                "width, epochs, batch, patches, mc_passes must be positive and patch >= 8".into(),
            );
        }
        if self.kernel.is_multiple_of(2) || self.kernel > 7 {
            return Err("kernel must be odd and <= 7".into());
        }
        if !(0.0..0.9).contains(&self.dropout) || !(0.0..0.5).contains(&self.modality_dropout) {
            return Err("dropout must be in [0, 0.9) and modality_dropout in [0, 0.5)".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return Err("learning_rate must be in (0, 1)".into());
        }
        let (g, d) = self.radiometric_jitter;
        if !(0.0..0.5).contains(&g) || !(0.0..10.0).contains(&d) {
            return Err(
                "radiometric_jitter = [gain, db] needs gain in [0, 0.5) and db in [0, 10)".into(),
            );
        }
        if !(0.0..0.9).contains(&self.date_dropout) {
            return Err("date_dropout must be in [0, 0.9)".into());
        }
        if self.date_dropout > 0.0 && self.temporal != TemporalKind::Ltae {
            return Err(
                "date_dropout hides steps from temporal attention; it needs temporal = \"ltae\""
                    .into(),
            );
        }
        if !(0.0..1.0).contains(&self.weight_decay) {
            return Err("weight_decay must be in [0, 1)".into());
        }
        if self.align > MAX_ALIGN {
            return Err(format!("align must be at most {}", MAX_ALIGN));
        }
        if self.align > 0 && self.fusion != Fusion::LearnedKernel {
            return Err("align applies to fusion = \"learned-kernel\" only; remove it".into());
        }
        if self.temporal == TemporalKind::Ltae && !self.width.is_multiple_of(TEMPORAL_HEADS) {
            return Err(format!("temporal = \"ltae\" needs a width that is a multiple of {TEMPORAL_HEADS} (its attention heads)"));
        }
        if self.temporal == TemporalKind::Ltae && !self.raw_inputs {
            return Err("temporal = \"ltae\" attends to the raw bands of each step; drop raw_inputs = false".into());
        }
        if !self.raw_inputs && !self.hybrid {
            return Err("raw_inputs = false leaves the network no input; set hybrid = true (the hand-crafted features) or drop raw_inputs".into());
        }
        Ok(())
    }
}
