//! Data-point checks: each returns the first rule a point breaks. Callers
//! leave a failing point out of what they compute and count it
//! (`telemetry::dropped::count`).
//!
//! The rules are the OTLP metrics data model's: an explicit histogram has
//! one more bucket than bounds, bounds increase, `count` is the sum of the
//! buckets, an exponential scale lies in [-10, 20], values are finite.
//! Points flagged `NO_RECORDED_VALUE` carry no data and are skipped, not
//! counted as violations.

use opentelemetry_proto::tonic::metrics::v1::{
    DataPointFlags, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
    SummaryDataPoint, exponential_histogram_data_point::Buckets, number_data_point,
};

use super::Violation;

/// Whether `flags` mark a point as carrying no recorded value.
pub fn no_recorded_value(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

/// The value of a number point: `Ok(None)` when it is flagged as having
/// none; `monotonic` for the points of a monotonic sum.
pub fn number(point: &NumberDataPoint, monotonic: bool) -> Result<Option<f64>, Violation> {
    if no_recorded_value(point.flags) {
        return Ok(None);
    }
    let value = match point.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => return Err(Violation::MissingValue),
    };
    if !value.is_finite() {
        return Err(Violation::NonFiniteValue);
    }
    if monotonic && value < 0.0 {
        return Err(Violation::NegativeMonotonicSum);
    }
    Ok(Some(value))
}

fn finite(value: Option<f64>) -> Result<(), Violation> {
    match value {
        Some(v) if !v.is_finite() => Err(Violation::NonFiniteValue),
        _ => Ok(()),
    }
}

fn min_max(min: Option<f64>, max: Option<f64>) -> Result<(), Violation> {
    finite(min)?;
    finite(max)?;
    match (min, max) {
        (Some(min), Some(max)) if min > max => Err(Violation::MinAboveMax),
        _ => Ok(()),
    }
}

/// The sum of `counts`, or `None` if it overflows a u64 (then it cannot
/// equal any `count` either).
fn total(counts: &[u64]) -> Option<u64> {
    counts.iter().try_fold(0u64, |sum, c| sum.checked_add(*c))
}

pub fn histogram(point: &HistogramDataPoint) -> Result<(), Violation> {
    if no_recorded_value(point.flags) {
        return Ok(());
    }
    let bounds = &point.explicit_bounds;
    // No buckets at all is allowed: a point with only count and sum.
    if !point.bucket_counts.is_empty() && point.bucket_counts.len() != bounds.len() + 1 {
        return Err(Violation::BucketCountsMismatch);
    }
    if bounds.iter().any(|b| b.is_nan()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Violation::InvalidBounds);
    }
    if !point.bucket_counts.is_empty() && total(&point.bucket_counts) != Some(point.count) {
        return Err(Violation::CountMismatch);
    }
    finite(point.sum)?;
    min_max(point.min, point.max)
}

pub fn exponential(point: &ExponentialHistogramDataPoint) -> Result<(), Violation> {
    if no_recorded_value(point.flags) {
        return Ok(());
    }
    if !(-10..=20).contains(&point.scale) {
        return Err(Violation::InvalidScale);
    }
    if !(point.zero_threshold >= 0.0 && point.zero_threshold.is_finite()) {
        return Err(Violation::InvalidZeroThreshold);
    }
    let side = |b: &Option<Buckets>| b.as_ref().map_or(Some(0), |b| total(&b.bucket_counts));
    let sum = side(&point.positive)
        .zip(side(&point.negative))
        .and_then(|(p, n)| p.checked_add(n))
        .and_then(|s| s.checked_add(point.zero_count));
    if sum != Some(point.count) {
        return Err(Violation::CountMismatch);
    }
    finite(point.sum)?;
    min_max(point.min, point.max)
}

