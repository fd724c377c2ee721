//! `internal` receiver: sidewatch's own telemetry as OTLP metrics, into
//! any pipeline: per receiver accepted and refused items and requests, per
//! exporter sent, failed and retried items and queue size and capacity,
//! and the process's CPU, memory, descriptors and threads. The same
//! counters are on the telemetry endpoint's /metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;

use super::hostmetrics::{
    HostMetricsConfig, HostScrapers, MetricsBuilder, Number, string_attribute,
};
use super::{Receiver, ReceiverContext, StartedReceiver};
use crate::signal::{Batch, Signal};
use crate::telemetry::Telemetry;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalConfig {
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub collection_interval: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

/// The counters of `telemetry` as OTLP metrics at `now`.
pub fn telemetry_metrics(
    telemetry: &Telemetry,
    now: SystemTime,
    started: SystemTime,
) -> MetricsBuilder {
    let nanos = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    };
    let mut out = MetricsBuilder::new(nanos(now), nanos(started));
    let receivers = telemetry.receivers();
    let receiver_attrs = |r: &crate::telemetry::ReceiverStats| {
        vec![
            string_attribute("receiver", r.receiver.clone()),
            string_attribute("transport", r.transport),
            string_attribute("signal", r.signal.as_str()),
        ]
    };
    let sum =
        |out: &mut MetricsBuilder,
         name: &str,
         unit: &str,
         description: &str,
         points: Vec<(Number, Vec<_>)>| { out.sum(name, unit, description, true, points) };
    sum(
        &mut out,
        "sidewatch.receiver.accepted_items",
        "{item}",
        "Items a receiver accepted into its pipelines.",
        receivers
            .iter()
            .map(|r| {
                (
                    Number::from(r.accepted_items.load(Ordering::Relaxed)),
                    receiver_attrs(r),
                )
            })
            .collect(),
    );
    sum(
        &mut out,
        "sidewatch.receiver.refused_items",
        "{item}",
        "Items a receiver refused.",
        receivers
            .iter()
            .map(|r| {
                (
                    Number::from(r.refused_items.load(Ordering::Relaxed)),
                    receiver_attrs(r),
                )
            })
            .collect(),
    );
    sum(
        &mut out,
        "sidewatch.receiver.requests",
        "{request}",
        "Requests a receiver answered.",
        receivers
            .iter()
            .map(|r| {
                (
                    Number::from(r.requests.load(Ordering::Relaxed)),
                    receiver_attrs(r),
                )
            })
            .collect(),
    );
    sum(
        &mut out,
        "sidewatch.receiver.failed_requests",
        "{request}",
        "Requests a receiver answered with an error.",
        receivers
            .iter()
            .map(|r| {
                (
                    Number::from(r.failed_requests.load(Ordering::Relaxed)),
                    receiver_attrs(r),
                )
            })
            .collect(),
    );
    windowed(
        &mut out,
        "sidewatch.receiver.request",
        "requests",
        receivers
            .iter()
            .map(|r| (r.window.summary(), receiver_attrs(r)))
            .collect(),
    );
    let listeners = telemetry.listeners();
    let listener_attrs = |l: &crate::telemetry::ListenerStats| {
        vec![
            string_attribute("receiver", l.receiver.clone()),
            string_attribute("transport", l.transport),
        ]
    };
    out.sum(
        "sidewatch.receiver.active_connections",
        "{connection}",
        "Connections open to a receiver's listener now.",
        false,
        listeners
            .iter()
            .map(|l| {
                (
                    Number::Int(l.active_connections.load(Ordering::Relaxed)),
                    listener_attrs(l),
                )
            })
            .collect(),
    );
    sum(
        &mut out,
        "sidewatch.receiver.connections",
        "{connection}",
        "Connections a receiver's listener accepted.",
        listeners
            .iter()
            .map(|l| {
                (
                    Number::from(l.accepted_connections.load(Ordering::Relaxed)),
                    listener_attrs(l),
                )
            })
            .collect(),
    );
    let exporters = telemetry.exporters();
    let exporter_attrs = |e: &crate::telemetry::ExporterStats| {
        vec![
            string_attribute("exporter", e.exporter.clone()),
            string_attribute("signal", e.signal.as_str()),
        ]
    };
    for (name, description, read) in [
        (
            "sidewatch.exporter.sent_items",
            "Items an exporter delivered.",
            (|e| e.sent_items.load(Ordering::Relaxed))
                as fn(&crate::telemetry::ExporterStats) -> u64,
        ),
        (
            "sidewatch.exporter.failed_items",
            "Items an exporter gave up on.",
            |e| e.failed_items.load(Ordering::Relaxed),
        ),
        (
            "sidewatch.exporter.retried_items",
            "Items an exporter sent again after a failure.",
            |e| e.retried_items.load(Ordering::Relaxed),
        ),
    ] {
        sum(
            &mut out,
            name,
            "{item}",
            description,
            exporters
                .iter()
                .map(|e| (Number::from(read(e)), exporter_attrs(e)))
                .collect(),
        );
    }
    out.sum(
        "sidewatch.exporter.queue.size",
        "{batch}",
        "Batches waiting in an exporter's queue.",
        false,
        exporters
            .iter()
            .map(|e| {
                (
                    Number::Int(e.queued_batches.load(Ordering::Relaxed)),
                    exporter_attrs(e),
                )
            })
            .collect(),
    );
    windowed(
        &mut out,
        "sidewatch.exporter.export",
        "export attempts",
        exporters
            .iter()
            .map(|e| (e.window.summary(), exporter_attrs(e)))
            .collect(),
    );
    out.sum(
        "sidewatch.exporter.queue.capacity",
        "{batch}",
        "Batches an exporter's queue holds at most.",
        false,
        exporters
            .iter()
            .map(|e| (Number::from(e.queue_capacity), exporter_attrs(e)))
            .collect(),
    );
    out
}

