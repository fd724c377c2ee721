//! Pure computation hot paths: sketch insert, merge and query; anomaly
//! detector points per second at 10k series.
//!
//!   cargo bench --bench stats

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sidewatch::stats::anomaly::detector::{Detector, DetectorConfig};
use sidewatch::stats::sketch::DDSketch;

/// Lognormal-ish latencies in seconds, deterministic.
fn latencies(n: usize) -> Vec<f64> {
    let mut state = 42u64;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            (0.05f64.ln() + 1.2 * (u * 6.0 - 3.0)).exp()
        })
        .collect()
}

fn sketch(c: &mut Criterion) {
    let values = latencies(100_000);
    let mut group = c.benchmark_group("sketch");
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function("insert 100k", |b| {
        b.iter_batched_ref(
            || DDSketch::new(0.01).unwrap(),
            |sketch| {
                for v in &values {
                    sketch.add(black_box(*v));
                }
            },
            BatchSize::SmallInput,
        )
    });
    let mut full = DDSketch::new(0.01).unwrap();
    for v in &values {
        full.add(*v);
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("merge", |b| {
        b.iter_batched_ref(
            || full.clone(),
            |s| s.merge(black_box(&full)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("quantile p99", |b| {
        b.iter(|| black_box(&full).quantile(black_box(0.99)))
    });
    group.finish();
    eprintln!(
        "sketch memory at 1% accuracy, 100k lognormal latencies: {} bytes",
        full.memory_bytes()
    );
}

fn detector(c: &mut Criterion) {
    const SERIES: usize = 10_000;
    // Clones of one template, as the connector starts its series: they
    // share the per-point parameters.
    let mut detectors: Vec<Detector> =
        std::iter::repeat_n(Detector::new(DetectorConfig::default()), SERIES).collect();
    // Warm every series past its warm-up, as in steady state.
    for t in 0..200 {
        for (i, d) in detectors.iter_mut().enumerate() {
            d.observe(t * 10, 10.0 + (i % 7) as f64 + (t % 5) as f64);
        }
    }
    let mut group = c.benchmark_group("anomaly detector");
    group.throughput(Throughput::Elements(SERIES as u64));
    let mut t = 200i64;
    group.bench_function("one point for each of 10k series", |b| {
        b.iter(|| {
            t += 1;
            for (i, d) in detectors.iter_mut().enumerate() {
                black_box(d.observe(t * 10, 10.0 + (i % 7) as f64 + (t % 5) as f64));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, sketch, detector);
criterion_main!(benches);
