//! The one closed registry of component types: a YAML type name maps to
//! its config and constructor here, by `match`, so every component is one
//! grep away. `sidewatch components` prints [`COMPONENTS`].

use yaml_serde::Value;

use crate::config::{Decoder, YamlPath};
use crate::signal::Signal;
use crate::{connectors, exporters, processors, receivers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Receiver,
    Processor,
    Exporter,
    Connector,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Connector => "connector",
        }
    }
}

pub struct ComponentInfo {
    pub kind: Kind,
    pub type_name: &'static str,
    pub description: &'static str,
    /// Signals handled by a receiver, processor or exporter.
    pub signals: &'static [Signal],
    /// For a connector: the (exporter-side, receiver-side) signal pairs.
    pub connects: &'static [(Signal, Signal)],
}

const ALL: &[Signal] = &Signal::ALL;

pub const COMPONENTS: &[ComponentInfo] = &[
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "otlp",
        description: "OTLP over gRPC (4317) and HTTP (4318): protobuf or JSON, gzip or zstd",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "zipkin",
        description: "Zipkin v2 spans (JSON or protobuf) on POST /api/v2/spans (9411), converted to OTLP as the Collector does",
        signals: &[Signal::Traces],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "kafka",
        description: "OTLP (protobuf or JSON) from Kafka topics as a consumer group member; offsets committed once the data is in every exporter queue",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "hostmetrics",
        description: "CPU, load, memory, disk, filesystem, network, connections, processes, cgroups, uptime",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "internal",
        description: "sidewatch's own telemetry (receivers, exporters, queues, process) as metrics",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "prometheus",
        description: "scrapes Prometheus and OpenMetrics endpoints (scrape_configs with static targets and relabelling)",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "exec",
        description: "runs a command on an interval; its output (Prometheus text, Influx line protocol or JSON) as metrics",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "filelog",
        description: "tails files by glob: rotation, checkpoints, multiline, regex/json/time/severity parsers",
        signals: &[Signal::Logs],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "httpcheck",
        description: "HTTP(S) endpoint checks: status, expected codes, body regex or JSON pointer, per-phase timings, redirects, client certificates",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "http_check",
        description: "httpcheck under the Collector's id",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "tcpcheck",
        description: "TCP connect checks (and UDP with protocol: udp), optional send/expect",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "tcp_check",
        description: "tcpcheck under the Collector's id",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "tlscheck",
        description: "TLS certificate checks: time left until expiry, issuer, subject and SANs, trust",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "tls_check",
        description: "tlscheck under the Collector's id",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "dnscheck",
        description: "DNS checks of a record type against an expected answer and response code, at a chosen server",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "dns_check",
        description: "dnscheck under the Collector's id",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "icmpcheck",
        description: "ping: packet loss and round-trip times (ICMP datagram or raw sockets)",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "postgresql",
        description: "PostgreSQL statistics views: backends, commits, sizes, cache hit ratio, long-running and slow queries, replication lag, up",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "mysql",
        description: "MySQL and MariaDB global status: threads, connections, buffer pool and its hit ratio, queries, slow queries, replica lag, up",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "redis",
        description: "Redis INFO: clients, memory against maxmemory, keyspace hits and misses, commands, replication, up",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "batch",
        description: "groups items into batches by size or after a timeout; flushes on shutdown",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "filter",
        description: "drops spans, span events, metrics, data points or log records matching OTTL conditions",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "transform",
        description: "edits telemetry with OTTL statements (the Collector's transform processor config)",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "memory_limiter",
        description: "the Collector's memory_limiter, compiled onto service.memory_limiter (one limit for the process, enforced at the receivers)",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "attributes",
        description: "the Collector's attribute actions (insert, update, upsert, delete, hash, extract, convert) on spans, log records and data points, with include/exclude",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "resource",
        description: "the Collector's attribute actions on resource attributes",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "resourcedetection",
        description: "sets resource attributes from OTEL_RESOURCE_ATTRIBUTES (env) and this host (system: host.name, host.id, os.type, host.arch)",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "probabilistic_sampler",
        description: "keeps a percentage of traces (by trace id) and log records: the Collector's hash_seed decision bit for bit, or consistent sampling with the W3C `th` tracestate",
        signals: &[Signal::Traces, Signal::Logs],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "tail_sampling",
        description: "keeps or drops whole traces after decision_wait by policies (always_sample, latency, status_code, probabilistic, string/numeric attributes, rate_limiting, span_count, and, composite), at most num_traces held",
        signals: &[Signal::Traces],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "percentiles",
        description: "windowed percentiles (p50..p99, max) of histogram, gauge and sum metrics",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "otlp",
        description: "OTLP over gRPC to a backend, with queue, retry and backoff",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "otlphttp",
        description: "OTLP over HTTP (protobuf or JSON; gzip, zstd or none), with queue, retry and backoff",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "kafka",
        description: "OTLP (protobuf or JSON) to a Kafka topic per signal, keyed by trace id, resource, series or attributes; acknowledged once the broker acknowledged",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "debug",
        description: "logs a summary (basic) or every item (detailed) of what arrives",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "file",
        description: "writes OTLP JSON lines to a file, rotating by size",
        signals: ALL,
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "prometheus",
        description: "a scrape endpoint (9464) in Prometheus text or OpenMetrics format",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "prometheusremotewrite",
        description: "Prometheus remote write 1.0 (protobuf + snappy) to Prometheus, Mimir, Cortex, Thanos, with queue, retry and backoff",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "store",
        description: "keeps metrics on this host: retention tiers with rollups, series and disk caps; queried with PromQL on the telemetry endpoint",
        signals: &[Signal::Metrics],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "alertmanager",
        description: "sends alert events to Alertmanager's API, re-sending while they fire",
        signals: &[Signal::Logs],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "webhook",
        description: "posts alert events as Alertmanager-style webhook JSON, or as a Slack message",
        signals: &[Signal::Logs],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "email",
        description: "mails alert notifications over SMTP (STARTTLS or TLS, optional auth)",
        signals: &[Signal::Logs],
        connects: &[],
    },
    ComponentInfo {
        kind: Kind::Connector,
        type_name: "alert",
        description: "threshold, absence and forecast rules over metrics; emits alert events as logs",
        signals: &[],
        connects: &[(Signal::Metrics, Signal::Logs)],
    },
    ComponentInfo {
        kind: Kind::Connector,
        type_name: "anomaly",
        description: "z-score anomaly detection per series: scores to metrics pipelines, incidents to logs pipelines",
        signals: &[],
        connects: &[
            (Signal::Metrics, Signal::Metrics),
            (Signal::Metrics, Signal::Logs),
        ],
    },
    ComponentInfo {
        kind: Kind::Connector,
        type_name: "red",
        description: "spans to RED metrics: request and error rates, windowed duration percentiles with exemplars",
        signals: &[],
        connects: &[(Signal::Traces, Signal::Metrics)],
    },
    ComponentInfo {
        kind: Kind::Connector,
        type_name: "spanmetrics",
        description: "the Collector's span metrics: traces.span.metrics.calls and .duration (explicit or exponential histogram, exemplars) per service, span name, kind, status and dimensions",
        signals: &[],
        connects: &[(Signal::Traces, Signal::Metrics)],
    },
    ComponentInfo {
        kind: Kind::Connector,
        type_name: "logpatterns",
        description: "mines log templates online: per-pattern counts to metrics, records stamped with their pattern and new-pattern events to logs",
        signals: &[],
        connects: &[
            (Signal::Logs, Signal::Logs),
            (Signal::Logs, Signal::Metrics),
        ],
    },
    ComponentInfo {
        kind: Kind::Connector,
        type_name: "count",
        description: "counts spans, span events, metrics, data points and log records matching OTTL conditions, by attributes, as delta sums",
        signals: &[],
        connects: &[
            (Signal::Traces, Signal::Metrics),
            (Signal::Metrics, Signal::Metrics),
            (Signal::Logs, Signal::Metrics),
        ],
    },
    ComponentInfo {
        kind: Kind::Connector,
        type_name: "forward",
        description: "passes data from one pipeline to another of the same signal",
        signals: &[],
        connects: &[
            (Signal::Traces, Signal::Traces),
            (Signal::Metrics, Signal::Metrics),
            (Signal::Logs, Signal::Logs),
        ],
    },
];

