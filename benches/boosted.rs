//! Histogram gradient-boosted trees: prediction with the virtual-ensemble uncertainty bands,
//! per pixel, and training, on the same data as `benches/forest.rs`.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use geofuse::classic::{Boosted, StackClassifier, TrainingSet};
use geofuse::config::BoostedSettings;
use geofuse::rng::Rng;
use geofuse::uncertainty::summarise;

fn data(n: usize, f: usize, k: usize, seed: u64) -> TrainingSet {
    let mut r = Rng::new(seed);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let c = r.below(k);
        let x = (0..f)
            .map(|j| if j % k == c { 1.0 } else { 0.0 } + r.normal() as f32)
            .collect();
        samples.push((i, c as u8, x));
    }
    TrainingSet::from_samples(samples, f, k)
}

fn bench(c: &mut Criterion) {
    let (f, k) = (34, 7);
    let train = data(14000, f, k, 1);
    let s = BoostedSettings {
        rounds: 100,
        learning_rate: 0.1,
        max_depth: 6,
        min_samples_leaf: 10,
        l2: 1.0,
        bins: 64,
        ensemble: 8,
    };
    let model = Boosted::fit(&s, &train, 1);
    let test = data(16384, f, k, 2);
    let mut g = c.benchmark_group("boosted");
    g.sample_size(10);
    g.throughput(Throughput::Elements(16384));
    g.bench_function("predict_block_100_rounds_with_uncertainty", |b| {
        b.iter(|| {
            let n = 16384;
            let mut p = vec![0f32; n * k];
            let mut e = vec![0f32; n];
            let mut acc = 0.0f32;
            for (xs, (ps, es)) in test
                .x
                .chunks(1024 * f)
                .zip(p.chunks_mut(1024 * k).zip(e.chunks_mut(1024)))
            {
                model.predict_block(xs, xs.len() / f, ps, es);
                for (pp, ee) in ps.chunks(k).zip(es.iter()) {
                    acc += summarise(pp, *ee).total;
                }
            }
            acc
        })
    });
    g.throughput(Throughput::Elements(14000));
    g.bench_function("train_100_rounds_14000_samples", |b| {
        b.iter(|| Boosted::fit(&s, &train, 1))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
