//! The one scheduler of synthetic checks: every target runs on its own
//! task, so a slow or hanging target delays nobody else; a semaphore per
//! receiver bounds how many run at once; each attempt has a deadline; runs
//! start on a fixed grid (`interval_at` with `Skip`), measured from the
//! schedule, not from the end of the last run, so they never drift.
//!
//! After each run the scheduler adds the kind-neutral points
//! (`sidewatch.check.up`, `.duration`, `.attempts`), keeps the totals of the
//! counters, records the result for `/checks` and hands one batch to the
//! receiver's metrics pipelines.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{Check, ChecksPlan, Observation, Point, Schedule};
use crate::pipeline::Consumer;
use crate::receivers::ReceiverContext;
use crate::receivers::hostmetrics::{MetricsBuilder, Number, string_attribute};
use crate::signal::{Batch, Signal};
use crate::telemetry::ReceiverStats;
use crate::telemetry::checks::{CheckResult, CheckStatus};

/// Spawns one task per target; they end when the receiver's shutdown fires.
pub fn start(
    plan: ChecksPlan,
    context: &ReceiverContext,
    consumer: Consumer,
) -> Vec<JoinHandle<()>> {
    let stats = context
        .telemetry
        .receiver(&context.id, "checks", Signal::Metrics);
    let permits = Arc::new(Semaphore::new(plan.schedule.max_concurrent_checks));
    let started = SystemTime::now();
    plan.checks
        .into_iter()
        .map(|check| {
            let status = context
                .telemetry
                .check(&context.id, plan.kind, check.target());
            let target = TargetRun {
                receiver: context.id.clone(),
                kind: plan.kind,
                schedule: plan.schedule,
                check,
                permits: permits.clone(),
                consumer: consumer.clone(),
                stats: stats.clone(),
                status,
                started,
                totals: HashMap::new(),
            };
            tokio::spawn(target.run(context.shutdown.clone()))
        })
        .collect()
}

struct TargetRun {
    receiver: String,
    kind: &'static str,
    schedule: Schedule,
    check: Arc<dyn Check>,
    permits: Arc<Semaphore>,
    consumer: Consumer,
    stats: Arc<ReceiverStats>,
    status: Arc<CheckStatus>,
    started: SystemTime,
    /// Cumulative totals of counter points, by name and attributes.
    totals: HashMap<String, i64>,
}

impl TargetRun {
    async fn run(mut self, shutdown: tokio_util::sync::CancellationToken) {
        let mut ticks = tokio::time::interval(self.schedule.collection_interval);
        // A run that started late (waiting for a permit) skips the ticks it
        // missed and the next one stays on the grid.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let scheduled = SystemTime::now();
            // Shutdown must not wait for a hanging target.
            let outcome = tokio::select! {
                outcome = self.run_once() => outcome,
                _ = shutdown.cancelled() => return,
            };
            let Some((observation, attempts, duration)) = outcome else {
                return;
            };
            self.report(scheduled, observation, attempts, duration)
                .await;
        }
    }

    /// Attempts until one succeeds or `retries` more have failed; `None`
    /// if the semaphore is closed.
    async fn run_once(&self) -> Option<(Observation, u32, Duration)> {
        let _permit = self.permits.acquire().await.ok()?;
        let began = tokio::time::Instant::now();
        let timeout = self.schedule.timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let observation = match tokio::time::timeout(timeout, self.check.attempt(timeout)).await
            {
                Ok(observation) => observation,
                Err(_) => self.check.timed_out(timeout),
            };
            if observation.error.is_none() || attempts > self.schedule.retries {
                return Some((observation, attempts, began.elapsed()));
            }
        }
    }

    async fn report(
        &mut self,
        scheduled: SystemTime,
        observation: Observation,
        attempts: u32,
        duration: Duration,
    ) {
        let up = observation.error.is_none();
        if let Some(error) = &observation.error {
            tracing::debug!(receiver = %self.receiver, target = %self.check.target(), code = error.code, error = %error.message, "check failed");
        }
        self.status.record(CheckResult {
            up,
            duration,
            time: scheduled,
            attempts,
            error: observation
                .error
                .as_ref()
                .map(|e| (e.code.to_string(), e.message.clone())),
        });
        let common = || {
            vec![
                string_attribute("check.kind", self.kind),
                string_attribute("check.target", self.check.target()),
                string_attribute("check.receiver", self.receiver.clone()),
            ]
        };
        let mut points = observation.points;
        points.push(Point::gauge(
            "sidewatch.check.up",
            "1",
            "1 if the check's last run succeeded, 0 if it failed (after retries).",
            Number::Int(up as i64),
            common(),
        ));
        points.push(Point::gauge(
            "sidewatch.check.duration",
            "s",
            "Duration of the check's last run, every attempt included.",
            Number::Double(duration.as_secs_f64()),
            common(),
        ));
        points.push(Point::gauge(
            "sidewatch.check.attempts",
            "{attempt}",
            "Attempts the check's last run took.",
            Number::Int(attempts as i64),
            common(),
        ));
        for point in points.iter_mut().filter(|p| p.counter) {
            let key = format!("{}{:?}", point.name, point.attributes);
            let total = self.totals.entry(key).or_insert(0);
            *total += match point.value {
                Number::Int(v) => v,
                Number::Double(v) => v as i64,
            };
            point.value = Number::Int(*total);
        }
        let request = build_request(
            self.kind,
            observation.resource,
            points,
            nanos(scheduled),
            nanos(self.started),
        );
        let batch = Batch::Metrics(request.into());
        let items = batch.item_count() as u64;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        match self.consumer.consume(batch).await {
            Ok(()) => {
                self.stats
                    .accepted_items
                    .fetch_add(items, Ordering::Relaxed);
            }
            Err(refused) => {
                self.stats.refused_items.fetch_add(items, Ordering::Relaxed);
                self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(receiver = %self.receiver, error = %refused, "check results dropped: pipeline refused them");
            }
        }
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One request: points grouped into metrics by name, in first-seen order.
pub fn build_request(
    kind: &str,
    resource: Vec<KeyValue>,
    points: Vec<Point>,
    now_unix_nanos: u64,
    start_unix_nanos: u64,
) -> ExportMetricsServiceRequest {
    let mut builder = MetricsBuilder::new(now_unix_nanos, start_unix_nanos);
    let mut order: Vec<&'static str> = Vec::new();
    for point in &points {
        if !order.contains(&point.name) {
            order.push(point.name);
        }
    }
    for name in order {
        let same: Vec<&Point> = points.iter().filter(|p| p.name == name).collect();
        let first = same[0];
        let values = same
            .iter()
            .map(|p| (p.value, p.attributes.clone()))
            .collect();
        if first.counter {
            builder.sum(name, first.unit, first.description, true, values);
        } else {
            builder.gauge(name, first.unit, first.description, values);
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: format!("sidewatch/{kind}check"),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics: builder.metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
