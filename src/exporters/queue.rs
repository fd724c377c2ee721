//! The sending queue of one exporter (per signal): a bounded channel, a few
//! workers, and the retry loop with exponential backoff and jitter; with
//! `storage` set, a write-ahead log behind the channel (`wal`).
//!
//! Every item that enters the queue is either sent or counted as failed
//! with a logged reason: a permanent error, retries exhausted, or the
//! shutdown deadline. Nothing leaves silently. With a log, a batch is on
//! disk before the client is answered and is deleted only once delivered
//! or deliberately dropped; what the shutdown deadline cuts off stays on
//! disk for the next start, as does everything after a crash.
//!
//! With `batch`, workers form batches as they take entries out of the
//! queue (`queue_batch`); entries from a log are acknowledged in it only
//! once the whole batch is delivered, so a crash mid-batch means
//! duplicates, never a loss.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::signal::{WireBatch, schema_of};
use crate::wire::scan::scan;

use super::queue_batch;
use super::settings::{ExporterSettings, QueueBatchSettings, Sizer};
use super::wal::{Location, Wal};
use super::{ExportError, Exporter};
use crate::signal::{Batch, Signal};
use crate::telemetry::ExporterStats;

/// A batch in the channel (in its wire form for exporters that send
/// protobuf as is: encoded once, on entry, and several times smaller than
/// decoded), or, with a log, only where the log holds it: a long outage
/// then fills the disk, not memory, and the worker reads the batch back
/// just before sending it.
enum Payload {
    InMemory(Batch),
    Stored(Location),
}

struct Queued {
    payload: Payload,
    items: usize,
    /// Protobuf bytes, for `sizer: bytes`.
    bytes: usize,
}

impl Queued {
    fn size(&self, sizer: Sizer) -> usize {
        match sizer {
            Sizer::Items => self.items,
            Sizer::Bytes => self.bytes,
        }
    }

