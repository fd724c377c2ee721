//! pipelines/logs.yaml end to end: the real binary runs the shipped file
//! (shortened by its ${env:...} settings) tailing an nginx access log and
//! an auth log the test appends to; the access log's request counters
//! reach the Prometheus endpoint by status, and 5 failed logins from one
//! host within a minute fire `FailedLogins` into the real Alertmanager and
//! the webhook, while 4 (or 5 spread over two hosts) do not.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::alerting::{start_alertmanager, wait_for};
use crate::backend::Backend;
use crate::harness::{Sidewatch, free_port};
use crate::webhook_sink::WebhookSink;

fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

fn failed_login(host: &str, i: usize) -> String {
    format!(
        "Dec  3 09:24:{:02} {host} sshd[{}]: Failed password for invalid user admin from 203.0.113.{i} port {} ssh2",
        i % 60,
        4000 + i,
        50000 + i
    )
}

fn access(status: u16, i: usize) -> String {
    format!(
        r#"192.0.2.{i} - - [03/Dec/2026:09:24:{:02} +0000] "GET /api/items/{i} HTTP/1.1" {status} 512 "-" "curl/8""#,
        i % 60
    )
}

/// Label sets of the `FailedLogins` alerts Alertmanager holds.
async fn failed_logins(alertmanager: &str) -> Vec<serde_json::Value> {
    let alerts: Vec<serde_json::Value> = reqwest::get(format!("{alertmanager}/api/v2/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "FailedLogins")
        .map(|a| a["labels"].clone())
        .collect()
}

/// The value of the first Prometheus sample line that contains every
/// one of `parts`.
fn sample(text: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_logs_pipeline_counts_requests_and_fires_failed_logins_into_alertmanager() {
    let Some(alertmanager) = start_alertmanager().await else {
        return;
    };
    let hook = WebhookSink::start().await;
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let (access_log, auth_log) = (dir.path().join("access.log"), dir.path().join("auth.log"));
    std::fs::write(&access_log, "").unwrap();
    std::fs::write(&auth_log, "").unwrap();
    let prometheus = format!("127.0.0.1:{}", free_port());
    let telemetry = format!("127.0.0.1:{}", free_port());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/logs.yaml");
    let _sidewatch = Sidewatch(
        Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["run", "--config"])
            .arg(&config)
            .envs([
                ("NGINX_ACCESS_LOG", access_log.to_str().unwrap()),
                ("AUTH_LOG", auth_log.to_str().unwrap()),
                // The files start empty: every appended line is read.
                ("LOG_START_AT", "beginning"),
                ("LOG_POLL_INTERVAL", "50ms"),
                (
                    "SIDEWATCH_STATE_DIR",
                    dir.path().join("state").to_str().unwrap(),
                ),
                ("LOGPATTERNS_INTERVAL", "200ms"),
                ("LOGPATTERNS_LEARNING_PERIOD", "1s"),
                ("LOG_ALERT_EVALUATION_INTERVAL", "200ms"),
                ("OTLP_ENDPOINT", &backend.url()),
                ("PROMETHEUS_ENDPOINT", &prometheus),
                ("ALERT_WEBHOOK_URL", &hook.url()),
                ("ALERTMANAGER_URL", &alertmanager.url),
                ("SIDEWATCH_TELEMETRY_ADDRESS", &telemetry),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sidewatch starts"),
    );

    // Requests: 10 answered 200, 2 answered 500.
    let mut requests: Vec<String> = (0..10).map(|i| access(200, i)).collect();
    requests.extend((10..12).map(|i| access(500, i)));
    append(&access_log, &requests);
    let scrape = async || {
        reqwest::get(format!("http://{prometheus}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    let counted = wait_for(Duration::from_secs(30), async || {
        let text = scrape().await?;
        let ok = sample(&text, &["http_server_request_count", "status_code=\"200\""])?;
        let failed = sample(&text, &["http_server_request_count", "status_code=\"500\""])?;
        let errors = sample(&text, &["http_server_error_count"])?;
        (ok == 10.0 && failed == 2.0 && errors == 2.0).then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "request counters by status: {}",
        scrape().await.unwrap_or_default()
    );

    // 4 failed logins on web1 and 1 on web2: 5 in the minute, but not
    // from one host.
    let mut lines: Vec<String> = (0..4).map(|i| failed_login("web1", i)).collect();
    lines.push(failed_login("web2", 4));
    append(&auth_log, &lines);
    let seen = wait_for(Duration::from_secs(30), async || {
        let text = scrape().await?;
        let web1 = sample(&text, &["auth_failed_login_count", "host_name=\"web1\""])?;
        (web1 == 4.0).then_some(())
    })
    .await;
    assert!(seen.is_some(), "{}", scrape().await.unwrap_or_default());
    // A few evaluations (200 ms apart) go by without it firing.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        failed_logins(&alertmanager.url).await.is_empty(),
        "FailedLogins fired below 5 per host: {:?}",
        failed_logins(&alertmanager.url).await
    );

    // The fifth from web1 fires it, for web1 only.
    append(&auth_log, &[failed_login("web1", 5)]);
    let fired = wait_for(Duration::from_secs(30), async || {
        let alerts = failed_logins(&alertmanager.url).await;
        (!alerts.is_empty()).then_some(alerts)
    })
    .await
    .expect("FailedLogins reaches Alertmanager");
    assert_eq!(fired.len(), 1, "{fired:?}");
    let labels = fired[0].as_object().unwrap();
    assert!(
        labels.values().any(|v| v == "web1") && !labels.values().any(|v| v == "web2"),
        "{labels:?}"
    );
    assert_eq!(labels["severity"], "warning");
    let posted = wait_for(Duration::from_secs(10), async || {
        hook.posted
            .all()
            .iter()
            .any(|p| p.to_string().contains("FailedLogins"))
            .then_some(())
    })
    .await;
    assert!(
        posted.is_some(),
        "the webhook got FailedLogins: {:?}",
        hook.posted.all()
    );
    backend.stop().await;
}
