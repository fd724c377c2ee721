//! Small helpers to build OTLP gauges and sums with attributes.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum, number_data_point,
};

pub fn string_attribute(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn int_attribute(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Double(f64),
}

impl From<u64> for Number {
    fn from(v: u64) -> Self {
        Number::Int(v.min(i64::MAX as u64) as i64)
    }
}

impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number::Double(v)
    }
}

/// Collects metrics for one scrape; every point carries the same times.
pub struct MetricsBuilder {
    pub metrics: Vec<Metric>,
    now_unix_nanos: u64,
    /// Start of cumulative sums: boot time for kernel counters.
    start_unix_nanos: u64,
}

impl MetricsBuilder {
    pub fn new(now_unix_nanos: u64, start_unix_nanos: u64) -> Self {
        MetricsBuilder {
            metrics: Vec::new(),
            now_unix_nanos,
            start_unix_nanos,
        }
    }

    fn points(
        &self,
        points: Vec<(Number, Vec<KeyValue>)>,
        cumulative: bool,
    ) -> Vec<NumberDataPoint> {
        points
            .into_iter()
            .map(|(value, attributes)| NumberDataPoint {
                attributes,
                start_time_unix_nano: if cumulative { self.start_unix_nanos } else { 0 },
                time_unix_nano: self.now_unix_nanos,
                value: Some(match value {
                    Number::Int(v) => number_data_point::Value::AsInt(v),
                    Number::Double(v) => number_data_point::Value::AsDouble(v),
                }),
                ..Default::default()
            })
            .collect()
    }

    pub fn gauge(
        &mut self,
        name: &str,
        unit: &str,
        description: &str,
        points: Vec<(Number, Vec<KeyValue>)>,
    ) {
        if points.is_empty() {
            return;
        }
        let data_points = self.points(points, false);
        self.metrics.push(Metric {
            name: name.into(),
            unit: unit.into(),
            description: description.into(),
            data: Some(Data::Gauge(Gauge { data_points })),
            ..Default::default()
        });
    }

    /// A cumulative sum: monotonic for counters, not for up-down levels.
    pub fn sum(
        &mut self,
        name: &str,
        unit: &str,
        description: &str,
        monotonic: bool,
        points: Vec<(Number, Vec<KeyValue>)>,
    ) {
        if points.is_empty() {
            return;
        }
        let data_points = self.points(points, true);
        self.metrics.push(Metric {
            name: name.into(),
            unit: unit.into(),
            description: description.into(),
            data: Some(Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: monotonic,
            })),
            ..Default::default()
        });
    }
}
