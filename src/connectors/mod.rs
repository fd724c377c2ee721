//! Connectors: an exporter in one pipeline and a receiver in another. They
//! implement [`crate::processors::Processor`]: what they emit goes to every
//! pipeline that names them as a receiver.

pub mod alert;
pub mod anomaly;
pub mod count;
pub mod forward;
pub mod logpatterns;
pub mod red;
pub mod spanmetrics;
