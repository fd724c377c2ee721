//! Sending a gRPC message that the exporter compressed itself.
//!
//! tonic compresses inside its request body at a fixed level (gzip 6,
//! zstd 3) with a fresh compressor for every call. The `otlp` exporter
//! instead compresses each batch once with [`super::compress`] (its level,
//! its reused state) and hands tonic the compressed bytes as an ordinary
//! message. What tonic cannot be told is that the message is compressed:
//! gRPC says so in the first byte of the length-prefixed message (the
//! compressed flag, RFC-style framing in the gRPC HTTP/2 protocol spec) and
//! in the `grpc-encoding` header. The header goes in as metadata; this
//! channel wrapper sets the flag, by sending the body's first byte as 1
//! instead of tonic's 0 and the rest untouched (no copy).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tonic::body::Body;
use tonic::transport::Channel;
use tower_service::Service;

/// A channel whose requests each carry one message already compressed
/// (when `compressed`; otherwise the channel as it is).
#[derive(Clone)]
pub struct PrecompressedChannel {
    inner: Channel,
    compressed: bool,
}

impl PrecompressedChannel {
    pub fn new(inner: Channel, compressed: bool) -> Self {
        PrecompressedChannel { inner, compressed }
    }
}

impl Service<http::Request<Body>> for PrecompressedChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = <Channel as Service<http::Request<Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<http::Request<Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if !self.compressed {
            return self.inner.call(request);
        }
        let (parts, body) = request.into_parts();
        let body = Body::new(FlagCompressed {
            inner: body,
            first: true,
            rest: None,
        });
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

/// The body with its first byte (the first message's compressed flag)
/// sent as 1.
struct FlagCompressed {
    inner: Body,
    first: bool,
    /// What followed the flag in the first chunk, sent next.
    rest: Option<Bytes>,
}

const COMPRESSED: Bytes = Bytes::from_static(&[1]);

impl http_body::Body for FlagCompressed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if let Some(rest) = self.rest.take() {
            return Poll::Ready(Some(Ok(Frame::data(rest))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if !self.first {
            return polled;
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => {
                    self.first = false;
                    if data[0] != 0 {
                        return Poll::Ready(Some(Err(tonic::Status::internal(
                            "the message was flagged compressed twice",
                        ))));
                    }
                    self.rest = Some(data.slice(1..));
                    Poll::Ready(Some(Ok(Frame::data(COMPRESSED))))
                }
                Ok(empty) => Poll::Ready(Some(Ok(Frame::data(empty)))),
                Err(other) => Poll::Ready(Some(Ok(other))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.inner.is_end_stream()
    }
}
