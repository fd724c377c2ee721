//! `logpatterns` in a running collector: a real syslog sample (the first
//! 400 lines of loghub's Linux_2k, with its labels) tailed by `filelog`,
//! stamped and counted; and log-based alerts (5 failed logins in a minute,
//! a new error pattern) delivered into a real Alertmanager.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::alerting::{start_alertmanager, wait_for};
use crate::backend::Backend;
use crate::harness::{point_text, point_value};

const SAMPLE: &str = "tests/data/loghub/Linux_400.log";
const LABELS: &str = "tests/data/loghub/Linux_400.events";

const SYSLOG: &str = r#"'^(?P<time>\w{3} +\d+ [\d:]+) (?P<host>\S+) (?P<program>[^\[:]+)(\[(?P<pid>\d+)\])?: (?P<message>.*)$'"#;

#[test]
fn pipelines_logs_yaml_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/logs.yaml");
    if let Err(e) = sidewatch::plan::load_file(&path) {
        panic!("{e}");
    }
}

/// Loghub's grouping accuracy: a line counts when the lines sharing its
/// predicted group are exactly the lines sharing its true group.
fn grouping_accuracy(predicted: &[String], truth: &[String]) -> f64 {
    let groups = |labels: &[String]| {
        let mut g: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (i, l) in labels.iter().enumerate() {
            g.entry(l.clone()).or_default().insert(i);
        }
        g
    };
    let (p, t) = (groups(predicted), groups(truth));
    let correct = (0..truth.len())
        .filter(|&i| p[&predicted[i]] == t[&truth[i]])
        .count();
    correct as f64 / truth.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_syslog_sample_is_stamped_and_counted_per_pattern() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog.log");
    std::fs::copy(root.join(SAMPLE), &log).unwrap();
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = crate::harness::start(&format!(
        r#"
receivers:
  filelog:
    include: [{log}]
    start_at: beginning
    poll_interval: 50ms
    operators:
      - {{ type: regex_parser, regex: {SYSLOG} }}
      - {{ type: move, from: attributes.message, to: body }}
connectors:
  logpatterns: {{ interval: 200ms, storage: {storage} }}
exporters:
  otlp: {{ endpoint: "http://{backend}", sending_queue: {{ num_consumers: 1 }} }}
service:
  pipelines:
    logs: {{ receivers: [filelog], exporters: [logpatterns] }}
    logs/stamped: {{ receivers: [logpatterns], exporters: [otlp] }}
    metrics: {{ receivers: [logpatterns], exporters: [otlp] }}
"#,
        log = log.display(),
        storage = dir.path().join("state").display(),
        backend = backend.address,
    ))
    .await;
    let done = wait_for(Duration::from_secs(30), async || {
        (backend.recorded.log_record_count() >= 400).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "{} records",
        backend.recorded.log_record_count()
    );

    // Every record carries its pattern id; the ids group the lines as the
    // engine does on the same text, and close to loghub's labels.
    let records: Vec<_> = backend
        .recorded
        .logs
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.resource_logs.clone())
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| s.log_records)
        .collect();
    assert_eq!(records.len(), 400);
    let text = |v: &opentelemetry_proto::tonic::common::v1::AnyValue| {
        sidewatch::otlp::value::any_value_text(v)
    };
    let stamped: Vec<String> = records
        .iter()
        .map(|r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "log.pattern.id")
                .map(|kv| text(kv.value.as_ref().unwrap()))
                .expect("every record is stamped")
        })
        .collect();
    let mut miner = sidewatch::logpatterns::Miner::default();
    let direct: Vec<String> = records
        .iter()
        .map(|r| {
            miner
                .observe(&text(r.body.as_ref().unwrap()))
                .pattern_id
                .to_string()
        })
        .collect();
    assert_eq!(
        stamped, direct,
        "the connector stamps what the engine finds"
    );
    let labels: Vec<String> = std::fs::read_to_string(root.join(LABELS))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let accuracy = grouping_accuracy(&stamped, &labels);
    eprintln!("grouping accuracy on {SAMPLE}: {accuracy:.4}");
    assert!(accuracy >= 0.9, "grouping accuracy {accuracy}");

    // The counters: the latest log.pattern.count per id sums to 400, one
    // series per distinct stamped id.
    let wanted: BTreeSet<&String> = stamped.iter().collect();
    let counted = wait_for(Duration::from_secs(10), async || {
        let mut latest: BTreeMap<String, f64> = BTreeMap::new();
        for request in backend.recorded.metrics.lock().unwrap().iter() {
            for m in request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .filter(|m| m.name == "log.pattern.count")
            {
                let Some(Data::Sum(sum)) = &m.data else {
                    continue;
                };
                for p in &sum.data_points {
                    assert!(point_text(p, "log.pattern.template").is_some());
                    latest.insert(point_text(p, "log.pattern.id").unwrap(), point_value(p));
                }
            }
        }
        (latest.values().sum::<f64>() == 400.0).then_some(latest)
    })
    .await
    .expect("log.pattern.count sums to 400 lines");
    assert_eq!(counted.keys().collect::<BTreeSet<_>>(), wanted);
    collector.shutdown().await;
    assert!(
        dir.path()
            .join("state/logpatterns.logpatterns.json")
            .exists(),
        "state saved under storage"
    );
}

