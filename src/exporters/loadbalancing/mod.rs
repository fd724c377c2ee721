//! `loadbalancing` exporter: splits each batch by a routing key (trace id,
//! service, resource, metric name, stream id or attributes) and sends every
//! part over OTLP/gRPC to the backend a consistent-hash [`ring`] picks, so
//! that everything of one key reaches one sidewatch of a tier.
//!
//! One queue sits in front of the ring, not one per backend: a batch leaves
//! it only once every part was delivered somewhere. A backend that fails
//! retryably is marked down (for 1 s, doubling to 30 s while it keeps
//! failing) and its parts are routed again at once, to the next live
//! backend on the ring; only when no backend is live does the batch go
//! back to the queue's retry. What was acknowledged to the client is
//! therefore never stranded with a dead backend; a part that reached a
//! backend that died before answering is sent again: a duplicate.

pub mod config;
pub mod resolver;
pub mod ring;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use self::config::{LoadBalancingConfig, RoutingKey, Source};
use self::ring::Ring;
use super::kafka::partition::{self, KeyBy};
use super::otlp::OtlpExporter;
use super::settings::ExporterSettings;
use super::{ExportError, Exporter};
use crate::components::compiled::{CompiledExporter, ExporterContext};
use crate::signal::{Batch, Signal};

/// Rounds of routing in one export call: the first, and failovers after
/// backends failed in it. The queue's timeout covers all of them.
const ROUNDS: u32 = 4;

const FIRST_DOWN: Duration = Duration::from_secs(1);
const LONGEST_DOWN: Duration = Duration::from_secs(30);

fn key_by(key: RoutingKey, attributes: &[String]) -> KeyBy {
    match key {
        RoutingKey::TraceId => KeyBy::TraceId,
        RoutingKey::Service => KeyBy::Service,
        RoutingKey::Resource => KeyBy::Resource,
        RoutingKey::Metric => KeyBy::MetricName,
        RoutingKey::StreamId => KeyBy::Series,
        RoutingKey::Attributes => KeyBy::Attributes(attributes.to_vec()),
    }
}

struct Backend {
    exporter: Arc<OtlpExporter>,
    /// Skipped by the ring until then.
    down_until: Option<Instant>,
    failures: u32,
}

#[derive(Default)]
struct State {
    ring: Ring,
    backends: HashMap<String, Backend>,
    /// Whether a resolution has ever succeeded (a static list always has).
    resolved: bool,
}

struct Shared {
    config: LoadBalancingConfig,
    signal: Signal,
    name: String,
    state: Mutex<State>,
}

impl Shared {
    /// Makes the ring `endpoints`: backends kept keep their connection and
    /// health; new ones get a client; gone ones are dropped.
    fn set_endpoints(&self, endpoints: Vec<String>) -> Result<(), String> {
        let mut state = self.state.lock().expect("state lock");
        if state.ring.endpoints() == endpoints.as_slice() {
            state.resolved = true;
            return Ok(());
        }
        let mut backends = HashMap::new();
        for endpoint in &endpoints {
            let backend = match state.backends.remove(endpoint) {
                Some(backend) => backend,
                None => Backend {
                    exporter: Arc::new(OtlpExporter::new(
                        &self.config.otlp_for(endpoint)?,
                        self.signal,
                    )?),
                    down_until: None,
                    failures: 0,
                },
            };
            backends.insert(endpoint.clone(), backend);
        }
        tracing::info!(exporter = %self.name, endpoints = ?endpoints, "loadbalancing ring changed");
        state.backends = backends;
        state.ring = Ring::new(endpoints);
        state.resolved = true;
        Ok(())
    }

    fn mark(&self, endpoint: &str, ok: bool) {
        let mut state = self.state.lock().expect("state lock");
        let Some(backend) = state.backends.get_mut(endpoint) else {
            return;
        };
        if ok {
            backend.failures = 0;
            backend.down_until = None;
        } else {
            backend.failures = backend.failures.saturating_add(1);
            let down = FIRST_DOWN
                .saturating_mul(1 << (backend.failures - 1).min(5))
                .min(LONGEST_DOWN);
            backend.down_until = Some(Instant::now() + down);
        }
    }
}

