//! Database receivers: `postgresql`, `mysql` and `redis`, in the
//! Collector's config shape and metric names, plus the derived figures
//! people look at first (cache hit ratios, connection use, slow and
//! long-running queries, replication lag) and a connectivity gauge per
//! server (`postgresql.up`, `mysql.up`, `redis.up`) for "unreachable for
//! 1m" alert rules.
//!
//! - `mod.rs` (here): the [`Scraper`] contract each database implements
//!   and the settings they share (endpoint, interval, deadline).
//! - `runner.rs`: the schedule: one task per receiver, runs on a fixed
//!   grid, a deadline per scrape, reconnection, errors counted and logged
//!   once per change of state.
//! - `postgresql.rs`, `mysql.rs`, `redis.rs`: one database each.
//!
//! Why not the checks scheduler: a check is stateless and reports
//! increments; a database scraper holds connections between runs and
//! reports the server's own cumulative counters, so its contract takes
//! `&mut self` and hands back finished metrics.

pub mod mysql;
pub mod postgresql;
pub mod redis;
pub mod runner;

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::hostmetrics::{MetricsBuilder, Number};
use super::{Receiver, ReceiverContext, StartedReceiver};

/// Why a scrape failed: `kind` is a stable token for the
/// `*.scrape.errors` counter's `error.type` and for telling one failure
/// from another when deciding what to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeError {
    pub kind: &'static str,
    pub message: String,
}

impl ScrapeError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ScrapeError {
            kind,
            message: message.into(),
        }
    }
}

/// One database server. `scrape` adds what it read to `metrics` and may
/// keep connections open for the next run; after a failed or timed-out
/// scrape the runner calls `failed`, where the scraper drops whatever
/// connection the failure may have left unusable, so the next scrape
/// reconnects.
#[async_trait::async_trait]
pub trait Scraper: Send {
    /// `postgresql`, `mysql` or `redis`: the prefix of the runner's own
    /// metrics and the scope's name.
    fn system(&self) -> &'static str;
    /// The endpoint as the user wrote it, for logs.
    fn endpoint(&self) -> &str;
    /// Resource attributes of every point (`server.address`, ...).
    fn resource(&self) -> Vec<KeyValue>;
    async fn scrape(&mut self, metrics: &mut MetricsBuilder) -> Result<(), ScrapeError>;
    /// The last scrape failed with `error` (kind `timeout`: cancelled at
    /// its deadline).
    fn failed(&mut self, error: &ScrapeError);
    /// The receiver stops.
    fn disconnect(&mut self);
}

/// The schedule every database receiver shares.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub collection_interval: Duration,
    /// Deadline of one scrape, connecting included.
    pub timeout: Duration,
    pub initial_delay: Duration,
}

/// Checks the schedule fields, naming the offending key.
pub fn check_schedule(
    collection_interval: Duration,
    timeout: Option<Duration>,
    initial_delay: Duration,
) -> Result<Schedule, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    if collection_interval.is_zero() {
        errors.push(("collection_interval", "expected a duration above 0".into()));
    }
    // A scrape never outlasts its interval, so runs never overlap.
    let timeout = timeout.unwrap_or_else(|| collection_interval.min(Duration::from_secs(10)));
    if timeout.is_zero() || timeout > collection_interval {
        errors.push((
            "timeout",
            format!(
                "expected a timeout above 0 and at most collection_interval ({})",
                humantime::format_duration(collection_interval)
            ),
        ));
    }
    if errors.is_empty() {
        Ok(Schedule {
            collection_interval,
            timeout,
            initial_delay,
        })
    } else {
        Err(errors)
    }
}

/// `host:port`, with `default_port` when the port is left out.
pub fn host_port(endpoint: &str, default_port: u16) -> Result<(String, u16), String> {
    let text = endpoint.trim();
    let (host, port) = match text.rsplit_once(':') {
        // An IPv6 address without brackets has colons but no port.
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{endpoint:?} has no valid port: expected host:port"))?;
            (host, port)
        }
        _ => (text, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{endpoint:?} has no host: expected host:port"));
    }
    Ok((host.to_string(), port))
}

/// The receiver: one scraper on one schedule.
pub struct DatabaseReceiver {
    scraper: Box<dyn Scraper>,
    schedule: Schedule,
}

impl DatabaseReceiver {
    pub fn new(scraper: Box<dyn Scraper>, schedule: Schedule) -> Self {
        DatabaseReceiver { scraper, schedule }
    }
}

