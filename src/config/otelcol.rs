//! The OpenTelemetry Collector's spellings of component types, and the
//! Collector components sidewatch does not have, each with the nearest
//! sidewatch equivalent: so a pasted Collector file either compiles or
//! names plainly, entry by entry, what stands in its way.
//!
//! Aliases map a type as written to the type sidewatch registers; the id
//! keeps the written spelling (pipelines refer to it, errors quote it).

use crate::components::Kind;

/// How a Collector type name maps onto a registered one.
pub struct Alias {
    pub canonical: &'static str,
    /// `Some` when the Collector itself deprecates the written name: the
    /// warning's text.
    pub deprecated: Option<&'static str>,
}

/// The registered type for a type written as `written` in a section of
/// `kind`, when it is another spelling of one.
pub fn alias(kind: Kind, written: &str) -> Option<Alias> {
    let plain = |canonical| {
        Some(Alias {
            canonical,
            deprecated: None,
        })
    };
    match (kind, written) {
        // The Collector's new names since v0.144 (January 2026).
        (Kind::Exporter, "otlp_grpc") => plain("otlp"),
        (Kind::Exporter, "otlp_http") => plain("otlphttp"),
        (Kind::Exporter, "logging") => Some(Alias {
            canonical: "debug",
            deprecated: Some(
                "`logging` is the old name of the `debug` exporter (removed from the Collector in v0.111): rename it to `debug`",
            ),
        }),
        (Kind::Receiver, "host_metrics") => plain("hostmetrics"),
        (Kind::Processor, "resource_detection") => plain("resourcedetection"),
        (Kind::Processor, "memorylimiter") => plain("memory_limiter"),
        _ => None,
    }
}

/// The type sidewatch registers for `written` (itself when no alias).
pub fn canonical(kind: Kind, written: &str) -> &str {
    match alias(kind, written) {
        Some(alias) => alias.canonical,
        None => written,
    }
}

/// Why a Collector component is refused, and what to use instead: `None`
/// when `type_name` is no Collector component sidewatch knows of.
pub fn unsupported(kind: Kind, type_name: &str) -> Option<&'static str> {
    let instead = match (kind, type_name) {
        (Kind::Receiver, "jaeger") => {
            "send OTLP to the `otlp` receiver (the Jaeger clients are retired; OpenTelemetry SDKs speak OTLP)"
        }
        (Kind::Receiver, "opencensus") => "send OTLP to the `otlp` receiver",
        (Kind::Receiver, "statsd" | "carbon" | "collectd" | "influxdb") => {
            "run the client's metrics through `exec` or scrape them with `prometheus`"
        }
        (Kind::Receiver, "docker_stats" | "dockerstats") => {
            "`hostmetrics` has a `cgroups` scraper for containers on this host"
        }
        (
            Kind::Receiver,
            "kubeletstats" | "k8s_cluster" | "k8scluster" | "k8s_events" | "k8sevents"
            | "k8sobjects" | "k8s_objects" | "receiver_creator",
        ) => {
            "Kubernetes-only receivers are out of scope: use `hostmetrics` on the node and `prometheus` to scrape the kubelet"
        }
        (
            Kind::Receiver,
            "awsxray"
            | "awsecscontainermetrics"
            | "awscloudwatch"
            | "awsfirehose"
            | "googlecloudpubsub"
            | "googlecloudspanner"
            | "azureeventhub"
            | "azuremonitor",
        ) => {
            "cloud provider receivers are out of scope: export from the service in OTLP to the `otlp` receiver"
        }
        (Kind::Receiver, "journald") => "read the journal's export files with `filelog`",
        (Kind::Receiver, "syslog" | "tcplog" | "udplog") => {
            "write the logs to a file and tail it with `filelog`"
        }
        (Kind::Processor, "k8sattributes" | "k8s_attributes") => {
            "Kubernetes-only processors are out of scope: set `k8s.*` with `resource` or `OTEL_RESOURCE_ATTRIBUTES` and `resourcedetection` (env)"
        }
        (
            Kind::Processor,
            "groupbytrace" | "groupbyattrs" | "metricstransform" | "cumulativetodelta"
            | "deltatorate" | "span" | "redaction" | "routing",
        ) => "use `transform` (OTTL) or `filter` for what it does here",
        (Kind::Connector, "spanmetrics" | "span_metrics") => {
            "use the `red` connector: request and error rates and duration percentiles per service and route"
        }
        (Kind::Connector, "servicegraph" | "service_graph") => {
            "use the `red` connector for per-service request metrics"
        }
        (Kind::Connector, "routing" | "sum") => {
            "use `filter` in separate pipelines fed by the `forward` connector"
        }
        (Kind::Exporter, "prometheusremotewrite" | "prometheus_remote_write") => {
            "use the `prometheus` exporter and let Prometheus scrape it, or `otlphttp` to Prometheus's OTLP endpoint (/api/v1/otlp)"
        }
        (Kind::Exporter, "jaeger" | "zipkin") => {
            "use `otlp` or `otlphttp`: Jaeger and Zipkin backends accept OTLP"
        }
        (Kind::Exporter, "loki") => "use `otlphttp` to Loki's OTLP endpoint (/otlp)",
        (
            Kind::Exporter,
            "elasticsearch" | "clickhouse" | "influxdb" | "splunk_hec" | "datadog" | "awsxray"
            | "awsemf" | "googlecloud" | "azuremonitor",
        ) => {
            "vendor exporters are out of scope: use `otlp` or `otlphttp` to the vendor's OTLP endpoint"
        }
        _ => return None,
    };
    Some(instead)
}

/// Extensions sidewatch accepts but does not serve, with what is missing.
pub fn extension_without_effect(type_name: &str) -> Option<&'static str> {
    match type_name {
        "zpages" => Some(
            "zpages is accepted but not served: sidewatch has no /debug/tracez or /debug/pipelinez pages; its metrics are on the telemetry endpoint (service.telemetry.metrics)",
        ),
        "pprof" => Some(
            "pprof is accepted but not served: sidewatch has no CPU or heap profile endpoint; profile it with `perf record -p PID`",
        ),
        _ => None,
    }
}

/// Extensions the Collector has that sidewatch refuses.
pub fn unsupported_extension(type_name: &str) -> Option<&'static str> {
    match type_name {
        "basicauth" | "bearertokenauth" | "oauth2client" | "oidc" | "headers_setter" => Some(
            "authentication extensions are not supported: set `auth` on the otlp receiver or `headers` on the exporter",
        ),
        "k8s_observer" | "docker_observer" | "host_observer" => {
            Some("observers are out of scope: list the targets in the receivers")
        }
        "opamp" => Some("OpAMP is not supported: manage the config file directly"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_map_onto_registered_types() {
        for (kind, written) in [
            (Kind::Exporter, "otlp_grpc"),
            (Kind::Exporter, "otlp_http"),
            (Kind::Exporter, "logging"),
            (Kind::Receiver, "host_metrics"),
        ] {
            let canonical = canonical(kind, written);
            assert!(
                crate::components::lookup(kind, canonical).is_some(),
                "{written} -> {canonical}"
            );
        }
        assert_eq!(canonical(Kind::Receiver, "otlp"), "otlp");
    }

    #[test]
    fn no_refused_type_is_registered() {
        for info in crate::components::COMPONENTS {
            assert!(
                unsupported(info.kind, info.type_name).is_none(),
                "{} is registered and refused",
                info.type_name
            );
        }
    }
}