/// A backend, its client, and the parts it is to take.
type Route = (String, Arc<OtlpExporter>, Vec<Part>);

/// A part of a batch and the hash of its routing key.
struct Part {
    hash: u64,
    batch: Batch,
}

pub struct LoadBalancingExporter {
    shared: Arc<Shared>,
    key_by: KeyBy,
    timeout: Duration,
    dns: Option<config::DnsResolver>,
    resolver: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for LoadBalancingExporter {
    fn drop(&mut self) {
        if let Some(task) = &self.resolver {
            task.abort();
        }
    }
}

impl LoadBalancingExporter {
    pub fn new(
        config: &LoadBalancingConfig,
        source: Source,
        signal: Signal,
        name: &str,
    ) -> Result<Self, String> {
        let key = config.routing_for(signal)?;
        let shared = Arc::new(Shared {
            config: config.clone(),
            signal,
            name: name.to_string(),
            state: Mutex::new(State::default()),
        });
        let (dns, resolver) = match source {
            Source::Static(hostnames) => {
                shared.set_endpoints(hostnames)?;
                (None, None)
            }
            Source::Dns(dns) => {
                let handle = tokio::runtime::Handle::try_current()
                    .map_err(|_| "the DNS resolver needs a runtime".to_string())?;
                let task = handle.spawn(watch_dns(shared.clone(), dns.clone()));
                (Some(dns), Some(task))
            }
        };
        Ok(LoadBalancingExporter {
            shared,
            key_by: key_by(key, &config.routing_attributes),
            timeout: config.settings().timeout,
            dns,
            resolver,
        })
    }

    fn split(&self, batch: &Batch) -> Result<Vec<Part>, ExportError> {
        let decoded = batch
            .decoded()
            .map_err(|e| ExportError::permanent(format!("decoding the batch: {e}")))?;
        let otlp = decoded.otlp();
        let hashed = |key: Option<String>| ring::hash(key.unwrap_or_default().as_bytes());
        Ok(match &*otlp {
            Batch::Traces(r) => partition::split_traces(r, &self.key_by)
                .into_iter()
                .map(|(k, r)| Part {
                    hash: hashed(k),
                    batch: Batch::Traces(Arc::new(r)),
                })
                .collect(),
            Batch::Metrics(r) => partition::split_metrics(r, &self.key_by)
                .into_iter()
                .map(|(k, r)| Part {
                    hash: hashed(k),
                    batch: Batch::Metrics(Arc::new(r)),
                })
                .collect(),
            Batch::Logs(r) => partition::split_logs(r, &self.key_by)
                .into_iter()
                .map(|(k, r)| Part {
                    hash: hashed(k),
                    batch: Batch::Logs(Arc::new(r)),
                })
                .collect(),
            Batch::Wire(_) | Batch::Events(_) => {
                return Err(ExportError::permanent(
                    "the batch was not decoded to OTLP before routing",
                ));
            }
        })
    }

    /// Resolves now when no resolution has succeeded yet (the first batch
    /// may come before the watcher's first answer).
    async fn ensure_resolved(&self) -> Result<(), ExportError> {
        let Some(dns) = &self.dns else {
            return Ok(());
        };
        if self.shared.state.lock().expect("state lock").resolved {
            return Ok(());
        }
        let endpoints = resolver::resolve(dns)
            .await
            .map_err(ExportError::retryable)?;
        self.shared
            .set_endpoints(endpoints)
            .map_err(ExportError::permanent)
    }

