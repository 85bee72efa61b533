//! Learned encoders and fusion (burn). The only module that uses burn types; the rest of
//! geofuse talks to it through ndarray arrays.
//!
//! - `fusion`: the fusion strategies (the pipeline's `fusion` vocabulary).
//! - `align`: registration of the SAR latent onto the optical grid (the learned kernel's
//!   `align`).
//! - `model`: encoders, fusion operators, heteroscedastic heads (burn modules).
//! - [`LearnedModel`]: a trained network with its metadata; by concern: `input`
//!   (normalisation, input assembly, patches, batches), `train` (loss, modality dropout,
//!   early stopping), `predict` (Monte Carlo dropout passes, predictive distribution),
//!   `calibrate` (temperature scaling), `store` (saving, loading, hashes).
//! - `native`: CPU inference on geofuse's own kernels (the weights copied from burn).
//! - `native_train` (with `grad_conv`, `grad_ops`, `grad_loss`, `train_encoder`,
//!   `train_fusion`): CPU training steps on geofuse's own forward and backward passes, the
//!   gradients handed to burn's optimiser.
//! - [`runtime`]: the compute device (`cpu` = the native kernels for training and inference,
//!   burn's Flex backend where they do not reach (temporal encoders, `align`); `cpu-burn` =
//!   burn's Flex backend for everything; `wgpu` = GPU through wgpu).
//! - [`scene_input`]: raw band windows and training patches from a scene.
//! - `method`: [`NetworkMethod`], the learned kind behind `crate::method`.

pub(crate) mod align;
mod calibrate;
mod grad_conv;
mod grad_loss;
mod grad_ops;
pub(crate) use crate::config::fusion;
mod input;
pub(crate) mod method;
pub(crate) mod model;
pub(crate) mod native;
mod native_temporal;
mod native_train;
mod native_unet;
mod predict;
pub mod runtime;
pub mod scene_input;
mod season_cache;
mod store;
pub mod temporal;
mod train;
mod train_encoder;
mod train_fusion;
pub(crate) mod unet;

pub use method::NetworkMethod;
pub use runtime::Runtime;

pub use calibrate::*;
pub use input::*;
pub use predict::*;
pub use store::*;
pub use train::*;

use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};

use crate::config::ClassDef;
use crate::eval::metrics::Confusion;
use crate::rng::{hash4, hash4_last, hash4_prefix, hash4_third, unit, Rng};
use model::FusionNet;
pub use model::{EncoderKind, Fusion, NetSpec};

