//! `geofuse bench-net`: the benchmark command behind `benches/peers/run.sh` and
//! `benches/gpu.sh` (times a learned network's forward pass, prediction or training step with
//! random weights and inputs, or checks a device against the CPU). Not part of a pipeline.

#[derive(clap::Args)]
pub(super) struct BenchNetArgs {
    /// Fusion strategy.
    #[arg(long, default_value = "learned-kernel")]
    fusion: String,
    /// Tile side (the receptive-radius halo is added).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Latent width.
    #[arg(long, default_value_t = 16)]
    width: usize,
    /// Classes.
    #[arg(long, default_value_t = 7)]
    classes: usize,
    /// Monte Carlo passes: 0 times the deterministic forward pass only; N > 0 the full
    /// prediction with N passes.
    #[arg(long, default_value_t = 0)]
    passes: usize,
    /// Device: cpu, wgpu or auto; cpu-burn runs inference through burn's Flex operators
    /// instead of geofuse's native CPU kernels (for comparison).
    #[arg(long, default_value = "cpu", value_parser = ["auto", "cpu", "cpu-burn", "wgpu"])]
    device: String,
    /// Encoder of each branch: small or unet.
    #[arg(long, default_value = "small", value_parser = ["small", "unet"])]
    encoder: String,
    /// Time training steps instead of inference: batches of --batch random patches of
    /// --patch pixels, --steps steps (median printed).
    #[arg(long)]
    train: bool,
    /// Training: patches per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Training: patch side in pixels.
    #[arg(long, default_value_t = 32)]
    patch: usize,
    /// Training: timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Instead of timing: the same random network on --device and on the CPU (native
    /// kernels), its deterministic logits and full prediction (--passes, at least 1) on one
    /// tile; prints the largest difference of the logits, class probabilities and entropy.
    #[arg(long)]
    agree: bool,
    /// Kernel side of the kernel fusions (odd, <= 7).
    #[arg(long, default_value_t = 3)]
    kernel: usize,
    /// Learned kernel: window radius of the SAR registration (the pipeline's `align`; 0 =
    /// none).
    #[arg(long, default_value_t = 0)]
    align: usize,
}

/// The network `bench-net` times.
fn bench_spec(a: &BenchNetArgs) -> crate::Result<crate::learned::NetSpec> {
    use crate::learned::{EncoderKind, Fusion, NetSpec};
    let f = Fusion::from_name(&a.fusion).ok_or_else(|| {
        crate::Error::config("--fusion", format!("unknown fusion `{}`", a.fusion))
    })?;
    let encoder = if a.encoder == "unet" {
        EncoderKind::Unet
    } else {
        EncoderKind::Small
    };
    if a.kernel.is_multiple_of(2) || a.kernel > 7 {
        return Err(crate::Error::config("--kernel", "must be odd and <= 7"));
    }
    if a.align > 0 && f != Fusion::LearnedKernel {
        return Err(crate::Error::config(
            "--align",
            "applies to --fusion learned-kernel only",
        ));
    }
    Ok(NetSpec {
        encoder,
        kernel: a.kernel,
        align: a.align,
        ..NetSpec::raw(f, a.width, a.classes)
    })
}

/// `bench-net --agree`: one random network's prediction on --device against the CPU's.
fn bench_agree(a: &BenchNetArgs, spec: crate::learned::NetSpec) -> crate::Result<()> {
    use crate::learned::{LearnedModel, Runtime};
    let cpu = Runtime::new("cpu")?;
    let passes = a.passes.max(1);
    let model = LearnedModel::random(&cpu, spec, 0.5, passes, 1);
    let dir = std::env::temp_dir().join(format!("geofuse-agree-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, "create", e))?;
    let stem = dir.join("net");
    model.save(&stem)?;
    let other = LearnedModel::load(&stem, &Runtime::new(&a.device)?);
    let _ = std::fs::remove_dir_all(&dir);
    let (other, _) = other?;
    let side = a.size + 2 * model.halo();
    let mut rng = crate::rng::Rng::new(7);
    let raw = ndarray::Array3::from_shape_fn((spec.raw_bands(), side, side), |_| rng.f64() as f32);
    let (pc, ec) = model.predict(&raw, (0, 0));
    let (pd, ed) = other.predict(&raw, (0, 0));
    let worst = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max)
    };
    let dp = worst(pc.as_slice().unwrap_or(&[]), pd.as_slice().unwrap_or(&[]));
    let de = worst(ec.as_slice().unwrap_or(&[]), ed.as_slice().unwrap_or(&[]));
    let ((mc, _), (md, _)) = (model.forward(&raw), other.forward(&raw));
    let dl = worst(mc.as_slice().unwrap_or(&[]), md.as_slice().unwrap_or(&[]));
    println!(
        "{} ({} encoder), {} vs {}, tile {side}^2, {passes} MC passes",
        a.fusion,
        a.encoder,
        other.runtime_name(),
        model.runtime_name()
    );
    println!("max_abs_logit {dl:.3e}");
    println!("max_abs_prob {dp:.3e}");
    println!("max_abs_entropy {de:.3e}");
    Ok(())
}

/// `geofuse bench-net`.
pub(super) fn cmd_bench_net(a: BenchNetArgs) -> crate::Result<()> {
    use crate::learned::{LearnedModel, Runtime};
    let spec = bench_spec(&a)?;
    if a.agree {
        return bench_agree(&a, spec);
    }
    let rt = Runtime::new(&a.device)?;
    if a.train {
        if a.batch == 0 || a.patch < 8 || a.steps == 0 {
            return Err(crate::Error::config(
                "--batch/--patch/--steps",
                "give a positive batch and step count and a patch of 8 px or more",
            ));
        }
        let mut t = crate::learned::time_training_steps(&rt, spec, (a.batch, a.patch), a.steps);
        t.sort_by(f64::total_cmp);
        println!(
            "{} ({} encoder) training on {}, batch {} x {}^2 px, {} steps",
            a.fusion, a.encoder, rt.name, a.batch, a.patch, a.steps
        );
        println!("ms {:.2}", t[t.len() / 2]);
        return Ok(());
    }
    let passes = a.passes;
    let dropout = if passes > 1 { 0.5 } else { 0.0 };
    let model = LearnedModel::random(&rt, spec, dropout, passes, 1);
    let side = a.size + 2 * model.halo();
    let mut rng = crate::rng::Rng::new(7);
    let raw = ndarray::Array3::from_shape_fn((spec.raw_bands(), side, side), |_| rng.f64() as f32);
    let mut times = Vec::new();
    for i in 0..9 {
        let t = std::time::Instant::now();
        if passes == 0 {
            std::hint::black_box(model.forward(&raw));
        } else {
            std::hint::black_box(model.predict(&raw, (0, 0)));
        }
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{} ({} encoder) on {}, tile {}^2 + halo {}, {}",
        a.fusion,
        a.encoder,
        rt.name,
        a.size,
        model.halo(),
        if passes == 0 {
            "forward pass".to_string()
        } else {
            format!("prediction with {passes} MC passes")
        }
    );
    println!("ms {:.2}", times[times.len() / 2]);
    Ok(())
}