    /// Groups `parts` by the live backend the ring gives each; the parts no
    /// backend can take are returned apart.
    fn route(&self, parts: Vec<Part>, failed_now: &[String]) -> (Vec<Route>, Vec<Part>) {
        let state = self.shared.state.lock().expect("state lock");
        let now = Instant::now();
        let skip = |endpoint: &str| {
            failed_now.iter().any(|f| f == endpoint)
                || state
                    .backends
                    .get(endpoint)
                    .and_then(|b| b.down_until)
                    .is_some_and(|until| until > now)
        };
        let mut groups: BTreeMap<String, Vec<Part>> = BTreeMap::new();
        let mut homeless = Vec::new();
        for part in parts {
            match state.ring.pick(part.hash, skip) {
                Some(endpoint) => groups.entry(endpoint.to_string()).or_default().push(part),
                None => homeless.push(part),
            }
        }
        let routed = groups
            .into_iter()
            .filter_map(|(endpoint, parts)| {
                let exporter = state.backends.get(&endpoint)?.exporter.clone();
                Some((endpoint, exporter, parts))
            })
            .collect();
        (routed, homeless)
    }
}

/// One request of the parts' items, in their order.
fn merge(signal: Signal, parts: &[Part]) -> Batch {
    match signal {
        Signal::Traces => Batch::Traces(Arc::new(ExportTraceServiceRequest {
            resource_spans: parts
                .iter()
                .flat_map(|p| match &p.batch {
                    Batch::Traces(r) => r.resource_spans.clone(),
                    _ => Vec::new(),
                })
                .collect(),
        })),
        Signal::Metrics => Batch::Metrics(Arc::new(ExportMetricsServiceRequest {
            resource_metrics: parts
                .iter()
                .flat_map(|p| match &p.batch {
                    Batch::Metrics(r) => r.resource_metrics.clone(),
                    _ => Vec::new(),
                })
                .collect(),
        })),
        Signal::Logs => Batch::Logs(Arc::new(ExportLogsServiceRequest {
            resource_logs: parts
                .iter()
                .flat_map(|p| match &p.batch {
                    Batch::Logs(r) => r.resource_logs.clone(),
                    _ => Vec::new(),
                })
                .collect(),
        })),
    }
}

/// Looks the name up every interval; a failed lookup keeps the ring.
async fn watch_dns(shared: Arc<Shared>, dns: config::DnsResolver) {
    loop {
        let wait = match resolver::resolve(&dns).await {
            Ok(endpoints) => {
                if endpoints.is_empty() {
                    tracing::warn!(exporter = %shared.name, hostname = %dns.hostname, "the name has no addresses: nothing can be sent until it has");
                }
                if let Err(e) = shared.set_endpoints(endpoints) {
                    tracing::warn!(exporter = %shared.name, error = %e, "cannot use the resolved endpoints");
                }
                dns.interval
            }
            Err(e) => {
                tracing::warn!(exporter = %shared.name, error = %e, "DNS lookup failed; keeping the endpoints found before");
                if shared.state.lock().expect("state lock").resolved {
                    dns.interval
                } else {
                    resolver::FIRST_LOOKUP_RETRY.min(dns.interval)
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[async_trait::async_trait]
impl Exporter for LoadBalancingExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.ensure_resolved().await?;
        let signal = batch.signal();
        let mut pending = self.split(batch)?;
        let mut failed_now: Vec<String> = Vec::new();
        let mut last_failure = String::new();
        let total_items: usize = pending.iter().map(|p| p.batch.item_count()).sum();
        // Items backends refused (answered, not to be retried), and why.
        let mut rejected = 0u64;
        let mut refusal = String::new();
        for _ in 0..ROUNDS {
            if pending.is_empty() {
                break;
            }
            let (routed, homeless) = self.route(std::mem::take(&mut pending), &failed_now);
            pending = homeless;
            if routed.is_empty() {
                break;
            }
            let sends = routed.into_iter().map(|(endpoint, exporter, parts)| {
                let timeout = self.timeout;
                async move {
                    let request = merge(signal, &parts);
                    let result =
                        match tokio::time::timeout(timeout, exporter.export(&request)).await {
                            Ok(result) => result,
                            Err(_) => Err(ExportError::retryable(format!(
                                "timed out after {timeout:?} (endpoint {endpoint})"
                            ))),
                        };
                    (endpoint, parts, result)
                }
            });
            for (endpoint, parts, result) in futures::future::join_all(sends).await {
                match result {
                    Ok(()) => self.shared.mark(&endpoint, true),
                    Err(ExportError::Retryable { message, .. }) => {
                        tracing::warn!(exporter = %self.shared.name, %endpoint, error = %message, "backend failed; routing its part to the next one on the ring");
                        self.shared.mark(&endpoint, false);
                        failed_now.push(endpoint);
                        last_failure = message;
                        pending.extend(parts);
                    }
                    // The backend answered: it is alive, and it refused.
                    Err(ExportError::Permanent { message }) => {
                        self.shared.mark(&endpoint, true);
                        rejected += parts
                            .iter()
                            .map(|p| p.batch.item_count() as u64)
                            .sum::<u64>();
                        refusal = format!("{message} (endpoint {endpoint})");
                    }
                    Err(ExportError::PartiallyRejected {
                        rejected: count,
                        message,
                    }) => {
                        self.shared.mark(&endpoint, true);
                        rejected += count;
                        refusal = format!("{message} (endpoint {endpoint})");
                    }
                }
            }
        }
        if !pending.is_empty() {
            let count = self
                .shared
                .state
                .lock()
                .expect("state lock")
                .ring
                .endpoints()
                .len();
            let message = if count == 0 {
                "no backend to send to: the resolver found none".to_string()
            } else if last_failure.is_empty() {
                format!("all {count} backends are marked down after failing")
            } else {
                format!("no live backend of {count} took the batch; last error: {last_failure}")
            };
            return Err(ExportError::retryable(message));
        }
        // The parts other backends took are delivered: only the refused
        // items count as failed.
        match rejected {
            0 => Ok(()),
            n if n as usize >= total_items => Err(ExportError::permanent(refusal)),
            n => Err(ExportError::PartiallyRejected {
                rejected: n,
                message: refusal,
            }),
        }
    }
}

/// A config that passed its checks, with where its endpoints come from.
#[derive(Debug)]
pub struct Compiled {
    config: LoadBalancingConfig,
    source: Source,
}

impl CompiledExporter for Compiled {
    fn settings(&self) -> ExporterSettings {
        let mut settings = self.config.settings();
        // The queue's deadline covers one call: its first routing and the
        // failovers after it, each bounded by the configured timeout.
        settings.timeout = settings.timeout.saturating_mul(ROUNDS);
        settings
    }

    fn build(&self, context: &ExporterContext<'_>) -> Result<Arc<dyn Exporter>, String> {
        Ok(Arc::new(LoadBalancingExporter::new(
            &self.config,
            self.source.clone(),
            context.signal,
            context.name,
        )?))
    }

    fn refuses_signal(&self, signal: Signal) -> Option<String> {
        self.config.routing_for(signal).err()
    }
}

/// The registry's compile step: the checks every queued exporter gets
/// (super::compile), at this exporter's own paths, then its own.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<Arc<dyn CompiledExporter>> {
    let otlp_path = path.key("protocol").key("otlp");
    let otlp_value = value.get("protocol").and_then(|p| p.get("otlp"));
    for (at, value) in [(path.clone(), Some(value)), (otlp_path.clone(), otlp_value)] {
        let enabled = value
            .and_then(|v| v.get("sending_queue"))
            .and_then(|q| q.get("enabled"));
        if enabled.and_then(yaml_serde::Value::as_bool) == Some(false) {
            decoder.error(
                at.key("sending_queue").key("enabled"),
                "sidewatch cannot send without its queue (the queue is how backpressure reaches the receivers): remove `enabled: false`, and set `queue_size` to bound it",
            );
            return None;
        }
    }
    let config: LoadBalancingConfig = decoder.decode(value, path)?;
    if let Some(batch) = &config.settings().sending_queue.batch {
        let queue_path = if config.sending_queue.is_some() {
            path.key("sending_queue")
        } else {
            otlp_path.key("sending_queue")
        };
        let errors = batch.validate();
        let valid = errors.is_empty();
        for (field, message) in errors {
            decoder.error(queue_path.key("batch").key(field), message);
        }
        if !valid {
            return None;
        }
    }
    if let Some(Err((field, message))) = config.protocol.otlp.tls.as_ref().map(|t| t.check()) {
        decoder.error(otlp_path.key("tls").key(field), message);
        return None;
    }
    let source = config.check(path, decoder)?;
    Some(Arc::new(Compiled { config, source }))
}
