//! `anomaly` connector: metrics in; out, the same metrics plus their
//! anomaly scores (to metrics pipelines) and anomaly events (to logs
//! pipelines), one event when an incident starts and one when it ends:
//!
//! ```yaml
//! connectors:
//!   anomaly: { metrics: ["system.cpu.utilization"], threshold: 0.4 }
//! service:
//!   pipelines:
//!     metrics: { receivers: [hostmetrics], exporters: [anomaly] }
//!     metrics/scored: { receivers: [anomaly], exporters: [prometheus] }
//!     logs/anomalies: { receivers: [anomaly], exporters: [otlp] }
//! ```
//!
//! Each selected series (metric name, resource and point attributes) gets
//! its own detector (`stats::anomaly::detector`). Scores travel as two
//! gauges, `anomaly.score` (0..1) and `anomaly.zscore`, with the series'
//! attributes and `anomaly.metric` naming the scored metric, so the alert
//! connector can fire on them. Series are capped by `max_series` and
//! forgotten after `series_ttl` without data.
//!
//! With `correlation: { window: 2m, by: [host.name, service.name,
//! container.id] }`, incidents that start within `window` on the same
//! resource (the same values of the `by` labels) also make one correlated
//! incident (`stats::anomaly::correlation`), sent as an alert event
//! (`sidewatch.alert`, so the `alertmanager` exporter delivers it) that
//! names every series with its observed value, expected value and z: fired
//! by the first incident, `updated` by each one that joins, resolved when
//! the last member's incident ends.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;

use crate::alerting::anomaly_event::{AnomalyEvent, AnomalyState};
use crate::alerting::event::{AlertEvent, Event, Status, Transition};
use crate::alerting::matcher::Matcher;
use crate::alerting::rule::Severity;
use crate::otlp::time::unix_seconds as seconds;
use crate::otlp::value::key_value as kv;
use crate::processors::Processor;
use crate::signal::Batch;
use crate::stats::anomaly::correlation::{CorrelationChange, Correlator, Member};
use crate::stats::anomaly::detector::{
    Detector, DetectorConfig, Direction, IncidentChange, IncidentTracker, Method, Seasonality,
};

pub use crate::alerting::anomaly_event::EVENT_NAME;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineMethod {
    #[default]
    Ewma,
    Rolling,
    Robust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeasonalChoice {
    /// Daily and weekly, each series using the one that predicts it best.
    #[default]
    Auto,
    Daily,
    Weekly,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Metric names to score: whole-name regular expressions.
    pub metrics: Vec<String>,
    #[serde(default)]
    pub matchers: Vec<String>,
    #[serde(default)]
    pub method: BaselineMethod,
    /// EWMA weight of each new point.
    pub alpha: Option<f64>,
    /// EWMA half-life in points (instead of alpha).
    pub half_life: Option<f64>,
    /// Points in the rolling or robust window.
    pub window: Option<usize>,
    #[serde(default)]
    pub seasonal: SeasonalChoice,
    pub warmup_points: Option<usize>,
    pub min_deviation: Option<f64>,
    pub min_relative_deviation: Option<f64>,
    #[serde(default)]
    pub direction: Direction,
    pub threshold: Option<f64>,
    /// Points below the threshold before an incident ends.
    #[serde(default = "default_quiet")]
    pub quiet_points: usize,
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    #[serde(default = "default_ttl", with = "crate::config::duration")]
    pub series_ttl: Duration,
    /// Group incidents on one resource into correlated incidents.
    pub correlation: Option<CorrelationConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationConfig {
    /// Incidents starting within this long of the first one join it.
    #[serde(
        default = "default_correlation_window",
        with = "crate::config::duration"
    )]
    pub window: Duration,
    /// Labels naming the resource; a series with none of them is a
    /// resource of its own.
    #[serde(default = "default_correlation_by")]
    pub by: Vec<String>,
    /// `alertname` of the correlated incident's alert.
    #[serde(default = "default_correlation_name")]
    pub alert_name: String,
    #[serde(default = "default_correlation_severity")]
    pub severity: Severity,
}

fn default_correlation_window() -> Duration {
    Duration::from_secs(120)
}

