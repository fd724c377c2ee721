//! The `influxdb` exporter against a real InfluxDB 1.6 (Debian's
//! `influxd`, started here with its own directories on loopback ports):
//! metrics from the OpenTelemetry SDK go through sidewatch in both
//! telegraf-prometheus schemas and are read back with InfluxQL, value by
//! value, names with characters that need escaping included. A point
//! InfluxDB refuses with 400 is not retried, and sidewatch keeps serving.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use serde_json::Value;

use crate::external::binary;
use crate::harness::{address, free_port, start};

/// A running `influxd` with its own meta, data and WAL directories.
struct Influx {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Influx {
    async fn start(binary: &std::path::Path, databases: &[&str]) -> Influx {
        let dir = tempfile::tempdir().unwrap();
        let (http, rpc) = (free_port(), free_port());
        let root = dir.path().display();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{root}/meta\"\n\
             [data]\n  dir = \"{root}/data\"\n  wal-dir = \"{root}/wal\"\n\
             [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n"
        );
        let path = dir.path().join("influxdb.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(binary)
            .arg("-config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let influx = Influx {
            child,
            base: format!("http://127.0.0.1:{http}"),
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ping = client.get(format!("{}/ping", influx.base)).send().await;
            if ping.is_ok_and(|r| r.status() == 204) {
                break;
            }
            assert!(Instant::now() < deadline, "influxd did not answer /ping");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for db in databases {
            let url = reqwest::Url::parse_with_params(
                &format!("{}/query", influx.base),
                &[("q", format!("CREATE DATABASE \"{db}\""))],
            )
            .unwrap();
            let answer = client.post(url).send().await.unwrap();
            assert!(answer.status().is_success(), "CREATE DATABASE {db}");
        }
        influx
    }

    /// Every row of `SELECT * FROM "measurement"` as column -> value.
    async fn rows(&self, db: &str, measurement: &str) -> Vec<BTreeMap<String, Value>> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/query", self.base),
            &[
                ("db", db),
                ("q", &format!("SELECT * FROM \"{measurement}\"")),
            ],
        )
        .unwrap();
        let answer: Value = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let Some(series) = answer["results"][0]["series"][0].as_object() else {
            return Vec::new();
        };
        let columns: Vec<String> = series["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .cloned()
                    .zip(row.as_array().unwrap().iter().cloned())
                    .filter(|(_, v)| !v.is_null())
                    .collect()
            })
            .collect()
    }

    /// The rows once `ready` holds for them (30 s at most).
    async fn eventually(
        &self,
        db: &str,
        measurement: &str,
        ready: impl Fn(&[BTreeMap<String, Value>]) -> bool,
    ) -> Vec<BTreeMap<String, Value>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.rows(db, measurement).await;
            if ready(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "{db}.{measurement} never got there: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tag value with every character line protocol escapes, and a
/// backslash that is kept.
const ROOM: &str = r"a b,c=d\x";

/// A gauge, a counter, an up-down counter and a histogram through the
/// SDK's OTLP/gRPC exporter, flushed once.
fn send_with_sdk(grpc: String) {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(grpc)
        .build()
        .expect("metric exporter");
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("shop")
        .build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource)
        .build();
    let meter = provider.meter("shop-meter");
    meter
        .f64_gauge("room.temp")
        .build()
        .record(21.5, &[KeyValue::new("room", ROOM)]);
    let requests = meter.u64_counter("requests").build();
    requests.add(10, &[KeyValue::new("route", "/a")]);
    requests.add(20, &[KeyValue::new("route", "/a")]);
    let inflight = meter.i64_up_down_counter("inflight").build();
    inflight.add(5, &[]);
    inflight.add(-2, &[]);
    let latency = meter
        .f64_histogram("latency")
        .with_boundaries(vec![0.1, 0.5, 1.0])
        .build();
    for v in [0.05, 0.3, 0.3, 2.0] {
        latency.record(v, &[KeyValue::new("route", "/a")]);
    }
    provider.force_flush().expect("flush metrics");
    provider.shutdown().expect("shutdown meter provider");
}

