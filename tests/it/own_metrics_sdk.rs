//! sidewatch's own metrics pushed through the OpenTelemetry SDK
//! (`service.telemetry.metrics.readers: [{ periodic: ... }]`) into a
//! second sidewatch, over both OTLP transports.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, forwarding_config, point_value, start, trace_request};

/// The value of `name` where its point's attributes include all of
/// `wanted`, in a resource with `service` as service.name and the
/// attribute `deployment.environment=test`, newest last.
fn values(backend: &Backend, name: &str, wanted: &[(&str, &str)], service: &str) -> Vec<f64> {
    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    };
    let mut out = Vec::new();
    for request in backend.recorded.metrics.lock().unwrap().iter() {
        for resource in &request.resource_metrics {
            let attrs: Vec<(String, String)> = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(|kv| (kv.key.clone(), text(&kv.value)))
                .collect();
            let has = |k: &str, v: &str| attrs.iter().any(|(a, b)| a == k && b == v);
            if !has("service.name", service) || !has("deployment.environment", "test") {
                continue;
            }
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if metric.name != name {
                    continue;
                }
                let points = match &metric.data {
                    Some(Data::Sum(s)) => &s.data_points,
                    Some(Data::Gauge(g)) => &g.data_points,
                    _ => continue,
                };
                for point in points {
                    let matches = wanted.iter().all(|(k, v)| {
                        point
                            .attributes
                            .iter()
                            .any(|kv| kv.key == *k && text(&kv.value) == *v)
                    });
                    if matches {
                        out.push(point_value(point));
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_reach_a_second_sidewatch_over_grpc_and_http_through_the_sdk() {
    // The second sidewatch: OTLP in, forwarded to a recording backend.
    let sink = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let second = start(&forwarding_config(&sink.url(), "")).await;
    let grpc = address(&second, "otlp/grpc");
    let http = address(&second, "otlp/http");

    let forwarded = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let config = forwarding_config(&forwarded.url(), "").replace(
        "  telemetry: { metrics: { address: 127.0.0.1:0 } }\n",
        &format!(
            r#"  telemetry:
    resource: {{ deployment.environment: test }}
    metrics:
      address: 127.0.0.1:0
      readers:
        - periodic:
            interval: 200
            exporter: {{ otlp: {{ protocol: grpc, endpoint: "http://{grpc}" }} }}
        - periodic:
            interval: 200
            exporter: {{ otlp_http: {{ endpoint: "http://{http}" }} }}
"#
        ),
    );
    assert!(config.contains("readers"), "{config}");
    let first = start(&config).await;
    let mut client =
        TraceServiceClient::connect(format!("http://{}", address(&first, "otlp/grpc")))
            .await
            .unwrap();
    client.export(trace_request("counted", 7)).await.unwrap();

    let accepted = [
        ("receiver", "otlp"),
        ("transport", "grpc"),
        ("signal", "traces"),
    ];
    assert!(
        wait_until(Duration::from_secs(20), || values(
            &sink,
            "sidewatch.receiver.accepted_items",
            &accepted,
            "sidewatch"
        )
        .contains(&7.0))
        .await,
        "the first sidewatch's count of 7 accepted spans never arrived: {:?}",
        values(
            &sink,
            "sidewatch.receiver.accepted_items",
            &accepted,
            "sidewatch"
        )
    );
    // Both readers delivered: the second sidewatch accepted metrics on
    // each of its transports.
    let received_on = |transport: &str| {
        second
            .telemetry
            .receivers()
            .iter()
            .filter(|r| r.transport == transport && r.signal.as_str() == "metrics")
            .map(|r| r.accepted_items.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>()
    };
    assert!(
        wait_until(Duration::from_secs(20), || received_on("grpc") > 0
            && received_on("http") > 0)
        .await,
        "grpc {} http {}",
        received_on("grpc"),
        received_on("http")
    );
    // The exporter's count came through too, and a gauge of the process.
    let sent = [("exporter", "otlp"), ("signal", "traces")];
    assert!(
        wait_until(Duration::from_secs(20), || values(
            &sink,
            "sidewatch.exporter.sent_items",
            &sent,
            "sidewatch"
        )
        .contains(&7.0))
        .await
    );
    first.shutdown().await;
    second.shutdown().await;
}

#[test]
fn bad_periodic_readers_are_refused_with_their_paths() {
    let yaml = r#"
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } }
exporters:
  debug: {}
service:
  telemetry:
    metrics:
      readers:
        - periodic: { interval: -5, exporter: { otlp: { protocol: grpc, endpoint: "http://127.0.0.1:4317" } } }
        - periodic: { exporter: { otlp: { protocol: http/json, endpoint: "http://127.0.0.1:4318" } } }
        - periodic: { exporter: { console: {} } }
        - periodic: { exporter: { otlp: { endpoint: "127.0.0.1:4318" } } }
  pipelines:
    traces: { receivers: [otlp], exporters: [debug] }
"#;
    let errors = match sidewatch::plan::load_str(yaml, "test config") {
        Ok(_) => panic!("bad readers accepted"),
        Err(e) => e.to_string(),
    };
    for expected in [
        "service.telemetry.metrics.readers[0].periodic.interval (line 10",
        "expected a positive number of milliseconds",
        "service.telemetry.metrics.readers[1].periodic.exporter.otlp.protocol",
        "unknown protocol \"http/json\"",
        "service.telemetry.metrics.readers[2].periodic.exporter.console",
        "service.telemetry.metrics.readers[3].periodic.exporter.otlp.endpoint",
        "expected a URL with a scheme",
    ] {
        assert!(errors.contains(expected), "{expected:?} not in\n{errors}");
    }
}
