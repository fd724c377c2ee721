//! Wire batches appended one after another, record by record, for the
//! batch processor and the queue: batching is copying bytes, and splitting
//! at a record boundary is cutting them; only a record larger than a whole
//! batch has to be decoded to be split.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::Pending;
use crate::signal::{Signal, WireBatch, decode};
use crate::wire::scan::Record;

/// Wire batches appended one after another, record by record.
#[derive(Debug)]
pub struct WirePending {
    signal: Signal,
    buf: BytesMut,
    /// (length in bytes, items) of each record in `buf`, in order.
    records: VecDeque<(usize, usize)>,
    items: usize,
}

impl WirePending {
    pub fn new(signal: Signal) -> Self {
        WirePending {
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
    pub fn append(&mut self, batch: &WireBatch) {
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
    pub fn absorb(&mut self, mut other: WirePending) {
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
    pub fn take_all(&mut self) -> WireBatch {
        let records = self.records.len();
        self.take_records(records)
    }

    /// Up to `max_items` items from the front: whole records while they
    /// fit, so a batch may hold fewer; a first record that alone holds
    /// more is decoded and split.
    pub fn take_front(&mut self, max_items: usize) -> WireBatch {
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

    fn take_records(&mut self, count: usize) -> WireBatch {
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
        WireBatch::from_parts(self.signal, bytes, items, records)
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
        let (Some(front), Some(rest)) = (WireBatch::encode(&front), WireBatch::encode(&rest))
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

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    use super::WirePending;
    use crate::signal::scan_tests::traces;
    use crate::signal::{Batch, Signal, WireBatch};

    fn encoded(request: &ExportTraceServiceRequest) -> WireBatch {
        WireBatch::parse(Signal::Traces, request.encode_to_vec().into()).unwrap()
    }

    fn span_names(batch: &WireBatch) -> Vec<String> {
        super::super::tests::batch_names(&Batch::Wire(batch.clone().into()))
    }

    #[test]
    fn appended_requests_decode_as_one_and_split_at_resources() {
        let mut pending = WirePending::new(Signal::Traces);
        for spans in [3, 4, 5] {
            pending.append(&encoded(&traces(spans)));
        }
        assert_eq!(pending.items(), 12);
        // 3 + 4 fit in 8; 5 more would not: the cut is at a resource.
        let front = pending.take_front(8);
        assert_eq!((front.items, front.records.len()), (7, 2));
        assert_eq!(span_names(&front).len(), 7);
        // A resource of 5 spans with room for 2: decoded and split.
        let two = pending.take_front(2);
        assert_eq!(span_names(&two), vec!["span 0", "span 1"]);
        let rest = pending.take_all();
        assert_eq!(span_names(&rest), vec!["span 2", "span 3", "span 4"]);
        assert!(pending.is_empty());
        assert_eq!(pending.items(), 0);
    }
}
