//! Learned methods: tiled = untiled, reproducible CPU training, model checks, GPU = CPU.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use geofuse::learned::{LearnedModel, Runtime};
use geofuse::pipeline::{run, RunOptions};

/// Learned tests run one at a time: burn's CPU backend shares one thread pool per process, and
/// concurrent trainings change how it splits float reductions (a rounding difference, not a
/// logic one). One `geofuse run` trains one model at a time and is reproducible.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A small scene with one fast learned method; returns (dir, pipeline).
fn learned_scene(fusion: &str, size: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pipe = scene_with_pipeline(dir.path(), size, 12, size);
    let text = std::fs::read_to_string(&pipe).unwrap();
    let text = text.replace(
        "[[methods]]\nname = \"handcrafted\"\ntrees = 20\nmax_depth = 18\n",
        "",
    );
    std::fs::write(
        &pipe,
        format!("{text}[[methods]]\nname = \"{fusion}\"\nwidth = 6\nepochs = 3\npatience = 3\npatches = 24\npatch = 16\nbatch = 8\nmc_passes = 3\n"),
    )
    .unwrap();
    (dir, pipe)
}

fn cpu_run(pipe: &Path, out: &Path) {
    run(
        pipe,
        &RunOptions {
            out: Some(out.to_path_buf()),
            quiet: true,
            device: "cpu".into(),
            ..Default::default()
        },
    )
    .unwrap();
}

/// Raw bands of the whole scene, read through the pipeline.
fn scene_raw(pipe: &Path, dir: &Path) -> ndarray::Array3<f32> {
    let p = geofuse::pipeline::load_pipeline(pipe, None).unwrap();
    let src = geofuse::scene::prepare_scene(&p, &p.scenes[0], &dir.join("c")).unwrap();
    let reader = geofuse::scene::SceneReader::open(&src).unwrap();
    let full = geofuse::raster::Window::full(src.grid.width, src.grid.height);
    geofuse::learned::scene_input::raw_window(&reader, &src, full, &src.sar_pols, (None, false))
        .unwrap()
        .raw
}

/// A model's prediction tile by tile (tile sizes 40, 33, 64 with its halo) against one pass
/// over the whole `size` x `size` scene `raw`.
fn assert_tiled_equals_untiled(model: &LearnedModel, raw: &ndarray::Array3<f32>, size: usize) {
    let (full_p, full_e) = model.predict(raw, (0, 0));
    for ts in [40usize, 33, 64] {
        let mut worst = 0f32;
        for t in geofuse::tiler::tiles(size, size, ts, model.halo()) {
            let rd = t.read;
            let sub = raw
                .slice(ndarray::s![
                    ..,
                    rd.row..rd.row + rd.height,
                    rd.col..rd.col + rd.width
                ])
                .to_owned();
            let (p, e) = model.predict(&sub, (rd.row, rd.col));
            let (r0, c0) = t.core_offset();
            for r in 0..t.core.height {
                for c in 0..t.core.width {
                    let (gr, gc) = (t.core.row + r, t.core.col + c);
                    for k in 0..p.shape()[0] {
                        worst = worst.max((p[[k, r0 + r, c0 + c]] - full_p[[k, gr, gc]]).abs());
                    }
                    worst = worst.max((e[[r0 + r, c0 + c]] - full_e[[gr, gc]]).abs());
                }
            }
        }
        // Tolerance: float32 rounding of convolutions summed in a different order.
        assert!(
            worst < 1e-4,
            "tile size {ts}: max |tiled - untiled| = {worst}"
        );
    }
}