#[async_trait::async_trait]
impl Receiver for DatabaseReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let tasks = match context.consumers.metrics.clone() {
            Some(consumer) => vec![runner::start(
                self.scraper,
                self.schedule,
                &context,
                consumer,
            )],
            None => Vec::new(),
        };
        Ok(StartedReceiver {
            addresses: Vec::new(),
            tasks,
        })
    }
}

/// What a config's `compile` refuses: (field, message) pairs.
pub type FieldErrors = Vec<(&'static str, String)>;

/// The registry's compile step the three databases share: decode `C`,
/// compile it with `compile` into its plan, or report each error at its
/// field under `path`.
pub fn compile_with<C, P>(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
    compile: fn(&C) -> Result<P, FieldErrors>,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>>
where
    C: serde::de::DeserializeOwned,
    P: crate::components::compiled::CompiledReceiver,
{
    let config: C = decoder.decode(value, path)?;
    match compile(&config) {
        Ok(plan) => Some(std::sync::Arc::new(plan)),
        Err(errors) => {
            crate::components::compiled::report(errors, path, decoder);
            None
        }
    }
}

/// How a metric is reported, in the Collector's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// A cumulative sum; monotonic for counters, not for levels.
    Sum {
        monotonic: bool,
    },
}

/// One metric a scraper may report: the table each database keeps of
/// these is the documentation of its output.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub description: &'static str,
    pub kind: Kind,
}

pub const fn gauge(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        unit,
        description,
        kind: Kind::Gauge,
    }
}

/// A monotonic cumulative sum (a counter).
pub const fn counter(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        unit,
        description,
        kind: Kind::Sum { monotonic: true },
    }
}

/// A non-monotonic cumulative sum (a level the Collector reports as a sum).
pub const fn level(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        unit,
        description,
        kind: Kind::Sum { monotonic: false },
    }
}

/// The points of one scrape, by metric name, turned into metrics in the
/// order of the scraper's table.
#[derive(Default)]
pub struct Points {
    points: std::collections::HashMap<&'static str, Vec<(Number, Vec<KeyValue>)>>,
}

impl Points {
    pub fn int(&mut self, name: &'static str, value: i64, attributes: Vec<KeyValue>) {
        self.points
            .entry(name)
            .or_default()
            .push((Number::Int(value), attributes));
    }

    pub fn double(&mut self, name: &'static str, value: f64, attributes: Vec<KeyValue>) {
        if value.is_finite() {
            self.points
                .entry(name)
                .or_default()
                .push((Number::Double(value), attributes));
        }
    }

    pub fn emit(mut self, specs: &[MetricSpec], metrics: &mut MetricsBuilder) {
        for spec in specs {
            let Some(points) = self.points.remove(spec.name) else {
                continue;
            };
            match spec.kind {
                Kind::Gauge => metrics.gauge(spec.name, spec.unit, spec.description, points),
                Kind::Sum { monotonic } => {
                    metrics.sum(spec.name, spec.unit, spec.description, monotonic, points)
                }
            }
        }
        debug_assert!(
            self.points.is_empty(),
            "metrics missing from the table: {:?}",
            self.points.keys().collect::<Vec<_>>()
        );
    }
}

/// A ratio, or nothing when the denominator is 0 (no reads yet: a hit
/// ratio of 0 would fire "cache hit ratio below 0.9" on an idle server).
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_with_default_ports() {
        assert_eq!(host_port("db:5433", 5432).unwrap(), ("db".into(), 5433));
        assert_eq!(host_port("db", 5432).unwrap(), ("db".into(), 5432));
        assert_eq!(host_port("[::1]:6380", 6379).unwrap(), ("::1".into(), 6380));
        assert_eq!(host_port("::1", 6379).unwrap(), ("::1".into(), 6379));
        assert!(host_port("db:x", 1).is_err());
        assert!(host_port(":5432", 1).is_err());
    }

    #[test]
    fn timeout_defaults_inside_the_interval() {
        let s = check_schedule(Duration::from_secs(2), None, Duration::ZERO).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(2));
        let s = check_schedule(Duration::from_secs(60), None, Duration::ZERO).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(10));
        let errors = check_schedule(
            Duration::from_secs(1),
            Some(Duration::from_secs(5)),
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(errors[0].0, "timeout");
    }

    #[test]
    fn ratios_need_a_denominator() {
        assert_eq!(ratio(9.0, 10.0), Some(0.9));
        assert_eq!(ratio(0.0, 0.0), None);
    }
}
