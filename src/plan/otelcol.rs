//! The Collector components sidewatch does not have, each with the
//! nearest sidewatch equivalent: so a pasted Collector file either
//! compiles or names plainly, entry by entry, what stands in its way. (The
//! Collector's other spellings of types sidewatch has are aliases in their
//! registry rows, src/components/registry.rs.)

use crate::components::Kind;

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
        (Kind::Connector, "servicegraph" | "service_graph") => {
            "use the `red` connector for per-service request metrics"
        }
        (Kind::Connector, "routing" | "sum") => {
            "use `filter` in separate pipelines fed by the `forward` connector"
        }
        (Kind::Exporter, "jaeger" | "zipkin") => {
            "use `otlp` or `otlphttp`: Jaeger and Zipkin backends accept OTLP"
        }
        (Kind::Exporter, "loki") => "use `otlphttp` to Loki's OTLP endpoint (/otlp)",
        (
            Kind::Exporter,
            "elasticsearch" | "clickhouse" | "splunk_hec" | "datadog" | "awsxray" | "awsemf"
            | "googlecloud" | "azuremonitor",
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
    use crate::components::registry::{REGISTRY, lookup};

    #[test]
    fn aliases_map_onto_registered_types() {
        for (kind, written, canonical) in [
            (Kind::Exporter, "otlp_grpc", "otlp"),
            (Kind::Exporter, "otlp_http", "otlphttp"),
            (Kind::Exporter, "logging", "debug"),
            (Kind::Receiver, "host_metrics", "hostmetrics"),
            (
                Kind::Exporter,
                "prometheus_remote_write",
                "prometheusremotewrite",
            ),
            (Kind::Connector, "span_metrics", "spanmetrics"),
        ] {
            assert_eq!(
                lookup(kind, written).map(|r| r.type_name),
                Some(canonical),
                "{written}"
            );
        }
        assert_eq!(
            lookup(Kind::Receiver, "otlp").map(|r| r.type_name),
            Some("otlp")
        );
    }

    #[test]
    fn no_refused_type_is_registered() {
        for row in REGISTRY {
            for name in std::iter::once(row.type_name).chain(row.aliases.iter().map(|a| a.name)) {
                assert!(
                    unsupported(row.kind(), name).is_none(),
                    "{name} is registered and refused"
                );
            }
        }
    }
}
