//! The events sidewatch itself emits, typed: alert events (`AlertEvent`)
//! and anomaly events (`super::anomaly_event`), as one [`Event`] that a
//! logs pipeline carries (`Batch::Events`) from the connector that made it
//! to the alert channels (Alertmanager, webhook, Slack, email), which read
//! the typed value. Only the OTLP edge turns events into log records
//! (`events_request`: event names `sidewatch.alert`, `sidewatch.anomaly`).
//!
//! Alert log records that come from outside (an OTLP receiver, a
//! write-ahead log, a processor that rewrote the events) are read back by
//! `AlertEvent::from_log_record`, strictly: a record named
//! `sidewatch.alert` that lacks a field or holds an unknown state is an
//! error, never guessed into a firing alert.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};

use super::anomaly_event::AnomalyEvent;
use super::rule::Severity;
use crate::otlp::time::{nanos_from_seconds as nanos, seconds_from_nanos};
use crate::otlp::value::{double_kv as double, string_kv as text, string_value};

pub const EVENT_NAME: &str = "sidewatch.alert";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub const ALL: [Status; 2] = [Status::Firing, Status::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
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
    pub const ALL: [Transition; 5] = [
        Transition::Fired,
        Transition::SeverityChanged,
        Transition::Repeated,
        Transition::Updated,
        Transition::Resolved,
    ];

    pub fn parse(text: &str) -> Option<Transition> {
        Transition::ALL.into_iter().find(|t| t.as_str() == text)
    }

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
            attributes.push(text(format!("alert.annotation.{k}"), v.clone()));
        }
        for (k, v) in &self.labels {
            attributes.push(text(format!("alert.label.{k}"), v.clone()));
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
            body: Some(string_value(body)),
            attributes,
            ..Default::default()
        }
    }

    /// Reads an alert event back from a log record: `Ok(None)` for a
    /// record that is not one (another `event.name`), an error naming the
    /// first missing or unreadable field for one that is. Nothing is
    /// guessed: an unknown `alert.state` is an error, not "firing".
    pub fn from_log_record(record: &LogRecord) -> Result<Option<AlertEvent>, MalformedEvent> {
        let mut strings = BTreeMap::new();
        let mut doubles = BTreeMap::new();
        for kv in &record.attributes {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => {
                    strings.insert(kv.key.as_str(), s.as_str());
                }
                Some(any_value::Value::DoubleValue(d)) => {
                    doubles.insert(kv.key.as_str(), *d);
                }
                _ => {}
            }
        }
        if strings.get("event.name").copied() != Some(EVENT_NAME) {
            return Ok(None);
        }
        let string = |key: &'static str| {
            strings.get(key).copied().ok_or(MalformedEvent::Missing {
                key,
                kind: "string",
            })
        };
        let number = |key: &'static str| {
            doubles.get(key).copied().ok_or(MalformedEvent::Missing {
                key,
                kind: "double",
            })
        };
        let unknown =
            |key: &'static str, value: &str, expected: &'static str| MalformedEvent::Unknown {
                key,
                value: value.to_string(),
                expected,
            };
        let prefixed = |prefix: &str| -> BTreeMap<String, String> {
            strings
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.to_string())))
                .collect()
        };
        let state = string("alert.state")?;
        let transition = string("alert.transition")?;
        let severity = string("alert.severity")?;
        Ok(Some(AlertEvent {
            rule: string("alert.name")?.to_string(),
            status: Status::parse(state)
                .ok_or_else(|| unknown("alert.state", state, "firing or resolved"))?,
            transition: Transition::parse(transition).ok_or_else(|| {
                unknown(
                    "alert.transition",
                    transition,
                    "fired, severity_changed, repeated, updated or resolved",
                )
            })?,
            severity: Severity::parse(severity).ok_or_else(|| {
                unknown(
                    "alert.severity",
                    severity,
                    "info, warning, error or critical",
                )
            })?,
            labels: prefixed("alert.label."),
            annotations: prefixed("alert.annotation."),
            value: number("alert.value")?,
            firing_value: doubles.get("alert.firing_value").copied(),
            threshold: number("alert.threshold")?,
            starts_at: number("alert.starts_at")?,
            ends_at: doubles.get("alert.ends_at").copied(),
            predicted_crossing_at: doubles.get("alert.predicted_crossing_at").copied(),
            fingerprint: string("alert.fingerprint")?.to_string(),
            emitted_at: seconds_from_nanos(record.time_unix_nano),
        }))
    }
}

