//! OTLP protobuf read without decoding: `scan` validates and counts an
//! export request against the message tables in `schema`, and finds where
//! its top-level records start and end. A leaf: bytes in, counts and
//! offsets out; the batch that carries such bytes is `signal::WireBatch`.

pub mod scan;
pub mod schema;
