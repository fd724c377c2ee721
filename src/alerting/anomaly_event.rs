//! Anomaly events: an incident starting or ending on one series, as the
//! `anomaly` connector emits it, and its OTLP log record form (event name
//! `sidewatch.anomaly`) that OTLP exporters send.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use crate::otlp::value::{double_kv, int_kv, string_kv, string_value};

pub const EVENT_NAME: &str = "sidewatch.anomaly";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyState {
    Started,
    Ended,
}

impl AnomalyState {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyState::Started => "started",
            AnomalyState::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyEvent {
    /// The scored metric's name.
    pub metric: String,
    pub state: AnomalyState,
    /// The incident's most anomalous value so far, what was expected
    /// there, its deviation and score (0..1).
    pub peak_value: f64,
    pub expected: f64,
    pub zscore: f64,
    pub peak_score: f64,
    /// Unix seconds (whole: the detector's resolution).
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// The baseline method, as configured (`ewma`, `rolling`, `robust`).
    pub baseline: String,
    /// The series' attributes, values as they came (not turned to text).
    pub labels: Vec<KeyValue>,
    /// OTLP Unix nanoseconds of the point that changed the incident: kept
    /// exact, so the event and the point carry the same time.
    pub time_unix_nano: u64,
}

impl AnomalyEvent {
    pub fn to_log_record(&self) -> LogRecord {
        let state = self.state.as_str();
        let mut attributes = vec![
            string_kv("event.name", EVENT_NAME),
            string_kv("anomaly.metric", self.metric.clone()),
            string_kv("anomaly.state", state),
            double_kv("anomaly.value", self.peak_value),
            double_kv("anomaly.expected", self.expected),
            double_kv("anomaly.zscore", self.zscore),
            double_kv("anomaly.score", self.peak_score),
            int_kv("anomaly.started_at", self.started_at),
            string_kv("anomaly.baseline", self.baseline.clone()),
        ];
        if let Some(end) = self.ended_at {
            attributes.push(int_kv("anomaly.ended_at", end));
        }
        for label in self.labels.iter().filter(|l| l.key != "anomaly.metric") {
            attributes.push(KeyValue {
                key: format!("anomaly.label.{}", label.key),
                value: label.value.clone(),
                ..Default::default()
            });
        }
        let started = self.state == AnomalyState::Started;
        LogRecord {
            time_unix_nano: self.time_unix_nano,
            observed_time_unix_nano: self.time_unix_nano,
            severity_number: if started { 13 } else { 9 },
            severity_text: if started { "WARN" } else { "INFO" }.into(),
            body: Some(string_value(format!(
                "anomaly {state} on {}: value {} where {} was expected (z = {:.1})",
                self.metric, self.peak_value, self.expected, self.zscore
            ))),
            attributes,
            ..Default::default()
        }
    }
}
