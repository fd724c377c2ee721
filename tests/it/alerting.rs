//! Alerting with real parts: the same series through our rules and through
//! Prometheus's own rule engine (`promtool test rules`) fire and resolve at
//! the same evaluation steps; alerts reach a real Alertmanager and a local
//! webhook (Alertmanager and Slack formats) and resolve; a sidewatch
//! killed and restarted neither re-notifies nor forgets a pending `for`;
//! and requests never wait for the state file's write.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use prost::Message;
use sidewatch::alerting::engine::{Engine, Labels};
use sidewatch::alerting::event::Transition;
use sidewatch::alerting::rule::RuleConfig;

use crate::external::binary;
use crate::harness::{address, free_port, start};
use crate::webhook_sink::WebhookSink;

pub fn gauge(name: &str, labels: &[(&str, &str)], value: f64) -> ExportMetricsServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: labels
                                .iter()
                                .map(|(k, v)| KeyValue {
                                    key: k.to_string(),
                                    value: Some(AnyValue {
                                        value: Some(any_value::Value::StringValue(v.to_string())),
                                    }),
                                    ..Default::default()
                                })
                                .collect(),
                            time_unix_nano: now,
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
}

/// One case: a series in promtool's notation, our rule, Prometheus's rule.
struct Case {
    name: &'static str,
    series: &'static str,
    labels: &'static [(&'static str, &'static str)],
    metric: &'static str,
    values: &'static str,
    ours: &'static str,
    prometheus: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "for",
        series: r#"cpu{host="a"}"#,
        labels: &[("host", "a")],
        metric: "cpu",
        values: "0.1 0.8 0.8 0.8 0.8 0.1 0.1 0.8 0.8 0.1 0.8 0.8 0.8 0.8 0.8 0.1",
        ours: "{ name: High, metric: cpu, op: '>', warning: 0.7, for: 2m }",
        prometheus: "{ alert: High, expr: 'cpu > 0.7', for: 2m, labels: { severity: warning } }",
    },
    Case {
        name: "keep_firing_for",
        series: r#"cpu{host="a"}"#,
        labels: &[("host", "a")],
        metric: "cpu",
        values: "0.1 0.8 0.8 0.1 0.1 0.8 0.1 0.1 0.1 0.1 0.8 0.1 0.8 0.1 0.1 0.1",
        ours: "{ name: High, metric: cpu, op: '>', warning: 0.7, keep_firing_for: 2m }",
        prometheus: "{ alert: High, expr: 'cpu > 0.7', keep_firing_for: 2m, labels: { severity: warning } }",
    },
    Case {
        name: "absent",
        series: r#"up{host="a"}"#,
        labels: &[("host", "a")],
        metric: "up",
        values: "1 1 1 _ _ _ _ 1 1 _ _ _ 1",
        ours: "{ name: Down, metric: up, absent_for: 2m, critical: 2, op: '>' }",
        prometheus: "{ alert: Down, expr: 'absent_over_time(up{host=\"a\"}[2m])', labels: { severity: critical, alert_reason: absent } }",
    },
];

/// Runs our engine over the case minute by minute: the firing label sets
/// after each evaluation.
fn our_firing_alerts(case: &Case) -> Vec<Vec<BTreeMap<String, String>>> {
    let rule = yaml_serde::from_str::<RuleConfig>(case.ours)
        .unwrap()
        .compile()
        .unwrap();
    let mut engine = Engine::new(vec![rule]);
    let labels: Labels = case
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut firing: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut steps = Vec::new();
    for (minute, value) in case.values.split_whitespace().enumerate() {
        let t = minute as f64 * 60.0;
        if let Ok(v) = value.parse::<f64>() {
            engine.observe(case.metric, &labels, t, v);
        }
        for event in engine.evaluate(t) {
            match event.transition {
                Transition::Resolved => {
                    firing.remove(&event.fingerprint);
                }
                _ => {
                    let labels = event
                        .labels
                        .iter()
                        .filter(|(k, _)| k.as_str() != "alertname")
                        .map(|(k, v)| {
                            (
                                sidewatch::exporters::alert_payload::label_name(k),
                                v.clone(),
                            )
                        })
                        .collect();
                    firing.insert(event.fingerprint.clone(), labels);
                }
            }
        }
        steps.push(firing.values().cloned().collect());
    }
    steps
}

