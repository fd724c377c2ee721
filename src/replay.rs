//! `sidewatch replay`: runs a config's anomaly and alert connectors over
//! historical data in event time, to backtest a configuration before it
//! is deployed. Input is a CSV of `timestamp,value` (one series, named by
//! `--metric`) or OTLP/JSON metrics, one export request per line. Output is
//! one CSV row per point with its anomaly score, and a JSON line per
//! anomaly incident change and per alert event.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};

use crate::alerting::event::AlertEvent;
use crate::components::ConnectorConfig;
use crate::config::Plan;
use crate::connectors::alert::AlertConnector;
use crate::connectors::anomaly::AnomalyConnector;
use crate::exporters::debug::any_value_text;
use crate::processors::Processor;
use crate::signal::Batch;
use crate::timestamp::parse_unix_seconds;

#[derive(Debug, Default)]
pub struct ReplayReport {
    pub csv: String,
    /// JSON lines: anomaly incident changes and alert events.
    pub events: Vec<serde_json::Value>,
    pub points: usize,
    pub alerts_fired: BTreeMap<String, usize>,
    pub incidents: usize,
}

fn time(seconds: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0))
}

/// One gauge point of `metric` at `seconds`, as replay feeds a CSV row.
pub(crate) fn gauge_batch(metric: &str, seconds: f64, value: f64) -> Batch {
    Batch::Metrics(
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: metric.into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: (seconds * 1e9) as u64,
                                value: Some(number_data_point::Value::AsDouble(value)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .into(),
    )
}

/// The latest point time in a metrics request, in seconds.
fn request_time(request: &ExportMetricsServiceRequest) -> Option<f64> {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .flat_map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g
                .data_points
                .iter()
                .map(|p| p.time_unix_nano)
                .collect::<Vec<_>>(),
            Some(metric::Data::Sum(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
            _ => Vec::new(),
        })
        .max()
        .map(|n| n as f64 / 1e9)
}

struct Replayer {
    anomaly: Vec<AnomalyConnector>,
    alert: Vec<AlertConnector>,
    report: ReplayReport,
}

impl Replayer {
    fn feed(&mut self, batch: Batch, seconds: f64, csv_timestamp: Option<&str>) {
        let now = time(seconds);
        let mut scored_metrics = Vec::new();
        for connector in &mut self.anomaly {
            let (metrics, events, scored) = connector.score(&batch, now);
            for point in scored {
                self.report.points += 1;
                match csv_timestamp {
                    Some(ts) => {
                        let _ =
                            writeln!(self.report.csv, "{ts},{},{:.6}", point.value, point.score);
                    }
                    None => {
                        let _ = writeln!(
                            self.report.csv,
                            "{},{},{:?},{},{:.6}",
                            point.timestamp_seconds,
                            point.metric,
                            point.series,
                            point.value,
                            point.score
                        );
                    }
                }
            }
            for record in events {
                let attributes: serde_json::Map<String, serde_json::Value> = record
                    .attributes
                    .iter()
                    .map(|kv| {
                        (
                            kv.key.clone(),
                            serde_json::Value::String(
                                kv.value.as_ref().map(any_value_text).unwrap_or_default(),
                            ),
                        )
                    })
                    .collect();
                if attributes.get("anomaly.state").and_then(|s| s.as_str()) == Some("started") {
                    self.report.incidents += 1;
                }
                self.report
                    .events
                    .push(serde_json::Value::Object(attributes));
            }
            if !metrics.is_empty() {
                scored_metrics.push(Batch::Metrics(
                    ExportMetricsServiceRequest {
                        resource_metrics: vec![ResourceMetrics {
                            scope_metrics: vec![ScopeMetrics {
                                metrics,
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                    }
                    .into(),
                ));
            }
        }
        for connector in &mut self.alert {
            connector.observe_batch(&batch, now);
            for scored in &scored_metrics {
                connector.observe_batch(scored, now);
            }
            let mut out = Vec::new();
            connector.tick(now, &mut out);
            for batch in out {
                for event in crate::exporters::alert_payload::events(&batch) {
                    if event.transition == crate::alerting::event::Transition::Fired {
                        *self
                            .report
                            .alerts_fired
                            .entry(event.rule.clone())
                            .or_default() += 1;
                    }
                    self.report
                        .events
                        .push(serde_json::to_value::<&AlertEvent>(&event).unwrap_or_default());
                }
            }
        }
    }
}

/// Replays `input` through the anomaly and alert connectors of `plan`.
pub fn replay(plan: &Plan, input: &Path, metric: &str) -> Result<ReplayReport, String> {
    let mut replayer = Replayer {
        anomaly: Vec::new(),
        alert: Vec::new(),
        report: ReplayReport::default(),
    };
    for config in plan.connectors.values() {
        match config {
            ConnectorConfig::Anomaly(c) => replayer.anomaly.push(AnomalyConnector::new(c)),
            // Replay starts from a clean slate: never the live state file.
            ConnectorConfig::Alert(c) => replayer.alert.push(AlertConnector::new(
                &crate::connectors::alert::AlertConfig {
                    state_file: None,
                    ..c.clone()
                },
            )),
            _ => {}
        }
    }
    if replayer.anomaly.is_empty() && replayer.alert.is_empty() {
        return Err("the config has no anomaly or alert connector to replay".into());
    }
    let text = std::fs::read_to_string(input)
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let is_json = text.trim_start().starts_with('{');
    if is_json {
        replayer
            .report
            .csv
            .push_str("timestamp,metric,series,value,anomaly_score\n");
        for (number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let request: ExportMetricsServiceRequest = serde_json::from_str(line).map_err(|e| {
                format!(
                    "{}:{}: invalid OTLP/JSON metrics: {e}",
                    input.display(),
                    number + 1
                )
            })?;
            let seconds = request_time(&request).unwrap_or(0.0);
            replayer.feed(Batch::Metrics(request.into()), seconds, None);
        }
    } else {
        replayer
            .report
            .csv
            .push_str("timestamp,value,anomaly_score\n");
        for (number, line) in text.lines().enumerate() {
            let Some((timestamp, value)) = line.split_once(',') else {
                continue;
            };
            let Ok(seconds) = parse_unix_seconds(timestamp) else {
                if number == 0 {
                    continue; // the header
                }
                return Err(format!(
                    "{}:{}: invalid timestamp {timestamp:?}",
                    input.display(),
                    number + 1
                ));
            };
            let value: f64 = value.trim().parse().map_err(|_| {
                format!(
                    "{}:{}: invalid value {value:?}: expected a number",
                    input.display(),
                    number + 1
                )
            })?;
            replayer.feed(
                gauge_batch(metric, seconds, value),
                seconds,
                Some(timestamp),
            );
        }
    }
    Ok(replayer.report)
}
