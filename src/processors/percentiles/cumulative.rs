//! Histogram points as bucket ranges, and the observations a cumulative
//! point adds to the previous point of its series.
//!
//! A cumulative point counts everything since its start time, so what is
//! new is the difference with the previous point. A reset (a new start
//! time, the count or any bucket going down once both points are in the
//! same buckets, a different explicit bucket layout) makes the point count
//! from zero instead: all of it is new. Exponential points are aligned
//! first (`exponential`), since an SDK may lower the scale between two.

use std::borrow::Cow;

use opentelemetry_proto::tonic::metrics::v1::{ExponentialHistogramDataPoint, HistogramDataPoint};

use super::exponential::Exponential;

/// An explicit-bucket histogram: bucket `i` holds (bounds[i-1], bounds[i]],
/// the first reaches down to `min` and the last up to `max` when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Explicit {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    min: Option<f64>,
    max: Option<f64>,
}

impl Explicit {
    pub fn from_point(point: &HistogramDataPoint) -> Self {
        Explicit {
            bounds: point.explicit_bounds.clone(),
            counts: point.bucket_counts.clone(),
            min: point.min,
            max: point.max,
        }
    }

    fn ranges(&self) -> Vec<(f64, f64, u64)> {
        let bounds = &self.bounds;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, count)| {
                let low = match i {
                    0 => self
                        .min
                        .unwrap_or(0.0)
                        .min(bounds.first().copied().unwrap_or(0.0)),
                    // More counts than bounds + 1: the extra ones are
                    // beyond the last bound too.
                    _ => bounds.get(i - 1).or(bounds.last()).copied().unwrap_or(0.0),
                };
                let high = bounds
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| self.max.unwrap_or(low).max(low));
                (low, high, *count)
            })
            .collect()
    }

    fn minus(&self, earlier: &Explicit) -> Option<Explicit> {
        if self.bounds != earlier.bounds || self.counts.len() != earlier.counts.len() {
            return None;
        }
        let counts = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(now, before)| now.checked_sub(*before))
            .collect::<Option<_>>()?;
        Some(Explicit {
            counts,
            ..self.clone()
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Histogram {
    Explicit(Explicit),
    Exponential(Exponential),
}

impl Histogram {
    /// Every bucket's observations as (low, high, count).
    pub fn ranges(&self) -> Vec<(f64, f64, u64)> {
        match self {
            Histogram::Explicit(h) => h.ranges(),
            Histogram::Exponential(h) => h.ranges(),
        }
    }

    fn minus(&self, earlier: &Histogram) -> Option<Histogram> {
        match (self, earlier) {
            (Histogram::Explicit(a), Histogram::Explicit(b)) => a.minus(b).map(Histogram::Explicit),
            (Histogram::Exponential(a), Histogram::Exponential(b)) => {
                a.minus(b).map(Histogram::Exponential)
            }
            _ => None,
        }
    }
}

/// One histogram point of a series: its start time, count and buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    start_unix_nanos: u64,
    count: u64,
    pub histogram: Histogram,
}

impl Point {
    pub fn explicit(point: &HistogramDataPoint) -> Self {
        Point {
            start_unix_nanos: point.start_time_unix_nano,
            count: point.count,
            histogram: Histogram::Explicit(Explicit::from_point(point)),
        }
    }

    pub fn exponential(point: &ExponentialHistogramDataPoint) -> Self {
        Point {
            start_unix_nanos: point.start_time_unix_nano,
            count: point.count,
            histogram: Histogram::Exponential(Exponential::from_point(point)),
        }
    }

    /// The observations this cumulative point adds to `previous`, the
    /// series' point before it: all of them without one or after a reset.
    pub fn since(&self, previous: Option<&Point>) -> Cow<'_, Histogram> {
        let Some(previous) = previous else {
            return Cow::Borrowed(&self.histogram);
        };
        let restarted = self.start_unix_nanos != previous.start_unix_nanos
            && self.start_unix_nanos != 0
            && previous.start_unix_nanos != 0;
        if restarted || self.count < previous.count {
            return Cow::Borrowed(&self.histogram);
        }
        match self.histogram.minus(&previous.histogram) {
            Some(delta) => Cow::Owned(delta),
            None => Cow::Borrowed(&self.histogram),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit(start: u64, counts: &[u64]) -> Point {
        Point::explicit(&HistogramDataPoint {
            start_time_unix_nano: start,
            count: counts.iter().sum(),
            bucket_counts: counts.to_vec(),
            explicit_bounds: vec![1.0, 2.0],
            min: Some(0.5),
            max: Some(3.0),
            ..Default::default()
        })
    }

    fn counts(h: &Histogram) -> Vec<u64> {
        h.ranges().iter().map(|(_, _, c)| *c).collect()
    }

    #[test]
    fn a_cumulative_point_adds_its_difference_with_the_previous_one() {
        let first = explicit(7, &[1, 2, 3]);
        assert_eq!(counts(&first.since(None)), vec![1, 2, 3], "all new");
        let second = explicit(7, &[1, 5, 4]);
        assert_eq!(counts(&second.since(Some(&first))), vec![0, 3, 1]);
    }

    #[test]
    fn a_new_start_time_a_lower_bucket_or_a_new_layout_counts_from_zero() {
        let first = explicit(7, &[1, 2, 3]);
        let restarted = explicit(8, &[2, 2, 3]);
        assert_eq!(counts(&restarted.since(Some(&first))), vec![2, 2, 3]);
        let lower = explicit(7, &[0, 4, 3]);
        assert_eq!(counts(&lower.since(Some(&first))), vec![0, 4, 3]);
        let mut other_layout = explicit(7, &[1, 2, 3, 4]);
        if let Histogram::Explicit(h) = &mut other_layout.histogram {
            h.bounds = vec![1.0, 2.0, 4.0];
        }
        assert_eq!(counts(&other_layout.since(Some(&first))), vec![1, 2, 3, 4]);
    }

    #[test]
    fn explicit_ranges_reach_to_min_and_max_and_never_index_past_the_bounds() {
        let point = explicit(0, &[1, 2, 3]);
        assert_eq!(
            point.histogram.ranges(),
            vec![(0.5, 1.0, 1), (1.0, 2.0, 2), (2.0, 3.0, 3)]
        );
        // Five counts for two bounds: the extra ones sit past the last bound.
        let odd = Point::explicit(&HistogramDataPoint {
            bucket_counts: vec![1, 1, 1, 1, 1],
            explicit_bounds: vec![1.0, 2.0],
            ..Default::default()
        });
        assert_eq!(odd.histogram.ranges().len(), 5);
    }
}
