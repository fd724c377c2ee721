//! Coming from the OpenTelemetry Collector: its `health_check` extension
//! answering as the Collector's does, and a folder of Collector-shaped
//! agent and sidecar configs (tests/config/otelcol/) that must validate
//! unchanged, or fail only on components listed as out of scope.

use std::path::Path;
use std::time::Duration;

use prost::Message;

use crate::harness::{address, free_port, start, trace_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_answers_as_the_collectors_while_serving_and_503_while_draining() {
    let dead = free_port();
    let collector = start(&format!(
        r#"
extensions:
  health_check: {{ endpoint: "127.0.0.1:0", path: /health/status }}
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:{dead}
    tls: {{ insecure: true }}
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 100ms }}
service:
  extensions: [health_check]
  shutdown_timeout: 3s
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp_grpc] }}
"#
    ))
    .await;
    let health = format!(
        "http://{}/health/status",
        address(&collector, "health_check")
    );
    let http = reqwest::Client::new();
    let response = http.get(&health).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "Server available", "{body}");
    assert!(
        body["upSince"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{body}"
    );
    assert!(
        body["uptime"].as_str().is_some_and(|s| s.ends_with('s')),
        "{body}"
    );
    assert_eq!(
        http.get(format!("http://{}/", address(&collector, "health_check")))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "only the configured path answers"
    );

    // One span the dead backend never takes keeps the drain busy.
    let sent = http
        .post(format!(
            "http://{}/v1/traces",
            address(&collector, "otlp/http")
        ))
        .header("content-type", "application/x-protobuf")
        .body(trace_request("held", 1).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
    let shutdown = tokio::spawn(collector.shutdown());
    let mut unavailable = None;
    for _ in 0..100 {
        match http.get(&health).send().await {
            Ok(r) if r.status() == 503 => {
                unavailable = Some(r.json::<serde_json::Value>().await.unwrap());
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let body = unavailable.expect("503 while draining");
    assert_eq!(body["status"], "Server not available", "{body}");
    let report = shutdown.await.unwrap();
    assert!(!report.clean, "the dead backend should have kept one batch");
}

#[test]
fn collector_names_map_onto_one_plan() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/otelcol_service.yaml");
    let loaded = sidewatch::plan::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let service = &loaded.plan.service;
    let limiter = service
        .memory_limiter
        .as_ref()
        .expect("memory_limiter moved onto the service");
    assert_eq!(
        limiter.limit_mib, 256,
        "the lowest limit of the two processors"
    );
    for pipeline in &service.pipelines {
        assert!(
            pipeline
                .processors
                .iter()
                .all(|p| p.type_name != "memory_limiter"),
            "{:?}",
            pipeline.processors
        );
    }
    assert_eq!(service.health_checks.len(), 1);
    assert_eq!(
        service
            .telemetry
            .address
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("127.0.0.1:0"),
        "the prometheus pull reader's host and port"
    );
    let exporter = loaded
        .plan
        .exporters
        .values()
        .next()
        .expect("the otlp_http exporter");
    let Some(config) = sidewatch::components::exporter_as::<
        sidewatch::exporters::otlphttp::OtlpHttpExporterConfig,
    >(exporter) else {
        panic!("otlp_http is otlphttp: {exporter:?}");
    };
    assert_eq!(
        config.sending_queue.storage.as_deref(),
        Some(Path::new("/tmp/sidewatch-fixture-queue/exporter_otlp_http")),
        "file_storage/queue is a directory of the exporter's own"
    );
}

/// Every file in tests/config/otelcol/ is written in the shape of a
/// published Collector config (agent, sidecar, gateway quick starts).
/// At least 80 % validate unchanged; the rest fail only on components
/// sidewatch refuses by name.
#[test]
fn collector_shaped_configs_validate_unchanged_or_fail_only_on_out_of_scope_components() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/otelcol");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{} fixtures", files.len());
    let env = |_: &str| None;
    let mut valid = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        match sidewatch::plan::load_str_with_env(&text, &file.display().to_string(), &env) {
            Ok(_) => valid += 1,
            Err(errors) => {
                for error in &errors.errors {
                    assert!(
                        error.message.contains("is not supported by sidewatch"),
                        "{}: {error}",
                        file.display()
                    );
                }
            }
        }
    }
    assert!(
        valid * 100 >= files.len() * 80,
        "only {valid} of {} validate",
        files.len()
    );
}
