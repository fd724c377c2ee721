//! Pins the detector's output on fixed synthetic series to the values the
//! code gave before its speed work (issue 21): any change meant only to
//! make it faster must leave every score, z-score and expected value
//! bit-identical, and this test fails on the first that does not.
//!
//! Two series: five-minute points over six weeks with a daily and a weekly
//! cycle (both seasonal baselines learn and get chosen), a spike, a level
//! shift and a gap; and ten-second integer counts (the quantisation step,
//! many points per seasonal bucket). The fingerprint is FNV-1a over the
//! bits of every observation.

use super::detector::{Detector, DetectorConfig, Method, Observation};
use super::stationary_noise::Rng;

fn seasonal_series() -> Vec<(i64, f64)> {
    let mut rng = Rng::new(21);
    let mut points = Vec::new();
    let mut t = 1_699_999_800i64;
    for i in 0..12_500usize {
        t += 300;
        if (7_000..7_040).contains(&i) {
            continue; // a scrape gap of 40 points
        }
        let day = (t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
        let weekend = if (t / 86_400 + 4) % 7 >= 5 { -8.0 } else { 0.0 };
        let spike = if i == 9_000 { 40.0 } else { 0.0 };
        let shift = if i >= 11_000 { 15.0 } else { 0.0 };
        let v = 60.0 + 12.0 * day.sin() + weekend + spike + shift + 1.5 * rng.gauss();
        points.push((t, v));
    }
    points
}

fn counts_series() -> Vec<(i64, f64)> {
    let mut rng = Rng::new(5);
    (0..30_000i64)
        .map(|i| {
            let limit = (-6.0f64).exp();
            let (mut k, mut p) = (0.0, rng.uniform());
            while p > limit {
                k += 1.0;
                p *= rng.uniform();
            }
            let burst = if (25_000..25_030).contains(&i) {
                12.0
            } else {
                0.0
            };
            (1_700_000_000 + i * 10, k + burst)
        })
        .collect()
}

struct Fingerprint {
    hash: u64,
    anomalous: usize,
    score_sum: f64,
}

fn fingerprint(config: DetectorConfig, points: &[(i64, f64)]) -> Fingerprint {
    let mut d = Detector::new(config);
    let mut f = Fingerprint {
        hash: 0xcbf2_9ce4_8422_2325,
        anomalous: 0,
        score_sum: 0.0,
    };
    for (t, v) in points {
        let Observation {
            zscore,
            score,
            expected,
            is_anomalous,
        } = d.observe(*t, *v);
        for bits in [
            score.to_bits(),
            zscore.to_bits(),
            expected.to_bits(),
            u64::from(is_anomalous),
        ] {
            for byte in bits.to_le_bytes() {
                f.hash = (f.hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        f.anomalous += usize::from(is_anomalous);
        f.score_sum += score;
    }
    f
}

fn check(name: &str, config: DetectorConfig, points: &[(i64, f64)], want: (u64, usize, f64)) {
    let f = fingerprint(config, points);
    assert_eq!(
        (f.hash, f.anomalous, f.score_sum),
        want,
        "{name}: scores changed ({:#018x}, {}, {:?})",
        f.hash,
        f.anomalous,
        f.score_sum
    );
}

#[test]
fn scores_are_pinned_to_the_values_before_the_speed_work() {
    let seasonal = seasonal_series();
    let counts = counts_series();
    check(
        "seasonal, defaults",
        DetectorConfig::default(),
        &seasonal,
        (0x9820_b9aa_89ba_b85b, 50, 411.1020474209461),
    );
    check(
        "counts, defaults",
        DetectorConfig::default(),
        &counts,
        (0x07d5_3d8a_7d64_57e4, 3, 971.45900808241),
    );
    for (name, method, want) in [
        (
            "rolling z",
            Method::RollingZ { window: 100 },
            (0x11bb_6539_6ba4_8ed0, 27, 422.3084639183199),
        ),
        (
            "robust",
            Method::Robust { window: 60 },
            (0xc8a2_8786_8aca_a6a9, 80, 423.45782837091195),
        ),
    ] {
        let config = DetectorConfig {
            method,
            ..DetectorConfig::default()
        };
        check(name, config, &seasonal, want);
    }
}