pub fn lookup(kind: Kind, type_name: &str) -> Option<&'static ComponentInfo> {
    COMPONENTS
        .iter()
        .find(|c| c.kind == kind && c.type_name == type_name)
}

pub fn type_names(kind: Kind) -> Vec<&'static str> {
    COMPONENTS
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.type_name)
        .collect()
}

#[derive(Debug, Clone)]
pub enum ReceiverConfig {
    Otlp(receivers::otlp::OtlpReceiverConfig),
    HostMetrics(receivers::hostmetrics::HostMetricsConfig),
    Internal(receivers::internal::InternalConfig),
    Prometheus(receivers::prometheus::PrometheusReceiverConfig),
    Exec(receivers::exec::ExecConfig),
    FileLog(receivers::filelog::FileLogPlan),
    Checks(receivers::checks::ChecksPlan),
    Zipkin(receivers::zipkin::ZipkinConfig),
    Kafka(receivers::kafka::KafkaReceiverConfig),
    Postgresql(receivers::databases::postgresql::PostgresqlPlan),
    Redis(receivers::databases::redis::RedisPlan),
    Mysql(receivers::databases::mysql::MysqlPlan),
}

#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    Batch(processors::batch::BatchConfig),
    Percentiles(processors::percentiles::PercentilesConfig),
    Filter(processors::filter::FilterConfig),
    Transform(processors::transform::TransformConfig),
    /// Moved onto `service.memory_limiter` by the plan; see
    /// processors/memory_limiter.rs.
    MemoryLimiter(crate::pipeline::memory::MemoryLimiterConfig),
    ResourceDetection(processors::resourcedetection::ResourceDetectionConfig),
    Attributes(processors::attributes::AttributesConfig),
    Resource(processors::attributes::resource::ResourceConfig),
    ProbabilisticSampler(processors::probabilistic_sampler::ProbabilisticSamplerConfig),
    TailSampling(processors::tail_sampling::TailSamplingConfig),
}

