//! `otlp` exporter: OTLP over gRPC, with the generated tonic clients.
//!
//! Retryable codes follow the OTLP specification: CANCELLED,
//! DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and
//! RESOURCE_EXHAUSTED only when the server sent RetryInfo (whose delay is
//! honoured). A partial success is reported, never retried.
//!
//! With compression on, every batch is sent as protobuf bytes compressed
//! once by [`super::compress`] (large bodies on a blocking thread, so the
//! runtime's workers keep serving receivers meanwhile), and
//! [`PrecompressedChannel`] flags the message compressed; tonic's own
//! compression is not used.

use std::marker::PhantomData;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use serde::Deserialize;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::grpc_precompressed::PrecompressedChannel;
use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::config::endpoint::EndpointUrl;
use crate::signal::{Batch, Signal};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    pub endpoint: EndpointUrl,
    #[serde(default)]
    pub compression: Compression,
    /// Sent as gRPC metadata with every request.
    #[serde(default)]
    pub headers: crate::config::headers::Headers,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: std::time::Duration,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// TLS settings for https:// endpoints (a private CA, a client
    /// certificate).
    #[serde(default)]
    pub tls: Option<crate::tls::client::ClientTlsConfig>,
}

fn default_timeout() -> std::time::Duration {
    ExporterSettings::default().timeout
}

impl OtlpExporterConfig {
    pub fn settings(&self) -> ExporterSettings {
        ExporterSettings {
            timeout: self.timeout,
            sending_queue: self.sending_queue.clone(),
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }
}

/// Encodes the shared request in place: no copy of the batch per attempt.
struct SharedCodec<Request, Response>(PhantomData<fn(Request) -> Response>);

impl<Request, Response> Default for SharedCodec<Request, Response> {
    fn default() -> Self {
        SharedCodec(PhantomData)
    }
}

struct SharedEncoder<Request>(PhantomData<fn(Request)>);
struct ResponseDecoder<Response>(PhantomData<fn() -> Response>);

impl<Request, Response> Codec for SharedCodec<Request, Response>
where
    Request: prost::Message + Send + Sync + 'static,
    Response: prost::Message + Default + Send + 'static,
{
    type Encode = Arc<Request>;
    type Decode = Response;
    type Encoder = SharedEncoder<Request>;
    type Decoder = ResponseDecoder<Response>;

    fn encoder(&mut self) -> Self::Encoder {
        SharedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder(PhantomData)
    }
}

impl<Request: prost::Message> Encoder for SharedEncoder<Request> {
    type Item = Arc<Request>;
    type Error = Status;

    fn encode(&mut self, item: Arc<Request>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

/// Sends a request encoded beforehand, as it is.
struct BytesCodec<Response>(PhantomData<fn() -> Response>);

struct BytesEncoder;

impl<Response> Codec for BytesCodec<Response>
where
    Response: prost::Message + Default + Send + 'static,
{
    type Encode = bytes::Bytes;
    type Decode = Response;
    type Encoder = BytesEncoder;
    type Decoder = ResponseDecoder<Response>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder(PhantomData)
    }
}

impl Encoder for BytesEncoder {
    type Item = bytes::Bytes;
    type Error = Status;

    fn encode(&mut self, item: bytes::Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl<Response: prost::Message + Default> Decoder for ResponseDecoder<Response> {
    type Item = Response;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Response>, Status> {
        Response::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding the response: {e}")))
    }
}

pub struct OtlpExporter {
    client: Grpc<PrecompressedChannel>,
    compression: Compression,
    signal: Signal,
    metadata: MetadataMap,
    timeout: std::time::Duration,
    /// `scheme://host:port` of the endpoint, for errors: which backend
    /// failed, without credentials or path.
    origin: String,
}

/// What the `otlp` exporter needs from its config, checked without any I/O
/// or runtime: `validate` builds this too, so `run` cannot refuse what
/// `validate` accepted.
pub struct Prepared {
    endpoint: tonic::transport::Endpoint,
    metadata: MetadataMap,
}

impl OtlpExporterConfig {
    pub fn prepare(&self) -> Result<Prepared, String> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.endpoint.as_str())
            .map_err(|e| format!("invalid endpoint {}: {e}", self.endpoint.origin()))?
            .tcp_nodelay(true);
        let https = self.endpoint.0.scheme_str() == Some("https");
        let insecure = self.tls.as_ref().is_some_and(|t| t.insecure);
        super::http::refuse_insecure_https(self.tls.as_ref(), https, &self.endpoint.origin())?;
        if https {
            let host = self.endpoint.0.host().unwrap_or_default();
            let tls = self.tls.clone().unwrap_or_default().tonic(host)?;
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("TLS settings for {}: {e}", self.endpoint.origin()))?;
        } else if self.tls.is_some() && !insecure {
            return Err(format!(
                "endpoint {}: tls is set but the endpoint is http://; write https:// to use it",
                self.endpoint.origin()
            ));
        }
        Ok(Prepared {
            endpoint,
            metadata: MetadataMap::from_headers(self.headers.map().clone()),
        })
    }
}

impl OtlpExporter {
    pub fn new(config: &OtlpExporterConfig, signal: Signal) -> Result<Self, String> {
        let Prepared {
            endpoint,
            mut metadata,
        } = config.prepare()?;
        let channel: Channel = endpoint.connect_lazy();
        let encoding = match config.compression {
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::None => None,
        };
        if let Some(encoding) = encoding {
            metadata.insert(
                "grpc-encoding",
                tonic::metadata::MetadataValue::from_static(encoding),
            );
        }
        let channel = PrecompressedChannel::new(channel, encoding.is_some());
        // Responses are tiny; the limit only guards against a hostile server.
        let client = Grpc::new(channel).max_decoding_message_size(4 * 1024 * 1024);
        Ok(OtlpExporter {
            client,
            compression: config.compression,
            signal,
            metadata,
            timeout: config.timeout,
            origin: config.endpoint.origin(),
        })
    }

