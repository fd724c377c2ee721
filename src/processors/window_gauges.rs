//! The gauges that windowed components (`red`, `percentiles`) emit per
//! sliding window, in one place so both say the same thing the same way:
//!
//! - `window_label`: the `window` attribute (`1m`, `5m`, `90s`);
//! - `quantile_levels`: the quantiles to emit, each once, `1` (the
//!   maximum) last;
//! - `quantile_points`: one point per level from the window's sketch, or,
//!   for a window without observations, an explicit "no data" point per
//!   level;
//! - `no_recorded_value`: that point. OTLP's `NO_RECORDED_VALUE` flag is
//!   its Prometheus staleness marker: the series has no current value, so
//!   a consumer drops it at once instead of repeating the last one (the
//!   Collector's prometheus exporter deletes the series on it). The point
//!   has no value at all, so a consumer that ignores flags but skips
//!   value-less points (sidewatch's `anomaly` and `alert`) reads nothing
//!   rather than a made-up 0.

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{DataPointFlags, NumberDataPoint, number_data_point};

use crate::otlp::value::{number_text, string_kv};
use crate::stats::sketch::DDSketch;

/// The `window` attribute for a window length.
pub fn window_label(window: Duration) -> String {
    let s = window.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{}s", window.as_secs_f64())
    }
}

/// The quantiles to emit for the configured `percentiles`: ascending, each
/// once, and exactly one `1` (the maximum) at the end whatever the
/// configuration lists.
pub fn quantile_levels(percentiles: &[f64]) -> Vec<f64> {
    let mut levels: Vec<f64> = percentiles.iter().copied().filter(|q| *q < 1.0).collect();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    levels.push(1.0);
    levels
}

/// A gauge point holding `value`.
pub fn gauge_point(value: f64, attributes: Vec<KeyValue>, time_unix_nanos: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: time_unix_nanos,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

/// A point saying the series has no value now: flagged
/// `NO_RECORDED_VALUE`, without a value.
pub fn no_recorded_value(attributes: Vec<KeyValue>, time_unix_nanos: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: time_unix_nanos,
        value: None,
        flags: DataPointFlags::NoRecordedValueMask as u32,
        ..Default::default()
    }
}

/// Whether a point is flagged `NO_RECORDED_VALUE`.
pub fn has_no_recorded_value(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

/// One point per level (`quantile` attribute added to `attributes`) read
/// from `sketch`, `1` being its maximum; "no data" points when the sketch
/// is empty. Returned with their level, for callers that add exemplars.
pub fn quantile_points(
    sketch: &DDSketch,
    levels: &[f64],
    attributes: &[KeyValue],
    time_unix_nanos: u64,
) -> Vec<(f64, NumberDataPoint)> {
    levels
        .iter()
        .map(|&level| {
            let mut with_quantile = attributes.to_vec();
            with_quantile.push(string_kv("quantile", number_text(level)));
            let value = if level >= 1.0 {
                sketch.max()
            } else {
                sketch.quantile(level)
            };
            let point = match value {
                Some(value) => gauge_point(value, with_quantile, time_unix_nanos),
                None => no_recorded_value(with_quantile, time_unix_nanos),
            };
            (level, point)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantile_label(point: &NumberDataPoint) -> String {
        point
            .attributes
            .iter()
            .find(|a| a.key == "quantile")
            .and_then(|a| a.value.as_ref())
            .map(crate::otlp::value::any_value_text)
            .unwrap_or_default()
    }

    #[test]
    fn the_maximum_is_emitted_once_whatever_the_configured_order() {
        assert_eq!(quantile_levels(&[0.5, 0.9]), vec![0.5, 0.9, 1.0]);
        // `push(1.0)` then `dedup()` kept both ones here: dedup only
        // removes neighbours.
        assert_eq!(quantile_levels(&[1.0, 0.5, 0.9]), vec![0.5, 0.9, 1.0]);
        assert_eq!(
            quantile_levels(&[0.9, 1.0, 0.5, 0.9, 1.0]),
            vec![0.5, 0.9, 1.0]
        );
        assert_eq!(quantile_levels(&[]), vec![1.0]);
    }

    #[test]
    fn a_sketch_gives_one_point_per_level_and_an_empty_one_no_recorded_values() {
        let mut sketch = DDSketch::new(0.01).unwrap();
        for v in 1..=100 {
            sketch.add(f64::from(v));
        }
        let levels = quantile_levels(&[0.5, 1.0]);
        let points = quantile_points(&sketch, &levels, &[], 7);
        let labels: Vec<String> = points.iter().map(|(_, p)| quantile_label(p)).collect();
        assert_eq!(labels, ["0.5", "1"]);
        assert_eq!(
            points[1].1.value,
            Some(number_data_point::Value::AsDouble(100.0))
        );
        assert!(
            points
                .iter()
                .all(|(_, p)| p.flags == 0 && p.time_unix_nano == 7)
        );

        sketch.clear();
        let empty = quantile_points(&sketch, &levels, &[], 8);
        assert_eq!(empty.len(), 2, "the same series, now without data");
        for (_, point) in &empty {
            assert!(has_no_recorded_value(point.flags));
            assert_eq!(point.value, None);
        }
    }

    #[test]
    fn window_labels_use_the_largest_whole_unit() {
        assert_eq!(window_label(Duration::from_secs(60)), "1m");
        assert_eq!(window_label(Duration::from_secs(7200)), "2h");
        assert_eq!(window_label(Duration::from_secs(90)), "90s");
        assert_eq!(window_label(Duration::from_millis(2500)), "2.5s");
    }
}
