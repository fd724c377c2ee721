//! A batch in its wire form: the protobuf bytes of an export request,
//! validated and counted without decoding (`wire::scan`), with the decoded
//! request cached next to them once someone asks for it.
//!
//! An OTLP export request is a list of top-level records (field 1: one
//! ResourceSpans, ResourceLogs or ResourceMetrics each), and the
//! concatenation of two encoded requests is the encoding of the request
//! holding both lists; `records` marks where each starts and ends, so
//! batching can copy and cut bytes (`batching::wire`).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::{Batch, Signal};
use crate::alerting::event::events_request;
use crate::datamodel::ids::CheckIds;
use crate::wire::scan::{Record, ScanError, scan};
use crate::wire::schema;

/// A validated, encoded export request of one signal, and its decoded
/// form once it has been needed.
#[derive(Debug, Clone)]
pub struct WireBatch {
    pub signal: Signal,
    pub bytes: Bytes,
    pub items: usize,
    pub records: Vec<Record>,
    /// Filled by the first `decoded`: decoding happens at most once per
    /// wire batch, however many readers share it. The error is kept too,
    /// so a batch that does not decode is not decoded again for each.
    decoded: OnceLock<Result<Batch, prost::DecodeError>>,
}

pub fn schema_of(signal: Signal) -> &'static schema::Message {
    match signal {
        Signal::Traces => &schema::EXPORT_TRACES,
        Signal::Metrics => &schema::EXPORT_METRICS,
        Signal::Logs => &schema::EXPORT_LOGS,
    }
}

impl WireBatch {
    /// Validates a request as received; what prost would refuse is refused.
    pub fn parse(signal: Signal, bytes: Bytes) -> Result<WireBatch, ScanError> {
        let scanned = scan(schema_of(signal), &bytes)?;
        Ok(WireBatch::from_parts(
            signal,
            bytes,
            scanned.items,
            scanned.records,
        ))
    }

    /// Bytes whose records were counted already (cut from validated bytes).
    pub fn from_parts(signal: Signal, bytes: Bytes, items: usize, records: Vec<Record>) -> Self {
        WireBatch {
            signal,
            bytes,
            items,
            records,
            decoded: OnceLock::new(),
        }
    }

    /// The encoding of a decoded batch (events: of their log records);
    /// `None` for one in its wire form already, or that prost could not
    /// read back: nesting deeper than its recursion limit, which JSON
    /// allows.
    pub fn encode(batch: &Batch) -> Option<WireBatch> {
        if let Batch::Wire(_) = batch {
            return None;
        }
        WireBatch::parse(batch.signal(), batch.to_protobuf()).ok()
    }

    /// The encoding of a decoded batch (events: of their log records),
    /// its records marked as they are written rather than found by a
    /// scan. Not read back: for sending and storing, where bytes prost
    /// might refuse (nesting deeper than its recursion limit) still go as
    /// they are, as they would encoded any other way.
    pub fn from_decoded(batch: &Batch) -> WireBatch {
        fn records<R: prost::Message>(
            resources: &[R],
            count: impl Fn(&R) -> usize,
        ) -> (Vec<u8>, usize, Vec<Record>) {
            let len = resources
                .iter()
                .map(|r| prost::encoding::message::encoded_len(1, r))
                .sum();
            let mut buf = Vec::with_capacity(len);
            let mut records = Vec::with_capacity(resources.len());
            let mut items = 0;
            for resource in resources {
                let start = buf.len();
                prost::encoding::message::encode(1, resource, &mut buf);
                let n = count(resource);
                items += n;
                records.push(Record {
                    start,
                    end: buf.len(),
                    items: n,
                });
            }
            (buf, items, records)
        }
        let log_records = |r: &opentelemetry_proto::tonic::logs::v1::ResourceLogs| {
            r.scope_logs.iter().map(|s| s.log_records.len()).sum()
        };
        let (bytes, items, records) = match batch {
            Batch::Traces(r) => records(&r.resource_spans, |r| {
                r.scope_spans.iter().map(|s| s.spans.len()).sum()
            }),
            Batch::Metrics(r) => records(&r.resource_metrics, |r| {
                r.scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .map(super::metric_point_count)
                    .sum()
            }),
            Batch::Logs(r) => records(&r.resource_logs, log_records),
            Batch::Events(e) => records(&events_request(e).resource_logs, log_records),
            Batch::Wire(w) => return w.without_decoded(),
        };
        WireBatch::from_parts(batch.signal(), bytes.into(), items, records)
    }

    /// The bytes and records alone, without the cached decoded form.
    pub fn without_decoded(&self) -> WireBatch {
        WireBatch::from_parts(
            self.signal,
            self.bytes.clone(),
            self.items,
            self.records.clone(),
        )
    }

    /// The decoded form, decoded on the first call only.
    pub fn decoded(&self) -> Result<&Batch, prost::DecodeError> {
        self.decoded
            .get_or_init(|| decode(self.signal, &self.bytes))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether `decoded` has run (for tests and the debug exporter).
    pub fn is_decoded(&self) -> bool {
        self.decoded.get().is_some()
    }

    /// The decoded form by value: the cached one if there is one, else a
    /// fresh decoding that, when nobody else holds this batch, goes
    /// straight to the caller without being cached (no shared copy, so
    /// the caller may mutate it without copying).
    pub fn into_decoded(wire: Arc<WireBatch>) -> Result<Batch, prost::DecodeError> {
        match Arc::try_unwrap(wire) {
            Ok(only) => match only.decoded.into_inner() {
                Some(decoded) => decoded,
                None => decode(only.signal, &only.bytes),
            },
            Err(shared) => shared.decoded().cloned(),
        }
    }
}

pub fn decode(signal: Signal, bytes: &[u8]) -> Result<Batch, prost::DecodeError> {
    Ok(match signal {
        Signal::Traces => Batch::Traces(ExportTraceServiceRequest::decode(bytes)?.into()),
        Signal::Metrics => Batch::Metrics(ExportMetricsServiceRequest::decode(bytes)?.into()),
        Signal::Logs => Batch::Logs(ExportLogsServiceRequest::decode(bytes)?.into()),
    })
}

/// What the decoded receive path accepts: prost's decoding, then the id
/// lengths (`datamodel::ids`); the scanner accepts exactly this.
pub fn decode_checked(signal: Signal, bytes: &[u8]) -> Result<Batch, String> {
    let batch = decode(signal, bytes).map_err(|e| e.to_string())?;
    check_ids(&batch).map_err(|e| e.to_string())?;
    Ok(batch)
}

/// The ids of a decoded batch (a wire one was checked by the scanner).
pub fn check_ids(batch: &Batch) -> Result<(), crate::datamodel::ids::IdError> {
    match batch {
        Batch::Traces(request) => request.check_ids(),
        Batch::Logs(request) => request.check_ids(),
        _ => Ok(()),
    }
}