pub fn summary(point: &SummaryDataPoint) -> Result<(), Violation> {
    if no_recorded_value(point.flags) {
        return Ok(());
    }
    if !point.sum.is_finite() {
        return Err(Violation::NonFiniteValue);
    }
    for q in &point.quantile_values {
        if !(0.0..=1.0).contains(&q.quantile) {
            return Err(Violation::InvalidQuantile);
        }
        if !q.value.is_finite() {
            return Err(Violation::NonFiniteValue);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit(counts: &[u64], bounds: &[f64]) -> HistogramDataPoint {
        HistogramDataPoint {
            count: counts.iter().sum(),
            bucket_counts: counts.to_vec(),
            explicit_bounds: bounds.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn explicit_histograms_need_one_bucket_more_than_bounds_and_counts_that_add_up() {
        assert_eq!(histogram(&explicit(&[1, 2, 3], &[1.0, 2.0])), Ok(()));
        assert_eq!(histogram(&explicit(&[], &[])), Ok(()), "count and sum only");
        assert_eq!(
            histogram(&explicit(&[1, 1, 1, 1, 1], &[1.0, 2.0])),
            Err(Violation::BucketCountsMismatch)
        );
        assert_eq!(
            histogram(&explicit(&[1, 1, 1], &[2.0, 1.0])),
            Err(Violation::InvalidBounds)
        );
        assert_eq!(
            histogram(&explicit(&[1, 1], &[f64::NAN])),
            Err(Violation::InvalidBounds)
        );
        let mut wrong_count = explicit(&[1, 2, 3], &[1.0, 2.0]);
        wrong_count.count = 7;
        assert_eq!(histogram(&wrong_count), Err(Violation::CountMismatch));
        let overflow = HistogramDataPoint {
            bucket_counts: vec![u64::MAX, 1],
            explicit_bounds: vec![1.0],
            ..Default::default()
        };
        assert_eq!(histogram(&overflow), Err(Violation::CountMismatch));
        let mut nan_sum = explicit(&[1, 2, 3], &[1.0, 2.0]);
        nan_sum.sum = Some(f64::NAN);
        assert_eq!(histogram(&nan_sum), Err(Violation::NonFiniteValue));
        let mut inverted = explicit(&[1, 2, 3], &[1.0, 2.0]);
        (inverted.min, inverted.max) = (Some(3.0), Some(1.0));
        assert_eq!(histogram(&inverted), Err(Violation::MinAboveMax));
        let mut empty = explicit(&[9, 9], &[]);
        empty.flags = DataPointFlags::NoRecordedValueMask as u32;
        assert_eq!(histogram(&empty), Ok(()), "flagged points carry no data");
    }

    #[test]
    fn exponential_histograms_need_a_valid_scale_threshold_and_count() {
        let point = |scale, count| ExponentialHistogramDataPoint {
            scale,
            count,
            zero_count: 1,
            positive: Some(Buckets {
                offset: -3,
                bucket_counts: vec![1, 2],
            }),
            ..Default::default()
        };
        assert_eq!(exponential(&point(3, 4)), Ok(()));
        assert_eq!(exponential(&point(21, 4)), Err(Violation::InvalidScale));
        assert_eq!(exponential(&point(-11, 4)), Err(Violation::InvalidScale));
        assert_eq!(exponential(&point(3, 5)), Err(Violation::CountMismatch));
        let mut negative_zero = point(3, 4);
        negative_zero.zero_threshold = -1.0;
        assert_eq!(
            exponential(&negative_zero),
            Err(Violation::InvalidZeroThreshold)
        );
    }

    #[test]
    fn number_values_are_finite_and_monotonic_sums_not_negative() {
        let point = |v: f64| NumberDataPoint {
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        assert_eq!(number(&point(1.5), false), Ok(Some(1.5)));
        assert_eq!(
            number(&point(f64::NAN), false),
            Err(Violation::NonFiniteValue)
        );
        assert_eq!(
            number(&point(f64::NEG_INFINITY), false),
            Err(Violation::NonFiniteValue)
        );
        assert_eq!(number(&point(-1.0), false), Ok(Some(-1.0)));
        assert_eq!(
            number(&point(-1.0), true),
            Err(Violation::NegativeMonotonicSum)
        );
        assert_eq!(
            number(&NumberDataPoint::default(), false),
            Err(Violation::MissingValue)
        );
        let flagged = NumberDataPoint {
            flags: DataPointFlags::NoRecordedValueMask as u32,
            ..Default::default()
        };
        assert_eq!(number(&flagged, false), Ok(None));
    }
}
