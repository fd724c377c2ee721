//! The connection table of one listener: every open connection, whether it
//! has sent a request yet, how many it is serving now and since when it has
//! been idle; and, when the table is full, which connection gives way.
//!
//! Why evict rather than refuse the newcomer: a full table of connections
//! that send nothing (or were opened and forgotten) would otherwise lock out
//! every real client until the deadlines close them. The longest-idle
//! connection is the one least likely to be missed; a connection serving a
//! request is never evicted, so when all are busy the newcomer is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::telemetry::connections::ListenerStats;

use super::deadlines::Deadlines;

pub struct ConnectionTable {
    max_connections: usize,
    epoch: Instant,
    next_id: AtomicU64,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    stats: Arc<ListenerStats>,
}

/// One connection's entry.
pub struct Slot {
    id: u64,
    accepted: Instant,
    /// Milliseconds after the table's epoch when the last request ended
    /// (or the connection was accepted).
    last_active_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Cancelled when the connection is evicted.
    evicted: CancellationToken,
    epoch: Instant,
}

/// What the connection's deadlines say now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep serving; look again at this instant.
    KeepUntil(Instant),
    /// No complete request within `handshake_timeout`: close at once.
    NeverSpoke,
    /// Idle for `idle_timeout`: close gracefully.
    Idle,
}

impl ConnectionTable {
    pub fn new(max_connections: usize, stats: Arc<ListenerStats>) -> Arc<Self> {
        Arc::new(ConnectionTable {
            max_connections: max_connections.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            slots: Mutex::new(HashMap::new()),
            stats,
        })
    }

    /// A slot for a new connection, evicting the longest-idle connection
    /// when the table is full; `None` (counted) when every connection is
    /// serving a request.
    pub fn admit(self: &Arc<Self>) -> Option<SlotGuard> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= self.max_connections {
            let victim = slots
                .values()
                .filter(|slot| slot.in_flight.load(Ordering::Relaxed) == 0)
                .min_by_key(|slot| slot.last_active_ms.load(Ordering::Relaxed))
                .cloned();
            match victim {
                Some(victim) => {
                    slots.remove(&victim.id);
                    victim.evicted.cancel();
                    self.stats
                        .evicted_connections
                        .fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    drop(slots);
                    self.stats.refused(self.max_connections);
                    return None;
                }
            }
        }
        let now = Instant::now();
        let slot = Arc::new(Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            accepted: now,
            last_active_ms: AtomicU64::new(millis(self.epoch, now)),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            evicted: CancellationToken::new(),
            epoch: self.epoch,
        });
        slots.insert(slot.id, slot.clone());
        Some(SlotGuard {
            table: self.clone(),
            slot,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().unwrap().len()
    }
}

fn millis(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

impl Slot {
    /// A request's headers arrived; it is served until the guard drops.
    pub fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }

    pub fn has_spoken(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    /// Resolves when the table evicted this connection.
    pub fn evicted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.evicted.cancelled()
    }

    pub fn accepted(&self) -> Instant {
        self.accepted
    }

    pub fn verdict(&self, deadlines: &Deadlines, now: Instant) -> Verdict {
        if !self.has_spoken() {
            let deadline = self.accepted + deadlines.handshake_timeout;
            return if now >= deadline {
                Verdict::NeverSpoke
            } else {
                Verdict::KeepUntil(deadline)
            };
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // The body deadlines bound a request; look again later.
            return Verdict::KeepUntil(now + deadlines.idle_timeout.min(Duration::from_secs(1)));
        }
        let idle_since =
            self.epoch + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        let deadline = idle_since + deadlines.idle_timeout;
        if now >= deadline {
            Verdict::Idle
        } else {
            Verdict::KeepUntil(deadline)
        }
    }
}

/// A request being served on a connection.
pub struct ActiveRequest(Arc<Slot>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let slot = &self.0;
        slot.last_active_ms
            .store(millis(slot.epoch, Instant::now()), Ordering::Relaxed);
        slot.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's place in the table, given up when dropped.
pub struct SlotGuard {
    table: Arc<ConnectionTable>,
    slot: Arc<Slot>,
}

impl SlotGuard {
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut slots = self.table.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Gone already if it was evicted.
        slots.remove(&self.slot.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize) -> Arc<ConnectionTable> {
        let telemetry = crate::telemetry::Telemetry::default();
        ConnectionTable::new(max, telemetry.listener("otlp", "grpc", max))
    }

    #[test]
    fn a_full_table_evicts_the_longest_idle_never_a_busy_one() {
        let table = table(2);
        let busy = table.admit().unwrap();
        let request = busy.slot().begin();
        let idle = table.admit().unwrap();
        let newcomer = table.admit().expect("the idle one gives way");
        assert!(idle.slot().evicted.is_cancelled());
        assert!(!busy.slot().evicted.is_cancelled());
        assert_eq!(table.len(), 2);
        drop(idle);
        assert_eq!(table.len(), 2, "an evicted guard removes nothing else");
        let _second_request = newcomer.slot().begin();
        assert!(table.admit().is_none(), "all busy: the newcomer is refused");
        drop(request);
        assert!(table.admit().is_some());
    }

    #[test]
    fn deadlines_decide_when_a_connection_closes() {
        let table = table(4);
        let deadlines = Deadlines::default();
        let guard = table.admit().unwrap();
        let slot = guard.slot().clone();
        let start = slot.accepted();
        assert_eq!(
            slot.verdict(&deadlines, start),
            Verdict::KeepUntil(start + deadlines.handshake_timeout)
        );
        assert_eq!(
            slot.verdict(&deadlines, start + deadlines.handshake_timeout),
            Verdict::NeverSpoke
        );
        let request = slot.begin();
        assert!(matches!(
            slot.verdict(&deadlines, start + Duration::from_secs(100)),
            Verdict::KeepUntil(_)
        ));
        drop(request);
        let ended = Instant::now();
        assert!(matches!(
            slot.verdict(&deadlines, ended),
            Verdict::KeepUntil(at) if at <= ended + deadlines.idle_timeout
                && at + Duration::from_millis(2) > ended + deadlines.idle_timeout
        ));
        assert_eq!(
            slot.verdict(&deadlines, ended + deadlines.idle_timeout),
            Verdict::Idle
        );
    }
}
