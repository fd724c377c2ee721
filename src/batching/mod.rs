//! Appending and splitting OTLP requests at item granularity (spans, data
//! points, log records), keeping each item's resource and scope.

// Index loops let us drain the vector being walked.
#![allow(clippy::needless_range_loop)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum, Summary,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use crate::alerting::event::Event;
use crate::signal::{Batch, Signal, WireBatch, metric_point_count};

mod wire;

pub use wire::WirePending;

/// An owned request of one signal, for processors that accumulate:
/// decoded, or as wire bytes (see `wire`).
#[derive(Debug)]
pub enum Pending {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
    Wire(WirePending),
    /// Typed alert and anomaly events, kept typed while batched.
    Events(Vec<Event>),
}

impl Pending {
    /// Takes ownership of a batch's request; copies only if it is shared.
    pub fn from_batch(batch: Batch) -> Pending {
        match batch {
            Batch::Traces(r) => Pending::Traces(std::sync::Arc::unwrap_or_clone(r)),
            Batch::Metrics(r) => Pending::Metrics(std::sync::Arc::unwrap_or_clone(r)),
            Batch::Logs(r) => Pending::Logs(std::sync::Arc::unwrap_or_clone(r)),
            Batch::Wire(e) => {
                let mut pending = WirePending::new(e.signal);
                pending.append(&e);
                Pending::Wire(pending)
            }
            Batch::Events(e) => Pending::Events(std::sync::Arc::unwrap_or_clone(e)),
        }
    }

    pub fn into_batch(self) -> Batch {
        match self {
            Pending::Traces(r) => Batch::Traces(r.into()),
            Pending::Metrics(r) => Batch::Metrics(r.into()),
            Pending::Logs(r) => Batch::Logs(r.into()),
            Pending::Wire(mut e) => Batch::Wire(e.take_all().into()),
            Pending::Events(e) => Batch::Events(e.into()),
        }
    }

    fn signal(&self) -> Signal {
        match self {
            Pending::Traces(_) => Signal::Traces,
            Pending::Metrics(_) => Signal::Metrics,
            Pending::Logs(_) | Pending::Events(_) => Signal::Logs,
            Pending::Wire(e) => e.signal(),
        }
    }

    /// Appends a batch; one that arrived encoded is copied once, straight
    /// into the held bytes.
    pub fn append_batch(&mut self, batch: Batch) -> Result<(), Pending> {
        if let (Pending::Wire(held), Batch::Wire(e)) = (&mut *self, &batch)
            && held.signal() == e.signal
        {
            held.append(e);
            return Ok(());
        }
        self.append(Pending::from_batch(batch))
    }

    /// Appends `other`; returns it back if the signals differ (or, rarely,
    /// if decoded data cannot join encoded data: see `WireBatch::encode`).
    /// Once encoded data is held, everything is held encoded: a pipeline
    /// gets encoded data only when everything it feeds sends protobuf as is.
    pub fn append(&mut self, mut other: Pending) -> Result<(), Pending> {
        let signal = self.signal();
        if signal != other.signal() {
            return Err(other);
        }
        // Events joined with log records from elsewhere become log records.
        match (&mut *self, &other) {
            (Pending::Events(_), Pending::Events(_)) => {}
            (Pending::Events(_), _) => self.events_to_logs(),
            (_, Pending::Events(_)) => other.events_to_logs(),
            _ => {}
        }
        if matches!(other, Pending::Wire(_)) && !matches!(self, Pending::Wire(_)) {
            let placeholder = Pending::Wire(WirePending::new(signal));
            let held = std::mem::replace(self, placeholder).into_batch();
            match WireBatch::encode(&held) {
                Some(encoded) => {
                    let mut pending = WirePending::new(signal);
                    pending.append(&encoded);
                    *self = Pending::Wire(pending);
                }
                None => {
                    *self = Pending::from_batch(held);
                    return Err(other);
                }
            }
        }
        match (&mut *self, other) {
            (Pending::Traces(a), Pending::Traces(b)) => a.resource_spans.extend(b.resource_spans),
            (Pending::Metrics(a), Pending::Metrics(b)) => {
                a.resource_metrics.extend(b.resource_metrics)
            }
            (Pending::Logs(a), Pending::Logs(b)) => a.resource_logs.extend(b.resource_logs),
            (Pending::Events(a), Pending::Events(b)) => a.extend(b),
            (Pending::Wire(a), Pending::Wire(b)) => a.absorb(b),
            (Pending::Wire(a), decoded) => {
                let batch = decoded.into_batch();
                match WireBatch::encode(&batch) {
                    Some(encoded) => a.append(&encoded),
                    None => return Err(Pending::from_batch(batch)),
                }
            }
            (_, other) => return Err(other),
        }
        Ok(())
    }

