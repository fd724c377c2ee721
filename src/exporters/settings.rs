//! Settings every queued exporter shares, with the Collector's names and
//! defaults (`timeout`, `sending_queue`, `retry_on_failure`).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// The Collector's switch: accepted, but sidewatch always queues (the
    /// queue is how backpressure reaches the receivers); `false` is
    /// refused when the config is read.
    pub enabled: bool,
    /// Batches the queue holds; when full, receivers refuse new data with a
    /// retryable answer instead of growing memory (or wait: below).
    pub queue_size: usize,
    /// When full, hold the client's request until there is room instead of
    /// refusing it (the Collector's `block_on_overflow`): for clients that
    /// do not retry. The client's own deadline bounds the wait.
    pub block_on_overflow: bool,
    /// Workers sending concurrently.
    pub num_consumers: usize,
    /// A directory for a write-ahead log: every batch is on disk before the
    /// client is answered, and what was not delivered survives a crash or
    /// restart. Absent: the queue is in memory only.
    pub storage: Option<std::path::PathBuf>,
    /// When the log is flushed to the disk itself: `always` (before each
    /// answer; survives power loss) or `never` (the OS decides; survives a
    /// crash of sidewatch, not of the machine).
    pub fsync: super::wal::Fsync,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            queue_size: 1000,
            block_on_overflow: false,
            num_consumers: 4,
            storage: None,
            fsync: super::wal::Fsync::Always,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub enabled: bool,
    #[serde(with = "crate::config::duration")]
    pub initial_interval: Duration,
    #[serde(with = "crate::config::duration")]
    pub max_interval: Duration,
    /// Give up on a batch after this long; 0 means retry until shutdown.
    #[serde(with = "crate::config::duration")]
    pub max_elapsed_time: Duration,
    pub multiplier: f64,
    /// Each delay is drawn from delay * [1 - f, 1 + f], so clients that
    /// failed together do not retry together.
    pub randomization_factor: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

impl RetrySettings {
    /// The delay before attempt `attempt + 1` (attempt counts from 0).
    pub fn backoff(&self, attempt: u32, random_unit: f64) -> Duration {
        let base = self.initial_interval.as_secs_f64() * self.multiplier.powi(attempt as i32);
        let base = base.min(self.max_interval.as_secs_f64());
        let spread = self.randomization_factor.clamp(0.0, 1.0);
        let factor = 1.0 - spread + 2.0 * spread * random_unit.clamp(0.0, 1.0);
        Duration::from_secs_f64((base * factor).max(0.0))
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `timeout`, `sending_queue` and `retry_on_failure`, embedded in every
/// queued exporter's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterSettings {
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

impl Default for ExporterSettings {
    fn default() -> Self {
        ExporterSettings {
            timeout: default_timeout(),
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let retry = RetrySettings::default();
        assert_eq!(retry.backoff(0, 0.5), Duration::from_secs(5));
        assert_eq!(retry.backoff(1, 0.5), Duration::from_secs_f64(7.5));
        assert_eq!(retry.backoff(20, 0.5), Duration::from_secs(30));
        assert_eq!(retry.backoff(0, 0.0), Duration::from_secs_f64(2.5));
        assert_eq!(retry.backoff(0, 1.0), Duration::from_secs_f64(7.5));
    }
}
