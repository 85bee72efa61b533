//! Learned-model inference throughput on the CPU (geofuse's native kernels; `cpu-burn`: burn's Flex operators): one 256 x 256 tile plus
//! halo, per fusion strategy, with 8 Monte Carlo passes (head only) and with a single pass.
//! `GEOFUSE_BENCH_DEVICE=wgpu` runs the same on wgpu.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use geofuse::learned::{Fusion, LearnedModel, NetSpec, Runtime, RAW_BANDS};
use geofuse::rng::Rng;
use ndarray::Array3;

fn bench(c: &mut Criterion) {
    let device = std::env::var("GEOFUSE_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let rt = Runtime::new(&device).expect("device");
    let mut g = c.benchmark_group(format!("learned_inference_{device}"));
    g.sample_size(10);
    for (fusion, passes) in [
        (Fusion::LearnedKernel, 8),
        (Fusion::LearnedKernel, 1),
        (Fusion::Concat, 8),
        (Fusion::Early, 8),
    ] {
        let dropout = if passes > 1 { 0.2 } else { 0.0 };
        let model = LearnedModel::random(&rt, NetSpec::raw(fusion, 16, 7), dropout, passes, 1);
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