/// Serialises seeding + parameter initialisation (burn's generator is global to a backend).
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Raw input bands of a default network (`model::DEFAULT_OPTICAL` reflectances, then VV, VH
/// in dB; a network's own count is [`NetSpec::raw_bands`]). Hybrid models append their optical
/// features, then their SAR features.
pub const RAW_BANDS: usize = model::DEFAULT_OPTICAL + 2;

/// A trained network with its metadata.
pub struct LearnedModel {
    /// Metadata.
    pub meta: LearnedMeta,
    net: FusionNet,
    runtime: Runtime,
    /// The weights in [`native`] layout, copied on the first CPU prediction.
    native: std::sync::OnceLock<native::NativeNet>,
}

fn to_tensor(data: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn to_vec(t: Tensor<4>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

impl LearnedModel {
    /// A randomly initialised model (benchmarks and tests of the inference path).
    pub fn untrained(
        runtime: &Runtime,
        config: &TrainConfig,
        classes: &[ClassDef],
        optical_bands: &[String],
    ) -> LearnedModel {
        let net = {
            let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            runtime.device.seed(config.seed);
            FusionNet::new(config.spec, &runtime.device).initialised(&runtime.device)
        };
        let norm = Normalisation {
            mean: vec![
                0.0;
                config.spec.raw_bands() + config.spec.extra_opt + config.spec.extra_sar
            ],
            std: vec![1.0; config.spec.raw_bands() + config.spec.extra_opt + config.spec.extra_sar],
        };
        let report = TrainReport {
            epochs: 0,
            best_epoch: 0,
            best_val_miou: 0.0,
            history: vec![],
            class_weights: vec![],
            class_pixels: vec![],
            temperature: 1.0,
            patches_seen: 0,
        };
        LearnedModel::assembled(
            runtime,
            config,
            (classes, optical_bands),
            norm,
            report,
            net.valid(),
        )
    }

    /// A model from its parts.
    fn assembled(
        runtime: &Runtime,
        config: &TrainConfig,
        (classes, optical_bands): (&[ClassDef], &[String]),
        normalisation: Normalisation,
        report: TrainReport,
        net: FusionNet,
    ) -> LearnedModel {
        LearnedModel {
            meta: LearnedMeta {
                format: LEARNED_FORMAT.into(),
                geofuse_version: env!("CARGO_PKG_VERSION").into(),
                config: config.clone(),
                normalisation,
                classes: classes.to_vec(),
                optical_bands: optical_bands.to_vec(),
                sar_polarisations: crate::features::Polarisation::ALL[..config.spec.sar.min(2)]
                    .to_vec(),
                report,
                hybrid_features: Vec::new(),
                glcm_ranges: Vec::new(),
                weights_sha256: String::new(),
            },
            net,
            runtime: runtime.clone(),
            native: Default::default(),
        }
    }

    /// A randomly initialised network (benchmarks and tests of the inference path) with
    /// classes numbered 1..=`spec.classes`, the synthetic scene's band names, dropout `dropout`
    /// and `passes` Monte Carlo passes.
    pub fn random(
        runtime: &Runtime,
        spec: NetSpec,
        dropout: f64,
        passes: usize,
        seed: u64,
    ) -> LearnedModel {
        let config = TrainConfig {
            spec,
            epochs: 0,
            patience: 0,
            batch: 1,
            learning_rate: 0.0,
            schedule: Schedule::Constant,
            weight_decay: 0.0,
            modality_dropout: 0.0,
            radiometric_jitter: (0.0, 0.0),
            date_dropout: 0.0,
            dropout,
            mc_passes: passes.max(1),
            mc_dates: true,
            seed,
        };
        let classes: Vec<ClassDef> = (1..=spec.classes)
            .map(|i| ClassDef {
                id: i as u8,
                name: format!("class {i}"),
                color: "#808080".into(),
            })
            .collect();
        let bands: Vec<String> = crate::synth::BANDS.iter().map(|s| s.to_string()).collect();
        LearnedModel::untrained(runtime, &config, &classes, &bands)
    }

    /// Name of the device the model runs on.
    pub fn runtime_name(&self) -> &str {
        &self.runtime.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array3};

    #[test]
    fn a_saved_model_is_the_same_bytes_for_the_same_weights() {
        // burn numbers parameters at random; the saved file must not carry that.
        let rt = Runtime::new("cpu").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = NetSpec::raw(Fusion::LearnedKernel, 4, 3);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let ha = LearnedModel::random(&rt, spec, 0.5, 2, 1).save(&a).unwrap();
        let hb = LearnedModel::random(&rt, spec, 0.5, 2, 1).save(&b).unwrap();
        let bytes = |p: &std::path::Path| std::fs::read(p.with_extension("bpk")).unwrap();
        assert_eq!(bytes(&a), bytes(&b));
        assert_eq!(ha, hb);
        let other = dir.path().join("c");
        LearnedModel::random(&rt, spec, 0.5, 2, 2)
            .save(&other)
            .unwrap();
        assert_ne!(bytes(&a), bytes(&other), "another seed, other weights");
    }

    #[test]
    fn temperature_scaling_recovers_an_overconfidence_factor() {
        // Samples drawn from softmax(z), reported as log_softmax(3 z): over-confident by 3.
        let mut r = Rng::new(4);
        let samples: Vec<CalSample> = (0..4000)
            .map(|_| {
                let z: Vec<f64> = (0..4).map(|_| r.normal()).collect();
                let m: f64 = z.iter().map(|v| v.exp()).sum();
                let u = r.f64();
                let mut acc = 0.0;
                let y = (0..4)
                    .find(|&i| {
                        acc += z[i].exp() / m;
                        u < acc
                    })
                    .unwrap_or(3);
                CalSample {
                    mu: z.iter().map(|v| (3.0 * v) as f32).collect(),
                    logvar: vec![-40.0], // no logit noise: plain softmax
                    label: y,
                }
            })
            .collect();
        let eps = inference_noise(1, 1, 4);
        let t = fit_temperature(&samples, &eps, 4);
        assert!((t - 3.0).abs() < 0.4, "fitted T = {t}");
        assert_eq!(fit_temperature(&[], &eps, 4), 1.0);
    }

    #[test]
    fn predictive_of_hand_computed_passes() {
        // Two passes without logit noise: softmax([ln 3, 0]) = [0.75, 0.25] and [0.25, 0.75];
        // mean [0.5, 0.5]; mean member entropy H(0.75, 0.25).
        let eps = inference_noise(3, 2, 2);
        let mut p = [0f32; 2];
        let mu = [3f32.ln(), 0.0, 0.0, 3f32.ln()];
        let e = mc_predictive(&mu, &[-40.0, -40.0], &eps, 2, 1.0, &mut p);
        assert!(
            (p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6,
            "{p:?}"
        );
        let h = -(0.75f32 * 0.75f32.ln() + 0.25 * 0.25f32.ln());
        assert!((e - h).abs() < 1e-6, "{e} vs {h}");
        // Temperature 2 on one pass: softmax([ln 3, 0] / 2) = [sqrt3, 1] / (sqrt3 + 1).
        mc_predictive(&mu[..2], &[-40.0], &eps, 2, 2.0, &mut p);
        let s3 = 3f32.sqrt();
        assert!((p[0] - s3 / (s3 + 1.0)).abs() < 1e-6, "{p:?}");
        // Logit noise spreads the prediction: with a large variance the distribution is flatter
        // (aleatoric), and the antithetic noise keeps equal logits at exactly [0.5, 0.5].
        let sharp = mc_predictive(&[2.0, 0.0], &[-40.0], &eps, 2, 1.0, &mut p);
        let noisy = mc_predictive(&[2.0, 0.0], &[3.0], &eps, 2, 1.0, &mut p);
        assert!(noisy > sharp, "{noisy} <= {sharp}");
        mc_predictive(&[0.7, 0.7], &[3.0], &eps, 2, 1.0, &mut p);
        assert!((p[0] - 0.5).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn inference_noise_is_antithetic_standard_normal() {
        let e = inference_noise(9, 400, 5);
        assert_eq!(e.len(), 400 * NOISE_SAMPLES * 5);
        let n = e.len() as f64;
        let mean = e.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = e.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-6, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
        assert_eq!(
            e[..5].iter().map(|v| -v).collect::<Vec<_>>(),
            e[5..10].to_vec()
        );
        assert_eq!(inference_noise(9, 400, 5), e);
    }

    #[test]
    fn rotations_and_flips_are_a_group_of_eight() {
        let a = Array3::from_shape_fn((1, 3, 3), |(_, r, c)| (r * 3 + c) as i32);
        let outs: Vec<_> = (0..8).map(|code| augment(a.view(), code)).collect();
        for i in 0..8 {
            for j in i + 1..8 {
                assert_ne!(outs[i], outs[j], "codes {i} and {j}");
            }
        }
        // Four quarter turns give the identity.
        let mut v = a.clone();
        for _ in 0..4 {
            v = augment(v.view(), 1);
        }
        assert_eq!(v, a);
    }

    /// A model of every fusion on burn's CPU operators, and a raw window with clouds (optical
    /// missing), a SAR swath gap and a pixel with neither.
    fn model_and_window(fusion: Fusion, dropout: f64) -> (LearnedModel, Array3<f32>) {
        model_and_window_with(NetSpec::raw(fusion, 16, 5), dropout)
    }

    fn model_and_window_with(spec: NetSpec, dropout: f64) -> (LearnedModel, Array3<f32>) {
        let rt = Runtime::new("cpu-burn").unwrap();
        let model = LearnedModel::random(&rt, spec, dropout, 3, 11);
        let mut rng = Rng::new(5);
        let (h, w) = (23, 30);
        let n = spec.raw_bands();
        let mut raw = Array3::from_shape_fn((n, h, w), |_| rng.f64() as f32 * 2.0 - 0.5);
        raw.slice_mut(s![0..spec.optical, 2..9, 3..11])
            .fill(f32::NAN);
        raw.slice_mut(s![spec.optical.., .., 20..26]).fill(f32::NAN);
        raw[[0, 15, 22]] = f32::NAN;
        (model, raw)
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: native {x} vs burn {y}"
            );
        }
    }

    #[test]
    fn native_inference_equals_burn_for_every_fusion() {
        for fusion in Fusion::ALL {
            let (model, raw) = model_and_window(fusion, 0.5);
            let net = native::NativeNet::from_burn(&model.net);
            let origin = (40, 7);
            let (bm, bl) = model.passes_burn(&raw, origin);
            let (nm, nl) = model.passes_native(&net, &raw, origin);
            assert_eq!(bm.len(), 3);
            for t in 0..3 {
                assert_close(&nm[t], &bm[t], 2e-4, &format!("{fusion:?} pass {t} logits"));
                assert_close(&nl[t], &bl[t], 2e-4, &format!("{fusion:?} pass {t} logvar"));
            }
            // The passes differ (dropout is on), so the comparison covers the masks.
            assert!(bm[0] != bm[1], "{fusion:?}: passes identical");
        }
    }

    #[test]
    fn native_equals_burn_with_one_polarisation_and_with_a_pixel_path() {
        // VV-only networks (a SAR block of one band and its presence flag), with and without
        // the 1 x 1 pixel path beside each encoder.
        let cases = Fusion::ALL
            .map(|f| (f, EncoderKind::Small))
            .into_iter()
            .chain([(Fusion::LearnedKernel, EncoderKind::Unet)]);
        for ((fusion, encoder), pixel_path) in cases.flat_map(|c| [(c, false), (c, true)]) {
            let spec = NetSpec {
                sar: 1,
                optical: 4,
                encoder,
                pixel_path,
                ..NetSpec::raw(fusion, 6, 4)
            };
            let (model, raw) = model_and_window_with(spec, 0.5);
            assert_eq!(raw.shape()[0], 5);
            let net = native::NativeNet::from_burn(&model.net);
            let (bm, bl) = model.passes_burn(&raw, (16, 24));
            let (nm, nl) = model.passes_native(&net, &raw, (16, 24));
            for t in 0..3 {
                let what = format!("{fusion:?} {encoder:?} pixel path {pixel_path} pass {t}");
                assert_close(&nm[t], &bm[t], 2e-4, &format!("{what} logits"));
                assert_close(&nl[t], &bl[t], 2e-4, &format!("{what} logvar"));
            }
        }
    }

    #[test]
    fn native_equals_burn_for_the_learned_kernel_with_its_registration_cue() {
        for encoder in [EncoderKind::Small, EncoderKind::Unet] {
            let spec = NetSpec {
                kernel: 5,
                align: 4,
                encoder,
                ..NetSpec::raw(Fusion::LearnedKernel, 6, 4)
            };
            let (model, raw) = model_and_window_with(spec, 0.5);
            let net = native::NativeNet::from_burn(&model.net);
            let (bm, bl) = model.passes_burn(&raw, (16, 24));
            let (nm, nl) = model.passes_native(&net, &raw, (16, 24));
            for t in 0..3 {
                let what = format!("aligned learned kernel {encoder:?} pass {t}");
                assert_close(&nm[t], &bm[t], 2e-4, &format!("{what} logits"));
                assert_close(&nl[t], &bl[t], 2e-4, &format!("{what} logvar"));
            }
        }
    }

    /// A season network with temporal encoders (3 steps of 4 optical bands and of VV) and a
    /// window whose pixels miss steps: step 1 of the optical bands over rows 10-19, step 0
    /// of SAR over columns 0-5, besides the clouds and swath gap of [`model_and_window_with`].
    fn temporal_model_and_window(fusion: Fusion) -> (LearnedModel, Array3<f32>) {
        let spec = NetSpec {
            optical: 12,
            sar: 3,
            temporal: Some(temporal::TemporalSpec {
                steps: 3,
                step_days: 30,
                dim: 8,
                heads: 4,
            }),
            ..NetSpec::raw(fusion, 8, 4)
        };
        let (model, mut raw) = model_and_window_with(spec, 0.5);
        raw.slice_mut(s![4..8, 10..20, ..]).fill(f32::NAN);
        raw.slice_mut(s![12..13, .., 0..6]).fill(f32::NAN);
        (model, raw)
    }

    #[test]
    fn native_equals_burn_with_temporal_encoders_for_every_fusion() {
        for fusion in Fusion::ALL {
            let (model, raw) = temporal_model_and_window(fusion);
            let net = native::NativeNet::from_burn(&model.net);
            let (bm, bl) = model.passes_burn(&raw, (16, 24));
            let (nm, nl) = model.passes_native(&net, &raw, (16, 24));
            for t in 0..3 {
                let what = format!("temporal {fusion:?} pass {t}");
                assert_close(&nm[t], &bm[t], 2e-4, &format!("{what} logits"));
                assert_close(&nl[t], &bl[t], 2e-4, &format!("{what} logvar"));
            }
        }
    }

    #[test]
    fn passes_that_drop_dates_see_the_dates_they_keep_and_native_equals_burn() {
        let (mut model, raw) = temporal_model_and_window(Fusion::LearnedKernel);
        // Head dropout off: whatever differs between passes comes from the dates.
        model.meta.config.dropout = 0.0;
        model.meta.config.mc_passes = 6;
        let keep_all = model.passes_native(&native::NativeNet::from_burn(&model.net), &raw, (0, 0));
        assert_eq!(keep_all.0.len(), 1, "no dropout of either kind: one pass");
        model.meta.config.date_dropout = 0.5;
        let net = native::NativeNet::from_burn(&model.net);
        let (bm, bl) = model.passes_burn(&raw, (16, 24));
        let (nm, nl) = model.passes_native(&net, &raw, (16, 24));
        assert_eq!(nm.len(), 6);
        for t in 0..6 {
            let what = format!("date-dropout pass {t}");
            assert_close(&nm[t], &bm[t], 2e-4, &format!("{what} logits"));
            assert_close(&nl[t], &bl[t], 2e-4, &format!("{what} logvar"));
            // Slow twin: pass t is the deterministic network on the window with the pass's
            // steps hidden by hand from the same rule.
            let mut hidden = raw.clone();
            predict::hide_pass_dates(&model.meta.config, &mut hidden, t);
            let (mu, lv) = model.forward(&hidden);
            assert_close(
                &nm[t],
                mu.as_slice().unwrap(),
                2e-4,
                &format!("{what} by hand"),
            );
            assert_close(
                &nl[t],
                lv.as_slice().unwrap(),
                2e-4,
                &format!("{what} logvar by hand"),
            );
        }
        assert!(
            nm.windows(2).any(|w| w[0] != w[1]),
            "the passes drop different dates"
        );
        // The same steps in every window: a pass on a sub-window is the sub-window of the pass
        // (away from the border the encoders see).
        let sub = raw.slice(s![.., 4..19, 6..24]).to_owned();
        let (sm, _) = model.passes_native(&net, &sub, (20, 30));
        let (h, w) = (raw.dim().1, raw.dim().2);
        let k = model.meta.classes.len();
        let r = model.halo();
        let mut compared = 0;
        for t in 0..6 {
            for c in 0..k {
                for y in 4 + r..19 - r {
                    for x in 6 + r..24 - r {
                        let a = nm[t][c * h * w + y * w + x];
                        let b = sm[t][c * 15 * 18 + (y - 4) * 18 + (x - 6)];
                        assert!(
                            (a - b).abs() <= 2e-4 * (1.0 + a.abs()),
                            "pass {t} ({y}, {x}): {a} vs {b}"
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 100, "{compared} values compared (halo {r})");
        // `mc_dates = false`: every date in one pass, the deterministic network.
        model.meta.config.mc_dates = false;
        let (one, _) = model.passes_native(&net, &raw, (16, 24));
        assert_eq!(one.len(), 1);
        let (mu, _) = model.forward(&raw);
        assert_close(&one[0], mu.as_slice().unwrap(), 2e-4, "every date");
    }

    #[test]
    fn temporal_attention_never_sees_an_unobserved_step() {
        // Whatever values sit at a step flagged unobserved (at a pixel with another step
        // observed), the latent is the same; values at an observed step do change it.
        let (model, raw) = temporal_model_and_window(Fusion::LearnedKernel);
        let spec = model.meta.config.spec;
        let x = assemble_pixels(&raw, &model.meta.normalisation, &spec);
        let step1 = 4..8;
        let flag1 = spec.optical + 1;
        let mut junk = x.clone();
        let mut seen = x.clone();
        let mut rng = Rng::new(3);
        for px in 0..x.h * x.w {
            let o = &mut junk.v[px * x.c..(px + 1) * x.c];
            let other = o[spec.optical] + o[spec.optical + 2] > 0.0;
            if o[flag1] == 0.0 && other {
                step1
                    .clone()
                    .for_each(|b| o[b] = rng.f64() as f32 * 9.0 - 4.0);
            } else {
                seen.v[px * x.c + step1.start] += 1.0;
            }
        }
        assert!(junk != x, "some pixel misses step 1");
        let latent = |m: &native::Map| {
            let planes = m.to_planes();
            let t = to_tensor(planes, [1, m.c, m.h, m.w], &model.runtime.device);
            to_vec(model.net.latent(t).maps[0].clone())
        };
        assert_eq!(latent(&junk), latent(&x), "burn saw an unobserved step");
        let net = native::NativeNet::from_burn(&model.net);
        assert_eq!(
            net.latent(&junk).maps[0],
            net.latent(&x).maps[0],
            "native saw it"
        );
        assert_ne!(
            latent(&seen),
            latent(&x),
            "an observed step changes the latent"
        );
    }

    #[test]
    fn native_unet_equals_burn_for_every_fusion() {
        // 23 x 30 pixels: padded to 24 x 32 inside the U-Net and cropped back.
        for fusion in Fusion::ALL {
            let spec = NetSpec {
                encoder: EncoderKind::Unet,
                ..NetSpec::raw(fusion, 8, 5)
            };
            let (model, raw) = model_and_window_with(spec, 0.5);
            let net = native::NativeNet::from_burn(&model.net);
            let (bm, bl) = model.passes_burn(&raw, (40, 8));
            let (nm, nl) = model.passes_native(&net, &raw, (40, 8));
            for t in 0..3 {
                assert_close(&nm[t], &bm[t], 2e-4, &format!("{fusion:?} pass {t} logits"));
                assert_close(&nl[t], &bl[t], 2e-4, &format!("{fusion:?} pass {t} logvar"));
            }
        }
    }

    #[test]
    fn native_prediction_equals_burn_prediction() {
        let (model, raw) = model_and_window(Fusion::LearnedKernel, 0.5);
        let mut cpu = LearnedModel::untrained(
            &Runtime::new("cpu").unwrap(),
            &model.meta.config,
            &model.meta.classes,
            &model.meta.optical_bands,
        );
        cpu.net = model.net.clone();
        assert!(cpu.native_net().is_some() && model.native_net().is_none());
        let (pb, eb) = model.predict(&raw, (3, 4));
        let (pn, en) = cpu.predict(&raw, (3, 4));
        assert_close(
            pn.as_slice().unwrap(),
            pb.as_slice().unwrap(),
            1e-4,
            "probs",
        );
        assert_close(
            en.as_slice().unwrap(),
            eb.as_slice().unwrap(),
            1e-4,
            "entropy",
        );
        let (mb, lb) = model.forward(&raw);
        let (mn, ln) = cpu.forward(&raw);
        assert_close(
            mn.as_slice().unwrap(),
            mb.as_slice().unwrap(),
            2e-4,
            "forward logits",
        );
        assert_close(
            ln.as_slice().unwrap(),
            lb.as_slice().unwrap(),
            2e-4,
            "forward logvar",
        );
    }

    #[test]
    fn assemble_zeroes_missing_modalities_and_sets_flags() {
        let mut raw = Array3::<f32>::from_elem((RAW_BANDS, 1, 2), 1.0);
        raw[[3, 0, 0]] = f32::NAN; // optical missing at pixel 0
        raw[[11, 0, 1]] = f32::NAN; // SAR missing at pixel 1
        let norm = Normalisation {
            mean: vec![0.5; RAW_BANDS],
            std: vec![0.5; RAW_BANDS],
        };
        let spec = NetSpec {
            fusion: Fusion::Concat,
            width: 2,
            kernel: 3,
            classes: 2,
            optical: 10,
            sar: 2,
            extra_opt: 0,
            extra_sar: 0,
            encoder: EncoderKind::Small,
            raw_inputs: true,
            pixel_path: false,
            align: 0,
            temporal: None,
        };
        let (opt_ch, in_ch) = (spec.opt_ch(), spec.in_ch());
        let x = assemble(&raw, &norm, &spec);
        assert_eq!(x[[opt_ch - 1, 0, 0]], 0.0);
        assert_eq!(x[[0, 0, 0]], 0.0);
        assert_eq!(x[[in_ch - 1, 0, 0]], 1.0);
        assert_eq!(x[[11, 0, 0]], 1.0);
        assert_eq!(x[[opt_ch - 1, 0, 1]], 1.0);
        assert_eq!(x[[0, 0, 1]], 1.0);
        assert_eq!(x[[in_ch - 1, 0, 1]], 0.0);
    }

    #[test]
    fn features_only_inputs_hold_the_raw_bands_at_zero_and_keep_features_and_flags() {
        // 10 optical + 2 SAR raw bands, then 2 optical and 1 SAR hand-crafted features.
        let raw = Array3::<f32>::from_shape_fn((15, 1, 1), |(b, _, _)| b as f32 + 2.0);
        let norm = Normalisation {
            mean: vec![1.0; 15],
            std: vec![1.0; 15],
        };
        let spec = NetSpec {
            extra_opt: 2,
            extra_sar: 1,
            raw_inputs: false,
            ..NetSpec::raw(Fusion::Concat, 2, 2)
        };
        let x = assemble(&raw, &norm, &spec);
        let v: Vec<f32> = x.iter().copied().collect();
        // Optical block: 10 zeros, features 12 and 13 (minus the mean 1), flag; SAR block: 2
        // zeros, feature 14, flag.
        let mut want = vec![0.0; 10];
        want.extend([13.0, 14.0, 1.0, 0.0, 0.0, 15.0, 1.0]);
        assert_eq!(v, want);
        let with_raw = assemble(
            &raw,
            &norm,
            &NetSpec {
                raw_inputs: true,
                ..spec
            },
        );
        assert_eq!(with_raw[[0, 0, 0]], 1.0);
    }
}
