//! Pure computation: no async, no I/O, no clock. Time is always passed in.
//!
//! - `forecast`: least-squares regression, predict_linear semantics.

pub mod forecast;
