//! `logpatterns` connector: logs in; logs (each record stamped with its
//! pattern, plus an event when a new pattern appears) and metrics (per
//! pattern counts) out. The mining is [`crate::logpatterns::Miner`].
//!
//! ```yaml
//! connectors:
//!   logpatterns: { storage: /var/lib/sidewatch, interval: 10s, learning_period: 10m }
//! service:
//!   pipelines:
//!     logs:           { receivers: [filelog], exporters: [logpatterns] }
//!     logs/patterns:  { receivers: [logpatterns], exporters: [otlp] }
//!     metrics/logs:   { receivers: [logpatterns], exporters: [prometheus, alert] }
//! ```
//!
//! Every `interval`, for every live pattern (at most `miner.max_templates`):
//! - `log.pattern.count`: lines matched since the pattern was learned, a
//!   cumulative monotonic sum (it continues across restarts with
//!   `storage`);
//! - `log.pattern.lines`: lines matched in the last interval, a gauge, for
//!   the `alert` (`value: sum, window: 1m`) and `anomaly` connectors;
//!
//! both with `log.pattern.id` (stable: the hash of the template as first
//! learned) and `log.pattern.template` (its text now, which generalises as
//! variables are found: a new text is a new series, with the same id).
//! And `log.pattern.new`: patterns first seen after `learning_period` in
//! the last interval, by `log.severity` of the line that brought them.
//!
//! Records pass on with `log.pattern.id` added; a pattern first seen after
//! the learning period also emits a record with event name
//! `sidewatch.log_pattern.new`. Lines are mined from the body (or from
//! `attribute`); records without text pass unstamped.
//!
//! State (`<storage>/<connector id>.logpatterns.json`) is written every
//! `interval` and at shutdown, with a temporary file and a rename.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};

use crate::components::compiled::{CompiledConnector, ConnectorContext};
use crate::config::storage::{StatePath, Storage};
use crate::logpatterns::{Miner, MinerConfig, PatternId};
use crate::otlp::time::unix_nanos as nanos;
use crate::otlp::value::string_kv as text;
use crate::processors::Processor;
use crate::processors::state_write::StateWrite;
use crate::signal::Batch;
use crate::telemetry::cardinality::CardinalityStats;

pub const NEW_PATTERN_EVENT: &str = "sidewatch.log_pattern.new";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPatternsConfig {
    /// Directory where patterns, ids and counts survive restarts.
    pub storage: Option<StatePath>,
    /// Mine this attribute's text instead of the body.
    pub attribute: Option<String>,
    /// How often the pattern metrics are emitted and the state saved.
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub interval: Duration,
    /// New patterns within this long of the first line ever seen are
    /// normal learning, not events.
    #[serde(default = "default_learning", with = "crate::config::duration")]
    pub learning_period: Duration,
    /// The miner's settings; the defaults are the measured ones.
    #[serde(default)]
    pub miner: MinerConfig,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_learning() -> Duration {
    Duration::from_secs(600)
}

impl LogPatternsConfig {
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if let Err(e) = self.miner.validate() {
            errors.push(("miner", e.to_string()));
        }
        if self.interval.is_zero() {
            errors.push(("interval", "must be above 0".to_string()));
        }
        errors
    }
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    format: String,
    /// Unix nanoseconds: the start time of the cumulative counts.
    started_at: u64,
    /// Unix nanoseconds of the first line ever mined.
    first_line_at: Option<u64>,
    miner: serde_json::Value,
}

const FORMAT: &str = "sidewatch.logpatterns.connector.v1";

/// The severity class of a record, by its severity number.
pub fn severity_class(number: i32) -> &'static str {
    match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "unspecified",
    }
}

const CLASSES: [&str; 7] = [
    "unspecified",
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "fatal",
];

pub struct LogPatternsConnector {
    miner: Miner,
    attribute: Option<String>,
    interval: Duration,
    learning_period: Duration,
    state_file: Option<PathBuf>,
    started_at: u64,
    first_line_at: Option<u64>,
    /// Lines per pattern id since the last emission.
    interval_lines: HashMap<PatternId, u64>,
    /// New patterns after learning since the last emission, by class.
    new_patterns: [u64; 7],
    next_emit: Option<SystemTime>,
    lines_at_save: Option<u64>,
    stats: Arc<CardinalityStats>,
}

fn state_file_name(id: &str) -> String {
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}.logpatterns.json")
}