    /// One unary Export call: `message` written by `codec`, the reply
    /// decoded as `Response`.
    async fn unary<Message, Response, C>(
        &self,
        path: &'static str,
        message: Message,
        codec: C,
    ) -> Result<Response, ExportError>
    where
        Message: Send + Sync + 'static,
        Response: Send + Sync + 'static,
        C: Codec<Encode = Message, Decode = Response> + Send + 'static,
    {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        let mut client = self.client.clone();
        client.ready().await.map_err(|e| {
            ExportError::retryable(format!(
                "connecting to {}: {}",
                self.origin,
                super::error_chain(&e)
            ))
        })?;
        let path = http::uri::PathAndQuery::from_static(path);
        client
            .unary(request, path, codec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| {
                // tonic's message for a transport failure ("tcp connect
                // error") leaves out the cause and the destination.
                let cause = std::error::Error::source(&status).map(super::error_chain);
                match classify(status) {
                    ExportError::Retryable {
                        message,
                        retry_after,
                    } => ExportError::Retryable {
                        message: match cause {
                            Some(cause) if !message.contains(&cause) => {
                                format!("{message} ({cause}; endpoint {})", self.origin)
                            }
                            _ => format!("{message} (endpoint {})", self.origin),
                        },
                        retry_after,
                    },
                    other => other,
                }
            })
    }

    async fn call<Request, Response>(
        &self,
        path: &'static str,
        message: &Arc<Request>,
    ) -> Result<Response, ExportError>
    where
        Request: prost::Message + Send + Sync + 'static,
        Response: prost::Message + Default + Send + 'static,
    {
        self.unary(
            path,
            message.clone(),
            SharedCodec::<Request, Response>::default(),
        )
        .await
    }

