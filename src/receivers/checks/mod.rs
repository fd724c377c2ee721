//! Synthetic checks: receivers that probe endpoints on a schedule and
//! report the result as metrics, in the Collector's names where it has
//! them (`httpcheck.*`, `tcpcheck.*`, `tlscheck.*`) and the semantic
//! conventions' style where it has none (`dnscheck.*`, `icmpcheck.*`,
//! per-phase timings), plus one kind-neutral pair for alert rules,
//! `sidewatch.check.up` and `sidewatch.check.duration`.
//!
//! - `mod.rs` (here): the config every kind shares (`ChecksConfig`), the
//!   [`Check`] contract a kind implements, and the receiver.
//! - `scheduler.rs`: runs each target on its own schedule with bounded
//!   concurrency, a deadline per attempt, retries and no drift.
//! - `http.rs`, `tcp.rs` (and `udp.rs`), `tls.rs`, `dns.rs`, `icmp.rs`:
//!   one kind each; `certificate.rs`: TLS client settings and X.509
//!   details shared by `http` and `tls`.
//!
//! Config is compiled when it is decoded (regexes, URLs, certificates,
//! resolvers), so `validate` catches what `run` would trip on.

pub mod certificate;
pub mod dns;
pub mod http;
pub mod icmp;
pub mod scheduler;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Deserialize;
use yaml_serde::Value;

use super::hostmetrics::Number;
use super::{Receiver, ReceiverContext, StartedReceiver};
use crate::config::{Decoder, YamlPath};

/// The settings every check kind shares; `targets` is kind-specific.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig<T> {
    /// Time between the starts of two runs of one target.
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub collection_interval: Duration,
    /// Deadline of one attempt.
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    /// Attempts after a failed one before the run counts as failed.
    #[serde(default)]
    pub retries: u32,
    /// Checks of this receiver running at once, at most.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_checks: usize,
    #[serde(default = "Vec::new")]
    pub targets: Vec<T>,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_concurrent() -> usize {
    256
}

/// The schedule part of a compiled receiver.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub collection_interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub max_concurrent_checks: usize,
}

/// A failure: `code` is a stable token (`connection_refused`), `message`
/// the detail a person reads.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckError {
    pub code: &'static str,
    pub message: String,
}

impl CheckError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        CheckError {
            code,
            message: message.into(),
        }
    }
}

/// One metric point an attempt reports.
#[derive(Debug, Clone)]
pub struct Point {
    pub name: &'static str,
    pub unit: &'static str,
    pub description: &'static str,
    pub value: Number,
    pub attributes: Vec<KeyValue>,
    /// A monotonic counter: `value` is the increment, the scheduler keeps
    /// the cumulative total (the Collector's `*.error` sums).
    pub counter: bool,
}

impl Point {
    pub fn gauge(
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        value: Number,
        attributes: Vec<KeyValue>,
    ) -> Self {
        Point {
            name,
            unit,
            description,
            value,
            attributes,
            counter: false,
        }
    }

    pub fn counter(
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        attributes: Vec<KeyValue>,
    ) -> Self {
        Point {
            name,
            unit,
            description,
            value: Number::Int(1),
            attributes,
            counter: true,
        }
    }
}

/// What one attempt found.
#[derive(Debug, Clone)]
pub struct Observation {
    pub duration: Duration,
    pub error: Option<CheckError>,
    pub points: Vec<Point>,
    /// Resource attributes of the points (tlscheck's `tlscheck.target`).
    pub resource: Vec<KeyValue>,
}

/// One target of one kind. `attempt` should respect `timeout` itself where
/// it can; the scheduler also cancels it at the deadline and reports
/// [`Check::timed_out`] instead.
#[async_trait::async_trait]
pub trait Check: Send + Sync + std::fmt::Debug {
    /// The target as the user wrote it, for logs, `/checks` and `check.target`.
    fn target(&self) -> &str;
    async fn attempt(&self, timeout: Duration) -> Observation;
    fn timed_out(&self, timeout: Duration) -> Observation;
}

/// A compiled checks receiver: its kind, schedule and targets.
#[derive(Debug, Clone)]
pub struct ChecksPlan {
    /// `http`, `tcp`, `tls`, `dns` or `icmp`.
    pub kind: &'static str,
    pub schedule: Schedule,
    pub checks: Vec<Arc<dyn Check>>,
}