impl CompiledConnector for LogPatternsConfig {
    fn build(&self, context: &ConnectorContext<'_>) -> Box<dyn Processor> {
        Box::new(LogPatternsConnector::new(context.id, self, context.storage))
    }
}

/// The registry's compile step for `logpatterns`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<Arc<dyn CompiledConnector>> {
    let config: LogPatternsConfig = decoder.decode(value, path)?;
    crate::components::compiled::report(config.validate(), path, decoder)
        .then(|| Arc::new(config) as Arc<dyn CompiledConnector>)
}

impl LogPatternsConnector {
    /// `id` names the state file, kept under `storage` only if `access`
    /// grants it (a replay does not); the config was validated.
    pub fn new(id: &str, config: &LogPatternsConfig, access: Storage) -> Self {
        let state_file = config
            .storage
            .as_ref()
            .and_then(|d| d.resolve(access))
            .map(|d| d.join(state_file_name(id)));
        let restored = state_file
            .as_ref()
            .and_then(|path| load(path, &config.miner));
        let (miner, started_at, first_line_at) = match restored {
            Some(r) => r,
            None => (
                Miner::new(config.miner.clone()).unwrap_or_default(),
                nanos(SystemTime::now()),
                None,
            ),
        };
        let stats = Arc::new(CardinalityStats::new(config.miner.max_templates));
        LogPatternsConnector {
            lines_at_save: state_file.as_ref().map(|_| miner.stats().lines),
            miner,
            attribute: config.attribute.clone(),
            interval: config.interval,
            learning_period: config.learning_period,
            state_file,
            started_at,
            first_line_at,
            interval_lines: HashMap::new(),
            new_patterns: [0; 7],
            next_emit: None,
            stats,
        }
    }

    pub fn miner(&self) -> &Miner {
        &self.miner
    }

    /// The state to write if lines came since the last save; written by
    /// the pipeline after the connector's lock is released.
    fn state_write(&mut self) -> Option<StateWrite> {
        let path = self.state_file.as_ref()?;
        let lines = self.miner.stats().lines;
        if self.lines_at_save == Some(lines) {
            return None;
        }
        let state = SavedState {
            format: FORMAT.into(),
            started_at: self.started_at,
            first_line_at: self.first_line_at,
            miner: serde_json::from_slice(&self.miner.save()).unwrap_or_default(),
        };
        match serde_json::to_vec(&state) {
            Ok(bytes) => {
                self.lines_at_save = Some(lines);
                Some(StateWrite {
                    path: path.clone(),
                    bytes,
                })
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot encode log pattern state");
                None
            }
        }
    }

