//! Feature stack of one 256 x 256 tile (indices, Lee-filtered SAR, GLCM on B08 and VV).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use geofuse::config::Pipeline;
use geofuse::features::TileInputs;
use geofuse::rng::Rng;
use geofuse::scene::FeaturePlan;
use ndarray::Array3;

fn bench(c: &mut Criterion) {
    let text = geofuse::synth::pipeline_toml("out", ".", "s");
    let p: Pipeline = toml::from_str(&text).unwrap();
    let bands: Vec<String> = geofuse::synth::BANDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let plan = FeaturePlan::new(
        &p.features,
        &bands,
        1e-4,
        0.0,
        &[(0.0, 5000.0), (-25.0, 0.0)],
    );
    let n = 256 + 2 * plan.halo;
    let mut r = Rng::new(3);
    let inputs = TileInputs {
        optical_dn: Array3::from_shape_fn((10, n, n), |_| 500.0 + 3000.0 * r.f64() as f32),
        sar_linear: Array3::from_shape_fn((2, n, n), |_| 0.01 + 0.2 * r.f64() as f32),
        sar_pols: geofuse::features::Polarisation::ALL.to_vec(),
        season: None,
    };
    let mut g = c.benchmark_group("features");
    g.sample_size(10);
    g.throughput(Throughput::Elements((n * n) as u64));
    g.bench_function(format!("demo_stack_{}_features", plan.names.len()), |b| {
        b.iter(|| plan.compute(&inputs))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