/// Why a `sidewatch.alert` log record is not an alert event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MalformedEvent {
    #[error("alert event without the {kind} attribute {key:?}")]
    Missing {
        key: &'static str,
        kind: &'static str,
    },
    #[error("alert event with {key} {value:?}: expected {expected}")]
    Unknown {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// An event sidewatch emits: what a `Batch::Events` holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Alert(AlertEvent),
    Anomaly(AnomalyEvent),
}

impl Event {
    pub fn to_log_record(&self) -> LogRecord {
        match self {
            Event::Alert(e) => e.to_log_record(),
            Event::Anomaly(e) => e.to_log_record(),
        }
    }

    /// The instrumentation scope its log record is sent under.
    fn scope_name(&self) -> &'static str {
        match self {
            Event::Alert(_) => "sidewatch/alert",
            Event::Anomaly(_) => "sidewatch/anomaly",
        }
    }
}

/// Events as one OTLP logs request from `service.name=sidewatch`, one
/// scope per run of events of one kind (`sidewatch/alert`,
/// `sidewatch/anomaly`): the form OTLP exporters send.
pub fn events_request(events: &[Event]) -> ExportLogsServiceRequest {
    let mut scope_logs: Vec<ScopeLogs> = Vec::new();
    for event in events {
        let name = event.scope_name();
        match scope_logs.last_mut() {
            Some(last) if last.scope.as_ref().is_some_and(|s| s.name == name) => {
                last.log_records.push(event.to_log_record());
            }
            _ => scope_logs.push(ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: name.into(),
                    ..Default::default()
                }),
                log_records: vec![event.to_log_record()],
                ..Default::default()
            }),
        }
    }
    if scope_logs.is_empty() {
        return ExportLogsServiceRequest::default();
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("service.name", "sidewatch")],
                ..Default::default()
            }),
            scope_logs,
            ..Default::default()
        }],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> AlertEvent {
        AlertEvent {
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
        }
    }

    #[test]
    fn round_trips_through_a_log_record() {
        let event = sample();
        let record = event.to_log_record();
        assert_eq!(record.severity_number, 21);
        assert_eq!(AlertEvent::from_log_record(&record), Ok(Some(event)));
        assert_eq!(AlertEvent::from_log_record(&LogRecord::default()), Ok(None));
    }

    fn with_attribute(mut record: LogRecord, key: &str, value: Option<&str>) -> LogRecord {
        record.attributes.retain(|kv| kv.key != key);
        if let Some(value) = value {
            record.attributes.push(text(key, value));
        }
        record
    }

    /// Before: any state but "resolved" read as firing, and a missing
    /// transition as "fired".
    #[test]
    fn an_unknown_or_missing_state_is_an_error_not_a_firing_alert() {
        let record = sample().to_log_record();
        assert_eq!(
            AlertEvent::from_log_record(&with_attribute(
                record.clone(),
                "alert.state",
                Some("pending")
            ))
            .unwrap_err()
            .to_string(),
            "alert event with alert.state \"pending\": expected firing or resolved"
        );
        assert_eq!(
            AlertEvent::from_log_record(&with_attribute(record.clone(), "alert.state", None))
                .unwrap_err(),
            MalformedEvent::Missing {
                key: "alert.state",
                kind: "string"
            }
        );
        assert!(
            AlertEvent::from_log_record(&with_attribute(record, "alert.transition", Some("x")))
                .is_err()
        );
    }

    #[test]
    fn events_become_one_request_with_a_scope_per_kind() {
        let events = vec![Event::Alert(sample()), Event::Alert(sample())];
        let request = events_request(&events);
        assert_eq!(request.resource_logs.len(), 1);
        let scopes = &request.resource_logs[0].scope_logs;
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[0].scope.as_ref().unwrap().name, "sidewatch/alert");
        assert_eq!(scopes[0].log_records.len(), 2);
        assert!(events_request(&[]).resource_logs.is_empty());
    }
}
