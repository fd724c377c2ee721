//! The `loadbalancing` exporter's YAML, in the Collector's shape:
//! `protocol.otlp` (the `otlp` exporter's settings without `endpoint`),
//! `routing_key` (+ `routing_attributes`), and one `resolver`.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{Decoder, YamlPath};
use crate::exporters::otlp::{Compression, OtlpExporterConfig};
use crate::exporters::settings::{ExporterSettings, QueueSettings, RetrySettings};
use crate::signal::Signal;

/// The port the Collector assumes for a hostname written without one.
pub const DEFAULT_PORT: u16 = 4317;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancingConfig {
    pub protocol: Protocol,
    /// Absent: the Collector's default per signal (traceID for traces,
    /// service for metrics and logs).
    #[serde(default)]
    pub routing_key: Option<RoutingKey>,
    /// For `routing_key: attributes`: looked up on the item, then on its
    /// resource.
    #[serde(default)]
    pub routing_attributes: Vec<String>,
    pub resolver: Resolver,
    /// The Collector's newer spelling puts the queue and retry at the top
    /// level; either place is read, not both.
    #[serde(default, with = "crate::config::duration::option")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub sending_queue: Option<QueueSettings>,
    #[serde(default)]
    pub retry_on_failure: Option<RetrySettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub otlp: OtlpProtocol,
}

/// The `otlp` exporter's settings; the endpoint comes from the resolver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpProtocol {
    /// Refused: read only to say so plainly.
    #[serde(default)]
    pub endpoint: Option<yaml_serde::Value>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub headers: crate::config::headers::Headers,
    #[serde(default, with = "crate::config::duration::option")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub sending_queue: Option<QueueSettings>,
    #[serde(default)]
    pub retry_on_failure: Option<RetrySettings>,
    #[serde(default)]
    pub tls: Option<crate::tls::client::ClientTlsConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RoutingKey {
    #[serde(rename = "traceID")]
    TraceId,
    #[serde(rename = "service")]
    Service,
    #[serde(rename = "resource")]
    Resource,
    #[serde(rename = "metric")]
    Metric,
    #[serde(rename = "streamID")]
    StreamId,
    #[serde(rename = "attributes")]
    Attributes,
}

