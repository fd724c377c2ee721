//! The anomaly detector's cost at 10k series, as benches/stats.rs loads it
//! (one point for each series per step, series cloned from one template as
//! the connector does), in points per CPU second of the scoring thread:
//! points/s per core even when other work shares the machine. Also the
//! bytes per series (state plus heap) and a checksum of every score and
//! z-score, so two builds can be compared for identical results.
//!
//!   cargo run --release --example anomaly_cost -- [SERIES] [STEPS]

use std::hint::black_box;

use sidewatch::stats::anomaly::detector::{Detector, DetectorConfig};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("SERIES and STEPS are counts"))
        .collect();
    let series = args.first().copied().unwrap_or(10_000);
    let steps = args.get(1).copied().unwrap_or(200) as i64;
    let value = |i: usize, t: i64| 10.0 + (i % 7) as f64 + (t % 5) as f64;
    let mut detectors: Vec<Detector> =
        std::iter::repeat_n(Detector::new(DetectorConfig::default()), series).collect();
    // Past the warm-up, as in steady state.
    for t in 0..200 {
        for (i, d) in detectors.iter_mut().enumerate() {
            d.observe(t * 10, value(i, t));
        }
    }
    let mut checksum = 0u64;
    let (wall, cpu) = (std::time::Instant::now(), thread_cpu_seconds());
    for t in 200..200 + steps {
        for (i, d) in detectors.iter_mut().enumerate() {
            let o = black_box(d.observe(t * 10, value(i, t)));
            checksum = checksum
                .wrapping_mul(31)
                .wrapping_add(o.score.to_bits() ^ o.zscore.to_bits());
        }
    }
    let points = (series as i64 * steps) as f64;
    let cpu = thread_cpu_seconds() - cpu;
    let bytes: usize = detectors
        .iter()
        .map(|d| d.heap_bytes() + std::mem::size_of::<Detector>())
        .sum();
    println!(
        "{series} series x {steps} steps: {:.2} M points per CPU second, {:.2} M points/s wall, \
         {} bytes per series, checksum {checksum:016x}",
        points / cpu / 1e6,
        points / wall.elapsed().as_secs_f64() / 1e6,
        bytes / series,
    );
}

fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}
