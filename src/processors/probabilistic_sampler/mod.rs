//! `probabilistic_sampler`: keeps a fixed fraction of spans (by trace id)
//! and log records, in the Collector's config shape:
//!
//! ```yaml
//! probabilistic_sampler:
//!   sampling_percentage: 15       # 0 drops all, 100 or more keeps all
//!   mode: hash_seed               # hash_seed | proportional (default) | equalizing
//!   hash_seed: 22                 # a non-zero seed selects hash_seed when mode is unset
//!   sampling_precision: 4         # hex digits of the `th` written to tracestate
//!   fail_closed: true             # drop what has no randomness (a zero trace id)
//!   attribute_source: traceID     # logs: traceID | record
//!   from_attribute: ""            # logs: the record attribute hashed (record source, or no trace id)
//!   sampling_priority: ""         # logs: an attribute whose value (a percentage) overrides
//! ```
//!
//! `hash_seed` is the Collector's original FNV decision (`hash_seed.rs`),
//! bit for bit, so a fleet of sidecars and Collectors with the same seed
//! keep the same traces. `proportional` and `equalizing` are OpenTelemetry
//! consistent sampling (`w3c.rs`): randomness from the tracestate's `rv`
//! or the trace id, a threshold written back as `ot=th:...`. Every span
//! is decided on its own, as in the Collector; a span with
//! `sampling.priority` 0 is dropped and one above 0 kept, whatever the
//! percentage. Decisions are counted in
//! `sidewatch_sampler_kept_items_total` and `..._dropped_items_total`.

pub mod hash_seed;
pub mod w3c;

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde::Deserialize;

