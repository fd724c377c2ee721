//! Store figures: bytes per sample on disk (snapshot size / samples) for
//! regular gauges and counters, ingest samples per second on one core,
//! query latency over 1,000 series for 1 h (raw tier) and 1 d (5 m tier),
//! and the RSS with 10,000 active series.
//!
//! `cargo run --release --example store_bench`

use std::time::Instant;

use sidewatch::exporters::wal::Fsync;
use sidewatch::store::Store;
use sidewatch::store::engine::Labels;
use sidewatch::store::ingest::Groups;
use sidewatch::store::persist::Sample;
use sidewatch::store::promql;
use sidewatch::store::tier::Tier;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

fn labels(i: usize) -> Labels {
    let name = if i.is_multiple_of(2) {
        "requests_total"
    } else {
        "temperature"
    };
    vec![
        ("__name__".into(), name.into()),
        ("instance".into(), format!("host-{}", i % 50)),
        ("job".into(), "app".into()),
        ("series".into(), i.to_string()),
    ]
}

fn value(i: usize, step: usize) -> f64 {
    if i.is_multiple_of(2) {
        (step * (1 + i % 7)) as f64
    } else {
        20.0 + ((step + i) % 11) as f64 * 0.5
    }
}

/// `series` series at 10 s for `steps` steps, in batches of one step.
fn fill(store: &Store, series: usize, steps: usize, t0: i64) -> (usize, f64) {
    let label_sets: Vec<Labels> = (0..series).map(labels).collect();
    let started = Instant::now();
    let mut samples = 0;
    for step in 0..steps {
        let mut groups = Groups::new();
        for (i, l) in label_sets.iter().enumerate() {
            groups.insert(
                l.clone(),
                vec![Sample {
                    time: t0 + step as i64 * 10_000,
                    value: value(i, step),
                    accumulate: false,
                }],
            );
        }
        store.append(&groups).unwrap();
        samples += series;
    }
    (samples, started.elapsed().as_secs_f64())
}

fn main() {
    let t0 = 1_700_000_000_000;
    // 1. Bytes per sample and ingest: 1,000 series, 1 h at 10 s, raw only.
    let dir = tempfile::tempdir().unwrap();
    let raw_only = vec![Tier {
        resolution_ms: 0,
        keep_ms: 3_600_000,
    }];
    let (store, _) = Store::open(dir.path(), raw_only, 100_000, u64::MAX, Fsync::Never).unwrap();
    let (samples, seconds) = fill(&store, 1000, 360, t0);
    let bytes = store.snapshot().unwrap();
    println!(
        "raw tier, 1000 series x 360 samples: {:.2} bytes/sample on disk (snapshot {bytes} B, labels included); ingest {:.0} samples/s on one thread (write-ahead log, fsync never)",
        bytes as f64 / samples as f64,
        samples as f64 / seconds
    );
    drop(store);

    // 2. Query latency: 1,000 series, one day at 10 s, default tiers.
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        dir.path(),
        Tier::defaults(),
        100_000,
        u64::MAX,
        Fsync::Never,
    )
    .unwrap();
    let (samples, seconds) = fill(&store, 1000, 8640, t0);
    println!(
        "default tiers, 1000 series x 1 day at 10 s: ingest {:.0} samples/s on one thread",
        samples as f64 / seconds
    );
    store.snapshot().unwrap();
    let end = t0 + 8639 * 10_000;
    for (what, range, step) in [
        ("1h", 3_600_000, 15_000),
        ("1d", 86_400_000 - 1_800_000, 300_000),
    ] {
        let query = "sum by (instance) (rate(requests_total[15m]))";
        let started = Instant::now();
        let rounds = 5;
        let mut points = 0;
        for _ in 0..rounds {
            let result =
                store.read(|e| promql::range_query(e, query, end - range, end, step).unwrap());
            points = result.iter().map(|s| s.1.len()).sum::<usize>();
        }
        println!(
            "query {what} (step {} s) `{query}` over 500 counters: {:.1} ms, {points} points",
            step / 1000,
            started.elapsed().as_secs_f64() * 1000.0 / rounds as f64
        );
    }
    drop(store);

    // 3. RSS at 10,000 active series, 1 h at 10 s, default tiers.
    let before = rss_kib();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        dir.path(),
        Tier::defaults(),
        100_000,
        u64::MAX,
        Fsync::Never,
    )
    .unwrap();
    fill(&store, 10_000, 360, t0);
    store.snapshot().unwrap();
    println!(
        "10000 series x 1 h: RSS {} MiB (process), {} MiB grown by the store",
        rss_kib() / 1024,
        rss_kib().saturating_sub(before) / 1024
    );
}