/// Rate, error ratio and latency percentiles over the last minute, as
/// gauges `<prefix>.rate`, `<prefix>.error_ratio` and
/// `<prefix>.duration.quantile` (the `red` connector's naming).
fn windowed(
    out: &mut MetricsBuilder,
    prefix: &str,
    what: &str,
    summaries: Vec<(crate::telemetry::requests::Summary, Vec<KeyValue>)>,
) {
    let window = || string_attribute("window", "1m");
    out.gauge(
        &format!("{prefix}.rate"),
        "{request}/s",
        &format!("{what} per second over the last minute."),
        summaries
            .iter()
            .map(|(s, attrs)| {
                let mut attrs = attrs.clone();
                attrs.push(window());
                (Number::Double(s.requests_per_second), attrs)
            })
            .collect(),
    );
    out.gauge(
        &format!("{prefix}.error_ratio"),
        "1",
        &format!("Share of {what} that failed over the last minute."),
        summaries
            .iter()
            .map(|(s, attrs)| {
                let mut attrs = attrs.clone();
                attrs.push(window());
                (Number::Double(s.error_ratio), attrs)
            })
            .collect(),
    );
    let mut quantiles = Vec::new();
    for (s, attrs) in &summaries {
        for (q, value) in [("0.5", s.p50), ("0.95", s.p95), ("0.99", s.p99)] {
            if let Some(value) = value {
                let mut attrs = attrs.clone();
                attrs.push(string_attribute("quantile", q));
                attrs.push(window());
                quantiles.push((Number::Double(value), attrs));
            }
        }
    }
    out.gauge(
        &format!("{prefix}.duration.quantile"),
        "s",
        &format!("Latency percentiles of {what} over the last minute."),
        quantiles,
    );
}

pub struct InternalReceiver {
    config: InternalConfig,
}

impl InternalReceiver {
    pub fn new(config: InternalConfig) -> Self {
        InternalReceiver { config }
    }
}

#[async_trait::async_trait]
impl Receiver for InternalReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let Some(consumer) = context.consumers.metrics.clone() else {
            return Ok(StartedReceiver {
                addresses: Vec::new(),
                tasks: Vec::new(),
            });
        };
        let telemetry: Arc<Telemetry> = context.telemetry.clone();
        let stats = telemetry.receiver(&context.id, "internal", Signal::Metrics);
        let process_only: HostMetricsConfig =
            yaml_serde::from_str("scrapers: [process]").expect("a fixed, valid scraper config");
        let mut process = HostScrapers::new(&process_only.scrapers);
        let interval = self.config.collection_interval;
        let shutdown = context.shutdown.clone();
        let started = SystemTime::now();
        let task = tokio::spawn(async move {
            let mut timer =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = timer.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                let now = SystemTime::now();
                let own = telemetry_metrics(&telemetry, now, started);
                // The process scraper reports only sidewatch itself here.
                let mut request: ExportMetricsServiceRequest = process.scrape(now);
                request.resource_metrics.retain(|r| {
                    r.resource
                        .as_ref()
                        .is_some_and(|res| res.attributes.iter().any(|a| a.key == "process.pid"))
                });
                request.resource_metrics.insert(
                    0,
                    ResourceMetrics {
                        resource: Some(Resource {
                            attributes: vec![
                                string_attribute("service.name", "sidewatch"),
                                string_attribute("service.version", env!("CARGO_PKG_VERSION")),
                            ],
                            ..Default::default()
                        }),
                        scope_metrics: vec![ScopeMetrics {
                            scope: Some(InstrumentationScope {
                                name: "sidewatch/internal".into(),
                                ..Default::default()
                            }),
                            metrics: own.metrics,
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                );
                let batch = Batch::Metrics(request.into());
                let items = batch.item_count() as u64;
                stats.requests.fetch_add(1, Ordering::Relaxed);
                match consumer.consume(batch).await {
                    Ok(()) => {
                        stats.accepted_items.fetch_add(items, Ordering::Relaxed);
                    }
                    Err(refused) => {
                        stats.refused_items.fetch_add(items, Ordering::Relaxed);
                        stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %refused, "internal metrics dropped: pipeline refused them");
                    }
                }
            }
        });
        Ok(StartedReceiver {
            addresses: Vec::new(),
            tasks: vec![task],
        })
    }
}

impl crate::components::compiled::CompiledReceiver for InternalConfig {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(InternalReceiver::new(self.clone()))
    }
}
