//! `alert` connector: metrics in, alert events out (as OTLP log records,
//! event name `sidewatch.alert`), so a logs pipeline delivers them to
//! Alertmanager, webhooks, Slack or any OTLP backend:
//!
//! ```yaml
//! connectors:
//!   alert: { evaluation_interval: 15s, rules: [ { name: HighCPU, metric: system.cpu.utilization, op: ">", warning: 0.7, for: 2m } ] }
//! service:
//!   pipelines:
//!     metrics: { receivers: [hostmetrics], exporters: [alert] }
//!     logs/alerts: { receivers: [alert], exporters: [alertmanager] }
//! ```
//!
//! Data points feed the engine as they pass; rules are evaluated every
//! `evaluation_interval` on the pipeline's clock (event time in replay).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;

use crate::alerting::engine::{Engine, Labels};
use crate::alerting::event::AlertEvent;
use crate::alerting::rule::RuleConfig;
use crate::alerting::state;
use crate::exporters::debug::any_value_text;
use crate::processors::Processor;
use crate::signal::Batch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub evaluation_interval: Duration,
    /// Where alert state survives restarts; none keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// Series held at once across all rules; samples of further series are
    /// dropped and counted.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    pub rules: Vec<RuleConfig>,
}

/// The config as written, rules still raw, so each rule is decoded on
/// its own and every broken rule is reported, not just the first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertConfig {
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub evaluation_interval: Duration,
    pub state_file: Option<PathBuf>,
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    pub rules: Vec<yaml_serde::Value>,
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_max_series() -> usize {
    100_000
}

pub struct AlertConnector {
    engine: Engine,
    interval: Duration,
    next_evaluation: Option<SystemTime>,
    state_file: Option<PathBuf>,
    last_saved: Option<String>,
    stats: std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>,
}

pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl AlertConnector {
    /// The rules were validated when the config was compiled.
    pub fn new(config: &AlertConfig) -> Self {
        let rules = config
            .rules
            .iter()
            .filter_map(|r| r.compile().ok())
            .collect();
        let mut engine = Engine::new(rules);
        engine.max_series = config.max_series;
        if let Some(path) = &config.state_file {
            engine.restore(state::load(path));
        }
        AlertConnector {
            engine,
            interval: config.evaluation_interval,
            next_evaluation: None,
            state_file: config.state_file.clone(),
            last_saved: None,
            stats: std::sync::Arc::new(crate::telemetry::cardinality::CardinalityStats::new(
                config.max_series,
            )),
        }
    }

    /// Evaluates at `now` and returns the events (for replay and tests).
    pub fn evaluate(&mut self, now: SystemTime) -> Vec<AlertEvent> {
        let events = self.engine.evaluate(unix_seconds(now));
        self.save();
        events
    }

    fn save(&mut self) {
        let Some(path) = &self.state_file else { return };
        let snapshot = self.engine.snapshot();
        let text = serde_json::to_string(&snapshot).unwrap_or_default();
        if self.last_saved.as_deref() == Some(text.as_str()) {
            return;
        }
        match state::save(path, &snapshot) {
            Ok(()) => self.last_saved = Some(text),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot save alert state")
            }
        }
    }

    pub fn observe_batch(&mut self, batch: &Batch, now: SystemTime) {
        let Batch::Metrics(request) = batch else {
            return;
        };
        let now = unix_seconds(now);
        for resource in &request.resource_metrics {
            let mut base = Labels::new();
            for kv in resource.resource.iter().flat_map(|r| &r.attributes) {
                base.insert(
                    kv.key.clone(),
                    kv.value.as_ref().map(any_value_text).unwrap_or_default(),
                );
            }
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if !self.engine.wants(&metric.name) {
                    continue;
                }
                let points = match &metric.data {
                    Some(Data::Gauge(g)) => &g.data_points,
                    Some(Data::Sum(s)) => &s.data_points,
                    _ => continue,
                };
                for point in points {
                    let value = match point.value {
                        Some(number_data_point::Value::AsDouble(v)) => v,
                        Some(number_data_point::Value::AsInt(v)) => v as f64,
                        None => continue,
                    };
                    let mut labels = base.clone();
                    for kv in &point.attributes {
                        labels.insert(
                            kv.key.clone(),
                            kv.value.as_ref().map(any_value_text).unwrap_or_default(),
                        );
                    }
                    let time = if point.time_unix_nano > 0 {
                        point.time_unix_nano as f64 / 1e9
                    } else {
                        now
                    };
                    self.engine.observe(&metric.name, &labels, time, value);
                }
            }
        }
    }
}

/// Alert events as one OTLP logs request from sidewatch.
pub fn events_to_batch(events: &[AlertEvent]) -> Batch {
    let resource = Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("sidewatch".into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    Batch::Logs(
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "sidewatch/alert".into(),
                        ..Default::default()
                    }),
                    log_records: events.iter().map(AlertEvent::to_log_record).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .into(),
    )
}

impl Processor for AlertConnector {
    fn process(&mut self, batch: Batch, now: SystemTime, _out: &mut Vec<Batch>) {
        self.observe_batch(&batch, now);
        self.stats
            .publish(self.engine.series_count(), self.engine.overflowed_samples);
    }

    fn cardinality(
        &self,
    ) -> Option<std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>> {
        Some(self.stats.clone())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(crate::processors::schedule::tick_for(self.interval))
    }

    fn tick(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        let due = *self.next_evaluation.get_or_insert(now);
        if now < due {
            return;
        }
        self.next_evaluation = Some(due + self.interval);
        if now >= due + self.interval {
            // We fell behind (a paused process, a clock jump): realign.
            self.next_evaluation = Some(now + self.interval);
        }
        let events = self.evaluate(now);
        if !events.is_empty() {
            out.push(events_to_batch(&events));
        }
    }

    fn flush(&mut self, _out: &mut Vec<Batch>) {
        self.save();
    }
}
