//! Batching inside an exporter's queue (`sending_queue.batch`), as the
//! Collector's exporterhelper does: a worker that takes an entry out of
//! the queue keeps taking entries until the batch reaches `min_size`,
//! `flush_timeout` has passed since the first, or the queue is closing;
//! then the entries are merged into one request, split to `max_size`.
//!
//! Why here and not in a processor: the entries are already in the queue
//! (with `storage`, in its log) when the client is answered, so forming a
//! batch never holds acknowledged data only in memory. A worker collects
//! while holding the queue's receiver, so one batch forms at a time and
//! the other workers send the batches formed before.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::settings::{QueueBatchSettings, Sizer};
use crate::batching::Pending;
use crate::signal::Batch;

/// Takes entries after `first` until their `size` reaches `min_size`, the
/// flush timeout (counted from now, when `first` was taken) passes, the
/// channel closes, or, once `closing`, the channel has nothing ready.
pub(super) async fn collect<T>(
    first: T,
    receiver: &mut mpsc::Receiver<T>,
    settings: &QueueBatchSettings,
    closing: &CancellationToken,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + settings.flush_timeout;
    let mut total = size(&first);
    let mut entries = vec![first];
    while total < settings.min_size {
        let next = if closing.is_cancelled() {
            // Shutting down: send what is there now, wait for nothing.
            receiver.try_recv().ok()
        } else {
            tokio::select! {
                biased;
                next = tokio::time::timeout_at(deadline, receiver.recv()) => next.ok().flatten(),
                // A closing queue drains without waiting out the timeout.
                _ = closing.cancelled() => receiver.try_recv().ok(),
            }
        };
        let Some(next) = next else {
            break;
        };
        total += size(&next);
        entries.push(next);
    }
    entries
}

/// Items per part when `batch` (of `items` items and `bytes` encoded
/// bytes) must be split to `max_size`; `None` when it fits whole. By
/// bytes, the cut is in proportion to the items, so a part is near
/// `max_size` when items are of similar size.
pub(super) fn part_items(
    settings: &QueueBatchSettings,
    items: usize,
    bytes: usize,
) -> Option<usize> {
    let size = match settings.sizer {
        Sizer::Items => items,
        Sizer::Bytes => bytes,
    };
    if settings.max_size == 0 || size <= settings.max_size || items <= 1 {
        return None;
    }
    Some(match settings.sizer {
        Sizer::Items => settings.max_size,
        Sizer::Bytes => {
            ((items as u128 * settings.max_size as u128) / bytes.max(1) as u128).max(1) as usize
        }
    })
}

/// Cuts `batch` into parts of at most `per_part` items, in order.
pub(super) fn split(batch: Batch, per_part: usize) -> Vec<Batch> {
    let mut pending = Pending::from_batch(batch);
    let mut parts = Vec::new();
    while !pending.is_empty() {
        let part = pending.take_front(per_part);
        if part.is_empty() {
            // Nothing could be cut off (cannot happen for valid data):
            // send the rest whole rather than loop.
            break;
        }
        parts.push(part.into_batch());
    }
    if !pending.is_empty() {
        parts.push(pending.into_batch());
    }
    parts
}

/// Merges decoded batches of one signal into one, in order; a batch that
/// cannot join (another signal: one queue carries one, so never) is
/// returned on its own rather than lost.
pub(super) fn merge_decoded(batches: Vec<Batch>) -> Vec<Batch> {
    let mut batches = batches.into_iter();
    let Some(first) = batches.next() else {
        return Vec::new();
    };
    let mut pending = Pending::from_batch(first);
    let mut apart = Vec::new();
    for batch in batches {
        if let Err(other) = pending.append_batch(batch) {
            apart.push(other.into_batch());
        }
    }
    let mut merged = vec![pending.into_batch()];
    merged.extend(apart);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::tests::{batch_names, traces};
    use std::time::Duration;

    fn settings(min_size: usize, max_size: usize) -> QueueBatchSettings {
        QueueBatchSettings {
            flush_timeout: Duration::from_millis(100),
            min_size,
            max_size,
            sizer: Sizer::Items,
        }
    }

    #[tokio::test]
    async fn collects_until_min_size_or_the_flush_timeout() {
        let (sender, mut receiver) = mpsc::channel::<usize>(16);
        let closing = CancellationToken::new();
        for n in [3, 4, 5, 6] {
            sender.send(n).await.unwrap();
        }
        let first = receiver.recv().await.unwrap();
        let got = collect(first, &mut receiver, &settings(10, 0), &closing, |n| *n).await;
        assert_eq!(got, vec![3, 4, 5], "stops once 10 is reached");
        // One more waiting, then nothing: the timeout sends what is held.
        let first = receiver.recv().await.unwrap();
        let started = tokio::time::Instant::now();
        let got = collect(first, &mut receiver, &settings(10, 0), &closing, |n| *n).await;
        assert_eq!(got, vec![6]);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    /// Closing, it takes what is ready and does not wait for more (the
    /// sender is still open: waiting would be for the flush timeout).
    #[tokio::test]
    async fn a_closing_queue_sends_what_is_ready_at_once() {
        let (sender, mut receiver) = mpsc::channel::<usize>(16);
        let closing = CancellationToken::new();
        sender.send(2).await.unwrap();
        closing.cancel();
        let long = QueueBatchSettings {
            flush_timeout: Duration::from_secs(3600),
            ..settings(100, 0)
        };
        let got = collect(1, &mut receiver, &long, &closing, |n| *n).await;
        assert_eq!(got, vec![1, 2]);
        drop(sender);
    }

    #[test]
    fn splits_to_max_size_by_items_or_in_proportion_to_bytes() {
        assert_eq!(part_items(&settings(5, 10), 10, 1000), None);
        assert_eq!(part_items(&settings(5, 10), 25, 1000), Some(10));
        assert_eq!(part_items(&settings(5, 0), 25, 1000), None);
        let by_bytes = QueueBatchSettings {
            sizer: Sizer::Bytes,
            ..settings(100, 400)
        };
        assert_eq!(part_items(&by_bytes, 100, 1000), Some(40));
        assert_eq!(part_items(&by_bytes, 100, 300), None);
        let batch = Batch::Traces(traces(&[&[7], &[8, 10]]).into());
        let all = batch_names(&batch);
        let parts = split(batch, 10);
        let sizes: Vec<usize> = parts.iter().map(Batch::item_count).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let again: Vec<String> = parts.iter().flat_map(batch_names).collect();
        assert_eq!(again, all);
    }

    #[test]
    fn merging_keeps_every_item_in_order() {
        let first = Batch::Traces(traces(&[&[2]]).into());
        let mut second = traces(&[&[3]]);
        second.resource_spans[0].scope_spans[0].spans[0].name = "second".into();
        let merged = merge_decoded(vec![first, Batch::Traces(second.into())]);
        assert_eq!(merged.len(), 1);
        let names = batch_names(&merged[0]);
        assert_eq!(names.len(), 5);
        assert_eq!(names[2], "second");
    }
}
