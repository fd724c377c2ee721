//! Runs one database scraper: scrapes start on a fixed grid (`interval`
//! with `Skip`, so a slow scrape never makes them drift or pile up), each
//! under a deadline that covers connecting too, so a server that is down,
//! unreachable or stuck costs at most `timeout` and never holds the
//! pipeline. After a failure the scraper drops what the failure may have
//! broken; the next scrape reconnects.
//!
//! Next to what the scraper read, every run reports `{system}.up` (1 if
//! the scrape succeeded, else 0), `{system}.scrape.duration` and the
//! cumulative `{system}.scrape.errors` by `error.type`. A failure is logged
//! when the state changes (up to down, or one error to another) and
//! recovery once, not on every run.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{Schedule, ScrapeError, Scraper};
use crate::pipeline::Consumer;
use crate::receivers::ReceiverContext;
use crate::receivers::hostmetrics::{MetricsBuilder, Number, string_attribute};
use crate::signal::{Batch, Signal};

pub fn start(
    scraper: Box<dyn Scraper>,
    schedule: Schedule,
    context: &ReceiverContext,
    consumer: Consumer,
) -> JoinHandle<()> {
    let stats = context
        .telemetry
        .receiver(&context.id, scraper.system(), Signal::Metrics);
    let run = Run {
        receiver: context.id.clone(),
        scraper,
        schedule,
        started: nanos(SystemTime::now()),
        errors: BTreeMap::new(),
        last: None,
    };
    let shutdown = context.shutdown.clone();
    tokio::spawn(run.run(consumer, stats, shutdown))
}

struct Run {
    receiver: String,
    scraper: Box<dyn Scraper>,
    schedule: Schedule,
    started: u64,
    /// Failed scrapes so far, by `error.type`.
    errors: BTreeMap<&'static str, i64>,
    /// The last outcome, to log only changes: `None` before the first run.
    last: Option<Result<(), &'static str>>,
}

impl Run {
    async fn run(
        mut self,
        consumer: Consumer,
        stats: std::sync::Arc<crate::telemetry::ReceiverStats>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        tokio::select! {
            _ = tokio::time::sleep(self.schedule.initial_delay) => {}
            _ = shutdown.cancelled() => return,
        }
        let mut ticks = tokio::time::interval(self.schedule.collection_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            // Shutdown must not wait for a hanging server.
            let request = tokio::select! {
                request = self.once() => request,
                _ = shutdown.cancelled() => break,
            };
            let batch = Batch::Metrics(request.into());
            crate::receivers::deliver(&consumer, &stats, batch, "database metrics").await;
        }
        self.scraper.disconnect();
    }

    async fn once(&mut self) -> ExportMetricsServiceRequest {
        let now = nanos(SystemTime::now());
        let began = tokio::time::Instant::now();
        let mut metrics = MetricsBuilder::new(now, self.started);
        let timeout = self.schedule.timeout;
        let outcome = match tokio::time::timeout(timeout, self.scraper.scrape(&mut metrics)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ScrapeError::new(
                "timeout",
                format!(
                    "no answer within {} (the receiver's timeout)",
                    humantime::format_duration(timeout)
                ),
            )),
        };
        let duration = began.elapsed();
        if let Err(error) = &outcome {
            // Half a scrape is not shown: only the runner's own metrics.
            metrics = MetricsBuilder::new(now, self.started);
            self.scraper.failed(error);
        }
        self.log_change(&outcome, duration);
        if let Err(error) = &outcome {
            *self.errors.entry(error.kind).or_insert(0) += 1;
        }
        let system = self.scraper.system();
        metrics.gauge(
            &format!("{system}.up"),
            "1",
            "1 if the last scrape of the server succeeded, 0 if it failed or timed out.",
            vec![(Number::Int(outcome.is_ok() as i64), Vec::new())],
        );
        metrics.gauge(
            &format!("{system}.scrape.duration"),
            "s",
            "Duration of the last scrape, connecting included.",
            vec![(Number::Double(duration.as_secs_f64()), Vec::new())],
        );
        metrics.sum(
            &format!("{system}.scrape.errors"),
            "{error}",
            "Failed scrapes since the receiver started, by error.type.",
            true,
            self.errors
                .iter()
                .map(|(kind, count)| {
                    (
                        Number::Int(*count),
                        vec![string_attribute("error.type", *kind)],
                    )
                })
                .collect(),
        );
        request(system, self.scraper.resource(), metrics)
    }

    fn log_change(&mut self, outcome: &Result<(), ScrapeError>, duration: Duration) {
        let state = outcome.as_ref().map(|_| ()).map_err(|e| e.kind);
        if self.last == Some(state) {
            return;
        }
        let system = self.scraper.system();
        let endpoint = self.scraper.endpoint();
        match outcome {
            Ok(()) if self.last.is_some() => {
                tracing::info!(receiver = %self.receiver, %endpoint, ?duration, "{system} is reachable again")
            }
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(receiver = %self.receiver, %endpoint, error.type = error.kind, error = %error.message, "{system} scrape failed; logged again only when this changes")
            }
        }
        self.last = Some(state);
    }
}

fn request(
    system: &str,
    resource: Vec<KeyValue>,
    metrics: MetricsBuilder,
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: format!("sidewatch/{system}"),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics: metrics.metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
