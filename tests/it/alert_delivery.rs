//! What receivers of alerts see as a value moves, with an app using the
//! OpenTelemetry SDK as the source: a real Alertmanager never shows a
//! severity the alert has left, and shows nothing once it resolved; a
//! resolved webhook or Slack message shows the value that resolved it; and
//! a `cooldown` stops a flapping alert from notifying on every flap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Gauge, MeterProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use crate::alerting::{start_alertmanager, wait_for};
use crate::harness::{address, start};
use crate::webhook_sink::WebhookSink;

/// A gauge `temperature{room="server"}` in an app instrumented with the
/// OpenTelemetry SDK, exporting over OTLP/gRPC every 250 ms (as an app
/// does) and on every change.
pub struct SdkGauge {
    provider: SdkMeterProvider,
    gauge: Gauge<f64>,
}

impl SdkGauge {
    pub async fn start(grpc: String) -> Arc<SdkGauge> {
        // The SDK's exporter blocks: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(grpc)
                .build()
                .expect("metric exporter");
            let reader = PeriodicReader::builder(exporter)
                .with_interval(Duration::from_millis(250))
                .build();
            let provider = SdkMeterProvider::builder().with_reader(reader).build();
            let gauge = provider
                .meter("alert-delivery-test")
                .f64_gauge("temperature")
                .build();
            Arc::new(SdkGauge { provider, gauge })
        })
        .await
        .unwrap()
    }

    pub async fn set(self: &Arc<Self>, value: f64) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.gauge.record(value, &[KeyValue::new("room", "server")]);
            this.provider.force_flush().expect("the SDK exports");
        })
        .await
        .unwrap();
    }

    pub async fn stop(self: Arc<Self>) {
        tokio::task::spawn_blocking(move || {
            let _ = self.provider.shutdown();
        })
        .await
        .unwrap();
    }
}

