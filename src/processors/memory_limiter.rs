//! `memory_limiter` as the Collector writes it, a processor: sidewatch
//! has one process-wide limiter (`service.memory_limiter`, which refuses
//! data at the receivers before it is read), so each `memory_limiter`
//! processor is compiled onto that one. Several, in several pipelines,
//! share one limit: the lowest written. The processor itself then passes
//! data through unchanged.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::Processor;
use crate::pipeline::memory::MemoryLimiterConfig;
use crate::signal::Batch;

/// The Collector's fields: a limit in MiB or as a share of the memory
/// available (the cgroup's limit when there is one, else the machine's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorMemoryLimiterConfig {
    #[serde(default = "default_check", with = "crate::config::duration")]
    pub check_interval: Duration,
    pub limit_mib: Option<u64>,
    pub spike_limit_mib: Option<u64>,
    pub limit_percentage: Option<u64>,
    pub spike_limit_percentage: Option<u64>,
}

fn default_check() -> Duration {
    Duration::from_secs(1)
}

impl CollectorMemoryLimiterConfig {
    /// The limiter this processor asks for, or (field, message) errors.
    pub fn compile(
        &self,
        total_mib: Option<u64>,
    ) -> Result<MemoryLimiterConfig, Vec<(&'static str, String)>> {
        let percent = |field: &'static str, value: Option<u64>| {
            match value {
            Some(p) if p == 0 || p > 100 => Err((field, format!("{p} is not a percentage from 1 to 100"))),
            Some(p) => match total_mib {
                Some(total) => Ok(Some(total * p / 100)),
                None => Err((
                    field,
                    "the memory available is unknown here (no cgroup limit, no /proc/meminfo): write limit_mib"
                        .to_string(),
                )),
            },
            None => Ok(None),
        }
        };
        let mut errors = Vec::new();
        let limit = match (
            self.limit_mib,
            percent("limit_percentage", self.limit_percentage),
        ) {
            (Some(_), Ok(Some(_))) => {
                errors.push((
                    "limit_percentage",
                    "set limit_mib or limit_percentage, not both".to_string(),
                ));
                None
            }
            (Some(mib), _) => Some(mib),
            (None, Ok(Some(mib))) => Some(mib),
            (None, Ok(None)) => {
                errors.push((
                    "limit_mib",
                    "expected limit_mib or limit_percentage".to_string(),
                ));
                None
            }
            (None, Err(e)) => {
                errors.push(e);
                None
            }
        };
        let spike = match (
            self.spike_limit_mib,
            percent("spike_limit_percentage", self.spike_limit_percentage),
        ) {
            (Some(mib), _) => Some(mib),
            (None, Ok(spike)) => spike,
            (None, Err(e)) => {
                errors.push(e);
                None
            }
        };
        let Some(limit_mib) = limit else {
            return Err(errors);
        };
        let config = MemoryLimiterConfig {
            limit_mib,
            spike_limit_mib: spike,
            check_interval: self.check_interval,
            in_flight_mib: None,
        };
        errors.extend(config.validate());
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

/// The memory this process may use, in MiB: the cgroup v2 limit if set,
/// else the machine's total.
pub fn available_mib() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    let bytes = match (cgroup, machine) {
        (Some(c), Some(m)) => c.min(m),
        (c, m) => c.or(m)?,
    };
    Some(bytes / (1024 * 1024))
}

/// Passes data through: the limit is enforced at the receivers.
pub struct MemoryLimiterProcessor;

impl Processor for MemoryLimiterProcessor {
    fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
        out.push(batch);
    }

    fn accepts_wire(&self) -> bool {
        true
    }
}

/// Never built into a pipeline: the plan moves it onto
/// `service.memory_limiter`; this is the pass-through it would be.
impl crate::components::compiled::CompiledProcessor for MemoryLimiterConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(MemoryLimiterProcessor)
    }
}

/// The registry's compile step for `memory_limiter`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    let config: CollectorMemoryLimiterConfig = decoder.decode(value, path)?;
    match config.compile(available_mib()) {
        Ok(config) => Some(std::sync::Arc::new(config)),
        Err(errors) => {
            for (field, message) in errors {
                decoder.error(path.key(field), message);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> CollectorMemoryLimiterConfig {
        yaml_serde::from_str(text).unwrap()
    }

    #[test]
    fn mib_and_percentages_compile_onto_one_limit() {
        let c = config("{ check_interval: 1s, limit_mib: 400, spike_limit_mib: 100 }")
            .compile(None)
            .unwrap();
        assert_eq!((c.limit_mib, c.spike_limit_mib), (400, Some(100)));
        let c = config("{ limit_percentage: 80, spike_limit_percentage: 25 }")
            .compile(Some(1000))
            .unwrap();
        assert_eq!((c.limit_mib, c.spike_limit_mib), (800, Some(250)));
        let errors = config("{ check_interval: 1s }")
            .compile(Some(1000))
            .unwrap_err();
        assert_eq!(errors[0].0, "limit_mib");
        let errors = config("{ limit_percentage: 150 }")
            .compile(Some(1000))
            .unwrap_err();
        assert_eq!(errors[0].0, "limit_percentage");
    }
}