/// A kind's target config: compiled into a check, or (field, message) errors.
pub trait TargetConfig: serde::de::DeserializeOwned {
    fn compile(&self) -> Result<Arc<dyn Check>, Vec<(&'static str, String)>>;
}

/// Decodes and compiles a checks receiver of `kind`, reporting every
/// problem with its path.
pub fn decode<T: TargetConfig>(
    kind: &'static str,
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<ChecksPlan> {
    let config: ChecksConfig<T> = decoder.decode(value, path)?;
    let mut valid = true;
    if config.targets.is_empty() {
        decoder.error(path.key("targets"), "expected at least one target");
        valid = false;
    }
    if config.timeout.is_zero() {
        decoder.error(path.key("timeout"), "expected a timeout above 0");
        valid = false;
    }
    if config.max_concurrent_checks == 0 {
        decoder.error(
            path.key("max_concurrent_checks"),
            "expected at least 1 check at a time",
        );
        valid = false;
    }
    // A run never outlasts its interval, so runs of one target never
    // overlap and the schedule never slips.
    let run = config
        .timeout
        .saturating_mul(config.retries.saturating_add(1));
    if run > config.collection_interval {
        decoder.error(
            path.key("timeout"),
            format!(
                "timeout × (retries + 1) = {} is longer than collection_interval {}: expected a run to fit in its interval",
                humantime::format_duration(run),
                humantime::format_duration(config.collection_interval)
            ),
        );
        valid = false;
    }
    let mut checks = Vec::new();
    for (i, target) in config.targets.iter().enumerate() {
        match target.compile() {
            Ok(check) => checks.push(check),
            Err(errors) => {
                valid = false;
                for (field, message) in errors {
                    decoder.error(path.key("targets").index(i).key(field), message);
                }
            }
        }
    }
    valid.then_some(ChecksPlan {
        kind,
        schedule: Schedule {
            collection_interval: config.collection_interval,
            timeout: config.timeout,
            retries: config.retries,
            max_concurrent_checks: config.max_concurrent_checks,
        },
        checks,
    })
}

pub struct ChecksReceiver {
    plan: ChecksPlan,
}

impl ChecksReceiver {
    pub fn new(plan: ChecksPlan) -> Self {
        ChecksReceiver { plan }
    }
}

#[async_trait::async_trait]
impl Receiver for ChecksReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let tasks = match context.consumers.metrics.clone() {
            Some(consumer) => scheduler::start(self.plan, &context, consumer),
            None => Vec::new(),
        };
        Ok(StartedReceiver {
            addresses: Vec::new(),
            tasks,
        })
    }
}

/// Milliseconds as the Collector's `*.duration` gauges carry them (int).
pub fn milliseconds(duration: Duration) -> Number {
    Number::Int(duration.as_millis().min(i64::MAX as u128) as i64)
}

/// `host:port` split, for endpoints without a scheme; IPv6 in brackets.
pub fn split_host_port(endpoint: &str) -> Result<(String, u16), String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("{endpoint:?} has no port: expected host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{endpoint:?} has no valid port: expected host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{endpoint:?} has no host: expected host:port"));
    }
    Ok((host.to_string(), port))
}

/// The socket addresses of `host:port`: an IP is used as is, a name is
/// resolved by the system resolver.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, CheckError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, port)]);
    }
    let addresses: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| CheckError::new("dns_error", format!("resolving {host}: {e}")))?
        .collect();
    if addresses.is_empty() {
        return Err(CheckError::new(
            "dns_error",
            format!("resolving {host}: no addresses"),
        ));
    }
    Ok(addresses)
}

/// The error code of a failed connect, in the Collector's tcpcheck terms.
pub fn connect_error(error: &std::io::Error) -> CheckError {
    use std::io::ErrorKind;
    let code = match error.kind() {
        ErrorKind::ConnectionRefused => "connection_refused",
        ErrorKind::TimedOut => "connection_timeout",
        ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => "network_unreachable",
        _ => "unknown_error",
    };
    CheckError::new(code, error.to_string())
}

impl crate::components::compiled::CompiledReceiver for ChecksPlan {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(ChecksReceiver::new(self.clone()))
    }
}

/// The registry's compile step for `httpcheck`.
pub fn compile_http(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    decode::<http::HttpTarget>("http", value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

/// The registry's compile step for `tcpcheck`.
pub fn compile_tcp(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    decode::<tcp::TcpTarget>("tcp", value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

/// The registry's compile step for `tlscheck`.
pub fn compile_tls(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    decode::<tls::TlsTarget>("tls", value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

/// The registry's compile step for `dnscheck`.
pub fn compile_dns(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    decode::<dns::DnsTarget>("dns", value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

/// The registry's compile step for `icmpcheck`.
pub fn compile_icmp(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    decode::<icmp::IcmpTarget>("icmp", value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}
