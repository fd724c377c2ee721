//! Tail sampling policies, evaluated on a whole trace once its decision
//! wait is over. Pure: time is passed in (`rate_limiting` and `composite`
//! count spans per second of the graph's clock, so replay works in event
//! time).
//!
//! Decisions follow the Collector's: each policy says sampled, not
//! sampled, or (with `invert_match`) inverted sampled / inverted not
//! sampled; an inverted "not sampled" drops the trace whatever the other
//! policies say, otherwise any "sampled" keeps it.

use std::hash::Hasher as _;

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, status::StatusCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Sampled,
    NotSampled,
    InvertSampled,
    InvertNotSampled,
}

impl Decision {
    fn sampled(self) -> bool {
        matches!(self, Decision::Sampled | Decision::InvertSampled)
    }
}

/// A trace held for its decision: its spans, grouped as they arrived.
#[derive(Debug, Default)]
pub struct TraceData {
    pub trace_id: Vec<u8>,
    pub fragments: Vec<ResourceSpans>,
    pub span_count: usize,
}

impl TraceData {
    fn spans(
        &self,
    ) -> impl Iterator<Item = (&ResourceSpans, &opentelemetry_proto::tonic::trace::v1::Span)> {
        self.fragments.iter().flat_map(|rs| {
            rs.scope_spans
                .iter()
                .flat_map(move |ss| ss.spans.iter().map(move |s| (rs, s)))
        })
    }

    /// Every attribute set a policy looks in: the resource's and each
    /// span's, as in the Collector.
    fn attribute_sets(&self) -> impl Iterator<Item = &[KeyValue]> {
        self.fragments
            .iter()
            .flat_map(|rs| rs.resource.as_ref().map(|r| r.attributes.as_slice()))
            .chain(self.spans().map(|(_, s)| s.attributes.as_slice()))
    }
}

#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(Vec<String>),
    Regex(Vec<regex::Regex>),
}

/// A spans-per-second budget in the graph's clock's seconds.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    pub per_second: u64,
    second: u64,
    used: u64,
}

impl Budget {
    pub fn new(per_second: u64) -> Self {
        Budget {
            per_second,
            ..Default::default()
        }
    }

    fn reset_if_new(&mut self, second: u64) {
        if second != self.second {
            self.second = second;
            self.used = 0;
        }
    }

