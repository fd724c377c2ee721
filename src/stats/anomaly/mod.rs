//! Anomaly detection primitives: rolling statistics (`rolling`), robust
//! median/MAD (`robust`), the anomaly likelihood (`likelihood`), and the
//! per-series detector with incidents (`detector`).

pub mod detector;
pub mod likelihood;
pub mod robust;
pub mod rolling;
pub mod seasonal;
