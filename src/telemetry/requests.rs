//! Request rate, error ratio and latency percentiles of one receiver or
//! exporter over a sliding minute, for self-monitoring.
//!
//! One short lock per request (not per item) keeps this off the per-span
//! path; the window is 6 x 10 s sub-windows of a 1 %-accurate sketch, so it
//! costs a few KiB per component whatever the load.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::stats::sketch::DDSketch;
use crate::stats::window::{Mergeable, SlidingWindow};

pub const WINDOW: Duration = Duration::from_secs(60);
const SUB_WINDOWS: usize = 6;

#[derive(Debug, Clone)]
struct Slot {
    /// Latencies in seconds.
    latency: DDSketch,
    errors: u64,
}

impl Mergeable for Slot {
    fn merge_from(&mut self, other: &Self) {
        self.latency.merge_from(&other.latency);
        self.errors += other.errors;
    }

    fn clear(&mut self) {
        self.latency.clear();
        self.errors = 0;
    }
}

/// What the last minute looked like.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub requests_per_second: f64,
    /// Failed / all requests in the window; 0 without requests.
    pub error_ratio: f64,
    /// Latency quantiles in seconds, `None` without requests.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug)]
pub struct RequestWindow {
    window: Mutex<SlidingWindow<Slot>>,
    empty: Slot,
    created: Instant,
}

impl Default for RequestWindow {
    fn default() -> Self {
        let empty = Slot {
            latency: DDSketch::new(0.01).expect("1 % is a valid accuracy"),
            errors: 0,
        };
        RequestWindow {
            window: Mutex::new(SlidingWindow::new(
                WINDOW.as_nanos() as u64,
                SUB_WINDOWS,
                empty.clone(),
            )),
            empty,
            created: Instant::now(),
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl RequestWindow {
    pub fn record(&self, latency: Duration, failed: bool) {
        self.record_at(now_nanos(), latency, failed);
    }

    fn record_at(&self, now: u64, latency: Duration, failed: bool) {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = window.at(now, now) {
            slot.latency.add(latency.as_secs_f64());
            slot.errors += u64::from(failed);
        }
    }

    pub fn summary(&self) -> Summary {
        self.summary_at(now_nanos(), self.created.elapsed())
    }

    fn summary_at(&self, now: u64, age: Duration) -> Summary {
        let merged = {
            let window = self.window.lock().unwrap_or_else(|e| e.into_inner());
            window.merged(now, self.empty.clone())
        };
        let requests = merged.latency.count();
        if requests == 0 {
            return Summary::default();
        }
        // A process younger than the window has not had the whole minute.
        let seconds = age.min(WINDOW).as_secs_f64().max(1.0);
        Summary {
            requests_per_second: requests as f64 / seconds,
            error_ratio: merged.errors as f64 / requests as f64,
            p50: merged.latency.quantile(0.5),
            p95: merged.latency.quantile(0.95),
            p99: merged.latency.quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_errors_and_percentiles_over_the_last_minute() {
        let w = RequestWindow::default();
        let s = 1_000_000_000u64;
        let t0 = 1_700_000_000 * s;
        for i in 1..=100u64 {
            w.record_at(t0, Duration::from_millis(i), i % 4 == 0);
        }
        let summary = w.summary_at(t0, WINDOW * 2);
        assert!((summary.requests_per_second - 100.0 / 60.0).abs() < 1e-9);
        assert!((summary.error_ratio - 0.25).abs() < 1e-9);
        let p99 = summary.p99.unwrap();
        assert!((p99 - 0.099).abs() <= 0.001, "{p99}");
        let p50 = summary.p50.unwrap();
        assert!((p50 - 0.050).abs() <= 0.001, "{p50}");
        // A young process divides by its age, not by the whole minute.
        let young = w.summary_at(t0, Duration::from_secs(10));
        assert!((young.requests_per_second - 10.0).abs() < 1e-9);
        // Two minutes later all of it has slid out.
        assert_eq!(w.summary_at(t0 + 120 * s, WINDOW * 3), Summary::default());
    }
}
