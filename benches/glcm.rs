//! GLCM texture throughput: sliding window vs brute force, 5x5 window, one offset.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use geofuse::features::glcm::{glcm_features, glcm_features_bruteforce, Definitions, GlcmParams};
use geofuse::rng::Rng;
use ndarray::Array2;

fn image(n: usize, levels: usize) -> Array2<u8> {
    // Spatially correlated grey levels (a smooth ramp plus noise), like a real band.
    let mut r = Rng::new(1);
    Array2::from_shape_fn((n, n), |(y, x)| {
        let v = ((x + y) as f64 / (2 * n) as f64 * levels as f64 + r.normal())
            .clamp(0.0, levels as f64 - 1.0);
        v as u8
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("glcm_5x5");
    g.sample_size(10);
    for levels in [8usize, 32] {
        let n = 512;
        let q = image(n, levels);
        let p = GlcmParams {
            radius: 2,
            offset: (1, 0),
            levels,
            definitions: Definitions::Otb,
        };
        g.throughput(Throughput::Elements((n * n) as u64));
        g.bench_with_input(BenchmarkId::new("sliding", levels), &q, |b, q| {
            b.iter(|| glcm_features(q.view(), &p))
        });
        let small = image(128, levels);
        g.throughput(Throughput::Elements((128 * 128) as u64));
        g.bench_with_input(BenchmarkId::new("bruteforce", levels), &small, |b, q| {
            b.iter(|| glcm_features_bruteforce(q.view(), &p))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
