//! The request shapes of both APIs against a local HTTP server that
//! records what it gets (InfluxDB 1.6, which the integration test runs,
//! has no /api/v2/write), payload splitting, and the config's own checks.

use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};

use super::*;

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    authorization: String,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A server answering every POST with `status`, recording each request.
async fn server(status: StatusCode) -> (String, Log) {
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .fallback(
            |State((log, status)): State<(Log, StatusCode)>,
             uri: Uri,
             RawQuery(query): RawQuery,
             headers: HeaderMap,
             body: String| async move {
                log.lock().unwrap().push(Seen {
                    path: uri.path().to_string(),
                    query: query.unwrap_or_default(),
                    authorization: headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                    body,
                });
                status
            },
        )
        .with_state((log.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, log)
}

fn config(yaml: &str) -> InfluxDbConfig {
    yaml_serde::from_str(yaml).unwrap()
}

fn gauges(n: usize) -> Batch {
    let metrics = (0..n)
        .map(|i| Metric {
            name: format!("g{i}"),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: 1_000,
                    value: Some(number_data_point::Value::AsInt(i as i64)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
        .collect();
    Batch::Metrics(Arc::new(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }))
}

#[tokio::test]
async fn v2_writes_with_a_token_to_the_org_and_bucket() {
    let (base, log) = server(StatusCode::NO_CONTENT).await;
    let exporter = InfluxDbExporter::new(&config(&format!(
        "{{ endpoint: {base}, org: my org, bucket: b&1, token: s3cret }}"
    )))
    .unwrap();
    exporter.export(&gauges(2)).await.unwrap();
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api/v2/write");
    assert_eq!(seen[0].query, "org=my+org&bucket=b%261&precision=ns");
    assert_eq!(seen[0].authorization, "Token s3cret");
    assert_eq!(seen[0].body, "g0 gauge=0 1000\ng1 gauge=1 1000\n");
}

#[tokio::test]
async fn v1_writes_to_the_database_with_basic_auth() {
    let (base, log) = server(StatusCode::NO_CONTENT).await;
    let exporter = InfluxDbExporter::new(&config(&format!(
        "{{ endpoint: {base}/, metrics_schema: telegraf-prometheus-v2, v1_compatibility: {{ enabled: true, db: metrics, username: u, password: p }} }}"
    )))
    .unwrap();
    exporter.export(&gauges(1)).await.unwrap();
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/write");
    assert_eq!(seen[0].query, "db=metrics&precision=ns");
    assert_eq!(seen[0].authorization, "Basic dTpw", "base64 of u:p");
    assert_eq!(seen[0].body, "prometheus g0=0 1000\n");
}

#[tokio::test]
async fn requests_are_split_by_lines_and_bytes() {
    let (base, log) = server(StatusCode::NO_CONTENT).await;
    let exporter = InfluxDbExporter::new(&config(&format!(
        "{{ endpoint: {base}, bucket: b, payload_max_lines: 2 }}"
    )))
    .unwrap();
    exporter.export(&gauges(5)).await.unwrap();
    let sizes: Vec<usize> = log
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.body.lines().count())
        .collect();
    assert_eq!(sizes, [2, 2, 1]);

    let line = |n: usize| vec![b'x'; n];
    let bodies = payloads(vec![line(4), line(4), line(9), line(1)], 100, 8);
    let lens: Vec<usize> = bodies.iter().map(Vec::len).collect();
    assert_eq!(lens, [8, 9, 1], "a line longer than the limit goes alone");
}

#[tokio::test]
async fn a_400_is_permanent_and_a_503_or_429_is_retried() {
    for (status, retryable) in [
        (StatusCode::BAD_REQUEST, false),
        (StatusCode::SERVICE_UNAVAILABLE, true),
        (StatusCode::TOO_MANY_REQUESTS, true),
    ] {
        let (base, _) = server(status).await;
        let exporter = InfluxDbExporter::new(&config(&format!(
            "{{ endpoint: {base}, bucket: b, token: t0ken }}"
        )))
        .unwrap();
        let error = exporter.export(&gauges(1)).await.unwrap_err();
        assert_eq!(
            matches!(error, ExportError::Retryable { .. }),
            retryable,
            "{status}: {error:?}"
        );
        assert!(!format!("{error:?}").contains("t0ken"));
    }
}

#[test]
fn the_token_and_password_do_not_print() {
    let c = config(
        "{ endpoint: http://h:8086, bucket: b, token: t0ken, v1_compatibility: { password: pw1 } }",
    );
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("t0ken") && !shown.contains("pw1"),
        "{shown}"
    );
}

#[test]
fn settings_are_checked() {
    let errors = |yaml: &str| -> Vec<String> {
        config(yaml)
            .validate()
            .into_iter()
            .map(|(path, message)| format!("{}: {message}", path.join(".")))
            .collect()
    };
    assert_eq!(
        errors("{ endpoint: http://h, payload_max_lines: 0, payload_max_bytes: 0 }"),
        [
            "payload_max_lines: must be more than 0: expected a number of lines such as 10000",
            "payload_max_bytes: must be more than 0: expected a size in bytes such as 10000000",
            "bucket: the v2 API writes to a bucket: set `bucket` (and `org`), or `v1_compatibility: { enabled: true, db: ... }` for InfluxDB 1.x",
        ]
    );
    assert_eq!(
        errors("{ endpoint: http://h, v1_compatibility: { enabled: true, password: p } }"),
        [
            "v1_compatibility.db: the v1 API writes to a database: set `db`",
            "v1_compatibility.username: a password without a username: set `username` too",
        ]
    );
    assert!(errors("{ endpoint: http://h, bucket: b }").is_empty());
}
