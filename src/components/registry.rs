//! The one closed registry of component types: one [`Row`] per YAML type
//! holds its kind, its name and the Collector's other spellings of it, its
//! description, its signals, and the function that compiles its config
//! into the form its builder takes (src/components/compiled.rs). Adding a
//! component is one row here plus its own file; `sidewatch components`
//! prints [`REGISTRY`], and every id in a config is looked up in it.

use yaml_serde::Value;

use super::compiled;
use super::{ConnectorConfig, ExporterConfig, ProcessorConfig, ReceiverConfig};
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

/// Decodes and validates a config found at a path, reporting every error
/// to the decoder; `None` only after reporting one.
pub type CompileFn<T> = fn(&Value, &YamlPath, &mut Decoder) -> Option<T>;

/// A row's compile step; its variant is the row's kind.
#[derive(Clone, Copy)]
pub enum Compile {
    Receiver(CompileFn<ReceiverConfig>),
    Processor(CompileFn<ProcessorConfig>),
    Exporter(CompileFn<ExporterConfig>),
    Connector(CompileFn<ConnectorConfig>),
}

/// Another spelling of a type: the Collector's, old or new. The id keeps
/// the written spelling (pipelines refer to it, errors quote it).
pub struct Alias {
    pub name: &'static str,
    /// `Some` when the Collector itself deprecates the name: the warning.
    pub deprecated: Option<&'static str>,
}

pub struct Row {
    pub type_name: &'static str,
    pub aliases: &'static [Alias],
    pub description: &'static str,
    /// Signals handled by a receiver, processor or exporter.
    pub signals: &'static [Signal],
    /// For a connector: the (exporter-side, receiver-side) signal pairs.
    pub connects: &'static [(Signal, Signal)],
    pub compile: Compile,
}

impl Row {
    pub fn kind(&self) -> Kind {
        match self.compile {
            Compile::Receiver(_) => Kind::Receiver,
            Compile::Processor(_) => Kind::Processor,
            Compile::Exporter(_) => Kind::Exporter,
            Compile::Connector(_) => Kind::Connector,
        }
    }

    /// The name as written, or an alias of it.
    pub fn answers_to(&self, written: &str) -> bool {
        self.type_name == written || self.aliases.iter().any(|a| a.name == written)
    }
}

const ALL: &[Signal] = &Signal::ALL;

