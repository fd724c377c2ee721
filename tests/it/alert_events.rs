//! Alert events that arrive as OTLP log records (from another sidewatch,
//! a replayed file, a processor that rewrote them) are read strictly by
//! the alert channels: a `sidewatch.alert` record with an unknown state is
//! rejected and counted, never delivered as a firing alert.

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use sidewatch::alerting::event::{AlertEvent, Status, Transition};
use sidewatch::alerting::rule::Severity;

use crate::backend::wait_until;
use crate::harness::{address, start};
use crate::webhook_sink::WebhookSink;

fn alert(rule: &str) -> AlertEvent {
    AlertEvent {
        rule: rule.into(),
        status: Status::Firing,
        transition: Transition::Fired,
        severity: Severity::Critical,
        labels: [("alertname".to_string(), rule.to_string())].into(),
        annotations: Default::default(),
        value: 0.95,
        firing_value: None,
        threshold: 0.9,
        starts_at: 1_700_000_000.0,
        ends_at: None,
        predicted_crossing_at: None,
        fingerprint: rule.to_lowercase(),
        emitted_at: 1_700_000_060.0,
    }
}

fn with_state(mut record: LogRecord, state: &str) -> LogRecord {
    for kv in &mut record.attributes {
        if kv.key == "alert.state" {
            kv.value = Some(AnyValue {
                value: Some(any_value::Value::StringValue(state.into())),
            });
        }
    }
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_record_with_an_unknown_state_is_rejected_not_sent_as_firing() {
    let sink = WebhookSink::start().await;
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  webhook: {{ url: "{}", retry_on_failure: {{ initial_interval: 50ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    logs: {{ receivers: [otlp], exporters: [webhook] }}
"#,
        sink.url()
    ))
    .await;
    let mut client =
        LogsServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    let records = vec![
        alert("Good").to_log_record(),
        with_state(alert("Pending").to_log_record(), "pending"),
    ];
    client
        .export(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
        .await
        .expect("the receiver takes the records; the exporter judges them");

    let exporter = collector
        .telemetry
        .exporters()
        .into_iter()
        .find(|e| e.signal.as_str() == "logs")
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || exporter
            .failed_items
            .load(Ordering::Relaxed)
            == 1)
        .await,
        "the malformed record is counted as failed"
    );
    assert_eq!(exporter.sent_items.load(Ordering::Relaxed), 1);
    let posted = sink.posted.all();
    assert_eq!(posted.len(), 1, "one request, not retried: {posted:?}");
    let alerts = posted[0]["alerts"].as_array().unwrap();
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Good"], "the unknown state is not sent as firing");
    assert!(collector.shutdown().await.clean);
}
