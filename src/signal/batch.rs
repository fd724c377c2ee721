//! The one batch type that travels through pipelines.
//!
//! A batch holds what it has: decoded OTLP prost requests (full fidelity,
//! no conversion), the validated wire bytes it arrived as (`WireBatch`,
//! which decodes at most once, on first demand, and keeps the result next
//! to the bytes), or sidewatch's own typed events. Whoever reads it asks
//! for the form it needs: `decoded()` / `into_decoded()` for messages,
//! `to_protobuf()` for bytes (free when the batch holds them). A batch is
//! behind an `Arc`, so fanning out to N exporters costs N pointer copies;
//! a processor that mutates calls `Arc::make_mut`, which copies only while
//! the batch is shared.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::wire_batch::WireBatch;
use super::{Signal, data_point_count, log_record_count, span_count};
use crate::alerting::event::{Event, events_request};

/// One unit of work: an OTLP export request of one signal, decoded, or
/// in its wire form (validated bytes, decoded on demand), or sidewatch's
/// own alert and anomaly events, typed. Events are logs to the pipeline
/// (they travel in logs pipelines); `otlp` gives their log records where
/// OTLP is needed.
#[derive(Debug, Clone)]
pub enum Batch {
    Traces(Arc<ExportTraceServiceRequest>),
    Metrics(Arc<ExportMetricsServiceRequest>),
    Logs(Arc<ExportLogsServiceRequest>),
    Wire(Arc<WireBatch>),
    Events(Arc<Vec<Event>>),
}

impl Batch {
    pub fn signal(&self) -> Signal {
        match self {
            Batch::Traces(_) => Signal::Traces,
            Batch::Metrics(_) => Signal::Metrics,
            Batch::Logs(_) => Signal::Logs,
            Batch::Wire(w) => w.signal,
            Batch::Events(_) => Signal::Logs,
        }
    }

    /// Spans, metric data points or log records: the unit every counter
    /// uses. A wire batch counted them when it was validated.
    pub fn item_count(&self) -> usize {
        match self {
            Batch::Traces(r) => span_count(r),
            Batch::Metrics(r) => data_point_count(r),
            Batch::Logs(r) => log_record_count(r),
            Batch::Wire(w) => w.items,
            Batch::Events(e) => e.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Batch::Traces(r) => r.resource_spans.is_empty(),
            Batch::Metrics(r) => r.resource_metrics.is_empty(),
            Batch::Logs(r) => r.resource_logs.is_empty(),
            Batch::Wire(w) => w.records.is_empty(),
            Batch::Events(e) => e.is_empty(),
        }
    }

    /// The protobuf encoding; free for a batch that holds its wire form.
    pub fn to_protobuf(&self) -> bytes::Bytes {
        use prost::Message;
        match self {
            Batch::Traces(r) => r.encode_to_vec().into(),
            Batch::Metrics(r) => r.encode_to_vec().into(),
            Batch::Logs(r) => r.encode_to_vec().into(),
            Batch::Wire(w) => w.bytes.clone(),
            Batch::Events(e) => events_request(e).encode_to_vec().into(),
        }
    }

    /// The wire form: the batch itself when it holds one, otherwise its
    /// encoding, validated (`None` only when prost cannot read its own
    /// encoding back: nesting deeper than its recursion limit, which JSON
    /// allows).
    pub fn to_wire(&self) -> Option<Arc<WireBatch>> {
        match self {
            Batch::Wire(w) => Some(w.clone()),
            decoded => WireBatch::encode(decoded).map(Arc::new),
        }
    }

    /// OTLP/JSON, from the decoded form.
    pub fn to_json(&self) -> Result<Vec<u8>, String> {
        let json = match self {
            Batch::Traces(r) => serde_json::to_vec(&**r),
            Batch::Metrics(r) => serde_json::to_vec(&**r),
            Batch::Logs(r) => serde_json::to_vec(&**r),
            Batch::Events(e) => serde_json::to_vec(&events_request(e)),
            Batch::Wire(_) => {
                let decoded = self
                    .decoded()
                    .map_err(|e| format!("decoding the batch: {e}"))?;
                return decoded.to_json();
            }
        };
        json.map_err(|e| format!("JSON encoding: {e}"))
    }

    /// The batch as OTLP data: events become their log records (the OTLP
    /// edge), anything else is borrowed as it is.
    pub fn otlp(&self) -> Cow<'_, Batch> {
        match self {
            Batch::Events(e) => Cow::Owned(Batch::Logs(events_request(e).into())),
            other => Cow::Borrowed(other),
        }
    }

    /// `otlp`, by value.
    pub fn into_otlp(self) -> Batch {
        match self {
            Batch::Events(e) => Batch::Logs(events_request(&e).into()),
            other => other,
        }
    }

    /// The decoded form, borrowed: a wire batch decodes on the first call
    /// and keeps the result, so every later caller (other exporters of a
    /// fan-out included) reads the same decoded request.
    pub fn decoded(&self) -> Result<&Batch, prost::DecodeError> {
        match self {
            Batch::Wire(w) => w.decoded(),
            decoded => Ok(decoded),
        }
    }

    /// The decoded form, by value. A wire batch held only here is decoded
    /// into a request this batch alone owns (so `Arc::make_mut` does not
    /// copy it); a shared one gives its cached decoded form. Wire batches
    /// were validated on arrival, so this fails only if that validation
    /// and prost disagree.
    pub fn into_decoded(self) -> Result<Batch, prost::DecodeError> {
        match self {
            Batch::Wire(w) => WireBatch::into_decoded(w),
            decoded => Ok(decoded),
        }
    }
}