/// The `severity` labels of the `Hot` alerts Alertmanager holds as not
/// yet ended (its API leaves out resolved ones; `endsAt` is checked too).
async fn shown_severities(alertmanager_url: &str) -> BTreeSet<String> {
    let body = reqwest::get(format!("{alertmanager_url}/api/v2/alerts"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let alerts: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "Hot")
        .filter(|a| {
            a["endsAt"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .is_none_or(|end| end > SystemTime::now())
        })
        .filter_map(|a| a["labels"]["severity"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_never_shows_a_severity_the_alert_has_left() {
    let Some(alertmanager) = start_alertmanager().await else {
        return;
    };
    // endsAt is four resend intervals (2 minutes) ahead: a left-behind
    // alert would stay far longer than the waits below.
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  alert:
    evaluation_interval: 200ms
    rules:
      - {{ name: Hot, metric: temperature, op: ">", warning: 80, critical: 90 }}
exporters:
  alertmanager: {{ endpoint: {}, resend_interval: 30s, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [alertmanager] }}
"#,
        alertmanager.url
    ))
    .await;
    let app = SdkGauge::start(format!("http://{}", address(&collector, "otlp/grpc"))).await;
    // Each step: the value, and exactly the severities Alertmanager must
    // then show, within a wait shorter than one resend interval.
    for (value, expected) in [
        (85.0, vec!["warning"]),
        (95.0, vec!["critical"]),
        (85.0, vec!["warning"]),
        (95.0, vec!["critical"]),
        (50.0, vec![]),
    ] {
        app.set(value).await;
        let expected: BTreeSet<String> = expected.into_iter().map(str::to_string).collect();
        let reached = wait_for(Duration::from_secs(15), async || {
            (shown_severities(&alertmanager.url).await == expected).then_some(())
        })
        .await;
        assert!(
            reached.is_some(),
            "after the value went to {value}, Alertmanager shows {:?}, expected {expected:?}",
            shown_severities(&alertmanager.url).await
        );
    }
    app.stop().await;
    assert!(collector.shutdown().await.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_messages_show_the_value_that_resolved_the_alert() {
    let hook = WebhookSink::start().await;
    let slack = WebhookSink::start().await;
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  alert:
    evaluation_interval: 200ms
    rules:
      - name: Hot
        metric: temperature
        op: ">"
        critical: 90
        annotations: {{ summary: "the server room is at {{{{ $value }}}} degrees" }}
exporters:
  webhook/ops: {{ url: {}, retry_on_failure: {{ initial_interval: 100ms }} }}
  webhook/slack: {{ url: {}, format: slack, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [webhook/ops, webhook/slack] }}
"#,
        hook.url(),
        slack.url()
    ))
    .await;
    let app = SdkGauge::start(format!("http://{}", address(&collector, "otlp/grpc"))).await;
    let posted_with_status = async |sink: &WebhookSink, status: &str| {
        let status = status.to_string();
        wait_for(Duration::from_secs(15), async || {
            sink.posted.all().into_iter().find(|p| {
                p["status"] == status.as_str()
                    || p["attachments"][0]["title"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(&format!("[{}]", status.to_uppercase())))
            })
        })
        .await
        .unwrap_or_else(|| panic!("no {status} message: {:?}", sink.posted.all()))
    };
    app.set(95.0).await;
    let firing = posted_with_status(&slack, "firing").await;
    assert_eq!(
        firing["attachments"][0]["text"],
        "the server room is at 95 degrees"
    );
    app.set(50.0).await;

    let resolved = posted_with_status(&slack, "resolved").await;
    let attachment = &resolved["attachments"][0];
    assert_eq!(attachment["title"], "[RESOLVED] Hot (critical)");
    assert_eq!(attachment["text"], "the server room is at 50 degrees");
    let field = |title: &str| {
        attachment["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["title"] == title)
            .map(|f| f["value"].clone())
    };
    assert_eq!(field("value"), Some("50".into()));
    assert_eq!(
        field("firing value"),
        Some("95".into()),
        "the firing value is there, under its own name"
    );

    let resolved = posted_with_status(&hook, "resolved").await;
    let annotations = &resolved["alerts"][0]["annotations"];
    assert_eq!(annotations["summary"], "the server room is at 50 degrees");
    assert_eq!(annotations["value"], "50");
    assert_eq!(annotations["firing_value"], "95");
    let firing = posted_with_status(&hook, "firing").await;
    assert_eq!(firing["alerts"][0]["annotations"]["value"], "95");
    assert!(
        firing["alerts"][0]["annotations"]
            .get("firing_value")
            .is_none(),
        "a firing alert's value is its firing value"
    );
    app.stop().await;
    assert!(collector.shutdown().await.clean);
}

/// (alertname, status) of every alert in every webhook payload posted.
fn notifications(sink: &WebhookSink) -> Vec<(String, String)> {
    sink.posted
        .all()
        .iter()
        .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                a["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_stops_a_flapping_alert_from_notifying_on_every_flap() {
    let hook = WebhookSink::start().await;
    // Two rules on one series: `Flapping` shows each flap was evaluated,
    // `Cooled` is the same rule with a cooldown.
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  alert:
    evaluation_interval: 100ms
    rules:
      - {{ name: Flapping, metric: temperature, op: ">", critical: 90 }}
      - {{ name: Cooled, metric: temperature, op: ">", critical: 90, cooldown: 1h }}
exporters:
  webhook: {{ url: {}, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [webhook] }}
"#,
        hook.url()
    ))
    .await;
    let app = SdkGauge::start(format!("http://{}", address(&collector, "otlp/grpc"))).await;
    let count = |alert: &str, status: &str| {
        notifications(&hook)
            .iter()
            .filter(|(a, s)| a == alert && s == status)
            .count()
    };
    const FLAPS: usize = 5;
    for flap in 1..=FLAPS {
        for (value, status) in [(95.0, "firing"), (50.0, "resolved")] {
            app.set(value).await;
            let seen = wait_for(Duration::from_secs(15), async || {
                (count("Flapping", status) == flap).then_some(())
            })
            .await;
            assert!(
                seen.is_some(),
                "flap {flap}: the rule without cooldown did not notify {status}: {:?}",
                notifications(&hook)
            );
        }
    }
    assert_eq!(count("Cooled", "firing"), 1, "{:?}", notifications(&hook));
    assert_eq!(
        count("Cooled", "resolved"),
        1,
        "the resolve of the notified fire goes out, no other: {:?}",
        notifications(&hook)
    );
    app.stop().await;
    assert!(collector.shutdown().await.clean);
}
