//! Builds the running graph from a [`Plan`] and stops it in order.
//!
//! Start: exporters (queues and workers) first, then pipelines from the
//! last in topological order to the first (so a connector's downstream
//! pipelines exist when it is built), then receivers, then tickers and the
//! telemetry endpoint. Stop, under one deadline: receivers stop accepting
//! and finish in-flight requests; tickers stop (one blocked on a full queue
//! is abandoned at the deadline); pipelines flush in topological order;
//! queues drain, all at once, so one stuck on a dead backend costs the
//! others nothing; whatever is stuck is named.
//!
//! `build_graph` is the part without receivers and tickers, shared with
//! `sidewatch replay`, which drives the same graph on a manual clock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{ConnectorRuntime, Consumer, PipelineRuntime, Target};
use crate::clock::Clock;
use crate::components::{
    ConnectorConfig, ConnectorContext, ExporterConfig, ExporterContext, ProcessorConfig,
};
use crate::config::ComponentId;
use crate::config::storage::Storage;
use crate::exporters::Exporter;
use crate::exporters::queue::{self, QueueRunner, QueueSender};
use crate::plan::Plan;
use crate::processors::Processor;
use crate::receivers::otlp::OtlpReceiverConfig;
use crate::receivers::{Consumers, ReceiverContext};
use crate::signal::Signal;
use crate::telemetry::{self, State, Telemetry};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{component}: {message}")]
    Component { component: String, message: String },
}

/// A started collector; [`RunningCollector::shutdown`] stops it.
pub struct RunningCollector {
    /// Every bound listener: `otlp/grpc`, `otlp/http`, `telemetry`, ...
    pub addresses: BTreeMap<String, SocketAddr>,
    pub telemetry: Arc<Telemetry>,
    clock: Clock,
    shutdown_timeout: Duration,
    receivers_stop: CancellationToken,
    receivers_closed: CancellationToken,
    receiver_tasks: Vec<JoinHandle<()>>,
    tickers_stop: CancellationToken,
    /// Each ticker with what it ticks, to name it if it is stuck.
    ticker_tasks: Vec<(String, JoinHandle<()>)>,
    pipelines: Vec<Arc<PipelineRuntime>>,
    queues: Vec<QueueRunner>,
    telemetry_stop: CancellationToken,
    telemetry_task: Option<JoinHandle<()>>,
    /// `health_check` endpoints: they stop with the telemetry endpoint,
    /// answering 503 through the drain.
    health_tasks: Vec<JoinHandle<()>>,
    /// `service.telemetry.metrics.readers` of kind `periodic`.
    sdk_metrics: Option<telemetry::sdk_metrics::SdkMetrics>,
}

/// The graph without receivers and tickers: pipelines (in the plan's
/// topological order), connectors, and exporter queues. `start` runs it
/// live; `replay` drives the same graph on event time.
pub struct Graph {
    pub pipelines: Vec<Arc<PipelineRuntime>>,
    pub(crate) connectors: BTreeMap<ComponentId, Arc<ConnectorRuntime>>,
    pub queues: Vec<QueueRunner>,
}

/// What a graph is built for: live, or a replay (which starts from a clean
/// slate and never touches the live state files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Live,
    Replay,
}

/// Makes the exporter for (id, config, signal) with its queue settings.
pub(crate) type ExporterFactory<'a> = dyn FnMut(
        &ComponentId,
        &ExporterConfig,
        Signal,
    ) -> Result<
        (
            Arc<dyn Exporter>,
            crate::exporters::settings::ExporterSettings,
        ),
        String,
    > + 'a;

