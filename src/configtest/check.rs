//! One case: its inputs replayed through the graph, then each expectation
//! held against what came out, with a readable difference when it fails.

use std::fmt::Write as _;

use super::inputs;
use super::outputs::{self, AlertChange, Labels, Point, Received};
use super::spec::{AlertExpectation, Case, CountExpectation, MetricExpectation};
use crate::config::YamlPath;
use crate::config::locate::LineIndex;
use crate::plan::Plan;

/// An expectation that did not hold: where it is written and why.
#[derive(Debug)]
pub struct Failure {
    pub path: YamlPath,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub failures: Vec<Failure>,
    /// Input items (samples, spans, records) fed to the graph.
    pub inputs: usize,
    pub expectations: usize,
}

struct Checker<'a> {
    lines: &'a LineIndex,
    failures: Vec<Failure>,
    checked: usize,
}

impl Checker<'_> {
    fn check(&mut self, path: YamlPath, outcome: Result<(), String>) {
        self.checked += 1;
        if let Err(message) = outcome {
            let line = self.lines.locate(&path).map(|l| l.line);
            self.failures.push(Failure {
                path,
                line,
                message,
            });
        }
    }
}

pub fn run_case(
    plan: &Plan,
    case: &Case,
    start: f64,
    at: &YamlPath,
    lines: &LineIndex,
) -> Result<CaseResult, String> {
    let (requests, items) = inputs::requests(case, (start * 1e9) as u64)
        .map_err(|e| format!("{at}: {}: {e}", case.name))?;
    if requests.is_empty() {
        return Err(format!("{at}: {}: the case has no inputs", case.name));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let input = dir.path().join("inputs.jsonl");
    std::fs::write(&input, requests.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", input.display()))?;
    let exporters_dir = dir.path().join("exporters");
    let report = crate::replay::replay(plan, &input, "value", &exporters_dir)
        .map_err(|e| format!("{}: {e}", case.name))?;
    let changes = outputs::alert_changes(&report.events);
    let exporters: Vec<String> = plan.exporters.keys().map(|id| id.to_string()).collect();
    let mut received = Vec::new();
    for id in &exporters {
        received.push((id.clone(), outputs::read(&exporters_dir, id)?));
    }

    let mut checker = Checker {
        lines,
        failures: Vec::new(),
        checked: 0,
    };
    let expect = at.key("expect");
    for (i, alert) in case.expect.alerts.iter().enumerate() {
        let outcome = check_alert(alert, &changes, start);
        checker.check(expect.key("alerts").index(i), outcome);
    }
    for (i, metric) in case.expect.metrics.iter().enumerate() {
        let outcome = check_metric(metric, &received, start);
        checker.check(expect.key("metrics").index(i), outcome);
    }
    for (i, count) in case.expect.spans.iter().enumerate() {
        let outcome = check_count(count, &received, &exporters, "spans", |r| &r.spans);
        checker.check(expect.key("spans").index(i), outcome);
    }
    for (i, count) in case.expect.logs.iter().enumerate() {
        let outcome = check_count(count, &received, &exporters, "log records", |r| &r.logs);
        checker.check(expect.key("logs").index(i), outcome);
    }
    if checker.checked == 0 {
        checker.failures.push(Failure {
            line: lines.locate(at).map(|l| l.line),
            path: at.clone(),
            message: "the case expects nothing: give `expect` alerts, metrics, spans or logs"
                .into(),
        });
    }
    Ok(CaseResult {
        name: case.name.clone(),
        failures: checker.failures,
        inputs: items,
        expectations: checker.checked,
    })
}

fn labels_text(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn includes(labels: &Labels, wanted: &Labels) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Event time as an offset from the start, as a case writes it: `12m30s`.
fn offset(seconds: f64, start: f64) -> String {
    let total = seconds - start;
    let whole = total.round();
    if (total - whole).abs() > 1e-3 || whole < 0.0 {
        return format!("{}s", crate::otlp::value::number_text(total));
    }
    let whole = whole as u64;
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    let mut text = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            let _ = write!(text, "{n}{unit}");
        }
    }
    if text.is_empty() { "0s".into() } else { text }
}

fn check_alert(
    expected: &AlertExpectation,
    changes: &[AlertChange],
    start: f64,
) -> Result<(), String> {
    let at = start + expected.at.as_secs_f64();
    let firing = outputs::firing_at(changes, &expected.rule, at);
    let mut unmatched: Vec<&AlertChange> = firing.iter().collect();
    let mut missing = Vec::new();
    for want in &expected.firing {
        let found = unmatched.iter().position(|got| {
            want.severity
                .as_ref()
                .is_none_or(|s| s.eq_ignore_ascii_case(&got.severity))
                && includes(&got.labels, &want.labels)
        });
        match found {
            Some(i) => {
                unmatched.remove(i);
            }
            None => missing.push(format!(
                "{} {}",
                want.severity.as_deref().unwrap_or("any severity"),
                labels_text(&want.labels)
            )),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return Ok(());
    }
    let mut message = format!("at {} rule {}: ", offset(at, start), expected.rule);
    if !missing.is_empty() {
        let _ = write!(message, "expected firing {}; ", missing.join(", "));
    }
    if firing.is_empty() {
        message.push_str("nothing is firing");
    } else {
        let got: Vec<String> = firing
            .iter()
            .map(|c| format!("{} {}", c.severity, labels_text(&c.labels)))
            .collect();
        let _ = write!(message, "firing: {}", got.join(", "));
    }
    let history: Vec<String> = changes
        .iter()
        .filter(|c| c.rule == expected.rule)
        .take(6)
        .map(|c| {
            format!(
                "{} {} at {}",
                c.transition,
                c.severity,
                offset(c.emitted_at, start)
            )
        })
        .collect();
    if !history.is_empty() {
        let _ = write!(message, " (its events: {})", history.join(", "));
    }
    Err(message)
}

fn close(got: f64, want: f64, tolerance: Option<f64>) -> bool {
    let tolerance = tolerance.unwrap_or(1e-9 * want.abs().max(1e-12));
    (got - want).abs() <= tolerance || (got.is_nan() && want.is_nan())
}

fn check_metric(
    expected: &MetricExpectation,
    received: &[(String, Received)],
    start: f64,
) -> Result<(), String> {
    let until = expected
        .at
        .map(|at| ((start + at.as_secs_f64()) * 1e9) as u64 + 1_000)
        .unwrap_or(u64::MAX);
    let mut matched: Vec<(&str, &Point)> = Vec::new();
    let mut same_name: Vec<&Point> = Vec::new();
    for (exporter, got) in received {
        if expected.exporter.as_ref().is_some_and(|e| e != exporter) {
            continue;
        }
        for point in got.points.iter().filter(|p| p.name == expected.name) {
            if includes(&point.attributes, &expected.attributes) {
                if point.time_nanos <= until {
                    matched.push((exporter, point));
                }
            } else {
                same_name.push(point);
            }
        }
    }
    let whom = expected
        .exporter
        .as_ref()
        .map(|e| format!("exporter {e}"))
        .unwrap_or_else(|| "any exporter".into());
    let series = format!("{}{}", expected.name, labels_text(&expected.attributes));
    if expected.absent {
        return match matched.first() {
            None => Ok(()),
            Some((exporter, p)) => Err(format!(
                "expected no {series}, but {exporter} received {}{}",
                p.name,
                labels_text(&p.attributes)
            )),
        };
    }
    // Series can be several (a subset of labels): each one's last point.
    let mut last: std::collections::BTreeMap<(String, String), (&str, &Point)> =
        std::collections::BTreeMap::new();
    for (exporter, point) in matched {
        let key = (exporter.to_string(), labels_text(&point.attributes));
        match last.get(&key) {
            Some((_, p)) if p.time_nanos > point.time_nanos => {}
            _ => {
                last.insert(key, (exporter, point));
            }
        }
    }
    if last.is_empty() {
        let mut message = format!("{whom} received no {series}");
        if let Some(at) = expected.at {
            let _ = write!(message, " at or before {}s", at.as_secs_f64());
        }
        let others: Vec<String> = same_name
            .iter()
            .map(|p| labels_text(&p.attributes))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .take(5)
            .collect();
        if !others.is_empty() {
            let _ = write!(
                message,
                "; {} has series {}",
                expected.name,
                others.join(", ")
            );
        }
        return Err(message);
    }
    type Field = fn(&Point) -> Option<f64>;
    let fields: [(&str, Option<f64>, Field); 3] = [
        ("value", expected.value, |p: &Point| p.value),
        ("count", expected.count, |p: &Point| p.count),
        ("sum", expected.sum, |p: &Point| p.sum),
    ];
    let mut wrong = Vec::new();
    for (exporter, point) in last.values() {
        for (field, want, get) in &fields {
            let Some(want) = want else { continue };
            match get(point) {
                Some(got) if close(got, *want, expected.tolerance) => {}
                got => wrong.push(format!(
                    "{exporter} has {}{} {field} {} at {}",
                    point.name,
                    labels_text(&point.attributes),
                    got.map(crate::otlp::value::number_text)
                        .unwrap_or_else(|| "none".into()),
                    offset(point.time_nanos as f64 / 1e9, start)
                )),
            }
        }
    }
    if wrong.is_empty() {
        return Ok(());
    }
    let wanted: Vec<String> = fields
        .iter()
        .filter_map(|(field, want, _)| {
            want.map(|w| format!("{field} {}", crate::otlp::value::number_text(w)))
        })
        .collect();
    Err(format!(
        "expected {series} {}; {}",
        wanted.join(", "),
        wrong.join("; ")
    ))
}

fn check_count(
    expected: &CountExpectation,
    received: &[(String, Received)],
    exporters: &[String],
    what: &str,
    items: impl Fn(&Received) -> &Vec<outputs::Item>,
) -> Result<(), String> {
    let Some((_, got)) = received.iter().find(|(id, _)| *id == expected.exporter) else {
        return Err(format!(
            "no exporter {} in the config (it has {})",
            expected.exporter,
            exporters.join(", ")
        ));
    };
    let count = items(got)
        .iter()
        .filter(|item| {
            expected.name.as_ref().is_none_or(|n| *n == item.name)
                && includes(&item.attributes, &expected.attributes)
        })
        .count();
    let (holds, wanted) = match (expected.count, expected.at_least) {
        (Some(n), _) => (count == n, n.to_string()),
        (None, Some(n)) => (count >= n, format!("at least {n}")),
        (None, None) => return Err("give `count` or `at_least`".into()),
    };
    if holds {
        return Ok(());
    }
    let examples: Vec<String> = items(got)
        .iter()
        .take(3)
        .map(|item| format!("{:?} {}", item.name, labels_text(&item.attributes)))
        .collect();
    let examples = if examples.is_empty() {
        String::new()
    } else {
        format!("; such as {}", examples.join(", "))
    };
    Err(format!(
        "expected exporter {} to receive {wanted} {what}{}{}, it received {count} (of {} in all{examples})",
        expected.exporter,
        expected
            .name
            .as_ref()
            .map(|n| format!(" named {n:?}"))
            .unwrap_or_default(),
        if expected.attributes.is_empty() {
            String::new()
        } else {
            format!(" with {}", labels_text(&expected.attributes))
        },
        items(got).len()
    ))
}
