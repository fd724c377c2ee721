//! The store's handling of `NO_RECORDED_VALUE`: the flagged series goes at
//! once, whatever its type, and nothing else does.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, ExponentialHistogram, ExponentialHistogramDataPoint,
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, Summary, SummaryDataPoint, metric::Data, number_data_point,
};

use super::MetricStore;

const NO_VALUE: u32 = DataPointFlags::NoRecordedValueMask as u32;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn window(w: &str) -> Vec<KeyValue> {
    vec![kv("window", w)]
}

fn number(w: &str, value: f64, flags: u32) -> NumberDataPoint {
    NumberDataPoint {
        attributes: window(w),
        value: (flags == 0).then_some(number_data_point::Value::AsDouble(value)),
        flags,
        ..Default::default()
    }
}

/// One metric of each type, each with a point for windows `1m` and `5m`;
/// the `1m` points carry `flags`.
fn every_type(flags: u32) -> Vec<ResourceMetrics> {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = vec![
        Metric {
            name: "ratio".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![number("1m", 0.5, flags), number("5m", 0.5, 0)],
            })),
            ..Default::default()
        },
        Metric {
            name: "requests".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![number("1m", 3.0, flags), number("5m", 3.0, 0)],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "latency".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: ["1m", "5m"]
                    .into_iter()
                    .map(|w| HistogramDataPoint {
                        attributes: window(w),
                        count: 1,
                        bucket_counts: vec![1, 0],
                        explicit_bounds: vec![1.0],
                        flags: if w == "1m" { flags } else { 0 },
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: cumulative,
            })),
            ..Default::default()
        },
        Metric {
            name: "latency.exponential".into(),
            data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                data_points: ["1m", "5m"]
                    .into_iter()
                    .map(|w| ExponentialHistogramDataPoint {
                        attributes: window(w),
                        count: 1,
                        zero_count: 1,
                        flags: if w == "1m" { flags } else { 0 },
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: cumulative,
            })),
            ..Default::default()
        },
        Metric {
            name: "latency.summary".into(),
            data: Some(Data::Summary(Summary {
                data_points: ["1m", "5m"]
                    .into_iter()
                    .map(|w| SummaryDataPoint {
                        attributes: window(w),
                        count: 1,
                        sum: 1.0,
                        flags: if w == "1m" { flags } else { 0 },
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        },
    ];
    vec![ResourceMetrics {
        scope_metrics: vec![ScopeMetrics {
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }]
}

/// (family, window) of every series held.
fn held(store: &MetricStore) -> Vec<(String, String)> {
    store
        .families
        .iter()
        .flat_map(|(name, family)| {
            family.series.keys().map(move |labels| {
                let window = labels
                    .iter()
                    .find(|(k, _)| k == "window")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (name.clone(), window)
            })
        })
        .collect()
}

#[test]
fn a_no_recorded_value_point_drops_its_series_at_once_for_every_type() {
    let mut store = MetricStore::new(300_000_000_000, 1000);
    store.ingest(&every_type(0), 1);
    assert_eq!(store.series_count(), 10);

    store.ingest(&every_type(NO_VALUE), 2);
    let left = held(&store);
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(
        left.iter().all(|(_, w)| w == "5m"),
        "only 1m went: {left:?}"
    );
    assert_eq!(store.series_count(), 5);
    assert_eq!(store.families.len(), 5, "each family keeps its 5m series");

    // Flagged points of series the store does not hold create nothing,
    // and a value afterwards starts the series afresh.
    store.ingest(&every_type(NO_VALUE), 3);
    assert_eq!(store.series_count(), 5);
    store.ingest(&every_type(0), 4);
    assert_eq!(store.series_count(), 10);
}

#[test]
fn a_family_whose_last_series_ends_disappears() {
    let mut store = MetricStore::new(300_000_000_000, 1000);
    let gauge = |flags| {
        vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "ratio".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![number("1m", 0.25, flags)],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }]
    };
    store.ingest(&gauge(0), 1);
    assert!(store.families.contains_key("ratio"));
    store.ingest(&gauge(NO_VALUE), 2);
    assert!(store.families.is_empty());
    assert_eq!(store.series_count(), 0);
}
