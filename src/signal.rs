//! The batch type that travels through pipelines, and item counting.
//!
//! Data stays in the OTLP prost types from receiver to exporter (no
//! conversion, full fidelity). A batch is behind an `Arc`, so fanning out to
//! N exporters costs N pointer copies; a processor that mutates calls
//! `Arc::make_mut`, which copies only while the batch is shared.

use std::fmt;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::alerting::event::{Event, events_request};
use crate::wire::EncodedBatch;

/// The kinds of data a pipeline carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    pub fn parse(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// What one item of this signal is called in counters and messages.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit of work: an OTLP export request of one signal, decoded, or
/// validated but still encoded (for pipelines that only forward it), or
/// sidewatch's own alert and anomaly events, typed. Events are logs to the
/// pipeline (they travel in logs pipelines); `otlp` gives their log
/// records where OTLP is needed.
#[derive(Debug, Clone)]
pub enum Batch {
    Traces(Arc<ExportTraceServiceRequest>),
    Metrics(Arc<ExportMetricsServiceRequest>),
    Logs(Arc<ExportLogsServiceRequest>),
    Encoded(Arc<EncodedBatch>),
    Events(Arc<Vec<Event>>),
}

impl Batch {
    pub fn signal(&self) -> Signal {
        match self {
            Batch::Traces(_) => Signal::Traces,
            Batch::Metrics(_) => Signal::Metrics,
            Batch::Logs(_) => Signal::Logs,
            Batch::Encoded(e) => e.signal,
            Batch::Events(_) => Signal::Logs,
        }
    }

    /// Spans, metric data points or log records: the unit every counter uses.
    pub fn item_count(&self) -> usize {
        match self {
            Batch::Traces(r) => span_count(r),
            Batch::Metrics(r) => data_point_count(r),
            Batch::Logs(r) => log_record_count(r),
            Batch::Encoded(e) => e.items,
            Batch::Events(e) => e.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Batch::Traces(r) => r.resource_spans.is_empty(),
            Batch::Metrics(r) => r.resource_metrics.is_empty(),
            Batch::Logs(r) => r.resource_logs.is_empty(),
            Batch::Encoded(e) => e.records.is_empty(),
            Batch::Events(e) => e.is_empty(),
        }
    }

    /// The protobuf encoding; free for a batch that arrived encoded.
    pub fn to_protobuf(&self) -> bytes::Bytes {
        use prost::Message;
        match self {
            Batch::Traces(r) => r.encode_to_vec().into(),
            Batch::Metrics(r) => r.encode_to_vec().into(),
            Batch::Logs(r) => r.encode_to_vec().into(),
            Batch::Encoded(e) => e.bytes.clone(),
            Batch::Events(e) => events_request(e).encode_to_vec().into(),
        }
    }

    /// OTLP/JSON, decoding an encoded batch first.
    pub fn to_json(&self) -> Result<Vec<u8>, String> {
        let json = match self {
            Batch::Traces(r) => serde_json::to_vec(&**r),
            Batch::Metrics(r) => serde_json::to_vec(&**r),
            Batch::Logs(r) => serde_json::to_vec(&**r),
            Batch::Events(e) => serde_json::to_vec(&events_request(e)),
            Batch::Encoded(e) => {
                let decoded = e.decode().map_err(|e| format!("decoding the batch: {e}"))?;
                return decoded.to_json();
            }
        };
        json.map_err(|e| format!("JSON encoding: {e}"))
    }

    /// The batch as OTLP data: events become their log records (the OTLP
    /// edge), anything else is borrowed as it is.
    pub fn otlp(&self) -> std::borrow::Cow<'_, Batch> {
        match self {
            Batch::Events(e) => std::borrow::Cow::Owned(Batch::Logs(events_request(e).into())),
            other => std::borrow::Cow::Borrowed(other),
        }
    }

    /// `otlp`, by value.
    pub fn into_otlp(self) -> Batch {
        match self {
            Batch::Events(e) => Batch::Logs(events_request(&e).into()),
            other => other,
        }
    }

    /// The decoded form, borrowed when the batch is decoded already.
    pub fn decoded(&self) -> Result<std::borrow::Cow<'_, Batch>, prost::DecodeError> {
        match self {
            Batch::Encoded(e) => Ok(std::borrow::Cow::Owned(e.decode()?)),
            decoded => Ok(std::borrow::Cow::Borrowed(decoded)),
        }
    }

    /// The decoded form: an encoded batch is decoded, a decoded one is
    /// returned as is. Encoded batches were validated on arrival, so this
    /// fails only if that validation and prost disagree.
    pub fn into_decoded(self) -> Result<Batch, prost::DecodeError> {
        match self {
            Batch::Encoded(e) => e.decode(),
            decoded => Ok(decoded),
        }
    }
}

pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

pub fn log_record_count(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

pub fn data_point_count(request: &ExportMetricsServiceRequest) -> usize {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(metric_point_count)
        .sum()
}

pub fn metric_point_count(metric: &Metric) -> usize {
    match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}