fn last(rows: &[BTreeMap<String, Value>]) -> &BTreeMap<String, Value> {
    rows.last().expect("a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_stores_sdk_metrics_in_both_schemas_value_by_value() {
    let Some(influxd) = binary("influxd", "influxdb") else {
        return;
    };
    let influx = Influx::start(&influxd, &["v1", "v2"]).await;
    let yaml = format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  influxdb/v1:
    endpoint: {base}
    v1_compatibility: {{ enabled: true, db: v1 }}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 1s }}
  influxdb/v2:
    endpoint: {base}
    metrics_schema: telegraf-prometheus-v2
    v1_compatibility: {{ enabled: true, db: v2 }}
    payload_max_lines: 2
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [influxdb/v1, influxdb/v2] }}
"#,
        base = influx.base
    );
    let collector = start(&yaml).await;
    let grpc = format!("http://{}", address(&collector, "otlp/grpc"));
    tokio::task::spawn_blocking(move || send_with_sdk(grpc))
        .await
        .unwrap();

    // telegraf-prometheus-v1: a measurement per metric.
    let rows = influx
        .eventually("v1", "room.temp", |r| !r.is_empty())
        .await;
    let row = last(&rows);
    assert_eq!(row["gauge"], 21.5);
    assert_eq!(row["room"], ROOM, "escaped on the wire, intact in InfluxDB");
    assert_eq!(row["service.name"], "shop");
    assert_eq!(row["otel.library.name"], "shop-meter");
    let rows = influx.eventually("v1", "requests", |r| !r.is_empty()).await;
    assert_eq!(last(&rows)["counter"], 30.0);
    assert_eq!(last(&rows)["route"], "/a");
    let rows = influx.eventually("v1", "inflight", |r| !r.is_empty()).await;
    assert_eq!(last(&rows)["gauge"], 3.0, "an up-down counter is a gauge");
    let rows = influx.eventually("v1", "latency", |r| !r.is_empty()).await;
    let row = last(&rows);
    assert_eq!(row["count"], 4.0);
    assert!(
        (row["sum"].as_f64().unwrap() - 2.65).abs() < 1e-9,
        "{row:?}"
    );
    for (bound, cumulative) in [("0.1", 1.0), ("0.5", 3.0), ("1", 3.0), ("+Inf", 4.0)] {
        assert_eq!(row[bound], cumulative, "bucket {bound}: {row:?}");
    }

    // telegraf-prometheus-v2: one `prometheus` measurement, written two
    // lines a request.
    let rows = influx
        .eventually("v2", "prometheus", |r| {
            r.iter().any(|row| row.contains_key("room.temp"))
                && r.iter()
                    .filter(|row| row.contains_key("latency_bucket"))
                    .count()
                    >= 4
        })
        .await;
    let with = |key: &str| {
        rows.iter()
            .rfind(|row| row.contains_key(key))
            .unwrap_or_else(|| panic!("no {key} in {rows:?}"))
    };
    assert_eq!(with("room.temp")["room.temp"], 21.5);
    assert_eq!(with("room.temp")["room"], ROOM);
    assert_eq!(with("requests")["requests"], 30.0);
    assert_eq!(with("inflight")["inflight"], 3.0);
    assert_eq!(with("latency_count")["latency_count"], 4.0);
    for (le, cumulative) in [("0.1", 1.0), ("0.5", 3.0), ("1", 3.0), ("+Inf", 4.0)] {
        let bucket = rows
            .iter()
            .rfind(|row| row.get("le").and_then(Value::as_str) == Some(le))
            .unwrap_or_else(|| panic!("no bucket le={le}"));
        assert_eq!(bucket["latency_bucket"], cumulative, "le={le}");
    }
    let v2 = collector
        .telemetry
        .exporters()
        .into_iter()
        .find(|e| e.exporter == "influxdb/v2")
        .unwrap();
    assert_eq!(v2.failed_items.load(Ordering::Relaxed), 0);
    assert!(collector.shutdown().await.clean);
}

fn gauge(name: &str, value: f64) -> ExportMetricsServiceRequest {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_influxdb_refuses_is_not_retried_and_sidewatch_keeps_serving() {
    let Some(influxd) = binary("influxd", "influxdb") else {
        return;
    };
    let influx = Influx::start(&influxd, &["db"]).await;
    // `gauge` is a string field of this measurement already: a float one
    // is a field type conflict, which InfluxDB answers with 400.
    let answer = reqwest::Client::new()
        .post(format!("{}/write?db=db", influx.base))
        .body("conflicted gauge=\"text\"\n")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let yaml = format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  influxdb:
    endpoint: {base}
    v1_compatibility: {{ enabled: true, db: db }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 200ms }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [influxdb] }}
"#,
        base = influx.base
    );
    let collector = start(&yaml).await;
    let mut client =
        MetricsServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    client.export(gauge("conflicted", 1.0)).await.unwrap();
    let stats = collector
        .telemetry
        .exporters()
        .into_iter()
        .find(|e| e.exporter == "influxdb")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.failed_items.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the refused point was not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Long enough for several retries at 100 ms, had there been any.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(stats.failed_items.load(Ordering::Relaxed), 1);
    assert_eq!(
        stats.retried_items.load(Ordering::Relaxed),
        0,
        "a 400 is permanent"
    );

    client.export(gauge("after", 2.0)).await.unwrap();
    let rows = influx.eventually("db", "after", |r| !r.is_empty()).await;
    assert_eq!(last(&rows)["gauge"], 2.0);
    let rows = influx.rows("db", "conflicted").await;
    assert_eq!(rows.len(), 1, "only the string point: {rows:?}");
    assert_eq!(rows[0]["gauge"], "text");
    assert!(collector.shutdown().await.clean);
}
