//! The duration histogram of one series: explicit buckets, or a base-2
//! exponential histogram that lowers its scale whenever its buckets would
//! exceed `max_size` (the OpenTelemetry SDK's algorithm: a bucket at scale
//! s - 1 is two adjacent buckets at scale s, index >> 1).

use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, exemplar,
};

/// The highest scale the data model allows; histograms start there.
const MAX_SCALE: i32 = 20;

#[derive(Debug, Clone)]
pub enum Counts {
    Explicit {
        /// One more count than bounds.
        counts: Vec<u64>,
    },
    Exponential {
        scale: i32,
        max_size: usize,
        zero_count: u64,
        offset: i32,
        counts: Vec<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct DurationHistogram {
    pub buckets: Counts,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub exemplars: Vec<Exemplar>,
}

/// The bucket index of `value` (> 0) at `scale`: bucket i holds
/// (2^(i / 2^scale), 2^((i + 1) / 2^scale)].
fn index(value: f64, scale: i32) -> i64 {
    (value.log2() * 2f64.powi(scale)).ceil() as i64 - 1
}

impl DurationHistogram {
    pub fn explicit(bounds: usize) -> Self {
        Self::with(Counts::Explicit {
            counts: vec![0; bounds + 1],
        })
    }

    pub fn exponential(max_size: usize) -> Self {
        Self::with(Counts::Exponential {
            scale: MAX_SCALE,
            max_size,
            zero_count: 0,
            offset: 0,
            counts: Vec::new(),
        })
    }

    fn with(buckets: Counts) -> Self {
        DurationHistogram {
            buckets,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            exemplars: Vec::new(),
        }
    }

    /// Records `value` (a duration, so never negative); `bounds` are the
    /// explicit bounds (unused for exponential).
    pub fn record(&mut self, value: f64, bounds: &[f64]) {
        let value = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        match &mut self.buckets {
            Counts::Explicit { counts } => {
                counts[bounds.partition_point(|b| *b < value)] += 1;
            }
            Counts::Exponential {
                scale,
                max_size,
                zero_count,
                offset,
                counts,
            } => {
                if value == 0.0 {
                    *zero_count += 1;
                    return;
                }
                let mut at = index(value, *scale);
                if counts.is_empty() {
                    *offset = at as i32;
                    counts.push(1);
                    return;
                }
                let low = at.min(i64::from(*offset));
                let high = at.max(i64::from(*offset) + counts.len() as i64 - 1);
                let mut change = 0;
                while (high >> change) - (low >> change) + 1 > *max_size as i64 {
                    change += 1;
                }
                if change > 0 {
                    let new_offset = i64::from(*offset) >> change;
                    let mut merged = vec![0u64; ((high >> change) - new_offset + 1) as usize];
                    for (i, c) in counts.iter().enumerate() {
                        let old = i64::from(*offset) + i as i64;
                        merged[((old >> change) - new_offset) as usize] += c;
                    }
                    *counts = merged;
                    *offset = new_offset as i32;
                    *scale -= change;
                    at >>= change;
                }
                let start = i64::from(*offset);
                if at < start {
                    let grow = (start - at) as usize;
                    counts.splice(0..0, std::iter::repeat_n(0, grow));
                    *offset = at as i32;
                } else if at >= start + counts.len() as i64 {
                    counts.resize((at - start + 1) as usize, 0);
                }
                counts[(at - i64::from(*offset)) as usize] += 1;
            }
        }
    }

    /// Keeps an exemplar of a span while fewer than `limit` are held.
    pub fn exemplar(
        &mut self,
        value: f64,
        time: u64,
        trace_id: &[u8],
        span_id: &[u8],
        limit: usize,
    ) {
        if self.exemplars.len() < limit {
            self.exemplars.push(Exemplar {
                time_unix_nano: time,
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                value: Some(exemplar::Value::AsDouble(value)),
                ..Default::default()
            });
        }
    }

    pub fn explicit_point(&self, bounds: &[f64]) -> HistogramDataPoint {
        let counts = match &self.buckets {
            Counts::Explicit { counts } => counts.clone(),
            Counts::Exponential { .. } => Vec::new(),
        };
        HistogramDataPoint {
            count: self.count,
            sum: Some(self.sum),
            bucket_counts: counts,
            explicit_bounds: bounds.to_vec(),
            exemplars: self.exemplars.clone(),
            min: (self.count > 0).then_some(self.min),
            max: (self.count > 0).then_some(self.max),
            ..Default::default()
        }
    }

    pub fn exponential_point(&self) -> ExponentialHistogramDataPoint {
        let (scale, zero_count, offset, counts) = match &self.buckets {
            Counts::Exponential {
                scale,
                zero_count,
                offset,
                counts,
                ..
            } => (*scale, *zero_count, *offset, counts.clone()),
            Counts::Explicit { .. } => (0, 0, 0, Vec::new()),
        };
        ExponentialHistogramDataPoint {
            count: self.count,
            sum: Some(self.sum),
            scale,
            zero_count,
            positive: Some(Buckets {
                offset,
                bucket_counts: counts,
            }),
            negative: Some(Buckets::default()),
            exemplars: self.exemplars.clone(),
            min: (self.count > 0).then_some(self.min),
            max: (self.count > 0).then_some(self.max),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_buckets_include_their_upper_bound() {
        let bounds = [2.0, 4.0, 10.0];
        let mut h = DurationHistogram::explicit(bounds.len());
        for v in [1.0, 2.0, 3.0, 10.0, 11.0] {
            h.record(v, &bounds);
        }
        let p = h.explicit_point(&bounds);
        assert_eq!(p.bucket_counts, [2, 1, 1, 1]);
        assert_eq!(
            (p.count, p.sum, p.min, p.max),
            (5, Some(27.0), Some(1.0), Some(11.0))
        );
    }

    #[test]
    fn exponential_lowers_its_scale_to_fit_max_size() {
        let mut h = DurationHistogram::exponential(4);
        for v in [1.5, 3.0, 6.0, 12.0, 24.0, 0.0] {
            h.record(v, &[]);
        }
        let p = h.exponential_point();
        let positive = p.positive.unwrap();
        assert!(positive.bucket_counts.len() <= 4, "{positive:?}");
        assert_eq!(positive.bucket_counts.iter().sum::<u64>(), 5);
        assert_eq!(p.zero_count, 1);
        // Every value lies in the bucket the point says it does.
        let base = 2f64.powf(2f64.powi(-p.scale));
        let mut expected = vec![0u64; positive.bucket_counts.len()];
        for v in [1.5f64, 3.0, 6.0, 12.0, 24.0] {
            let i = (v.log(base)).ceil() as i64 - 1 - i64::from(positive.offset);
            expected[i as usize] += 1;
        }
        assert_eq!(positive.bucket_counts, expected);
        assert!(p.scale < MAX_SCALE);
    }
}
