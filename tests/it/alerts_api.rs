//! The alerts API on the telemetry endpoint, with an app using the
//! OpenTelemetry SDK as the source and a webhook receiver as the
//! destination: the list shows what fires, an acknowledgement stops the
//! repeats but not the resolve, a silence mutes matching alerts until it
//! expires, both survive `kill -9`, and bad or unauthenticated writes are
//! refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::alert_delivery::SdkGauge;
use crate::alerting::{gauge, send_until_accepted, wait_for};
use crate::harness::{Sidewatch, address, free_port, start};
use crate::webhook_sink::WebhookSink;

/// A collector with one `alert` connector (`rules` spliced in) into a
/// webhook, its telemetry endpoint on port 0 (`telemetry` spliced into
/// `service.telemetry`).
fn config(rules: &str, hook: &str, telemetry: &str) -> String {
    format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  alert:
    evaluation_interval: 100ms
    rules:
{rules}
exporters:
  webhook: {{ url: {hook}, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} {telemetry} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [webhook] }}
"#
    )
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

fn count(sink: &WebhookSink, alert: &str, status: &str) -> usize {
    notifications(sink)
        .iter()
        .filter(|(a, s)| a == alert && s == status)
        .count()
}

async fn get(url: String) -> Value {
    let response = reqwest::get(&url).await.unwrap();
    assert!(response.status().is_success(), "GET {url}: {response:?}");
    response.json().await.unwrap()
}