#[test]
fn learned_tiled_prediction_equals_untiled_up_to_float_rounding() {
    let _serial = serial();
    let (dir, pipe) = learned_scene("learned-kernel", 96);
    cpu_run(&pipe, &dir.path().join("out"));
    let rt = Runtime::new("cpu").unwrap();
    let (model, _) =
        LearnedModel::load(&dir.path().join("out/models/learned-kernel"), &rt).unwrap();
    assert_tiled_equals_untiled(&model, &scene_raw(&pipe, dir.path()), 96);
    // The product written with another tile size has the same classes.
    edit(&pipe, "tile_size = 96", "tile_size = 40");
    let out2 = dir.path().join("out2");
    std::fs::create_dir_all(out2.join("synthetic")).unwrap();
    for f in ["learned-kernel.bpk", "learned-kernel.json"] {
        std::fs::copy(dir.path().join("out/models").join(f), dir.path().join(f)).unwrap();
    }
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(
        &pipe,
        text.replace(
            "mc_passes = 3\n",
            "mc_passes = 3\nmodel = \"learned-kernel\"\n",
        ),
    )
    .unwrap();
    cpu_run(&pipe, &out2);
    let a = band_values(&dir.path().join("out/synthetic/learned-kernel.tif"), 1);
    let b = band_values(&out2.join("synthetic/learned-kernel.tif"), 1);
    let diff = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(
        diff <= a.len() / 1000,
        "{diff} of {} class pixels differ",
        a.len()
    );
}

#[test]
fn temporal_attention_networks_tile_like_an_untiled_run() {
    // Three steps of four optical bands and of VV, VH; steps unobserved in patches.
    use geofuse::learned::temporal::TemporalSpec;
    use geofuse::learned::{Fusion, NetSpec};
    let spec = NetSpec {
        optical: 12,
        sar: 6,
        temporal: Some(TemporalSpec {
            steps: 3,
            step_days: 30,
            dim: 8,
            heads: 4,
        }),
        ..NetSpec::raw(Fusion::LearnedKernel, 8, 4)
    };
    let model = LearnedModel::random(&Runtime::new("cpu").unwrap(), spec, 0.5, 2, 7);
    let mut rng = geofuse::rng::Rng::new(9);
    let mut raw = ndarray::Array3::from_shape_fn((18, 96, 96), |_| rng.f64() as f32);
    raw.slice_mut(ndarray::s![4..8, 10..50, 20..60])
        .fill(f32::NAN);
    raw.slice_mut(ndarray::s![12..14, 30..90, ..])
        .fill(f32::NAN);
    assert_tiled_equals_untiled(&model, &raw, 96);
}

#[test]
fn aligned_learned_kernel_tiles_like_an_untiled_run() {
    // The registration (align = 6) widens the halo: 4 (encoder) + 2 (5 x 5 kernel) + 9
    // (window, edge pair, 5 x 5 resampling of the SAR latent).
    let _serial = serial();
    let (dir, pipe) = learned_scene("learned-kernel", 96);
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(&pipe, format!("{text}kernel = 5\nalign = 6\n")).unwrap();
    cpu_run(&pipe, &dir.path().join("out"));
    let rt = Runtime::new("cpu").unwrap();
    let (model, _) =
        LearnedModel::load(&dir.path().join("out/models/learned-kernel"), &rt).unwrap();
    assert_eq!(model.halo(), 15);
    assert_tiled_equals_untiled(&model, &scene_raw(&pipe, dir.path()), 96);
}
#[test]
fn learned_training_is_reproducible_on_cpu() {
    let _serial = serial();
    let (dir, pipe) = learned_scene("concat", 64);
    cpu_run(&pipe, &dir.path().join("a"));
    cpu_run(&pipe, &dir.path().join("b"));
    let ha = geofuse::learned::model_hash(&dir.path().join("a/models/concat")).unwrap();
    let hb = geofuse::learned::model_hash(&dir.path().join("b/models/concat")).unwrap();
    assert_eq!(ha, hb, "same seed, same data: same model");
    let pa = band_values(&dir.path().join("a/synthetic/concat.tif"), 1);
    let pb = band_values(&dir.path().join("b/synthetic/concat.tif"), 1);
    assert_eq!(pa, pb);
}