#[test]
fn fires_and_resolves_at_the_same_steps_as_prometheus() {
    let Some(promtool) = binary("promtool", "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut any_firing = 0;
    for case in CASES {
        let steps = our_firing_alerts(case);
        any_firing += steps.iter().filter(|s| !s.is_empty()).count();
        let rules = format!(
            "groups:\n  - name: {}\n    interval: 1m\n    rules:\n      - {}\n",
            case.name, case.prometheus
        );
        std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
        let alertname = case
            .ours
            .split("name: ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let mut tests = String::new();
        for (minute, firing) in steps.iter().enumerate() {
            tests.push_str(&format!("      - eval_time: {minute}m\n        alertname: {alertname}\n        exp_alerts:\n"));
            for labels in firing {
                tests.push_str(&format!(
                    "          - exp_labels: {}\n",
                    serde_json::to_string(labels).unwrap()
                ));
            }
            if firing.is_empty() {
                tests.truncate(tests.len() - 1);
                tests.push_str(" []\n");
            }
        }
        let test_file = format!(
            "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: '{}'\n        values: '{}'\n    alert_rule_test:\n{tests}",
            case.series, case.values
        );
        std::fs::write(dir.path().join("test.yaml"), &test_file).unwrap();
        let output = Command::new(&promtool)
            .args(["test", "rules", "test.yaml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "case {}: Prometheus disagrees with sidewatch:\n{}\n{}\ntest file:\n{test_file}",
            case.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(any_firing > 5, "the cases must actually fire");
}

pub async fn wait_for<T>(limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(found) = check().await {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

pub struct Alertmanager {
    child: std::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_alertmanager() -> Option<Alertmanager> {
    let binary = binary("prometheus-alertmanager", "prometheus-alertmanager")?;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, "route: { receiver: none, group_wait: 0s, group_interval: 1s, repeat_interval: 1h }\nreceivers: [ { name: none } ]\n").unwrap();
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = wait_for(Duration::from_secs(20), async || {
        client
            .get(format!("{url}/-/ready"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    assert!(ready.is_some(), "Alertmanager did not become ready");
    Some(Alertmanager {
        child,
        url,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_and_webhooks_and_resolve() {
    let Some(alertmanager) = start_alertmanager().await else {
        return;
    };
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
      - name: QueueBacklog
        metric: queue.depth
        matchers: ['queue=~"ord.*"']
        op: ">"
        warning: 10
        critical: 100
        labels: {{ team: infra }}
        annotations: {{ summary: "queue {{{{ $labels.queue }}}} holds {{{{ $value }}}} messages" }}
exporters:
  alertmanager: {{ endpoint: {}, resend_interval: 1s, retry_on_failure: {{ initial_interval: 100ms }} }}
  webhook/ops: {{ url: {} }}
  webhook/slack: {{ url: {}, format: slack }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [alertmanager, webhook/ops, webhook/slack] }}
"#,
        alertmanager.url,
        hook.url(),
        slack.url()
    ))
    .await;
    let mut client =
        MetricsServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    client
        .export(gauge("queue.depth", &[("queue", "orders")], 150.0))
        .await
        .unwrap();
    client
        .export(gauge("queue.depth", &[("queue", "billing")], 150.0))
        .await
        .unwrap();

    let http = reqwest::Client::new();
    let alerts_url = format!("{}/api/v2/alerts", alertmanager.url);
    let fetch = async || -> Vec<serde_json::Value> {
        let body = http
            .get(&alerts_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    let active = wait_for(Duration::from_secs(15), async || {
        let alerts = fetch().await;
        alerts.into_iter().find(|a| {
            a["labels"]["alertname"] == "QueueBacklog" && a["status"]["state"] == "active"
        })
    })
    .await
    .expect("the alert reaches Alertmanager");
    assert_eq!(active["labels"]["queue"], "orders");
    assert_eq!(active["labels"]["severity"], "critical");
    assert_eq!(active["labels"]["team"], "infra");
    assert_eq!(
        active["annotations"]["summary"],
        "queue orders holds 150 messages"
    );
    assert_eq!(
        fetch().await.len(),
        1,
        "the billing queue does not match the rule's matcher"
    );

    // Webhook (Alertmanager's payload shape) and Slack got the firing alert.
    let firing = wait_for(Duration::from_secs(5), async || {
        hook.posted
            .all()
            .into_iter()
            .find(|p| p["status"] == "firing")
    })
    .await
    .unwrap();
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["alerts"][0]["labels"]["alertname"], "QueueBacklog");
    assert_eq!(firing["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let slack_message = wait_for(Duration::from_secs(5), async || {
        slack.posted.all().into_iter().next()
    })
    .await
    .unwrap();
    assert_eq!(
        slack_message["attachments"][0]["color"], "#d00000",
        "critical is red"
    );
    assert_eq!(
        slack_message["attachments"][0]["title"],
        "[FIRING] QueueBacklog (critical)"
    );

    // The queue drains: the alert resolves everywhere.
    client
        .export(gauge("queue.depth", &[("queue", "orders")], 1.0))
        .await
        .unwrap();
    let gone = wait_for(Duration::from_secs(15), async || {
        let alerts = fetch().await;
        alerts
            .iter()
            .all(|a| a["status"]["state"] != "active")
            .then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "Alertmanager still shows the alert active: {:?}",
        fetch().await
    );
    let resolved = wait_for(Duration::from_secs(5), async || {
        hook.posted
            .all()
            .into_iter()
            .find(|p| p["status"] == "resolved")
    })
    .await
    .unwrap();
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let slack_resolved = wait_for(Duration::from_secs(5), async || {
        slack.posted.all().into_iter().nth(1)
    })
    .await
    .unwrap();
    assert_eq!(slack_resolved["attachments"][0]["color"], "#2eb886");
    assert!(collector.shutdown().await.clean);
}

/// Runs the sidewatch binary with `config`; returns the child.
fn spawn_sidewatch(config: &std::path::Path) -> crate::harness::Sidewatch {
    crate::harness::Sidewatch::run(config)
}

pub async fn send_until_accepted(port: u16, request: &ExportMetricsServiceRequest) {
    let client = reqwest::Client::new();
    let body = request.encode_to_vec();
    let sent = wait_for(Duration::from_secs(10), async || {
        client
            .post(format!("http://127.0.0.1:{port}/v1/metrics"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    assert!(sent.is_some(), "sidewatch did not accept the data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_neither_renotifies_nor_forgets_pending_for() {
    let hook = WebhookSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("alerts.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{port} }} }} }}
connectors:
  alert:
    evaluation_interval: 100ms
    state_file: {}
    rules:
      - {{ name: Hot, metric: temperature, op: ">", critical: 50, for: 3s, repeat_interval: 1h }}
exporters:
  webhook: {{ url: {}, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs: {{ receivers: [alert], exporters: [webhook] }}
"#,
            dir.path().join("state.json").display(),
            hook.url()
        ),
    )
    .unwrap();
    let hot = gauge("temperature", &[("room", "server")], 80.0);

    // Pending: the condition starts holding, then sidewatch is killed.
    let mut first = spawn_sidewatch(&config);
    send_until_accepted(port, &hot).await;
    let pending_since = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill().unwrap();
    first.wait().unwrap();

    // Restarted: the pending time before the kill counts towards `for`.
    let mut second = spawn_sidewatch(&config);
    send_until_accepted(port, &hot).await;
    let fired = wait_for(Duration::from_secs(10), async || {
        hook.posted
            .all()
            .into_iter()
            .find(|p| p["status"] == "firing")
    })
    .await;
    let fired_after = pending_since.elapsed();
    assert!(fired.is_some(), "the alert never fired after the restart");
    assert!(
        fired_after < Duration::from_millis(4200),
        "fired {fired_after:?} after the condition began: `for` progress was lost"
    );

    // Firing: kill and restart again; no second notification.
    second.kill().unwrap();
    second.wait().unwrap();
    let mut third = spawn_sidewatch(&config);
    send_until_accepted(port, &hot).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = third.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    third.wait().unwrap();
    let firing_posts = hook
        .posted
        .all()
        .into_iter()
        .filter(|p| p["status"] == "firing")
        .count();
    assert_eq!(
        firing_posts,
        1,
        "a restart must not re-notify: {:?}",
        hook.posted.all()
    );
}

/// The alert state is written outside the connector's lock: while a write
/// cannot finish (its temporary file is a FIFO nobody reads yet), requests
/// on the pipeline are still answered at once; and the notification of an
/// alert goes out only once the state recording it is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_do_not_wait_for_the_alert_state_write() {
    let hook = WebhookSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let state = dir.path().join("state.json");
    let fifo = dir.path().join("state.tmp");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let config = dir.path().join("alerts.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{port} }} }} }}
connectors:
  alert:
    evaluation_interval: 100ms
    state_file: {}
    rules:
      - {{ name: Hot, metric: temperature, op: ">", critical: 50 }}
exporters:
  webhook: {{ url: {}, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs: {{ receivers: [alert], exporters: [webhook] }}
"#,
            state.display(),
            hook.url()
        ),
    )
    .unwrap();
    let _sidewatch = spawn_sidewatch(&config);
    let listening = wait_for(Duration::from_secs(10), async || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .await;
    assert!(listening.is_some(), "sidewatch did not listen");
    // The first evaluation writes the state and blocks opening the FIFO.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .timeout(Duration::from_secs(3))
        .body(gauge("temperature", &[("room", "server")], 80.0).encode_to_vec())
        .send()
        .await;
    assert!(
        answered.as_ref().is_ok_and(|r| r.status().is_success()),
        "a request waited for the state write: {answered:?}"
    );
    assert!(
        hook.posted.all().is_empty(),
        "nothing is notified before the state write finishes"
    );

    // Let the write go on: open the FIFO for reading (the writer's open
    // returns), take its name away (later writes make a regular file),
    // and read what was written. That first write then fails (a FIFO
    // cannot be fsynced), which is logged; the next one succeeds.
    let written = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || read_fifo(&fifo)),
    )
    .await
    .expect("reading the FIFO took too long")
    .unwrap();
    assert!(
        written.starts_with('{'),
        "the state was written: {written:?}"
    );
    let fired = wait_for(Duration::from_secs(10), async || {
        hook.posted
            .all()
            .into_iter()
            .find(|p| p["status"] == "firing")
    })
    .await;
    assert!(fired.is_some(), "the alert never fired");
    // The notification went out after the state that records it was saved.
    let saved = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || std::fs::read_to_string(state)),
    )
    .await
    .expect("the state file is still the FIFO: the firing state was not saved")
    .unwrap()
    .unwrap();
    assert!(
        saved.contains("Hot") && saved.to_lowercase().contains("firing"),
        "{saved}"
    );
}

/// Opens a FIFO for reading without waiting for a writer, unlinks it, and
/// reads until the writer that connected closes it (bounded: 5 s).
fn read_fifo(fifo: &std::path::Path) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .unwrap();
    std::fs::remove_file(fifo).unwrap();
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        match file.read(&mut buffer) {
            // No writer (any more): done once one has written.
            Ok(0) if !text.is_empty() => break,
            Ok(0) => {}
            Ok(n) => text.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading the FIFO: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn replay_reports_which_alerts_would_have_fired() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rules.yaml");
    std::fs::write(
        &config,
        r#"
receivers:
  otlp: {}
connectors:
  alert:
    evaluation_interval: 1m
    rules:
      - { name: Hot, metric: temperature, op: ">", warning: 80, critical: 90, for: 5m }
exporters:
  debug: {}
service:
  pipelines:
    metrics: { receivers: [otlp], exporters: [alert] }
    logs: { receivers: [alert], exporters: [debug] }
"#,
    )
    .unwrap();
    // An hour of minutes: hot from minute 20 to 40, never above 90.
    let mut csv = String::from("timestamp,value\n");
    for minute in 0..60 {
        let value = if (20..40).contains(&minute) {
            85.0
        } else {
            60.0
        };
        csv.push_str(&format!("{},{value}\n", 1_700_000_000 + minute * 60));
    }
    let input = dir.path().join("history.csv");
    std::fs::write(&input, csv).unwrap();
    let output = dir.path().join("out.csv");
    let result = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["replay", "--metric", "temperature", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("alerts fired: Hot x1"), "{stderr}");
    let events: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("out.csv.events.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let transitions: Vec<(&str, f64)> = events
        .iter()
        .map(|e| {
            (
                e["transition"].as_str().unwrap(),
                e["emitted_at"].as_f64().unwrap(),
            )
        })
        .collect();
    // Pending from minute 20, firing at 25 (for: 5m), resolved at 40.
    assert_eq!(
        transitions,
        vec![
            ("fired", 1_700_000_000.0 + 25.0 * 60.0),
            ("resolved", 1_700_000_000.0 + 40.0 * 60.0)
        ]
    );
}

/// `sidewatch replay` over `csv` with the alert rule `rule` evaluated
/// every minute: the (transition, event time) of every alert event.
fn replay_transitions(rule: &str, csv: &str) -> Vec<(String, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rules.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{}}
connectors:
  alert:
    evaluation_interval: 1m
    rules:
      - {rule}
exporters:
  debug: {{}}
service:
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs: {{ receivers: [alert], exporters: [debug] }}
"#
        ),
    )
    .unwrap();
    let input = dir.path().join("history.csv");
    std::fs::write(&input, csv).unwrap();
    let output = dir.path().join("out.csv");
    let result = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["replay", "--metric", "temperature", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::read_to_string(dir.path().join("out.csv.events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|e| {
            (
                e["transition"].as_str().unwrap().to_string(),
                e["emitted_at"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn replay_fires_absent_for_in_event_time_across_a_gap() {
    // A point a minute for 20 minutes, nothing for 30, then 10 more.
    let start = 1_700_000_000.0;
    let mut csv = String::from("timestamp,value\n");
    for minute in (0..=20).chain(50..60) {
        csv.push_str(&format!("{},21.5\n", start as i64 + minute * 60));
    }
    let transitions = replay_transitions(
        "{ name: SensorSilent, metric: temperature, absent_for: 5m }",
        &csv,
    );
    // Last point at minute 20; at 25 it is exactly 5m old and still
    // counts (as in Prometheus), so the evaluation at 26 fires; the point
    // at 50 ends the absence.
    assert_eq!(
        transitions,
        vec![
            ("fired".to_string(), start + 26.0 * 60.0),
            ("resolved".to_string(), start + 50.0 * 60.0)
        ]
    );
}