fn default_correlation_by() -> Vec<String> {
    ["host.name", "service.name", "container.id"]
        .map(String::from)
        .to_vec()
}

fn default_correlation_name() -> String {
    "AnomalyIncident".into()
}

fn default_correlation_severity() -> Severity {
    Severity::Warning
}

fn default_quiet() -> usize {
    5
}

fn default_max_series() -> usize {
    10_000
}

fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// A validated `anomaly` config: the detector, the metric patterns and
/// the matchers, each compiled once.
#[derive(Debug, Clone)]
pub struct CompiledAnomaly {
    config: AnomalyConfig,
    detector: DetectorConfig,
    names: Vec<regex::Regex>,
    matchers: Vec<Matcher>,
}

impl AnomalyConfig {
    /// The validated form, or every problem as (field, message).
    pub fn compile(self) -> Result<CompiledAnomaly, Vec<(&'static str, String)>> {
        let detector = self.detector()?;
        // `detector` checked every pattern and matcher: none is dropped.
        let names = self
            .metrics
            .iter()
            .map(|p| regex::Regex::new(&format!("^(?:{p})$")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| vec![("metrics", crate::config::one_line(&e))])?;
        let matchers = self
            .matchers
            .iter()
            .map(|m| Matcher::parse(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| vec![("matchers", e)])?;
        Ok(CompiledAnomaly {
            config: self,
            detector,
            names,
            matchers,
        })
    }

    /// The detector configuration, or every problem as (field, message).
    fn detector(&self) -> Result<DetectorConfig, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let mut config = DetectorConfig::default();
        let alpha = match (self.alpha, self.half_life) {
            (Some(_), Some(_)) => {
                errors.push(("half_life", "give alpha or half_life, not both".to_string()));
                0.01
            }
            (Some(a), None) if a > 0.0 && a <= 1.0 => a,
            (Some(a), None) => {
                errors.push(("alpha", format!("alpha {a} is outside (0, 1]")));
                0.01
            }
            (None, Some(h)) if h > 0.0 => 1.0 - 0.5f64.powf(1.0 / h),
            (None, Some(h)) => {
                errors.push(("half_life", format!("half_life {h} must be above 0")));
                0.01
            }
            (None, None) => match config.method {
                Method::Ewma { alpha } => alpha,
                _ => 0.005,
            },
        };
        let window = self.window.unwrap_or(300);
        if self.window == Some(0) {
            errors.push(("window", "the window needs at least one point".to_string()));
        }
        config.method = match self.method {
            BaselineMethod::Ewma => Method::Ewma { alpha },
            BaselineMethod::Rolling => Method::RollingZ { window },
            BaselineMethod::Robust => Method::Robust { window },
        };
        config.seasonal = match self.seasonal {
            SeasonalChoice::Auto => vec![Seasonality::DAILY, Seasonality::WEEKLY],
            SeasonalChoice::Daily => vec![Seasonality::DAILY],
            SeasonalChoice::Weekly => vec![Seasonality::WEEKLY],
            SeasonalChoice::None => Vec::new(),
        };
        if let Some(w) = self.warmup_points {
            config.warmup_points = w;
        }
        if let Some(d) = self.min_deviation {
            config.min_deviation = d;
        }
        if let Some(d) = self.min_relative_deviation {
            config.min_relative_deviation = d;
        }
        config.direction = self.direction;
        if let Some(t) = self.threshold {
            if !(0.0..=1.0).contains(&t) {
                errors.push((
                    "threshold",
                    format!("threshold {t} is outside [0, 1]: scores are in [0, 1]"),
                ));
            }
            config.threshold = t;
        }
        for (i, pattern) in self.metrics.iter().enumerate() {
            if let Err(e) = regex::Regex::new(&format!("^(?:{pattern})$")) {
                errors.push((
                    "metrics",
                    format!(
                        "invalid regular expression in metrics[{i}] {pattern:?}: {}",
                        crate::config::one_line(&e)
                    ),
                ));
            }
        }
        if self.metrics.is_empty() {
            errors.push(("metrics", "name at least one metric to score".to_string()));
        }
        for text in &self.matchers {
            if let Err(e) = Matcher::parse(text) {
                errors.push(("matchers", e));
            }
        }
        if let Some(c) = &self.correlation {
            if c.window.is_zero() {
                errors.push((
                    "correlation",
                    "correlation.window must be longer than 0, like 2m".to_string(),
                ));
            }
            if c.by.is_empty() {
                errors.push((
                    "correlation",
                    "correlation.by is empty: name the resource labels, like [host.name]"
                        .to_string(),
                ));
            }
            if c.alert_name.trim().is_empty() {
                errors.push(("correlation", "correlation.alert_name is empty".to_string()));
            }
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

struct SeriesState {
    detector: Detector,
    incidents: IncidentTracker,
    labels: Vec<KeyValue>,
    /// The `by` labels of `correlation` this series has.
    resource: Vec<(String, String)>,
    last_seen: SystemTime,
}

/// Correlation at run time.
struct Correlation {
    config: CorrelationConfig,
    correlator: Correlator,
}

/// One scored point, for replay and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub metric: String,
    pub series: String,
    pub timestamp_seconds: f64,
    pub value: f64,
    pub score: f64,
    pub zscore: f64,
}

pub struct AnomalyConnector {
    /// Never scores: each new series starts as a clone of it, so all share
    /// one copy of the per-point parameters.
    template: Detector,
    names: Vec<regex::Regex>,
    matchers: Vec<Matcher>,
    quiet_points: usize,
    max_series: usize,
    series_ttl: Duration,
    series: HashMap<String, SeriesState>,
    pub overflowed_points: u64,
    last_expiry: Option<SystemTime>,
    baseline: String,
    correlation: Option<Correlation>,
    threshold: f64,
    stats: std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>,
}

impl crate::components::compiled::CompiledConnector for CompiledAnomaly {
    fn build(&self, _: &crate::components::compiled::ConnectorContext<'_>) -> Box<dyn Processor> {
        Box::new(AnomalyConnector::new(self.clone()))
    }
}

/// The registry's compile step for `anomaly`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledConnector>> {
    let config: AnomalyConfig = decoder.decode(value, path)?;
    match config.compile() {
        Ok(compiled) => Some(std::sync::Arc::new(compiled)),
        Err(errors) => {
            crate::components::compiled::report(errors, path, decoder);
            None
        }
    }
}

impl AnomalyConnector {
    pub fn new(compiled: CompiledAnomaly) -> Self {
        let CompiledAnomaly {
            config,
            detector,
            names,
            matchers,
        } = compiled;
        let baseline =
            format!("{:?}, seasonal {:?}", detector.method, config.seasonal).to_lowercase();
        AnomalyConnector {
            names,
            matchers,
            quiet_points: config.quiet_points,
            max_series: config.max_series,
            series_ttl: config.series_ttl,
            threshold: detector.threshold,
            template: Detector::new(detector),
            series: HashMap::new(),
            overflowed_points: 0,
            last_expiry: None,
            baseline,
            correlation: config.correlation.clone().map(|config| Correlation {
                correlator: Correlator::new(config.window.as_secs() as i64),
                config,
            }),
            stats: std::sync::Arc::new(crate::telemetry::cardinality::CardinalityStats::new(
                config.max_series,
            )),
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Scores every selected point of a metrics batch: the score metrics,
    /// the incident events, and the scored points themselves.
    pub fn score(
        &mut self,
        batch: &Batch,
        now: SystemTime,
    ) -> (Vec<Metric>, Vec<Event>, Vec<Scored>) {
        let Batch::Metrics(request) = batch else {
            return Default::default();
        };
        let (mut score_points, mut z_points, mut events, mut scored) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for resource in &request.resource_metrics {
            let resource_attributes = resource
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if !self.names.iter().any(|r| r.is_match(&metric.name)) {
                    continue;
                }
                let (points, monotonic) = match &metric.data {
                    Some(metric::Data::Gauge(g)) => (&g.data_points, false),
                    Some(metric::Data::Sum(s)) => (&s.data_points, s.is_monotonic),
                    _ => continue,
                };
                for point in points {
                    // A NaN or infinite value would poison the baseline.
                    let value = match crate::datamodel::points::number(point, monotonic) {
                        Ok(Some(value)) => value,
                        Ok(None) => continue,
                        Err(violation) => {
                            crate::telemetry::dropped::count(
                                crate::telemetry::dropped::Component::Anomaly,
                                violation,
                            );
                            continue;
                        }
                    };
                    let labels =
                        crate::otlp::series::labels(resource_attributes, &point.attributes);
                    if !self.matchers.iter().all(|m| m.matches(&labels)) {
                        continue;
                    }
                    let key = crate::otlp::series::identity(&metric.name, &labels);
                    if !self.series.contains_key(&key) {
                        if self.series.len() >= self.max_series {
                            self.overflowed_points += 1;
                            continue;
                        }
                        let mut series_labels = point.attributes.clone();
                        series_labels.extend(resource_attributes.iter().cloned());
                        series_labels.push(kv(
                            "anomaly.metric",
                            any_value::Value::StringValue(metric.name.clone()),
                        ));
                        let resource = match &self.correlation {
                            Some(c) => resource_of(&c.config.by, &labels, &key),
                            None => Vec::new(),
                        };
                        self.series.insert(
                            key.clone(),
                            SeriesState {
                                detector: self.template.clone(),
                                incidents: IncidentTracker::new(self.quiet_points),
                                labels: series_labels,
                                resource,
                                last_seen: now,
                            },
                        );
                    }
                    let state = self.series.get_mut(&key).expect("inserted above");
                    state.last_seen = now;
                    let time_nanos = if point.time_unix_nano > 0 {
                        point.time_unix_nano
                    } else {
                        (seconds(now) * 1e9) as u64
                    };
                    let timestamp = time_nanos as f64 / 1e9;
                    let observation = state.detector.observe(timestamp as i64, value);
                    let gauge = |v: f64| NumberDataPoint {
                        attributes: state.labels.clone(),
                        time_unix_nano: time_nanos,
                        value: Some(number_data_point::Value::AsDouble(v)),
                        ..Default::default()
                    };
                    score_points.push(gauge(observation.score));
                    z_points.push(gauge(if observation.zscore.is_finite() {
                        observation.zscore
                    } else {
                        0.0
                    }));
                    scored.push(Scored {
                        metric: metric.name.clone(),
                        series: key.clone(),
                        timestamp_seconds: timestamp,
                        value,
                        score: observation.score,
                        zscore: observation.zscore,
                    });
                    if let Some(c) = &mut self.correlation {
                        for closed in c.correlator.expire(timestamp as i64) {
                            events.push(Event::Alert(correlated_alert(
                                &c.config,
                                &closed,
                                self.threshold,
                                timestamp,
                            )));
                        }
                    }
                    if let Some(change) =
                        state
                            .incidents
                            .update(timestamp as i64, value, &observation)
                    {
                        events.push(Event::Anomaly(event(
                            &metric.name,
                            &state.labels,
                            &change,
                            &self.baseline,
                            time_nanos,
                        )));
                        if let Some(c) = &mut self.correlation {
                            let correlated = match &change {
                                IncidentChange::Started(incident) => Some(c.correlator.started(
                                    state.resource.clone(),
                                    Member {
                                        metric: metric.name.clone(),
                                        series: key.clone(),
                                        started_at: incident.started_at,
                                        value: incident.peak_value,
                                        expected: incident.expected,
                                        zscore: incident.zscore,
                                        score: incident.peak_score,
                                        ended_at: None,
                                    },
                                )),
                                IncidentChange::Ended(incident) => c.correlator.ended(
                                    &state.resource,
                                    &key,
                                    incident.ended_at.unwrap_or(timestamp as i64),
                                ),
                            };
                            if let Some(correlated) = correlated {
                                events.push(Event::Alert(correlated_alert(
                                    &c.config,
                                    &correlated,
                                    self.threshold,
                                    timestamp,
                                )));
                            }
                        }
                    }
                }
            }
        }
        let gauge_metric =
            |name: &str, description: &str, data_points: Vec<NumberDataPoint>| Metric {
                name: name.into(),
                unit: "1".into(),
                description: description.into(),
                data: Some(metric::Data::Gauge(Gauge { data_points })),
                ..Default::default()
            };
        let metrics = if score_points.is_empty() {
            Vec::new()
        } else {
            vec![
                gauge_metric(
                    "anomaly.score",
                    "How anomalous the point is for its series, 0 to 1.",
                    score_points,
                ),
                gauge_metric(
                    "anomaly.zscore",
                    "Deviation of the point from its series' baseline, in deviations.",
                    z_points,
                ),
            ]
        };
        (metrics, events, scored)
    }

    fn expire(&mut self, now: SystemTime) {
        let due = self
            .last_expiry
            .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= Duration::from_secs(60));
        if !due {
            return;
        }
        self.last_expiry = Some(now);
        let ttl = self.series_ttl;
        self.series
            .retain(|_, s| now.duration_since(s.last_seen).unwrap_or_default() < ttl);
    }
}

fn event(
    metric: &str,
    labels: &[KeyValue],
    change: &IncidentChange,
    baseline: &str,
    time_nanos: u64,
) -> AnomalyEvent {
    let (state, incident) = match change {
        IncidentChange::Started(i) => (AnomalyState::Started, i),
        IncidentChange::Ended(i) => (AnomalyState::Ended, i),
    };
    AnomalyEvent {
        metric: metric.into(),
        state,
        peak_value: incident.peak_value,
        expected: incident.expected,
        zscore: incident.zscore,
        peak_score: incident.peak_score,
        started_at: incident.started_at,
        ended_at: incident.ended_at,
        baseline: baseline.into(),
        labels: labels.to_vec(),
        time_unix_nano: time_nanos,
    }
}

/// The `by` labels a series has; with none, the series is its own resource.
fn resource_of(
    by: &[String],
    labels: &BTreeMap<String, String>,
    series: &str,
) -> Vec<(String, String)> {
    let resource: Vec<(String, String)> = by
        .iter()
        .filter_map(|k| Some((k.clone(), labels.get(k)?.clone())))
        .collect();
    if resource.is_empty() {
        vec![("anomaly.series".to_string(), series.to_string())]
    } else {
        resource
    }
}

/// A correlated incident as an alert event: labels name the resource (and
/// the incident's opening, so two on one resource stay two alerts);
/// annotations name every series, in the order they joined.
fn correlated_alert(
    config: &CorrelationConfig,
    change: &CorrelationChange,
    threshold: f64,
    now_seconds: f64,
) -> AlertEvent {
    let (transition, incident) = match change {
        CorrelationChange::Opened(i) => (Transition::Fired, i),
        CorrelationChange::Updated(i) => (Transition::Updated, i),
        CorrelationChange::Closed(i) => (Transition::Resolved, i),
    };
    let mut labels: BTreeMap<String, String> = incident.resource.iter().cloned().collect();
    labels.insert("alertname".into(), config.alert_name.clone());
    labels.insert("severity".into(), config.severity.as_str().into());
    labels.insert("anomaly.opened_at".into(), incident.opened_at.to_string());
    let mut annotations = BTreeMap::new();
    let resource_text = incident
        .resource
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut lines = Vec::new();
    for (n, m) in incident.members.iter().enumerate() {
        let line = format!(
            "{}: observed {}, expected {}, z {:.1}, score {:.2}",
            m.series,
            crate::alerting::template::format_number(m.value),
            crate::alerting::template::format_number(m.expected),
            m.zscore,
            m.score
        );
        annotations.insert(format!("series.{}", n + 1), line.clone());
        lines.push(line);
    }
    annotations.insert("series_count".into(), incident.members.len().to_string());
    annotations.insert(
        "summary".into(),
        format!(
            "{} anomalous series on {resource_text}: {}",
            incident.members.len(),
            lines.join("; ")
        ),
    );
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&config.alert_name, &mut hasher);
    std::hash::Hash::hash(&incident.resource, &mut hasher);
    std::hash::Hash::hash(&incident.opened_at, &mut hasher);
    let resolved = transition == Transition::Resolved;
    let peak = incident
        .members
        .iter()
        .map(|m| m.score)
        .fold(0.0f64, f64::max);
    AlertEvent {
        rule: config.alert_name.clone(),
        status: if resolved {
            Status::Resolved
        } else {
            Status::Firing
        },
        transition,
        severity: config.severity,
        labels,
        annotations,
        value: peak,
        firing_value: resolved.then_some(peak),
        threshold,
        starts_at: incident.opened_at as f64,
        ends_at: incident.closed_at.map(|t| t as f64),
        predicted_crossing_at: None,
        fingerprint: format!("{:016x}", std::hash::Hasher::finish(&hasher)),
        emitted_at: now_seconds,
    }
}

fn sidewatch_resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv(
            "service.name",
            any_value::Value::StringValue("sidewatch".into()),
        )],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "sidewatch/anomaly".into(),
        ..Default::default()
    })
}

