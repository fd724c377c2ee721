//! What the OTLP data model requires of a value beyond what protobuf can
//! express, checked where data is used rather than trusted:
//!
//! - `points`: data points a stateful component computes with (bucket
//!   counts against bounds, counts against buckets, finite values, scales);
//!   a point that fails is left out of the computation and counted
//!   (`telemetry::dropped`), never a panic.
//! - `ids`: trace and span id lengths, which receivers enforce: a request
//!   with a wrong-length id is refused whole (INVALID_ARGUMENT / 400).
//!
//! Every decodable message is possible input: nothing upstream of a
//! processor checks these rules, so every processor must.

pub mod ids;
pub mod points;

/// Why a data point or span was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// An explicit histogram whose `bucket_counts` is not `explicit_bounds`
    /// plus one long.
    BucketCountsMismatch,
    /// Explicit bounds that are NaN or not strictly increasing.
    InvalidBounds,
    /// A histogram's `count` that is not the sum of its buckets.
    CountMismatch,
    /// A NaN or infinite value, sum, min or max.
    NonFiniteValue,
    /// A number point with neither `as_double` nor `as_int` (and not
    /// flagged as having no recorded value).
    MissingValue,
    /// A monotonic sum below zero.
    NegativeMonotonicSum,
    /// A histogram whose `min` is above its `max`.
    MinAboveMax,
    /// An exponential histogram scale outside [-10, 20].
    InvalidScale,
    /// A negative or NaN exponential-histogram zero threshold.
    InvalidZeroThreshold,
    /// A summary quantile outside [0, 1].
    InvalidQuantile,
    /// A trace id that is not 16 bytes, a span id not 8.
    InvalidId,
}

impl Violation {
    pub const ALL: [Violation; 11] = [
        Violation::BucketCountsMismatch,
        Violation::InvalidBounds,
        Violation::CountMismatch,
        Violation::NonFiniteValue,
        Violation::MissingValue,
        Violation::NegativeMonotonicSum,
        Violation::MinAboveMax,
        Violation::InvalidScale,
        Violation::InvalidZeroThreshold,
        Violation::InvalidQuantile,
        Violation::InvalidId,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Violation::BucketCountsMismatch => "bucket_counts_mismatch",
            Violation::InvalidBounds => "invalid_bounds",
            Violation::CountMismatch => "count_mismatch",
            Violation::NonFiniteValue => "non_finite_value",
            Violation::MissingValue => "missing_value",
            Violation::NegativeMonotonicSum => "negative_monotonic_sum",
            Violation::MinAboveMax => "min_above_max",
            Violation::InvalidScale => "invalid_scale",
            Violation::InvalidZeroThreshold => "invalid_zero_threshold",
            Violation::InvalidQuantile => "invalid_quantile",
            Violation::InvalidId => "invalid_id",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_listed_once_in_its_own_slot() {
        for (i, v) in Violation::ALL.iter().enumerate() {
            assert_eq!(
                *v as usize, i,
                "{v:?}: the telemetry table indexes by discriminant"
            );
        }
    }
}