    /// Takes `spans` from this second's budget if they fit.
    fn take(&mut self, second: u64, spans: u64) -> bool {
        self.reset_if_new(second);
        if self.used + spans <= self.per_second {
            self.used += spans;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
pub enum Policy {
    AlwaysSample,
    Latency {
        threshold_ms: i64,
        /// 0: no upper bound.
        upper_threshold_ms: i64,
    },
    StatusCode(Vec<StatusCode>),
    Probabilistic {
        salt: String,
        threshold: u64,
    },
    StringAttribute {
        key: String,
        matcher: StringMatch,
        invert_match: bool,
    },
    NumericAttribute {
        key: String,
        min_value: i64,
        max_value: i64,
        invert_match: bool,
    },
    RateLimiting(Budget),
    SpanCount {
        min_spans: usize,
        /// 0: no maximum.
        max_spans: usize,
    },
    And(Vec<Policy>),
    Composite {
        max_total: u64,
        total: Budget,
        /// Sub-policies in their configured order, each with its budget.
        sub: Vec<(Policy, Budget)>,
    },
}

/// The threshold for the `probabilistic` policy: `ratio` of u64::MAX as
/// the Collector computes it with Go's big floats: the product rounded to
/// 64 significant bits (to nearest, ties to even), then truncated.
pub fn probabilistic_threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        return u64::MAX;
    }
    if ratio <= 0.0 || ratio.is_nan() {
        return 0;
    }
    let bits = ratio.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let (mantissa, exponent) = if biased == 0 {
        (bits & ((1 << 52) - 1), -1074)
    } else {
        ((bits & ((1 << 52) - 1)) | (1 << 52), biased - 1075)
    };
    // The exact product: `product * 2^exponent`.
    let mut product = u128::from(mantissa) * u128::from(u64::MAX);
    let length = 128 - product.leading_zeros() as i32;
    if length > 64 {
        let drop = (length - 64) as u32;
        let rest = product & ((1u128 << drop) - 1);
        let half = 1u128 << (drop - 1);
        product >>= drop;
        if rest > half || (rest == half && product & 1 == 1) {
            product += 1;
        }
        product <<= drop;
    }
    let shifted = if exponent < 0 {
        product.checked_shr((-exponent) as u32).unwrap_or(0)
    } else {
        product << exponent
    };
    u64::try_from(shifted).unwrap_or(u64::MAX)
}

/// FNV-1a 64 over the salt then the trace id (the Collector's hash).
pub fn probabilistic_hash(salt: &str, trace_id: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(salt.as_bytes());
    hasher.write(trace_id);
    hasher.finish()
}

fn trace_duration_ms(trace: &TraceData) -> i64 {
    let mut start = u64::MAX;
    let mut end = 0u64;
    for (_, span) in trace.spans() {
        start = start.min(span.start_time_unix_nano);
        end = end.max(span.end_time_unix_nano);
    }
    if start > end {
        return 0;
    }
    ((end - start) / 1_000_000) as i64
}

fn inverted(matched: bool, invert_match: bool) -> Decision {
    match (matched, invert_match) {
        (true, false) => Decision::Sampled,
        (false, false) => Decision::NotSampled,
        (true, true) => Decision::InvertNotSampled,
        (false, true) => Decision::InvertSampled,
    }
}

fn string_of(kv: &KeyValue) -> Option<&str> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

impl Policy {
    /// The policy's decision on `trace`, at `second` (of the graph's clock).
    pub fn evaluate(&mut self, trace: &TraceData, second: u64) -> Decision {
        use Decision::*;
        let yes = |b: bool| if b { Sampled } else { NotSampled };
        match self {
            Policy::AlwaysSample => Sampled,
            Policy::Latency {
                threshold_ms,
                upper_threshold_ms,
            } => {
                let duration = trace_duration_ms(trace);
                yes(duration >= *threshold_ms
                    && (*upper_threshold_ms == 0 || duration <= *upper_threshold_ms))
            }
            Policy::StatusCode(codes) => yes(trace.spans().any(|(_, span)| {
                let code = span
                    .status
                    .as_ref()
                    .map_or(StatusCode::Unset as i32, |s| s.code);
                codes.iter().any(|c| *c as i32 == code)
            })),
            Policy::Probabilistic { salt, threshold } => {
                yes(probabilistic_hash(salt, &trace.trace_id) <= *threshold)
            }
            Policy::StringAttribute {
                key,
                matcher,
                invert_match,
            } => {
                let matched = trace.attribute_sets().any(|set| {
                    set.iter()
                        .filter(|kv| kv.key == *key)
                        .filter_map(string_of)
                        .any(|value| match matcher {
                            StringMatch::Exact(values) => values.iter().any(|v| v == value),
                            StringMatch::Regex(patterns) => {
                                patterns.iter().any(|p| p.is_match(value))
                            }
                        })
                });
                inverted(matched, *invert_match)
            }
            Policy::NumericAttribute {
                key,
                min_value,
                max_value,
                invert_match,
            } => {
                let matched = trace.attribute_sets().any(|set| {
                    set.iter().filter(|kv| kv.key == *key).any(|kv| {
                        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(any_value::Value::IntValue(i)) => {
                                *i >= *min_value && *i <= *max_value
                            }
                            _ => false,
                        }
                    })
                });
                inverted(matched, *invert_match)
            }
            Policy::RateLimiting(budget) => yes(budget.take(second, trace.span_count as u64)),
            Policy::SpanCount {
                min_spans,
                max_spans,
            } => yes(trace.span_count >= *min_spans
                && (*max_spans == 0 || trace.span_count <= *max_spans)),
            Policy::And(policies) => {
                // Every sub-policy is asked (stateful ones count), as in
                // the Collector, which stops at the first "no".
                for policy in policies.iter_mut() {
                    if !policy.evaluate(trace, second).sampled() {
                        return NotSampled;
                    }
                }
                Sampled
            }
            Policy::Composite {
                max_total,
                total,
                sub,
            } => {
                total.reset_if_new(second);
                for (policy, budget) in sub.iter_mut() {
                    budget.reset_if_new(second);
                    if policy.evaluate(trace, second).sampled() {
                        // The first sub-policy that samples decides; over
                        // its budget (or the total) the trace is dropped.
                        let spans = trace.span_count as u64;
                        let fits = budget.used + spans <= budget.per_second
                            && total.used + spans <= *max_total;
                        if fits {
                            budget.used += spans;
                            total.used += spans;
                            return Sampled;
                        }
                        return NotSampled;
                    }
                }
                NotSampled
            }
        }
    }
}

/// The final decision over every policy's.
pub fn combine(decisions: impl IntoIterator<Item = Decision>) -> bool {
    let mut sampled = false;
    for decision in decisions {
        match decision {
            Decision::InvertNotSampled => return false,
            Decision::Sampled | Decision::InvertSampled => sampled = true,
            Decision::NotSampled => {}
        }
    }
    sampled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilistic_threshold_is_the_exact_fraction_of_u64_max() {
        assert_eq!(probabilistic_threshold(1.0), u64::MAX);
        assert_eq!(probabilistic_threshold(0.0), 0);
        assert_eq!(probabilistic_threshold(0.5), u64::MAX / 2);
        assert_eq!(probabilistic_threshold(0.25), u64::MAX / 4);
        // Go: new(big.Float).SetInt(MaxUint64).Mul(., big.NewFloat(r)).Uint64(),
        // worked with exact fractions by an independent script.
        for (ratio, go) in [
            (0.1, 1844674407370955263u64),
            (0.9, 16602069666338596863),
            (0.333, 6142765776545281023),
            (0.01, 184467440737095519),
        ] {
            assert_eq!(probabilistic_threshold(ratio), go, "{ratio}");
        }
    }

    #[test]
    fn fnv64_matches_the_published_vectors() {
        // FNV-1a 64 of "" and "a" (Noll), and salt + id is one stream.
        assert_eq!(probabilistic_hash("", b""), 0xcbf29ce484222325);
        assert_eq!(probabilistic_hash("a", b""), 0xaf63dc4c8601ec8c);
        assert_eq!(
            probabilistic_hash("foo", b"bar"),
            probabilistic_hash("", b"foobar")
        );
        assert_eq!(probabilistic_hash("", b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn an_inverted_no_drops_whatever_else_samples() {
        use Decision::*;
        assert!(combine([NotSampled, Sampled]));
        assert!(combine([InvertSampled]));
        assert!(!combine([Sampled, InvertNotSampled]));
        assert!(!combine([NotSampled, NotSampled]));
    }

    #[test]
    fn budgets_reset_each_second() {
        let mut b = Budget::new(10);
        assert!(b.take(1, 6));
        assert!(!b.take(1, 6));
        assert!(b.take(1, 4));
        assert!(b.take(2, 10));
    }
}