#[test]
fn learned_product_follows_the_contract_and_metrics_sit_side_by_side() {
    let _serial = serial();
    let (dir, pipe) = learned_scene("late", 96);
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(
        &pipe,
        format!("{text}\n[[methods]]\nname = \"handcrafted\"\ntrees = 10\n"),
    )
    .unwrap();
    cpu_run(&pipe, &dir.path().join("out"));
    let m = read_metrics(&dir.path().join("out"), "synthetic");
    for method in ["late", "handcrafted"] {
        assert_metric_keys(&m, method, &[]);
    }
    let t = m["methods"]["late"]["temperature"].as_f64().unwrap();
    assert!((0.05..=10.0).contains(&t), "temperature {t}");
    assert!(m["methods"]["late"]["ece_uncalibrated"].as_f64().is_some());
    let tif = dir.path().join("out/synthetic/late.tif");
    let ds = gdal::Dataset::open(&tif).unwrap();
    assert_eq!(ds.raster_count(), PRODUCT_BANDS);
    assert!(ds.rasterband(1).unwrap().color_table().is_some());
    let modal = named_band(&tif, "modalities");
    let classes = band_values(&tif, 1);
    // Pixels with at least one modality get a class; epistemic (MC dropout) is not all zero.
    assert!(modal
        .iter()
        .zip(&classes)
        .all(|(m, c)| (*m == 0.0) == (*c == 255.0)));
    // Uncertainty is not all zero (a 3-epoch model is flat after temperature scaling, so the
    // total band is the one checked here).
    assert!(named_band(&tif, "total")
        .iter()
        .any(|&v| v > 0.0 && v < 255.0));
}

