//! sidewatch's own metrics through the OpenTelemetry SDK: the Collector's
//! `service.telemetry.metrics.readers: [{ periodic: { exporter: { otlp:
//! ... } } }]`. The SDK's `PeriodicReader` and the `opentelemetry-otlp`
//! exporter do the collecting, temporality, resource and export; sidewatch
//! only hands them observations. The counters are the ones the `internal`
//! receiver and `/metrics` show, read through the same
//! `telemetry_metrics` snapshot, so the three never disagree.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, number_data_point};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use tokio_util::sync::CancellationToken;

use super::Telemetry;

/// How a periodic reader sends: the SDK's two OTLP transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// One `periodic` reader, checked by the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodicReaderPlan {
    pub interval: Duration,
    pub timeout: Duration,
    pub protocol: Protocol,
    /// For HTTP, the full URL of the metrics path.
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
}

/// The SDK's meter provider with sidewatch's instruments, and the task
/// that registers instruments for metrics that appear later (a check or
/// a store registered after start has no points at first).
pub struct SdkMetrics {
    provider: SdkMeterProvider,
    stop: CancellationToken,
}

impl SdkMetrics {
    /// Starts every reader; must run inside the Tokio runtime (the gRPC
    /// exporter's channel lives on it).
    pub fn start(
        telemetry: Arc<Telemetry>,
        readers: &[PeriodicReaderPlan],
        resource: &[(String, String)],
    ) -> Result<SdkMetrics, String> {
        let mut builder = SdkMeterProvider::builder().with_resource(
            Resource::builder()
                .with_service_name("sidewatch")
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .with_attributes(
                    resource
                        .iter()
                        .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
                )
                .build(),
        );
        for reader in readers {
            let exporter = match reader.protocol {
                Protocol::Grpc => {
                    let mut metadata = tonic::metadata::MetadataMap::new();
                    for (name, value) in &reader.headers {
                        let name = tonic::metadata::MetadataKey::from_bytes(name.as_bytes())
                            .map_err(|e| format!("header {name:?}: {e}"))?;
                        let value = value.parse().map_err(|e| format!("header {name:?}: {e}"))?;
                        metadata.insert(name, value);
                    }
                    opentelemetry_otlp::MetricExporter::builder()
                        .with_tonic()
                        .with_endpoint(reader.endpoint.clone())
                        .with_timeout(reader.timeout)
                        .with_metadata(metadata)
                        .build()
                }
                Protocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_endpoint(reader.endpoint.clone())
                    .with_timeout(reader.timeout)
                    .with_headers(reader.headers.iter().cloned().collect())
                    .build(),
            }
            .map_err(|e| format!("reader for {}: {e}", reader.endpoint))?;
            builder = builder.with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(reader.interval)
                    .build(),
            );
        }
        let provider = builder.build();
        let meter = provider.meter("sidewatch");
        let snapshot = Arc::new(Snapshot::new(telemetry));
        let stop = CancellationToken::new();
        let shortest = readers
            .iter()
            .map(|r| r.interval)
            .min()
            .unwrap_or(Duration::from_secs(10));
        tokio::spawn(register_new_instruments(
            meter,
            snapshot,
            shortest,
            stop.clone(),
        ));
        Ok(SdkMetrics { provider, stop })
    }

    /// Exports what was counted last and stops the readers, within
    /// `deadline` (the SDK's shutdown blocks on its exporter).
    pub async fn shutdown(self, deadline: Duration) {
        self.stop.cancel();
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(deadline, done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "own metrics: last export failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "own metrics: shutdown task failed"),
            Err(_) => tracing::warn!("own metrics: last export did not end before the deadline"),
        }
    }
}

/// The counters as OTLP metrics, taken once per collection: the SDK calls
/// one callback per instrument, and each reads its metric from the same
/// snapshot instead of building all of them again.
struct Snapshot {
    telemetry: Arc<Telemetry>,
    started: SystemTime,
    taken: Mutex<Option<(Instant, Arc<ByName>)>>,
}

/// One snapshot's metrics by name.
type ByName = HashMap<String, Metric>;

/// Callbacks of one collection run within this of each other.
const SNAPSHOT_REUSE: Duration = Duration::from_millis(100);

impl Snapshot {
    fn new(telemetry: Arc<Telemetry>) -> Snapshot {
        Snapshot {
            telemetry,
            started: SystemTime::now(),
            taken: Mutex::new(None),
        }
    }

