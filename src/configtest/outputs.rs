//! What a case's replay produced, read back for its expectations: every
//! metric point, span and log record each exporter received (from the
//! OTLP/JSON lines replay writes), and every alert's state over time.

use std::collections::BTreeMap;
use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::otlp::value::option_text;
use crate::signal::Signal;

pub type Labels = BTreeMap<String, String>;

/// One metric point as an exporter received it.
#[derive(Debug, Clone)]
pub struct Point {
    pub name: String,
    /// Resource and point attributes together.
    pub attributes: Labels,
    pub time_nanos: u64,
    pub value: Option<f64>,
    pub count: Option<f64>,
    pub sum: Option<f64>,
}

/// One span (its name) or log record (its body), with its attributes.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub attributes: Labels,
}

#[derive(Debug, Default)]
pub struct Received {
    pub points: Vec<Point>,
    pub spans: Vec<Item>,
    pub logs: Vec<Item>,
}

fn labels(resource: Option<&Resource>, attributes: &[KeyValue]) -> Labels {
    resource
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(attributes)
        .map(|kv| (kv.key.clone(), option_text(kv.value.as_ref())))
        .collect()
}

fn lines(path: &Path) -> Result<Vec<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn parse<T: serde::de::DeserializeOwned>(line: &str, path: &Path) -> Result<T, String> {
    serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the exporter `id` received, read from replay's files in `dir`.
pub fn read(dir: &Path, id: &str) -> Result<Received, String> {
    let mut received = Received::default();
    let path = dir.join(crate::replay::file_name(id, Signal::Metrics));
    for line in lines(&path)? {
        let request: ExportMetricsServiceRequest = parse(&line, &path)?;
        for resource in &request.resource_metrics {
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                points(resource.resource.as_ref(), metric, &mut received.points);
            }
        }
    }
    let path = dir.join(crate::replay::file_name(id, Signal::Traces));
    for line in lines(&path)? {
        let request: ExportTraceServiceRequest = parse(&line, &path)?;
        for resource in &request.resource_spans {
            for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                received.spans.push(Item {
                    name: span.name.clone(),
                    attributes: labels(resource.resource.as_ref(), &span.attributes),
                });
            }
        }
    }
    let path = dir.join(crate::replay::file_name(id, Signal::Logs));
    for line in lines(&path)? {
        let request: ExportLogsServiceRequest = parse(&line, &path)?;
        for resource in &request.resource_logs {
            for record in resource.scope_logs.iter().flat_map(|s| &s.log_records) {
                received.logs.push(Item {
                    name: option_text(record.body.as_ref()),
                    attributes: labels(resource.resource.as_ref(), &record.attributes),
                });
            }
        }
    }
    Ok(received)
}

fn number(value: &Option<number_data_point::Value>) -> Option<f64> {
    match value {
        Some(number_data_point::Value::AsDouble(v)) => Some(*v),
        Some(number_data_point::Value::AsInt(v)) => Some(*v as f64),
        None => None,
    }
}

fn points(
    resource: Option<&Resource>,
    metric: &opentelemetry_proto::tonic::metrics::v1::Metric,
    out: &mut Vec<Point>,
) {
    let point = |attributes: &[KeyValue], time_nanos: u64| Point {
        name: metric.name.clone(),
        attributes: labels(resource, attributes),
        time_nanos,
        value: None,
        count: None,
        sum: None,
    };
    match &metric.data {
        Some(metric::Data::Gauge(g)) => out.extend(g.data_points.iter().map(|p| Point {
            value: number(&p.value),
            ..point(&p.attributes, p.time_unix_nano)
        })),
        Some(metric::Data::Sum(s)) => out.extend(s.data_points.iter().map(|p| Point {
            value: number(&p.value),
            ..point(&p.attributes, p.time_unix_nano)
        })),
        Some(metric::Data::Histogram(h)) => out.extend(h.data_points.iter().map(|p| Point {
            count: Some(p.count as f64),
            sum: p.sum,
            ..point(&p.attributes, p.time_unix_nano)
        })),
        Some(metric::Data::ExponentialHistogram(h)) => {
            out.extend(h.data_points.iter().map(|p| Point {
                count: Some(p.count as f64),
                sum: p.sum,
                ..point(&p.attributes, p.time_unix_nano)
            }))
        }
        Some(metric::Data::Summary(s)) => out.extend(s.data_points.iter().map(|p| Point {
            count: Some(p.count as f64),
            sum: Some(p.sum),
            ..point(&p.attributes, p.time_unix_nano)
        })),
        None => {}
    }
}

/// One alert's change, from replay's events.
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub rule: String,
    pub fingerprint: String,
    pub firing: bool,
    /// fired, severity_changed, repeated, updated or resolved.
    pub transition: String,
    pub severity: String,
    pub labels: Labels,
    pub emitted_at: f64,
}

/// The alert events among replay's events (anomaly incidents are not).
pub fn alert_changes(events: &[serde_json::Value]) -> Vec<AlertChange> {
    events
        .iter()
        .filter_map(|e| {
            let text = |key: &str| e.get(key)?.as_str().map(str::to_string);
            Some(AlertChange {
                rule: text("rule")?,
                fingerprint: text("fingerprint")?,
                firing: text("status")? == "firing",
                transition: text("transition")?,
                severity: text("severity")?,
                labels: e
                    .get("labels")?
                    .as_object()?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                emitted_at: e.get("emitted_at")?.as_f64()?,
            })
        })
        .collect()
}

/// The alerts of `rule` firing at `at` (Unix seconds): each alert's last
/// change at or before it says.
pub fn firing_at(changes: &[AlertChange], rule: &str, at: f64) -> Vec<AlertChange> {
    let mut last: BTreeMap<&str, &AlertChange> = BTreeMap::new();
    for change in changes
        .iter()
        .filter(|c| c.rule == rule && c.emitted_at <= at + 1e-6)
    {
        last.insert(&change.fingerprint, change);
    }
    last.into_values().filter(|c| c.firing).cloned().collect()
}