impl Processor for AnomalyConnector {
    fn cardinality(
        &self,
    ) -> Option<std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>> {
        Some(self.stats.clone())
    }

    fn process(&mut self, batch: Batch, now: SystemTime, out: &mut Vec<Batch>) {
        let (metrics, events, _) = self.score(&batch, now);
        self.expire(now);
        self.stats
            .publish(self.series.len(), self.overflowed_points);
        out.push(batch);
        if !metrics.is_empty() {
            out.push(Batch::Metrics(
                ExportMetricsServiceRequest {
                    resource_metrics: vec![ResourceMetrics {
                        resource: sidewatch_resource(),
                        scope_metrics: vec![ScopeMetrics {
                            scope: scope(),
                            metrics,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                }
                .into(),
            ));
        }
        if !events.is_empty() {
            out.push(Batch::Events(events.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::anomaly::stationary_noise::Rng;

    fn point(host: &str, metric: &str, at: u64, value: f64) -> Batch {
        Batch::Metrics(
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![kv(
                            "host.name",
                            any_value::Value::StringValue(host.into()),
                        )],
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![Metric {
                            name: metric.into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint {
                                    time_unix_nano: at * 1_000_000_000,
                                    value: Some(number_data_point::Value::AsDouble(value)),
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .into(),
        )
    }

    #[test]
    fn correlated_incidents_open_update_and_close() {
        let config: AnomalyConfig = yaml_serde::from_str(
            "{ metrics: [cpu, memory], seasonal: none, correlation: { window: 2m } }",
        )
        .unwrap();
        let mut connector = AnomalyConnector::new(config.compile().unwrap());
        let mut rng = Rng::new(5);
        let mut alerts = Vec::new();
        for i in 0..400u64 {
            let noise = 100.0 + 2.0 * rng.gauss();
            let at = 1_700_000_000 + i * 10;
            let cpu = if i == 200 { 500.0 } else { noise };
            let memory = if (205..300).contains(&i) {
                noise + 60.0
            } else {
                noise
            };
            for (host, metric, value) in [
                ("a", "cpu", cpu),
                ("a", "memory", memory),
                ("b", "memory", memory),
            ] {
                let (_, events, _) =
                    connector.score(&point(host, metric, at, value), std::time::UNIX_EPOCH);
                alerts.extend(
                    events
                        .iter()
                        .filter_map(|e| match e {
                            Event::Alert(e) => Some(e),
                            Event::Anomaly(_) => None,
                        })
                        .map(|e| {
                            (
                                e.labels["host.name"].clone(),
                                e.transition,
                                e.annotations["series_count"].clone(),
                                i,
                            )
                        }),
                );
            }
        }
        let a = |t, n: &str, i| ("a".to_string(), t, n.to_string(), i);
        let b = |t, n: &str, i| ("b".to_string(), t, n.to_string(), i);
        // The CPU spike's incident ends (quiet points) at 205, before the
        // memory jump's starts, but within the window: one incident on a.
        // Each closes once every member has ended and the window passed.
        assert_eq!(
            alerts,
            vec![
                a(Transition::Fired, "1", 200),
                a(Transition::Updated, "2", 205),
                b(Transition::Fired, "1", 205),
                a(Transition::Resolved, "2", 213),
                b(Transition::Resolved, "1", 218),
            ],
        );
    }
}
