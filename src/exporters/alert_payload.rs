//! What alert channels (`alertmanager`, `webhook`, `email`) read from a
//! batch, and alert events as the JSON that Alertmanager's API and webhook
//! receivers (and Slack) expect.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::ExportError;
use crate::alerting::event::{AlertEvent, Event, MalformedEvent, Status};
use crate::alerting::rule::Severity;
use crate::signal::Batch;

pub use crate::otlp::time::rfc3339;

/// The alert events in a batch: typed events as they are (anomaly events
/// are not alerts); in a logs batch from outside, the `sidewatch.alert`
/// records, read strictly, with the ones that are malformed apart. Other
/// log records are not ours.
pub fn events(batch: &Batch) -> (Vec<AlertEvent>, Vec<MalformedEvent>) {
    match batch {
        Batch::Events(events) => {
            let alerts = events
                .iter()
                .filter_map(|e| match e {
                    Event::Alert(alert) => Some(alert.clone()),
                    Event::Anomaly(_) => None,
                })
                .collect();
            (alerts, Vec::new())
        }
        Batch::Logs(request) => {
            let (mut alerts, mut malformed) = (Vec::new(), Vec::new());
            let records = request
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records);
            for record in records {
                match AlertEvent::from_log_record(record) {
                    Ok(Some(alert)) => alerts.push(alert),
                    Ok(None) => {}
                    Err(e) => malformed.push(e),
                }
            }
            (alerts, malformed)
        }
        _ => (Vec::new(), Vec::new()),
    }
}

/// After the valid events were sent: the malformed ones as rejected
/// items, so the queue counts and logs them (and does not retry: they
/// cannot get better).
pub fn refuse_malformed(malformed: &[MalformedEvent]) -> Result<(), ExportError> {
    let Some(first) = malformed.first() else {
        return Ok(());
    };
    Err(ExportError::PartiallyRejected {
        rejected: malformed.len() as u64,
        message: format!("malformed alert events, not sent: {first}"),
    })
}

/// A value as messages show it: NaN (an absent series, or a resolve
/// because the series went silent) is "no data".
pub fn value_text(value: f64) -> String {
    if value.is_nan() {
        "no data".to_string()
    } else {
        crate::alerting::template::format_number(value)
    }
}

/// Alertmanager's "no end time" for firing alerts in webhook payloads.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Label names as Alertmanager accepts them: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

pub fn labels(event: &AlertEvent) -> BTreeMap<String, String> {
    event
        .labels
        .iter()
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect()
}

pub fn annotations(event: &AlertEvent) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = event
        .annotations
        .iter()
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    out.insert("value".into(), value_text(event.value));
    if let Some(value) = event.firing_value {
        out.insert("firing_value".into(), value_text(value));
    }
    if let Some(at) = event.predicted_crossing_at {
        out.insert("predicted_crossing_at".into(), rfc3339(at));
    }
    out
}

/// One alert for `POST /api/v2/alerts`; a firing alert is valid until
/// `valid_until`, and is re-sent before that while it keeps firing.
pub fn alertmanager_alert(event: &AlertEvent, valid_until: f64, generator_url: &str) -> Value {
    let ends_at = match event.status {
        Status::Firing => valid_until,
        Status::Resolved => event.ends_at.unwrap_or(event.emitted_at),
    };
    json!({
        "labels": labels(event),
        "annotations": annotations(event),
        "startsAt": rfc3339(event.starts_at),
        "endsAt": rfc3339(ends_at),
        "generatorURL": generator_url,
    })
}

fn common(maps: &[BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some(first) = maps.first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| maps.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Alertmanager's webhook payload (version 4), for generic receivers.
pub fn webhook_payload(events: &[AlertEvent], receiver: &str) -> Value {
    let all_labels: Vec<_> = events.iter().map(labels).collect();
    let all_annotations: Vec<_> = events.iter().map(annotations).collect();
    let firing = events.iter().any(|e| e.status == Status::Firing);
    let common_labels = common(&all_labels);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{}", serde_json::to_string(&common_labels).unwrap_or_default()),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": common_labels,
        "commonAnnotations": common(&all_annotations),
        "externalURL": "",
        "alerts": events.iter().zip(all_labels).zip(all_annotations).map(|((e, l), a)| json!({
            "status": e.status.as_str(),
            "labels": l,
            "annotations": a,
            "startsAt": rfc3339(e.starts_at),
            "endsAt": e.ends_at.map(rfc3339).unwrap_or_else(|| ZERO_TIME.to_string()),
            "generatorURL": "",
            "fingerprint": e.fingerprint,
        })).collect::<Vec<_>>(),
    })
}

pub fn severity_colour(event: &AlertEvent) -> &'static str {
    match (event.status, event.severity) {
        (Status::Resolved, _) => "#2eb886",
        (_, Severity::Critical) => "#d00000",
        (_, Severity::Error) => "#e8590c",
        (_, Severity::Warning) => "#f2c744",
        (_, Severity::Info) => "#439fe0",
    }
}

/// A Slack incoming-webhook message: one attachment per alert, coloured
/// by severity (green once resolved).
pub fn slack_payload(events: &[AlertEvent]) -> Value {
    let firing = events.iter().filter(|e| e.status == Status::Firing).count();
    let attachments: Vec<Value> = events
        .iter()
        .map(|e| {
            let title = format!(
                "[{}] {} ({})",
                e.status.as_str().to_uppercase(),
                e.rule,
                e.severity.as_str()
            );
            let text = e
                .annotations
                .get("summary")
                .or_else(|| e.annotations.get("description"))
                .cloned()
                .unwrap_or_else(|| format!("value {}", value_text(e.value)));
            // The value now first; a resolved alert's firing value only
            // under its own name, so it is never read as current.
            let values = std::iter::once(("value", value_text(e.value)))
                .chain(e.firing_value.map(|v| ("firing value", value_text(v))));
            let fields: Vec<Value> = values
                .chain(
                    e.labels
                        .iter()
                        .filter(|(k, _)| k.as_str() != "alertname")
                        .map(|(k, v)| (k.as_str(), v.clone())),
                )
                .map(|(k, v)| json!({ "title": k, "value": v, "short": true }))
                .collect();
            json!({
                "color": severity_colour(e),
                "title": title,
                "text": text,
                "fields": fields,
                "fallback": format!("{title}: {text}"),
                "ts": e.emitted_at as i64,
            })
        })
        .collect();
    json!({
        "text": format!("{firing} firing, {} resolved", events.len() - firing),
        "attachments": attachments,
    })
}