/// Builds every exporter queue, connector and pipeline of `plan`; needs a
/// Tokio runtime (queues start their workers).
pub(crate) fn build_graph(
    plan: &Plan,
    telemetry: &Telemetry,
    purpose: Purpose,
    make_exporter: &mut ExporterFactory<'_>,
) -> Result<Graph, StartError> {
    let component_error =
        |component: String, message: String| StartError::Component { component, message };
    // Exporters: one queue per (exporter, signal) in use.
    let mut senders: BTreeMap<(ComponentId, Signal), QueueSender> = BTreeMap::new();
    let mut queues = Vec::new();
    for pipeline in &plan.service.pipelines {
        for id in pipeline
            .exporters
            .iter()
            .filter(|id| plan.exporters.contains_key(*id))
        {
            let key = (id.clone(), pipeline.signal);
            if senders.contains_key(&key) {
                continue;
            }
            let name = id.to_string();
            let (exporter, mut settings) = make_exporter(id, &plan.exporters[id], pipeline.signal)
                .map_err(|m| component_error(format!("exporter {name}"), m))?;
            if settings.sending_queue.batch.is_none()
                && let Some(folded) = plan.queue_batching.get(&key)
            {
                tracing::info!(
                    exporter = %name,
                    signal = %pipeline.signal,
                    "{} batches inside this exporter's persistent queue, so clients are answered once their data is in its log",
                    folded.from
                );
                settings.sending_queue.batch = Some(folded.settings.clone());
            }
            let stats =
                telemetry.exporter(&name, pipeline.signal, settings.sending_queue.queue_size);
            let (sender, runner) = queue::start(&name, pipeline.signal, exporter, &settings, stats)
                .map_err(|m| component_error(format!("exporter {name}"), m))?;
            senders.insert(key, sender);
            queues.push(runner);
        }
    }

    // Pipelines, downstream first.
    let mut built: BTreeMap<String, Arc<PipelineRuntime>> = BTreeMap::new();
    let mut connectors: BTreeMap<ComponentId, Arc<ConnectorRuntime>> = BTreeMap::new();
    for pipeline in plan.service.pipelines.iter().rev() {
        let mut targets = Vec::new();
        for id in &pipeline.exporters {
            if let Some(config) = plan.connectors.get(id) {
                let connector = connectors.entry(id.clone()).or_insert_with(|| {
                    let downstream = plan
                        .service
                        .pipelines
                        .iter()
                        .filter(|p| p.receivers.contains(id))
                        .filter_map(|p| built.get(&p.id).cloned())
                        .collect();
                    let mut state = build_connector(&id.to_string(), config, purpose);
                    state.register_telemetry(&id.to_string(), telemetry);
                    if let Some(stats) = state.cardinality() {
                        telemetry.register_cardinality("connector", &id.to_string(), "", stats);
                    }
                    Arc::new(ConnectorRuntime::new(id.to_string(), state, downstream))
                });
                targets.push(Target::Connector(connector.clone()));
            } else {
                targets.push(Target::Exporter(
                    senders[&(id.clone(), pipeline.signal)].clone(),
                ));
            }
        }
        let processors = pipeline
            .processors
            .iter()
            .map(|id| {
                let mut processor = build_processor(&plan.processors[id]);
                processor.register_telemetry(&id.to_string(), telemetry);
                if let Some(stats) = processor.cardinality() {
                    telemetry.register_cardinality(
                        "processor",
                        &id.to_string(),
                        &pipeline.id,
                        stats,
                    );
                }
                processor
            })
            .collect();
        let runtime =
            PipelineRuntime::new(pipeline.id.clone(), pipeline.signal, processors, targets);
        built.insert(pipeline.id.clone(), Arc::new(runtime));
    }
    Ok(Graph {
        pipelines: plan
            .service
            .pipelines
            .iter()
            .map(|p| built[&p.id].clone())
            .collect(),
        connectors,
        queues,
    })
}

/// A pipeline or connector that holds data back and wants a periodic tick.
#[derive(Clone)]
pub(crate) enum Timed {
    Pipeline(Arc<PipelineRuntime>),
    Connector(Arc<ConnectorRuntime>),
}

impl Timed {
    pub(crate) fn name(&self) -> String {
        match self {
            Timed::Pipeline(p) => format!("pipeline {}", p.id),
            Timed::Connector(c) => format!("connector {}", c.id),
        }
    }

    pub(crate) async fn tick(&self, now: SystemTime) {
        match self {
            Timed::Pipeline(p) => p.tick(now).await,
            Timed::Connector(c) => c.tick(now).await,
        }
    }
}

impl Graph {
    /// Everything that wants a tick, with its interval.
    pub(crate) fn timed(&self) -> Vec<(Timed, Duration)> {
        let pipelines = self
            .pipelines
            .iter()
            .filter_map(|p| Some((Timed::Pipeline(p.clone()), p.tick_interval()?)));
        let connectors = self
            .connectors
            .values()
            .filter_map(|c| Some((Timed::Connector(c.clone()), c.tick_interval()?)));
        pipelines.chain(connectors).collect()
    }
}

pub async fn start(plan: &Plan) -> Result<RunningCollector, StartError> {
    start_on(plan, Clock::System).await
}

