//! `tail_sampling`'s config in the Collector's shape, compiled into
//! policies. Each policy is `{ name, type, <type>: {...} }`; `and` holds
//! `and_sub_policy`, `composite` holds `composite_sub_policy`,
//! `policy_order`, `rate_allocation` and `max_total_spans_per_second`.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde::Deserialize;
use yaml_serde::Value;

use super::policy::{Budget, Policy, StringMatch, probabilistic_threshold};
use crate::config::{Decoder, YamlPath};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTailSampling {
    #[serde(default = "default_wait", with = "crate::config::duration")]
    decision_wait: Duration,
    #[serde(default = "default_num_traces")]
    num_traces: usize,
    #[serde(default)]
    expected_new_traces_per_sec: usize,
    #[serde(default)]
    decision_cache: Option<RawDecisionCache>,
    #[serde(default)]
    sample_on_first_match: bool,
    policies: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecisionCache {
    #[serde(default)]
    sampled_cache_size: usize,
    #[serde(default)]
    non_sampled_cache_size: usize,
}

fn default_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_num_traces() -> usize {
    50_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLatency {
    #[serde(default)]
    threshold_ms: i64,
    #[serde(default)]
    upper_threshold_ms: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatusCode {
    status_codes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbabilistic {
    #[serde(default)]
    hash_salt: String,
    sampling_percentage: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStringAttribute {
    key: String,
    values: Vec<String>,
    #[serde(default)]
    enabled_regex_matching: bool,
    #[serde(default)]
    cache_max_size: usize,
    #[serde(default)]
    invert_match: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNumericAttribute {
    key: String,
    min_value: Option<i64>,
    max_value: Option<i64>,
    #[serde(default)]
    invert_match: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimiting {
    spans_per_second: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpanCount {
    min_spans: usize,
    #[serde(default)]
    max_spans: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnd {
    and_sub_policy: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComposite {
    max_total_spans_per_second: u64,
    #[serde(default)]
    policy_order: Vec<String>,
    composite_sub_policy: Value,
    #[serde(default)]
    rate_allocation: Vec<RawRateAllocation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateAllocation {
    policy: String,
    percent: f64,
}

/// A named top-level policy.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub name: String,
    pub policy: Policy,
}

#[derive(Debug, Clone)]
pub struct TailSamplingConfig {
    pub decision_wait: Duration,
    pub num_traces: usize,
    pub expected_new_traces_per_sec: usize,
    /// Stop at the first policy that samples (later ones are not asked,
    /// so their rate budgets are not spent).
    pub sample_on_first_match: bool,
    pub policies: Vec<NamedPolicy>,
}

const SHARED: &[&str] = &[
    "always_sample",
    "latency",
    "status_code",
    "probabilistic",
    "string_attribute",
    "numeric_attribute",
    "rate_limiting",
    "span_count",
];

/// Where a policy sits: which types it may have.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Top,
    InComposite,
    InAnd,
}

fn policy_list(
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
    level: Level,
) -> Option<Vec<NamedPolicy>> {
    let Some(list) = value.as_sequence() else {
        decoder.error(path.clone(), "expected a list of policies");
        return None;
    };
    if list.is_empty() {
        decoder.error(path.clone(), "expected at least one policy");
        return None;
    }
    let mut policies = Vec::new();
    let mut valid = true;
    for (i, item) in list.iter().enumerate() {
        match policy(item, &path.index(i), decoder, level) {
            Some(p) => policies.push(p),
            None => valid = false,
        }
    }
    valid.then_some(policies)
}

fn policy(
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
    level: Level,
) -> Option<NamedPolicy> {
    let Some(mapping) = value.as_mapping() else {
        decoder.error(
            path.clone(),
            "expected a policy: { name, type, <type>: {...} }",
        );
        return None;
    };
    let name = value.get("name").and_then(Value::as_str);
    let Some(name) = name.map(str::to_string) else {
        decoder.error(path.key("name"), "every policy needs a name");
        return None;
    };
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        decoder.error(path.key("type"), "every policy needs a type");
        return None;
    };
    let allowed = match level {
        Level::Top => SHARED.contains(&kind) || kind == "and" || kind == "composite",
        Level::InComposite => SHARED.contains(&kind) || kind == "and",
        Level::InAnd => SHARED.contains(&kind),
    };
    if !allowed {
        let message = match kind {
            "and" | "composite" => format!("a `{kind}` policy cannot be nested here"),
            "boolean_attribute" | "ottl_condition" | "trace_state" | "trace_flags"
            | "bytes_limiting" | "drop" => format!(
                "the `{kind}` policy is not supported by sidewatch: use string_attribute, numeric_attribute or status_code, or set an attribute with `transform` first"
            ),
            other => format!(
                "unknown policy type `{other}`: expected one of {}, and, composite",
                SHARED.join(", ")
            ),
        };
        decoder.error(path.key("type"), message);
        return None;
    }
    for key in mapping.keys().filter_map(Value::as_str) {
        if key != "name" && key != "type" && key != kind {
            decoder.error(
                path.key(key),
                format!("unknown key `{key}` in a `{kind}` policy: expected name, type and {kind}"),
            );
            return None;
        }
    }
    let settings = value.get(kind).cloned().unwrap_or(Value::Null);
    let at = path.key(kind);
    let policy = match kind {
        "always_sample" => Policy::AlwaysSample,
        "latency" => {
            let raw: RawLatency = decoder.decode(&settings, &at)?;
            if raw.upper_threshold_ms != 0 && raw.upper_threshold_ms < raw.threshold_ms {
                decoder.error(
                    at.key("upper_threshold_ms"),
                    "upper_threshold_ms must be at least threshold_ms (or 0 for none)",
                );
                return None;
            }
            Policy::Latency {
                threshold_ms: raw.threshold_ms,
                upper_threshold_ms: raw.upper_threshold_ms,
            }
        }
        "status_code" => {
            let raw: RawStatusCode = decoder.decode(&settings, &at)?;
            let mut codes = Vec::new();
            for (i, code) in raw.status_codes.iter().enumerate() {
                codes.push(match code.as_str() {
                    "OK" => StatusCode::Ok,
                    "ERROR" => StatusCode::Error,
                    "UNSET" => StatusCode::Unset,
                    other => {
                        decoder.error(
                            at.key("status_codes").index(i),
                            format!("unknown status code `{other}`: expected OK, ERROR or UNSET"),
                        );
                        return None;
                    }
                });
            }
            if codes.is_empty() {
                decoder.error(at.key("status_codes"), "expected at least one status code");
                return None;
            }
            Policy::StatusCode(codes)
        }
        "probabilistic" => {
            let raw: RawProbabilistic = decoder.decode(&settings, &at)?;
            if !(0.0..=100.0).contains(&raw.sampling_percentage) {
                decoder.error(
                    at.key("sampling_percentage"),
                    format!("expected 0 to 100, got {}", raw.sampling_percentage),
                );
                return None;
            }
            Policy::Probabilistic {
                salt: if raw.hash_salt.is_empty() {
                    "default-hash-seed".into()
                } else {
                    raw.hash_salt
                },
                threshold: probabilistic_threshold(raw.sampling_percentage / 100.0),
            }
        }
        "string_attribute" => {
            let raw: RawStringAttribute = decoder.decode(&settings, &at)?;
            let _ = raw.cache_max_size; // a regex cache size: ours needs none
            let matcher = if raw.enabled_regex_matching {
                let mut patterns = Vec::new();
                for (i, text) in raw.values.iter().enumerate() {
                    match regex::Regex::new(text) {
                        Ok(r) => patterns.push(r),
                        Err(e) => {
                            decoder.error(
                                at.key("values").index(i),
                                format!("not a regular expression: {e}"),
                            );
                            return None;
                        }
                    }
                }
                StringMatch::Regex(patterns)
            } else {
                StringMatch::Exact(raw.values)
            };
            Policy::StringAttribute {
                key: raw.key,
                matcher,
                invert_match: raw.invert_match,
            }
        }
        "numeric_attribute" => {
            let raw: RawNumericAttribute = decoder.decode(&settings, &at)?;
            if raw.min_value.is_none() && raw.max_value.is_none() {
                decoder.error(at.clone(), "set min_value, max_value or both");
                return None;
            }
            Policy::NumericAttribute {
                key: raw.key,
                min_value: raw.min_value.unwrap_or(i64::MIN),
                max_value: raw.max_value.unwrap_or(i64::MAX),
                invert_match: raw.invert_match,
            }
        }
        "rate_limiting" => {
            let raw: RawRateLimiting = decoder.decode(&settings, &at)?;
            Policy::RateLimiting(Budget::new(raw.spans_per_second))
        }
        "span_count" => {
            let raw: RawSpanCount = decoder.decode(&settings, &at)?;
            if raw.max_spans != 0 && raw.max_spans < raw.min_spans {
                decoder.error(
                    at.key("max_spans"),
                    "max_spans must be at least min_spans (or 0 for none)",
                );
                return None;
            }
            Policy::SpanCount {
                min_spans: raw.min_spans,
                max_spans: raw.max_spans,
            }
        }
        "and" => {
            let raw: RawAnd = decoder.decode(&settings, &at)?;
            let subs = policy_list(
                &raw.and_sub_policy,
                &at.key("and_sub_policy"),
                decoder,
                Level::InAnd,
            )?;
            Policy::And(subs.into_iter().map(|p| p.policy).collect())
        }
        "composite" => {
            let raw: RawComposite = decoder.decode(&settings, &at)?;
            let subs = policy_list(
                &raw.composite_sub_policy,
                &at.key("composite_sub_policy"),
                decoder,
                Level::InComposite,
            )?;
            let mut valid = true;
            for (i, name) in raw.policy_order.iter().enumerate() {
                if !subs.iter().any(|s| s.name == *name) {
                    decoder.error(
                        at.key("policy_order").index(i),
                        format!("`{name}` is not one of composite_sub_policy"),
                    );
                    valid = false;
                }
            }
            for (i, allocation) in raw.rate_allocation.iter().enumerate() {
                if !subs.iter().any(|s| s.name == allocation.policy) {
                    decoder.error(
                        at.key("rate_allocation").index(i).key("policy"),
                        format!("`{}` is not one of composite_sub_policy", allocation.policy),
                    );
                    valid = false;
                }
            }
            if !valid {
                return None;
            }
            // The Collector's allocation: `percent` of the total, an equal
            // share for an allocation without a percent, nothing for a
            // sub-policy without an allocation.
            let total = raw.max_total_spans_per_second as f64;
            let share = total / subs.len() as f64;
            let sub = subs
                .into_iter()
                .map(|s| {
                    let allocated = raw
                        .rate_allocation
                        .iter()
                        .rev()
                        .find(|a| a.policy == s.name)
                        .map_or(0.0, |a| {
                            if a.percent > 0.0 {
                                a.percent / 100.0 * total
                            } else {
                                share
                            }
                        });
                    (s.policy, Budget::new(allocated as u64))
                })
                .collect();
            Policy::Composite {
                max_total: raw.max_total_spans_per_second,
                total: Budget::new(raw.max_total_spans_per_second),
                sub,
            }
        }
        _ => unreachable!("checked above"),
    };
    Some(NamedPolicy { name, policy })
}

impl TailSamplingConfig {
    pub fn decode(
        value: &Value,
        path: &YamlPath,
        decoder: &mut Decoder,
    ) -> Option<TailSamplingConfig> {
        let raw: RawTailSampling = decoder.decode(value, path)?;
        if let Some(cache) = &raw.decision_cache
            && (cache.sampled_cache_size > 0 || cache.non_sampled_cache_size > 0)
        {
            decoder.warning(
                path.key("decision_cache"),
                "decision_cache is accepted but sidewatch keeps decisions for as long as the trace is among the last num_traces",
            );
        }
        let mut valid = true;
        if raw.num_traces == 0 {
            decoder.error(path.key("num_traces"), "expected at least 1 trace");
            valid = false;
        }
        if raw.decision_wait.is_zero() {
            decoder.error(path.key("decision_wait"), "expected a duration above 0");
            valid = false;
        }
        let policies = policy_list(&raw.policies, &path.key("policies"), decoder, Level::Top);
        let policies = policies?;
        let mut seen = std::collections::HashSet::new();
        for (i, p) in policies.iter().enumerate() {
            if !seen.insert(p.name.clone()) {
                decoder.error(
                    path.key("policies").index(i).key("name"),
                    format!("two policies are named `{}`", p.name),
                );
                valid = false;
            }
        }
        valid.then_some(TailSamplingConfig {
            decision_wait: raw.decision_wait,
            num_traces: raw.num_traces,
            expected_new_traces_per_sec: raw.expected_new_traces_per_sec,
            sample_on_first_match: raw.sample_on_first_match,
            policies,
        })
    }
}
