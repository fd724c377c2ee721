//! Exponential-histogram buckets as OTLP defines them, and what it takes
//! to subtract two cumulative points of one series.
//!
//! At scale `s` the base is 2^(2^-s); positive bucket `i` holds values in
//! (base^i, base^(i+1)], negative bucket `i` the mirror image, and the zero
//! bucket every value within `zero_threshold` of zero. An SDK lowers the
//! scale of a cumulative histogram when its range outgrows its bucket
//! budget, and may widen the zero bucket, so two points of one series can
//! use different buckets. To subtract them, both are first brought to the
//! coarser scale (bucket `i` becomes `i >> k`, an arithmetic shift, so
//! floor division for negative indices too: two neighbours merge per step)
//! and the wider zero threshold (buckets reaching below it join the zero
//! bucket). Indices are `i64` and shifts are clamped, so no input, however
//! odd its scale or offset, overflows.

use std::borrow::Cow;

use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, exponential_histogram_data_point,
};

/// The buckets of one sign: `counts[j]` is bucket `offset + j`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    offset: i64,
    counts: Vec<u64>,
}

impl Side {
    pub fn new(offset: i64, counts: Vec<u64>) -> Self {
        Side { offset, counts }
    }

    fn from_proto(buckets: Option<&exponential_histogram_data_point::Buckets>) -> Self {
        buckets
            .map(|b| Side::new(i64::from(b.offset), b.bucket_counts.clone()))
            .unwrap_or_default()
    }

    /// (index, count) of every bucket.
    pub fn buckets(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        (self.offset..).zip(self.counts.iter().copied())
    }

    fn get(&self, index: i64) -> u64 {
        index
            .checked_sub(self.offset)
            .and_then(|j| usize::try_from(j).ok())
            .and_then(|j| self.counts.get(j))
            .copied()
            .unwrap_or(0)
    }

    /// The same observations in buckets `2^by` times wider.
    fn downscale(&mut self, by: u32) {
        if by == 0 || self.counts.is_empty() {
            return;
        }
        // Shifting an i64 by 63 already maps every index to 0 or -1.
        let by = by.min(63);
        let first = self.offset >> by;
        let last = (self.offset + self.counts.len() as i64 - 1) >> by;
        let mut merged = vec![0u64; (last - first + 1) as usize];
        for (index, count) in self.buckets() {
            let slot = &mut merged[((index >> by) - first) as usize];
            *slot = slot.saturating_add(count);
        }
        self.offset = first;
        self.counts = merged;
    }

    /// Removes the buckets whose lower magnitude bound lies below
    /// `threshold` (at `scale`) and returns how many observations they held.
    fn take_below(&mut self, scale: i32, threshold: f64) -> u64 {
        // Tolerance, so a threshold on a bucket boundary, computed with
        // rounding error, does not take the bucket just above it.
        let limit = threshold * (1.0 - 1e-9);
        let kept = self
            .buckets()
            .position(|(index, _)| lower_bound(scale, index) >= limit)
            .unwrap_or(self.counts.len());
        let taken = self
            .counts
            .drain(..kept)
            .fold(0u64, |a, c| a.saturating_add(c));
        self.offset += kept as i64;
        taken
    }

    /// `self - earlier` bucket by bucket; `None` if any bucket went down.
    fn minus(&self, earlier: &Side) -> Option<Side> {
        if earlier.buckets().any(|(index, c)| self.get(index) < c) {
            return None;
        }
        let counts = self
            .buckets()
            .map(|(index, c)| c - earlier.get(index))
            .collect();
        Some(Side::new(self.offset, counts))
    }
}

