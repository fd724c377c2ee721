//! `hostmetrics` receiver: the machine and the processes on it, scraped
//! every `collection_interval`, named and typed per the OpenTelemetry
//! semantic conventions (`system.*`, `process.*`, `container.*`).
//!
//! Kernel counters come from /proc and /sys directly, where the figures
//! are exact and cheap; `sysinfo` supplies load average, uptime and the
//! host name. Scrapes run on the blocking pool: they read files.

mod builder;
mod cgroup;
mod cpu;
mod disk;
mod filesystem;
mod filter;
mod memory;
mod network;
mod processes;
pub mod procfs;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Deserializer};

pub use builder::{MetricsBuilder, Number, int_attribute, string_attribute};
pub use filesystem::statvfs;

use super::{Receiver, ReceiverContext, StartedReceiver};
use crate::signal::Batch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMetricsConfig {
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub collection_interval: Duration,
    /// A list of names (`[cpu, memory]`) or a mapping with settings;
    /// absent means every scraper with its defaults.
    #[serde(default = "Scrapers::all", deserialize_with = "scrapers")]
    pub scrapers: Scrapers,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scrapers {
    #[serde(default, deserialize_with = "enabled")]
    pub cpu: Option<cpu::CpuConfig>,
    #[serde(default, deserialize_with = "enabled")]
    pub load: Option<Empty>,
    #[serde(default, deserialize_with = "enabled")]
    pub memory: Option<Empty>,
    #[serde(default, deserialize_with = "enabled")]
    pub paging: Option<Empty>,
    #[serde(default, deserialize_with = "enabled")]
    pub disk: Option<disk::DiskConfig>,
    #[serde(default, deserialize_with = "enabled")]
    pub filesystem: Option<filesystem::FilesystemConfig>,
    #[serde(default, deserialize_with = "enabled")]
    pub network: Option<network::NetworkConfig>,
    #[serde(default, deserialize_with = "enabled")]
    pub processes: Option<Empty>,
    #[serde(default, deserialize_with = "enabled")]
    pub process: Option<processes::ProcessConfig>,
    #[serde(default, deserialize_with = "enabled")]
    pub cgroup: Option<cgroup::CgroupConfig>,
    #[serde(default, deserialize_with = "enabled")]
    pub uptime: Option<Empty>,
}

const SCRAPER_NAMES: &str =
    "cpu, load, memory, paging, disk, filesystem, network, processes, process, cgroup, uptime";

impl Scrapers {
    pub fn all() -> Self {
        Scrapers {
            cpu: Some(Default::default()),
            load: Some(Empty {}),
            memory: Some(Empty {}),
            paging: Some(Empty {}),
            disk: Some(Default::default()),
            filesystem: Some(Default::default()),
            network: Some(Default::default()),
            processes: Some(Empty {}),
            process: Some(Default::default()),
            cgroup: Some(Default::default()),
            uptime: Some(Empty {}),
        }
    }
}

fn enabled<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

fn scrapers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Scrapers, D::Error> {
    use serde::de::Error;
    match yaml_serde::Value::deserialize(deserializer)? {
        yaml_serde::Value::Sequence(names) => {
            let mut mapping = yaml_serde::Mapping::new();
            for name in names {
                let name = name
                    .as_str()
                    .ok_or_else(|| {
                        D::Error::custom(format!("expected scraper names ({SCRAPER_NAMES})"))
                    })?
                    .to_string();
                mapping.insert(yaml_serde::Value::String(name), yaml_serde::Value::Null);
            }
            yaml_serde::from_value(yaml_serde::Value::Mapping(mapping)).map_err(D::Error::custom)
        }
        yaml_serde::Value::Null => Ok(Scrapers::all()),
        other => yaml_serde::from_value(other).map_err(D::Error::custom),
    }
}

/// Reads a whole /proc or /sys file.
pub(crate) fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// A scraper adds host-level metrics to one builder.
pub(crate) trait Scraper: Send {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String>;
}

struct UptimeScraper;

impl Scraper for UptimeScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let seconds = sysinfo::System::uptime().map_err(|e| format!("uptime: {e}"))?;
        out.gauge(
            "system.uptime",
            "s",
            "Seconds since the machine booted.",
            vec![(Number::from(seconds), vec![])],
        );
        Ok(())
    }
}

