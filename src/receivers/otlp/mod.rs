//! `otlp` receiver: OTLP over gRPC (`grpc`) and HTTP (`http`).
//!
//! Both transports share one answer to backpressure: when a queue the data
//! would reach is full, the request is refused with a retryable code
//! (gRPC RESOURCE_EXHAUSTED with RetryInfo, HTTP 503 with Retry-After) and
//! nothing of it is delivered.

pub mod auth;
pub mod decode;
mod grpc;
mod http;
mod serve_http;

use serde::{Deserialize, Deserializer};

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
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub grpc: Option<GrpcConfig>,
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub http: Option<HttpConfig>,
}

impl Protocols {
    fn both() -> Self {
        Protocols {
            grpc: Some(GrpcConfig::default()),
            http: Some(HttpConfig::default()),
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
    /// Connections open at once; further ones are closed on arrival.
    pub max_connections: usize,
    /// Serve TLS (and with `client_ca_file`, require client certificates).
    pub tls: Option<crate::tls::server::ServerTlsConfig>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: ListenAddress::loopback(4317),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: 100,
            max_connections: 1000,
            tls: None,
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
    /// Connections open at once; further ones are closed on arrival.
    pub max_connections: usize,
    /// An HTTP/1 client must send a request's headers within this.
    #[serde(with = "crate::config::duration")]
    pub header_read_timeout: std::time::Duration,
    /// Serve TLS (and with `client_ca_file`, require client certificates).
    pub tls: Option<crate::tls::server::ServerTlsConfig>,
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
            header_read_timeout: std::time::Duration::from_secs(10),
            tls: None,
        }
    }
}

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
