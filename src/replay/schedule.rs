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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::pipeline::PipelineRuntime;
    use crate::processors::Processor;
    use crate::signal::{Batch, Signal};
    use std::sync::Mutex;

    /// Records the time of every tick.
    struct Ticks(Arc<Mutex<Vec<SystemTime>>>);

    impl Processor for Ticks {
        fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
            out.push(batch);
        }
        fn tick_interval(&self) -> Option<Duration> {
            Some(Duration::from_secs(1))
        }
        fn tick(&mut self, now: SystemTime, _out: &mut Vec<Batch>) {
            self.0.lock().unwrap().push(now);
        }
    }

    #[tokio::test]
    async fn ticks_at_their_own_times_and_a_gap_costs_a_bounded_number() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pipeline = Arc::new(PipelineRuntime::new(
            "metrics".into(),
            Signal::Metrics,
            vec![Box::new(Ticks(seen.clone()))],
            Vec::new(),
        ));
        let (clock, hand) = Clock::manual(start);
        let mut schedule = Schedule::new(
            vec![(Timed::Pipeline(pipeline), Duration::from_secs(1))],
            start,
            hand,
        );
        // Before an input at +2.5 s: ticks at 0, 1 and 2 s, clock following.
        schedule
            .run_until(start + Duration::from_millis(2500), false)
            .await;
        assert_eq!(
            *seen.lock().unwrap(),
            (0..3)
                .map(|s| start + Duration::from_secs(s))
                .collect::<Vec<_>>()
        );
        assert_eq!(clock.now(), start + Duration::from_secs(2));
        // A year without data: 1000 ticks, then realigned on the 1 s grid
        // at the gap's end, which, being due then, runs too.
        let year = Duration::from_secs(365 * 86_400);
        schedule.run_until(start + year, true).await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3 + 1000 + 1);
        assert_eq!(seen[1002], start + Duration::from_secs(1002));
        assert_eq!(*seen.last().unwrap(), start + year);
    }
}
