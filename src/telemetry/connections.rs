//! Counting a listener's open connections: each accepted stream carries a
//! guard that decrements the gauge when the server drops the connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug)]
pub struct ListenerStats {
    pub receiver: String,
    pub transport: &'static str,
    pub active_connections: AtomicI64,
    pub accepted_connections: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused_connections: AtomicU64,
    pub max_connections: i64,
}

impl ListenerStats {
    /// Whether another connection may be served; counts the refusal if not.
    fn has_room(&self) -> bool {
        if self.active_connections.load(Ordering::Relaxed) < self.max_connections {
            return true;
        }
        let refused = self.refused_connections.fetch_add(1, Ordering::Relaxed);
        // One line per 1000 refusals: a flood must not flood the log too.
        if refused.is_multiple_of(1000) {
            tracing::warn!(
                receiver = %self.receiver,
                transport = self.transport,
                max_connections = self.max_connections,
                refused = refused + 1,
                "connection limit reached; closing new connections"
            );
        }
        false
    }
}

/// A TCP stream that is counted while it is open.
#[derive(Debug)]
pub struct CountedStream {
    inner: TcpStream,
    stats: Arc<ListenerStats>,
}

impl CountedStream {
    pub fn new(inner: TcpStream, stats: Arc<ListenerStats>) -> Self {
        stats.active_connections.fetch_add(1, Ordering::Relaxed);
        stats.accepted_connections.fetch_add(1, Ordering::Relaxed);
        CountedStream { inner, stats }
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.inner
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.stats
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for CountedStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A listener for axum whose connections are counted.
pub struct CountedListener {
    pub listener: TcpListener,
    pub stats: Arc<ListenerStats>,
}

impl axum::serve::Listener for CountedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, address) = axum::serve::Listener::accept(&mut self.listener).await;
            if !self.stats.has_room() {
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            return (CountedStream::new(stream, self.stats.clone()), address);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// Accepted connections of `listener` as a stream for tonic, counted.
pub fn counted_incoming(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
) -> impl futures::Stream<Item = io::Result<CountedStream>> {
    futures::stream::unfold((listener, stats), |(listener, stats)| async move {
        let accepted = loop {
            match listener.accept().await {
                Ok((stream, _)) if !stats.has_room() => drop(stream),
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    break Ok(CountedStream::new(stream, stats.clone()));
                }
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = &accepted {
            // Out of file descriptors, say: tonic retries at once, so pause
            // rather than spin (axum does the same).
            tracing::warn!(error = %e, "accepting a connection failed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Some((accepted, (listener, stats)))
    })
}