    /// Removes up to `max_items` items from the front (encoded: whole
    /// resources while they fit, so possibly fewer).
    pub fn take_front(&mut self, max_items: usize) -> Pending {
        match self {
            Pending::Wire(e) => {
                let mut front = WirePending::new(e.signal());
                front.append(&e.take_front(max_items));
                Pending::Wire(front)
            }
            Pending::Traces(r) => Pending::Traces(ExportTraceServiceRequest {
                resource_spans: take_front(&mut r.resource_spans, max_items),
            }),
            Pending::Metrics(r) => Pending::Metrics(ExportMetricsServiceRequest {
                resource_metrics: take_front(&mut r.resource_metrics, max_items),
            }),
            Pending::Logs(r) => Pending::Logs(ExportLogsServiceRequest {
                resource_logs: take_front(&mut r.resource_logs, max_items),
            }),
            Pending::Events(e) => {
                let rest = e.split_off(max_items.min(e.len()));
                Pending::Events(std::mem::replace(e, rest))
            }
        }
    }

    /// Typed events as their log records: for joining other log records.
    fn events_to_logs(&mut self) {
        if let Pending::Events(events) = self {
            *self = Pending::Logs(crate::alerting::event::events_request(events));
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Pending::Traces(r) => r.resource_spans.is_empty(),
            Pending::Metrics(r) => r.resource_metrics.is_empty(),
            Pending::Logs(r) => r.resource_logs.is_empty(),
            Pending::Wire(e) => e.is_empty(),
            Pending::Events(e) => e.is_empty(),
        }
    }
}

/// One level of OTLP's nesting (resource, scope, metric) that a batch is
/// split through: how many items (spans, records, points) it holds, and
/// how to move its first `n` into a new value with the same header.
trait Nested: Sized {
    fn count(&self) -> usize;
    /// Only called with `0 < n < self.count()`.
    fn split_front(&mut self, n: usize) -> Self;
}

/// Removes up to `max_items` items from the front of `from`: whole values
/// while they fit, then the front part of the next one.
fn take_front<T: Nested>(from: &mut Vec<T>, max_items: usize) -> Vec<T> {
    let mut remaining = max_items;
    let mut whole = 0;
    for value in from.iter() {
        let count = value.count();
        if remaining == 0 || count > remaining {
            break;
        }
        remaining -= count;
        whole += 1;
    }
    let mut out: Vec<T> = from.drain(..whole).collect();
    if remaining > 0
        && let Some(first) = from.first_mut()
    {
        out.push(first.split_front(remaining));
    }
    out
}

/// `Nested` for a resource or scope level: the header fields are cloned
/// into the split-off part, the children split (`nested`) or, for the
/// items themselves (`items`), moved.
macro_rules! level {
    ($level:ident, nested $children:ident, $($header:ident),+) => {
        impl Nested for $level {
            fn count(&self) -> usize {
                self.$children.iter().map(Nested::count).sum()
            }
            fn split_front(&mut self, n: usize) -> Self {
                $level {
                    $($header: self.$header.clone(),)+
                    $children: take_front(&mut self.$children, n),
                }
            }
        }
    };
    ($level:ident, items $children:ident, $($header:ident),+) => {
        impl Nested for $level {
            fn count(&self) -> usize {
                self.$children.len()
            }
            fn split_front(&mut self, n: usize) -> Self {
                $level {
                    $($header: self.$header.clone(),)+
                    $children: self.$children.drain(..n).collect(),
                }
            }
        }
    };
}

level!(ResourceSpans, nested scope_spans, resource, schema_url);
level!(ScopeSpans, items spans, scope, schema_url);
level!(ResourceLogs, nested scope_logs, resource, schema_url);
level!(ScopeLogs, items log_records, scope, schema_url);
level!(ResourceMetrics, nested scope_metrics, resource, schema_url);
level!(ScopeMetrics, nested metrics, scope, schema_url);

impl Nested for Metric {
    fn count(&self) -> usize {
        metric_point_count(self)
    }
    fn split_front(&mut self, n: usize) -> Self {
        take_points(self, n)
    }
}