    fn metrics(&self) -> Arc<ByName> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, metrics)) = taken.as_ref()
            && at.elapsed() < SNAPSHOT_REUSE
        {
            return metrics.clone();
        }
        let built = crate::receivers::internal::telemetry_metrics(
            &self.telemetry,
            SystemTime::now(),
            self.started,
        );
        let metrics: Arc<ByName> = Arc::new(
            built
                .metrics
                .into_iter()
                .map(|m| (m.name.clone(), m))
                .collect(),
        );
        *taken = Some((Instant::now(), metrics.clone()));
        metrics
    }

    fn points(&self, name: &str) -> Vec<(f64, i64, Vec<KeyValue>)> {
        let metrics = self.metrics();
        let Some(metric) = metrics.get(name) else {
            return Vec::new();
        };
        data_points(metric)
            .iter()
            .map(|p| {
                let (double, int) = match p.value {
                    Some(number_data_point::Value::AsInt(v)) => (v as f64, v),
                    Some(number_data_point::Value::AsDouble(v)) => (v, v as i64),
                    None => (0.0, 0),
                };
                (double, int, attributes(p))
            })
            .collect()
    }
}

fn data_points(metric: &Metric) -> &[NumberDataPoint] {
    match &metric.data {
        Some(Data::Gauge(g)) => &g.data_points,
        Some(Data::Sum(s)) => &s.data_points,
        _ => &[],
    }
}

fn attributes(point: &NumberDataPoint) -> Vec<KeyValue> {
    point
        .attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => opentelemetry::Value::from(s.clone()),
                any_value::Value::IntValue(i) => opentelemetry::Value::from(*i),
                any_value::Value::DoubleValue(d) => opentelemetry::Value::from(*d),
                any_value::Value::BoolValue(b) => opentelemetry::Value::from(*b),
                _ => return None,
            };
            Some(KeyValue::new(kv.key.clone(), value))
        })
        .collect()
}

/// The instrument a metric of this shape needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Counter { int: bool },
    UpDown { int: bool },
    Gauge { int: bool },
}

fn shape(metric: &Metric) -> Option<Shape> {
    let int = matches!(
        data_points(metric).first()?.value,
        Some(number_data_point::Value::AsInt(_))
    );
    Some(match &metric.data {
        Some(Data::Sum(s)) if s.is_monotonic => Shape::Counter { int },
        Some(Data::Sum(_)) => Shape::UpDown { int },
        Some(Data::Gauge(_)) => Shape::Gauge { int },
        _ => return None,
    })
}

/// Registers an observable instrument for every metric the snapshot has
/// and no instrument yet reads, at start and then every `interval`.
async fn register_new_instruments(
    meter: Meter,
    snapshot: Arc<Snapshot>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut known = BTreeSet::new();
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = stop.cancelled() => return,
        }
        let metrics = snapshot.metrics();
        for (name, metric) in metrics.iter() {
            if known.contains(name) {
                continue;
            }
            let Some(shape) = shape(metric) else {
                continue;
            };
            register(&meter, &snapshot, metric, shape);
            known.insert(name.clone());
        }
    }
}

fn register(meter: &Meter, snapshot: &Arc<Snapshot>, metric: &Metric, shape: Shape) {
    let name = metric.name.clone();
    let unit = metric.unit.clone();
    let description = metric.description.clone();
    let source = snapshot.clone();
    let reads = name.clone();
    // The SDK keeps an observable instrument's callback for the provider's
    // lifetime; the returned handle need not be held.
    match shape {
        Shape::Counter { int: true } => {
            meter
                .u64_observable_counter(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| {
                    for (_, v, attrs) in source.points(&reads) {
                        o.observe(v.max(0) as u64, &attrs);
                    }
                })
                .build();
        }
        Shape::Counter { int: false } => {
            meter
                .f64_observable_counter(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| {
                    for (v, _, attrs) in source.points(&reads) {
                        o.observe(v, &attrs);
                    }
                })
                .build();
        }
        Shape::UpDown { int: true } => {
            meter
                .i64_observable_up_down_counter(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| {
                    for (_, v, attrs) in source.points(&reads) {
                        o.observe(v, &attrs);
                    }
                })
                .build();
        }
        Shape::UpDown { int: false } => {
            meter
                .f64_observable_up_down_counter(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| {
                    for (v, _, attrs) in source.points(&reads) {
                        o.observe(v, &attrs);
                    }
                })
                .build();
        }
        Shape::Gauge { int: true } => {
            meter
                .i64_observable_gauge(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| {
                    for (_, v, attrs) in source.points(&reads) {
                        o.observe(v, &attrs);
                    }
                })
                .build();
        }
        Shape::Gauge { int: false } => {
            meter
                .f64_observable_gauge(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| {
                    for (v, _, attrs) in source.points(&reads) {
                        o.observe(v, &attrs);
                    }
                })
                .build();
        }
    }
}
