//! How long a client may take, per listener: to finish its first request
//! (the TLS handshake, the HTTP/1 request line and headers, or the HTTP/2
//! preface and a first stream), to send each later request's headers, to
//! sit idle on a kept-alive connection, and to send a request body.
//!
//! Why all of them: each is a way a silent or slow client could otherwise
//! hold a connection slot, or a reservation of the in-flight budget, for as
//! long as it likes (a connection that sends nothing, one byte of a body
//! declared as 4 MiB, a kept-alive connection never used again).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The deadlines, as configured on `protocols.grpc` and `protocols.http`
/// (documented there, in `mod.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub handshake_timeout: Duration,
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub read_progress_timeout: Duration,
    pub read_timeout: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            handshake_timeout: Duration::from_secs(10),
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            read_progress_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

impl Deadlines {
    /// Field names with what is wrong with them: every deadline must be
    /// longer than zero (zero would close every connection at once).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        [
            ("handshake_timeout", self.handshake_timeout),
            ("read_header_timeout", self.read_header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("read_progress_timeout", self.read_progress_timeout),
            ("read_timeout", self.read_timeout),
        ]
        .into_iter()
        .filter(|(_, d)| d.is_zero())
        .map(|(field, _)| (field, "must be longer than 0".to_string()))
        .collect()
    }
}

/// A request body that fails with [`BodyTimeout`] when no byte arrives for
/// `read_progress_timeout` or the whole has not arrived by `read_timeout`.
pub struct DeadlineBody<B> {
    inner: B,
    progress: Duration,
    stall: Pin<Box<Sleep>>,
    total: Pin<Box<Sleep>>,
    ended: bool,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, deadlines: &Deadlines) -> Self {
        let now = Instant::now();
        DeadlineBody {
            inner,
            progress: deadlines.read_progress_timeout,
            stall: Box::pin(tokio::time::sleep_until(
                now + deadlines.read_progress_timeout,
            )),
            total: Box::pin(tokio::time::sleep_until(now + deadlines.read_timeout)),
            ended: false,
        }
    }
}

/// The body did not arrive in time; the request is failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyTimeout(&'static str);

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // Checked first: a body that keeps trickling must still end.
        if this.total.is_elapsed() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(
                "the request body did not arrive within read_timeout",
            )))));
        }
        if let Poll::Ready(polled) = Pin::new(&mut this.inner).poll_frame(cx) {
            match &polled {
                None => this.ended = true,
                Some(Ok(_)) => {
                    let next = Instant::now() + this.progress;
                    this.stall.as_mut().reset(next);
                }
                Some(Err(_)) => {}
            }
            return Poll::Ready(polled.map(|r| r.map_err(Into::into)));
        }
        // Nothing yet: fail if a deadline has passed, else wake on it too.
        if this.total.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(
                "the request body did not arrive within read_timeout",
            )))));
        }
        ready!(this.stall.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(
            "the request body sent nothing for read_progress_timeout",
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error`, or an error it wraps, is a [`BodyTimeout`].
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<BodyTimeout>() {
            return true;
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;
    use http_body_util::{BodyExt, StreamBody};

    type Item = Result<Frame<Bytes>, std::io::Error>;
    type Sender = futures::channel::mpsc::Sender<Item>;
    type Receiver = StreamBody<futures::channel::mpsc::Receiver<Item>>;

    fn channel() -> (Sender, Receiver) {
        let (sender, receiver) = futures::channel::mpsc::channel(4);
        (sender, StreamBody::new(receiver))
    }

    fn data() -> Result<Frame<Bytes>, std::io::Error> {
        Ok(Frame::data(Bytes::from_static(b"x")))
    }

    #[test]
    fn zero_deadlines_are_config_errors() {
        let deadlines = Deadlines {
            idle_timeout: Duration::ZERO,
            ..Deadlines::default()
        };
        let fields: Vec<_> = deadlines.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["idle_timeout"]);
    }

    /// Short deadlines, for tests in real time.
    fn short() -> Deadlines {
        Deadlines {
            read_progress_timeout: Duration::from_millis(200),
            read_timeout: Duration::from_millis(600),
            ..Deadlines::default()
        }
    }

    #[tokio::test]
    async fn a_stalled_body_fails_after_the_progress_timeout() {
        let (mut sender, body) = channel();
        let deadlines = short();
        let mut body = DeadlineBody::new(body, &deadlines);
        sender.send(data()).await.unwrap();
        let started = Instant::now();
        assert!(body.frame().await.unwrap().is_ok());
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(is_timeout(&*error), "{error}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= deadlines.read_progress_timeout && elapsed < deadlines.read_timeout,
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn a_trickling_body_fails_at_the_total_timeout() {
        let (mut sender, body) = channel();
        let deadlines = short();
        let mut body = DeadlineBody::new(body, &deadlines);
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            loop {
                if sender.send(data()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let error = loop {
            match body.frame().await.unwrap() {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(is_timeout(&*error), "{error}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= deadlines.read_timeout && elapsed < deadlines.read_timeout * 3,
            "{elapsed:?}"
        );
        trickle.abort();
    }
}