    fn line_text<'a>(&self, record: &'a LogRecord) -> Option<&'a str> {
        let value = match &self.attribute {
            None => record.body.as_ref()?,
            Some(key) => record
                .attributes
                .iter()
                .find(|kv| &kv.key == key)?
                .value
                .as_ref()?,
        };
        match value.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s),
            _ => None,
        }
    }

    /// Mines every record of `request`, stamping it; returns the events of
    /// patterns new after the learning period.
    fn observe(
        &mut self,
        request: &mut ExportLogsServiceRequest,
        now: SystemTime,
    ) -> Vec<LogRecord> {
        let mut events = Vec::new();
        let now_nanos = nanos(now);
        for resource in &mut request.resource_logs {
            for record in resource
                .scope_logs
                .iter_mut()
                .flat_map(|s| &mut s.log_records)
            {
                let is_event = record.attributes.iter().any(|kv| {
                    kv.key == "event.name"
                        && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()), Some(any_value::Value::StringValue(s)) if s.starts_with("sidewatch."))
                });
                if is_event {
                    continue;
                }
                let Some(line) = self.line_text(record) else {
                    continue;
                };
                let line = line.to_string();
                let first_line_at = *self.first_line_at.get_or_insert(now_nanos);
                let learning = now_nanos.saturating_sub(first_line_at)
                    < self.learning_period.as_nanos() as u64;
                let found = self.miner.observe(&line);
                let id = found.pattern_id;
                let is_new = found.is_new;
                let template = found.template.to_string();
                *self.interval_lines.entry(id).or_default() += 1;
                record
                    .attributes
                    .push(text("log.pattern.id", id.to_string()));
                if is_new && !learning {
                    let class = severity_class(record.severity_number);
                    if let Some(at) = CLASSES.iter().position(|c| *c == class) {
                        self.new_patterns[at] += 1;
                    }
                    let mut attributes = vec![
                        text("event.name", NEW_PATTERN_EVENT),
                        text("log.pattern.id", id.to_string()),
                        text("log.pattern.template", template.clone()),
                        text("log.severity", class),
                    ];
                    attributes.extend(
                        record
                            .attributes
                            .iter()
                            .filter(|kv| kv.key.starts_with("log.file."))
                            .cloned(),
                    );
                    events.push(LogRecord {
                        time_unix_nano: now_nanos,
                        observed_time_unix_nano: now_nanos,
                        severity_number: record.severity_number.max(13),
                        severity_text: "WARN".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!(
                                "new log pattern: {template}"
                            ))),
                        }),
                        attributes,
                        ..Default::default()
                    });
                }
            }
        }
        let stats = self.miner.stats();
        self.stats.publish(stats.templates, stats.evicted);
        events
    }

    /// The pattern metrics at `now`, and the interval's counts reset.
    pub fn metrics(&mut self, now: SystemTime) -> ExportMetricsServiceRequest {
        let now_nanos = nanos(now);
        let mut lines_in_interval: HashMap<PatternId, u64> = HashMap::new();
        for (id, n) in self.interval_lines.drain() {
            if let Some(live) = self.miner.resolve(id) {
                *lines_in_interval.entry(live).or_default() += n;
            }
        }
        let point = |attributes: Vec<KeyValue>, value: i64, start: u64| NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now_nanos,
            value: Some(number_data_point::Value::AsInt(value)),
            ..Default::default()
        };
        let mut counts = Vec::new();
        let mut lines = Vec::new();
        for (id, template, count) in self.miner.templates() {
            let attributes = vec![
                text("log.pattern.id", id.to_string()),
                text("log.pattern.template", template),
            ];
            let recent = lines_in_interval.get(&id).copied().unwrap_or(0);
            lines.push(point(attributes.clone(), recent as i64, 0));
            counts.push(point(attributes, count as i64, self.started_at));
        }
        let new = CLASSES
            .iter()
            .zip(std::mem::take(&mut self.new_patterns))
            .map(|(class, n)| point(vec![text("log.severity", *class)], n as i64, 0))
            .collect();
        let sum = |name: &str, description: &str, data_points| Metric {
            name: name.into(),
            description: description.into(),
            unit: "{line}".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let gauge = |name: &str, description: &str, unit: &str, data_points| Metric {
            name: name.into(),
            description: description.into(),
            unit: unit.into(),
            data: Some(metric::Data::Gauge(Gauge { data_points })),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "sidewatch")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "sidewatch/logpatterns".into(),
                        ..Default::default()
                    }),
                    metrics: vec![
                        sum(
                            "log.pattern.count",
                            "Lines matched by each log pattern.",
                            counts,
                        ),
                        gauge(
                            "log.pattern.lines",
                            "Lines matched by each log pattern in the last interval.",
                            "{line}",
                            lines,
                        ),
                        gauge(
                            "log.pattern.new",
                            "Patterns first seen after the learning period, in the last interval.",
                            "{pattern}",
                            new,
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

/// The saved miner with the configured settings; a missing file is a
/// fresh start, a corrupt one is reported and is a fresh start too.
fn load(path: &std::path::Path, config: &MinerConfig) -> Option<(Miner, u64, Option<u64>)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read log pattern state; starting afresh");
            return None;
        }
    };
    let restored = serde_json::from_slice::<SavedState>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|state| {
            if state.format != FORMAT {
                return Err(format!("unknown format {:?}", state.format));
            }
            let miner_bytes = serde_json::to_vec(&state.miner).map_err(|e| e.to_string())?;
            let miner =
                Miner::restore_with(config.clone(), &miner_bytes).map_err(|e| e.to_string())?;
            Ok((miner, state.started_at, state.first_line_at))
        });
    match restored {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "log pattern state is unusable; starting afresh");
            None
        }
    }
}

fn events_batch(events: Vec<LogRecord>) -> Batch {
    Batch::Logs(Arc::new(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("service.name", "sidewatch")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "sidewatch/logpatterns".into(),
                    ..Default::default()
                }),
                log_records: events,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }))
}

