//! The batch type's two forms: each is produced at most once, and both
//! hold the same data and count the same items.

use std::sync::Arc;

use prost::Message;

use super::scan_tests::{logs, metrics, traces};
use super::{Batch, Signal, WireBatch};
use crate::alerting::event::Event;

fn decoded_samples() -> Vec<Batch> {
    let event = Event::Alert(crate::alerting::event::tests::sample());
    vec![
        Batch::Traces(traces(5).into()),
        Batch::Metrics(metrics().into()),
        Batch::Logs(logs(4).into()),
        Batch::Events(vec![event.clone(), event].into()),
    ]
}

fn wire(batch: &Batch) -> Batch {
    Batch::Wire(
        WireBatch::parse(batch.signal(), batch.to_protobuf())
            .unwrap()
            .into(),
    )
}

/// The decoded request inside a decoded batch, as a pointer, to tell one
/// decoding from another.
fn request_ptr(batch: &Batch) -> *const () {
    match batch {
        Batch::Traces(r) => Arc::as_ptr(r).cast(),
        Batch::Metrics(r) => Arc::as_ptr(r).cast(),
        Batch::Logs(r) => Arc::as_ptr(r).cast(),
        Batch::Events(e) => Arc::as_ptr(e).cast(),
        Batch::Wire(w) => Arc::as_ptr(w).cast(),
    }
}

#[test]
fn a_wire_batch_decodes_once_for_all_its_readers() {
    let batch = wire(&Batch::Traces(traces(3).into()));
    let Batch::Wire(inner) = &batch else {
        unreachable!()
    };
    assert!(!inner.is_decoded());
    // A fan-out: two readers share the wire batch.
    let other = batch.clone();
    let first = request_ptr(batch.decoded().unwrap());
    assert!(inner.is_decoded());
    assert_eq!(request_ptr(other.decoded().unwrap()), first);
    assert_eq!(request_ptr(batch.decoded().unwrap()), first);
    // By value while shared: the cached decoding, not a new one.
    assert_eq!(request_ptr(&other.into_decoded().unwrap()), first);
}

#[test]
fn a_wire_batch_held_once_decodes_into_a_request_it_alone_owns() {
    let batch = wire(&Batch::Traces(traces(3).into()));
    let Batch::Traces(request) = batch.into_decoded().unwrap() else {
        panic!("not traces")
    };
    // `Arc::make_mut` will not copy it.
    assert_eq!(Arc::strong_count(&request), 1);
    // Decoded before, then held once: the cached decoding is handed over.
    let batch = wire(&Batch::Traces(traces(3).into()));
    let cached = request_ptr(batch.decoded().unwrap());
    let Batch::Traces(request) = batch.into_decoded().unwrap() else {
        panic!("not traces")
    };
    assert_eq!(Arc::as_ptr(&request).cast(), cached);
    assert_eq!(Arc::strong_count(&request), 1);
}

#[test]
fn a_wire_batch_gives_its_bytes_without_encoding() {
    let batch = wire(&Batch::Logs(logs(2).into()));
    let Batch::Wire(inner) = &batch else {
        unreachable!()
    };
    // The same buffer every time: nothing is encoded.
    assert_eq!(batch.to_protobuf().as_ptr(), inner.bytes.as_ptr());
    assert_eq!(batch.to_protobuf().as_ptr(), inner.bytes.as_ptr());
    assert!(Arc::ptr_eq(&batch.to_wire().unwrap(), inner));
}

#[test]
fn a_decoded_batch_encodes_once_into_its_wire_form() {
    for batch in decoded_samples() {
        let wire = Batch::Wire(batch.to_wire().unwrap());
        // Every later reader of the wire form shares that one encoding.
        let bytes = wire.to_protobuf();
        assert_eq!(wire.to_protobuf().as_ptr(), bytes.as_ptr());
        assert!(matches!(wire.to_wire(), Some(w) if w.bytes.as_ptr() == bytes.as_ptr()));
    }
}

#[test]
fn both_forms_hold_the_same_data() {
    for batch in decoded_samples() {
        let otlp = batch.otlp().into_owned();
        for wire in [
            wire(&batch),
            Batch::Wire(WireBatch::from_decoded(&batch).into()),
        ] {
            assert_eq!(wire.signal(), batch.signal());
            assert_eq!(wire.to_protobuf(), otlp.to_protobuf());
            assert_eq!(wire.to_json().unwrap(), otlp.to_json().unwrap());
            let decoded = wire.decoded().unwrap();
            assert_eq!(decoded.to_protobuf(), otlp.to_protobuf());
        }
    }
}

#[test]
fn both_forms_count_the_same_items_and_records() {
    for batch in decoded_samples() {
        let scanned = WireBatch::parse(batch.signal(), batch.to_protobuf()).unwrap();
        let written = WireBatch::from_decoded(&batch);
        assert!(batch.item_count() > 0);
        assert_eq!(scanned.items, batch.item_count());
        assert_eq!(written.items, batch.item_count());
        // Records marked while encoding are where the scanner finds them.
        assert_eq!(written.records, scanned.records);
        assert_eq!(written.bytes, scanned.bytes);
        let wire = Batch::Wire(written.into());
        assert_eq!(wire.item_count(), batch.item_count());
        assert_eq!(wire.decoded().unwrap().item_count(), batch.item_count());
        assert_eq!(wire.is_empty(), batch.is_empty());
    }
}

#[test]
fn an_empty_request_is_empty_in_both_forms() {
    let empty = Batch::Traces(Default::default());
    let wire = Batch::Wire(WireBatch::from_decoded(&empty).into());
    assert!(empty.is_empty() && wire.is_empty());
    assert_eq!(wire.item_count(), 0);
    assert!(wire.to_protobuf().is_empty());
}

#[test]
fn bytes_that_do_not_decode_fail_every_reader_without_a_panic() {
    // Bytes a scan never saw (as from a damaged source): a truncated
    // record. The failure is kept, not retried, and reported each time.
    let mut bytes = traces(2).encode_to_vec();
    bytes.truncate(bytes.len() - 3);
    let wire = WireBatch::from_parts(Signal::Traces, bytes.into(), 2, Vec::new());
    let batch = Batch::Wire(wire.into());
    assert!(batch.decoded().is_err());
    assert!(batch.decoded().is_err());
    assert!(batch.to_json().is_err());
    assert!(batch.into_decoded().is_err());
}
