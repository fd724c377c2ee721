//! What a replay reports, read from what its exporters received: the
//! anomaly scores (`anomaly.score` points) as CSV, the alert and anomaly
//! events as JSON lines, and a count of each. A point or event that
//! reached several exporters is reported once.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric;

use super::input::{Format, Input};
use crate::alerting::event::{AlertEvent, Transition};
use crate::connectors::anomaly::EVENT_NAME as ANOMALY_EVENT;
use crate::otlp::value::any_value_text;
use crate::signal::Batch;

#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Every scored point: `timestamp,value,anomaly_score` for CSV input,
    /// `timestamp,metric,series,value,anomaly_score` for OTLP/JSON.
    pub csv: String,
    /// JSON lines: anomaly incident changes and alert events, in time order.
    pub events: Vec<serde_json::Value>,
    pub points: usize,
    pub alerts_fired: BTreeMap<String, usize>,
    pub incidents: usize,
    /// The files written, one per exporter and signal: what each exporter
    /// would have received, as OTLP/JSON lines.
    pub exporter_files: Vec<std::path::PathBuf>,
    /// Inputs no pipeline takes (their signal has no pipeline from a receiver).
    pub skipped_inputs: usize,
    /// Ticks run in event time.
    pub ticks: u64,
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    value.as_ref().map(any_value_text).unwrap_or_default()
}

/// The series as the anomaly connector names it: `metric{k="v",...}`,
/// labels sorted, resource and point attributes together.
fn series_key<'a>(metric: &str, labels: impl Iterator<Item = &'a KeyValue>) -> String {
    let labels: BTreeMap<&str, String> = labels
        .map(|kv| (kv.key.as_str(), text(&kv.value)))
        .collect();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{metric}{{{}}}", inner.join(","))
}

/// One scored point: series, metric, time, score.
struct Score {
    series: String,
    metric: String,
    time_nanos: u64,
    score: f64,
}

fn scores(batch: &Batch, seen: &mut HashSet<(String, u64)>, out: &mut Vec<Score>) {
    let Batch::Metrics(request) = batch else {
        return;
    };
    for metric in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == "anomaly.score")
    {
        let Some(metric::Data::Gauge(gauge)) = &metric.data else {
            continue;
        };
        for point in &gauge.data_points {
            let Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                score,
            )) = point.value
            else {
                continue;
            };
            let scored = point
                .attributes
                .iter()
                .find(|kv| kv.key == "anomaly.metric")
                .map(|kv| text(&kv.value))
                .unwrap_or_default();
            let series = series_key(
                &scored,
                point
                    .attributes
                    .iter()
                    .filter(|kv| kv.key != "anomaly.metric"),
            );
            if seen.insert((series.clone(), point.time_unix_nano)) {
                out.push(Score {
                    series,
                    metric: scored,
                    time_nanos: point.time_unix_nano,
                    score,
                });
            }
        }
    }
}

/// (event time in nanos, JSON) of every alert and anomaly event in a batch.
fn events(batch: &Batch, out: &mut Vec<(u64, serde_json::Value)>) {
    let batch = batch.otlp();
    let Batch::Logs(request) = &*batch else {
        return;
    };
    for record in request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
    {
        if let Ok(Some(event)) = AlertEvent::from_log_record(record) {
            out.push((
                record.time_unix_nano,
                serde_json::to_value(&event).unwrap_or_default(),
            ));
        } else if record
            .attributes
            .iter()
            .any(|kv| kv.key == "event.name" && text(&kv.value) == ANOMALY_EVENT)
        {
            let attributes: serde_json::Map<String, serde_json::Value> = record
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), serde_json::Value::String(text(&kv.value))))
                .collect();
            out.push((record.time_unix_nano, serde_json::Value::Object(attributes)));
        }
    }
}

