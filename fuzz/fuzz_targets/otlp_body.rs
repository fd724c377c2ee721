//! An OTLP/HTTP request body as the receiver handles it: bounded
//! decompression (gzip, zstd or none) then protobuf or JSON decoding of
//! the three signals. Nothing may panic, and no output may exceed the
//! limit whatever the input claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use sidewatch::receivers::otlp::decode::{BodyError, Encoding, Format, decode, decompress};

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    // The first byte picks the encoding (low bits), the format (bit 4)
    // and the signal (top bits); the rest is the body.
    let encoding = match selector & 0x03 {
        1 => Encoding::Gzip,
        2 => Encoding::Zstd,
        _ => Encoding::Identity,
    };
    let format = if selector & 0x10 == 0 {
        Format::Protobuf
    } else {
        Format::Json
    };
    let bytes = match decompress(body, encoding, LIMIT) {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { limit }) => {
            assert_eq!(limit, LIMIT);
            return;
        }
        Err(BodyError::Malformed(_)) => return,
        Err(BodyError::OverBudget) => panic!("decompress has no budget to exceed"),
    };
    assert!(bytes.len() <= LIMIT);
    match selector >> 5 {
        0 | 1 => drop(decode::<ExportTraceServiceRequest>(&bytes, format)),
        2 | 3 => drop(decode::<ExportMetricsServiceRequest>(&bytes, format)),
        _ => drop(decode::<ExportLogsServiceRequest>(&bytes, format)),
    }
});
