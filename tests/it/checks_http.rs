//! httpcheck against a real HTTP server on 127.0.0.1 that answers 200,
//! 500, slowly and with redirects: status classes, durations, phases,
//! errors, validations and the `/checks` summary.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::checks_support::{checks_json, entry, latest, points, start_checks};
use crate::harness::free_port;

/// The routes every HTTP check test uses.
pub fn app() -> axum::Router {
    axum::Router::new()
        .route(
            "/ok",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok","items":[{"name":"alpha"}]}"#,
                )
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "late"
            }),
        )
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]).into_response() }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response() }),
        )
}

pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpcheck_reports_status_classes_durations_and_errors() {
    let server = serve(app()).await;
    let closed = free_port();
    let base = format!("http://{server}");
    let run = start_checks(
        &format!(
            r#"
  httpcheck:
    collection_interval: 1s
    timeout: 900ms
    targets:
      - endpoint: {base}/ok
        body_regex: '"status":"ok"'
        json_pointer: /items/0/name
        json_equals: alpha
      - endpoint: {base}/fail
      - endpoint: {base}/slow
      - endpoint: {base}/redirect
      - endpoint: {base}/redirect?no-follow
        follow_redirects: false
      - endpoint: {base}/loop
        max_redirects: 3
      - endpoint: {base}/ok?wrong-status
        expected_status: [204]
      - endpoint: {base}/ok?wrong-body
        body_regex: 'missing'
      - endpoint: {base}/ok?wrong-json
        json_pointer: /status
        json_equals: degraded
      - endpoint: http://127.0.0.1:{closed}/
"#
        ),
        &["httpcheck"],
    )
    .await;
    let recorded = run.backend.recorded.clone();
    let up = async |target: &str| {
        latest(&recorded, "sidewatch.check.up", "check.target", target)
            .await
            .value()
    };
    assert_eq!(up(&format!("{base}/ok")).await, 1.0);
    assert_eq!(up(&format!("{base}/fail")).await, 0.0);
    assert_eq!(up(&format!("{base}/slow")).await, 1.0);
    assert_eq!(up(&format!("{base}/redirect")).await, 1.0);
    assert_eq!(up(&format!("{base}/redirect?no-follow")).await, 1.0);
    assert_eq!(up(&format!("{base}/loop")).await, 0.0);
    assert_eq!(up(&format!("{base}/ok?wrong-status")).await, 0.0);
    assert_eq!(up(&format!("{base}/ok?wrong-body")).await, 0.0);
    assert_eq!(up(&format!("{base}/ok?wrong-json")).await, 0.0);
    assert_eq!(up(&format!("http://127.0.0.1:{closed}/")).await, 0.0);

    // httpcheck.status: 1 for the response's class, 0 for the others.
    let classes = |url: String| {
        let mut seen: Vec<(String, String, String, f64)> = points(&recorded, "httpcheck.status")
            .into_iter()
            .filter(|f| f.text("http.url").as_deref() == Some(url.as_str()))
            .map(|f| {
                let code = f
                    .point
                    .attributes
                    .iter()
                    .find(|a| a.key == "http.status_code")
                    .and_then(|a| a.value.clone())
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                (
                    f.text("http.status_class").unwrap(),
                    f.text("http.method").unwrap(),
                    code,
                    f.value(),
                )
            })
            .collect();
        seen.truncate(5);
        seen
    };
    let ok = classes(format!("{base}/ok"));
    assert_eq!(ok.len(), 5, "{ok:?}");
    for (class, method, code, value) in &ok {
        assert_eq!(method, "GET");
        assert!(code.contains("IntValue(200)"), "{code}");
        assert_eq!(*value, if class == "2xx" { 1.0 } else { 0.0 }, "{class}");
    }
    let fail = classes(format!("{base}/fail"));
    assert!(
        fail.iter()
            .any(|(c, _, code, v)| c == "5xx" && *v == 1.0 && code.contains("500"))
    );
    let no_follow = classes(format!("{base}/redirect?no-follow"));
    assert!(
        no_follow.iter().any(|(c, _, _, v)| c == "3xx" && *v == 1.0),
        "{no_follow:?}"
    );
    let followed = classes(format!("{base}/redirect"));
    assert!(
        followed.iter().any(|(c, _, _, v)| c == "2xx" && *v == 1.0),
        "{followed:?}"
    );

    // The slow answer's time shows in the duration and in first_byte.
    let slow = latest(
        &recorded,
        "httpcheck.duration",
        "http.url",
        &format!("{base}/slow"),
    )
    .await;
    assert!(
        slow.value() >= 300.0,
        "httpcheck.duration {} ms",
        slow.value()
    );
    let first_byte = points(&recorded, "httpcheck.phase.duration")
        .into_iter()
        .find(|f| {
            f.text("http.url").as_deref() == Some(&format!("{base}/slow"))
                && f.text("http.phase").as_deref() == Some("first_byte")
        })
        .expect("a first_byte phase");
    assert!(
        first_byte.value() >= 0.3,
        "first_byte {} s",
        first_byte.value()
    );
    let fast = latest(
        &recorded,
        "httpcheck.duration",
        "http.url",
        &format!("{base}/ok"),
    )
    .await;
    assert!(
        fast.value() < 300.0,
        "httpcheck.duration of /ok {} ms",
        fast.value()
    );

    // Errors name what went wrong.
    let error = |url: String| {
        points(&recorded, "httpcheck.error")
            .into_iter()
            .filter(|f| f.text("http.url").as_deref() == Some(url.as_str()))
            .filter_map(|f| f.text("error.message"))
            .next()
            .unwrap_or_else(|| panic!("no httpcheck.error for {url}"))
    };
    assert_eq!(error(format!("{base}/fail")), "status 500, expected 2xx");
    assert_eq!(
        error(format!("{base}/ok?wrong-status")),
        "status 200, expected [204]"
    );
    assert!(error(format!("{base}/loop")).contains("more than 3 redirects"));
    assert!(error(format!("{base}/ok?wrong-body")).contains("does not match"));
    assert_eq!(
        error(format!("{base}/ok?wrong-json")),
        r#"/status is "ok", expected "degraded""#
    );
    assert!(
        error(format!("http://127.0.0.1:{closed}/")).contains("refused"),
        "{}",
        error(format!("http://127.0.0.1:{closed}/"))
    );

    // /checks shows at a glance what is down, and why.
    let json = checks_json(run.telemetry()).await;
    assert_eq!(json["down"], 6, "{json}");
    assert_eq!(json["up"], 4, "{json}");
    assert_eq!(
        json["checks"][0]["status"], "down",
        "down ones first: {json}"
    );
    let failing = entry(&json, &format!("{base}/fail"));
    assert_eq!(failing["kind"], "http");
    assert_eq!(failing["receiver"], "httpcheck");
    assert_eq!(failing["error"]["code"], "unexpected_status");
    assert!(failing["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert!(failing["time"].as_str().unwrap().ends_with('Z'));
    let refused = entry(&json, &format!("http://127.0.0.1:{closed}/"));
    assert_eq!(refused["error"]["code"], "connection_refused", "{json}");
    assert_eq!(
        entry(&json, &format!("{base}/ok"))["error"],
        serde_json::Value::Null
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpcheck_retries_before_a_failure_counts() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    // Fails every first request of a pair: with one retry each run succeeds.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let flaky = axum::Router::new().route(
        "/flaky",
        get(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let server = serve(flaky).await;
    let url = format!("http://{server}/flaky");
    let run = start_checks(
        &format!(
            "  httpcheck:\n    collection_interval: 1s\n    timeout: 400ms\n    retries: 1\n    targets: [{{ endpoint: {url} }}]\n"
        ),
        &["httpcheck"],
    )
    .await;
    let up = latest(
        &run.backend.recorded,
        "sidewatch.check.up",
        "check.target",
        &url,
    )
    .await;
    assert_eq!(up.value(), 1.0);
    let attempts = latest(
        &run.backend.recorded,
        "sidewatch.check.attempts",
        "check.target",
        &url,
    )
    .await;
    assert_eq!(attempts.value(), 2.0);
    assert!(calls.load(Ordering::SeqCst) >= 2);
    run.stop().await;
}

#[tokio::test]
async fn httpcheck_config_errors_name_the_field() {
    let Err(error) = sidewatch::plan::load_str(
        r#"
receivers:
  http_check:
    collection_interval: 1s
    timeout: 2s
    targets:
      - endpoint: ftp://example.com/
      - endpoint: http://127.0.0.1/
        body_regex: "("
exporters:
  debug: {}
service:
  pipelines:
    metrics: { receivers: [http_check], exporters: [debug] }
"#,
        "test config",
    ) else {
        panic!("the config is invalid");
    };
    let error = error.to_string();
    assert!(error.contains("receivers.http_check.timeout"), "{error}");
    assert!(error.contains("longer than collection_interval"), "{error}");
    assert!(
        error.contains("receivers.http_check.targets[0].endpoint"),
        "{error}"
    );
    assert!(
        error.contains("expected an http:// or https:// URL"),
        "{error}"
    );
    assert!(
        error.contains("receivers.http_check.targets[1].body_regex"),
        "{error}"
    );
}
