//! A batch kept in its protobuf encoding, and the buffer the batch
//! processor fills with such batches.
//!
//! An OTLP export request is a list of top-level records (field 1: one
//! ResourceSpans, ResourceLogs or ResourceMetrics each), and the
//! concatenation of two encoded requests is the encoding of the request
//! holding both lists. So batching is copying bytes, and splitting at a
//! record boundary is cutting them; only a record larger than a whole
//! batch has to be decoded to be split.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::scan::{Record, ScanError, scan};
use super::schema;
use crate::batching::Pending;
use crate::signal::{Batch, Signal};

/// A validated, encoded export request of one signal.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    pub signal: Signal,
    pub bytes: Bytes,
    pub items: usize,
    pub records: Vec<Record>,
}

pub fn schema_of(signal: Signal) -> &'static schema::Message {
    match signal {
        Signal::Traces => &schema::EXPORT_TRACES,
        Signal::Metrics => &schema::EXPORT_METRICS,
        Signal::Logs => &schema::EXPORT_LOGS,
    }
}

impl EncodedBatch {
    /// Validates a request as received; what prost would refuse is refused.
    pub fn parse(signal: Signal, bytes: Bytes) -> Result<EncodedBatch, ScanError> {
        let scanned = scan(schema_of(signal), &bytes)?;
        Ok(EncodedBatch {
            signal,
            bytes,
            items: scanned.items,
            records: scanned.records,
        })
    }

    /// The encoding of a decoded batch (`None` for one that is encoded
    /// already, or that prost could not read back: nesting deeper than
    /// its recursion limit, which JSON allows).
    pub fn encode(batch: &Batch) -> Option<EncodedBatch> {
        if let Batch::Encoded(_) = batch {
            return None;
        }
        EncodedBatch::parse(batch.signal(), batch.to_protobuf()).ok()
    }

    /// The decoded form, for components that look inside.
    pub fn decode(&self) -> Result<Batch, prost::DecodeError> {
        decode(self.signal, &self.bytes)
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
    crate::datamodel::ids::check_batch(&batch).map_err(|e| e.to_string())?;
    Ok(batch)
}

/// Encoded batches appended one after another, record by record.
#[derive(Debug)]
pub struct EncodedPending {
    signal: Signal,
    buf: BytesMut,
    /// (length in bytes, items) of each record in `buf`, in order.
    records: VecDeque<(usize, usize)>,
    items: usize,
}

impl EncodedPending {
    pub fn new(signal: Signal) -> Self {
        EncodedPending {
            signal,
            buf: BytesMut::new(),
            records: VecDeque::new(),
            items: 0,
        }
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    pub fn items(&self) -> usize {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Appends the records of `batch` (fields the request has beside its
    /// records are dropped, as decoding would drop them).
    pub fn append(&mut self, batch: &EncodedBatch) {
        debug_assert_eq!(batch.signal, self.signal);
        for record in &batch.records {
            self.buf
                .extend_from_slice(&batch.bytes[record.start..record.end]);
            self.records
                .push_back((record.end - record.start, record.items));
            self.items += record.items;
        }
    }

    /// Appends everything `other` holds.
    pub fn absorb(&mut self, mut other: EncodedPending) {
        debug_assert_eq!(other.signal, self.signal);
        if self.is_empty() {
            std::mem::swap(self, &mut other);
            return;
        }
        self.buf.extend_from_slice(&other.buf);
        self.records.extend(other.records);
        self.items += other.items;
    }

    /// Everything held, as one batch.
    pub fn take_all(&mut self) -> EncodedBatch {
        let records = self.records.len();
        self.take_records(records)
    }

    /// Up to `max_items` items from the front: whole records while they
    /// fit, so a batch may hold fewer; a first record that alone holds
    /// more is decoded and split.
    pub fn take_front(&mut self, max_items: usize) -> EncodedBatch {
        let mut items = 0;
        let mut count = 0;
        for &(_, record_items) in &self.records {
            if items + record_items > max_items {
                break;
            }
            items += record_items;
            count += 1;
        }
        if count == 0 && !self.records.is_empty() {
            self.split_first(max_items);
            count = 1;
        }
        self.take_records(count)
    }

    fn take_records(&mut self, count: usize) -> EncodedBatch {
        let mut records = Vec::with_capacity(count);
        let mut offset = 0;
        let mut items = 0;
        for (len, record_items) in self.records.drain(..count) {
            records.push(Record {
                start: offset,
                end: offset + len,
                items: record_items,
            });
            offset += len;
            items += record_items;
        }
        self.items -= items;
        // Copied out at its exact size rather than split off: a split
        // would share (and keep alive) the buffer's whole allocation, up to
        // twice the batch, while the batch waits in a queue; the copy
        // leaves the buffer to be reused for the next batch.
        let bytes = Bytes::copy_from_slice(&self.buf[..offset]);
        bytes::Buf::advance(&mut self.buf, offset);
        EncodedBatch {
            signal: self.signal,
            bytes,
            items,
            records,
        }
    }

    /// Replaces the first record by two: its first `max_items` items,
    /// and the rest.
    fn split_first(&mut self, max_items: usize) {
        let (len, items) = self.records[0];
        // One record is the encoding of a request holding just it.
        let whole = match decode(self.signal, &self.buf[..len]) {
            Ok(batch) => batch,
            // Validated on the way in; leave it whole rather than lose it.
            Err(_) => return,
        };
        let mut rest = Pending::from_batch(whole);
        let front = rest.take_front(max_items).into_batch();
        let rest = rest.into_batch();
        let (Some(front), Some(rest)) = (EncodedBatch::encode(&front), EncodedBatch::encode(&rest))
        else {
            return;
        };
        let tail = self.buf.split_off(len);
        self.buf.clear();
        self.records.pop_front();
        for part in [&rest, &front] {
            for record in part.records.iter().rev() {
                self.records
                    .push_front((record.end - record.start, record.items));
            }
        }
        self.buf.extend_from_slice(&front.bytes);
        self.buf.extend_from_slice(&rest.bytes);
        self.buf.unsplit(tail);
        debug_assert_eq!(front.items + rest.items, items);
    }
}