/// Starts the collector with `clock` as the graph's time.
pub async fn start_on(plan: &Plan, clock: Clock) -> Result<RunningCollector, StartError> {
    crate::tls::install_provider();
    let telemetry = Arc::new(Telemetry::default());
    let component_error =
        |component: String, message: String| StartError::Component { component, message };
    let graph = build_graph(
        plan,
        &telemetry,
        Purpose::Live,
        &mut |id, config, signal| {
            let exporter = config.build(&ExporterContext {
                name: &id.to_string(),
                signal,
                clock: &clock,
                telemetry: &telemetry,
            })?;
            Ok((exporter, config.settings()))
        },
    )?;
    let timed = graph.timed();
    let Graph {
        pipelines, queues, ..
    } = graph;
    let built: BTreeMap<&str, &Arc<PipelineRuntime>> =
        pipelines.iter().map(|p| (p.id.as_str(), p)).collect();

    // Health checks answer 503 from here until every receiver is up.
    let mut addresses = BTreeMap::new();
    let telemetry_stop = CancellationToken::new();
    let mut health_tasks = Vec::new();
    for (id, config) in &plan.service.health_checks {
        let name = id.to_string();
        let (bound, task) = crate::extensions::health_check::start(
            config,
            telemetry.clone(),
            telemetry_stop.clone(),
        )
        .await
        .map_err(|e| {
            component_error(
                name.clone(),
                format!("cannot listen on {}: {e}", config.endpoint),
            )
        })?;
        tracing::info!(listener = %name, address = %bound, "listening");
        addresses.insert(name, bound);
        health_tasks.push(task);
    }

    // Receivers.
    let receivers_stop = CancellationToken::new();
    let receivers_closed = CancellationToken::new();
    let mut receiver_tasks = Vec::new();
    let memory = plan.service.memory_limiter.as_ref().map(|config| {
        crate::pipeline::memory::MemoryLimiter::start(config, receivers_stop.clone())
    });
    if let Some(limiter) = &memory {
        let _ = telemetry.memory_limiter.set(limiter.clone());
    }
    for (id, config) in &plan.receivers {
        let mut consumers = Consumers::default();
        for signal in Signal::ALL {
            let feeding: Vec<Arc<PipelineRuntime>> = plan
                .service
                .pipelines
                .iter()
                .filter(|p| p.signal == signal && p.receivers.contains(id))
                .map(|p| built[p.id.as_str()].clone())
                .collect();
            if !feeding.is_empty() {
                let consumer = Consumer::new(
                    feeding,
                    receivers_closed.clone(),
                    memory.clone(),
                    clock.clone(),
                );
                if consumer.accepts_wire()
                    && crate::components::receiver_as::<OtlpReceiverConfig>(config).is_some()
                {
                    tracing::info!(receiver = %id, %signal, "OTLP protobuf passes through encoded: validated and counted, not decoded, since nothing on its way looks inside");
                }
                consumers.set(signal, consumer);
            }
        }
        let receiver = config.build();
        let context = ReceiverContext {
            id: id.to_string(),
            consumers,
            telemetry: telemetry.clone(),
            shutdown: receivers_stop.clone(),
        };
        let started = receiver
            .start(context)
            .await
            .map_err(|e| component_error(format!("receiver {id}"), e.to_string()))?;
        for (name, address) in started.addresses {
            tracing::info!(listener = %name, %address, "listening");
            addresses.insert(name, address);
        }
        receiver_tasks.extend(started.tasks);
    }

    // Tickers for processors and connectors that hold data back.
    let tickers_stop = CancellationToken::new();
    let ticker_tasks = timed
        .into_iter()
        .map(|(timed, interval)| {
            let name = timed.name();
            let task = spawn_ticker(timed, interval, clock.clone(), tickers_stop.clone());
            (name, task)
        })
        .collect();

    let mut telemetry_task = None;
    if let Some(address) = &plan.service.telemetry.address {
        let resolved = address.resolve().map_err(|e| {
            component_error(
                "telemetry endpoint".into(),
                format!("cannot listen on {address}: {e}"),
            )
        })?;
        let (bound, task) = telemetry::server::start(
            resolved,
            telemetry.clone(),
            plan.service.telemetry.dashboard,
            telemetry_stop.clone(),
            plan.service.telemetry.auth.as_ref(),
        )
        .await
        .map_err(|e| {
            component_error(
                "telemetry endpoint".into(),
                format!("cannot listen on {address}: {e}"),
            )
        })?;
        tracing::info!(listener = "telemetry", address = %bound, "listening");
        addresses.insert("telemetry".into(), bound);
        telemetry_task = Some(task);
    }
    let sdk_metrics = if plan.service.telemetry.readers.is_empty() {
        None
    } else {
        Some(
            telemetry::sdk_metrics::SdkMetrics::start(
                telemetry.clone(),
                &plan.service.telemetry.readers,
                &plan.service.telemetry.resource,
            )
            .map_err(|message| {
                component_error("service.telemetry.metrics.readers".into(), message)
            })?,
        )
    };
    telemetry.set_state(State::Running);
    Ok(RunningCollector {
        addresses,
        telemetry,
        clock,
        shutdown_timeout: plan.service.shutdown_timeout,
        receivers_stop,
        receivers_closed,
        receiver_tasks,
        tickers_stop,
        ticker_tasks,
        pipelines,
        queues,
        telemetry_stop,
        telemetry_task,
        health_tasks,
        sdk_metrics,
    })
}