async fn alert_names(alertmanager_url: &str) -> BTreeSet<String> {
    let body: serde_json::Value = reqwest::get(format!("{alertmanager_url}/api/v2/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| Some(a["labels"]["alertname"].as_str()?.to_string()))
        .collect()
}

fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_and_a_new_error_pattern_fire_into_alertmanager() {
    let Some(alertmanager) = start_alertmanager().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (auth, app) = (dir.path().join("auth.log"), dir.path().join("app.log"));
    let failed = |i: usize| {
        format!(
            "Dec  3 09:24:{:02} web1 sshd[{}]: Failed password for user{i} from 10.0.0.{i} port {} ssh2",
            i % 60,
            1000 + i,
            40000 + i
        )
    };
    // The files exist before start; start_at: end skips what is there.
    append(&auth, &[failed(0)]);
    append(&app, &[r#"{"level":"info","msg":"started"}"#.to_string()]);
    let collector = crate::harness::start(&format!(
        r#"
receivers:
  filelog/auth:
    include: [{auth}]
    poll_interval: 50ms
    operators:
      - {{ type: regex_parser, regex: {SYSLOG} }}
      - {{ type: move, from: attributes.message, to: body }}
  filelog/app:
    include: [{app}]
    poll_interval: 50ms
    operators:
      - {{ type: json_parser, severity: {{ parse_from: attributes.level }} }}
      - {{ type: move, from: attributes.msg, to: body }}
connectors:
  logpatterns: {{ interval: 200ms, learning_period: 1s }}
  alert:
    evaluation_interval: 200ms
    rules:
      - name: FailedLogins
        metric: log.pattern.lines
        matchers: ['log.pattern.template=~"Failed password for .*"']
        value: sum
        window: 1m
        group_by: [service.name]
        aggregate: sum
        op: ">="
        warning: 5
      - name: NewErrorPattern
        metric: log.pattern.new
        matchers: ['log.severity=~"error|fatal"']
        value: max
        window: 5m
        op: ">"
        warning: 0
exporters:
  alertmanager: {{ endpoint: {url}, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  pipelines:
    logs: {{ receivers: [filelog/auth, filelog/app], exporters: [logpatterns] }}
    metrics: {{ receivers: [logpatterns], exporters: [alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [alertmanager] }}
"#,
        auth = auth.display(),
        app = app.display(),
        url = alertmanager.url,
    ))
    .await;
    // Learning: a few failed logins and ordinary lines, below the threshold.
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&auth, &(1..4).map(failed).collect::<Vec<_>>());
    append(
        &app,
        &[r#"{"level":"info","msg":"request served in 12 ms"}"#.to_string()],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        alert_names(&alertmanager.url).await.is_empty(),
        "nothing fires while below the threshold and learning"
    );
    // After learning: two more failed logins make 5 in the minute, and a
    // kind of error never seen before.
    append(&auth, &(4..6).map(failed).collect::<Vec<_>>());
    append(
        &app,
        &[
            r#"{"level":"error","msg":"database connection pool exhausted after 30 s"}"#
                .to_string(),
        ],
    );
    let expected: BTreeSet<String> = ["FailedLogins", "NewErrorPattern"].map(String::from).into();
    let shown = wait_for(Duration::from_secs(20), async || {
        let names = alert_names(&alertmanager.url).await;
        (names == expected).then_some(names)
    })
    .await;
    assert_eq!(
        shown,
        Some(expected),
        "shown: {:?}",
        alert_names(&alertmanager.url).await
    );
    collector.shutdown().await;
}
