//! The connector's emissions at chosen times: what an empty window says,
//! and which quantiles a window emits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};

use super::{RedConfig, RedConnector};
use crate::otlp::value::any_value_text;
use crate::processors::window_gauges::has_no_recorded_value;
use crate::signal::Batch;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(T0 + seconds * S)
}

/// Server spans of 10 ms .. `count` x 10 ms ending at T0.
fn spans(count: u64) -> Batch {
    Batch::Traces(
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (1..=count)
                        .map(|i| Span {
                            name: "GET /".into(),
                            kind: SpanKind::Server as i32,
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            start_time_unix_nano: T0 - i * S / 100,
                            end_time_unix_nano: T0,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .into(),
    )
}

fn connector(yaml: &str) -> RedConnector {
    RedConnector::new(
        yaml_serde::from_str::<RedConfig>(yaml)
            .unwrap()
            .compile()
            .unwrap(),
    )
}

/// The points of metric `name` whose `window` is `window`.
fn points(red: &RedConnector, now: SystemTime, name: &str, window: &str) -> Vec<NumberDataPoint> {
    red.metrics(now)
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
        .filter_map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => Some(g.data_points.clone()),
            _ => None,
        })
        .flatten()
        .filter(|p| label(p, "window") == window)
        .collect()
}

fn label(point: &NumberDataPoint, key: &str) -> String {
    point
        .attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .map(any_value_text)
        .unwrap_or_default()
}

fn value(point: &NumberDataPoint) -> Option<f64> {
    match point.value {
        Some(number_data_point::Value::AsDouble(v)) => Some(v),
        _ => None,
    }
}

#[test]
fn an_empty_window_has_zero_rates_and_no_recorded_ratio_and_quantiles() {
    let mut red = connector("{ windows: [1m, 5m], percentiles: [0.5, 0.99] }");
    red.record(&spans(10), at(0));

    // 70 s on, the 1m window holds nothing; the 5m window still has all.
    let now = at(70);
    let rate = points(&red, now, "red.request.rate", "1m");
    assert_eq!(rate.len(), 1);
    assert_eq!(value(&rate[0]), Some(0.0), "no requests: a rate of 0");
    assert_eq!(
        value(&points(&red, now, "red.error.rate", "1m")[0]),
        Some(0.0)
    );
    let ratio = points(&red, now, "red.error.ratio", "1m");
    assert_eq!(ratio.len(), 1, "the ratio series is ended, not left out");
    assert!(has_no_recorded_value(ratio[0].flags) && ratio[0].value.is_none());
    let quantiles = points(&red, now, "red.duration.quantile", "1m");
    assert_eq!(quantiles.len(), 3, "p50, p99 and max, each ended");
    for point in &quantiles {
        assert!(has_no_recorded_value(point.flags), "{point:?}");
        assert_eq!(point.value, None);
        assert!(point.exemplars.is_empty());
    }

    let five = points(&red, now, "red.duration.quantile", "5m");
    assert_eq!(five.len(), 3);
    assert!(five.iter().all(|p| p.flags == 0));
    let max = five.iter().find(|p| label(p, "quantile") == "1").unwrap();
    assert_eq!(value(max), Some(0.1));
    assert_eq!(max.exemplars.len(), 1, "the slowest span's trace");
    assert_eq!(
        value(&points(&red, now, "red.error.ratio", "5m")[0]),
        Some(0.0)
    );
}

#[test]
fn the_maximum_is_emitted_once_even_when_percentiles_list_it_first() {
    let mut red = connector("{ windows: [1m], percentiles: [1, 0.5, 0.9] }");
    red.record(&spans(10), at(0));
    let mut levels: Vec<String> = points(&red, at(1), "red.duration.quantile", "1m")
        .iter()
        .map(|p| label(p, "quantile"))
        .collect();
    levels.sort();
    assert_eq!(levels, ["0.5", "0.9", "1"]);
}
