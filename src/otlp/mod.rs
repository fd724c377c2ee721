//! Helpers over the OTLP prost types that every component shares, so no
//! component borrows another's: attribute values as text and key-value
//! builders (`value`), series identity (`series`), and the conversions between the clock's
//! `SystemTime`, Unix seconds and OTLP's Unix nanoseconds (`time`).

pub mod series;
pub mod time;
pub mod value;
