//! The alert rules of pipelines/checks.yaml, end to end: the real binary
//! runs the shipped file (shortened by its ${env:...} settings) against
//! local targets and the real Alertmanager; a target the test takes down
//! fires EndpointDown, and resolves when it comes back.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::alerting::{start_alertmanager, wait_for};
use crate::harness::{Sidewatch, free_port};
use crate::webhook_sink::WebhookSink;

/// (alertname, severity) of every alert Alertmanager shows as not ended
/// whose labels mention `target` (any label value containing it).
async fn active(alertmanager: &str, target: &str) -> BTreeSet<(String, String)> {
    let alerts: Vec<serde_json::Value> = reqwest::get(format!("{alertmanager}/api/v2/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts
        .iter()
        .filter(|a| {
            a["endsAt"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .is_none_or(|end| end > SystemTime::now())
        })
        .filter(|a| {
            a["labels"].as_object().is_some_and(|labels| {
                labels
                    .values()
                    .any(|v| v.as_str().is_some_and(|v| v.contains(target)))
            })
        })
        .map(|a| {
            (
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                a["labels"]["severity"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// The test's HTTP target, on a port it can close and open again.
async fn serve_on(address: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, crate::checks_http::app()).await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_check_rules_fire_into_alertmanager_and_resolve() {
    let Some(alertmanager) = start_alertmanager().await else {
        return;
    };
    let hook = WebhookSink::start().await;
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut server = serve_on(web).await;
    let dir = tempfile::tempdir().unwrap();
    crate::certs::ca(dir.path(), "ca");
    crate::checks_tls::server_certificate(dir.path(), "ca", "soon", 10);
    let tls = crate::checks_tls::serve_tls(dir.path(), "soon", None).await;
    let dns_server = format!("127.0.0.1:{}", free_port());
    let telemetry = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{web}/ok");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/checks.yaml");
    let _sidewatch = Sidewatch(
        Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["run", "--config"])
            .arg(&config)
            .envs([
                ("CHECK_URL", url.as_str()),
                ("CHECK_TCP_ENDPOINT", &web.to_string()),
                ("CHECK_TLS_ENDPOINT", &tls.to_string()),
                ("CHECK_DNS_DOMAIN", "example.test"),
                ("CHECK_DNS_SERVER", &dns_server),
                ("CHECK_INTERVAL", "500ms"),
                ("CHECK_TLS_INTERVAL", "1s"),
                ("CHECK_TIMEOUT", "400ms"),
                ("CHECK_DNS_TIMEOUT", "400ms"),
                ("CHECK_RETRIES", "0"),
                ("CHECK_DOWN_FOR", "2s"),
                ("CHECK_EVALUATION_INTERVAL", "250ms"),
                ("CHECK_PERCENTILES_INTERVAL", "500ms"),
                // Any duration is "slow": the rule's wiring is under test.
                ("CHECK_SLOW_SECONDS", "0.000001"),
                ("CHECK_SLOW_FOR", "0s"),
                ("ALERTMANAGER_URL", &alertmanager.url),
                ("ALERT_WEBHOOK_URL", &hook.url()),
                ("PROMETHEUS_ENDPOINT", "127.0.0.1:0"),
                ("SIDEWATCH_TELEMETRY_ADDRESS", &telemetry),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sidewatch starts"),
    );
    let shows = async |target: &str, expected: &[(&str, &str)]| {
        let expected: BTreeSet<(String, String)> = expected
            .iter()
            .map(|(a, s)| (a.to_string(), s.to_string()))
            .collect();
        let reached = wait_for(Duration::from_secs(30), async || {
            (active(&alertmanager.url, target).await == expected).then_some(())
        })
        .await;
        assert!(
            reached.is_some(),
            "for {target}, Alertmanager shows {:?}, expected {expected:?}",
            active(&alertmanager.url, target).await
        );
    };
    // Up: only the always-slow rule fires for the web target.
    shows(&url, &[("EndpointSlow", "warning")]).await;
    shows(&web.to_string(), &[("EndpointSlow", "warning")]).await;
    // 10 days left: under 14 (warning), not under 7; and the test CA is
    // not trusted by the shipped file's system roots.
    shows(
        &tls.to_string(),
        &[
            ("CertificateExpiring", "warning"),
            ("CertificateInvalid", "critical"),
        ],
    )
    .await;
    shows(&dns_server, &[("DNSFailing", "critical")]).await;

    // Down: the HTTP and the TCP check both fail, for 2 s, then fire.
    server.abort();
    let _ = (&mut server).await;
    shows(
        &url,
        &[("EndpointSlow", "warning"), ("EndpointDown", "critical")],
    )
    .await;
    let tcp_target = web.to_string();
    let tcp = wait_for(Duration::from_secs(30), async || {
        active(&alertmanager.url, &tcp_target)
            .await
            .contains(&("EndpointDown".into(), "critical".into()))
            .then_some(())
    })
    .await;
    assert!(tcp.is_some(), "EndpointDown for the TCP check of {web}");
    let status: serde_json::Value = reqwest::get(format!("http://{telemetry}/checks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let down: Vec<&str> = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "down")
        .filter_map(|c| c["target"].as_str())
        .collect();
    assert!(down.contains(&url.as_str()), "{status}");

    // Back: EndpointDown resolves, in Alertmanager and at the webhook.
    let _server = serve_on(web).await;
    shows(&url, &[("EndpointSlow", "warning")]).await;
    let resolved = wait_for(Duration::from_secs(30), async || {
        hook.posted
            .all()
            .iter()
            .any(|p| {
                p["status"] == "resolved"
                    && p["alerts"].as_array().is_some_and(|alerts| {
                        alerts.iter().any(|a| {
                            a["labels"]["alertname"] == "EndpointDown" && a["status"] == "resolved"
                        })
                    })
            })
            .then_some(())
    })
    .await;
    assert!(
        resolved.is_some(),
        "no resolved EndpointDown at the webhook: {:?}",
        hook.posted.all()
    );
}