impl RoutingKey {
    pub fn name(self) -> &'static str {
        match self {
            RoutingKey::TraceId => "traceID",
            RoutingKey::Service => "service",
            RoutingKey::Resource => "resource",
            RoutingKey::Metric => "metric",
            RoutingKey::StreamId => "streamID",
            RoutingKey::Attributes => "attributes",
        }
    }

    /// The signals the Collector routes with this key.
    pub fn signals(self) -> &'static [Signal] {
        match self {
            RoutingKey::TraceId => &[Signal::Traces, Signal::Logs],
            RoutingKey::Service | RoutingKey::Attributes => {
                &[Signal::Traces, Signal::Metrics, Signal::Logs]
            }
            RoutingKey::Resource => &[Signal::Metrics, Signal::Logs],
            RoutingKey::Metric | RoutingKey::StreamId => &[Signal::Metrics],
        }
    }

    pub fn default_for(signal: Signal) -> RoutingKey {
        match signal {
            Signal::Traces => RoutingKey::TraceId,
            Signal::Metrics | Signal::Logs => RoutingKey::Service,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolver {
    #[serde(default, rename = "static")]
    pub static_: Option<StaticResolver>,
    #[serde(default)]
    pub dns: Option<DnsResolver>,
    /// Refused: read only to say so plainly.
    #[serde(default)]
    pub k8s: Option<yaml_serde::Value>,
    #[serde(default)]
    pub aws_cloud_map: Option<yaml_serde::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResolver {
    /// `host` or `host:port` (4317 when absent).
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsResolver {
    pub hostname: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub interval: Duration,
    #[serde(default = "default_dns_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    /// sidewatch's own: the DNS server (`ip` or `ip:port`) to ask instead
    /// of the system's resolver.
    #[serde(default)]
    pub server: Option<String>,
}

fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_dns_timeout() -> Duration {
    Duration::from_secs(1)
}

/// Where the endpoints come from, checked.
#[derive(Debug, Clone)]
pub enum Source {
    /// `host:port` each.
    Static(Vec<String>),
    Dns(DnsResolver),
}

impl LoadBalancingConfig {
    pub fn settings(&self) -> ExporterSettings {
        let otlp = &self.protocol.otlp;
        let defaults = ExporterSettings::default();
        ExporterSettings {
            timeout: self.timeout.or(otlp.timeout).unwrap_or(defaults.timeout),
            sending_queue: self
                .sending_queue
                .clone()
                .or_else(|| otlp.sending_queue.clone())
                .unwrap_or_default(),
            retry_on_failure: self
                .retry_on_failure
                .clone()
                .or_else(|| otlp.retry_on_failure.clone())
                .unwrap_or_default(),
        }
    }

    /// The `otlp` exporter's config for one backend.
    pub fn otlp_for(&self, host_port: &str) -> Result<OtlpExporterConfig, String> {
        let otlp = &self.protocol.otlp;
        let secure = otlp.tls.as_ref().is_some_and(|t| !t.insecure);
        let scheme = if secure { "https" } else { "http" };
        let settings = self.settings();
        Ok(OtlpExporterConfig {
            endpoint: crate::config::endpoint::EndpointUrl::parse(&format!(
                "{scheme}://{host_port}"
            ))?,
            compression: otlp.compression,
            headers: otlp.headers.clone(),
            timeout: settings.timeout,
            sending_queue: settings.sending_queue,
            retry_on_failure: settings.retry_on_failure,
            tls: otlp.tls.clone(),
        })
    }

    /// Every check that needs no I/O, reported at its path; the source of
    /// endpoints when all passed.
    pub fn check(&self, path: &YamlPath, decoder: &mut Decoder) -> Option<Source> {
        let mut ok = true;
        let otlp_path = path.key("protocol").key("otlp");
        let otlp = &self.protocol.otlp;
        if otlp.endpoint.is_some() {
            decoder.error(
                otlp_path.key("endpoint"),
                "the resolver gives the endpoints: remove `endpoint` here and list the backends under `resolver.static.hostnames` or name them with `resolver.dns`",
            );
            ok = false;
        }
        for (field, top, nested) in [
            ("timeout", self.timeout.is_some(), otlp.timeout.is_some()),
            (
                "sending_queue",
                self.sending_queue.is_some(),
                otlp.sending_queue.is_some(),
            ),
            (
                "retry_on_failure",
                self.retry_on_failure.is_some(),
                otlp.retry_on_failure.is_some(),
            ),
        ] {
            if top && nested {
                decoder.error(
                    path.key(field),
                    format!("`{field}` is set both here and under protocol.otlp: keep one"),
                );
                ok = false;
            }
        }
        let routing_path = path.key("routing_key");
        match (self.routing_key, self.routing_attributes.is_empty()) {
            (Some(RoutingKey::Attributes), true) => {
                decoder.error(
                    routing_path,
                    "routing_key: attributes needs `routing_attributes`: a list of attribute names such as [service.name, http.route]",
                );
                ok = false;
            }
            (key, false) if key != Some(RoutingKey::Attributes) => {
                decoder.error(
                    path.key("routing_attributes"),
                    "routing_attributes are read only with routing_key: attributes",
                );
                ok = false;
            }
            _ => {}
        }
        let source = self.source(&path.key("resolver"), decoder);
        // Every backend's client must be buildable; one stands for all.
        if let Some(Source::Static(hostnames)) = &source {
            for (i, host_port) in hostnames.iter().enumerate() {
                if let Err(message) = self
                    .otlp_for(host_port)
                    .and_then(|c| c.prepare().map(|_| ()))
                {
                    decoder.error(
                        path.key("resolver").key("static").key("hostnames").index(i),
                        message,
                    );
                    ok = false;
                }
            }
        }
        if let Some(Source::Dns(dns)) = &source
            && let Err(message) = self
                .otlp_for(&format!("{}:{}", dns.hostname, dns.port))
                .and_then(|c| c.prepare().map(|_| ()))
        {
            decoder.error(path.key("resolver").key("dns").key("hostname"), message);
            ok = false;
        }
        if ok { source } else { None }
    }

    fn source(&self, path: &YamlPath, decoder: &mut Decoder) -> Option<Source> {
        let resolver = &self.resolver;
        if resolver.k8s.is_some() {
            decoder.error(
                path.key("k8s"),
                "the k8s resolver is not built in: sidewatch does not watch the Kubernetes API; use `dns` with the headless service's name, or `static`",
            );
            return None;
        }
        if resolver.aws_cloud_map.is_some() {
            decoder.error(
                path.key("aws_cloud_map"),
                "the aws_cloud_map resolver is not built in: use `dns` or `static`",
            );
            return None;
        }
        match (&resolver.static_, &resolver.dns) {
            (Some(_), Some(_)) => {
                decoder.error(
                    path.clone(),
                    "one resolver only: `static` or `dns`, not both",
                );
                None
            }
            (None, None) => {
                decoder.error(
                    path.clone(),
                    "no resolver: expected `static: { hostnames: [...] }` or `dns: { hostname: ... }`",
                );
                None
            }
            (Some(s), None) => {
                let hostnames_path = path.key("static").key("hostnames");
                if s.hostnames.is_empty() {
                    decoder.error(
                        hostnames_path,
                        "no hostnames: expected at least one backend, such as sidewatch-1:4317",
                    );
                    return None;
                }
                let mut out = Vec::new();
                for (i, written) in s.hostnames.iter().enumerate() {
                    match host_port(written) {
                        Ok(hp) => out.push(hp),
                        Err(message) => decoder.error(hostnames_path.index(i), message),
                    }
                }
                (out.len() == s.hostnames.len()).then_some(Source::Static(out))
            }
            (None, Some(dns)) => {
                let dns_path = path.key("dns");
                let mut ok = true;
                if dns.hostname.trim().is_empty() {
                    decoder.error(dns_path.key("hostname"), "empty: expected a name to resolve, such as sidewatch-headless.observability.svc.cluster.local");
                    ok = false;
                }
                if dns.port == 0 {
                    decoder.error(dns_path.key("port"), "0 is not a port: expected 1 to 65535");
                    ok = false;
                }
                if dns.interval.is_zero() {
                    decoder.error(
                        dns_path.key("interval"),
                        "must be more than 0: expected a duration such as 5s",
                    );
                    ok = false;
                }
                if dns.timeout.is_zero() {
                    decoder.error(
                        dns_path.key("timeout"),
                        "must be more than 0: expected a duration such as 1s",
                    );
                    ok = false;
                }
                if let Some(server) = &dns.server
                    && let Err(message) = super::resolver::parse_server(server)
                {
                    decoder.error(dns_path.key("server"), message);
                    ok = false;
                }
                ok.then(|| Source::Dns(dns.clone()))
            }
        }
    }

    /// The key for `signal`, or why this signal cannot be routed by it.
    pub fn routing_for(&self, signal: Signal) -> Result<RoutingKey, String> {
        let key = self
            .routing_key
            .unwrap_or_else(|| RoutingKey::default_for(signal));
        if key.signals().contains(&signal) {
            return Ok(key);
        }
        let fits: Vec<&str> = [
            RoutingKey::TraceId,
            RoutingKey::Service,
            RoutingKey::Resource,
            RoutingKey::Metric,
            RoutingKey::StreamId,
            RoutingKey::Attributes,
        ]
        .into_iter()
        .filter(|k| k.signals().contains(&signal))
        .map(RoutingKey::name)
        .collect();
        Err(format!(
            "routing_key {} does not route {signal}: expected one of {}",
            key.name(),
            fits.join(", ")
        ))
    }
}

/// `host:port` from a written hostname, the Collector's default port added
/// when none is written.
fn host_port(written: &str) -> Result<String, String> {
    let expected = "expected host or host:port, such as sidewatch-1:4317";
    let text = written.trim();
    if text.is_empty() || text.contains("://") || text.contains('/') {
        return Err(format!("{written:?} is not a hostname: {expected}"));
    }
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_string());
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, DEFAULT_PORT).to_string());
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse::<u16>() {
            Ok(p) if p != 0 && !host.is_empty() => Ok(text.to_string()),
            _ => Err(format!("invalid port {port:?} in {written:?}: {expected}")),
        },
        Some(_) => Err(format!(
            "{written:?}: write an IPv6 address in brackets, such as [::1]:4317"
        )),
        None => Ok(format!("{text}:{DEFAULT_PORT}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_get_the_default_port_and_bad_ones_are_named() {
        assert_eq!(host_port("backend-1").unwrap(), "backend-1:4317");
        assert_eq!(host_port("backend-1:55690").unwrap(), "backend-1:55690");
        assert_eq!(host_port("127.0.0.2").unwrap(), "127.0.0.2:4317");
        assert_eq!(host_port("[::1]:4317").unwrap(), "[::1]:4317");
        assert!(
            host_port("http://a:1")
                .unwrap_err()
                .contains("not a hostname")
        );
        assert!(host_port("a:99999").unwrap_err().contains("invalid port"));
        assert!(host_port("a:0").unwrap_err().contains("invalid port"));
    }
}