// Configs are built once at start-up; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ExporterConfig {
    Otlp(exporters::otlp::OtlpExporterConfig),
    OtlpHttp(exporters::otlphttp::OtlpHttpExporterConfig),
    Debug(exporters::debug::DebugExporterConfig),
    File(exporters::file::FileExporterConfig),
    Prometheus(exporters::prometheus::PrometheusExporterConfig),
    PrometheusRemoteWrite(exporters::prometheusremotewrite::PrometheusRemoteWriteConfig),
    Store(exporters::store::StoreExporterConfig),
    Alertmanager(exporters::alertmanager::AlertmanagerExporterConfig),
    Webhook(exporters::webhook::WebhookExporterConfig),
    Email(exporters::email::EmailExporterConfig),
    Kafka(exporters::kafka::KafkaExporterConfig),
}

#[derive(Debug, Clone)]
pub enum ConnectorConfig {
    Forward(connectors::forward::ForwardConfig),
    Alert(connectors::alert::AlertConfig),
    Red(connectors::red::RedConfig),
    SpanMetrics(connectors::spanmetrics::SpanMetricsConfig),
    Anomaly(connectors::anomaly::AnomalyConfig),
    LogPatterns(connectors::logpatterns::LogPatternsConfig),
    Count(connectors::count::CountConfig),
}

