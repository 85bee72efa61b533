//! Random forest prediction with uncertainty bands, per pixel.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use geofuse::classic::{Forest, ForestParams};
use geofuse::rng::Rng;
use geofuse::uncertainty::summarise;

fn data(n: usize, f: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let mut r = Rng::new(seed);
    let mut x = Vec::with_capacity(n * f);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let c = r.below(k);
        for j in 0..f {
            x.push(if j % k == c { 1.0 } else { 0.0 } + r.normal() as f32);
        }
        y.push(c as u8);
    }
    (x, y)
}

fn bench(c: &mut Criterion) {
    let (f, k) = (34, 7);
    let (x, y) = data(14000, f, k, 1);
    let params = ForestParams {
        trees: 100,
        max_depth: 18,
        min_samples_leaf: 2,
        mtry: 6,
        seed: 1,
    };
    let forest = Forest::train(&x, &y, f, k, &[1.0; 7], &params);
    let (xt, _) = data(16384, f, k, 2);
    let mut g = c.benchmark_group("forest");
    g.sample_size(10);
    g.throughput(Throughput::Elements(16384));
    g.bench_function("predict_100_trees_with_uncertainty", |b| {
        b.iter(|| {
            let mut acc = 0.0f32;
            let mut p = vec![0f32; k];
            for row in xt.chunks(f) {
                p.iter_mut().for_each(|v| *v = 0.0);
                let e = forest.predict_into(row, &mut p);
                acc += summarise(&p, e).total;
            }
            acc
        })
    });
    g.bench_function("predict_block_100_trees_with_uncertainty", |b| {
        b.iter(|| {
            let n = 16384;
            let mut p = vec![0f32; n * k];
            let mut e = vec![0f32; n];
            let mut acc = 0.0f32;
            for (xs, (ps, es)) in xt
                .chunks(1024 * f)
                .zip(p.chunks_mut(1024 * k).zip(e.chunks_mut(1024)))
            {
                forest.predict_block(xs, xs.len() / f, ps, es);
                for (pp, ee) in ps.chunks(k).zip(es.iter()) {
                    acc += summarise(pp, *ee).total;
                }
            }
            acc
        })
    });
    g.throughput(Throughput::Elements(14000));
    g.bench_function("train_100_trees_14000_samples", |b| {
        b.iter(|| Forest::train(&x, &y, f, k, &[1.0; 7], &params))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
