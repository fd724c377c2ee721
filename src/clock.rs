//! The time a running graph is on: wall time live, event time in replay.
//!
//! Components never read the system clock: whoever drives them (the
//! consumer receivers hand data to, the tickers, shutdown's flush) reads
//! the graph's clock and passes `now` in. So `sidewatch replay` runs the
//! same graph on a manual clock it moves to each input's event time, as
//! fast as the CPU allows, and tests can do the same.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where `now` comes from. Cheap to clone: a manual clock is shared.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// Moved by hand (replay): every holder sees the same time.
    Manual(Arc<ManualClock>),
}

impl Clock {
    /// A manual clock starting at `start`, and the handle that moves it.
    pub fn manual(start: SystemTime) -> (Clock, Arc<ManualClock>) {
        let hand = Arc::new(ManualClock::new(start));
        (Clock::Manual(hand.clone()), hand)
    }

    pub fn now(&self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Manual(hand) => hand.now(),
        }
    }

    /// Whether this is event time driven by hand rather than wall time.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

/// A clock that only moves when told, and never backwards.
#[derive(Debug)]
pub struct ManualClock {
    /// Nanoseconds since the Unix epoch: an atomic, so reading it from
    /// many tasks takes no lock.
    nanos: AtomicU64,
}

fn to_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            nanos: AtomicU64::new(to_nanos(start)),
        }
    }

    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    /// Moves the clock to `time` unless it is already later: event time
    /// that arrives out of order does not turn the graph's clock back.
    pub fn advance_to(&self, time: SystemTime) {
        self.nanos.fetch_max(to_nanos(time), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_forward_and_is_shared() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (clock, hand) = Clock::manual(start);
        let copy = clock.clone();
        assert_eq!(clock.now(), start);
        hand.advance_to(start + Duration::from_millis(1500));
        assert_eq!(copy.now(), start + Duration::from_millis(1500));
        hand.advance_to(start);
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        assert!(clock.is_manual() && !Clock::System.is_manual());
    }
}