    async fn call_encoded<Response>(
        &self,
        path: &'static str,
        encoded: bytes::Bytes,
    ) -> Result<Response, ExportError>
    where
        Response: prost::Message + Default + Send + 'static,
    {
        self.unary(path, encoded, BytesCodec::<Response>(PhantomData))
            .await
    }
}

impl OtlpExporter {
    /// The message as sent: compressed once here, if compression is on.
    async fn compress(&self, encoded: bytes::Bytes) -> Result<bytes::Bytes, ExportError> {
        // Below this a blocking thread's handoff costs more than it saves.
        const INLINE_BYTES: usize = 64 * 1024;
        let compress = match self.compression {
            Compression::None => return Ok(encoded),
            Compression::Gzip => super::compress::gzip,
            Compression::Zstd => super::compress::zstd,
        };
        let compressed = if encoded.len() < INLINE_BYTES {
            compress(&encoded)
        } else {
            tokio::task::spawn_blocking(move || compress(&encoded))
                .await
                .map_err(|e| ExportError::permanent(format!("compressing the batch: {e}")))?
        };
        compressed
            .map(bytes::Bytes::from)
            .map_err(|e| ExportError::permanent(format!("compressing the batch: {e}")))
    }
}

/// A partial success with rejected items is an error the queue counts;
/// a warning alone is logged.
fn outcome(rejected: Option<(i64, String)>) -> Result<(), ExportError> {
    match rejected {
        Some((count, message)) if count > 0 => Err(ExportError::PartiallyRejected {
            rejected: count as u64,
            message,
        }),
        Some((_, message)) if !message.is_empty() => {
            tracing::warn!(
                message,
                "the destination accepted everything with a warning"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

impl OtlpExporter {
    /// Sends an export request of `signal` as the bytes it is.
    async fn send_bytes(&self, signal: Signal, encoded: bytes::Bytes) -> Result<(), ExportError> {
        let encoded = self.compress(encoded).await?;
        let rejected = match signal {
            Signal::Traces => self
                .call_encoded::<ExportTraceServiceResponse>(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    encoded,
                )
                .await?
                .partial_success
                .map(|p| (p.rejected_spans, p.error_message)),
            Signal::Metrics => self
                .call_encoded::<ExportMetricsServiceResponse>(
                    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                    encoded,
                )
                .await?
                .partial_success
                .map(|p| (p.rejected_data_points, p.error_message)),
            Signal::Logs => self
                .call_encoded::<ExportLogsServiceResponse>(
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                    encoded,
                )
                .await?
                .partial_success
                .map(|p| (p.rejected_log_records, p.error_message)),
        };
        outcome(rejected)
    }
}

#[async_trait::async_trait]
impl Exporter for OtlpExporter {
    fn reads_wire(&self) -> bool {
        true
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        // The OTLP edge: typed events leave as their log records.
        let batch = &*batch.otlp();
        let rejected = match batch {
            Batch::Wire(w) => return self.send_bytes(w.signal, w.bytes.clone()).await,
            // Compressed bodies are bytes compressed beforehand.
            _ if self.compression != Compression::None => {
                return self.send_bytes(batch.signal(), batch.to_protobuf()).await;
            }
            Batch::Events(_) => {
                return self.send_bytes(batch.signal(), batch.to_protobuf()).await;
            }
            Batch::Traces(request) => self
                .call::<_, ExportTraceServiceResponse>(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    request,
                )
                .await?
                .partial_success
                .map(|p| (p.rejected_spans, p.error_message)),
            Batch::Metrics(request) => self
                .call::<_, ExportMetricsServiceResponse>(
                    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                    request,
                )
                .await?
                .partial_success
                .map(|p| (p.rejected_data_points, p.error_message)),
            Batch::Logs(request) => self
                .call::<_, ExportLogsServiceResponse>(
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                    request,
                )
                .await?
                .partial_success
                .map(|p| (p.rejected_log_records, p.error_message)),
        };
        if batch.signal() != self.signal {
            tracing::debug!(expected = %self.signal, got = %batch.signal(), "exporter instance got another signal");
        }
        outcome(rejected)
    }
}

/// Sorts a gRPC status into retryable or permanent, per the OTLP spec.
pub fn classify(status: Status) -> ExportError {
    let retry_after = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    let message = format!("gRPC {:?}: {}", status.code(), status.message());
    // A status tonic made from a transport failure (the connection reset
    // or closed mid-call, as when the backend restarts) carries the error
    // as its source; the server never answered, so whatever the code (often
    // INTERNAL or UNKNOWN) the batch was not refused: retry it.
    if std::error::Error::source(&status).is_some() {
        return ExportError::Retryable {
            message,
            retry_after,
        };
    }
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => ExportError::Retryable {
            message,
            retry_after,
        },
        Code::ResourceExhausted if retry_after.is_some() => ExportError::Retryable {
            message,
            retry_after,
        },
        _ => ExportError::Permanent { message },
    }
}

impl crate::components::compiled::CompiledExporter for OtlpExporterConfig {
    fn settings(&self) -> crate::exporters::settings::ExporterSettings {
        self.settings()
    }

    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        Ok(std::sync::Arc::new(OtlpExporter::new(
            self,
            context.signal,
        )?))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<OtlpExporterConfig>(
        value,
        path,
        decoder,
        |c| c.tls.as_ref(),
        |c, path, decoder| {
            crate::exporters::compile::refused(c.prepare().map(|_| ()), path, decoder)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tonic_types::ErrorDetails;

    #[test]
    fn classifies_codes_as_the_otlp_spec_says() {
        assert!(matches!(
            classify(Status::unavailable("x")),
            ExportError::Retryable {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            classify(Status::invalid_argument("x")),
            ExportError::Permanent { .. }
        ));
        assert!(matches!(
            classify(Status::resource_exhausted("x")),
            ExportError::Permanent { .. }
        ));
        // An answer of INTERNAL from the server is final; the same code made
        // locally from a connection reset is not.
        assert!(matches!(
            classify(Status::internal("x")),
            ExportError::Permanent { .. }
        ));
        let reset = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert!(matches!(classify(reset), ExportError::Retryable { .. }));
        let with_info = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        match classify(with_info) {
            ExportError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("expected retryable, got {other:?}"),
        }
    }
}
