//! The `exec` receiver running real commands: output in Prometheus text,
//! Influx line protocol and JSON arrives as metrics; a failing command
//! reports its exit code; a hanging one is killed with its whole process
//! group at its timeout; a flooding one is cut off at `max_output`; and
//! the others keep their schedule meanwhile.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::backend::{Backend, wait_until};
use crate::harness::{point_value, start};

/// receiver id -> metric name -> last value seen (first point).
fn latest(requests: &[ExportMetricsServiceRequest]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for request in requests {
        for resource in &request.resource_metrics {
            let Some(receiver) = resource.resource.as_ref().and_then(|r| {
                r.attributes
                    .iter()
                    .find(|a| a.key == "sidewatch.receiver")
                    .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                        any_value::Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
            }) else {
                continue;
            };
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let value = match &metric.data {
                    Some(Data::Gauge(g)) => g.data_points.first().map(point_value),
                    Some(Data::Sum(s)) => s.data_points.first().map(point_value),
                    Some(Data::Histogram(h)) => h.data_points.first().map(|p| p.count as f64),
                    _ => None,
                };
                if let Some(value) = value {
                    out.entry(receiver.clone())
                        .or_default()
                        .insert(metric.name.clone(), value);
                }
            }
        }
    }
    out
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for this purpose: it runs nothing.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_become_metrics_and_hangs_and_floods_are_contained() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r##"
receivers:
  exec/prom:
    command: [printf, "# TYPE jobs_total counter\njobs_total{{queue=\"a\"}} 7\n# TYPE wait histogram\nwait_bucket{{le=\"1\"}} 2\nwait_bucket{{le=\"+Inf\"}} 3\nwait_sum 2.5\nwait_count 3\n"]
    collection_interval: 500ms
    timeout: 400ms
  exec/influx:
    command: "printf 'disk,dev=sda free=10i,ro=f,label=\"x\"\\n'"
    format: influx
    collection_interval: 500ms
    timeout: 400ms
  exec/json:
    command: [/bin/echo, '{{"queue": {{"depth": 4}}, "ok": true}}']
    format: json
    collection_interval: 500ms
    timeout: 400ms
  exec/fails:
    command: "echo broken >&2; exit 3"
    shell: true
    collection_interval: 500ms
    timeout: 400ms
  exec/hangs:
    command: "sleep 60 & echo $! >> {pids}; echo $$$$ >> {pids}; wait"
    shell: true
    collection_interval: 1s
    timeout: 300ms
  exec/floods:
    command: [yes]
    max_output: 64KiB
    collection_interval: 500ms
    timeout: 400ms
exporters:
  otlp: {{ endpoint: {}, retry_on_failure: {{ initial_interval: 50ms }} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    metrics: {{ receivers: [exec/prom, exec/influx, exec/json, exec/fails, exec/hangs, exec/floods], exporters: [otlp] }}
"##,
        backend.url(),
        pids = pids.display(),
    ))
    .await;
    let recorded = backend.recorded.clone();
    let all = || latest(&recorded.metrics.lock().unwrap());
    let complete = |m: &BTreeMap<String, BTreeMap<String, f64>>| {
        [
            "exec/prom",
            "exec/influx",
            "exec/json",
            "exec/fails",
            "exec/hangs",
            "exec/floods",
        ]
        .iter()
        .all(|r| m.contains_key(*r))
    };
    assert!(
        wait_until(Duration::from_secs(15), || complete(&all())).await,
        "not every exec receiver reported within 15 s: {:?}",
        all().keys().collect::<Vec<_>>()
    );
    let m = all();
    assert_eq!(m["exec/prom"]["jobs_total"], 7.0);
    assert_eq!(m["exec/prom"]["wait"], 3.0);
    assert_eq!(m["exec/prom"]["exec.command.exit_code"], 0.0);
    assert_eq!(m["exec/influx"]["disk_free"], 10.0);
    assert_eq!(m["exec/influx"]["disk_ro"], 0.0);
    assert_eq!(m["exec/json"]["queue.depth"], 4.0);
    assert_eq!(m["exec/json"]["ok"], 1.0);
    assert_eq!(m["exec/fails"]["exec.command.exit_code"], 3.0);
    assert_eq!(m["exec/hangs"]["exec.command.timed_out"], 1.0);
    assert_eq!(m["exec/hangs"]["exec.command.exit_code"], -1.0);
    assert!(m["exec/hangs"]["exec.command.duration"] < 5.0);
    assert_eq!(m["exec/floods"]["exec.command.output_bytes"], 65536.0);
    assert_eq!(m["exec/floods"]["exec.command.exit_code"], -1.0);

    // Every process the hanging command started (the shell and its
    // background sleep) is gone: the group was killed, not only the shell.
    let text = std::fs::read_to_string(&pids).unwrap();
    let started: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(started.len() >= 2, "pids written: {text:?}");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&pids).unwrap();
            // Only runs that already hit their timeout: all but the last two lines.
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            pids[..pids.len().saturating_sub(2)]
                .iter()
                .all(|p| !alive(*p))
                && pids.len() >= 4
        })
        .await,
        "processes of timed-out runs are still alive: {}",
        std::fs::read_to_string(&pids).unwrap()
    );

    // The healthy command keeps running while the others hang or flood
    // (six runs at 500 ms take 2.5 s; ten seconds allowed on a busy machine).
    let runs = || {
        recorded
            .metrics
            .lock()
            .unwrap()
            .iter()
            .filter(|r| latest(std::slice::from_ref(r)).contains_key("exec/prom"))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || runs() >= 6).await,
        "only {} runs of the healthy command",
        runs()
    );

    collector.shutdown().await;
    backend.stop().await;
}
