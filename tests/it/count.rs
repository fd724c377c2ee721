//! The `count` connector in the real binary, on real log samples tailed by
//! `filelog`: 400 lines of loghub's BGL_2k (lines 1201-1600, levels INFO
//! to FATAL) and loghub's Linux_400 syslog sample followed by OpenSSH
//! `Failed password` lines (no stored loghub sample has any; the lines
//! follow loghub's OpenSSH_2k format). Counts by attribute must be exact.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::alerting::wait_for;
use crate::backend::{Backend, Recorded};
use crate::harness::{Sidewatch, point_text, point_value};

const BGL: &str = "tests/data/loghub/BGL_400.log";
const LINUX: &str = "tests/data/loghub/Linux_400.log";

/// (metric, attribute value) -> summed deltas, over everything received;
/// `key` names the one attribute each counter here is split by.
fn totals(recorded: &Recorded) -> BTreeMap<(String, String), f64> {
    let mut totals = BTreeMap::new();
    for request in recorded.metrics.lock().unwrap().iter() {
        for rm in &request.resource_metrics {
            for sm in &rm.scope_metrics {
                assert_eq!(sm.scope.as_ref().unwrap().name, "sidewatch/count");
                for m in &sm.metrics {
                    let Some(Data::Sum(sum)) = &m.data else {
                        panic!("{} is not a sum", m.name);
                    };
                    assert!(sum.is_monotonic);
                    assert_eq!(
                        sum.aggregation_temporality,
                        AggregationTemporality::Delta as i32
                    );
                    for p in &sum.data_points {
                        assert_eq!(p.attributes.len(), 1, "{p:?}");
                        let value = point_text(p, &p.attributes[0].key).unwrap();
                        *totals.entry((m.name.clone(), value)).or_default() += point_value(p);
                    }
                }
            }
        }
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_error_records_by_service_and_failed_passwords_by_host_exactly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let bgl = dir.path().join("bgl.log");
    let auth = dir.path().join("auth.log");
    std::fs::copy(root.join(BGL), &bgl).unwrap();
    let mut auth_text = std::fs::read_to_string(root.join(LINUX)).unwrap();
    let failed = [("LabSZ", 6), ("web2", 3)];
    for (host, n) in failed {
        for i in 0..n {
            auth_text.push_str(&format!(
                "Dec 10 06:55:{:02} {host} sshd[{}]: Failed password for invalid user admin{i} from 173.234.31.{i} port {} ssh2\n",
                10 + i,
                24200 + i,
                38900 + i
            ));
        }
    }
    std::fs::write(&auth, &auth_text).unwrap();

    // What the counts must be, from the files themselves.
    let bgl_text = std::fs::read_to_string(&bgl).unwrap();
    let errors = bgl_text
        .lines()
        .filter(|l| matches!(l.split(' ').nth(8), Some("ERROR" | "SEVERE" | "FATAL")))
        .count();
    assert_eq!(errors, 125, "41 ERROR + 6 SEVERE + 78 FATAL in the sample");
    let failures = auth_text
        .lines()
        .filter(|l| l.contains("authentication failure"))
        .count();
    assert_eq!(failures, 142);
    let auth_lines = auth_text.lines().count();
    assert_eq!(auth_lines, 409);

    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let config = dir.path().join("count.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  filelog/bgl:
    include: [{bgl}]
    start_at: beginning
    poll_interval: 50ms
    operators:
      - type: regex_parser
        regex: '^(?P<label>\S+) (?P<epoch>\d+) (?P<date>\S+) (?P<node>\S+) (?P<time>\S+) (?P<node2>\S+) (?P<type>\S+) (?P<component>\S+) (?P<level>\S+) (?P<message>.*)$'
        severity: {{ parse_from: attributes.level, mapping: {{ info: INFO, warn: WARNING, error: [ERROR, SEVERE], fatal: FATAL }} }}
      - {{ type: add, field: 'resource["service.name"]', value: bgl }}
  filelog/auth:
    include: [{auth}]
    start_at: beginning
    poll_interval: 50ms
    operators:
      - type: regex_parser
        regex: '^(?P<time>\w{{3}} +\d+ [\d:]+) (?P<host>\S+) (?P<program>[^\[:]+)(\[(?P<pid>\d+)\])?: (?P<message>.*)$'
      - {{ type: move, from: attributes.message, to: body }}
      - {{ type: move, from: attributes.host, to: 'resource["host.name"]' }}
      - {{ type: add, field: 'resource["service.name"]', value: auth }}
connectors:
  count:
    logs:
      log.error.count:
        description: Log records of severity ERROR or above.
        conditions: ['severity_number >= SEVERITY_NUMBER_ERROR']
        attributes: [{{ key: service.name }}]
      auth.failed_password.count:
        conditions: ['IsMatch(body, "Failed password")']
        attributes: [{{ key: host.name }}]
      auth.failure.count:
        conditions: ['IsMatch(body, "authentication failure")']
        attributes: [{{ key: host.name }}]
      log.record.count:
        attributes: [{{ key: service.name, default_value: unknown }}]
exporters:
  otlp:
    endpoint: {backend}
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    logs: {{ receivers: [filelog/bgl, filelog/auth], exporters: [count] }}
    metrics: {{ receivers: [count], exporters: [otlp] }}
"#,
            bgl = bgl.display(),
            auth = auth.display(),
            backend = backend.url(),
        ),
    )
    .unwrap();
    let _sidewatch = Sidewatch::run(&config);

    let key = |m: &str, v: &str| (m.to_string(), v.to_string());
    let everything = wait_for(Duration::from_secs(30), async || {
        let t = totals(&backend.recorded);
        let seen = t
            .get(&key("log.record.count", "bgl"))
            .copied()
            .unwrap_or(0.0)
            + t.get(&key("log.record.count", "auth"))
                .copied()
                .unwrap_or(0.0);
        (seen >= 809.0).then_some(())
    })
    .await;
    assert!(
        everything.is_some(),
        "all 809 lines counted: {:?}",
        totals(&backend.recorded)
    );
    // Late duplicates would show up now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected: BTreeMap<(String, String), f64> = [
        (key("log.error.count", "bgl"), errors as f64),
        (key("auth.failed_password.count", "LabSZ"), 6.0),
        (key("auth.failed_password.count", "web2"), 3.0),
        (key("auth.failure.count", "combo"), failures as f64),
        (key("log.record.count", "bgl"), 400.0),
        (key("log.record.count", "auth"), auth_lines as f64),
    ]
    .into();
    assert_eq!(totals(&backend.recorded), expected);

    // The counted records' resource goes with the counts, as in the
    // Collector: each auth count's resource names its host.
    let hosts: Vec<String> = backend
        .recorded
        .metrics
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .filter(|rm| {
            rm.scope_metrics
                .iter()
                .flat_map(|s| &s.metrics)
                .any(|m| m.name == "auth.failed_password.count")
        })
        .filter_map(|rm| {
            rm.resource
                .as_ref()?
                .attributes
                .iter()
                .find(|kv| kv.key == "host.name")
                .map(|kv| sidewatch::otlp::value::any_value_text(kv.value.as_ref().unwrap()))
        })
        .collect();
    assert!(
        !hosts.is_empty() && hosts.iter().all(|h| h == "LabSZ" || h == "web2"),
        "{hosts:?}"
    );
    backend.stop().await;
}

#[test]
fn count_config_errors_name_the_field() {
    let Err(error) = sidewatch::plan::load_str(
        r#"
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } }
connectors:
  count:
    logs:
      bad.count:
        conditions: ['IsMatch(body, "a") and Len(body) > 3']
        attributes: [{ key: env, default_value: [a, list] }]
    metrics:
      m.count:
        attributes: [{ key: env }]
exporters:
  debug: {}
service:
  pipelines:
    logs: { receivers: [otlp], exporters: [count] }
    metrics: { receivers: [count], exporters: [debug] }
"#,
        "test config",
    ) else {
        panic!("the config is invalid");
    };
    let error = error.to_string();
    assert!(
        error.contains("connectors.count.logs.bad.count.conditions[0]"),
        "{error}"
    );
    assert!(
        error.contains("`Len` is not in sidewatch's OTTL subset"),
        "{error}"
    );
    assert!(
        error.contains("default_value") && error.contains("expected a string, number or boolean"),
        "{error}"
    );
    assert!(
        error.contains("connectors.count.metrics.m.count.attributes"),
        "{error}"
    );
}
