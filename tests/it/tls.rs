//! TLS with real handshakes: a receiver requiring client certificates
//! (mutual TLS) admits only clients with a certificate from its CA; a
//! second sidewatch forwards to it over https, gRPC and HTTP, presenting
//! its client certificate; plaintext, no certificate, a foreign CA and
//! TLS 1.1 are all refused before any data is admitted; and a renewed
//! server certificate is picked up without a restart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

use crate::backend::{Backend, wait_until};
use crate::certs::{self, path};
use crate::harness::{address, start, trace_request};

async fn tls_client(
    address: std::net::SocketAddr,
    dir: &Path,
    identity: Option<&str>,
) -> Result<TraceServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .domain_name("127.0.0.1");
    if let Some(name) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            std::fs::read(dir.join(format!("{name}.pem"))).unwrap(),
            std::fs::read(dir.join(format!("{name}.key"))).unwrap(),
        ));
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await?;
    Ok(TraceServiceClient::new(channel))
}

/// Whether `openssl s_client` completes a handshake with these options.
fn s_client_handshakes(address: std::net::SocketAddr, extra: &[&str]) -> bool {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &address.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    output.status.success() && text.contains("BEGIN CERTIFICATE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_of_its_ca_and_exporters_present_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certs::all(d);
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let server_tls = format!(
        "{{ cert_file: {}, key_file: {}, client_ca_file: {} }}",
        path(d, "server.pem"),
        path(d, "server.key"),
        path(d, "ca.pem")
    );
    let receiving = start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0, tls: {server_tls} }}
      http: {{ endpoint: 127.0.0.1:0, tls: {server_tls} }}
exporters:
  otlp: {{ endpoint: {} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
    logs: {{ receivers: [otlp], exporters: [otlp] }}
"#,
        backend.url()
    ))
    .await;
    let grpc = address(&receiving, "otlp/grpc");
    let http = address(&receiving, "otlp/http");
    let client_tls = format!(
        "{{ ca_file: {}, cert_file: {}, key_file: {} }}",
        path(d, "ca.pem"),
        path(d, "client.pem"),
        path(d, "client.key")
    );
    let forwarding = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  otlp: {{ endpoint: "https://{grpc}", tls: {client_tls} }}
  otlphttp: {{ endpoint: "https://{http}", tls: {client_tls} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
    logs: {{ receivers: [otlp], exporters: [otlphttp] }}
"#
    ))
    .await;

    // Through the forwarder: gRPC over mTLS for spans, HTTP over mTLS for
    // logs (a log request built by hand: one record).
    let mut plain =
        TraceServiceClient::connect(format!("http://{}", address(&forwarding, "otlp/grpc")))
            .await
            .unwrap();
    plain.export(trace_request("via-mtls", 5)).await.unwrap();
    let mut logs = opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient::connect(
        format!("http://{}", address(&forwarding, "otlp/grpc")),
    )
    .await
    .unwrap();
    logs.export(
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
            resource_logs: vec![opentelemetry_proto::tonic::logs::v1::ResourceLogs {
                scope_logs: vec![opentelemetry_proto::tonic::logs::v1::ScopeLogs {
                    log_records: vec![Default::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        },
    )
    .await
    .unwrap();
    let recorded = backend.recorded.clone();
    assert!(
        wait_until(Duration::from_secs(10), || recorded.span_count() == 5
            && recorded.log_record_count() == 1)
        .await,
        "spans {} logs {} arrived over mutual TLS",
        recorded.span_count(),
        recorded.log_record_count()
    );

    // A client with the right certificate, directly.
    let mut direct = tls_client(grpc, d, Some("client")).await.unwrap();
    direct.export(trace_request("direct", 2)).await.unwrap();

    // Refused: no client certificate, a foreign one, plaintext, TLS 1.1.
    for identity in [None, Some("foreign-client")] {
        let refused = match tls_client(grpc, d, identity).await {
            Err(_) => true,
            Ok(mut client) => client.export(trace_request("refused", 3)).await.is_err(),
        };
        assert!(refused, "client certificate {identity:?} was admitted");
    }
    let mut plaintext = TraceServiceClient::connect(format!("http://{grpc}")).await;
    if let Ok(client) = plaintext.as_mut() {
        assert!(client.export(trace_request("refused", 3)).await.is_err());
    }
    let http_plain = reqwest::Client::new()
        .post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(trace_request("refused", 3).encode_to_vec())
        .send()
        .await;
    assert!(http_plain.is_err(), "plaintext HTTP on a TLS port");
    let identity = [
        "-CAfile",
        &path(d, "ca.pem"),
        "-cert",
        &path(d, "client.pem"),
        "-key",
        &path(d, "client.key"),
    ];
    let with = |version: &'static str| {
        let mut args: Vec<String> = identity.iter().map(|s| s.to_string()).collect();
        args.push(version.to_string());
        args
    };
    let tls12 = with("-tls1_2");
    let tls11 = with("-tls1_1");
    let (ok12, ok11) = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = tls12.iter().map(String::as_str).collect();
        let b: Vec<&str> = tls11.iter().map(String::as_str).collect();
        (s_client_handshakes(grpc, &a), s_client_handshakes(grpc, &b))
    })
    .await
    .unwrap();
    assert!(ok12, "openssl s_client completes TLS 1.2 (the check works)");
    assert!(!ok11, "TLS 1.1 is refused");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorded.span_count(), 7, "nothing refused was admitted");
    let failed: u64 = receiving
        .telemetry
        .listeners()
        .iter()
        .map(|l| l.failed_handshakes.load(Ordering::Relaxed))
        .sum();
    assert!(failed >= 4, "failed handshakes counted: {failed}");
    forwarding.shutdown().await;
    receiving.shutdown().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certs::ca(d, "ca");
    certs::leaf(d, "ca", "server", true);
    let collector = start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {}, key_file: {}, reload_interval: 100ms }}
