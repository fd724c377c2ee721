//! The `loadbalancing` exporter against real backends: a front sidewatch
//! routing to three sidewatch processes (each tagging what it forwards
//! with its name, so the test sees who got what), spans from the
//! OpenTelemetry Python SDK; one backend killed with SIGKILL mid-run;
//! routing by service; the DNS resolver against dnsmasq.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::backend::{Backend, Recorded, wait_until};
use crate::harness::{Sidewatch, address, free_port, start};
use crate::probabilistic_sampler::send_sdk_traces;

fn text(kv: &KeyValue) -> Option<&str> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn resource_text<'a>(resource: Option<&'a Resource>, key: &str) -> Option<&'a str> {
    resource?
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(text)
}

/// Per trace id (hex): the instances its spans came through.
fn trace_instances(recorded: &Recorded) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in recorded.traces.lock().unwrap().iter() {
        for resource_spans in &request.resource_spans {
            let instance = resource_text(resource_spans.resource.as_ref(), "sidewatch.instance")
                .unwrap_or("none")
                .to_string();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                out.entry(hex::encode(&span.trace_id))
                    .or_default()
                    .insert(instance.clone());
            }
        }
    }
    out
}

/// (spans received, distinct span ids received).
fn span_ids(recorded: &Recorded) -> (usize, BTreeSet<Vec<u8>>) {
    let traces = recorded.traces.lock().unwrap();
    let spans: Vec<&Span> = traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let ids = spans.iter().map(|s| s.span_id.clone()).collect();
    (spans.len(), ids)
}

/// A sidewatch process: OTLP/gRPC in on `port`, its name stamped on each
/// resource, out to `sink` through a persistent queue in `dir`, so that
/// what it acknowledged survives SIGKILL and is delivered after a restart.
fn instance_config(dir: &std::path::Path, name: &str, port: u16, sink: &str) -> std::path::PathBuf {
    let storage = dir.join(format!("{name}-queue"));
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{port} }} }} }}
processors:
  resource:
    attributes: [ {{ key: sidewatch.instance, value: {name}, action: upsert }} ]
exporters:
  otlp:
    endpoint: {sink}
    sending_queue: {{ storage: {storage} }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 300ms, max_elapsed_time: 0s }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [resource], exporters: [otlp] }}
"#,
            storage = storage.display()
        ),
    )
    .unwrap();
    config
}

/// A counter of the front's `loadbalancing` exporter for traces, from
/// its telemetry endpoint.
async fn front_counter(front: &sidewatch::pipeline::build::RunningCollector, family: &str) -> u64 {
    let url = format!("http://{}/metrics", address(front, "telemetry"));
    let page = reqwest::get(url).await.unwrap().text().await.unwrap();
    let series = format!("{family}{{exporter=\"loadbalancing\",signal=\"traces\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {page}"))
}

fn front_config(routing: &str, resolver: &str, pipelines: &str) -> String {
    format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  loadbalancing:
    {routing}
    protocol:
      otlp:
        timeout: 2s
        sending_queue: {{ queue_size: 5000 }}
        retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 0s }}
    resolver:
      {resolver}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    {pipelines}
"#
    )
}

