//! Learned-model inference throughput on the CPU (burn Flex backend): one 256 x 256 tile plus
//! halo, per fusion strategy, with 8 Monte Carlo passes (head only) and with a single pass.
//! `GEOFUSE_BENCH_DEVICE=wgpu` runs the same on wgpu.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use geofuse::config::ClassDef;
use geofuse::learned::{Fusion, LearnedModel, NetSpec, Runtime, TrainConfig, RAW_BANDS};
use geofuse::rng::Rng;
use ndarray::Array3;

fn bench(c: &mut Criterion) {
    let device = std::env::var("GEOFUSE_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let rt = Runtime::new(&device).expect("device");
    let classes: Vec<ClassDef> = (1..=7)
        .map(|i| ClassDef {
            id: i,
            name: format!("c{i}"),
            color: "#808080".into(),
        })
        .collect();
    let bands: Vec<String> = geofuse::synth::BANDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut g = c.benchmark_group(format!("learned_inference_{device}"));
    g.sample_size(10);
    for (fusion, passes) in [
        (Fusion::LearnedKernel, 8),
        (Fusion::LearnedKernel, 1),
        (Fusion::Concat, 8),
        (Fusion::Early, 8),
    ] {
        let config = TrainConfig {
            spec: NetSpec {
                fusion,
                width: 16,
                kernel: 3,
                classes: 7,
                extra_opt: 0,
                extra_sar: 0,
            },
            epochs: 1,
            patience: 1,
            batch: 1,
            learning_rate: 1e-3,
            modality_dropout: 0.0,
            dropout: if passes > 1 { 0.2 } else { 0.0 },
            mc_passes: passes,
            seed: 1,
        };
        let model = LearnedModel::untrained(&rt, &config, &classes, &bands);
        let n = 256 + 2 * model.halo();
        let mut r = Rng::new(2);
        let raw = Array3::from_shape_fn((RAW_BANDS, n, n), |_| r.normal() as f32);
        g.throughput(Throughput::Elements(256 * 256));
        g.bench_with_input(
            BenchmarkId::new(format!("{fusion:?}"), format!("{passes}_passes")),
            &raw,
            |b, raw| b.iter(|| model.predict(raw, (0, 0))),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