#[test]
fn a_learned_model_with_other_classes_is_refused() {
    let _serial = serial();
    let (dir, pipe) = learned_scene("add", 64);
    cpu_run(&pipe, &dir.path().join("out"));
    for f in ["add.bpk", "add.json"] {
        std::fs::copy(dir.path().join("out/models").join(f), dir.path().join(f)).unwrap();
    }
    let text = std::fs::read_to_string(&pipe)
        .unwrap()
        .replace("name = \"wetland\"", "name = \"marsh\"");
    std::fs::write(
        &pipe,
        text.replace("mc_passes = 3\n", "mc_passes = 3\nmodel = \"add\"\n"),
    )
    .unwrap();
    let o = geofuse(&["run", pipe.to_str().unwrap(), "-q", "--device", "cpu"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("add") && err.contains("classes"), "{err}");
}

/// GPU = CPU: the same saved model on wgpu (Mesa's lavapipe here, a real GPU elsewhere) and on
/// the CPU gives the same probabilities within 1e-3.
#[test]
fn a_missing_modality_weighs_exactly_zero_and_the_other_branch_carries_the_pixel() {
    let _serial = serial();
    let (dir, pipe) = learned_scene("learned-kernel", 64);
    cpu_run(&pipe, &dir.path().join("out"));
    let rt = Runtime::new("cpu").unwrap();
    let (model, _) =
        LearnedModel::load(&dir.path().join("out/models/learned-kernel"), &rt).unwrap();
    let mut raw = scene_raw(&pipe, dir.path());
    // A SAR gap over the right half.
    raw.slice_mut(ndarray::s![10..12, .., 32..]).fill(f32::NAN);
    let w = model.expert_weights(&raw);
    assert_eq!(w.len(), 3, "optical, SAR and joint experts");
    let (mut gap, mut both) = (0, 0);
    for r in 0..64 {
        for c in 0..64 {
            let opt = (0..10).all(|b| !raw[[b, r, c]].is_nan());
            let sar = (10..12).all(|b| !raw[[b, r, c]].is_nan());
            let (wo, ws, wj) = (w[0][[r, c]], w[1][[r, c]], w[2][[r, c]]);
            if opt && !sar {
                gap += 1;
                assert_eq!((wo, ws, wj), (1.0, 0.0, 0.0), "SAR gap at ({r}, {c})");
            } else if sar && !opt {
                assert_eq!((wo, ws, wj), (0.0, 1.0, 0.0), "cloud at ({r}, {c})");
            } else if opt && sar {
                both += 1;
                assert!((wo + ws + wj - 1.0).abs() < 1e-5, "({r}, {c})");
                assert!(wo > 0.0 && ws > 0.0 && wj > 0.0, "({r}, {c})");
            }
        }
    }
    assert!(gap > 1000 && both > 1000, "gap {gap}, both {both}");
}

#[test]
fn wgpu_equals_cpu_within_tolerance() {
    let _serial = serial();
    let icd = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .any(|d| {
            std::fs::read_dir(d)
                .map(|mut r| r.next().is_some())
                .unwrap_or(false)
        });
    if !icd {
        eprintln!(
            "SKIP: no Vulkan driver (install mesa-vulkan-drivers and libvulkan1 for lavapipe)"
        );
        return;
    }
    let Ok(gpu) = Runtime::new("wgpu") else {
        eprintln!("SKIP: wgpu found no adapter");
        return;
    };
    let (dir, pipe) = learned_scene("learned-kernel", 64);
    cpu_run(&pipe, &dir.path().join("out"));
    let stem = dir.path().join("out/models/learned-kernel");
    let cpu = Runtime::new("cpu").unwrap();
    let (mc, _) = LearnedModel::load(&stem, &cpu).unwrap();
    let (mg, _) = LearnedModel::load(&stem, &gpu).unwrap();
    let raw = scene_raw(&pipe, dir.path());
    let (pc, ec) = mc.predict(&raw, (0, 0));
    let (pg, eg) = mg.predict(&raw, (0, 0));
    let dp = pc
        .iter()
        .zip(pg.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let de = ec
        .iter()
        .zip(eg.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "{}: max |p_gpu - p_cpu| = {dp:.2e}, entropy {de:.2e}",
        gpu.name
    );
    assert!(dp < 1e-3 && de < 1e-3, "GPU and CPU disagree: {dp} {de}");
}

#[test]
fn hybrid_model_takes_handcrafted_features_and_stays_tile_invariant() {
    let _serial = serial();
    let (dir, pipe) = learned_scene("learned-kernel", 96);
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(
        &pipe,
        text.replace("mc_passes = 3\n", "mc_passes = 3\nhybrid = true\n"),
    )
    .unwrap();
    cpu_run(&pipe, &dir.path().join("out"));
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/models/learned-kernel.json")).unwrap(),
    )
    .unwrap();
    let names = meta["hybrid_features"].as_array().unwrap();
    let spec = &meta["config"]["spec"];
    let (eo, es) = (
        spec["extra_opt"].as_u64().unwrap(),
        spec["extra_sar"].as_u64().unwrap(),
    );
    assert!(
        eo > 0 && es > 0,
        "hybrid model takes optical and SAR features: {eo} {es}"
    );
    assert_eq!(names.len() as u64, eo + es);
    assert_eq!(meta["glcm_ranges"].as_array().unwrap().len(), 2);
    // The same model, another tile size: same classes up to float rounding.
    for f in ["learned-kernel.bpk", "learned-kernel.json"] {
        std::fs::copy(
            dir.path().join("out/models").join(f),
            dir.path().join(f.replace("learned-kernel", "h")),
        )
        .unwrap();
    }
    edit(&pipe, "tile_size = 96", "tile_size = 40");
    edit(&pipe, "hybrid = true\n", "hybrid = true\nmodel = \"h\"\n");
    cpu_run(&pipe, &dir.path().join("out2"));
    let a = band_values(&dir.path().join("out/synthetic/learned-kernel.tif"), 1);
    let b = band_values(&dir.path().join("out2/synthetic/learned-kernel.tif"), 1);
    let diff = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(
        diff <= a.len() / 1000,
        "{diff} of {} class pixels differ",
        a.len()
    );
    // Other hand-crafted features: refused.
    edit(&pipe, "\"NBR\", \"NDRE\"]", "\"NBR\"]");
    let (code, err) = cli_run(&pipe, &dir.path().join("out3"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("hybrid"), "{err}");
}

/// Rewrites the synthetic scene's 10-band optical raster as a 13-band Sentinel-2 L1C-like one
/// (B01 B02 ... B8A B09 B10 B11 B12: B01 from B02, B09 from B8A, B10 a constant cirrus band);
/// returns the band names in file order.
fn l1c_optical(dir: &Path) -> Vec<&'static str> {
    use gdal::raster::Buffer;
    let src = gdal::Dataset::open(dir.join("optical.tif")).unwrap();
    let (w, h) = src.raster_size();
    let dst = float_tiff_like(&src, &dir.join("optical13.tif"), 13);
    // Source band (1-based) of every L1C band; 0 = the constant cirrus band.
    let from = [1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 0, 9, 10];
    for (i, &b) in from.iter().enumerate() {
        let data: Vec<f32> = if b == 0 {
            vec![12.0; w * h]
        } else {
            let band = src.rasterband(b).unwrap();
            band.read_as::<f32>((0, 0), (w, h), (w, h), None)
                .unwrap()
                .data()
                .to_vec()
        };
        let mut out = dst.rasterband(i + 1).unwrap();
        let nodata = src.rasterband(1).unwrap().no_data_value();
        out.set_no_data_value(nodata).unwrap();
        out.write((0, 0), (w, h), &mut Buffer::new((w, h), data))
            .unwrap();
    }
    vec![
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
    ]
}

#[test]
fn a_13_band_l1c_scene_runs_every_learned_method() {
    let _g = serial();
    let (dir, pipe) = learned_scene("concat", 96);
    let names = l1c_optical(dir.path());
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let text = std::fs::read_to_string(&pipe).unwrap();
    let ten_bands = text.split("[[methods]]").next().unwrap().to_string();
    let start = text.find("optical = {").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let text = format!(
        "{}optical = {{ path = \"optical13.tif\", bands = [{}], scale = 0.0001 }}{}",
        &text[..start],
        quoted.join(", "),
        &text[end..]
    );
    let settings =
        "width = 6\nepochs = 2\npatience = 2\npatches = 16\npatch = 16\nbatch = 8\nmc_passes = 2\n";
    // The hybrid also takes the class-balanced sampler and the pixel path, end to end.
    let balanced = "sampling = \"class-balanced\"\npixel_path = true\n";
    let methods = every_learned_method(settings, "concat", balanced);
    std::fs::write(&pipe, format!("{text}{methods}")).unwrap();
    let out = dir.path().join("out");
    cpu_run(&pipe, &out);
    let m = read_metrics(&out, "synthetic");
    for f in every_learned_name() {
        // A smoke test of the band count (2 epochs): every method trains, predicts and is
        // evaluated; accuracy is the other tests' business.
        assert!(
            m["methods"][f]["oa"].as_f64().is_some(),
            "{f}: {:?}",
            m["methods"][f]
        );
        assert!(out.join(format!("synthetic/{f}.tif")).exists(), "{f}");
    }
    // The model records the 13 bands, and refuses a scene without them.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("models/concat.json")).unwrap())
            .unwrap();
    assert_eq!(meta["config"]["spec"]["optical"], 13);
    assert_eq!(meta["optical_bands"].as_array().unwrap().len(), 13);
    std::fs::write(
        &pipe,
        format!("{ten_bands}[[methods]]\nname = \"reused\"\nkind = \"learned\"\nfusion = \"concat\"\nmodel = \"out/models/concat\"\n"),
    )
    .unwrap();
    let (code, err) = cli_run(&pipe, &dir.path().join("out10"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("B01") && err.contains("retrain"), "{err}");
}

#[test]
fn auto_device_without_a_gpu_prints_no_probe_noise() {
    if geofuse::learned::runtime::gpu_device_present() {
        eprintln!("SKIP: this machine has a GPU device node; the probe runs there");
        return;
    }
    // What cron, Slurm and containers give: no XDG_RUNTIME_DIR.
    let o = std::process::Command::new(bin())
        .args(["bench-net", "--device", "auto", "--size", "16"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("on cpu"));
}

#[test]
fn sigterm_during_training_stops_at_the_next_epoch() {
    let (dir, pipe) = learned_scene("concat", 96);
    edit(
        &pipe,
        "epochs = 3\npatience = 3",
        "epochs = 5000\npatience = 5000",
    );
    let out = dir.path().join("out");
    let child = std::process::Command::new(bin())
        .args([
            "run",
            pipe.to_str().unwrap(),
            "-q",
            "--device",
            "cpu",
            "--out",
        ])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough to be inside training (scene checks take well under a second).
    std::thread::sleep(std::time::Duration::from_secs(4));
    let t = std::time::Instant::now();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let o = child.wait_with_output().unwrap();
    let waited = t.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{err}");
    // 5000 epochs take hours; one epoch of 24 patches well under 10 s.
    assert!(waited.as_secs() < 30, "stopped after {waited:?}");
    assert!(
        !out.join("models/concat.bpk").exists(),
        "a half-trained model was kept"
    );
}

/// Share of each class among the training pixels of `wins`.
fn class_shares(
    src: &geofuse::scene::SceneSources,
    split: &geofuse::eval::split::BlockSplit,
    ids: &[u8],
    wins: &[geofuse::raster::Window],
) -> Vec<f64> {
    let reader = geofuse::scene::SceneReader::open(src).unwrap();
    let mut c = vec![0f64; ids.len()];
    for w in wins {
        let l = reader.read_labels(*w).unwrap().unwrap();
        for ((r, cc), &v) in l.indexed_iter() {
            if let Some(k) = geofuse::eval::class_index(ids, v) {
                if split.trains(w.row + r, w.col + cc) {
                    c[k] += 1.0;
                }
            }
        }
    }
    let total: f64 = c.iter().sum();
    c.iter().map(|v| v / total).collect()
}

#[test]
fn class_balanced_sampling_draws_rare_classes_more_often() {
    use geofuse::learned::scene_input::{class_balanced, patch_windows};
    let dir = tempfile::tempdir().unwrap();
    let pipe = scene_with_pipeline(dir.path(), 192, 12, 192);
    let p = geofuse::pipeline::load_pipeline(&pipe, None).unwrap();
    let src = geofuse::scene::prepare_scene(&p, &p.scenes[0], &dir.path().join("c")).unwrap();
    let split = geofuse::eval::split::BlockSplit::new(192, 192, 32, 0.3, 42);
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let (n, patch) = (64, 16);
    let candidates = patch_windows(&src, &split, 32, patch, 4 * n, false, 7);
    let uniform = class_shares(&src, &split, &ids, &candidates[..n]);
    let picked = class_balanced(&src, &split, &ids, &candidates, n, 7).unwrap();
    assert_eq!(picked.len(), n);
    assert_eq!(
        picked,
        class_balanced(&src, &split, &ids, &candidates, n, 7).unwrap()
    );
    let balanced = class_shares(&src, &split, &ids, &picked);
    let present: Vec<usize> = (0..ids.len()).filter(|&k| uniform[k] > 0.0).collect();
    let rarest = *present
        .iter()
        .min_by(|&&a, &&b| uniform[a].total_cmp(&uniform[b]))
        .unwrap();
    let spread = |s: &[f64]| {
        let v: Vec<f64> = present.iter().map(|&k| s[k]).collect();
        v.iter().cloned().fold(0.0, f64::max) / v.iter().cloned().fold(1.0, f64::min)
    };
    eprintln!(
        "class shares of training pixels: uniform {uniform:.3?}, class-balanced {balanced:.3?}"
    );
    assert!(
        balanced[rarest] > uniform[rarest],
        "rarest class {rarest}: uniform {uniform:?}, balanced {balanced:?}"
    );
    assert!(
        spread(&balanced) < spread(&uniform),
        "max/min class share: uniform {:.2}, balanced {:.2}",
        spread(&uniform),
        spread(&balanced)
    );
}