/// Ticks `timed` every `interval` on `clock` until `stop`. A tick that has
/// begun runs to its end (what it emitted is delivered, waiting for queue
/// room if need be); shutdown waits for it only until its deadline.
fn spawn_ticker(
    timed: Timed,
    interval: Duration,
    clock: Clock,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = timer.tick() => timed.tick(clock.now()).await,
                _ = stop.cancelled() => return,
            }
        }
    })
}

/// What shutdown achieved.
#[derive(Debug)]
pub struct ShutdownReport {
    /// False when the deadline hit before every queue drained.
    pub clean: bool,
    pub stuck: Vec<String>,
}

impl RunningCollector {
    /// Stops accepting, drains every pipeline and queue, within the
    /// configured `service.shutdown_timeout`.
    pub async fn shutdown(self) -> ShutdownReport {
        let deadline = Instant::now() + self.shutdown_timeout;
        self.telemetry.set_state(State::Stopping);
        let mut stuck = Vec::new();

        self.receivers_stop.cancel();
        for task in self.receiver_tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, task).await.is_err() {
                stuck.push("a receiver did not finish its in-flight requests".to_string());
            }
        }
        self.receivers_closed.cancel();

        // A tick blocked on a full queue (its exporter's backend down) is
        // waited for only until the deadline, then abandoned and named.
        self.tickers_stop.cancel();
        for (name, mut task) in self.ticker_tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, &mut task).await.is_err() {
                task.abort();
                stuck.push(format!(
                    "the ticker of {name} was still delivering: its exporters' queues stayed full"
                ));
            }
        }
        for pipeline in &self.pipelines {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, pipeline.flush(self.clock.now()))
                .await
                .is_err()
            {
                stuck.push(format!(
                    "pipeline {} could not flush: its exporters' queues stayed full",
                    pipeline.id
                ));
            }
        }

        // Every queue drains at once against the one deadline: a queue
        // stuck on a dead backend neither spends the others' time nor adds
        // its abandon grace to theirs.
        let drains = self.queues.into_iter().map(|queue| async move {
            let name = format!("exporter {} ({})", queue.name, queue.stats.signal);
            (name, queue.drain(deadline).await)
        });
        for (name, drained) in futures::future::join_all(drains).await {
            if !drained {
                stuck.push(format!("{name} did not drain before the deadline"));
            }
        }
        // The readers' last export counts what the drain did.
        if let Some(sdk) = self.sdk_metrics {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100));
            sdk.shutdown(left).await;
        }
        for problem in &stuck {
            tracing::error!(problem = %problem, "shutdown incomplete");
        }
        self.telemetry_stop.cancel();
        for mut task in self.health_tasks {
            if tokio::time::timeout(Duration::from_millis(100), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        if let Some(mut task) = self.telemetry_task {
            // The endpoint stops at once; a scrape in flight gets a moment.
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100));
            if tokio::time::timeout(left, &mut task).await.is_err() {
                task.abort();
            }
        }
        ShutdownReport {
            clean: stuck.is_empty(),
            stuck,
        }
    }
}

/// A processor as `run` builds it (public for the fuzz targets).
pub fn build_processor(config: &ProcessorConfig) -> Box<dyn Processor> {
    config.build()
}

/// A connector as `run` builds it (public for the fuzz targets): a replay
/// grants it no storage, so it starts from a clean slate and never touches
/// the live state files.
pub fn build_connector(id: &str, config: &ConnectorConfig, purpose: Purpose) -> Box<dyn Processor> {
    config.build(&ConnectorContext {
        id,
        storage: purpose.storage(),
    })
}

impl Purpose {
    fn storage(self) -> Storage {
        match self {
            Purpose::Live => Storage::LIVE,
            Purpose::Replay => Storage::NONE,
        }
    }
}
