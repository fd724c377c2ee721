//! When periodic emitters (`red`, `percentiles`) emit: every `interval`
//! from the first tick, checked often enough that an emission is at most a
//! quarter interval (and never more than a second) late.

use std::time::{Duration, SystemTime};

/// How often a component emitting every `interval` wants its tick.
pub fn tick_for(interval: Duration) -> Duration {
    (interval / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

#[derive(Debug, Clone)]
pub struct Every {
    interval: Duration,
    next: Option<SystemTime>,
}

impl Every {
    pub fn new(interval: Duration) -> Self {
        Every {
            interval,
            next: None,
        }
    }

    /// Whether an emission is due at `now`; the first call starts the
    /// clock. Call `emitted` after emitting.
    pub fn is_due(&mut self, now: SystemTime) -> bool {
        now >= *self.next.get_or_insert(now + self.interval)
    }

    pub fn emitted(&mut self, now: SystemTime) {
        self.next = Some(now + self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_an_interval_after_the_first_tick_and_after_each_emission() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut every = Every::new(Duration::from_secs(10));
        assert!(!every.is_due(t0));
        assert!(!every.is_due(t0 + Duration::from_secs(9)));
        assert!(every.is_due(t0 + Duration::from_secs(10)));
        every.emitted(t0 + Duration::from_secs(12));
        assert!(!every.is_due(t0 + Duration::from_secs(21)));
        assert!(every.is_due(t0 + Duration::from_secs(22)));
        assert_eq!(tick_for(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(
            tick_for(Duration::from_millis(20)),
            Duration::from_millis(10)
        );
    }
}
