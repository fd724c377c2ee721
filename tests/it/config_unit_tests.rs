//! `sidewatch test`: every shipped pipeline's unit tests pass through the
//! binary, a failing expectation is reported with its YAML path, line and
//! what was received, and a bad tests file is refused before anything runs.

use std::path::Path;
use std::process::{Command, Output};

fn sidewatch_test(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .arg("test")
        .args(args)
        .output()
        .expect("run sidewatch test")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_shipped_pipeline_has_unit_tests_and_they_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pipelines: Vec<_> = std::fs::read_dir(root.join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    pipelines.sort();
    assert!(pipelines.len() >= 10, "{pipelines:?}");
    for pipeline in pipelines {
        let tests = root
            .join("pipelines/tests")
            .join(pipeline.file_name().unwrap());
        assert!(
            tests.exists(),
            "{} has no unit tests at {}",
            pipeline.display(),
            tests.display()
        );
        let output = sidewatch_test(&["--tests", tests.to_str().unwrap()]);
        let report = text(&output);
        assert!(output.status.success(), "{}:\n{report}", tests.display());
        let summary = report
            .lines()
            .find(|l| l.ends_with(" failed"))
            .unwrap_or_else(|| panic!("no summary line:\n{report}"));
        let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
        assert!(passed >= 1, "{report}");
        assert_eq!(summary, format!("{passed} passed, 0 failed"), "{report}");
        assert!(!report.contains("FAIL"), "{report}");
    }
}

/// A config with its own `tests:` section: one case that holds and one
/// whose alert expectation does not.
const CONFIG_WITH_TESTS: &str = r#"receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
connectors:
  alert:
    evaluation_interval: 10s
    rules:
      - name: QueueBacklog
        metric: queue.depth
        op: ">"
        warning: 100
        for: 1m
exporters:
  debug: { verbosity: basic }
service:
  pipelines:
    metrics: { receivers: [otlp], exporters: [alert, debug] }
    logs: { receivers: [alert], exporters: [debug] }
tests:
  - name: a backlog held for a minute warns
    interval: 10s
    metrics:
      - { series: 'queue.depth{queue="jobs"}', values: 10x2 500x12 }
    expect:
      alerts:
        - { at: 1m, rule: QueueBacklog, firing: [] }
        - { at: 2m, rule: QueueBacklog, firing: [{ severity: warning, labels: { queue: jobs } }] }
      metrics:
        - { exporter: debug, name: queue.depth, attributes: { queue: jobs }, at: 15s, value: 10 }
  - name: a short backlog does not
    interval: 10s
    metrics:
      - { series: 'queue.depth{queue="jobs"}', values: 10x2 500x3 10x6 }
    expect:
      alerts:
        - { at: 1m30s, rule: QueueBacklog, firing: [{ severity: warning }] }
      metrics:
        - { exporter: debug, name: queue.depth, value: 11 }
"#;

#[test]
fn a_failing_expectation_names_its_line_and_what_was_received() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("queue.yaml");
    std::fs::write(&config, CONFIG_WITH_TESTS).unwrap();
    let output = sidewatch_test(&["--config", config.to_str().unwrap()]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("  ok    a backlog held for a minute warns"),
        "{report}"
    );
    assert!(
        report.contains("  FAIL  a short backlog does not"),
        "{report}"
    );
    let line = |needle: &str| {
        CONFIG_WITH_TESTS
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    let alert_line = line("at: 1m30s");
    assert!(
        report.contains(&format!(
            "tests[1].expect.alerts[0] (line {alert_line}): at 1m30s rule QueueBacklog: expected firing warning {{}}; nothing is firing"
        )),
        "{report}"
    );
    let metric_line = line("value: 11");
    assert!(
        report.contains(&format!("tests[1].expect.metrics[0] (line {metric_line}): expected queue.depth{{}} value 11; debug has queue.depth{{queue=\"jobs\"}} value 10 at 2m10s")),
        "{report}"
    );
    assert!(report.contains("1 passed, 1 failed"), "{report}");
}

#[test]
fn a_bad_tests_file_is_refused_with_its_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("bad.yaml");
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/alerts.yaml");
    std::fs::write(
        &tests,
        format!(
            "config: {}\ntests:\n  - name: typo\n    metrics:\n      - {{ series: up, values: '1x3' }}\n    expect:\n      alert: []\n",
            pipeline.display()
        ),
    )
    .unwrap();
    let output = sidewatch_test(&["--tests", tests.to_str().unwrap()]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(
        report.contains("tests[0].expect.alert (line 7, column 7): unknown field `alert`"),
        "{report}"
    );

    std::fs::write(
        &tests,
        format!(
            "config: {}\ntests:\n  - name: bad values\n    metrics:\n      - {{ series: up, values: '1+x3' }}\n    expect:\n      alerts: []\n",
            pipeline.display()
        ),
    )
    .unwrap();
    let output = sidewatch_test(&["--tests", tests.to_str().unwrap()]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(
        report.contains("tests[0]: bad values: metrics[0]: values \"1+x3\""),
        "{report}"
    );
}
