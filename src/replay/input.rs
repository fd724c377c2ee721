//! Replay input: a CSV of `timestamp,value` (one gauge series, named by
//! `--metric`) or OTLP/JSON, one export request of any signal per line (the
//! `file` exporter's format, so what one sidewatch wrote another replays).
//! Each input carries its event time: the latest timestamp inside it.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};

use crate::signal::Batch;
use crate::timestamp::parse_unix_seconds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// One input, in file order.
pub struct Input {
    /// Event time: the latest timestamp in the batch (the previous input's
    /// when it has none).
    pub at: SystemTime,
    pub batch: Batch,
    /// A CSV row's timestamp as written, and its value.
    pub row: Option<(String, f64)>,
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

/// The latest timestamp in a batch, in Unix nanoseconds (0: none).
fn latest_nanos(batch: &Batch) -> u64 {
    match &*batch.otlp() {
        Batch::Traces(request) => request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.end_time_unix_nano.max(s.start_time_unix_nano))
            .max()
            .unwrap_or(0),
        Batch::Metrics(request) => request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .flat_map(|m| -> Vec<u64> {
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        g.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    Some(metric::Data::Sum(s)) => {
                        s.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    Some(metric::Data::Histogram(h)) => {
                        h.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        h.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    Some(metric::Data::Summary(s)) => {
                        s.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    None => Vec::new(),
                }
            })
            .max()
            .unwrap_or(0),
        Batch::Logs(request) => request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .map(|l| l.time_unix_nano.max(l.observed_time_unix_nano))
            .max()
            .unwrap_or(0),
        Batch::Wire(_) | Batch::Events(_) => 0,
    }
}

/// One OTLP/JSON export request; its signal is told by its top-level key.
fn json_batch(line: &str) -> Result<Batch, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let key = |k: &str| value.get(k).is_some();
    let batch = if key("resourceSpans") {
        Batch::Traces(
            serde_json::from_value::<ExportTraceServiceRequest>(value)
                .map_err(|e| format!("invalid OTLP/JSON traces: {e}"))?
                .into(),
        )
    } else if key("resourceMetrics") {
        Batch::Metrics(
            serde_json::from_value::<ExportMetricsServiceRequest>(value)
                .map_err(|e| format!("invalid OTLP/JSON metrics: {e}"))?
                .into(),
        )
    } else if key("resourceLogs") {
        Batch::Logs(
            serde_json::from_value::<ExportLogsServiceRequest>(value)
                .map_err(|e| format!("invalid OTLP/JSON logs: {e}"))?
                .into(),
        )
    } else {
        return Err(
            "expected an OTLP/JSON export request: an object with resourceSpans, resourceMetrics or resourceLogs"
                .into(),
        );
    };
    Ok(batch)
}

/// Reads every input of `path`, in order.
pub fn read(path: &Path, metric: &str) -> Result<(Format, Vec<Input>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let at_line =
        |number: usize, message: String| format!("{}:{}: {message}", path.display(), number + 1);
    let mut inputs = Vec::new();
    if text.trim_start().starts_with('{') {
        let mut latest = 0;
        for (number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let batch = json_batch(line).map_err(|e| at_line(number, e))?;
            // Without timestamps of its own, an input happens when the one
            // before it did; time never runs backwards.
            latest = latest.max(latest_nanos(&batch));
            inputs.push(Input {
                at: UNIX_EPOCH + Duration::from_nanos(latest),
                batch,
                row: None,
            });
        }
        return Ok((Format::Json, inputs));
    }
    for (number, line) in text.lines().enumerate() {
        let Some((timestamp, value)) = line.split_once(',') else {
            continue;
        };
        let Ok(seconds) = parse_unix_seconds(timestamp) else {
            if number == 0 {
                continue; // the header
            }
            return Err(at_line(number, format!("invalid timestamp {timestamp:?}")));
        };
        let value: f64 = value.trim().parse().map_err(|_| {
            at_line(
                number,
                format!("invalid value {value:?}: expected a number"),
            )
        })?;
        inputs.push(Input {
            at: time(seconds),
            batch: gauge_batch(metric, seconds, value),
            row: Some((timestamp.to_string(), value)),
        });
    }
    Ok((Format::Csv, inputs))
}
