//! CORS on the OTLP/HTTP receiver: a browser's preflight, sent by a real
//! HTTP client, is answered as the Collector answers it, and an export
//! from an allowed origin carries Access-Control-Allow-Origin.

use prost::Message;

use crate::harness::{address, start, trace_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_preflights_for_allowed_origins_and_headers_only() {
    let collector = start(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        cors:
          allowed_origins: ["https://*.example.com", "http://localhost:3000"]
          allowed_headers: [X-Tenant]
          max_age: 7200
exporters: { debug: {} }
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    traces: { receivers: [otlp], exporters: [debug] }
"#,
    )
    .await;
    let url = format!("http://{}/v1/traces", address(&collector, "otlp/http"));
    let http = reqwest::Client::new();
    let preflight = |origin: &str, headers: &str| {
        http.request(reqwest::Method::OPTIONS, &url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", headers)
            .send()
    };
    let ok = preflight("https://app.example.com", "content-type,x-tenant")
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert_eq!(h["access-control-allow-headers"], "content-type,x-tenant");
    assert_eq!(h["access-control-max-age"], "7200");
    assert!(h["vary"].to_str().unwrap().contains("Origin"));

    for (origin, headers) in [
        ("https://evil.test", "content-type"),
        ("https://app.example.com", "content-type,x-secret"),
    ] {
        let refused = preflight(origin, headers).await.unwrap();
        assert_eq!(refused.status(), 204);
        assert!(
            !refused
                .headers()
                .contains_key("access-control-allow-origin"),
            "{origin} {headers}: the browser must refuse"
        );
    }

    let body = trace_request("cors", 2).encode_to_vec();
    let export = |origin: &'static str| {
        http.post(&url)
            .header("Origin", origin)
            .header("Content-Type", "application/x-protobuf")
            .body(body.clone())
            .send()
    };
    let allowed = export("http://localhost:3000").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let other = export("http://localhost:3001").await.unwrap();
    assert_eq!(
        other.status(),
        200,
        "CORS is the browser's rule, not a refusal"
    );
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    collector.shutdown().await;
}