pub const REGISTRY: &[Row] = &[
    Row {
        type_name: "otlp",
        aliases: &[],
        description: "OTLP over gRPC (4317) and HTTP (4318): protobuf or JSON, gzip or zstd",
        signals: ALL,
        connects: &[],
        compile: Compile::Receiver(receivers::otlp::compile),
    },
    Row {
        type_name: "zipkin",
        aliases: &[],
        description: "Zipkin v2 spans (JSON or protobuf) on POST /api/v2/spans (9411), converted to OTLP as the Collector does",
        signals: &[Signal::Traces],
        connects: &[],
        compile: Compile::Receiver(receivers::zipkin::compile),
    },
    Row {
        type_name: "kafka",
        aliases: &[],
        description: "OTLP (protobuf or JSON) from Kafka topics as a consumer group member; offsets committed once the data is in every exporter queue",
        signals: ALL,
        connects: &[],
        compile: Compile::Receiver(receivers::kafka::compile),
    },
    Row {
        type_name: "hostmetrics",
        aliases: &[Alias {
            name: "host_metrics",
            deprecated: None,
        }],
        description: "CPU, load, memory, disk, filesystem, network, connections, processes, cgroups, uptime",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::hostmetrics::compile),
    },
    Row {
        type_name: "internal",
        aliases: &[],
        description: "sidewatch's own telemetry (receivers, exporters, queues, process) as metrics",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(compiled::receiver::<receivers::internal::InternalConfig>),
    },
    Row {
        type_name: "prometheus",
        aliases: &[],
        description: "scrapes Prometheus and OpenMetrics endpoints (scrape_configs with static targets and relabelling)",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::prometheus::compile),
    },
    Row {
        type_name: "exec",
        aliases: &[],
        description: "runs a command on an interval; its output (Prometheus text, Influx line protocol or JSON) as metrics",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::exec::compile),
    },
    Row {
        type_name: "filelog",
        aliases: &[],
        description: "tails files by glob: rotation, checkpoints, multiline, regex/json/time/severity parsers",
        signals: &[Signal::Logs],
        connects: &[],
        compile: Compile::Receiver(receivers::filelog::compile),
    },
    Row {
        type_name: "httpcheck",
        aliases: &[Alias {
            name: "http_check",
            deprecated: None,
        }],
        description: "HTTP(S) endpoint checks: status, expected codes, body regex or JSON pointer, per-phase timings, redirects, client certificates",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::checks::compile_http),
    },
    Row {
        type_name: "tcpcheck",
        aliases: &[Alias {
            name: "tcp_check",
            deprecated: None,
        }],
        description: "TCP connect checks (and UDP with protocol: udp), optional send/expect",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::checks::compile_tcp),
    },
    Row {
        type_name: "tlscheck",
        aliases: &[Alias {
            name: "tls_check",
            deprecated: None,
        }],
        description: "TLS certificate checks: time left until expiry, issuer, subject and SANs, trust",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::checks::compile_tls),
    },
    Row {
        type_name: "dnscheck",
        aliases: &[Alias {
            name: "dns_check",
            deprecated: None,
        }],
        description: "DNS checks of a record type against an expected answer and response code, at a chosen server",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::checks::compile_dns),
    },
    Row {
        type_name: "icmpcheck",
        aliases: &[],
        description: "ping: packet loss and round-trip times (ICMP datagram or raw sockets)",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::checks::compile_icmp),
    },
    Row {
        type_name: "postgresql",
        aliases: &[],
        description: "PostgreSQL statistics views: backends, commits, sizes, cache hit ratio, long-running and slow queries, replication lag, up",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::databases::postgresql::compile),
    },
    Row {
        type_name: "mysql",
        aliases: &[],
        description: "MySQL and MariaDB global status: threads, connections, buffer pool and its hit ratio, queries, slow queries, replica lag, up",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::databases::mysql::compile),
    },
    Row {
        type_name: "redis",
        aliases: &[],
        description: "Redis INFO: clients, memory against maxmemory, keyspace hits and misses, commands, replication, up",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Receiver(receivers::databases::redis::compile),
    },
    Row {
        type_name: "batch",
        aliases: &[],
        description: "groups items into batches by size or after a timeout; flushes on shutdown",
        signals: ALL,
        connects: &[],
        compile: Compile::Processor(processors::batch::compile),
    },
    Row {
        type_name: "filter",
        aliases: &[],
        description: "drops spans, span events, metrics, data points or log records matching OTTL conditions",
        signals: ALL,
        connects: &[],
        compile: Compile::Processor(processors::filter::compile),
    },
    Row {
        type_name: "transform",
        aliases: &[],
        description: "edits telemetry with OTTL statements (the Collector's transform processor config)",
        signals: ALL,
        connects: &[],
        compile: Compile::Processor(processors::transform::compile),
    },
    Row {
        type_name: "memory_limiter",
        aliases: &[Alias {
            name: "memorylimiter",
            deprecated: None,
        }],
        description: "the Collector's memory_limiter, compiled onto service.memory_limiter (one limit for the process, enforced at the receivers)",
        signals: ALL,
        connects: &[],
        compile: Compile::Processor(processors::memory_limiter::compile),
    },
    Row {
        type_name: "attributes",
        aliases: &[],
        description: "the Collector's attribute actions (insert, update, upsert, delete, hash, extract, convert) on spans, log records and data points, with include/exclude",
        signals: ALL,
        connects: &[],
        compile: Compile::Processor(processors::attributes::compile),
    },
    Row {
        type_name: "resource",
        aliases: &[],
        description: "the Collector's attribute actions on resource attributes",
        signals: ALL,
        connects: &[],
        compile: Compile::Processor(processors::attributes::resource::compile),
    },
    Row {
        type_name: "resourcedetection",
        aliases: &[Alias {
            name: "resource_detection",
            deprecated: None,
        }],
        description: "sets resource attributes from OTEL_RESOURCE_ATTRIBUTES (env) and this host (system: host.name, host.id, os.type, host.arch)",
        signals: ALL,
        connects: &[],
        compile: Compile::Processor(processors::resourcedetection::compile),
    },
    Row {
        type_name: "probabilistic_sampler",
        aliases: &[],
        description: "keeps a percentage of traces (by trace id) and log records: the Collector's hash_seed decision bit for bit, or consistent sampling with the W3C `th` tracestate",
        signals: &[Signal::Traces, Signal::Logs],
        connects: &[],
        compile: Compile::Processor(processors::probabilistic_sampler::compile),
    },
    Row {
        type_name: "tail_sampling",
        aliases: &[],
        description: "keeps or drops whole traces after decision_wait by policies (always_sample, latency, status_code, probabilistic, string/numeric attributes, rate_limiting, span_count, and, composite), at most num_traces held",
        signals: &[Signal::Traces],
        connects: &[],
        compile: Compile::Processor(processors::tail_sampling::compile),
    },
    Row {
        type_name: "percentiles",
        aliases: &[],
        description: "windowed percentiles (p50..p99, max) of histogram, gauge and sum metrics",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Processor(processors::percentiles::compile),
    },
    Row {
        type_name: "otlp",
        aliases: &[Alias {
            name: "otlp_grpc",
            deprecated: None,
        }],
        description: "OTLP over gRPC to a backend, with queue, retry and backoff",
        signals: ALL,
        connects: &[],
        compile: Compile::Exporter(exporters::otlp::compile),
    },
    Row {
        type_name: "otlphttp",
        aliases: &[Alias {
            name: "otlp_http",
            deprecated: None,
        }],
        description: "OTLP over HTTP (protobuf or JSON; gzip, zstd or none), with queue, retry and backoff",
        signals: ALL,
        connects: &[],
        compile: Compile::Exporter(exporters::otlphttp::compile),
    },
    Row {
        type_name: "kafka",
        aliases: &[],
        description: "OTLP (protobuf or JSON) to a Kafka topic per signal, keyed by trace id, resource, series or attributes; acknowledged once the broker acknowledged",
        signals: ALL,
        connects: &[],
        compile: Compile::Exporter(exporters::kafka::compile),
    },
    Row {
        type_name: "loadbalancing",
        aliases: &[Alias {
            name: "load_balancing",
            deprecated: None,
        }],
        description: "OTLP/gRPC to a tier of backends (static list or DNS name), each trace, service, resource, metric, stream or attribute set to one of them by a consistent-hash ring; a dead backend's data goes to the next live one",
        signals: ALL,
        connects: &[],
        compile: Compile::Exporter(exporters::loadbalancing::compile),
    },
    Row {
        type_name: "debug",
        aliases: &[Alias {
            name: "logging",
            deprecated: Some(
                "`logging` is the old name of the `debug` exporter (removed from the Collector in v0.111): rename it to `debug`",
            ),
        }],
        description: "logs a summary (basic) or every item (detailed) of what arrives",
        signals: ALL,
        connects: &[],
        compile: Compile::Exporter(exporters::debug::compile),
    },
    Row {
        type_name: "file",
        aliases: &[],
        description: "writes OTLP JSON lines to a file, rotating by size",
        signals: ALL,
        connects: &[],
        compile: Compile::Exporter(exporters::file::compile),
    },
    Row {
        type_name: "prometheus",
        aliases: &[],
        description: "a scrape endpoint (9464) in Prometheus text or OpenMetrics format",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Exporter(exporters::prometheus::compile),
    },
    Row {
        type_name: "prometheusremotewrite",
        aliases: &[Alias {
            name: "prometheus_remote_write",
            deprecated: None,
        }],
        description: "Prometheus remote write 1.0 (protobuf + snappy) to Prometheus, Mimir, Cortex, Thanos, with queue, retry and backoff",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Exporter(exporters::prometheusremotewrite::compile),
    },
    Row {
        type_name: "influxdb",
        aliases: &[],
        description: "InfluxDB line protocol over the v2 /api/v2/write or v1 /write API, in the telegraf-prometheus-v1 or -v2 schema, with queue, retry and backoff",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Exporter(exporters::influxdb::compile),
    },
    Row {
        type_name: "store",
        aliases: &[],
        description: "keeps metrics on this host: retention tiers with rollups, series and disk caps; queried with PromQL on the telemetry endpoint",
        signals: &[Signal::Metrics],
        connects: &[],
        compile: Compile::Exporter(exporters::store::compile),
    },
    Row {
        type_name: "alertmanager",
        aliases: &[],
        description: "sends alert events to Alertmanager's API, re-sending while they fire",
        signals: &[Signal::Logs],
        connects: &[],
        compile: Compile::Exporter(exporters::alertmanager::compile),
    },
    Row {
        type_name: "webhook",
        aliases: &[],
        description: "posts alert events as Alertmanager-style webhook JSON, or as a Slack message",
        signals: &[Signal::Logs],
        connects: &[],
        compile: Compile::Exporter(exporters::webhook::compile),
    },
    Row {
        type_name: "email",
        aliases: &[],
        description: "mails alert notifications over SMTP (STARTTLS or TLS, optional auth)",
        signals: &[Signal::Logs],
        connects: &[],
        compile: Compile::Exporter(exporters::email::compile),
    },
    Row {
        type_name: "alert",
        aliases: &[],
        description: "threshold, absence and forecast rules over metrics; emits alert events as logs",
        signals: &[],
        connects: &[(Signal::Metrics, Signal::Logs)],
        compile: Compile::Connector(connectors::alert::compile),
    },
    Row {
        type_name: "anomaly",
        aliases: &[],
        description: "z-score anomaly detection per series: scores to metrics pipelines, incidents to logs pipelines",
        signals: &[],
        connects: &[
            (Signal::Metrics, Signal::Metrics),
            (Signal::Metrics, Signal::Logs),
        ],
        compile: Compile::Connector(connectors::anomaly::compile),
    },
    Row {
        type_name: "red",
        aliases: &[],
        description: "spans to RED metrics: request and error rates, windowed duration percentiles with exemplars",
        signals: &[],
        connects: &[(Signal::Traces, Signal::Metrics)],
        compile: Compile::Connector(connectors::red::compile),
    },
    Row {
        type_name: "spanmetrics",
        aliases: &[Alias {
            name: "span_metrics",
            deprecated: None,
        }],
        description: "the Collector's span metrics: traces.span.metrics.calls and .duration (explicit or exponential histogram, exemplars) per service, span name, kind, status and dimensions",
        signals: &[],
        connects: &[(Signal::Traces, Signal::Metrics)],
        compile: Compile::Connector(connectors::spanmetrics::compile),
    },
    Row {
        type_name: "logpatterns",
        aliases: &[],
        description: "mines log templates online: per-pattern counts to metrics, records stamped with their pattern and new-pattern events to logs",
        signals: &[],
        connects: &[
            (Signal::Logs, Signal::Logs),
            (Signal::Logs, Signal::Metrics),
        ],
        compile: Compile::Connector(connectors::logpatterns::compile),
    },
    Row {
        type_name: "count",
        aliases: &[],
        description: "counts spans, span events, metrics, data points and log records matching OTTL conditions, by attributes, as delta sums",
        signals: &[],
        connects: &[
            (Signal::Traces, Signal::Metrics),
            (Signal::Metrics, Signal::Metrics),
            (Signal::Logs, Signal::Metrics),
        ],
        compile: Compile::Connector(connectors::count::compile),
    },
    Row {
        type_name: "forward",
        aliases: &[],
        description: "passes data from one pipeline to another of the same signal",
        signals: &[],
        connects: &[
            (Signal::Traces, Signal::Traces),
            (Signal::Metrics, Signal::Metrics),
            (Signal::Logs, Signal::Logs),
        ],
        compile: Compile::Connector(compiled::connector::<connectors::forward::ForwardConfig>),
    },
];

