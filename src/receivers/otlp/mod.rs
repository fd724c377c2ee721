//! `otlp` receiver: OTLP over gRPC (`grpc`) and HTTP (`http`).
//!
//! Both transports share one answer to backpressure: when a queue the data
//! would reach is full, the request is refused with a retryable code
//! (gRPC RESOURCE_EXHAUSTED with RetryInfo, HTTP 503 with Retry-After) and
//! nothing of it is delivered.

pub mod auth;
pub(crate) mod connection_table;
pub mod cors;
pub mod deadlines;
pub mod decode;
mod grpc;
mod http;
mod serve;

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use deadlines::Deadlines;

use super::{Receiver, ReceiverContext, StartedReceiver};
use crate::config::endpoint::ListenAddress;

const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// Absent means both protocols on their default loopback ports.
    #[serde(default = "Protocols::both")]
    pub protocols: Protocols,
    /// Credentials every client must present, on both protocols.
    #[serde(default)]
    pub auth: Option<auth::AuthConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// `grpc:` with nothing under it enables gRPC with its defaults.
    /// Boxed: the configs are large, and the receiver enum holds them.
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub grpc: Option<Box<GrpcConfig>>,
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub http: Option<Box<HttpConfig>>,
}

impl Protocols {
    fn both() -> Self {
        Protocols {
            grpc: Some(Box::default()),
            http: Some(Box::default()),
        }
    }
}

fn present_means_enabled<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    pub endpoint: ListenAddress,
    /// Largest accepted message, compressed or not, in MiB.
    pub max_recv_msg_size_mib: usize,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Connections open at once; when full, the longest-idle one is closed
    /// for a newcomer (refused only when every connection is busy).
    pub max_connections: usize,
    /// From accepting a connection to its first complete request headers
    /// (TLS handshake and HTTP/2 preface included); then it is closed.
    #[serde(with = "crate::config::duration")]
    pub handshake_timeout: Duration,
    /// HTTP/1: a later request must send its headers within this.
    #[serde(with = "crate::config::duration", alias = "header_read_timeout")]
    pub read_header_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    #[serde(with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// A request body that sends no byte for this long is failed.
    #[serde(with = "crate::config::duration")]
    pub read_progress_timeout: Duration,
    /// A request body must be complete this long after its headers.
    #[serde(with = "crate::config::duration")]
    pub read_timeout: Duration,
    /// Serve TLS (and with `client_ca_file`, require client certificates).
    pub tls: Option<crate::tls::server::ServerTlsConfig>,
    /// The Collector's `include_metadata`: accepted, not used.
    pub include_metadata: Option<bool>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: ListenAddress::loopback(4317),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: 100,
            max_connections: 1000,
            handshake_timeout: Deadlines::default().handshake_timeout,
            read_header_timeout: Deadlines::default().read_header_timeout,
            idle_timeout: Deadlines::default().idle_timeout,
            read_progress_timeout: Deadlines::default().read_progress_timeout,
            read_timeout: Deadlines::default().read_timeout,
            tls: None,
            include_metadata: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub endpoint: ListenAddress,
    /// Largest accepted body in bytes, both as sent and once decompressed.
    pub max_request_body_size: usize,
    pub traces_url_path: String,
    pub metrics_url_path: String,
    pub logs_url_path: String,
    /// Connections open at once; when full, the longest-idle one is closed
    /// for a newcomer (refused only when every connection is busy).
    pub max_connections: usize,
    /// From accepting a connection to its first complete request headers
    /// (TLS handshake and HTTP/2 preface included); then it is closed.
    #[serde(with = "crate::config::duration")]
    pub handshake_timeout: Duration,
    /// HTTP/1: a later request must send its headers within this.
    #[serde(with = "crate::config::duration", alias = "header_read_timeout")]
    pub read_header_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    #[serde(with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// A request body that sends no byte for this long is failed.
    #[serde(with = "crate::config::duration")]
    pub read_progress_timeout: Duration,
    /// A request body must be complete this long after its headers.
    #[serde(with = "crate::config::duration")]
    pub read_timeout: Duration,
    /// Serve TLS (and with `client_ca_file`, require client certificates).
    pub tls: Option<crate::tls::server::ServerTlsConfig>,
    /// The Collector's CORS settings: preflights answered, origins
    /// allowed (see cors.rs).
    pub cors: Option<cors::CorsConfig>,
    /// The Collector's `include_metadata`: accepted, not used.
    pub include_metadata: Option<bool>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: ListenAddress::loopback(4318),
            max_request_body_size: 4 * MIB,
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            max_connections: 1000,
            handshake_timeout: Deadlines::default().handshake_timeout,
            read_header_timeout: Deadlines::default().read_header_timeout,
            idle_timeout: Deadlines::default().idle_timeout,
            read_progress_timeout: Deadlines::default().read_progress_timeout,
            read_timeout: Deadlines::default().read_timeout,
            tls: None,
            cors: None,
            include_metadata: None,
        }
    }
}

/// The five deadline fields, the same on both protocols.
macro_rules! deadlines_of {
    ($config:ty) => {
        impl $config {
            pub fn deadlines(&self) -> Deadlines {
                Deadlines {
                    handshake_timeout: self.handshake_timeout,
                    read_header_timeout: self.read_header_timeout,
                    idle_timeout: self.idle_timeout,
                    read_progress_timeout: self.read_progress_timeout,
                    read_timeout: self.read_timeout,
                }
            }
        }
    };
}
deadlines_of!(GrpcConfig);
deadlines_of!(HttpConfig);

pub struct OtlpReceiver {
    config: OtlpReceiverConfig,
}

impl OtlpReceiver {
    pub fn new(config: OtlpReceiverConfig) -> Self {
        OtlpReceiver { config }
    }
}

#[async_trait::async_trait]
impl Receiver for OtlpReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let mut started = StartedReceiver {
            addresses: Vec::new(),
            tasks: Vec::new(),
        };
        let auth = match &self.config.auth {
            Some(config) => Some(std::sync::Arc::new(
                auth::Authenticator::new(config)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            )),
            None => None,
        };
        if let Some(grpc) = &self.config.protocols.grpc {
            let (address, task) = grpc::start(grpc, &context, auth.clone()).await?;
            started
                .addresses
                .push((format!("{}/grpc", context.id), address));
            started.tasks.push(task);
        }
        if let Some(http) = &self.config.protocols.http {
            let (address, task) = http::start(http, &context, auth.clone()).await?;
            started
                .addresses
                .push((format!("{}/http", context.id), address));
            started.tasks.push(task);
        }
        Ok(started)
    }
}

impl crate::components::compiled::CompiledReceiver for OtlpReceiverConfig {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(OtlpReceiver::new(self.clone()))
    }
}

/// The registry's compile step for `otlp`: what the listeners would
/// refuse (auth without TLS, deadlines, certificate files) is refused here.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    let config: OtlpReceiverConfig = decoder.decode(value, path)?;
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
    valid.then(|| {
        std::sync::Arc::new(config)
            as std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>
    })
}
