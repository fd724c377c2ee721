//! Data points (and spans) a processor, connector or exporter left out of
//! its computation because they violate the OTLP data model, counted by
//! component type and reason: `sidewatch_dropped_points_total`.
//!
//! Why a process-wide table of atomics rather than a counter per
//! component instance: the checks run deep inside pure code (`datamodel`)
//! that knows only which kind of component asked, every reason is known
//! at compile time, and a fixed table needs no registration and no lock
//! on the hot path. The component label is the YAML type, not its id.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::datamodel::Violation;

/// The component types that check their input against the data model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Percentiles,
    Red,
    Anomaly,
    Alert,
    Prometheus,
    PrometheusRemoteWrite,
    SpanMetrics,
}

impl Component {
    const ALL: [Component; 7] = [
        Component::Percentiles,
        Component::Red,
        Component::Anomaly,
        Component::Alert,
        Component::Prometheus,
        Component::PrometheusRemoteWrite,
        Component::SpanMetrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Percentiles => "percentiles",
            Component::Red => "red",
            Component::Anomaly => "anomaly",
            Component::Alert => "alert",
            Component::Prometheus => "prometheus",
            Component::PrometheusRemoteWrite => "prometheusremotewrite",
            Component::SpanMetrics => "spanmetrics",
        }
    }
}

const COMPONENTS: usize = Component::ALL.len();
const REASONS: usize = Violation::ALL.len();

static DROPPED: [[AtomicU64; REASONS]; COMPONENTS] =
    [const { [const { AtomicU64::new(0) }; REASONS] }; COMPONENTS];

/// Counts one item `component` left out for `reason`.
pub fn count(component: Component, reason: Violation) {
    DROPPED[component as usize][reason as usize].fetch_add(1, Ordering::Relaxed);
}

/// How many items `component` left out for `reason` so far.
pub fn get(component: Component, reason: Violation) -> u64 {
    DROPPED[component as usize][reason as usize].load(Ordering::Relaxed)
}

/// The counter family in Prometheus text; only pairs that happened, so the
/// page does not carry dozens of zero lines.
pub fn render(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP sidewatch_dropped_points_total Data points and spans a component left out because they violate the OTLP data model.\n# TYPE sidewatch_dropped_points_total counter"
    );
    for component in Component::ALL {
        for reason in Violation::ALL {
            let n = get(component, reason);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "sidewatch_dropped_points_total{{component=\"{}\",reason=\"{}\"}} {n}",
                    component.as_str(),
                    reason.as_str()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_by_component_and_reason() {
        count(Component::Prometheus, Violation::BucketCountsMismatch);
        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains(
                "sidewatch_dropped_points_total{component=\"prometheus\",reason=\"bucket_counts_mismatch\"}"
            ),
            "{out}"
        );
    }
}