/// The row a section of `kind` means by `written` (a name or an alias).
pub fn lookup(kind: Kind, written: &str) -> Option<&'static Row> {
    REGISTRY
        .iter()
        .find(|r| r.kind() == kind && r.answers_to(written))
}

/// The alias `written` is, if it is one.
pub fn alias(kind: Kind, written: &str) -> Option<&'static Alias> {
    lookup(kind, written)?
        .aliases
        .iter()
        .find(|a| a.name == written)
}

/// The type names of `kind`, as an error lists them (aliases left out).
pub fn type_names(kind: Kind) -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|r| r.kind() == kind)
        .map(|r| r.type_name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_type_decodes_with_defaults() {
        let mut decoder = crate::config::test_decoder();
        for info in REGISTRY {
            let path = YamlPath::root().key(info.type_name);
            let value = match (info.kind(), info.type_name) {
                (Kind::Exporter, "prometheusremotewrite") => {
                    yaml_serde::from_str("endpoint: http://127.0.0.1:9090/api/v1/write").unwrap()
                }
                (Kind::Exporter, "influxdb") => {
                    yaml_serde::from_str("{ endpoint: http://127.0.0.1:8086, bucket: b }").unwrap()
                }
                (Kind::Exporter, "loadbalancing") => yaml_serde::from_str(
                    "{ protocol: { otlp: {} }, resolver: { static: { hostnames: [127.0.0.1:1] } } }",
                )
                .unwrap(),
                (Kind::Exporter, "store") => yaml_serde::from_str("path: /tmp/store").unwrap(),
                (Kind::Receiver, "postgresql") => yaml_serde::from_str("username: u").unwrap(),
                (Kind::Exporter, "otlp" | "otlphttp") => {
                    yaml_serde::from_str("endpoint: http://127.0.0.1:1").unwrap()
                }
                (Kind::Exporter, "file") => yaml_serde::from_str("path: /tmp/x.jsonl").unwrap(),
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
                (Kind::Receiver, "exec") => yaml_serde::from_str("command: [\"true\"]").unwrap(),
                (Kind::Receiver, "prometheus") => yaml_serde::from_str(
                    "config: { scrape_configs: [ { job_name: j, static_configs: [ { targets: ['127.0.0.1:9090'] } ] } ] }",
                )
                .unwrap(),
                (Kind::Connector, "anomaly") => yaml_serde::from_str("metrics: [m]").unwrap(),
                _ => Value::Null,
            };
            let ok = match info.compile {
                Compile::Receiver(compile) => compile(&value, &path, &mut decoder).is_some(),
                Compile::Processor(compile) => compile(&value, &path, &mut decoder).is_some(),
                Compile::Exporter(compile) => compile(&value, &path, &mut decoder).is_some(),
                Compile::Connector(compile) => compile(&value, &path, &mut decoder).is_some(),
            };
            assert!(
                ok,
                "{} {} did not decode",
                info.kind().as_str(),
                info.type_name
            );
        }
    }
}
