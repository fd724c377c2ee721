//! Alert events: the typed form exporters use, and its OTLP log record
//! form (event name `sidewatch.alert`) that travels through logs pipelines
//! and reaches OTLP backends.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde::{Deserialize, Serialize};

use super::rule::Severity;

pub const EVENT_NAME: &str = "sidewatch.alert";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// Why the event was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Fired,
    SeverityChanged,
    Repeated,
    /// The alert's content changed while firing (a correlated incident
    /// gained a series).
    Updated,
    Resolved,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Fired => "fired",
            Transition::SeverityChanged => "severity_changed",
            Transition::Repeated => "repeated",
            Transition::Updated => "updated",
            Transition::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub rule: String,
    pub status: Status,
    pub transition: Transition,
    pub severity: Severity,
    /// Series labels, rule labels, `alertname` and `severity`.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The value now: for a firing alert the value that fires it, for a
    /// resolved one the value that resolved it (NaN when the series went
    /// silent, so there is no value).
    pub value: f64,
    /// For a resolved alert: the value at the last evaluation that held it
    /// firing, to be shown labelled as such, never as current.
    pub firing_value: Option<f64>,
    pub threshold: f64,
    /// Unix seconds: when the condition first held (Prometheus's activeAt).
    pub starts_at: f64,
    /// Unix seconds, for resolved alerts.
    pub ends_at: Option<f64>,
    /// Unix seconds: when a forecast says the threshold will be crossed.
    pub predicted_crossing_at: Option<f64>,
    /// Stable across the alert's life: rule plus series labels.
    pub fingerprint: String,
    /// Unix seconds of the evaluation that emitted it.
    pub emitted_at: f64,
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn nanos(seconds: f64) -> u64 {
    (seconds * 1e9).max(0.0) as u64
}

impl AlertEvent {
    pub fn to_log_record(&self) -> LogRecord {
        let mut attributes = vec![
            text("event.name", EVENT_NAME),
            text("alert.name", self.rule.clone()),
            text("alert.state", self.status.as_str()),
            text("alert.transition", self.transition.as_str()),
            text("alert.severity", self.severity.as_str()),
            double("alert.value", self.value),
            double("alert.threshold", self.threshold),
            double("alert.starts_at", self.starts_at),
            text("alert.fingerprint", self.fingerprint.clone()),
        ];
        if let Some(end) = self.ends_at {
            attributes.push(double("alert.ends_at", end));
        }
        if let Some(value) = self.firing_value {
            attributes.push(double("alert.firing_value", value));
        }
        if let Some(at) = self.predicted_crossing_at {
            attributes.push(double("alert.predicted_crossing_at", at));
        }
        for (k, v) in &self.annotations {
            attributes.push(text(&format!("alert.annotation.{k}"), v.clone()));
        }
        for (k, v) in &self.labels {
            attributes.push(text(&format!("alert.label.{k}"), v.clone()));
        }
        let body = self.annotations.get("summary").cloned().unwrap_or_else(|| {
            format!(
                "{} {} ({})",
                self.rule,
                self.status.as_str(),
                self.severity.as_str()
            )
        });
        LogRecord {
            time_unix_nano: nanos(self.emitted_at),
            observed_time_unix_nano: nanos(self.emitted_at),
            severity_number: if self.status == Status::Resolved {
                9
            } else {
                self.severity.severity_number()
            },
            severity_text: self.severity.as_str().to_uppercase(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body)),
            }),
            attributes,
            ..Default::default()
        }
    }

    /// Reads an alert event back from a log record; `None` for any other record.
    pub fn from_log_record(record: &LogRecord) -> Option<AlertEvent> {
        let mut strings = BTreeMap::new();
        let mut doubles = BTreeMap::new();
        for kv in &record.attributes {
            match kv.value.as_ref()?.value.as_ref() {
                Some(any_value::Value::StringValue(s)) => {
                    strings.insert(kv.key.as_str(), s.clone());
                }
                Some(any_value::Value::DoubleValue(d)) => {
                    doubles.insert(kv.key.as_str(), *d);
                }
                _ => {}
            }
        }
        if strings.get("event.name").map(String::as_str) != Some(EVENT_NAME) {
            return None;
        }
        let prefixed = |prefix: &str| -> BTreeMap<String, String> {
            strings
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
                .collect()
        };
        Some(AlertEvent {
            rule: strings.get("alert.name")?.clone(),
            status: match strings.get("alert.state")?.as_str() {
                "resolved" => Status::Resolved,
                _ => Status::Firing,
            },
            transition: match strings.get("alert.transition").map(String::as_str) {
                Some("resolved") => Transition::Resolved,
                Some("severity_changed") => Transition::SeverityChanged,
                Some("repeated") => Transition::Repeated,
                Some("updated") => Transition::Updated,
                _ => Transition::Fired,
            },
            severity: Severity::parse(strings.get("alert.severity")?)?,
            labels: prefixed("alert.label."),
            annotations: prefixed("alert.annotation."),
            value: *doubles.get("alert.value")?,
            firing_value: doubles.get("alert.firing_value").copied(),
            threshold: *doubles.get("alert.threshold")?,
            starts_at: *doubles.get("alert.starts_at")?,
            ends_at: doubles.get("alert.ends_at").copied(),
            predicted_crossing_at: doubles.get("alert.predicted_crossing_at").copied(),
            fingerprint: strings.get("alert.fingerprint")?.clone(),
            emitted_at: record.time_unix_nano as f64 / 1e9,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_log_record() {
        let event = AlertEvent {
            rule: "DiskFull".into(),
            status: Status::Firing,
            transition: Transition::Fired,
            severity: Severity::Critical,
            labels: [
                ("alertname".to_string(), "DiskFull".to_string()),
                ("mountpoint".to_string(), "/".to_string()),
            ]
            .into_iter()
            .collect(),
            annotations: [("summary".to_string(), "disk full in 3 days".to_string())]
                .into_iter()
                .collect(),
            value: 0.97,
            firing_value: Some(0.99),
            threshold: 1.0,
            starts_at: 1_700_000_000.0,
            ends_at: None,
            predicted_crossing_at: Some(1_700_259_200.0),
            fingerprint: "abc".into(),
            emitted_at: 1_700_000_060.0,
        };
        let record = event.to_log_record();
        assert_eq!(record.severity_number, 21);
        assert_eq!(AlertEvent::from_log_record(&record), Some(event));
        assert_eq!(AlertEvent::from_log_record(&LogRecord::default()), None);
    }
}
