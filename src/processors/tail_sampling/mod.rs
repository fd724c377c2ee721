//! `tail_sampling`: holds each trace's spans until `decision_wait` after
//! its first span arrived, then keeps or drops the whole trace by its
//! policies, in the Collector's config shape:
//!
//! ```yaml
//! tail_sampling:
//!   decision_wait: 10s            # default 30s
//!   num_traces: 50000             # traces held at most (default 50000)
//!   expected_new_traces_per_sec: 100
//!   policies:
//!     - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }
//!     - { name: slow, type: latency, latency: { threshold_ms: 500 } }
//!     - { name: some, type: probabilistic, probabilistic: { sampling_percentage: 10 } }
//! ```
//!
//! Memory is bounded by `num_traces`: a new trace beyond it evicts the
//! oldest one held (undecided, its spans are dropped and counted, as in
//! the Collector). A decided trace stays known (without its spans) until
//! it is among the oldest, so late spans follow its decision. Time is the
//! graph's clock (`tick(now)`), so replay decides in event time; a flush
//! at shutdown decides whatever is still waiting rather than losing it.
//!
//! Counted in self-telemetry: `sidewatch_tail_sampling_sampled_traces_total`,
//! `..._not_sampled_traces_total`, `..._evicted_traces_total`,
//! `..._late_spans_total` and the gauge `..._traces_held`.

pub mod config;
pub mod policy;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

pub use config::TailSamplingConfig;
use policy::TraceData;

use crate::processors::Processor;
use crate::signal::Batch;
use crate::telemetry::Telemetry;
use crate::telemetry::counters::ComponentCounter;

/// What is known of a trace.
enum Held {
    /// Waiting for its decision since `arrived`.
    Waiting {
        arrived: SystemTime,
        data: TraceData,
    },
    /// Decided: late spans follow.
    Decided(bool),
}

struct Counters {
    sampled: Arc<ComponentCounter>,
    not_sampled: Arc<ComponentCounter>,
    evicted: Arc<ComponentCounter>,
    late: Arc<ComponentCounter>,
    held: Arc<ComponentCounter>,
}

const FAMILIES: [(&str, &str, &str); 5] = [
    (
        "tail_sampling_sampled_traces_total",
        "counter",
        "Traces tail_sampling decided to keep.",
    ),
    (
        "tail_sampling_not_sampled_traces_total",
        "counter",
        "Traces tail_sampling decided to drop.",
    ),
    (
        "tail_sampling_evicted_traces_total",
        "counter",
        "Undecided traces dropped because num_traces were already held.",
    ),
    (
        "tail_sampling_late_spans_total",
        "counter",
        "Spans that arrived after their trace was decided (they follow the decision).",
    ),
    (
        "tail_sampling_traces_held",
        "gauge",
        "Traces tail_sampling knows of now (waiting or recently decided), at most num_traces.",
    ),
];

