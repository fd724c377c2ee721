//! The sending queue of one exporter (per signal): a bounded channel, a few
//! workers, and the retry loop with exponential backoff and jitter.
//!
//! Every item that enters the queue is either sent or counted as failed
//! with a logged reason: a permanent error, retries exhausted, or the
//! shutdown deadline. Nothing leaves silently.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::settings::ExporterSettings;
use super::{ExportError, Exporter};
use crate::signal::Batch;
use crate::telemetry::ExporterStats;

/// The producer side, held by pipelines.
#[derive(Clone)]
pub struct QueueSender {
    pub name: Arc<str>,
    sender: mpsc::Sender<Batch>,
    pub stats: Arc<ExporterStats>,
}

impl QueueSender {
    /// True when the queue has no room; receivers then refuse new data.
    pub fn is_full(&self) -> bool {
        self.sender.capacity() == 0
    }

    /// Enqueues, waiting for room: data that reaches this point has been
    /// admitted and must not be dropped. Fails only after shutdown.
    pub async fn send(&self, batch: Batch) -> Result<(), Batch> {
        let items = batch.item_count();
        self.stats.enqueued(items);
        match self.sender.send(batch).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(batch)) => {
                self.stats.dequeued(items);
                Err(batch)
            }
        }
    }
}

/// The consumer side: workers, and the tokens that stop them.
pub struct QueueRunner {
    pub name: Arc<str>,
    pub stats: Arc<ExporterStats>,
    workers: Vec<JoinHandle<()>>,
    exporter: Arc<dyn Exporter>,
    /// Workers exit once the queue is empty.
    closing: CancellationToken,
    /// Workers stop retrying and count what they hold as failed.
    abandon: CancellationToken,
}

pub fn start(
    name: &str,
    exporter: Arc<dyn Exporter>,
    settings: &ExporterSettings,
    stats: Arc<ExporterStats>,
) -> (QueueSender, QueueRunner) {
    let capacity = settings.sending_queue.queue_size.max(1);
    let (sender, receiver) = mpsc::channel(capacity);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let closing = CancellationToken::new();
    let abandon = CancellationToken::new();
    let name: Arc<str> = name.into();
    let workers = (0..settings.sending_queue.num_consumers.max(1))
        .map(|_| {
            let worker = Worker {
                name: name.clone(),
                receiver: receiver.clone(),
                exporter: exporter.clone(),
                settings: settings.clone(),
                stats: stats.clone(),
                closing: closing.clone(),
                abandon: abandon.clone(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    (
        QueueSender {
            name: name.clone(),
            sender,
            stats: stats.clone(),
        },
        QueueRunner {
            name,
            stats,
            workers,
            exporter,
            closing,
            abandon,
        },
    )
}

impl QueueRunner {
    /// Drains the queue until `deadline`; what is still held then is
    /// counted as failed and logged. Returns false if the deadline hit.
    pub async fn drain(mut self, deadline: Instant) -> bool {
        self.closing.cancel();
        let mut finished = true;
        for worker in self.workers.iter_mut() {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, &mut *worker).await.is_err() {
                finished = false;
                break;
            }
        }
        if !finished {
            self.abandon.cancel();
            for worker in self.workers.iter_mut() {
                // Abandoning is immediate unless an export call hangs.
                if tokio::time::timeout(Duration::from_secs(1), &mut *worker)
                    .await
                    .is_err()
                {
                    worker.abort();
                }
            }
            let stuck = self.stats.queued_items.swap(0, Ordering::Relaxed).max(0) as u64;
            if stuck > 0 {
                self.stats.failed_items.fetch_add(stuck, Ordering::Relaxed);
                tracing::error!(
                    exporter = %self.name,
                    signal = %self.stats.signal,
                    items = stuck,
                    "shutdown deadline reached with items still queued; they are lost"
                );
            }
        }
        self.exporter.shutdown().await;
        finished
    }
}

struct Worker {
    name: Arc<str>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Batch>>>,
    exporter: Arc<dyn Exporter>,
    settings: ExporterSettings,
    stats: Arc<ExporterStats>,
    closing: CancellationToken,
    abandon: CancellationToken,
}

impl Worker {
    async fn run(self) {
        loop {
            if self.abandon.is_cancelled() {
                return;
            }
            let next = {
                let mut receiver = self.receiver.lock().await;
                tokio::select! {
                    // Prefer data: a closing queue is drained before exit.
                    biased;
                    batch = receiver.recv() => batch,
                    _ = self.closing.cancelled() => receiver.try_recv().ok(),
                }
            };
            let Some(batch) = next else {
                return;
            };
            let items = batch.item_count();
            self.send_with_retry(&batch, items).await;
            self.stats.dequeued(items);
        }
    }

    async fn send_with_retry(&self, batch: &Batch, items: usize) {
        let retry = &self.settings.retry_on_failure;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let attempt_started = Instant::now();
            let result = match tokio::time::timeout(
                self.settings.timeout,
                self.exporter.export(batch),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(ExportError::retryable(format!(
                    "timed out after {:?}",
                    self.settings.timeout
                ))),
            };
            self.stats.window.record(
                attempt_started.elapsed(),
                !matches!(result, Ok(()) | Err(ExportError::PartiallyRejected { .. })),
            );
            let (message, retry_after) = match result {
                Ok(()) => {
                    self.stats
                        .sent_items
                        .fetch_add(items as u64, Ordering::Relaxed);
                    self.stats.consecutive_failures.store(0, Ordering::Relaxed);
                    return;
                }
                Err(ExportError::Permanent { message }) => {
                    self.fail(items, &format!("permanent error: {message}"));
                    return;
                }
                Err(ExportError::PartiallyRejected { rejected, message }) => {
                    let rejected = (rejected as usize).min(items);
                    self.stats
                        .sent_items
                        .fetch_add((items - rejected) as u64, Ordering::Relaxed);
                    self.stats.consecutive_failures.store(0, Ordering::Relaxed);
                    self.fail(
                        rejected,
                        &format!("the destination rejected them: {message}"),
                    );
                    return;
                }
                Err(ExportError::Retryable {
                    message,
                    retry_after,
                }) => (message, retry_after),
            };
            self.stats
                .consecutive_failures
                .fetch_add(1, Ordering::Relaxed);
            if !retry.enabled {
                self.fail(items, &format!("retry disabled; error: {message}"));
                return;
            }
            let delay =
                retry_after.unwrap_or_else(|| retry.backoff(attempt, rand::random::<f64>()));
            let budget = retry.max_elapsed_time;
            if !budget.is_zero() && started.elapsed() + delay > budget {
                self.fail(
                    items,
                    &format!(
                        "giving up after {:?} of retries; last error: {message}",
                        started.elapsed()
                    ),
                );
                return;
            }
            tracing::warn!(
                exporter = %self.name,
                signal = %self.stats.signal,
                items,
                attempt = attempt + 1,
                retry_in = ?delay,
                error = %message,
                "export failed; will retry"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.abandon.cancelled() => {
                    self.fail(items, &format!("shutdown deadline reached while retrying; last error: {message}"));
                    return;
                }
            }
            self.stats
                .retried_items
                .fetch_add(items as u64, Ordering::Relaxed);
            attempt += 1;
        }
    }

    fn fail(&self, items: usize, reason: &str) {
        self.stats
            .failed_items
            .fetch_add(items as u64, Ordering::Relaxed);
        tracing::error!(
            exporter = %self.name,
            signal = %self.stats.signal,
            items,
            reason,
            "dropping data that could not be exported"
        );
    }
}
