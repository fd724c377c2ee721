//! Series counts of stateful processors and connectors (red, percentiles,
//! anomaly, alert), shared with the telemetry endpoint: how many series
//! each holds, its cap, and how many items the cap turned away or folded
//! into the overflow series.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct CardinalityStats {
    pub series: AtomicU64,
    pub max_series: AtomicU64,
    /// Items (spans, points, samples) beyond the cap.
    pub overflowed_items: AtomicU64,
}

impl CardinalityStats {
    pub fn new(max_series: usize) -> Self {
        let stats = CardinalityStats::default();
        stats.max_series.store(max_series as u64, Ordering::Relaxed);
        stats
    }

    /// Publishes the owner's current figures (plain stores: the owner is
    /// the only writer).
    pub fn publish(&self, series: usize, overflowed_items: u64) {
        self.series.store(series as u64, Ordering::Relaxed);
        self.overflowed_items
            .store(overflowed_items, Ordering::Relaxed);
    }
}

/// A registered component: `kind` (processor or connector), its id, and
/// for processors the pipeline it runs in.
#[derive(Debug)]
pub struct Registered {
    pub kind: &'static str,
    pub component: String,
    pub pipeline: String,
    pub stats: std::sync::Arc<CardinalityStats>,
}