async fn alerts(api: &str) -> Vec<Value> {
    get(format!("{api}/api/v1/alerts")).await["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The listed alert named `name` once it is firing.
async fn firing(api: &str, name: &str) -> Value {
    let found = wait_for(Duration::from_secs(15), async || {
        alerts(api)
            .await
            .into_iter()
            .find(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
    })
    .await;
    match found {
        Some(alert) => alert,
        None => panic!("{name} is not listed firing: {:?}", alerts(api).await),
    }
}

async fn post(url: String, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_a_firing_alert_and_an_acknowledgement_stops_its_repeats_but_not_its_resolve() {
    let hook = WebhookSink::start().await;
    let collector = start(&config(
        r#"      - { name: Hot, metric: temperature, op: ">", warning: 80, critical: 90, repeat_interval: 300ms, annotations: { summary: "at {{ $value }}" } }"#,
        &hook.url(),
        "",
    ))
    .await;
    let api = format!("http://{}", address(&collector, "telemetry"));
    let app = SdkGauge::start(format!("http://{}", address(&collector, "otlp/grpc"))).await;
    app.set(95.0).await;

    let alert = firing(&api, "Hot").await;
    assert_eq!(alert["labels"]["room"], "server");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["value"], "95");
    assert_eq!(alert["annotations"]["summary"], "at 95");
    assert!(
        alert["activeAt"].as_str().unwrap().ends_with('Z'),
        "{alert}"
    );
    assert_eq!(alert["acknowledged"], Value::Null);
    assert_eq!(alert["silencedBy"], json!([]));
    // It repeats every 300 ms while nobody acknowledged it.
    let repeating = wait_for(Duration::from_secs(10), async || {
        (count(&hook, "Hot", "firing") >= 3).then_some(())
    })
    .await;
    assert!(repeating.is_some(), "{:?}", notifications(&hook));

    let fingerprint = alert["fingerprint"].as_str().unwrap();
    let (status, answer) = post(
        format!("{api}/api/v1/alerts/{fingerprint}/ack"),
        r#"{"by": "alice", "comment": "fan replaced, cooling down"}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let listed = firing(&api, "Hot").await;
    assert_eq!(listed["acknowledged"]["by"], "alice");
    assert_eq!(
        listed["acknowledged"]["comment"],
        "fan replaced, cooling down"
    );
    // A repeat already on its way may still land; after that, none for
    // ten repeat intervals.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_ack = count(&hook, "Hot", "firing");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(&hook, "Hot", "firing"),
        after_ack,
        "an acknowledged alert repeated: {:?}",
        notifications(&hook)
    );

    app.set(50.0).await;
    let resolved = wait_for(Duration::from_secs(15), async || {
        (count(&hook, "Hot", "resolved") == 1).then_some(())
    })
    .await;
    assert!(
        resolved.is_some(),
        "the resolve of an acknowledged alert goes out: {:?}",
        notifications(&hook)
    );
    assert!(alerts(&api).await.is_empty());
    app.stop().await;
    assert!(collector.shutdown().await.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_mutes_matching_alerts_until_it_expires() {
    let hook = WebhookSink::start().await;
    let collector = start(&config(
        r#"      - { name: Hot, metric: temperature, op: ">", critical: 90 }
      - { name: Warm, metric: temperature, op: ">", warning: 70 }"#,
        &hook.url(),
        "",
    ))
    .await;
    let api = format!("http://{}", address(&collector, "telemetry"));
    let (status, answer) = post(
        format!("{api}/api/v1/silences"),
        r#"{"matchers": [{"name": "alertname", "value": "Hot"}, {"name": "room", "value": "serv.*", "isRegex": true}],
            "duration": "3s", "comment": "maintenance", "createdBy": "bob"}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["data"]["silenceID"].as_str().unwrap().to_string();
    let created = Instant::now();
    let silences = get(format!("{api}/api/v1/silences")).await;
    let listed = &silences["data"]["silences"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["status"]["state"], "active");
    assert_eq!(listed["createdBy"], "bob");

    let app = SdkGauge::start(format!("http://{}", address(&collector, "otlp/grpc"))).await;
    app.set(95.0).await;
    let hot = firing(&api, "Hot").await;
    assert_eq!(hot["silencedBy"], json!([id]), "{hot}");
    assert_eq!(firing(&api, "Warm").await["silencedBy"], json!([]));
    // Warm, which the silence does not match, notifies; Hot does not.
    let warm = wait_for(Duration::from_secs(10), async || {
        (count(&hook, "Warm", "firing") == 1).then_some(())
    })
    .await;
    assert!(warm.is_some(), "{:?}", notifications(&hook));
    assert_eq!(
        count(&hook, "Hot", "firing"),
        0,
        "{:?}",
        notifications(&hook)
    );

    let told = wait_for(Duration::from_secs(15), async || {
        (count(&hook, "Hot", "firing") == 1).then_some(created.elapsed())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "Hot never notified after the silence: {:?}",
            notifications(&hook)
        )
    });
    assert!(
        told >= Duration::from_millis(2900),
        "notified {told:?} after a 3 s silence began"
    );
    let silences = get(format!("{api}/api/v1/silences")).await;
    assert_eq!(
        silences["data"]["silences"][0]["status"]["state"],
        "expired"
    );
    assert_eq!(firing(&api, "Hot").await["silencedBy"], json!([]));
    app.stop().await;
    assert!(collector.shutdown().await.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_and_silences_survive_kill_nine() {
    let hook = WebhookSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (otlp, telemetry) = (free_port(), free_port());
    let config_file = dir.path().join("alerts.yaml");
    std::fs::write(
        &config_file,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{otlp} }} }} }}
connectors:
  alert:
    evaluation_interval: 100ms
    state_file: {}
    rules:
      - {{ name: Hot, metric: temperature, op: ">", critical: 90, repeat_interval: 300ms }}
exporters:
  webhook: {{ url: {}, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry} }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs: {{ receivers: [alert], exporters: [webhook] }}
"#,
            dir.path().join("state.json").display(),
            hook.url()
        ),
    )
    .unwrap();
    let api = format!("http://127.0.0.1:{telemetry}");
    let hot = gauge("temperature", &[("room", "server")], 95.0);

    let mut sidewatch = Sidewatch::run(&config_file);
    send_until_accepted(otlp, &hot).await;
    let fingerprint = firing(&api, "Hot").await["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = post(
        format!("{api}/api/v1/alerts/{fingerprint}/ack"),
        r#"{"by": "alice"}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        format!("{api}/api/v1/silences"),
        r#"{"matchers": [{"name": "alertname", "value": "Cold"}], "duration": "1h",
            "comment": "heating off for the summer", "createdBy": "bob"}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["data"]["silenceID"].clone();
    // An answer means it is on disk: kill at once.
    sidewatch.kill().unwrap();
    sidewatch.wait().unwrap();

    let _sidewatch = Sidewatch::run(&config_file);
    send_until_accepted(otlp, &hot).await;
    let alert = firing(&api, "Hot").await;
    assert_eq!(alert["fingerprint"], fingerprint.as_str());
    assert_eq!(alert["acknowledged"]["by"], "alice", "{alert}");
    let silences = get(format!("{api}/api/v1/silences")).await;
    assert_eq!(silences["data"]["silences"][0]["id"], id, "{silences}");
    assert_eq!(
        silences["data"]["silences"][0]["comment"],
        "heating off for the summer"
    );
    // Still acknowledged after the restart: no repeats.
    let before = count(&hook, "Hot", "firing");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&hook, "Hot", "firing"),
        before,
        "{:?}",
        notifications(&hook)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_and_unauthenticated_writes_are_refused() {
    let hook = WebhookSink::start().await;
    let collector = start(&config(
        r#"      - { name: Hot, metric: temperature, op: ">", critical: 90 }"#,
        &hook.url(),
        ", auth: { bearer_token: s3cret, allow_plaintext: true }",
    ))
    .await;
    let api = format!("http://{}", address(&collector, "telemetry"));
    let client = reqwest::Client::new();
    let silence = r#"{"matchers": [{"name": "alertname", "value": "Hot"}], "duration": "1h", "comment": "c", "createdBy": "me"}"#;
    let send = async |token: Option<&str>, path: &str, body: &str| {
        let mut request = client
            .post(format!("{api}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };

    assert_eq!(send(None, "/api/v1/silences", silence).await.0, 401);
    assert_eq!(
        send(Some("wrong"), "/api/v1/silences", silence).await.0,
        401
    );
    let unauthenticated = client
        .delete(format!("{api}/api/v1/silences/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    assert!(
        get(format!("{api}/api/v1/silences")).await["data"]["silences"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was written"
    );

    let (status, body) = send(Some("s3cret"), "/api/v1/silences", "{\"matchers\": [").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid JSON body"), "{body}");
    let (status, body) = send(
        Some("s3cret"),
        "/api/v1/silences",
        r#"{"matchers": [{"name": "alertname", "value": "Hot"}], "comment": "c", "createdBy": "me"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("exactly one of endsAt and duration"),
        "{body}"
    );
    let (status, body) = send(
        Some("s3cret"),
        "/api/v1/silences",
        r#"{"matchers": [{"name": "room", "value": ".*", "isRegex": true}], "duration": "1h", "comment": "c", "createdBy": "me"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("must not match the empty string"), "{body}");
    let (status, body) = send(Some("s3cret"), "/api/v1/alerts/abc/ack", "[1, 2]").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(Some("s3cret"), "/api/v1/alerts/abc/ack", r#"{"by": "me"}"#).await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = send(Some("s3cret"), "/api/v1/silences", silence).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(format!("{api}/api/v1/silences")).await["data"]["silences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(collector.shutdown().await.clean);
}
