//! Named per-component counters for the things only one component knows
//! about (lines truncated by `filelog`, templates over the cap in
//! `logpatterns`), so a new component adds a counter without a new field
//! in [`super::Telemetry`]. Rendered as
//! `sidewatch_<family>{component="<id>"}`, one family per name.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct ComponentCounter {
    pub component: String,
    /// The family name without the `sidewatch_` prefix, e.g.
    /// `filelog_truncated_lines_total`.
    pub family: &'static str,
    pub help: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    pub value: AtomicU64,
}

impl ComponentCounter {
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(&self, n: u64) {
        self.value.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// Appends every family to `out`, in the order first registered.
pub fn render(out: &mut String, counters: &[Arc<ComponentCounter>]) {
    let mut families: Vec<&'static str> = Vec::new();
    for c in counters {
        if !families.contains(&c.family) {
            families.push(c.family);
        }
    }
    for family in families {
        let mut members = counters.iter().filter(|c| c.family == family).peekable();
        let Some(first) = members.peek() else {
            continue;
        };
        let _ = writeln!(
            out,
            "# HELP sidewatch_{family} {}\n# TYPE sidewatch_{family} {}",
            first.help, first.kind
        );
        for c in members {
            let _ = writeln!(
                out,
                "sidewatch_{family}{{component=\"{}\"}} {}",
                super::escape(&c.component),
                c.get()
            );
        }
    }
}
