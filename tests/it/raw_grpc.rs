//! A bare gRPC client on the h2 crate, for requests the generated clients
//! cannot make: a body that stalls, a message compressed once and sent many
//! times, arbitrary headers.

use std::time::Duration;

use bytes::Bytes;

pub const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// An HTTP/2 connection to `address`, driven in the background.
pub async fn connect(address: std::net::SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A gRPC request's headers for `path`, with `extra` headers.
pub fn request(
    address: std::net::SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
) -> http::Request<()> {
    let mut builder = http::Request::post(format!("http://{address}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

/// A message as a gRPC frame: flag, big-endian length, bytes.
pub fn frame(compressed: bool, message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(u8::from(compressed));
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

/// The `grpc-status` of an answer (headers-only or in the trailers), and
/// whether it carries `grpc-status-details-bin` (RetryInfo lives there).
pub async fn status_of(
    response: h2::client::ResponseFuture,
    within: Duration,
) -> Option<(i32, bool)> {
    tokio::time::timeout(within, async move {
        let response = response.await.ok()?;
        let code = |headers: &http::HeaderMap| {
            headers
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(|code| (code, headers.contains_key("grpc-status-details-bin")))
        };
        if let Some(found) = code(response.headers()) {
            return Some(found);
        }
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.ok()?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        body.trailers().await.ok().flatten().as_ref().and_then(code)
    })
    .await
    .ok()
    .flatten()
}

/// Sends a whole unary request and returns its status.
pub async fn call(
    client: &h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
    body: Bytes,
) -> Option<(i32, bool)> {
    let mut client = client.clone().ready().await.ok()?;
    let (response, mut stream) = client.send_request(request, false).ok()?;
    // The server may answer (and reset the stream) before the body is
    // sent, as it does for refused credentials: the answer still counts.
    let _ = stream.send_data(body, true);
    status_of(response, Duration::from_secs(20)).await
}