impl Processor for LogPatternsConnector {
    fn process(&mut self, batch: Batch, now: SystemTime, out: &mut Vec<Batch>) {
        let Batch::Logs(mut request) = batch else {
            return;
        };
        let events = self.observe(Arc::make_mut(&mut request), now);
        out.push(Batch::Logs(request));
        if !events.is_empty() {
            out.push(events_batch(events));
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(crate::processors::schedule::tick_for(self.interval))
    }

    fn tick(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        let due = *self.next_emit.get_or_insert(now + self.interval);
        if now < due {
            return;
        }
        self.next_emit = Some(if now >= due + self.interval {
            now + self.interval
        } else {
            due + self.interval
        });
        out.push(Batch::Metrics(Arc::new(self.metrics(now))));
    }

    fn flush(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        out.push(Batch::Metrics(Arc::new(self.metrics(now))));
    }

    fn take_state_write(&mut self) -> Option<StateWrite> {
        self.state_write()
    }

    fn cardinality(&self) -> Option<Arc<CardinalityStats>> {
        Some(self.stats.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn logs(lines: &[&str]) -> Batch {
        Batch::Logs(Arc::new(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: lines
                        .iter()
                        .map(|l| LogRecord {
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(l.to_string())),
                            }),
                            severity_number: 17,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }))
    }

    fn config(storage: Option<PathBuf>, learning: u64) -> LogPatternsConfig {
        LogPatternsConfig {
            storage: storage.map(StatePath::new),
            attribute: None,
            interval: Duration::from_secs(10),
            learning_period: Duration::from_secs(learning),
            miner: MinerConfig::default(),
        }
    }

    fn stamped_ids(out: &[Batch]) -> Vec<String> {
        out.iter()
            .filter_map(|b| match b {
                Batch::Logs(r) => Some(r),
                _ => None,
            })
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .filter(|l| !l.attributes.iter().any(|kv| kv.key == "event.name"))
            .filter_map(|l| {
                l.attributes
                    .iter()
                    .find(|kv| kv.key == "log.pattern.id")
                    .and_then(|kv| crate::otlp::value::any_value_text(kv.value.as_ref()?).into())
            })
            .collect()
    }

    #[test]
    fn ids_and_counts_survive_a_restart_and_new_patterns_after_learning_are_events() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = LogPatternsConnector::new(
            "logpatterns",
            &config(Some(dir.path().into()), 60),
            Storage::LIVE,
        );
        let mut out = Vec::new();
        c.process(
            logs(&[
                "connection from 10.0.0.1 closed",
                "connection from 10.0.0.2 closed",
            ]),
            t0,
            &mut out,
        );
        let ids = stamped_ids(&out);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], ids[1]);
        assert_eq!(out.len(), 1, "no event while learning");
        c.flush(t0, &mut Vec::new());
        c.take_state_write()
            .expect("lines came since the last save")
            .write()
            .unwrap();

        let mut c = LogPatternsConnector::new(
            "logpatterns",
            &config(Some(dir.path().into()), 60),
            Storage::LIVE,
        );
        let mut out = Vec::new();
        let later = t0 + Duration::from_secs(120);
        c.process(
            logs(&["connection from 10.0.0.9 closed", "disk /dev/sda1 failed"]),
            later,
            &mut out,
        );
        let again = stamped_ids(&out);
        assert_eq!(again[0], ids[0], "same id after the restart");
        assert_eq!(out.len(), 2, "an event for the new pattern after learning");
        let metrics = c.metrics(later);
        let scope = &metrics.resource_metrics[0].scope_metrics[0];
        let Some(metric::Data::Sum(count)) = &scope.metrics[0].data else {
            panic!("log.pattern.count is a sum")
        };
        let value = |p: &NumberDataPoint| match p.value {
            Some(number_data_point::Value::AsInt(v)) => v,
            _ => -1,
        };
        assert_eq!(
            value(&count.data_points[0]),
            3,
            "counts continue across the restart"
        );
        let Some(metric::Data::Gauge(new)) = &scope.metrics[2].data else {
            panic!("log.pattern.new is a gauge")
        };
        let errors: Vec<i64> = new
            .data_points
            .iter()
            .filter(|p| {
                p.attributes.iter().any(|kv| {
                    kv.key == "log.severity"
                        && crate::otlp::value::any_value_text(kv.value.as_ref().unwrap()) == "error"
                })
            })
            .map(value)
            .collect();
        assert_eq!(errors, [1]);
    }
}