exporters:
  debug: {{}}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"#,
        path(d, "server.pem"),
        path(d, "server.key")
    ))
    .await;
    let grpc = address(&collector, "otlp/grpc");
    let serial = move |dir: std::path::PathBuf| {
        let script = format!(
            "openssl s_client -connect {grpc} -CAfile {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
            dir.join("ca.pem").display()
        );
        let output = Command::new("sh").args(["-c", &script]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let first = tokio::task::spawn_blocking({
        let d = d.to_path_buf();
        move || serial(d)
    })
    .await
    .unwrap();
    assert!(first.starts_with("serial="), "{first:?}");
    // Renew: a new certificate and key written over the old files.
    certs::leaf(d, "ca", "server", true);
    let d2 = d.to_path_buf();
    let renewed = wait_until(Duration::from_secs(5), move || serial(d2.clone()) != first).await;
    assert!(renewed, "the new certificate is served");
    // And clients still connect with it.
    let mut client = tls_client(grpc, d, None).await.unwrap();
    client.export(trace_request("renewed", 1)).await.unwrap();
    collector.shutdown().await;
}

/// The client CA is rotated by writing a new CA over its file: clients of
/// the old CA are refused from then on and clients of the new one
/// admitted, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_ca_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certs::ca(d, "ca");
    certs::ca(d, "ca2");
    certs::leaf(d, "ca", "server", true);
    certs::leaf(d, "ca", "client", false);
    certs::leaf(d, "ca2", "client2", false);
    let client_ca = d.join("client-ca.pem");
    std::fs::copy(d.join("ca.pem"), &client_ca).unwrap();
    let collector = start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {}, key_file: {}, client_ca_file: {}, reload_interval: 100ms }}
exporters:
  debug: {{}}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"#,
        path(d, "server.pem"),
        path(d, "server.key"),
        client_ca.display()
    ))
    .await;
    let grpc = address(&collector, "otlp/grpc");
    let exports = |identity: &'static str| {
        let d = d.to_path_buf();
        async move {
            match tls_client(grpc, &d, Some(identity)).await {
                Ok(mut client) => client.export(trace_request(identity, 1)).await.is_ok(),
                Err(_) => false,
            }
        }
    };
    assert!(exports("client").await, "a client of the configured CA");
    assert!(!exports("client2").await, "a client of another CA");

    std::fs::copy(d.join("ca2.pem"), &client_ca).unwrap();
    let mut rotated = false;
    for _ in 0..50 {
        if exports("client2").await {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        rotated,
        "a client of the new CA is admitted after the rotation"
    );
    assert!(
        !exports("client").await,
        "a client of the old CA is refused"
    );
    collector.shutdown().await;
}
