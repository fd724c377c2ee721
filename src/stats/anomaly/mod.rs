//! Anomaly detection primitives: baselines (`baseline`: EWMA, rolling
//! mean/deviation, rolling median/MAD over `rolling` and `robust`), the
//! seasonal memory (`seasonal`), the "beyond everything seen" rule
//! (`record`), the anomaly likelihood (`likelihood`), and the per-series
//! detector with incidents (`detector`), and the grouping of incidents on
//! one resource into correlated incidents (`correlation`).

pub mod baseline;
pub mod correlation;
pub mod detector;
pub mod likelihood;
#[cfg(test)]
mod pinned_scores;
pub mod record;
pub mod robust;
pub mod rolling;
pub mod seasonal;
#[cfg(test)]
pub mod stationary_noise;