/// The magnitude where bucket `index` starts at `scale`: base^index.
fn lower_bound(scale: i32, index: i64) -> f64 {
    (index as f64 * (-f64::from(scale)).exp2()).exp2()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exponential {
    scale: i32,
    zero_threshold: f64,
    zero_count: u64,
    positive: Side,
    negative: Side,
}

impl Exponential {
    pub fn new(
        scale: i32,
        zero_threshold: f64,
        zero_count: u64,
        positive: Side,
        negative: Side,
    ) -> Self {
        Exponential {
            scale,
            zero_threshold,
            zero_count,
            positive,
            negative,
        }
    }

    pub fn from_point(point: &ExponentialHistogramDataPoint) -> Self {
        Exponential::new(
            point.scale,
            point.zero_threshold,
            point.zero_count,
            Side::from_proto(point.positive.as_ref()),
            Side::from_proto(point.negative.as_ref()),
        )
    }

    /// Lowers the scale to `scale` (a higher one is left as it is).
    fn downscale_to(&mut self, scale: i32) {
        let by = (i64::from(self.scale) - i64::from(scale)).clamp(0, 63) as u32;
        self.positive.downscale(by);
        self.negative.downscale(by);
        self.scale = self.scale.min(scale);
    }

    /// Moves every bucket reaching below `threshold` into the zero bucket.
    fn widen_zero(&mut self, threshold: f64) {
        let taken = self
            .positive
            .take_below(self.scale, threshold)
            .saturating_add(self.negative.take_below(self.scale, threshold));
        self.zero_count = self.zero_count.saturating_add(taken);
        self.zero_threshold = self.zero_threshold.max(threshold);
    }

    /// Both points in the same buckets: the coarser scale, the wider zero
    /// bucket. Borrowed as they are when they already match.
    fn aligned<'a>(a: &'a Self, b: &'a Self) -> (Cow<'a, Self>, Cow<'a, Self>) {
        let same_zero = a.zero_threshold.to_bits() == b.zero_threshold.to_bits();
        if a.scale == b.scale && same_zero {
            return (Cow::Borrowed(a), Cow::Borrowed(b));
        }
        let (mut a, mut b) = (a.clone(), b.clone());
        let scale = a.scale.min(b.scale);
        a.downscale_to(scale);
        b.downscale_to(scale);
        if !same_zero {
            let threshold = a.zero_threshold.max(b.zero_threshold);
            a.widen_zero(threshold);
            b.widen_zero(threshold);
        }
        (Cow::Owned(a), Cow::Owned(b))
    }

    /// The observations a cumulative point has that an `earlier` one of
    /// the same series had not, in their common buckets; `None` when a
    /// bucket (or the zero bucket) went down there: the series was reset.
    pub fn minus(&self, earlier: &Exponential) -> Option<Exponential> {
        let (later, earlier) = Exponential::aligned(self, earlier);
        Some(Exponential {
            scale: later.scale,
            zero_threshold: later.zero_threshold,
            zero_count: later.zero_count.checked_sub(earlier.zero_count)?,
            positive: later.positive.minus(&earlier.positive)?,
            negative: later.negative.minus(&earlier.negative)?,
        })
    }

    /// Every non-empty bucket as (low, high, count), the zero bucket as
    /// (0, 0, count).
    pub fn ranges(&self) -> Vec<(f64, f64, u64)> {
        let scale = self.scale;
        let positive = self
            .positive
            .buckets()
            .map(|(i, c)| (lower_bound(scale, i), lower_bound(scale, i + 1), c));
        let negative = self
            .negative
            .buckets()
            .map(|(i, c)| (-lower_bound(scale, i + 1), -lower_bound(scale, i), c));
        std::iter::once((0.0, 0.0, self.zero_count))
            .chain(positive)
            .chain(negative)
            .filter(|(_, _, c)| *c > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(offset: i64, counts: &[u64]) -> Side {
        Side::new(offset, counts.to_vec())
    }

    #[test]
    fn downscaling_merges_pairs_with_floor_division_of_negative_indices() {
        // Indices -3..=1 -> (>> 1) -2, -1, -1, 0, 0.
        let mut s = side(-3, &[1, 2, 3, 4, 5]);
        s.downscale(1);
        assert_eq!(s, side(-2, &[1, 5, 9]));
        // Indices -5..=2 -> (>> 2) -2, -1, -1, -1, -1, 0, 0, 0: coarse -1
        // holds fine -4..=-1, coarse -2 holds -8..=-5.
        let mut s = side(-5, &[1, 1, 1, 1, 1, 1, 1, 1]);
        s.downscale(2);
        assert_eq!(s, side(-2, &[1, 4, 3]));
        // Far enough, everything meets in buckets -1 and 0.
        let mut s = side(-7, &[1, 0, 0, 0, 0, 0, 0, 0, 2]);
        s.downscale(200);
        assert_eq!(s, side(-1, &[1, 2]));
    }

    #[test]
    fn a_downscaled_bucket_covers_the_fine_buckets_it_merged() {
        // At scale 2, index -9 is (2^(-9/4), 2^(-8/4)]; at scale 0 it is in
        // index -9 >> 2 = -3: (2^-3, 2^-2], which contains it.
        assert!(lower_bound(0, -3) <= lower_bound(2, -9));
        assert!(lower_bound(2, -8) <= lower_bound(0, -2));
        let mut h = Exponential::new(2, 0.0, 0, side(-9, &[7]), side(-9, &[5]));
        h.downscale_to(0);
        assert_eq!(h.positive, side(-3, &[7]));
        assert_eq!(h.negative, side(-3, &[5]), "negative buckets shift alike");
        assert_eq!(h.scale, 0);
    }

    #[test]
    fn subtracting_across_a_scale_change_brings_both_to_the_coarser_scale() {
        // Earlier, at scale 1: 1 obs in (2^-1.5, 2^-1], 2 in (2^-1, 2^-0.5],
        // 4 in (2^-0.5, 1] (indices -3, -2, -1).
        let earlier = Exponential::new(1, 0.0, 1, side(-3, &[1, 2, 4]), side(0, &[]));
        // Later, at scale 0 (indices -2, -1, 0): the earlier 7 fall in -2
        // (1) and -1 (6); 1 new in (2^-1, 1], 3 new in (1, 2].
        let later = Exponential::new(0, 0.0, 3, side(-2, &[1, 7, 3]), side(0, &[]));
        let delta = later.minus(&earlier).expect("no reset");
        assert_eq!(delta.scale, 0);
        assert_eq!(delta.zero_count, 2);
        assert_eq!(delta.positive, side(-2, &[0, 1, 3]));
        // The same earlier point, compared without downscaling, would have
        // made bucket -2 look like it went down (1 < 2): a false reset.
        assert!(
            later
                .minus(&Exponential::new(
                    0,
                    0.0,
                    1,
                    side(-3, &[1, 2, 4]),
                    side(0, &[])
                ))
                .is_none()
        );
    }

    #[test]
    fn a_wider_zero_threshold_moves_the_buckets_under_it_to_the_zero_count() {
        // Scale 0: buckets (0.25, 0.5], (0.5, 1], (1, 2] hold 1, 2, 4; the
        // negative mirror holds 8 in [-0.5, -0.25). A threshold of 0.5
        // takes (0.25, 0.5] on both sides, and nothing above it.
        let mut h = Exponential::new(0, 0.0, 3, side(-2, &[1, 2, 4]), side(-2, &[8]));
        h.widen_zero(0.5);
        assert_eq!(h.zero_count, 3 + 1 + 8);
        assert_eq!(h.positive, side(-1, &[2, 4]));
        assert_eq!(h.negative, side(-1, &[]));
        // A threshold inside a bucket takes that bucket too: its values
        // may lie on either side of it.
        let mut h = Exponential::new(0, 0.0, 0, side(-2, &[1, 2, 4]), side(0, &[]));
        h.widen_zero(0.7);
        assert_eq!((h.zero_count, h.positive.clone()), (3, side(0, &[4])));
    }

    #[test]
    fn subtracting_when_the_zero_threshold_grew_compares_like_with_like() {
        let earlier = Exponential::new(0, 0.0, 1, side(-2, &[1, 2]), side(0, &[]));
        // Later: threshold 0.5, so the earlier (0.25, 0.5] is in its zero
        // count; 1 new observation there and 5 new in (0.5, 1].
        let later = Exponential::new(0, 0.5, 3, side(-1, &[7]), side(0, &[]));
        let delta = later.minus(&earlier).expect("no reset");
        assert_eq!(delta.zero_count, 1);
        assert_eq!(delta.positive, side(-1, &[5]));
    }

    #[test]
    fn a_bucket_or_zero_count_that_went_down_is_a_reset() {
        let earlier = Exponential::new(0, 0.0, 5, side(0, &[3, 3]), side(0, &[1]));
        let lower_zero = Exponential::new(0, 0.0, 4, side(0, &[3, 3]), side(0, &[1]));
        let lower_bucket = Exponential::new(0, 0.0, 5, side(0, &[3, 2]), side(0, &[1]));
        let gone_negative = Exponential::new(0, 0.0, 5, side(0, &[3, 3]), side(0, &[]));
        let moved = Exponential::new(0, 0.0, 5, side(5, &[3, 3]), side(0, &[1]));
        for later in [lower_zero, lower_bucket, gone_negative, moved] {
            assert!(later.minus(&earlier).is_none(), "{later:?}");
        }
    }

    #[test]
    fn odd_scales_and_offsets_neither_overflow_nor_panic() {
        let a = Exponential::new(
            i32::MAX,
            0.0,
            0,
            side(i64::from(i32::MAX), &[1, 1]),
            side(0, &[]),
        );
        let b = Exponential::new(
            i32::MIN,
            f64::NAN,
            0,
            side(i64::from(i32::MIN), &[1]),
            side(0, &[]),
        );
        let _ = a.minus(&b);
        let _ = b.minus(&a);
        assert!(a.ranges().iter().all(|(_, _, c)| *c > 0));
    }

    #[test]
    fn ranges_are_the_buckets_bounds() {
        let h = Exponential::new(1, 0.0, 2, side(-1, &[1, 0, 3]), side(0, &[4]));
        let half = 2f64.sqrt();
        let expected = [
            (0.0, 0.0, 2),
            (1.0 / half, 1.0, 1),
            (half, 2.0, 3),
            (-half, -1.0, 4),
        ];
        let ranges = h.ranges();
        assert_eq!(ranges.len(), expected.len(), "{ranges:?}");
        for ((low, high, n), (l, h, c)) in ranges.into_iter().zip(expected) {
            assert!((low - l).abs() < 1e-12 && (high - h).abs() < 1e-12 && n == c);
        }
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;
        use crate::stats::sketch::DDSketch;

        /// `values` as an SDK records them at `scale`: |v| <= `threshold`
        /// in the zero bucket, else bucket ceil(log2|v| 2^scale) - 1.
        fn record(values: &[f64], scale: i32, threshold: f64) -> Exponential {
            let (mut positive, mut negative) = (BTreeMap::new(), BTreeMap::new());
            let mut zero_count = 0;
            for v in values {
                if v.abs() <= threshold || *v == 0.0 {
                    zero_count += 1;
                    continue;
                }
                let index = (v.abs().log2() * f64::from(scale).exp2()).ceil() as i64 - 1;
                *if *v > 0.0 {
                    &mut positive
                } else {
                    &mut negative
                }
                .entry(index)
                .or_insert(0u64) += 1;
            }
            let dense = |buckets: BTreeMap<i64, u64>| {
                let Some((&first, _)) = buckets.first_key_value() else {
                    return Side::default();
                };
                let last = *buckets.keys().last().unwrap_or(&first);
                let counts = (first..=last).map(|i| buckets.get(&i).copied().unwrap_or(0));
                Side::new(first, counts.collect())
            };
            Exponential::new(
                scale,
                threshold,
                zero_count,
                dense(positive),
                dense(negative),
            )
        }

        fn non_empty(side: &Side) -> Vec<(i64, u64)> {
            side.buckets().filter(|(_, c)| *c > 0).collect()
        }

        fn value() -> impl Strategy<Value = f64> {
            prop_oneof![
                6 => (-20.0f64..20.0).prop_map(f64::exp2),
                3 => (-20.0f64..20.0).prop_map(|x| -x.exp2()),
                1 => Just(0.0),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            /// A cumulative histogram recorded at a fine scale, then (with
            /// more values) at a coarser one, maybe with a zero threshold
            /// on a bucket boundary: the difference is exactly the second
            /// batch at the coarser scale, and its percentiles, spread as
            /// the processor spreads them, are the exact percentiles of the
            /// second batch within a bucket width plus the sketch's 1 %.
            #[test]
            fn the_difference_across_a_rescale_is_the_second_batch(
                first in vec(value(), 1..150),
                second in vec(value(), 1..150),
                fine in -2i32..9,
                steps in 1i32..5,
                threshold_index in proptest::option::of(-40i64..0),
            ) {
                let coarse = fine - steps;
                let threshold = threshold_index.map_or(0.0, |m| lower_bound(coarse, m));
                let earlier = record(&first, fine, 0.0);
                let both: Vec<f64> = first.iter().chain(&second).copied().collect();
                let later = record(&both, coarse, threshold);

                let delta = later.minus(&earlier).expect("a rescale is not a reset");
                let expected = record(&second, coarse, threshold);
                prop_assert_eq!(delta.scale, coarse);
                prop_assert_eq!(delta.zero_count, expected.zero_count);
                prop_assert_eq!(non_empty(&delta.positive), non_empty(&expected.positive));
                prop_assert_eq!(non_empty(&delta.negative), non_empty(&expected.negative));

                let mut sketch = DDSketch::new(0.01).unwrap();
                for (low, high, n) in delta.ranges() {
                    crate::processors::percentiles::spread(&mut sketch, low, high, n);
                }
                let mut exact = second.clone();
                exact.sort_by(f64::total_cmp);
                let base = lower_bound(coarse, 1);
                for q in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
                    let want = exact[(q * (exact.len() - 1) as f64).floor() as usize];
                    let got = sketch.quantile(q).unwrap();
                    let tolerance = (base - 1.0 + 0.011 * base) * want.abs() + threshold + 1e-12;
                    prop_assert!(
                        (got - want).abs() <= tolerance,
                        "q {} at scale {}: {} vs exact {}", q, coarse, got, want
                    );
                }
            }
        }
    }
}
