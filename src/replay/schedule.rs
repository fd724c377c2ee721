//! Ticks in event time: each pipeline and connector that wants a tick gets
//! one every interval from the first input's time, as its ticker would give
//! it live from start-up, with the clock set to the tick's own time.
//!
//! Across a gap in the data a component is ticked at its interval for at
//! most `MAX_TICKS_PER_GAP` ticks (more than enough for windows to empty
//! and series to expire at the default settings; the alert connector runs
//! missed evaluations itself), then realigned after the gap, so a year
//! without data costs a bounded number of ticks.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::ManualClock;
use crate::pipeline::build::Timed;

const MAX_TICKS_PER_GAP: u32 = 1000;

struct Entry {
    timed: Timed,
    interval: Duration,
    next: SystemTime,
}

pub(crate) struct Schedule {
    entries: Vec<Entry>,
    hand: Arc<ManualClock>,
    /// Ticks run, for the summary.
    pub ticks: u64,
}

impl Schedule {
    pub(crate) fn new(
        timed: Vec<(Timed, Duration)>,
        start: SystemTime,
        hand: Arc<ManualClock>,
    ) -> Self {
        Schedule {
            entries: timed
                .into_iter()
                .filter(|(_, interval)| !interval.is_zero())
                .map(|(timed, interval)| Entry {
                    timed,
                    interval,
                    next: start,
                })
                .collect(),
            hand,
            ticks: 0,
        }
    }

    /// Runs, in time order, every tick due before `until` (or at it too,
    /// with `inclusive`), moving the clock to each tick's time.
    pub(crate) async fn run_until(&mut self, until: SystemTime, inclusive: bool) {
        let due = |next: SystemTime| next < until || (inclusive && next == until);
        let mut counts = vec![0u32; self.entries.len()];
        loop {
            let Some(index) = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| due(e.next))
                .min_by_key(|(_, e)| e.next)
                .map(|(i, _)| i)
            else {
                return;
            };
            let entry = &mut self.entries[index];
            let at = entry.next;
            self.hand.advance_to(at);
            entry.timed.tick(at).await;
            self.ticks += 1;
            entry.next = at + entry.interval;
            counts[index] += 1;
            if counts[index] == MAX_TICKS_PER_GAP && due(entry.next) {
                // Skip the rest of the gap, staying on the interval's grid.
                let behind = until.duration_since(entry.next).unwrap_or_default();
                let interval = entry.interval.as_nanos();
                let skip = behind.as_nanos().div_ceil(interval) * interval;
                entry.next += Duration::new(
                    u64::try_from(skip / 1_000_000_000).unwrap_or(u64::MAX),
                    (skip % 1_000_000_000) as u32,
                );
            }
        }
    }
}