const PHASE_ONE_TRACES: usize = 300;
const PHASE_TWO_TRACES: usize = 4000;
const SPANS_PER_TRACE: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trace_lands_on_one_of_three_sidewatch_and_a_killed_one_loses_nothing() {
    let Some(python) =
        crate::harness::python_with("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    else {
        return;
    };
    let sink = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let names = ["b1", "b2", "b3"];
    let ports = [free_port(), free_port(), free_port()];
    let configs: Vec<_> = names
        .iter()
        .zip(ports)
        .map(|(name, port)| instance_config(dir.path(), name, port, &sink.url()))
        .collect();
    let mut instances: Vec<Sidewatch> = configs.iter().map(|c| Sidewatch::run(c)).collect();
    for port in ports {
        crate::harness::connect_traces(port).await;
    }
    let hostnames = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(", ");
    let front = start(&front_config(
        "routing_key: traceID",
        &format!("static: {{ hostnames: [{hostnames}] }}"),
        "traces: { receivers: [otlp], exporters: [loadbalancing] }",
    ))
    .await;
    let endpoint = format!("http://{}", address(&front, "otlp/grpc"));

    // Phase 1: every backend up; each trace's spans on exactly one.
    let sent = send_sdk_traces(
        &python,
        std::slice::from_ref(&endpoint),
        &["--traces", "300", "--spans", "3"],
    )
    .await;
    assert_eq!(sent.len(), PHASE_ONE_TRACES);
    let phase_one_spans = PHASE_ONE_TRACES * SPANS_PER_TRACE;
    let recorded = sink.recorded.clone();
    assert!(
        wait_until(Duration::from_secs(60), || span_ids(&recorded).1.len()
            >= phase_one_spans)
        .await,
        "phase 1: {} of {phase_one_spans} spans arrived",
        span_ids(&recorded).1.len()
    );
    let placed = trace_instances(&recorded);
    assert_eq!(placed.len(), PHASE_ONE_TRACES);
    let mut per_instance: BTreeMap<&str, usize> = BTreeMap::new();
    for (trace, on) in &placed {
        assert_eq!(on.len(), 1, "trace {trace} was spread over {on:?}");
        *per_instance
            .entry(names.iter().find(|n| on.contains(**n)).unwrap())
            .or_default() += 1;
    }
    eprintln!("phase 1: traces per instance {per_instance:?}");
    assert_eq!(
        per_instance.len(),
        3,
        "every instance gets traces: {per_instance:?}"
    );
    assert_eq!(span_ids(&recorded).0, phase_one_spans, "no duplicates yet");

    // Phase 2: b2 killed with SIGKILL while the front is delivering.
    let phase_two = tokio::spawn({
        let python = python.clone();
        let endpoint = endpoint.clone();
        async move { send_sdk_traces(&python, &[endpoint], &["--traces", "4000", "--spans", "3"]).await }
    });
    assert!(
        wait_until(Duration::from_secs(60), || span_ids(&recorded).1.len()
            >= phase_one_spans + 600)
        .await,
        "phase 2 did not start arriving"
    );
    instances[1].kill().unwrap();
    instances[1].wait().unwrap();
    let at_kill = span_ids(&recorded).1.len() - phase_one_spans;
    let sent_two = phase_two.await.unwrap();
    assert_eq!(sent_two.len(), PHASE_TWO_TRACES);
    let expected = phase_one_spans + PHASE_TWO_TRACES * SPANS_PER_TRACE;
    // With b2 still dead, the front delivers everything it acknowledged:
    // b2's share went to the next live instances on the ring, not to a
    // retry waiting for b2 to return.
    let mut delivered = 0;
    for _ in 0..300 {
        delivered = front_counter(&front, "sidewatch_exporter_sent_items_total").await;
        if delivered >= expected as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        delivered, expected as u64,
        "the front delivered {delivered} of {expected} spans while b2 was dead"
    );
    let retried = front_counter(&front, "sidewatch_exporter_retried_items_total").await;
    // What b2 acknowledged but had not forwarded is in its log: a restart
    // delivers it, so every span the front was told about can be counted.
    instances[1] = Sidewatch::run(&configs[1]);
    let all_arrived = wait_until(Duration::from_secs(90), || {
        span_ids(&recorded).1.len() >= expected
    })
    .await;
    let (received, distinct) = span_ids(&recorded);
    assert!(
        all_arrived,
        "{} of {expected} spans arrived: acknowledged spans were lost",
        distinct.len()
    );
    assert_eq!(
        distinct.len(),
        expected,
        "no span arrives that was not sent"
    );
    let placed = trace_instances(&recorded);
    let spread: usize = sent_two
        .iter()
        .filter(|(id, _)| placed.get(id).is_some_and(|on| on.len() > 1))
        .count();
    eprintln!("phase 2: {retried} spans went back to the front's queue for a retry");
    eprintln!(
        "phase 2: {at_kill} of its spans had arrived when b2 was killed; {} duplicates of {expected} spans; {spread} of {PHASE_TWO_TRACES} traces spread over two instances (those b2 held when it died)",
        received - distinct.len()
    );
    let survivors: BTreeSet<String> = sent_two
        .iter()
        .filter_map(|(id, _)| placed.get(id))
        .flatten()
        .cloned()
        .collect();
    assert!(
        survivors.contains("b1") && survivors.contains("b3"),
        "the live instances took phase 2: {survivors:?}"
    );
    drop(front);
    sink.stop().await;
}

