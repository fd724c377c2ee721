//! `filelog` against the real binary and a real OTLP backend: files
//! written, rotated by rename and by copy-truncate, deleted while open,
//! and sidewatch killed with SIGKILL and restarted in the middle. Every
//! line carries its stream, the physical file (segment) it was written
//! to and a sequence number, so the test counts each line's deliveries
//! and checks the order within each file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::harness::{Sidewatch, free_port};

/// Bodies of every log record the backend received, in arrival order.
fn bodies(backend: &Backend) -> Vec<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    backend
        .recorded
        .logs
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .filter_map(|l| match l.body.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// Writes numbered lines `<stream> <segment> <seq>` and remembers them.
struct Writer {
    written: Vec<String>,
    next: BTreeMap<String, u64>,
}

impl Writer {
    fn new() -> Writer {
        Writer {
            written: Vec::new(),
            next: BTreeMap::new(),
        }
    }

    fn write(&mut self, file: &mut std::fs::File, stream: &str, segment: u32, count: u64) {
        let mut text = String::new();
        for _ in 0..count {
            let seq = self.next.entry(stream.to_string()).or_default();
            let line = format!("{stream} s{segment} {seq:06} some padding to make lines longer");
            *seq += 1;
            text.push_str(&line);
            text.push('\n');
            self.written.push(line);
        }
        file.write_all(text.as_bytes()).unwrap();
        file.flush().unwrap();
    }
}

fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

async fn wait_for_count(backend: &Backend, expected: usize, what: &str) {
    let started = Instant::now();
    loop {
        let got = bodies(backend).len();
        if got >= expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: {got} of {expected} lines arrived in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each written line arrived exactly once, and within each (stream,
/// segment) in the order written.
fn assert_exactly_once_in_order(written: &[String], received: &[String]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in received {
        *counts.entry(line.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        duplicated.is_empty(),
        "lines delivered more than once: {duplicated:?}"
    );
    let missing: Vec<_> = written
        .iter()
        .filter(|l| !counts.contains_key(l.as_str()))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lines never delivered: {missing:?}");
    assert_eq!(received.len(), written.len(), "unexpected extra lines");
    let mut last: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in received {
        let mut parts = line.split(' ');
        let (stream, segment, seq) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let seq: u64 = seq.parse().unwrap();
        if let Some(before) = last.insert((stream.into(), segment.into()), seq) {
            assert!(
                seq > before,
                "{stream} {segment}: {seq} arrived after {before}"
            );
        }
    }
}

fn config(dir: &Path, backend_port: u16, extra: &str) -> PathBuf {
    let path = dir.join("sidewatch.yaml");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        &path,
        format!(
            r#"
receivers:
  filelog:
    include: [{logs}/*.log*]
    exclude: [{logs}/*.gz]
    start_at: beginning
    poll_interval: 50ms
    max_batch_size: 100
    storage: {storage}
    {extra}
exporters:
  otlp:
    endpoint: http://127.0.0.1:{backend_port}
    sending_queue: {{ num_consumers: 1 }}
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    logs: {{ receivers: [filelog], exporters: [otlp] }}
"#,
            logs = logs.display(),
            storage = dir.join("storage").display(),
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_once_in_order_through_rotation_deletion_and_kill() {
    let dir = tempfile::tempdir().unwrap();
    let backend_port = free_port();
    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let config = config(dir.path(), backend_port, "");
    let logs = dir.path().join("logs");
    let (app, auth) = (logs.join("app.log"), logs.join("auth.log"));
    let mut w = Writer::new();

    // Files that exist before start, read from the beginning.
    w.write(&mut append(&app), "app", 0, 300);
    w.write(&mut append(&auth), "auth", 0, 200);
    let mut sidewatch = Sidewatch::run(&config);
    wait_for_count(&backend, w.written.len(), "before rotation").await;

    // Rotation by rename: the writer keeps its old handle a while (as an
    // app does until it reopens), then a new app.log starts.
    let mut old = append(&app);
    std::fs::rename(&app, logs.join("app.log.1")).unwrap();
    w.write(&mut old, "app", 0, 150);
    let mut new = append(&app);
    w.write(&mut new, "app", 1, 250);

    // Rotation by copy-truncate, as logrotate's copytruncate does.
    let mut auth_file = append(&auth);
    w.write(&mut auth_file, "auth", 0, 120);
    std::fs::copy(&auth, logs.join("auth.log.1")).unwrap();
    auth_file.set_len(0).unwrap();
    w.write(&mut auth_file, "auth", 1, 180);

    // Deleted while open: everything written before the delete arrives.
    let tmp = logs.join("tmp.log");
    let mut tmp_file = append(&tmp);
    w.write(&mut tmp_file, "tmp", 0, 10);
    wait_for_count(&backend, w.written.len(), "before the delete").await;
    w.write(&mut tmp_file, "tmp", 0, 400);
    std::fs::remove_file(&tmp).unwrap();
    drop(tmp_file);
    // Files that appear while running are read from their start.
    w.write(&mut append(&logs.join("late.log")), "late", 0, 100);
    wait_for_count(&backend, w.written.len(), "after rotations").await;

    // SIGKILL once the last batch is checkpointed; while sidewatch is
    // down, lines are written and app.log is rotated once more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sidewatch.kill().unwrap();
    sidewatch.wait().unwrap();
    w.write(&mut new, "app", 1, 200);
    std::fs::rename(&app, logs.join("app.log.2")).unwrap();
    w.write(&mut new, "app", 1, 20);
    let mut newest = append(&app);
    w.write(&mut newest, "app", 2, 130);
    w.write(&mut auth_file, "auth", 1, 90);
    let _sidewatch = Sidewatch::run(&config);
    wait_for_count(&backend, w.written.len(), "after the restart").await;
    // Nothing more comes: nothing is read twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once_in_order(&w.written, &bodies(&backend));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_line_is_cut_and_unparsable_lines_pass_through_counted() {
    let dir = tempfile::tempdir().unwrap();
    let backend_port = free_port();
    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let telemetry_port = free_port();
    let config = config(
        dir.path(),
        backend_port,
        "max_log_size: 1000\n    multiline: { line_start_pattern: '^\\d{4}-' }\n    operators: [ { type: regex_parser, regex: '^(?P<day>\\d{4}-\\d\\d-\\d\\d) (?P<level>[A-Z]+) ', severity: { parse_from: attributes.level } } ]",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "metrics: { level: none }",
        &format!("metrics: {{ address: 127.0.0.1:{telemetry_port} }}"),
    );
    std::fs::write(&config, text).unwrap();
    let path = dir.path().join("logs/app.log");
    let mut file = append(&path);
    let huge = "x".repeat(5_000_000);
    write!(
        file,
        "2026-12-03 ERROR boom\n  at one\n  at two\n2026-12-03 INFO {huge}\nno date here\n2026-12-03 WARN last\n"
    )
    .unwrap();
    let _sidewatch = Sidewatch::run(&config);
    // The last entry is complete once the file is idle (force_flush_period).
    wait_for_count(&backend, 3, "entries").await;
    let got = bodies(&backend);
    assert_eq!(got[0], "2026-12-03 ERROR boom\n  at one\n  at two");
    assert_eq!(got[1].len(), 1000, "cut at max_log_size");
    assert!(got[1].starts_with("2026-12-03 INFO xxx"));
    assert_eq!(got[2], "2026-12-03 WARN last");
    let severities: Vec<i32> = backend
        .recorded
        .logs
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|l| l.severity_number)
        .collect();
    assert_eq!(severities, [17, 9, 13]);
    let metrics = reqwest::get(format!("http://127.0.0.1:{telemetry_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sidewatch_filelog_truncated_entries_total{component=\"filelog\"} 1"),
        "{metrics}"
    );
    // "no date here" is a continuation line of the INFO entry (it does not
    // start with a date); the cut entry still parses. Now a line that
    // does not parse at all: it passes through raw and is counted.
    writeln!(file, "garbage line without a level").unwrap();
    writeln!(file, "2026-12-03 INFO after").unwrap();
    wait_for_count(&backend, 4, "the unparsable entry").await;
    assert_eq!(bodies(&backend)[3], "garbage line without a level");
    let metrics = reqwest::get(format!("http://127.0.0.1:{telemetry_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sidewatch_filelog_parse_failures_total{component=\"filelog\"} 1"),
        "{metrics}"
    );
}

/// SIGKILL while a large file is being read, with the exporter's
/// persistent queue: nothing the checkpoint passed is lost (it is in the
/// queue's log on disk), and the order within the file holds. Lines can
/// come twice from the batches around the kill: one stored in the queue
/// whose checkpoint was not yet written, and those the backend had but
/// whose delivery the queue had not yet recorded; the test counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_read_loses_nothing_with_a_persistent_queue() {
    let dir = tempfile::tempdir().unwrap();
    let backend_port = free_port();
    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let queue = dir.path().join("queue");
    let config = config(dir.path(), backend_port, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "sending_queue: { num_consumers: 1 }",
        &format!(
            "sending_queue: {{ num_consumers: 1, storage: {} }}",
            queue.display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut w = Writer::new();
    let path = dir.path().join("logs/big.log");
    w.write(&mut append(&path), "big", 0, 50_000);
    let mut sidewatch = Sidewatch::run(&config);
    let started = Instant::now();
    while bodies(&backend).len() < 5_000 {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sidewatch.kill().unwrap();
    sidewatch.wait().unwrap();
    let at_kill = bodies(&backend).len();
    let _sidewatch = Sidewatch::run(&config);
    let started = Instant::now();
    loop {
        let received = bodies(&backend);
        let distinct: std::collections::BTreeSet<&String> = received.iter().collect();
        if distinct.len() == w.written.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {} distinct lines after the restart",
            distinct.len(),
            w.written.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = bodies(&backend);
    let duplicates = received.len() - w.written.len();
    eprintln!(
        "killed after {at_kill} of {} lines; {duplicates} delivered twice",
        w.written.len()
    );
    assert!(
        duplicates <= 300,
        "at most three batches (max_batch_size 100) again: {duplicates}"
    );
    // Order: each line's first delivery comes after the previous line's.
    let mut seen = std::collections::BTreeSet::new();
    let firsts: Vec<&String> = received.iter().filter(|l| seen.insert(*l)).collect();
    let expected: Vec<&String> = w.written.iter().collect();
    assert!(firsts == expected, "lines arrived out of order");
}
