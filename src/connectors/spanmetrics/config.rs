//! The `spanmetrics` connector's config, in the Collector's shape and with
//! its defaults (connector/spanmetricsconnector/config.go).

use std::time::Duration;

use serde::Deserialize;

/// The dimensions every series has unless excluded.
pub const DEFAULT_DIMENSIONS: [&str; 4] = ["service.name", "span.name", "span.kind", "status.code"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanMetricsConfig {
    #[serde(default)]
    pub histogram: HistogramConfig,
    /// Extra dimensions, read from the span's attributes, then its
    /// resource's; a missing one takes `default`, or is left off.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// Default dimensions to leave off.
    #[serde(default)]
    pub exclude_dimensions: Vec<String>,
    /// A cache size in the Collector; accepted for compatibility (series
    /// are bounded by `aggregation_cardinality_limit` here).
    #[serde(default)]
    pub dimensions_cache_size: Option<usize>,
    /// Series kept at most, across resources; spans of further series
    /// count towards one series per resource marked
    /// `otel.metric.overflow=true`. 0: no limit (the Collector's default).
    #[serde(default)]
    pub aggregation_cardinality_limit: usize,
    /// Resources kept at most; beyond it the one seen least recently is
    /// dropped (its cumulative series then start again).
    #[serde(default = "default_resource_cache")]
    pub resource_metrics_cache_size: usize,
    /// Resource attributes that tell resources apart (all when empty).
    #[serde(default)]
    pub resource_metrics_key_attributes: Vec<String>,
    #[serde(default)]
    pub aggregation_temporality: Temporality,
    /// Prefix of the metric names, joined with a dot; `""` for none.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "default_flush", with = "crate::config::duration")]
    pub metrics_flush_interval: Duration,
    /// Series without a span for this long stop being sent; 0: never.
    #[serde(default, with = "crate::config::duration")]
    pub metrics_expiration: Duration,
    #[serde(default)]
    pub exemplars: ExemplarsConfig,
    #[serde(default)]
    pub events: EventsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub name: String,
    #[serde(default)]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Temporality {
    #[default]
    #[serde(rename = "AGGREGATION_TEMPORALITY_CUMULATIVE")]
    Cumulative,
    #[serde(rename = "AGGREGATION_TEMPORALITY_DELTA")]
    Delta,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum DurationUnit {
    #[default]
    #[serde(rename = "ms")]
    Milliseconds,
    #[serde(rename = "s")]
    Seconds,
}

impl DurationUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            DurationUnit::Milliseconds => "ms",
            DurationUnit::Seconds => "s",
        }
    }

    /// A duration in this unit: nanoseconds divided once, so whole
    /// milliseconds come out exact (3 ms is 3.0, not 3.0000000000000004).
    pub fn of(self, duration: Duration) -> f64 {
        let nanos = duration.as_nanos() as f64;
        match self {
            DurationUnit::Milliseconds => nanos / 1e6,
            DurationUnit::Seconds => nanos / 1e9,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramConfig {
    /// No duration histogram at all.
    #[serde(default)]
    pub disable: bool,
    #[serde(default)]
    pub unit: DurationUnit,
    /// `explicit:` with nothing under it selects it all the same.
    #[serde(default, deserialize_with = "present")]
    pub explicit: Option<ExplicitConfig>,
    #[serde(default, deserialize_with = "present")]
    pub exponential: Option<ExponentialConfig>,
}

/// A key written with an empty value (`exponential:`) is there, with its
/// defaults, as in the Collector.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(deserializer).map(|value| Some(value.unwrap_or_default()))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitConfig {
    #[serde(default, deserialize_with = "optional_durations")]
    pub buckets: Option<Vec<Duration>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialConfig {
    /// Buckets per range at most; the scale falls as needed to fit.
    #[serde(default = "default_max_size")]
    pub max_size: usize,
}

impl Default for ExponentialConfig {
    fn default() -> Self {
        ExponentialConfig {
            max_size: default_max_size(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    pub enabled: bool,
    /// Exemplars kept per histogram point and flush interval. The
    /// Collector's 0 means no limit; here it means the default, 5, so
    /// memory stays bounded.
    pub max_per_data_point: usize,
}

impl ExemplarsConfig {
    pub fn limit(&self) -> usize {
        if self.max_per_data_point == 0 {
            5
        } else {
            self.max_per_data_point
        }
    }
}

/// `{namespace}.events`: span events counted per series of the span's
/// dimensions plus these event dimensions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
}

fn optional_durations<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<Duration>>, D::Error> {
    crate::config::duration::list(deserializer).map(Some)
}

fn default_resource_cache() -> usize {
    1000
}

fn default_namespace() -> String {
    "traces.span.metrics".into()
}

fn default_flush() -> Duration {
    Duration::from_secs(60)
}

fn default_max_size() -> usize {
    160
}

/// The Collector's default buckets.
pub fn default_buckets() -> Vec<Duration> {
    [
        2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000,
    ]
    .map(Duration::from_millis)
    .to_vec()
}

impl SpanMetricsConfig {
    /// The explicit bucket bounds in the histogram's unit.
    pub fn bounds(&self) -> Vec<f64> {
        let buckets = self
            .histogram
            .explicit
            .as_ref()
            .and_then(|e| e.buckets.clone())
            .unwrap_or_else(default_buckets);
        buckets
            .into_iter()
            .map(|b| self.histogram.unit.of(b))
            .collect()
    }

    /// Problems as (path below the connector, message), for `validate`;
    /// `[i]` in a path is an index.
    pub fn validate(&self) -> Vec<(Vec<String>, String)> {
        let mut errors = Vec::new();
        let mut error = |field: &str, message: String| {
            let path = field
                .replace('[', ".[")
                .split('.')
                .map(str::to_string)
                .collect();
            errors.push((path, message))
        };
        if self.histogram.explicit.is_some() && self.histogram.exponential.is_some() {
            error(
                "histogram",
                "both `explicit` and `exponential` are set: expected one of them".into(),
            );
        }
        if let Some(buckets) = self
            .histogram
            .explicit
            .as_ref()
            .and_then(|e| e.buckets.as_ref())
            && buckets.windows(2).any(|w| w[0] >= w[1])
        {
            error(
                "histogram.explicit.buckets",
                "bucket bounds must increase, like [2ms, 10ms, 100ms, 1s]".into(),
            );
        }
        if self
            .histogram
            .exponential
            .as_ref()
            .is_some_and(|e| e.max_size < 2)
        {
            error(
                "histogram.exponential.max_size",
                "must be at least 2: expected a bucket count such as 160".into(),
            );
        }
        if self.metrics_flush_interval.is_zero() {
            error(
                "metrics_flush_interval",
                "must be more than 0: expected a duration such as 60s".into(),
            );
        }
        if self.resource_metrics_cache_size == 0 {
            error(
                "resource_metrics_cache_size",
                "must be at least 1: expected a count such as 1000".into(),
            );
        }
        for (i, name) in self.exclude_dimensions.iter().enumerate() {
            if !DEFAULT_DIMENSIONS.contains(&name.as_str()) {
                error(
                    &format!("exclude_dimensions[{i}]"),
                    format!(
                        "{name:?} is not a default dimension: expected one of {}",
                        DEFAULT_DIMENSIONS.join(", ")
                    ),
                );
            }
        }
        for (i, dimension) in self.dimensions.iter().enumerate() {
            if dimension.name.is_empty() {
                error(
                    &format!("dimensions[{i}].name"),
                    "is empty: expected an attribute name such as http.method".into(),
                );
            } else if DEFAULT_DIMENSIONS.contains(&dimension.name.as_str()) {
                error(
                    &format!("dimensions[{i}].name"),
                    format!(
                        "{:?} is a default dimension already: list only extra ones",
                        dimension.name
                    ),
                );
            }
        }
        if self.events.enabled && self.events.dimensions.is_empty() {
            error(
                "events.dimensions",
                "is empty: with `events.enabled`, list the span event attributes to count by, such as [{ name: exception.type }]".into(),
            );
        }
        for (i, dimension) in self.events.dimensions.iter().enumerate() {
            if dimension.name.is_empty() {
                error(
                    &format!("events.dimensions[{i}].name"),
                    "is empty: expected an event attribute name such as exception.type".into(),
                );
            }
        }
        errors
    }
}