pub fn decode_receiver(
    type_name: &str,
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<ReceiverConfig> {
    match type_name {
        "otlp" => {
            let config: receivers::otlp::OtlpReceiverConfig = decoder.decode(value, path)?;
            let protocols = &config.protocols;
            let at = path.key("protocols");
            if let Some(cors) = protocols.http.as_ref().and_then(|h| h.cors.as_ref())
                && cors.allowed_origins.is_empty()
            {
                decoder.warning(
                    at.key("http").key("cors"),
                    "cors without allowed_origins is off, as in the Collector: no preflight is answered",
                );
            }
            let metadata = [
                (
                    "grpc",
                    protocols.grpc.as_ref().and_then(|g| g.include_metadata),
                ),
                (
                    "http",
                    protocols.http.as_ref().and_then(|h| h.include_metadata),
                ),
            ];
            for (protocol, include) in metadata {
                if include == Some(true) {
                    decoder.warning(
                        at.key(protocol).key("include_metadata"),
                        "include_metadata is ignored: no sidewatch component reads client metadata",
                    );
                }
            }
            let plaintext = protocols.grpc.as_ref().is_some_and(|g| g.tls.is_none())
                || protocols.http.as_ref().is_some_and(|h| h.tls.is_none());
            let errors = config
                .auth
                .as_ref()
                .map(|a| a.validate(plaintext))
                .unwrap_or_default();
            let mut valid = errors.is_empty();
            for (field, message) in errors {
                let at = path.key("auth");
                decoder.error(if field == "auth" { at } else { at.key(field) }, message);
            }
            let deadlines = [
                ("grpc", protocols.grpc.as_ref().map(|g| g.deadlines())),
                ("http", protocols.http.as_ref().map(|h| h.deadlines())),
            ];
            for (protocol, deadlines) in deadlines {
                for (field, message) in deadlines.map(|d| d.validate()).unwrap_or_default() {
                    valid = false;
                    let at = path.key("protocols").key(protocol).key(field);
                    decoder.error(at, message);
                }
            }
            // The certificate files, loaded as the listener would load them.
            let tls = [
                ("grpc", protocols.grpc.as_ref().and_then(|g| g.tls.as_ref())),
                ("http", protocols.http.as_ref().and_then(|h| h.tls.as_ref())),
            ];
            for (protocol, tls) in tls {
                if let Some(Err(message)) = tls.map(|t| t.check()) {
                    let at = path.key("protocols").key(protocol).key("tls");
                    decoder.error(at, message);
                    valid = false;
                }
            }
            valid.then_some(ReceiverConfig::Otlp(config))
        }
        "hostmetrics" => {
            // Decoded on its own first so a wrong key under one scraper is
            // reported at that scraper (`scrapers.cpu.bogus`), not at
            // `scrapers`.
            if let Some(scrapers @ Value::Mapping(_)) = value.get("scrapers") {
                decoder
                    .decode::<receivers::hostmetrics::Scrapers>(scrapers, &path.key("scrapers"))?;
            }
            decoder.decode(value, path).map(ReceiverConfig::HostMetrics)
        }
        "internal" => decoder.decode(value, path).map(ReceiverConfig::Internal),
        "kafka" => {
            let config: receivers::kafka::KafkaReceiverConfig = decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (keys, message) in errors {
                let at = keys.iter().fold(path.clone(), |at, k| at.key(*k));
                decoder.error(at, message);
            }
            valid.then_some(ReceiverConfig::Kafka(config))
        }
        "zipkin" => {
            let config: receivers::zipkin::ZipkinConfig = decoder.decode(value, path)?;
            if config.parse_string_tags {
                decoder.error(
                    path.key("parse_string_tags"),
                    "parse_string_tags: true is not supported by sidewatch: tags stay strings (type them with `transform`, e.g. `set(attributes[\"k\"], Int(attributes[\"k\"]))`)",
                );
                return None;
            }
            Some(ReceiverConfig::Zipkin(config))
        }
        "prometheus" => {
            receivers::prometheus::decode(value, path, decoder).map(ReceiverConfig::Prometheus)
        }
        "exec" => receivers::exec::decode(value, path, decoder).map(ReceiverConfig::Exec),
        "httpcheck" | "http_check" => {
            use receivers::checks::{decode, http::HttpTarget};
            decode::<HttpTarget>("http", value, path, decoder).map(ReceiverConfig::Checks)
        }
        "tcpcheck" | "tcp_check" => {
            use receivers::checks::{decode, tcp::TcpTarget};
            decode::<TcpTarget>("tcp", value, path, decoder).map(ReceiverConfig::Checks)
        }
        "tlscheck" | "tls_check" => {
            use receivers::checks::{decode, tls::TlsTarget};
            decode::<TlsTarget>("tls", value, path, decoder).map(ReceiverConfig::Checks)
        }
        "dnscheck" | "dns_check" => {
            use receivers::checks::{decode, dns::DnsTarget};
            decode::<DnsTarget>("dns", value, path, decoder).map(ReceiverConfig::Checks)
        }
        "icmpcheck" => {
            use receivers::checks::{decode, icmp::IcmpTarget};
            decode::<IcmpTarget>("icmp", value, path, decoder).map(ReceiverConfig::Checks)
        }
        "postgresql" => {
            let config: receivers::databases::postgresql::PostgresqlConfig =
                decoder.decode(value, path)?;
            compiled(config.compile(), path, decoder).map(ReceiverConfig::Postgresql)
        }
        "mysql" => {
            let config: receivers::databases::mysql::MysqlConfig = decoder.decode(value, path)?;
            compiled(config.compile(), path, decoder).map(ReceiverConfig::Mysql)
        }
        "redis" => {
            let config: receivers::databases::redis::RedisConfig = decoder.decode(value, path)?;
            compiled(config.compile(), path, decoder).map(ReceiverConfig::Redis)
        }
        "filelog" => {
            let config: receivers::filelog::FileLogConfig = decoder.decode(value, path)?;
            match config.compile() {
                Ok(plan) => Some(ReceiverConfig::FileLog(plan)),
                Err(errors) => {
                    for (keys, message) in errors {
                        let at = keys.into_iter().fold(path.clone(), |at, k| match k {
                            receivers::filelog::KeyOrIndex::Key(k) => at.key(k),
                            receivers::filelog::KeyOrIndex::Index(i) => at.index(i),
                        });
                        decoder.error(at, message);
                    }
                    None
                }
            }
        }
        _ => None,
    }
}

/// A compiled config, or its (field, message) errors reported at `path`.
fn compiled<T>(
    result: Result<T, Vec<(&'static str, String)>>,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<T> {
    match result {
        Ok(plan) => Some(plan),
        Err(errors) => {
            for (field, message) in errors {
                decoder.error(path.key(field), message);
            }
            None
        }
    }
}

pub fn decode_processor(
    type_name: &str,
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<ProcessorConfig> {
    match type_name {
        "percentiles" => {
            let config: processors::percentiles::PercentilesConfig = decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (field, message) in errors {
                decoder.error(path.key(field), message);
            }
            valid.then_some(ProcessorConfig::Percentiles(config))
        }
        "batch" => {
            // Batching by client metadata: sidewatch batches per pipeline only.
            let mut value = value.clone();
            if let Some(mapping) = value.as_mapping_mut() {
                for key in ["metadata_keys", "metadata_cardinality_limit"] {
                    if mapping.remove(key).is_some() {
                        decoder.warning(
                            path.key(key),
                            format!("{key} is ignored: sidewatch batches per pipeline, not per client metadata"),
                        );
                    }
                }
            }
            let config: processors::batch::BatchConfig = decoder.decode(&value, path)?;
            if let Err(message) = config.validate() {
                decoder.error(path.key("send_batch_max_size"), message);
                return None;
            }
            Some(ProcessorConfig::Batch(config))
        }
        "filter" => processors::filter::FilterConfig::decode(value, path, decoder)
            .map(ProcessorConfig::Filter),
        "transform" => processors::transform::TransformConfig::decode(value, path, decoder)
            .map(ProcessorConfig::Transform),
        "attributes" => {
            let raw: processors::attributes::RawAttributesConfig = decoder.decode(value, path)?;
            match raw.compile() {
                Ok(config) => Some(ProcessorConfig::Attributes(config)),
                Err(errors) => {
                    for (keys, message) in errors {
                        let at = keys.iter().fold(path.clone(), |at, k| {
                            match k
                                .strip_prefix('[')
                                .and_then(|k| k.strip_suffix(']'))
                                .and_then(|k| k.parse().ok())
                            {
                                Some(i) => at.index(i),
                                None => at.key(k.clone()),
                            }
                        });
                        decoder.error(at, message);
                    }
                    None
                }
            }
        }
        "resource" => {
            let raw: processors::attributes::resource::RawResourceConfig =
                decoder.decode(value, path)?;
            let mut actions = Vec::new();
            let mut valid = true;
            for (i, action) in raw.attributes.iter().enumerate() {
                match action.compile() {
                    Ok(a) => actions.push(a),
                    Err((field, message)) => {
                        valid = false;
                        decoder.error(path.key("attributes").index(i).key(field), message);
                    }
                }
            }
            valid.then_some(ProcessorConfig::Resource(
                processors::attributes::resource::ResourceConfig { actions },
            ))
        }
        "resourcedetection" => {
            let mut refused = false;
            let detectors = value.get("detectors").and_then(Value::as_sequence);
            for (i, detector) in detectors.into_iter().flatten().enumerate() {
                let name = detector.as_str().unwrap_or_default();
                if !matches!(name, "env" | "system") {
                    refused = true;
                    decoder.error(
                        path.key("detectors").index(i),
                        format!("the `{name}` detector is not supported by sidewatch: only env and system (cloud, docker and Kubernetes detectors need metadata services that cannot be tested here; set their attributes with OTEL_RESOURCE_ATTRIBUTES and the env detector)"),
                    );
                }
            }
            if refused {
                return None;
            }
            decoder
                .decode(value, path)
                .map(ProcessorConfig::ResourceDetection)
        }
        "tail_sampling" => {
            processors::tail_sampling::TailSamplingConfig::decode(value, path, decoder)
                .map(ProcessorConfig::TailSampling)
        }
        "probabilistic_sampler" => {
            let raw: processors::probabilistic_sampler::RawProbabilisticSamplerConfig =
                decoder.decode(value, path)?;
            match raw.compile() {
                Ok(config) => Some(ProcessorConfig::ProbabilisticSampler(config)),
                Err(errors) => {
                    for (field, message) in errors {
                        decoder.error(path.key(field), message);
                    }
                    None
                }
            }
        }
        "memory_limiter" => {
            let config: processors::memory_limiter::CollectorMemoryLimiterConfig =
                decoder.decode(value, path)?;
            match config.compile(processors::memory_limiter::available_mib()) {
                Ok(config) => Some(ProcessorConfig::MemoryLimiter(config)),
                Err(errors) => {
                    for (field, message) in errors {
                        decoder.error(path.key(field), message);
                    }
                    None
                }
            }
        }
        _ => None,
    }
}

pub fn decode_exporter(
    type_name: &str,
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<ExporterConfig> {
    let queue_enabled = value.get("sending_queue").and_then(|q| q.get("enabled"));
    if queue_enabled.and_then(Value::as_bool) == Some(false) {
        decoder.error(
            path.key("sending_queue").key("enabled"),
            "sidewatch cannot send without its queue (the queue is how backpressure reaches the receivers): remove `enabled: false`, and set `queue_size` to bound it",
        );
        return None;
    }
    let config = match type_name {
        "otlp" => decoder.decode(value, path).map(ExporterConfig::Otlp),
        "otlphttp" => decoder.decode(value, path).map(ExporterConfig::OtlpHttp),
        "debug" if value.get("loglevel").is_some() => {
            // The `logging` exporter's old setting: debug printed every
            // item, the other levels a summary.
            let mut value = value.clone();
            let level = value
                .as_mapping_mut()
                .and_then(|m| m.remove("loglevel"))
                .and_then(|l| l.as_str().map(str::to_string))
                .unwrap_or_default();
            let verbosity = if level == "debug" {
                "detailed"
            } else {
                "basic"
            };
            decoder.warning(
                path.key("loglevel"),
                format!("loglevel is the logging exporter's old setting: read as `verbosity: {verbosity}`"),
            );
            if let Some(m) = value.as_mapping_mut() {
                m.entry("verbosity".into()).or_insert(verbosity.into());
            }
            decoder.decode(&value, path).map(ExporterConfig::Debug)
        }
        "debug" => decoder.decode(value, path).map(ExporterConfig::Debug),
        "file" => decoder.decode(value, path).map(ExporterConfig::File),
        "prometheus" => decoder.decode(value, path).map(ExporterConfig::Prometheus),
        "prometheusremotewrite" => {
            let config: exporters::prometheusremotewrite::PrometheusRemoteWriteConfig =
                decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (keys, message) in errors {
                let at = keys.iter().fold(path.clone(), |at, k| at.key(*k));
                decoder.error(at, message);
            }
            valid.then_some(ExporterConfig::PrometheusRemoteWrite(config))
        }
        "store" => {
            let config: exporters::store::StoreExporterConfig = decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (fields, message) in errors {
                let mut at = path.clone();
                for field in &fields {
                    at = match field.parse::<usize>() {
                        Ok(i) => at.index(i),
                        Err(_) => at.key(field),
                    };
                }
                decoder.error(at, message);
            }
            valid.then_some(ExporterConfig::Store(config))
        }
        "alertmanager" => decoder
            .decode(value, path)
            .map(ExporterConfig::Alertmanager),
        "webhook" => decoder.decode(value, path).map(ExporterConfig::Webhook),
        "kafka" => {
            let config: exporters::kafka::KafkaExporterConfig = decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (keys, message) in errors {
                let at = keys.iter().fold(path.clone(), |at, k| at.key(*k));
                decoder.error(at, message);
            }
            valid.then_some(ExporterConfig::Kafka(config))
        }
        "email" => {
            let config: exporters::email::EmailExporterConfig = decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (field, message) in errors {
                decoder.error(path.key(field), message);
            }
            valid.then_some(ExporterConfig::Email(config))
        }
        _ => None,
    }?;
    exporter_starts(&config, path, decoder).then_some(config)
}

/// Runs what the exporter's constructor would refuse, without connecting,
/// binding or creating anything: `validate` and `run` then agree, and a
/// builder cannot fail on a config that compiled (except for the world
/// changing in between: a file deleted, a port taken).
fn exporter_starts(config: &ExporterConfig, path: &YamlPath, decoder: &mut Decoder) -> bool {
    if let Some(batch) = &config.settings().sending_queue.batch {
        let errors = batch.validate();
        let valid = errors.is_empty();
        for (field, message) in errors {
            decoder.error(path.key("sending_queue").key("batch").key(field), message);
        }
        if !valid {
            return false;
        }
    }
    let tls = match config {
        ExporterConfig::Otlp(c) => c.tls.as_ref(),
        ExporterConfig::OtlpHttp(c) => c.tls.as_ref(),
        ExporterConfig::Alertmanager(c) => c.tls.as_ref(),
        ExporterConfig::Webhook(c) => c.tls.as_ref(),
        ExporterConfig::PrometheusRemoteWrite(c) => c.tls.as_ref(),
        _ => None,
    };
    if let Some(Err((field, message))) = tls.map(|t| t.check()) {
        decoder.error(path.key("tls").key(field), message);
        return false;
    }
    let built = match config {
        ExporterConfig::Otlp(c) => c.prepare().map(|_| ()),
        ExporterConfig::OtlpHttp(c) => Signal::ALL.iter().try_for_each(|signal| {
            exporters::otlphttp::OtlpHttpExporter::new(c, *signal).map(|_| ())
        }),
        ExporterConfig::Alertmanager(c) => {
            exporters::alertmanager::AlertmanagerExporter::client(c).map(|_| ())
        }
        ExporterConfig::Webhook(c) => {
            exporters::webhook::WebhookExporter::new(c, "validate").map(|_| ())
        }
        ExporterConfig::PrometheusRemoteWrite(c) => {
            exporters::prometheusremotewrite::PrometheusRemoteWriteExporter::new(c).map(|_| ())
        }
        ExporterConfig::File(c) => {
            if let Err(message) = c.validate() {
                decoder.error(path.key("path"), message);
                return false;
            }
            Ok(())
        }
        _ => Ok(()),
    };
    match built {
        Ok(()) => true,
        Err(message) => {
            decoder.error(path.clone(), message);
            false
        }
    }
}

pub fn decode_connector(
    type_name: &str,
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<ConnectorConfig> {
    match type_name {
        "forward" => decoder.decode(value, path).map(ConnectorConfig::Forward),
        "count" => {
            connectors::count::CountConfig::decode(value, path, decoder).map(ConnectorConfig::Count)
        }
        "logpatterns" => {
            let config: connectors::logpatterns::LogPatternsConfig = decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (field, message) in errors {
                decoder.error(path.key(field), message);
            }
            valid.then_some(ConnectorConfig::LogPatterns(config))
        }
        "anomaly" => {
            let config: connectors::anomaly::AnomalyConfig = decoder.decode(value, path)?;
            match config.detector() {
                Ok(_) => Some(ConnectorConfig::Anomaly(config)),
                Err(errors) => {
                    for (field, message) in errors {
                        decoder.error(path.key(field), message);
                    }
                    None
                }
            }
        }
        "spanmetrics" => {
            let config: connectors::spanmetrics::SpanMetricsConfig = decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (keys, message) in errors {
                let at = keys.iter().fold(path.clone(), |at, k| {
                    match k
                        .strip_prefix('[')
                        .and_then(|k| k.strip_suffix(']'))
                        .and_then(|k| k.parse().ok())
                    {
                        Some(i) => at.index(i),
                        None => at.key(k.clone()),
                    }
                });
                decoder.error(at, message);
            }
            valid.then_some(ConnectorConfig::SpanMetrics(config))
        }
        "red" => {
            let config: connectors::red::RedConfig = decoder.decode(value, path)?;
            let errors = config.validate();
            let valid = errors.is_empty();
            for (field, message) in errors {
                decoder.error(path.key(field), message);
            }
            valid.then_some(ConnectorConfig::Red(config))
        }
        "alert" => {
            let raw: connectors::alert::RawAlertConfig = decoder.decode(value, path)?;
            let mut rules = Vec::new();
            let mut valid = true;
            for (i, rule) in raw.rules.iter().enumerate() {
                let rule_path = path.key("rules").index(i);
                let Some(rule) =
                    decoder.decode::<crate::alerting::rule::RuleConfig>(rule, &rule_path)
                else {
                    valid = false;
                    continue;
                };
                if let Err(errors) = rule.compile() {
                    valid = false;
                    for (field, message) in errors {
                        decoder.error(rule_path.key(field), message);
                    }
                }
                rules.push(rule);
            }
            valid.then_some(ConnectorConfig::Alert(connectors::alert::AlertConfig {
                evaluation_interval: raw.evaluation_interval,
                state_file: raw.state_file,
                max_series: raw.max_series,
                rules,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_type_decodes_with_defaults() {
        let mut decoder = crate::config::test_decoder();
        for info in COMPONENTS {
            let path = YamlPath::root().key(info.type_name);
            let value = match (info.kind, info.type_name) {
                (Kind::Exporter, "prometheusremotewrite") => {
                    yaml_serde::from_str("endpoint: http://127.0.0.1:9090/api/v1/write").unwrap()
                }
                (Kind::Exporter, "otlp" | "otlphttp") => {
                    yaml_serde::from_str("endpoint: http://127.0.0.1:1").unwrap()
                }
                (Kind::Exporter, "file") => yaml_serde::from_str("path: /tmp/x.jsonl").unwrap(),
                (Kind::Exporter, "store") => yaml_serde::from_str("path: /tmp/store").unwrap(),
                (Kind::Exporter, "alertmanager") => {
                    yaml_serde::from_str("endpoint: http://127.0.0.1:9093").unwrap()
                }
                (Kind::Exporter, "webhook") => {
                    yaml_serde::from_str("url: http://127.0.0.1:1/hook").unwrap()
                }
                (Kind::Exporter, "email") => yaml_serde::from_str(
                    "{ smarthost: 127.0.0.1:25, from: a@example.com, to: [b@example.com] }",
                )
                .unwrap(),
                (Kind::Connector, "alert") => yaml_serde::from_str("rules: []").unwrap(),
                (Kind::Receiver, "filelog") => {
                    yaml_serde::from_str("include: [/tmp/*.log]").unwrap()
                }
                (Kind::Processor, "percentiles") => yaml_serde::from_str("metrics: [m]").unwrap(),
                (Kind::Processor, "attributes") => yaml_serde::from_str("actions: []").unwrap(),
                (Kind::Processor, "resource") => yaml_serde::from_str("attributes: []").unwrap(),
                (Kind::Processor, "resourcedetection") => {
                    yaml_serde::from_str("detectors: [env]").unwrap()
                }
                (Kind::Processor, "tail_sampling") => {
                    yaml_serde::from_str("policies: [{ name: all, type: always_sample }]").unwrap()
                }
                (Kind::Processor, "memory_limiter") => {
                    yaml_serde::from_str("limit_mib: 512").unwrap()
                }
                (Kind::Receiver, "httpcheck" | "http_check") => {
                    yaml_serde::from_str("targets: [{ endpoint: http://127.0.0.1:1/ }]").unwrap()
                }
                (Kind::Receiver, "tcpcheck" | "tcp_check" | "tlscheck" | "tls_check") => {
                    yaml_serde::from_str("targets: [{ endpoint: 127.0.0.1:1 }]").unwrap()
                }
                (Kind::Receiver, "dnscheck" | "dns_check") => {
                    yaml_serde::from_str("targets: [{ domain: example.com, server: 127.0.0.1 }]")
                        .unwrap()
                }
                (Kind::Receiver, "icmpcheck") => {
                    yaml_serde::from_str("targets: [{ host: 127.0.0.1 }]").unwrap()
                }
                (Kind::Receiver, "postgresql") => yaml_serde::from_str("username: u").unwrap(),
                (Kind::Receiver, "exec") => yaml_serde::from_str("command: [\"true\"]").unwrap(),
                (Kind::Receiver, "prometheus") => yaml_serde::from_str(
                    "config: { scrape_configs: [ { job_name: j, static_configs: [ { targets: ['127.0.0.1:9090'] } ] } ] }",
                )
                .unwrap(),
                (Kind::Connector, "anomaly") => yaml_serde::from_str("metrics: [m]").unwrap(),
                _ => Value::Null,
            };
            let ok = match info.kind {
                Kind::Receiver => {
                    decode_receiver(info.type_name, &value, &path, &mut decoder).is_some()
                }
                Kind::Processor => {
                    decode_processor(info.type_name, &value, &path, &mut decoder).is_some()
                }
                Kind::Exporter => {
                    decode_exporter(info.type_name, &value, &path, &mut decoder).is_some()
                }
                Kind::Connector => {
                    decode_connector(info.type_name, &value, &path, &mut decoder).is_some()
                }
            };
            assert!(
                ok,
                "{} {} did not decode",
                info.kind.as_str(),
                info.type_name
            );
        }
    }
}