/// Moves the first `count` data points of `metric` into a new metric with
/// the same name, unit and aggregation.
fn take_points(metric: &mut Metric, count: usize) -> Metric {
    let data = match &mut metric.data {
        Some(Data::Gauge(g)) => Some(Data::Gauge(Gauge {
            data_points: g.data_points.drain(..count).collect(),
        })),
        Some(Data::Sum(s)) => Some(Data::Sum(Sum {
            data_points: s.data_points.drain(..count).collect(),
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        })),
        Some(Data::Histogram(h)) => Some(Data::Histogram(Histogram {
            data_points: h.data_points.drain(..count).collect(),
            aggregation_temporality: h.aggregation_temporality,
        })),
        Some(Data::ExponentialHistogram(h)) => {
            Some(Data::ExponentialHistogram(ExponentialHistogram {
                data_points: h.data_points.drain(..count).collect(),
                aggregation_temporality: h.aggregation_temporality,
            }))
        }
        Some(Data::Summary(s)) => Some(Data::Summary(Summary {
            data_points: s.data_points.drain(..count).collect(),
        })),
        None => None,
    };
    Metric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        metadata: metric.metadata.clone(),
        data,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::signal::{data_point_count, span_count};
    use opentelemetry_proto::tonic::metrics::v1::NumberDataPoint;
    use opentelemetry_proto::tonic::trace::v1::Span;

    pub fn traces(shape: &[&[usize]]) -> ExportTraceServiceRequest {
        let mut n = 0u64;
        ExportTraceServiceRequest {
            resource_spans: shape
                .iter()
                .map(|scopes| ResourceSpans {
                    scope_spans: scopes
                        .iter()
                        .map(|&spans| ScopeSpans {
                            spans: (0..spans)
                                .map(|_| {
                                    n += 1;
                                    Span {
                                        name: format!("span-{n}"),
                                        // Valid ids: the wire scanner refuses others.
                                        trace_id: n.to_be_bytes().repeat(2),
                                        span_id: n.to_be_bytes().to_vec(),
                                        ..Default::default()
                                    }
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    pub fn names(r: &ExportTraceServiceRequest) -> Vec<String> {
        r.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    /// Span names of a traces batch, decoded or encoded, in order.
    pub fn batch_names(batch: &Batch) -> Vec<String> {
        match batch.decoded().unwrap() {
            Batch::Traces(r) => names(r),
            _ => panic!("not traces"),
        }
    }

    #[test]
    fn splitting_traces_keeps_every_span_in_order() {
        let original = traces(&[&[3, 2], &[4], &[0], &[5, 1]]);
        let all = names(&original);
        for max in 1..=16 {
            let mut pending = Pending::Traces(original.clone());
            let mut seen = Vec::new();
            while !pending.is_empty() {
                let Pending::Traces(front) = pending.take_front(max) else {
                    unreachable!()
                };
                assert!(span_count(&front) <= max);
                seen.extend(names(&front));
            }
            assert_eq!(seen, all, "max {max}");
        }
    }

    #[test]
    fn splitting_metrics_splits_inside_a_metric() {
        let metric = Metric {
            name: "m".into(),
            unit: "s".into(),
            data: Some(Data::Sum(Sum {
                data_points: (0..5)
                    .map(|i| NumberDataPoint {
                        time_unix_nano: i,
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![metric.clone(), metric],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut pending = Pending::Metrics(request);
        let mut sizes = Vec::new();
        while !pending.is_empty() {
            let Pending::Metrics(front) = pending.take_front(3) else {
                unreachable!()
            };
            let first = &front.resource_metrics[0].scope_metrics[0].metrics[0];
            assert_eq!((first.name.as_str(), first.unit.as_str()), ("m", "s"));
            sizes.push(data_point_count(&front));
        }
        assert_eq!(sizes, vec![3, 3, 3, 1]);
    }

    #[test]
    fn events_stay_typed_while_batched_and_join_log_records_as_records() {
        use crate::alerting::anomaly_event::{AnomalyEvent, AnomalyState};
        let event = Event::Anomaly(AnomalyEvent {
            metric: "m".into(),
            state: AnomalyState::Started,
            peak_value: 1.0,
            expected: 0.0,
            zscore: 5.0,
            peak_score: 0.9,
            started_at: 1,
            ended_at: None,
            baseline: "ewma".into(),
            labels: Vec::new(),
            time_unix_nano: 1_000_000_000,
        });
        let events = || Batch::Events(vec![event.clone(), event.clone()].into());
        let mut pending = Pending::from_batch(events());
        pending.append_batch(events()).unwrap();
        let Pending::Events(front) = pending.take_front(3) else {
            panic!("typed events became records")
        };
        assert_eq!(front.len(), 3);
        assert_eq!(pending.into_batch().item_count(), 1);

        let mut pending = Pending::from_batch(events());
        pending
            .append_batch(Batch::Logs(ExportLogsServiceRequest::default().into()))
            .unwrap();
        let Pending::Logs(records) = pending else {
            panic!("log records joined typed events")
        };
        assert_eq!(crate::signal::log_record_count(&records), 2);
    }
}