    fn location(&self) -> Option<Location> {
        match self.payload {
            Payload::Stored(location) => Some(location),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the queue is closed")]
    Closed,
    #[error("cannot write the queue's log: {0}")]
    Storage(String),
}

/// A directory name from an exporter id such as `otlp/backend`.
fn directory_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The producer side, held by pipelines.
#[derive(Clone)]
pub struct QueueSender {
    pub name: Arc<str>,
    sender: mpsc::Sender<Queued>,
    pub stats: Arc<ExporterStats>,
    wal: Option<Arc<Wal>>,
    /// The exporter sends protobuf as is: queue batches in wire form.
    wire: bool,
    /// Batching counts bytes: decoded batches are measured as they enter.
    sized_by_bytes: bool,
    /// Wait for room rather than refuse when full.
    pub block_on_overflow: bool,
    /// Cancelled once every record recovered from the log is back in the
    /// queue: new data waits for it, so a source's order (a file's lines)
    /// holds across a restart.
    recovered: CancellationToken,
}

impl QueueSender {
    /// Whether wire batches suit this queue as they are: its exporter
    /// sends protobuf as is, or its log stores it.
    pub fn prefers_wire(&self) -> bool {
        self.wire || self.wal.is_some()
    }

    /// True when the queue has no room; receivers then refuse new data.
    pub fn is_full(&self) -> bool {
        self.sender.capacity() == 0
    }

    /// Enqueues, waiting for room: data that reaches this point has been
    /// admitted and must not be dropped. Fails after shutdown, or when the
    /// log cannot store it (the client is then refused, nothing is lost).
    pub async fn send(&self, batch: Batch) -> Result<(), SendError> {
        self.recovered.cancelled().await;
        let items = batch.item_count();
        let mut bytes = 0;
        let payload = match &self.wal {
            None if self.wire || matches!(batch, Batch::Wire(_)) => {
                let wire = match &batch {
                    // Only the bytes wait here: a decoded form cached for
                    // other readers is not held alive by the queue.
                    Batch::Wire(w) if w.is_decoded() => w.without_decoded().into(),
                    Batch::Wire(w) => w.clone(),
                    decoded => WireBatch::from_decoded(decoded).into(),
                };
                bytes = wire.bytes.len();
                Payload::InMemory(Batch::Wire(wire))
            }
            None => {
                if self.sized_by_bytes {
                    bytes = encoded_len(&batch);
                }
                Payload::InMemory(batch)
            }
            Some(wal) => {
                let wal = wal.clone();
                // Encoding and appending (and fsync) block: keep them off
                // the runtime's threads.
                let appended =
                    tokio::task::spawn_blocking(move || wal.append(&batch.to_protobuf())).await;
                match appended {
                    Ok(Ok(location)) => Payload::Stored(location),
                    Ok(Err(e)) => return Err(SendError::Storage(e.to_string())),
                    Err(e) => return Err(SendError::Storage(e.to_string())),
                }
            }
        };
        self.stats.enqueued(items);
        let bytes = match &payload {
            Payload::InMemory(_) => bytes,
            Payload::Stored(location) => location.payload_bytes(),
        };
        let queued = Queued {
            payload,
            items,
            bytes,
        };
        match self.sender.send(queued).await {
            Ok(()) => Ok(()),
            Err(_) => {
                // Closed at shutdown; a logged batch stays on disk.
                self.stats.dequeued(items);
                Err(SendError::Closed)
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
    wal: Option<Arc<Wal>>,
}

/// Where the records recovered from a log are, oldest first.
type Recovered = Vec<Location>;

/// Opens the exporter's log for `signal`, if it has storage, logging what
/// recovery found.
fn open_wal(
    name: &str,
    signal: Signal,
    settings: &ExporterSettings,
) -> Result<Option<(Arc<Wal>, Recovered)>, String> {
    let Some(storage) = &settings.sending_queue.storage else {
        return Ok(None);
    };
    let dir = storage.join(directory_name(name)).join(signal.as_str());
    let (wal, recovery) = Wal::open(&dir, settings.sending_queue.fsync, 16 * 1024 * 1024)
        .map_err(|e| format!("cannot open the queue's log in {}: {e}", dir.display()))?;
    if recovery.corrupt_bytes > 0 {
        tracing::error!(
            exporter = name,
            signal = %signal,
            dir = %dir.display(),
            corrupt_bytes = recovery.corrupt_bytes,
            damaged_places = recovery.corrupt_regions,
            recovered_batches = recovery.records.len(),
            "the queue's log was damaged; the intact records are recovered, the damaged ones are lost"
        );
    }
    if !recovery.records.is_empty() {
        tracing::info!(
            exporter = name,
            signal = %signal,
            batches = recovery.records.len(),
            "resuming delivery of batches queued before the last stop"
        );
    }
    Ok(Some((Arc::new(wal), recovery.records)))
}

pub fn start(
    name: &str,
    signal: Signal,
    exporter: Arc<dyn Exporter>,
    settings: &ExporterSettings,
    stats: Arc<ExporterStats>,
) -> Result<(QueueSender, QueueRunner), String> {
    let capacity = settings.sending_queue.queue_size.max(1);
    let (sender, receiver) = mpsc::channel(capacity);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let closing = CancellationToken::new();
    let abandon = CancellationToken::new();
    let name: Arc<str> = name.into();
    let (wal, recovered) = match open_wal(&name, signal, settings)? {
        Some((wal, recovered)) => (Some(wal), recovered),
        None => (None, Vec::new()),
    };
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
                wal: wal.clone(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    let recovery_done = CancellationToken::new();
    if let Some(wal) = &wal
        && !recovered.is_empty()
    {
        tokio::spawn(feed_recovered(
            recovered,
            recovery_done.clone(),
            signal,
            sender.clone(),
            wal.clone(),
            stats.clone(),
            closing.clone(),
        ));
    } else {
        recovery_done.cancel();
    }
    Ok((
        QueueSender {
            name: name.clone(),
            sender,
            stats: stats.clone(),
            wal: wal.clone(),
            wire: exporter.reads_wire(),
            sized_by_bytes: settings
                .sending_queue
                .batch
                .as_ref()
                .is_some_and(|b| b.sizer == Sizer::Bytes),
            block_on_overflow: settings.sending_queue.block_on_overflow,
            recovered: recovery_done,
        },
        QueueRunner {
            name,
            stats,
            workers,
            exporter,
            closing,
            abandon,
            wal,
        },
    ))
}

/// Puts batches recovered from the log back in the queue, oldest first,
/// waiting for room: meanwhile the queue is full and receivers refuse new
/// data with a retryable answer.
async fn feed_recovered(
    records: Recovered,
    done: CancellationToken,
    signal: Signal,
    sender: mpsc::Sender<Queued>,
    wal: Arc<Wal>,
    stats: Arc<ExporterStats>,
    closing: CancellationToken,
) {
    // However this ends (fed, closing, or the queue gone), new data may go.
    let _done = done.drop_guard();
    for location in records {
        // Read one at a time to count its items (no decoding needed), so a
        // large backlog is never in memory at once.
        let read = {
            let wal = wal.clone();
            tokio::task::spawn_blocking(move || wal.read(location)).await
        };
        let counted = match read {
            Ok(Ok(bytes)) => scan(schema_of(signal), &bytes)
                .map(|scanned| scanned.items)
                // The CRC held, so this is not disk damage: a record from
                // an incompatible version.
                .map_err(|e| format!("a queued record does not decode: {e}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let items = match counted {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(sequence = location.sequence, error = %e, "dropping a queued record that cannot be read");
                let _ = wal.ack(location.sequence);
                continue;
            }
        };
        stats.enqueued(items);
        let queued = Queued {
            payload: Payload::Stored(location),
            items,
            bytes: location.payload_bytes(),
        };
        tokio::select! {
            sent = sender.send(queued) => if sent.is_err() {
                stats.dequeued(items);
                return;
            },
            _ = closing.cancelled() => {
                stats.dequeued(items);
                return;
            }
        }
    }
}

/// How long workers get, past the deadline, to notice they are abandoned
/// before their tasks are aborted.
const ABANDON_GRACE: Duration = Duration::from_secs(1);

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
            // Abandoning is immediate unless an export call hangs; the
            // workers share one second of grace, not one each, so a
            // backend that never answers adds one second, whatever
            // `num_consumers` is.
            let grace_end = Instant::now() + ABANDON_GRACE;
            // Workers that ended in the loop above were polled to the end
            // already: polling a JoinHandle again panics.
            for worker in self.workers.iter_mut().filter(|w| !w.is_finished()) {
                let left = grace_end.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, &mut *worker).await.is_err() {
                    worker.abort();
                }
            }
            let stuck = self.stats.queued_items.swap(0, Ordering::Relaxed).max(0) as u64;
            if stuck > 0
                && let Some(wal) = &self.wal
            {
                tracing::warn!(
                    exporter = %self.name,
                    signal = %self.stats.signal,
                    items = stuck,
                    dir = %wal.dir().display(),
                    "shutdown deadline reached; undelivered items stay in the queue's log for the next start"
                );
            } else if stuck > 0 {
                self.stats.failed_items.fetch_add(stuck, Ordering::Relaxed);
                tracing::error!(
                    exporter = %self.name,
                    signal = %self.stats.signal,
                    items = stuck,
                    "shutdown deadline reached with items still queued; they are lost"
                );
            }
        }
        // A local flush (a file synced, a snapshot written): bounded too,
        // what it would have saved is in the exporter's log or lost anyway.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(ABANDON_GRACE);
        if tokio::time::timeout(left, self.exporter.shutdown())
            .await
            .is_err()
        {
            tracing::error!(exporter = %self.name, signal = %self.stats.signal, "the exporter's shutdown did not finish before the deadline");
            return false;
        }
        finished
    }
}

/// The protobuf size of a decoded batch, without encoding it.
fn encoded_len(batch: &Batch) -> usize {
    use prost::Message;
    match batch {
        Batch::Traces(r) => r.encoded_len(),
        Batch::Metrics(r) => r.encoded_len(),
        Batch::Logs(r) => r.encoded_len(),
        Batch::Wire(e) => e.bytes.len(),
        Batch::Events(events) => crate::alerting::event::events_request(events).encoded_len(),
    }
}

struct Worker {
    name: Arc<str>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>,
    exporter: Arc<dyn Exporter>,
    settings: ExporterSettings,
    stats: Arc<ExporterStats>,
    closing: CancellationToken,
    abandon: CancellationToken,
    wal: Option<Arc<Wal>>,
}

impl Worker {
    async fn run(self) {
        loop {
            if self.abandon.is_cancelled() {
                return;
            }
            let batching = self.settings.sending_queue.batch.as_ref();
            let entries = {
                let mut receiver = self.receiver.lock().await;
                let next = tokio::select! {
                    // Prefer data: a closing queue is drained before exit.
                    biased;
                    batch = receiver.recv() => batch,
                    _ = self.closing.cancelled() => receiver.try_recv().ok(),
                };
                match (next, batching) {
                    (None, _) => return,
                    (Some(first), None) => vec![first],
                    (Some(first), Some(batching)) => {
                        queue_batch::collect(
                            first,
                            &mut receiver,
                            batching,
                            &self.closing,
                            |queued| queued.size(batching.sizer),
                        )
                        .await
                    }
                }
            };
            if let Some(batching) = batching {
                self.send_batched(entries, batching).await;
                continue;
            }
            let Some(queued) = entries.into_iter().next() else {
                continue;
            };
            let location = queued.location();
            let Queued { payload, items, .. } = queued;
            let settled = match payload {
                Payload::InMemory(batch) => self.send_with_retry(&batch, items).await,
                Payload::Stored(location) => match self.read_back(location).await {
                    Ok(bytes) => self.send_stored(bytes, items).await,
                    Err(e) => {
                        self.fail(
                            items,
                            &format!("cannot read the batch back from the queue's log: {e}"),
                        );
                        true
                    }
                },
            };
            if settled {
                self.settle(location);
            }
            self.stats.dequeued(items);
        }
    }

    /// Merges what `queue_batch::collect` took into one request, split to
    /// `max_size`, sends it, and settles every entry in the log once all
    /// of it is settled.
    async fn send_batched(&self, entries: Vec<Queued>, batching: &QueueBatchSettings) {
        let items: usize = entries.iter().map(|q| q.items).sum();
        let locations: Vec<Location> = entries.iter().filter_map(Queued::location).collect();
        let settled = self.send_merged(entries, batching).await;
        if settled {
            for location in locations {
                self.settle(Some(location));
            }
        }
        self.stats.dequeued(items);
    }

    async fn send_merged(&self, entries: Vec<Queued>, batching: &QueueBatchSettings) -> bool {
        let batches = if entries
            .iter()
            .all(|q| matches!(&q.payload, Payload::InMemory(b) if !matches!(b, Batch::Wire(_))))
        {
            let decoded = entries
                .into_iter()
                .filter_map(|q| match q.payload {
                    Payload::InMemory(batch) => Some(batch),
                    Payload::Stored(_) => None,
                })
                .collect();
            queue_batch::merge_decoded(decoded)
        } else {
            // Concatenated protobuf messages are one message whose repeated
            // fields hold both: the bytes joined are one request holding
            // every entry, with nothing decoded.
            let mut joined = bytes::BytesMut::new();
            let mut joined_items = 0;
            for queued in entries {
                joined_items += queued.items;
                match queued.payload {
                    Payload::InMemory(batch) => joined.extend_from_slice(&batch.to_protobuf()),
                    Payload::Stored(location) => match self.read_back(location).await {
                        Ok(bytes) => joined.extend_from_slice(&bytes),
                        Err(e) => {
                            joined_items -= queued.items;
                            self.fail(
                                queued.items,
                                &format!("cannot read the batch back from the queue's log: {e}"),
                            );
                        }
                    },
                }
            }
            if joined.is_empty() {
                return true;
            }
            let joined = joined.freeze();
            // Validated again (not decoded): the parts' record offsets
            // come back with it, for splitting.
            match WireBatch::parse(self.stats.signal, joined) {
                Ok(encoded) => vec![Batch::Wire(encoded.into())],
                Err(e) => {
                    // Every entry was validated when it was queued, or
                    // passed its CRC: a record from an incompatible version.
                    self.fail(
                        joined_items,
                        &format!("a queued batch does not decode: {e}"),
                    );
                    return true;
                }
            }
        };
        for batch in batches {
            let items = batch.item_count();
            let bytes = match &batch {
                Batch::Wire(encoded) => encoded.bytes.len(),
                decoded => encoded_len(decoded),
            };
            let parts = match queue_batch::part_items(batching, items, bytes) {
                None => vec![batch],
                Some(per_part) => queue_batch::split(batch, per_part),
            };
            for part in parts {
                if !self.send_part(&part).await {
                    return false;
                }
            }
        }
        true
    }

    /// Sends one part of a batch.
    async fn send_part(&self, part: &Batch) -> bool {
        self.send_with_retry(part, part.item_count()).await
    }

    /// Sends a batch read back from the log, in its wire form: the
    /// exporter decodes it if it needs to.
    async fn send_stored(&self, bytes: bytes::Bytes, items: usize) -> bool {
        match WireBatch::parse(self.stats.signal, bytes) {
            Ok(wire) => self.send_with_retry(&Batch::Wire(wire.into()), items).await,
            Err(e) => {
                self.fail(items, &format!("a queued record does not decode: {e}"));
                true
            }
        }
    }

    async fn read_back(&self, location: Location) -> std::io::Result<bytes::Bytes> {
        let Some(wal) = self.wal.clone() else {
            return Err(std::io::Error::other("no log"));
        };
        match tokio::task::spawn_blocking(move || wal.read(location)).await {
            Ok(read) => read.map(Into::into),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Records in the log that a batch is done with (delivered, or failed
    /// and counted), so it is not sent again after a restart.
    fn settle(&self, location: Option<Location>) {
        if let (Some(wal), Some(location)) = (&self.wal, location)
            && let Err(e) = wal.ack(location.sequence)
        {
            // The batch will be sent again after a restart: a duplicate.
            tracing::warn!(exporter = %self.name, error = %e, "cannot record a delivery in the queue's log");
        }
    }

    /// Sends until delivered or deliberately given up (true), or until the
    /// shutdown deadline cuts it off (false: a logged batch stays queued).
    async fn send_with_retry(&self, batch: &Batch, items: usize) -> bool {
        // An exporter that reads messages gets them decoded here, once
        // for every attempt.
        let batch = match batch {
            Batch::Wire(_) if !self.exporter.reads_wire() => match batch.decoded() {
                Ok(decoded) => decoded,
                Err(e) => {
                    self.fail(items, &format!("a queued batch does not decode: {e}"));
                    return true;
                }
            },
            other => other,
        };
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
                    return true;
                }
                Err(ExportError::Permanent { message }) => {
                    self.fail(items, &format!("permanent error: {message}"));
                    return true;
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
                    return true;
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
                return true;
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
                return true;
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
                    if self.wal.is_some() {
                        tracing::warn!(exporter = %self.name, items, "shutdown deadline reached while retrying; the batch stays in the queue's log");
                        return false;
                    }
                    self.fail(items, &format!("shutdown deadline reached while retrying; last error: {message}"));
                    return true;
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
