//! sidewatch's own telemetry: counters every component updates, rendered
//! as Prometheus text on the telemetry endpoint (`server`); its own log
//! output (`logs`).
//!
//! Counters are plain atomics owned by the component that updates them; the
//! registry only keeps an `Arc` to each for rendering, so the hot path
//! never takes a lock.

pub mod alerts_api;
pub mod cardinality;
pub mod checks;
pub mod connections;
pub mod counters;
pub mod dashboard;
pub mod dropped;
pub mod logs;
pub mod query_api;
pub mod requests;
pub mod sdk_metrics;
pub mod server;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use connections::ListenerStats;
use requests::RequestWindow;

use crate::signal::Signal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting = 0,
    Running = 1,
    Stopping = 2,
}

#[derive(Debug)]
pub struct ReceiverStats {
    pub receiver: String,
    pub transport: &'static str,
    pub signal: Signal,
    pub accepted_items: AtomicU64,
    pub refused_items: AtomicU64,
    pub requests: AtomicU64,
    pub failed_requests: AtomicU64,
    /// Rate, error ratio and latency over the last minute.
    pub window: RequestWindow,
}

impl ReceiverStats {
    /// One answered request, timed from when it arrived.
    pub fn answered(&self, started: Instant, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed_requests.fetch_add(1, Ordering::Relaxed);
        }
        self.window.record(started.elapsed(), failed);
    }
}

#[derive(Debug)]
pub struct ExporterStats {
    pub exporter: String,
    pub signal: Signal,
    pub sent_items: AtomicU64,
    pub failed_items: AtomicU64,
    pub retried_items: AtomicU64,
    /// Items in the queue now (a gauge).
    pub queued_items: AtomicI64,
    /// Batches in the queue now (a gauge).
    pub queued_batches: AtomicI64,
    pub queue_capacity: u64,
    /// Consecutive failed attempts; 0 after a success. Feeds /healthz.
    pub consecutive_failures: AtomicU64,
    /// Export attempts over the last minute: rate, failures, latency.
    pub window: RequestWindow,
}