impl Counters {
    fn new(
        mut make: impl FnMut(&'static str, &'static str, &'static str) -> Arc<ComponentCounter>,
    ) -> Self {
        let [s, n, e, l, h] = FAMILIES.map(|(family, kind, help)| make(family, kind, help));
        Counters {
            sampled: s,
            not_sampled: n,
            evicted: e,
            late: l,
            held: h,
        }
    }
}

pub struct TailSampling {
    config: TailSamplingConfig,
    traces: HashMap<Vec<u8>, Held>,
    /// Every known trace id, oldest first: eviction order.
    order: VecDeque<Vec<u8>>,
    /// Waiting trace ids by arrival, for decisions in order.
    waiting: VecDeque<(SystemTime, Vec<u8>)>,
    counters: Counters,
}

fn second_of(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TailSampling {
    pub fn new(config: &TailSamplingConfig) -> Self {
        // Sized for what arrives in one decision wait, as the Collector's
        // expected_new_traces_per_sec is meant, and never beyond the cap.
        let expected = (config.expected_new_traces_per_sec as u64)
            .saturating_mul(config.decision_wait.as_secs().max(1))
            .min(config.num_traces as u64) as usize;
        TailSampling {
            config: config.clone(),
            traces: HashMap::with_capacity(expected),
            order: VecDeque::with_capacity(expected),
            waiting: VecDeque::with_capacity(expected),
            counters: Counters::new(|family, kind, help| {
                Arc::new(ComponentCounter {
                    component: String::new(),
                    family,
                    help,
                    kind,
                    value: Default::default(),
                })
            }),
        }
    }

    /// Traces known now (waiting or decided).
    pub fn held(&self) -> usize {
        self.traces.len()
    }

    /// Makes room for one more trace: forgets the oldest.
    fn evict_oldest(&mut self) {
        while self.traces.len() >= self.config.num_traces {
            let Some(id) = self.order.pop_front() else {
                return;
            };
            if let Some(Held::Waiting { .. }) = self.traces.remove(&id) {
                self.counters.evicted.add(1);
                // Both queues are in arrival order: the oldest known trace,
                // if still waiting, is the first waiting one.
                if self.waiting.front().is_some_and(|(_, w)| *w == id) {
                    self.waiting.pop_front();
                } else {
                    self.waiting.retain(|(_, w)| *w != id);
                }
            }
        }
    }

    /// Holds the spans of `request`; spans of decided traces go to `kept`.
    fn hold(
        &mut self,
        request: &ExportTraceServiceRequest,
        now: SystemTime,
        kept: &mut Vec<ResourceSpans>,
    ) {
        for rs in &request.resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let id = span.trace_id.clone();
                    let fragment = || ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: vec![ScopeSpans {
                            scope: ss.scope.clone(),
                            spans: Vec::new(),
                            schema_url: ss.schema_url.clone(),
                        }],
                        schema_url: rs.schema_url.clone(),
                    };
                    if !self.traces.contains_key(&id) {
                        self.evict_oldest();
                        self.order.push_back(id.clone());
                        self.waiting.push_back((now, id.clone()));
                        self.traces.insert(
                            id.clone(),
                            Held::Waiting {
                                arrived: now,
                                data: TraceData {
                                    trace_id: id.clone(),
                                    ..Default::default()
                                },
                            },
                        );
                    }
                    match self.traces.get_mut(&id) {
                        Some(Held::Waiting { data, .. }) => {
                            // Spans of one resource and scope share a fragment.
                            let same = data.fragments.last().is_some_and(|f| {
                                f.resource == rs.resource && f.scope_spans[0].scope == ss.scope
                            });
                            if !same {
                                data.fragments.push(fragment());
                            }
                            if let Some(f) = data.fragments.last_mut() {
                                f.scope_spans[0].spans.push(span.clone());
                            }
                            data.span_count += 1;
                        }
                        Some(Held::Decided(keep)) => {
                            self.counters.late.add(1);
                            if *keep {
                                let mut f = fragment();
                                f.scope_spans[0].spans.push(span.clone());
                                kept.push(f);
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn decide(&mut self, data: &TraceData, now: SystemTime) -> bool {
        let second = second_of(now);
        let first_match = self.config.sample_on_first_match;
        let mut decisions = Vec::with_capacity(self.config.policies.len());
        for named in &mut self.config.policies {
            let decision = named.policy.evaluate(data, second);
            decisions.push(decision);
            if first_match && decision == policy::Decision::Sampled {
                break;
            }
        }
        policy::combine(decisions)
    }

    /// Decides every waiting trace that arrived at or before `until`.
    fn decide_due(&mut self, until: SystemTime, now: SystemTime, kept: &mut Vec<ResourceSpans>) {
        while let Some((arrived, _)) = self.waiting.front() {
            if *arrived > until {
                break;
            }
            let arrived = *arrived;
            let Some((_, id)) = self.waiting.pop_front() else {
                break;
            };
            let Some(held) = self.traces.get_mut(&id) else {
                continue;
            };
            if !matches!(held, Held::Waiting { arrived: a, .. } if *a == arrived) {
                continue;
            }
            let Held::Waiting { data, .. } = std::mem::replace(held, Held::Decided(false)) else {
                continue;
            };
            let keep = self.decide(&data, now);
            if keep {
                self.counters.sampled.add(1);
                kept.extend(data.fragments);
            } else {
                self.counters.not_sampled.add(1);
            }
            if let Some(held) = self.traces.get_mut(&id) {
                *held = Held::Decided(keep);
            }
        }
    }

    fn emit(&self, kept: Vec<ResourceSpans>, out: &mut Vec<Batch>) {
        self.counters.held.set(self.traces.len() as u64);
        if !kept.is_empty() {
            out.push(Batch::Traces(Arc::new(ExportTraceServiceRequest {
                resource_spans: kept,
            })));
        }
    }
}

impl Processor for TailSampling {
    fn process(&mut self, batch: Batch, now: SystemTime, out: &mut Vec<Batch>) {
        let batch = match batch.into_otlp().into_decoded() {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!("tail_sampling: dropping a batch that does not decode: {e}");
                return;
            }
        };
        let Batch::Traces(request) = batch else {
            out.push(batch);
            return;
        };
        let mut kept = Vec::new();
        self.hold(&request, now, &mut kept);
        self.emit(kept, out);
    }

    fn tick_interval(&self) -> Option<Duration> {
        // A tenth of the wait, between 10 ms and the Collector's 1 s.
        Some(
            (self.config.decision_wait / 10)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
        )
    }

    fn tick(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        let Some(until) = now.checked_sub(self.config.decision_wait) else {
            return;
        };
        let mut kept = Vec::new();
        self.decide_due(until, now, &mut kept);
        self.emit(kept, out);
    }

    fn flush(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        let mut kept = Vec::new();
        self.decide_due(now + Duration::from_secs(365 * 86_400), now, &mut kept);
        self.emit(kept, out);
    }

    fn register_telemetry(&mut self, id: &str, telemetry: &Telemetry) {
        self.counters =
            Counters::new(|family, kind, help| telemetry.component_counter(id, family, kind, help));
    }
}

impl crate::components::compiled::CompiledProcessor for TailSamplingConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(TailSampling::new(self))
    }
}

/// The registry's compile step for `tail_sampling`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    TailSamplingConfig::decode(value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

#[cfg(test)]
mod tests;
