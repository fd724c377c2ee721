//! Accepting a receiver's connections: counting them (each stream carries a
//! guard that decrements the gauge when the server drops it), giving each a
//! place in the listener's connection table (which evicts the longest-idle
//! connection when full), and the TLS handshake when TLS is on. One task
//! accepts; handshakes run in their own tasks under a deadline, so a slow
//! or silent client cannot hold up the others.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::receivers::otlp::connection_table::{ConnectionTable, SlotGuard};

#[derive(Debug)]
pub struct ListenerStats {
    pub receiver: String,
    pub transport: &'static str,
    pub active_connections: AtomicI64,
    pub accepted_connections: AtomicU64,
    /// Connections closed at once because `max_connections` were open,
    /// all of them serving a request.
    pub refused_connections: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub evicted_connections: AtomicU64,
    /// TLS handshakes that failed: no or a foreign client certificate, an
    /// old protocol version, plaintext on a TLS port, a timeout.
    pub failed_handshakes: AtomicU64,
    pub max_connections: i64,
}

impl ListenerStats {
    /// Counts a connection refused because the table was full and busy.
    pub fn refused(&self, max_connections: usize) {
        let refused = self.refused_connections.fetch_add(1, Ordering::Relaxed);
        // One line per 1000 refusals: a flood must not flood the log too.
        if refused.is_multiple_of(1000) {
            tracing::warn!(
                receiver = %self.receiver,
                transport = self.transport,
                max_connections,
                refused = refused + 1,
                "connection limit reached with every connection busy; closing new connections"
            );
        }
    }
}

/// A TCP stream that is counted while it is open.
#[derive(Debug)]
pub struct CountedStream {
    inner: TcpStream,
    peer: SocketAddr,
    stats: Arc<ListenerStats>,
}

impl CountedStream {
    pub fn new(inner: TcpStream, peer: SocketAddr, stats: Arc<ListenerStats>) -> Self {
        stats.active_connections.fetch_add(1, Ordering::Relaxed);
        stats.accepted_connections.fetch_add(1, Ordering::Relaxed);
        CountedStream { inner, peer, stats }
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

/// An accepted connection, plain or TLS.
#[derive(Debug)]
pub enum Conn {
    Plain(CountedStream),
    Tls(Box<tokio_rustls::server::TlsStream<CountedStream>>),
}

impl Conn {
    fn tcp(&self) -> &CountedStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.tcp().peer
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Conn::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Conn::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.inner.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// An accepted connection with its place in the connection table.
pub struct Accepted {
    pub conn: Conn,
    pub slot: SlotGuard,
}

/// Accepts on `listener` until the returned receiver is dropped, yielding
/// counted (and, with `tls`, handshaken) connections that have a place in
/// `table`. A TLS handshake must finish within `handshake_timeout` of the
/// accept, and is abandoned if the table evicts the connection meanwhile.
pub fn accept_loop(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    table: Arc<ConnectionTable>,
    tls: Option<Arc<crate::tls::server::ReloadingAcceptor>>,
    handshake_timeout: Duration,
) -> mpsc::Receiver<Accepted> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = sender.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = table.admit() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let counted = CountedStream::new(stream, peer, stats.clone());
            match &tls {
                None => {
                    let conn = Conn::Plain(counted);
                    if sender.send(Accepted { conn, slot }).await.is_err() {
                        return;
                    }
                }
                Some(acceptor) => {
                    let (acceptor, sender, stats) =
                        (acceptor.current(), sender.clone(), stats.clone());
                    tokio::spawn(async move {
                        let deadline = slot.slot().accepted() + handshake_timeout;
                        let handshake = tokio::select! {
                            handshake = tokio::time::timeout_at(deadline, acceptor.accept(counted)) => handshake,
                            // Evicted for a newcomer while still handshaking.
                            _ = slot.slot().evicted() => return,
                        };
                        match handshake {
                            Ok(Ok(stream)) => {
                                let conn = Conn::Tls(Box::new(stream));
                                let _ = sender.send(Accepted { conn, slot }).await;
                            }
                            Ok(Err(e)) => {
                                stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%peer, "TLS handshake timed out");
                            }
                        }
                    });
                }
            }
        }
    });
    receiver
}
