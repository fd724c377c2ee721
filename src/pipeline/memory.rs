//! The memory limiter: while the process's resident memory is above a soft
//! limit, receivers refuse new data with a retryable answer before reading
//! or decoding it, and resume once memory drops back.
//!
//! Why RSS rather than counting bytes per request: what exhausts a sidecar
//! is everything at once (decoded requests, queues, processor state, the
//! allocator's slack), and RSS is the figure the kernel's OOM killer and the
//! container limit act on. The soft limit sits `spike_limit_mib` below
//! `limit_mib` so a burst between two checks does not cross the hard one.
//! Between two samples, the bytes receivers accepted since the last one
//! are added to it: a flood admitted faster than the sampling interval
//! (hundreds of concurrent 4 MB requests) is refused as soon as the
//! estimate (with the request bytes in flight) crosses the soft limit,
//! not a whole interval later.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLimiterConfig {
    /// The memory sidewatch must stay under, in MiB.
    pub limit_mib: u64,
    /// Headroom for bursts between checks; default a fifth of the limit.
    #[serde(default)]
    pub spike_limit_mib: Option<u64>,
    #[serde(default = "default_check", with = "crate::config::duration")]
    pub check_interval: Duration,
    /// Request bytes that may be in flight at once (read, decompressed,
    /// decoded), in MiB; default the spike headroom (see `in_flight`).
    #[serde(default)]
    pub in_flight_mib: Option<u64>,
}

fn default_check() -> Duration {
    Duration::from_millis(100)
}

impl MemoryLimiterConfig {
    fn spike_mib(&self) -> u64 {
        self.spike_limit_mib.unwrap_or(self.limit_mib / 5)
    }

    pub fn soft_limit_bytes(&self) -> u64 {
        self.limit_mib.saturating_sub(self.spike_mib()) * 1024 * 1024
    }

    pub fn in_flight_bytes(&self) -> usize {
        (self.in_flight_mib.unwrap_or(self.spike_mib()).max(1) * 1024 * 1024) as usize
    }

    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if self.limit_mib < 16 {
            errors.push((
                "limit_mib",
                format!(
                    "{} MiB is below what sidewatch needs to run (16)",
                    self.limit_mib
                ),
            ));
        }
        if self.spike_limit_mib.is_some_and(|s| s >= self.limit_mib) {
            errors.push((
                "spike_limit_mib",
                "must be below limit_mib: the soft limit is limit_mib - spike_limit_mib"
                    .to_string(),
            ));
        }
        if self.in_flight_mib == Some(0) {
            errors.push((
                "in_flight_mib",
                "must be at least 1: no request could be read".to_string(),
            ));
        }
        if self.check_interval.is_zero() {
            errors.push(("check_interval", "must be longer than 0".to_string()));
        }
        errors
    }
}

#[derive(Debug)]
pub struct MemoryLimiter {
    over: AtomicBool,
    /// The last sample of resident memory, in bytes.
    resident: AtomicU64,
    /// Request bytes accepted since that sample.
    accepted_since_sample: AtomicU64,
    /// Requests refused because memory was high.
    pub refused_requests: AtomicU64,
    pub soft_limit_bytes: u64,
    /// Request bytes in flight, against their own budget.
    pub in_flight: Arc<super::in_flight::InFlight>,
}

/// Resident memory of this process, from /proc/self/statm.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

impl MemoryLimiter {
    /// Starts checking every `check_interval` until `stop`.
    pub fn start(config: &MemoryLimiterConfig, stop: CancellationToken) -> Arc<Self> {
        let limiter = Arc::new(MemoryLimiter {
            over: AtomicBool::new(false),
            resident: AtomicU64::new(0),
            accepted_since_sample: AtomicU64::new(0),
            refused_requests: AtomicU64::new(0),
            soft_limit_bytes: config.soft_limit_bytes(),
            in_flight: super::in_flight::InFlight::new(config.in_flight_bytes()),
        });
        let checked = limiter.clone();
        let interval = config.check_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => checked.check(resident_bytes()),
                    _ = stop.cancelled() => return,
                }
            }
        });
        limiter
    }

    fn check(&self, resident: Option<u64>) {
        let Some(resident) = resident else {
            return;
        };
        self.resident.store(resident, Ordering::Relaxed);
        self.accepted_since_sample.store(0, Ordering::Relaxed);
        let over = resident > self.soft_limit_bytes;
        let was = self.over.swap(over, Ordering::Relaxed);
        if over != was {
            tracing::warn!(
                resident_mib = resident / (1024 * 1024),
                soft_limit_mib = self.soft_limit_bytes / (1024 * 1024),
                "{}",
                if over {
                    "memory above the soft limit: refusing new data until it drops"
                } else {
                    "memory back under the soft limit: accepting data again"
                }
            );
        }
    }

    /// Counts request bytes accepted into the pipelines (queues, state)
    /// until the next sample sees them.
    pub fn accepted(&self, bytes: usize) {
        self.accepted_since_sample
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// False while memory is high (as sampled, plus what was accepted
    /// since, plus what is in flight); the caller refuses the request.
    pub fn admits(&self) -> bool {
        // Bytes in flight count too (they may be counted in the sample
        // already; erring high keeps a flood's decompressed bytes under
        // the limit).
        let estimate = self
            .resident
            .load(Ordering::Relaxed)
            .saturating_add(self.accepted_since_sample.load(Ordering::Relaxed))
            .saturating_add(self.in_flight.used() as u64);
        if self.over.load(Ordering::Relaxed) || estimate > self.soft_limit_bytes {
            self.refused_requests.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_while_over_and_resumes_below() {
        let limiter = MemoryLimiter {
            over: AtomicBool::new(false),
            resident: AtomicU64::new(0),
            accepted_since_sample: AtomicU64::new(0),
            refused_requests: AtomicU64::new(0),
            soft_limit_bytes: 100,
            in_flight: crate::pipeline::in_flight::InFlight::new(1),
        };
        assert!(limiter.admits());
        limiter.check(Some(101));
        assert!(!limiter.admits());
        limiter.check(None);
        assert!(!limiter.admits(), "an unreadable figure changes nothing");
        limiter.check(Some(99));
        assert!(limiter.admits());
        assert_eq!(limiter.refused_requests.load(Ordering::Relaxed), 2);
        // Accepted since the sample counts until the next one.
        limiter.accepted(2);
        assert!(!limiter.admits(), "99 + 2 > 100");
        limiter.check(Some(50));
        assert!(limiter.admits());
        assert!(resident_bytes().unwrap() > 1024 * 1024);
    }

    #[test]
    fn the_soft_limit_leaves_room_for_spikes() {
        let config: MemoryLimiterConfig = yaml_serde::from_str("{ limit_mib: 100 }").unwrap();
        assert_eq!(config.soft_limit_bytes(), 80 * 1024 * 1024);
        assert_eq!(config.in_flight_bytes(), 20 * 1024 * 1024);
        let bad: MemoryLimiterConfig =
            yaml_serde::from_str("{ limit_mib: 8, spike_limit_mib: 8 }").unwrap();
        let fields: Vec<_> = bad.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["limit_mib", "spike_limit_mib"]);
    }
}