/// Every enabled scraper, ready to run.
pub struct HostScrapers {
    host: Vec<(&'static str, Box<dyn Scraper>)>,
    process: Option<processes::ProcessScraper>,
    cgroup: Option<cgroup::CgroupScraper>,
    resource: Vec<KeyValue>,
    boot_unix_nanos: u64,
}

impl HostScrapers {
    pub fn new(config: &Scrapers) -> Self {
        let mut host: Vec<(&'static str, Box<dyn Scraper>)> = Vec::new();
        if let Some(c) = &config.cpu {
            host.push(("cpu", Box::new(cpu::CpuScraper::new(c.clone()))));
        }
        if config.load.is_some() {
            host.push(("load", Box::new(cpu::LoadScraper)));
        }
        if config.memory.is_some() {
            host.push(("memory", Box::new(memory::MemoryScraper)));
        }
        if config.paging.is_some() {
            host.push(("paging", Box::new(memory::PagingScraper)));
        }
        if let Some(c) = &config.disk {
            host.push(("disk", Box::new(disk::DiskScraper { config: c.clone() })));
        }
        if let Some(c) = &config.filesystem {
            host.push((
                "filesystem",
                Box::new(filesystem::FilesystemScraper { config: c.clone() }),
            ));
        }
        if let Some(c) = &config.network {
            host.push((
                "network",
                Box::new(network::NetworkScraper { config: c.clone() }),
            ));
        }
        if config.processes.is_some() {
            host.push(("processes", Box::new(processes::ProcessesScraper)));
        }
        if config.uptime.is_some() {
            host.push(("uptime", Box::new(UptimeScraper)));
        }
        let mut resource = vec![builder::string_attribute("os.type", "linux")];
        if let Ok(name) = sysinfo::System::host_name() {
            resource.push(builder::string_attribute("host.name", name));
        }
        HostScrapers {
            host,
            process: config.process.clone().map(processes::ProcessScraper::new),
            cgroup: config.cgroup.clone().map(cgroup::CgroupScraper::new),
            resource,
            boot_unix_nanos: sysinfo::System::boot_time()
                .unwrap_or(0)
                .saturating_mul(1_000_000_000),
        }
    }

    /// One scrape of everything; a scraper that fails is logged and skipped.
    pub fn scrape(&mut self, now: SystemTime) -> ExportMetricsServiceRequest {
        let now_nanos = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut out = MetricsBuilder::new(now_nanos, self.boot_unix_nanos);
        for (name, scraper) in self.host.iter_mut() {
            if let Err(e) = scraper.scrape(&mut out) {
                tracing::warn!(scraper = *name, error = %e, "hostmetrics scraper failed");
            }
        }
        let scope = Some(InstrumentationScope {
            name: "sidewatch/hostmetrics".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        });
        let resource_metrics =
            |attributes: Vec<KeyValue>, builder: MetricsBuilder| ResourceMetrics {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope.clone(),
                    metrics: builder.metrics,
                    ..Default::default()
                }],
                ..Default::default()
            };
        let mut request = ExportMetricsServiceRequest {
            resource_metrics: vec![resource_metrics(self.resource.clone(), out)],
        };
        let mut extra = Vec::new();
        if let Some(process) = &mut self.process {
            extra.extend(process.scrape_processes(now_nanos, self.boot_unix_nanos));
        }
        if let Some(cgroup) = &mut self.cgroup {
            extra.extend(cgroup.scrape(now_nanos, self.boot_unix_nanos));
        }
        for (attributes, builder) in extra {
            let mut attributes = attributes;
            attributes.extend(self.resource.iter().cloned());
            request
                .resource_metrics
                .push(resource_metrics(attributes, builder));
        }
        request
    }
}

pub struct HostMetricsReceiver {
    config: HostMetricsConfig,
}

impl HostMetricsReceiver {
    pub fn new(config: HostMetricsConfig) -> Self {
        HostMetricsReceiver { config }
    }
}

#[async_trait::async_trait]
impl Receiver for HostMetricsReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let Some(consumer) = context.consumers.metrics.clone() else {
            return Ok(StartedReceiver {
                addresses: Vec::new(),
                tasks: Vec::new(),
            });
        };
        let stats =
            context
                .telemetry
                .receiver(&context.id, "scrape", crate::signal::Signal::Metrics);
        let interval = self.config.collection_interval;
        // Built now, so the CPU baseline is taken at start-up.
        let scrapers = Arc::new(Mutex::new(HostScrapers::new(&self.config.scrapers)));
        let shutdown = context.shutdown.clone();
        let task = tokio::spawn(async move {
            // The first scrape comes soon, with a CPU window of at least 1 s.
            let first = tokio::time::Instant::now() + interval.min(Duration::from_secs(1));
            let mut timer = tokio::time::interval_at(first, interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = timer.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                let scrapers = scrapers.clone();
                let request = match tokio::task::spawn_blocking(move || {
                    scrapers
                        .lock()
                        .expect("scrapers lock")
                        .scrape(SystemTime::now())
                })
                .await
                {
                    Ok(request) => request,
                    Err(e) => {
                        tracing::error!(error = %e, "hostmetrics scrape panicked");
                        continue;
                    }
                };
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
                        tracing::warn!(error = %refused, items, "hostmetrics scrape dropped: pipeline refused it");
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

impl crate::components::compiled::CompiledReceiver for HostMetricsConfig {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(HostMetricsReceiver::new(self.clone()))
    }
}

/// The registry's compile step for `hostmetrics`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    // Decoded on its own first so a wrong key under one scraper is
    // reported at that scraper (`scrapers.cpu.bogus`), not at `scrapers`.
    if let Some(scrapers @ yaml_serde::Value::Mapping(_)) = value.get("scrapers") {
        decoder.decode::<Scrapers>(scrapers, &path.key("scrapers"))?;
    }
    crate::components::compiled::receiver::<HostMetricsConfig>(value, path, decoder)
}
