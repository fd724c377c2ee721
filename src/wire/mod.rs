//! OTLP requests in their wire form: validated and counted without being
//! decoded (`scan`, against the message tables in `schema`), batched and
//! split as bytes (`encoded`). Pipelines whose components never look
//! inside the data carry it this way from receiver to exporter.

pub mod encoded;
pub mod scan;
pub mod schema;

pub use encoded::{EncodedBatch, EncodedPending};

#[cfg(test)]
mod tests;