impl ExporterStats {
    pub fn enqueued(&self, items: usize) {
        self.queued_items.fetch_add(items as i64, Ordering::Relaxed);
        self.queued_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dequeued(&self, items: usize) {
        self.queued_items.fetch_sub(items as i64, Ordering::Relaxed);
        self.queued_batches.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Telemetry {
    state: AtomicU8,
    receivers: Mutex<Vec<Arc<ReceiverStats>>>,
    exporters: Mutex<Vec<Arc<ExporterStats>>>,
    listeners: Mutex<Vec<Arc<ListenerStats>>>,
    cardinality: Mutex<Vec<cardinality::Registered>>,
    counters: Mutex<Vec<Arc<counters::ComponentCounter>>>,
    checks: Mutex<Vec<Arc<checks::CheckStatus>>>,
    /// `store` exporters, by name: the query API reads the first.
    stores: Mutex<Vec<(String, Arc<crate::store::Store>)>>,
    /// Every `alert` connector's live alerts, by id, for the alerts API.
    alerts: Mutex<Vec<(String, Arc<crate::alerting::live::LiveAlerts>)>>,
    /// Set when `service.memory_limiter` is configured.
    pub memory_limiter: std::sync::OnceLock<Arc<crate::pipeline::memory::MemoryLimiter>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            state: AtomicU8::new(State::Starting as u8),
            receivers: Mutex::default(),
            exporters: Mutex::default(),
            listeners: Mutex::default(),
            memory_limiter: std::sync::OnceLock::new(),
            cardinality: Mutex::default(),
            counters: Mutex::default(),
            checks: Mutex::default(),
            stores: Mutex::default(),
            alerts: Mutex::default(),
        }
    }
}

impl Telemetry {
    pub fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::SeqCst);
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::SeqCst) {
            0 => State::Starting,
            1 => State::Running,
            _ => State::Stopping,
        }
    }

    /// Registers a synthetic check's status for `/checks`.
    pub fn check(
        &self,
        receiver: &str,
        kind: &'static str,
        target: &str,
    ) -> Arc<checks::CheckStatus> {
        let status = Arc::new(checks::CheckStatus::new(receiver, kind, target));
        self.checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(status.clone());
        status
    }

    pub fn register_store(&self, name: &str, store: Arc<crate::store::Store>) {
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_string(), store));
    }

    /// The store the query API reads: the first `store` exporter.
    pub fn store(&self) -> Option<Arc<crate::store::Store>> {
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .map(|(_, s)| s.clone())
    }

    pub fn register_alerts(&self, connector: &str, live: Arc<crate::alerting::live::LiveAlerts>) {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((connector.to_string(), live));
    }

    /// Every alert connector's live alerts, by connector id.
    pub fn alerts(&self) -> Vec<(String, Arc<crate::alerting::live::LiveAlerts>)> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn checks(&self) -> Vec<Arc<checks::CheckStatus>> {
        self.checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn receiver(
        &self,
        receiver: &str,
        transport: &'static str,
        signal: Signal,
    ) -> Arc<ReceiverStats> {
        let stats = Arc::new(ReceiverStats {
            receiver: receiver.to_string(),
            transport,
            signal,
            accepted_items: AtomicU64::new(0),
            refused_items: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failed_requests: AtomicU64::new(0),
            window: RequestWindow::default(),
        });
        self.receivers
            .lock()
            .expect("telemetry lock")
            .push(stats.clone());
        stats
    }

    pub fn exporter(
        &self,
        exporter: &str,
        signal: Signal,
        queue_capacity: usize,
    ) -> Arc<ExporterStats> {
        let stats = Arc::new(ExporterStats {
            exporter: exporter.to_string(),
            signal,
            sent_items: AtomicU64::new(0),
            failed_items: AtomicU64::new(0),
            retried_items: AtomicU64::new(0),
            queued_items: AtomicI64::new(0),
            queued_batches: AtomicI64::new(0),
            queue_capacity: queue_capacity as u64,
            consecutive_failures: AtomicU64::new(0),
            window: RequestWindow::default(),
        });
        self.exporters
            .lock()
            .expect("telemetry lock")
            .push(stats.clone());
        stats
    }

    pub fn listener(
        &self,
        receiver: &str,
        transport: &'static str,
        max_connections: usize,
    ) -> Arc<ListenerStats> {
        let stats = Arc::new(ListenerStats {
            receiver: receiver.to_string(),
            transport,
            active_connections: AtomicI64::new(0),
            accepted_connections: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            evicted_connections: AtomicU64::new(0),
            failed_handshakes: AtomicU64::new(0),
            max_connections: i64::try_from(max_connections).unwrap_or(i64::MAX),
        });
        self.listeners
            .lock()
            .expect("telemetry lock")
            .push(stats.clone());
        stats
    }

    pub fn register_cardinality(
        &self,
        kind: &'static str,
        component: &str,
        pipeline: &str,
        stats: Arc<cardinality::CardinalityStats>,
    ) {
        self.cardinality
            .lock()
            .expect("telemetry lock")
            .push(cardinality::Registered {
                kind,
                component: component.to_string(),
                pipeline: pipeline.to_string(),
                stats,
            });
    }

    /// A counter (or gauge, `kind`) only one component knows about,
    /// rendered as `sidewatch_<family>{component}`.
    pub fn component_counter(
        &self,
        component: &str,
        family: &'static str,
        kind: &'static str,
        help: &'static str,
    ) -> Arc<counters::ComponentCounter> {
        let mut registered = self.counters.lock().expect("telemetry lock");
        // One component in several pipelines counts into one series.
        if let Some(existing) = registered
            .iter()
            .find(|c| c.component == component && c.family == family)
        {
            return existing.clone();
        }
        let counter = Arc::new(counters::ComponentCounter {
            component: component.to_string(),
            family,
            help,
            kind,
            value: AtomicU64::new(0),
        });
        registered.push(counter.clone());
        counter
    }

    pub fn listeners(&self) -> Vec<Arc<ListenerStats>> {
        self.listeners.lock().expect("telemetry lock").clone()
    }

    pub fn exporters(&self) -> Vec<Arc<ExporterStats>> {
        self.exporters.lock().expect("telemetry lock").clone()
    }

    pub fn receivers(&self) -> Vec<Arc<ReceiverStats>> {
        self.receivers.lock().expect("telemetry lock").clone()
    }

    /// Prometheus text exposition (format 0.0.4) of every counter.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let receivers = self.receivers();
        let exporters = self.exporters();
        let receiver_families: [Family<ReceiverStats, u64>; 4] = [
            (
                "sidewatch_receiver_accepted_items_total",
                "counter",
                "Items (spans, data points, log records) a receiver accepted into its pipelines.",
                |s| s.accepted_items.load(Ordering::Relaxed),
            ),
            (
                "sidewatch_receiver_refused_items_total",
                "counter",
                "Items a receiver refused (malformed, too large, or pipelines full).",
                |s| s.refused_items.load(Ordering::Relaxed),
            ),
            (
                "sidewatch_receiver_requests_total",
                "counter",
                "Export requests a receiver answered.",
                |s| s.requests.load(Ordering::Relaxed),
            ),
            (
                "sidewatch_receiver_failed_requests_total",
                "counter",
                "Export requests a receiver answered with an error.",
                |s| s.failed_requests.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, read) in receiver_families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for s in &receivers {
                let _ = writeln!(
                    out,
                    "{name}{{receiver=\"{}\",transport=\"{}\",signal=\"{}\"}} {}",
                    escape(&s.receiver),
                    s.transport,
                    s.signal,
                    read(s)
                );
            }
        }
        let exporter_families: [Family<ExporterStats, i64>; 6] = [
            (
                "sidewatch_exporter_sent_items_total",
                "counter",
                "Items an exporter delivered to its destination.",
                |s| s.sent_items.load(Ordering::Relaxed) as i64,
            ),
            (
                "sidewatch_exporter_failed_items_total",
                "counter",
                "Items an exporter gave up on (permanent error, retries exhausted, or shutdown deadline).",
                |s| s.failed_items.load(Ordering::Relaxed) as i64,
            ),
            (
                "sidewatch_exporter_retried_items_total",
                "counter",
                "Items an exporter sent again after a retryable failure.",
                |s| s.retried_items.load(Ordering::Relaxed) as i64,
            ),
            (
                "sidewatch_exporter_queued_items",
                "gauge",
                "Items waiting in an exporter's queue.",
                |s| s.queued_items.load(Ordering::Relaxed),
            ),
            (
                "sidewatch_exporter_queue_size",
                "gauge",
                "Batches waiting in an exporter's queue.",
                |s| s.queued_batches.load(Ordering::Relaxed),
            ),
            (
                "sidewatch_exporter_queue_capacity",
                "gauge",
                "Batches an exporter's queue holds at most.",
                |s| s.queue_capacity as i64,
            ),
        ];
        for (name, kind, help, read) in exporter_families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for s in &exporters {
                let _ = writeln!(
                    out,
                    "{name}{{exporter=\"{}\",signal=\"{}\"}} {}",
                    escape(&s.exporter),
                    s.signal,
                    read(s)
                );
            }
        }
        let listeners = self.listeners();
        let listener_families: [Family<ListenerStats, i64>; 5] = [
            (
                "sidewatch_receiver_active_connections",
                "gauge",
                "Connections open to a receiver's listener now.",
                |l| l.active_connections.load(Ordering::Relaxed),
            ),
            (
                "sidewatch_receiver_connections_total",
                "counter",
                "Connections a receiver's listener accepted.",
                |l| l.accepted_connections.load(Ordering::Relaxed) as i64,
            ),
            (
                "sidewatch_receiver_refused_connections_total",
                "counter",
                "Connections closed at once because the listener had max_connections open, all serving a request.",
                |l| l.refused_connections.load(Ordering::Relaxed) as i64,
            ),
            (
                "sidewatch_receiver_evicted_connections_total",
                "counter",
                "Idle connections closed to make room for a new one when the listener had max_connections open.",
                |l| l.evicted_connections.load(Ordering::Relaxed) as i64,
            ),
            (
                "sidewatch_receiver_failed_tls_handshakes_total",
                "counter",
                "TLS handshakes that failed (no or a foreign client certificate, old protocol, timeout).",
                |l| l.failed_handshakes.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, kind, help, read) in listener_families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for l in &listeners {
                let _ = writeln!(
                    out,
                    "{name}{{receiver=\"{}\",transport=\"{}\"}} {}",
                    escape(&l.receiver),
                    l.transport,
                    read(l)
                );
            }
        }
        let receiver_windows: Vec<_> = receivers
            .iter()
            .map(|s| {
                (
                    format!(
                        "receiver=\"{}\",transport=\"{}\",signal=\"{}\"",
                        escape(&s.receiver),
                        s.transport,
                        s.signal
                    ),
                    s.window.summary(),
                )
            })
            .collect();
        render_windows(
            &mut out,
            "sidewatch_receiver_request",
            "requests",
            &receiver_windows,
        );
        let exporter_windows: Vec<_> = exporters
            .iter()
            .map(|s| {
                (
                    format!(
                        "exporter=\"{}\",signal=\"{}\"",
                        escape(&s.exporter),
                        s.signal
                    ),
                    s.window.summary(),
                )
            })
            .collect();
        render_windows(
            &mut out,
            "sidewatch_exporter_export",
            "export attempts",
            &exporter_windows,
        );
        {
            let registered = self.cardinality.lock().expect("telemetry lock");
            let families: [Family<cardinality::CardinalityStats, u64>; 3] = [
                (
                    "sidewatch_component_series",
                    "gauge",
                    "Series a stateful processor or connector holds.",
                    |s| s.series.load(Ordering::Relaxed),
                ),
                (
                    "sidewatch_component_max_series",
                    "gauge",
                    "The series cap of a stateful processor or connector.",
                    |s| s.max_series.load(Ordering::Relaxed),
                ),
                (
                    "sidewatch_component_overflow_items_total",
                    "counter",
                    "Items beyond the series cap: folded into the overflow series, or dropped by alert rules.",
                    |s| s.overflowed_items.load(Ordering::Relaxed),
                ),
            ];
            for (name, kind, help, read) in families {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for r in registered.iter() {
                    let _ = writeln!(
                        out,
                        "{name}{{kind=\"{}\",component=\"{}\",pipeline=\"{}\"}} {}",
                        r.kind,
                        escape(&r.component),
                        escape(&r.pipeline),
                        read(&r.stats)
                    );
                }
            }
        }
        dropped::render(&mut out);
        counters::render(&mut out, &self.counters.lock().expect("telemetry lock"));
        if let Some(limiter) = self.memory_limiter.get() {
            let _ = writeln!(
                out,
                "# HELP sidewatch_memory_limiter_refused_requests_total Requests refused because resident memory was above the soft limit.\n# TYPE sidewatch_memory_limiter_refused_requests_total counter\nsidewatch_memory_limiter_refused_requests_total {}",
                limiter.refused_requests.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "# HELP sidewatch_memory_limiter_soft_limit_bytes Resident memory above which new data is refused.\n# TYPE sidewatch_memory_limiter_soft_limit_bytes gauge\nsidewatch_memory_limiter_soft_limit_bytes {}",
                limiter.soft_limit_bytes
            );
            let _ = writeln!(
                out,
                "# HELP sidewatch_in_flight_bytes Request bytes being read, decompressed or decoded now, against the in-flight budget.\n# TYPE sidewatch_in_flight_bytes gauge\nsidewatch_in_flight_bytes {}\n# HELP sidewatch_in_flight_limit_bytes The in-flight budget.\n# TYPE sidewatch_in_flight_limit_bytes gauge\nsidewatch_in_flight_limit_bytes {}\n# HELP sidewatch_in_flight_refused_requests_total Requests refused because the in-flight budget was spent.\n# TYPE sidewatch_in_flight_refused_requests_total counter\nsidewatch_in_flight_refused_requests_total {}",
                limiter.in_flight.used(),
                limiter.in_flight.limit(),
                limiter.in_flight.refused_requests.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// `<prefix>s_per_second`, `<prefix>_error_ratio` and
/// `<prefix>_duration_seconds{quantile}` over the last minute, as gauges:
/// a Prometheus summary would need a lifetime `_sum` and `_count` that a
/// sliding window does not have.
fn render_windows(
    out: &mut String,
    prefix: &str,
    what: &str,
    rows: &[(String, requests::Summary)],
) {
    let _ = writeln!(
        out,
        "# HELP {prefix}s_per_second {what} per second over the last minute.\n# TYPE {prefix}s_per_second gauge"
    );
    for (labels, s) in rows {
        let _ = writeln!(
            out,
            "{prefix}s_per_second{{{labels}}} {}",
            s.requests_per_second
        );
    }
    let _ = writeln!(
        out,
        "# HELP {prefix}_error_ratio Share of {what} that failed over the last minute.\n# TYPE {prefix}_error_ratio gauge"
    );
    for (labels, s) in rows {
        let _ = writeln!(out, "{prefix}_error_ratio{{{labels}}} {}", s.error_ratio);
    }
    let _ = writeln!(
        out,
        "# HELP {prefix}_duration_seconds Latency percentiles of {what} over the last minute.\n# TYPE {prefix}_duration_seconds gauge"
    );
    for (labels, s) in rows {
        for (q, value) in [("0.5", s.p50), ("0.95", s.p95), ("0.99", s.p99)] {
            if let Some(value) = value {
                let _ = writeln!(
                    out,
                    "{prefix}_duration_seconds{{{labels},quantile=\"{q}\"}} {value}"
                );
            }
        }
    }
}

/// A metric family: name, type, help, and how to read it from a component.
type Family<S, V> = (&'static str, &'static str, &'static str, fn(&S) -> V);

pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