/// One gauge point per service, each service its own resource.
fn metrics_request(services: usize, round: usize) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: (0..services)
            .map(|s| ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![sidewatch::otlp::value::string_kv(
                        "service.name",
                        format!("svc-{s}"),
                    )],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "queue.depth".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: 1_700_000_000_000_000_000 + round as u64,
                                value: Some(number_data_point::Value::AsInt(round as i64)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

fn services_of(recorded: &Recorded) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for request in recorded.metrics.lock().unwrap().iter() {
        for rm in &request.resource_metrics {
            let service = resource_text(rm.resource.as_ref(), "service.name")
                .unwrap_or("none")
                .to_string();
            let points: usize = rm
                .scope_metrics
                .iter()
                .flat_map(|s| &s.metrics)
                .map(sidewatch::signal::metric_point_count)
                .sum();
            *out.entry(service).or_default() += points;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_service_keeps_each_service_metrics_on_one_backend() {
    const SERVICES: usize = 12;
    const ROUNDS: usize = 5;
    let backends = [
        Backend::start("127.0.0.1:0".parse().unwrap()).await,
        Backend::start("127.0.0.1:0".parse().unwrap()).await,
        Backend::start("127.0.0.1:0".parse().unwrap()).await,
    ];
    let hostnames = backends
        .iter()
        .map(|b| b.address.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let front = start(&front_config(
        "routing_key: service",
        &format!("static: {{ hostnames: [{hostnames}] }}"),
        "metrics: { receivers: [otlp], exporters: [loadbalancing] }",
    ))
    .await;
    let mut client =
        MetricsServiceClient::connect(format!("http://{}", address(&front, "otlp/grpc")))
            .await
            .unwrap();
    for round in 0..ROUNDS {
        client
            .export(metrics_request(SERVICES, round))
            .await
            .unwrap();
    }
    let total = || {
        backends
            .iter()
            .map(|b| b.recorded.data_point_count())
            .sum::<usize>()
    };
    assert!(
        wait_until(Duration::from_secs(30), || total() >= SERVICES * ROUNDS).await,
        "{} of {} points arrived",
        total(),
        SERVICES * ROUNDS
    );
    assert_eq!(total(), SERVICES * ROUNDS);
    let per_backend: Vec<BTreeMap<String, usize>> =
        backends.iter().map(|b| services_of(&b.recorded)).collect();
    for s in 0..SERVICES {
        let service = format!("svc-{s}");
        let holders: Vec<usize> = per_backend
            .iter()
            .enumerate()
            .filter(|(_, m)| m.contains_key(&service))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(holders.len(), 1, "{service} is on backends {holders:?}");
        assert_eq!(per_backend[holders[0]][&service], ROUNDS, "{service}");
    }
    let used = per_backend.iter().filter(|m| !m.is_empty()).count();
    assert!(used >= 2, "12 services spread over {used} backend(s)");
    drop(front);
    for backend in backends {
        backend.stop().await;
    }
}

/// Spans of `traces` trace ids (the same ids every call), named
/// `{prefix}-{trace}`.
fn traces_request(prefix: &str, traces: u8) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..traces)
                    .map(|t| Span {
                        name: format!("{prefix}-{t}"),
                        trace_id: [[t; 8], [7; 8]].concat(),
                        span_id: vec![t, 1, 2, 3, 4, 5, 6, 7],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Per backend: the trace numbers (first trace id byte) of spans named
/// with `prefix`.
fn traces_named(backends: &[Backend], prefix: &str) -> Vec<BTreeSet<u8>> {
    backends
        .iter()
        .map(|b| {
            b.recorded
                .traces
                .lock()
                .unwrap()
                .iter()
                .flat_map(|r| &r.resource_spans)
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .filter(|s| s.name.starts_with(&format!("{prefix}-")))
                .map(|s| s.trace_id[0])
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_resolver_follows_the_records_and_moves_only_the_removed_backend_keys() {
    const TRACES: u8 = 90;
    let hosts = |ips: &[&str]| {
        ips.iter()
            .map(|ip| format!("{ip} tier.sidewatch.test\n"))
            .collect::<String>()
    };
    let all = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let Some(dnsmasq) = crate::checks_dns::start_dnsmasq_with(
        "local=/sidewatch.test/\naddn-hosts={dir}/tier.hosts\n",
        |dir| std::fs::write(dir.join("tier.hosts"), hosts(&all)).unwrap(),
    )
    .await
    else {
        return;
    };
    let port = free_port();
    let mut backends = Vec::new();
    for ip in all {
        backends.push(Backend::start(format!("{ip}:{port}").parse().unwrap()).await);
    }
    let front = start(&front_config(
        "routing_key: traceID",
        &format!(
            "dns: {{ hostname: tier.sidewatch.test, port: {port}, interval: 200ms, timeout: 1s, server: \"127.0.0.1:{}\" }}",
            dnsmasq.port
        ),
        "traces: { receivers: [otlp], exporters: [loadbalancing] }",
    ))
    .await;
    let front_port = address(&front, "otlp/grpc").port();
    let mut client = crate::harness::connect_traces(front_port).await;

    client
        .export(traces_request("first", TRACES))
        .await
        .unwrap();
    let arrived = |prefix: &'static str| {
        let backends = &backends;
        move || {
            traces_named(backends, prefix)
                .iter()
                .map(BTreeSet::len)
                .sum::<usize>()
                >= TRACES as usize
        }
    };
    assert!(
        wait_until(Duration::from_secs(30), arrived("first")).await,
        "the first round did not arrive"
    );
    let first = traces_named(&backends, "first");
    for (ip, got) in all.iter().zip(&first) {
        assert!(
            !got.is_empty(),
            "{ip} got none of {TRACES} traces: {first:?}"
        );
    }
    assert_eq!(
        first.iter().map(BTreeSet::len).sum::<usize>(),
        TRACES as usize,
        "each trace on exactly one backend"
    );

    // 127.0.0.4 leaves the name; the next lookups no longer give it.
    std::fs::write(dnsmasq.dir().join("tier.hosts"), hosts(&all[..2])).unwrap();
    dnsmasq.reload();
    // Two intervals and more: the ring has changed by then.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    client
        .export(traces_request("second", TRACES))
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), arrived("second")).await,
        "the second round did not arrive"
    );
    let second = traces_named(&backends, "second");
    assert!(
        second[2].is_empty(),
        "the removed backend still got traces {:?}",
        second[2]
    );
    for i in 0..2 {
        assert!(
            first[i].is_subset(&second[i]),
            "a trace of {} moved although its backend stayed: {:?} then {:?}",
            all[i],
            first[i],
            second[i]
        );
    }
    assert_eq!(
        second.iter().map(BTreeSet::len).sum::<usize>(),
        TRACES as usize,
        "each trace on exactly one backend"
    );
    drop(front);
    for backend in backends {
        backend.stop().await;
    }
}
