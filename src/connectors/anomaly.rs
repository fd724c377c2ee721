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
use crate::alerting::event::Event;
use crate::alerting::matcher::Matcher;
use crate::otlp::time::unix_seconds as seconds;
use crate::otlp::value::{any_value_text, key_value as kv};
use crate::processors::Processor;
use crate::signal::Batch;
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

impl AnomalyConfig {
    /// The detector configuration, or every problem as (field, message).
    pub fn detector(&self) -> Result<DetectorConfig, Vec<(&'static str, String)>> {
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
    last_seen: SystemTime,
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
    detector: DetectorConfig,
    names: Vec<regex::Regex>,
    matchers: Vec<Matcher>,
    quiet_points: usize,
    max_series: usize,
    series_ttl: Duration,
    series: HashMap<String, SeriesState>,
    pub overflowed_points: u64,
    last_expiry: Option<SystemTime>,
    baseline: String,
    stats: std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>,
}

impl AnomalyConnector {
    /// The config was validated when compiled.
    pub fn new(config: &AnomalyConfig) -> Self {
        let detector = config.detector().unwrap_or_default();
        let baseline =
            format!("{:?}, seasonal {:?}", detector.method, config.seasonal).to_lowercase();
        AnomalyConnector {
            names: config
                .metrics
                .iter()
                .filter_map(|p| regex::Regex::new(&format!("^(?:{p})$")).ok())
                .collect(),
            matchers: config
                .matchers
                .iter()
                .filter_map(|m| Matcher::parse(m).ok())
                .collect(),
            quiet_points: config.quiet_points,
            max_series: config.max_series,
            series_ttl: config.series_ttl,
            detector,
            series: HashMap::new(),
            overflowed_points: 0,
            last_expiry: None,
            baseline,
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
    ) -> (Vec<Metric>, Vec<AnomalyEvent>, Vec<Scored>) {
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
                    let mut labels: BTreeMap<String, String> = BTreeMap::new();
                    for attribute in resource_attributes.iter().chain(&point.attributes) {
                        labels.insert(
                            attribute.key.clone(),
                            attribute
                                .value
                                .as_ref()
                                .map(any_value_text)
                                .unwrap_or_default(),
                        );
                    }
                    if !self.matchers.iter().all(|m| m.matches(&labels)) {
                        continue;
                    }
                    let key = format!(
                        "{}{{{}}}",
                        metric.name,
                        labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v:?}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
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
                        self.series.insert(
                            key.clone(),
                            SeriesState {
                                detector: Detector::new(self.detector.clone()),
                                incidents: IncidentTracker::new(self.quiet_points),
                                labels: series_labels,
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
                    if let Some(change) =
                        state
                            .incidents
                            .update(timestamp as i64, value, &observation)
                    {
                        events.push(event(
                            &metric.name,
                            &state.labels,
                            &change,
                            &self.baseline,
                            time_nanos,
                        ));
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
            out.push(Batch::Events(
                events
                    .into_iter()
                    .map(Event::Anomaly)
                    .collect::<Vec<_>>()
                    .into(),
            ));
        }
    }
}
