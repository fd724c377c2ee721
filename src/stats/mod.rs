//! Pure computation: no async, no I/O, no clock. Time is always passed in.
//!
//! - `sketch`: DDSketch, a mergeable quantile sketch with relative error;
//! - `window`: sliding windows of sub-windows, merged on read;
//! - `forecast`: least-squares regression, predict_linear semantics.

pub mod anomaly;
pub mod forecast;
pub mod sketch;
pub mod window;