/// Each input point's value by (series, time), to put the scored value
/// next to its score.
fn input_values(inputs: &[Input]) -> HashMap<(String, u64), f64> {
    let mut values = HashMap::new();
    for input in inputs {
        let Batch::Metrics(request) = &input.batch else {
            continue;
        };
        for resource in &request.resource_metrics {
            let resource_attributes = resource
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let points = match &metric.data {
                    Some(metric::Data::Gauge(g)) => &g.data_points,
                    Some(metric::Data::Sum(s)) => &s.data_points,
                    _ => continue,
                };
                for point in points {
                    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
                    let value = match point.value {
                        Some(Value::AsDouble(v)) => v,
                        Some(Value::AsInt(v)) => v as f64,
                        None => continue,
                    };
                    let key = series_key(
                        &metric.name,
                        resource_attributes.iter().chain(&point.attributes),
                    );
                    values.insert((key, point.time_unix_nano), value);
                }
            }
        }
    }
    values
}

/// A file name for an exporter id and signal: `debug.logs.jsonl`,
/// `otlp_backend.metrics.jsonl`.
pub(crate) fn file_name(exporter: &str, signal: crate::signal::Signal) -> String {
    let safe: String = exporter
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.{signal}.jsonl")
}

/// Scores and events from every exporter's batches, as they are delivered;
/// what reached several exporters is kept once.
#[derive(Default)]
pub struct Collector {
    scored: Vec<Score>,
    seen_scores: HashSet<(String, u64)>,
    events: Vec<(u64, serde_json::Value)>,
    seen_events: HashSet<String>,
}

impl Collector {
    pub fn observe(&mut self, batch: &Batch) {
        scores(batch, &mut self.seen_scores, &mut self.scored);
        let before = self.events.len();
        events(batch, &mut self.events);
        let mut i = before;
        while i < self.events.len() {
            if self.seen_events.insert(self.events[i].1.to_string()) {
                i += 1;
            } else {
                self.events.remove(i);
            }
        }
    }
}

/// The report from what the exporters received.
pub(crate) fn build(format: Format, inputs: &[Input], collector: Collector) -> ReplayReport {
    let mut report = ReplayReport::default();
    let Collector {
        mut scored,
        events: mut timed_events,
        ..
    } = collector;
    // Stable sorts: arrival order within one time.
    scored.sort_by_key(|s| s.time_nanos);
    timed_events.sort_by_key(|(time, _)| *time);

    match format {
        Format::Csv => {
            report.csv.push_str("timestamp,value,anomaly_score\n");
            let mut rows: HashMap<u64, VecDeque<&(String, f64)>> = HashMap::new();
            for input in inputs {
                if let (Some(row), Batch::Metrics(request)) = (&input.row, &input.batch) {
                    let time = request
                        .resource_metrics
                        .iter()
                        .flat_map(|r| &r.scope_metrics)
                        .flat_map(|s| &s.metrics)
                        .find_map(|m| match &m.data {
                            Some(metric::Data::Gauge(g)) => g.data_points.first(),
                            _ => None,
                        })
                        .map(|p| p.time_unix_nano)
                        .unwrap_or(0);
                    rows.entry(time).or_default().push_back(row);
                }
            }
            for score in &scored {
                let (timestamp, value) = match rows
                    .get_mut(&score.time_nanos)
                    .and_then(VecDeque::pop_front)
                {
                    Some((timestamp, value)) => (timestamp.clone(), *value),
                    None => ((score.time_nanos as f64 / 1e9).to_string(), f64::NAN),
                };
                report
                    .csv
                    .push_str(&format!("{timestamp},{value},{:.6}\n", score.score));
            }
        }
        Format::Json => {
            report
                .csv
                .push_str("timestamp,metric,series,value,anomaly_score\n");
            let values = input_values(inputs);
            for score in &scored {
                let value = values
                    .get(&(score.series.clone(), score.time_nanos))
                    .copied()
                    .unwrap_or(f64::NAN);
                report.csv.push_str(&format!(
                    "{},{},{:?},{value},{:.6}\n",
                    score.time_nanos as f64 / 1e9,
                    score.metric,
                    score.series,
                    score.score
                ));
            }
        }
    }
    report.points = scored.len();
    for (_, event) in timed_events {
        if event.get("anomaly.state").and_then(|s| s.as_str()) == Some("started") {
            report.incidents += 1;
        }
        if let Ok(alert) = serde_json::from_value::<AlertEvent>(event.clone())
            && alert.transition == Transition::Fired
        {
            *report.alerts_fired.entry(alert.rule).or_default() += 1;
        }
        report.events.push(event);
    }
    report
}