use crate::processors::Processor;
use crate::signal::Batch;
use crate::telemetry::Telemetry;
use crate::telemetry::counters::ComponentCounter;
use w3c::{Threshold, TraceState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    HashSeed,
    Proportional,
    Equalizing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AttributeSource {
    #[serde(rename = "traceID")]
    TraceId,
    #[serde(rename = "record")]
    Record,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbabilisticSamplerConfig {
    #[serde(default)]
    pub sampling_percentage: f32,
    #[serde(default)]
    pub hash_seed: u32,
    pub mode: Option<Mode>,
    #[serde(default = "default_precision")]
    pub sampling_precision: u32,
    #[serde(default = "yes")]
    pub fail_closed: bool,
    #[serde(default = "trace_id_source")]
    pub attribute_source: AttributeSource,
    #[serde(default)]
    pub from_attribute: String,
    #[serde(default)]
    pub sampling_priority: String,
}

fn default_precision() -> u32 {
    4
}
fn yes() -> bool {
    true
}
fn trace_id_source() -> AttributeSource {
    AttributeSource::TraceId
}

/// The validated config: what `validate` accepted cannot fail to build.
#[derive(Debug, Clone)]
pub struct ProbabilisticSamplerConfig {
    pub raw: RawProbabilisticSamplerConfig,
}

impl RawProbabilisticSamplerConfig {
    /// Checks the Collector's rules; errors are (field, message).
    pub fn compile(self) -> Result<ProbabilisticSamplerConfig, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let pct = f64::from(self.sampling_percentage);
        if !pct.is_finite() {
            errors.push((
                "sampling_percentage",
                format!("expected a number from 0 to 100, got {pct}"),
            ));
        } else if pct < 0.0 {
            errors.push((
                "sampling_percentage",
                format!("expected a number from 0 to 100, got a negative {pct}"),
            ));
        } else if pct > 0.0 && pct / 100.0 < w3c::MIN_PROBABILITY {
            errors.push((
                "sampling_percentage",
                format!("{pct} % is below the smallest expressible probability (2^-56)"),
            ));
        }
        if !(1..=14).contains(&self.sampling_precision) {
            errors.push((
                "sampling_precision",
                format!(
                    "expected 1 to 14 hex digits, got {}",
                    self.sampling_precision
                ),
            ));
        }
        if self.attribute_source == AttributeSource::Record && self.from_attribute.is_empty() {
            errors.push((
                "from_attribute",
                "attribute_source: record needs from_attribute, the log record attribute to hash"
                    .into(),
            ));
        }
        if errors.is_empty() {
            Ok(ProbabilisticSamplerConfig { raw: self })
        } else {
            Err(errors)
        }
    }
}

/// One signal's sampler, chosen as the Collector chooses it.
#[derive(Debug, Clone, Copy)]
enum Sampler {
    Never,
    /// Buckets of 2^14 kept.
    Hash {
        seed: u32,
        scaled_rate: u32,
    },
    Consistent {
        mode: Mode,
        probability: f64,
    },
}

impl Sampler {
    fn new(raw: &RawProbabilisticSamplerConfig, logs: bool) -> Sampler {
        let pct = raw.sampling_percentage.min(100.0);
        let mode = raw.mode.unwrap_or(
            // The Collector's rule: a seed, or logs hashed by attribute,
            // mean the original behaviour.
            if raw.hash_seed != 0 || (logs && raw.attribute_source != AttributeSource::TraceId) {
                Mode::HashSeed
            } else {
                Mode::Proportional
            },
        );
        if pct <= 0.0 {
            return Sampler::Never;
        }
        match mode {
            Mode::HashSeed => match hash_seed::scaled_rate(pct) {
                0 => Sampler::Never,
                scaled_rate => Sampler::Hash {
                    seed: raw.hash_seed,
                    scaled_rate,
                },
            },
            mode => Sampler::Consistent {
                mode,
                probability: (f64::from(pct) / 100.0).max(w3c::MIN_PROBABILITY),
            },
        }
    }
}

pub struct ProbabilisticSampler {
    traces: Sampler,
    logs: Sampler,
    config: RawProbabilisticSamplerConfig,
    kept: Arc<ComponentCounter>,
    dropped: Arc<ComponentCounter>,
}

fn counter(family: &'static str, help: &'static str) -> Arc<ComponentCounter> {
    Arc::new(ComponentCounter {
        component: String::new(),
        family,
        help,
        kind: "counter",
        value: Default::default(),
    })
}

const KEPT: (&str, &str) = (
    "sampler_kept_items_total",
    "Spans and log records a sampler kept.",
);
const DROPPED: (&str, &str) = (
    "sampler_dropped_items_total",
    "Spans and log records a sampler dropped.",
);

/// What the `sampling.priority` attribute says, as the Collector reads it
/// (OpenTracing's convention): 0 drops, above 0 keeps, else no say.
fn span_priority(attributes: &[KeyValue]) -> Option<bool> {
    let value = attributes
        .iter()
        .find(|kv| kv.key == "sampling.priority")?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    let number = match value {
        any_value::Value::IntValue(i) => *i as f64,
        any_value::Value::DoubleValue(d) => *d,
        any_value::Value::StringValue(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if number == 0.0 {
        Some(false)
    } else if number > 0.0 {
        Some(true)
    } else {
        None
    }
}

/// The bytes the Collector hashes for an attribute value.
fn value_bytes(value: &AnyValue) -> Vec<u8> {
    match &value.value {
        Some(any_value::Value::BytesValue(b)) => b.clone(),
        Some(any_value::Value::StringValue(s)) => s.as_bytes().to_vec(),
        Some(_) => crate::otlp::value::any_value_text(value).into_bytes(),
        None => Vec::new(),
    }
}

/// A consistent decision on `randomness` with the incoming threshold
/// `incoming`: the threshold to write when kept.
fn consistent(
    mode: Mode,
    probability: f64,
    precision: u32,
    incoming: Option<Threshold>,
    randomness: u64,
) -> Option<Threshold> {
    let own = match (mode, incoming) {
        (Mode::Proportional, Some(th)) => {
            let t = Threshold::from_probability(th.probability() * probability, precision);
            // Rounding must never raise the probability above what arrived.
            t.max(th)
        }
        (_, incoming) => {
            // Equalizing cannot raise a probability that arrived lower.
            let t = Threshold::from_probability(probability, precision);
            incoming.map_or(t, |th| t.max(th))
        }
    };
    own.should_sample(randomness).then_some(own)
}

impl ProbabilisticSampler {
    pub fn new(config: &ProbabilisticSamplerConfig) -> Self {
        ProbabilisticSampler {
            traces: Sampler::new(&config.raw, false),
            logs: Sampler::new(&config.raw, true),
            config: config.raw.clone(),
            kept: counter(KEPT.0, KEPT.1),
            dropped: counter(DROPPED.0, DROPPED.1),
        }
    }

    /// Whether a span is kept; its tracestate is rewritten when it is.
    fn span(&self, span: &mut opentelemetry_proto::tonic::trace::v1::Span) -> bool {
        let priority = span_priority(&span.attributes);
        if let Some(keep) = priority {
            return keep;
        }
        let fail_closed = self.config.fail_closed;
        match self.traces {
            Sampler::Never => false,
            Sampler::Hash { seed, scaled_rate } => {
                let hashed = hash_seed::hash(&span.trace_id, seed);
                let kept = hashed & (hash_seed::BUCKETS - 1) < scaled_rate;
                if kept {
                    // The Collector records its randomness and threshold,
                    // unless consistent sampling already did (then it is
                    // left alone: the hash decision does not change it).
                    if let Ok(mut state) = TraceState::parse(&span.trace_state)
                        && state.randomness.is_none()
                        && state.threshold.is_none()
                    {
                        let rv = hash_seed::randomness(hashed);
                        state.randomness = Some((format!("{rv:014x}"), rv));
                        state.threshold = Some(hash_seed::threshold(scaled_rate));
                        span.trace_state = state.serialize();
                    }
                }
                kept
            }
            Sampler::Consistent { mode, probability } => {
                let Ok(mut state) = TraceState::parse(&span.trace_state) else {
                    return !fail_closed;
                };
                let randomness = match &state.randomness {
                    Some((_, rv)) => Some(*rv),
                    None => w3c::trace_id_randomness(&span.trace_id),
                };
                let Some(randomness) = randomness else {
                    return !fail_closed;
                };
                // A threshold the randomness does not pass is a lie: it is
                // erased, and the span decided as if it had none.
                if state
                    .threshold
                    .is_some_and(|th| !th.should_sample(randomness))
                {
                    state.threshold = None;
                }
                let precision = self.config.sampling_precision;
                match consistent(mode, probability, precision, state.threshold, randomness) {
                    Some(threshold) => {
                        state.threshold = Some(threshold);
                        span.trace_state = state.serialize();
                        true
                    }
                    None => false,
                }
            }
        }
    }

    fn log(&self, record: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> bool {
        let config = &self.config;
        let attribute = |name: &str| {
            record
                .attributes
                .iter()
                .find(|kv| kv.key == name)
                .and_then(|kv| kv.value.as_ref())
        };
        // A priority attribute is a percentage for this record: 0 drops,
        // otherwise it can only raise the configured probability.
        let mut sampler = self.logs;
        if !config.sampling_priority.is_empty()
            && let Some(value) = attribute(&config.sampling_priority)
        {
            let pct = match value.value {
                Some(any_value::Value::IntValue(i)) => Some(i as f32),
                Some(any_value::Value::DoubleValue(d)) => Some(d as f32),
                _ => None,
            };
            if let Some(pct) = pct {
                if pct <= 0.0 {
                    return false;
                }
                if pct > config.sampling_percentage {
                    let raw = RawProbabilisticSamplerConfig {
                        sampling_percentage: pct,
                        ..config.clone()
                    };
                    sampler = Sampler::new(&raw, true);
                }
            }
        }
        match sampler {
            Sampler::Never => false,
            Sampler::Hash { seed, scaled_rate } => {
                let bytes = if config.attribute_source == AttributeSource::TraceId {
                    Some(record.trace_id.clone())
                } else {
                    None
                };
                let bytes = bytes.or_else(|| {
                    (!config.from_attribute.is_empty())
                        .then(|| attribute(&config.from_attribute).map(value_bytes))
                        .flatten()
                });
                match bytes {
                    Some(bytes) => hash_seed::keeps(&bytes, seed, scaled_rate),
                    None => !config.fail_closed,
                }
            }
            Sampler::Consistent { mode, probability } => {
                let randomness = w3c::trace_id_randomness(&record.trace_id).or_else(|| {
                    let value = attribute(&config.from_attribute)?;
                    let hashed = hash_seed::hash(&value_bytes(value), config.hash_seed);
                    Some(hash_seed::randomness(hashed))
                });
                match randomness {
                    Some(r) => {
                        consistent(mode, probability, config.sampling_precision, None, r).is_some()
                    }
                    None => !config.fail_closed,
                }
            }
        }
    }

    /// The batch with what was not sampled removed, and the counts.
    pub fn sample(&self, batch: Batch) -> (Batch, u64, u64) {
        let (mut kept, mut dropped) = (0u64, 0u64);
        let mut count = |keep: bool| {
            if keep {
                kept += 1;
            } else {
                dropped += 1;
            }
            keep
        };
        let batch = match batch {
            Batch::Traces(mut request) => {
                let r = Arc::make_mut(&mut request);
                r.resource_spans.retain_mut(|rs| {
                    rs.scope_spans.retain_mut(|ss| {
                        ss.spans.retain_mut(|span| count(self.span(span)));
                        !ss.spans.is_empty()
                    });
                    !rs.scope_spans.is_empty()
                });
                Batch::Traces(request)
            }
            Batch::Logs(mut request) => {
                let r = Arc::make_mut(&mut request);
                r.resource_logs.retain_mut(|rl| {
                    rl.scope_logs.retain_mut(|sl| {
                        sl.log_records.retain(|record| count(self.log(record)));
                        !sl.log_records.is_empty()
                    });
                    !rl.scope_logs.is_empty()
                });
                Batch::Logs(request)
            }
            other => other,
        };
        (batch, kept, dropped)
    }
}

impl Processor for ProbabilisticSampler {
    fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
        let batch = match batch.into_otlp().into_decoded() {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(
                    "probabilistic_sampler: dropping a batch that does not decode: {e}"
                );
                return;
            }
        };
        let (batch, kept, dropped) = self.sample(batch);
        self.kept.add(kept);
        self.dropped.add(dropped);
        if !batch.is_empty() {
            out.push(batch);
        }
    }

    fn register_telemetry(&mut self, id: &str, telemetry: &Telemetry) {
        self.kept = telemetry.component_counter(id, KEPT.0, "counter", KEPT.1);
        self.dropped = telemetry.component_counter(id, DROPPED.0, "counter", DROPPED.1);
    }
}

impl crate::components::compiled::CompiledProcessor for ProbabilisticSamplerConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(ProbabilisticSampler::new(self))
    }
}

/// The registry's compile step for `probabilistic_sampler`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    let raw: RawProbabilisticSamplerConfig = decoder.decode(value, path)?;
    match raw.compile() {
        Ok(config) => Some(std::sync::Arc::new(config)),
        Err(errors) => {
            for (field, message) in errors {
                decoder.error(path.key(field), message);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests;
