//! The in-flight byte budget: request bytes being read, decompressed and
//! decoded count against one budget shared by every receiver, reserved
//! before they are read; a request that does not fit is refused with a
//! retryable answer.
//!
//! Why beside the RSS check of the memory limiter: RSS is sampled, and a
//! burst of large requests arriving between two samples could cross the
//! limit before the next one sees it. The budget bounds that burst by
//! construction; it defaults to the limiter's spike headroom, which is
//! exactly the room left above the soft limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug)]
pub struct InFlight {
    limit: usize,
    used: AtomicUsize,
    /// Requests refused because the budget was spent.
    pub refused_requests: AtomicU64,
}

impl InFlight {
    pub fn new(limit: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            limit,
            used: AtomicUsize::new(0),
            refused_requests: AtomicU64::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes`, or refuses (and counts the refusal). A request
    /// with nothing else in flight is taken whatever its size, so one
    /// larger than the budget is slow rather than refused forever.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut reservation = Reservation {
            budget: self.clone(),
            bytes: 0,
        };
        if reservation.grow(bytes) {
            Some(reservation)
        } else {
            self.refused_requests.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Takes `bytes` for a reservation already holding `own`.
    fn take(&self, bytes: usize, own: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let others = used - own;
            if others != 0 && used.saturating_add(bytes) > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }
}

/// Bytes held against the budget; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<InFlight>,
    bytes: usize,
}

impl Reservation {
    /// Adds `more` bytes, if the budget has them.
    pub fn grow(&mut self, more: usize) -> bool {
        if more == 0 || self.budget.take(more, self.bytes) {
            self.bytes += more;
            true
        } else {
            false
        }
    }

    /// Gives back what is held beyond `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget
                .used
                .fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_give_back_when_dropped() {
        let budget = InFlight::new(100);
        let mut a = budget.reserve(60).unwrap();
        assert!(budget.reserve(50).is_none(), "60 + 50 > 100");
        let b = budget.reserve(40).unwrap();
        assert!(!a.grow(1));
        a.shrink_to(10);
        assert_eq!(budget.used(), 50);
        assert!(a.grow(50));
        drop(b);
        drop(a);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.refused_requests.load(Ordering::Relaxed), 1);
        // Alone, a request larger than the budget still goes through, and
        // may grow while it is alone.
        let mut big = budget.reserve(1000).unwrap();
        assert!(big.grow(500));
        assert!(budget.reserve(1).is_none());
        drop(big);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn concurrent_reservations_never_overcommit() {
        let budget = InFlight::new(1000);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let budget = budget.clone();
                scope.spawn(move || {
                    for i in 0..10_000 {
                        if let Some(mut r) = budget.reserve(10 + i % 90) {
                            assert!(budget.used() <= 1000);
                            r.shrink_to(5);
                        }
                    }
                });
            }
        });
        assert_eq!(budget.used(), 0);
    }
}
