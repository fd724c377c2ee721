//! `batch`: groups items into larger batches, by size or after a timeout,
//! as the Collector's batch processor does (same settings and defaults).
//!
//! Items held here have already been acknowledged to the client, so a crash
//! loses them: exporters' own queues are the durable stage. Everything held
//! is flushed on shutdown.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::batching::Pending;
use crate::processors::Processor;
use crate::signal::Batch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Items (spans, data points, log records) that trigger a send.
    pub send_batch_size: usize,
    /// Upper bound on items per batch; 0 means no limit.
    pub send_batch_max_size: usize,
    /// How long the first held item may wait before a send.
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: Duration::from_millis(200),
        }
    }
}

impl BatchConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(format!(
                "send_batch_max_size ({}) is smaller than send_batch_size ({}): expected 0 (no limit) or at least send_batch_size",
                self.send_batch_max_size, self.send_batch_size
            ));
        }
        Ok(())
    }
}

pub struct BatchProcessor {
    config: BatchConfig,
    pending: Option<Pending>,
    pending_items: usize,
    oldest: Option<SystemTime>,
}

impl BatchProcessor {
    pub fn new(config: BatchConfig) -> Self {
        BatchProcessor {
            config,
            pending: None,
            pending_items: 0,
            oldest: None,
        }
    }

    fn emit_all(&mut self, out: &mut Vec<Batch>) {
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        if self.config.send_batch_max_size > 0 {
            while self.pending_items > self.config.send_batch_max_size {
                let front = pending
                    .take_front(self.config.send_batch_max_size)
                    .into_batch();
                // Encoded data is cut at resource boundaries: a part may
                // hold fewer items than the maximum.
                self.pending_items -= front.item_count();
                out.push(front);
            }
        }
        if !pending.is_empty() {
            out.push(pending.into_batch());
        }
        self.pending_items = 0;
        self.oldest = None;
    }
}

impl Processor for BatchProcessor {
    fn process(&mut self, batch: Batch, now: SystemTime, out: &mut Vec<Batch>) {
        let items = batch.item_count();
        if items == 0 {
            return;
        }
        match &mut self.pending {
            None => {
                self.pending = Some(Pending::from_batch(batch));
                self.oldest = Some(now);
            }
            Some(pending) => {
                if let Err(other) = pending.append_batch(batch) {
                    // A pipeline carries one signal, so this cannot happen;
                    // pass it on rather than lose it.
                    out.push(other.into_batch());
                    return;
                }
            }
        }
        self.pending_items += items;
        if self.pending_items >= self.config.send_batch_size {
            self.emit_all(out);
        }
    }

    fn accepts_wire(&self) -> bool {
        true
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some((self.config.timeout / 2).max(Duration::from_millis(5)))
    }

    fn tick(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        let due = self
            .oldest
            .and_then(|oldest| now.duration_since(oldest).ok())
            .is_some_and(|waited| waited >= self.config.timeout);
        if due {
            self.emit_all(out);
        }
    }

    fn flush(&mut self, _now: SystemTime, out: &mut Vec<Batch>) {
        self.emit_all(out);
    }
}

impl crate::components::compiled::CompiledProcessor for BatchConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(BatchProcessor::new(self.clone()))
    }
}

/// The registry's compile step for `batch`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    // Batching by client metadata: sidewatch batches per pipeline only.
    let mut value = value.clone();
    if let Some(mapping) = value.as_mapping_mut() {
        for key in ["metadata_keys", "metadata_cardinality_limit"] {
            if mapping.remove(key).is_some() {
                decoder.warning(
                    path.key(key),
                    format!(
                        "{key} is ignored: sidewatch batches per pipeline, not per client metadata"
                    ),
                );
            }
        }
    }
    let config: BatchConfig = decoder.decode(&value, path)?;
    if let Err(message) = config.validate() {
        decoder.error(path.key("send_batch_max_size"), message);
        return None;
    }
    Some(std::sync::Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::tests::{batch_names as names, traces};

    fn spans(batches: &[Batch]) -> Vec<usize> {
        batches.iter().map(Batch::item_count).collect()
    }

    #[test]
    fn sends_when_size_is_reached_and_splits_at_max() {
        let mut batch = BatchProcessor::new(BatchConfig {
            send_batch_size: 10,
            send_batch_max_size: 12,
            timeout: Duration::from_secs(1),
        });
        let now = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        batch.process(Batch::Traces(traces(&[&[6]]).into()), now, &mut out);
        assert!(out.is_empty());
        batch.process(Batch::Traces(traces(&[&[20]]).into()), now, &mut out);
        assert_eq!(spans(&out), vec![12, 12, 2]);
    }

    fn encoded(
        request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    ) -> Batch {
        use prost::Message;
        let bytes = request.encode_to_vec().into();
        Batch::Wire(
            crate::signal::WireBatch::parse(crate::signal::Signal::Traces, bytes)
                .unwrap()
                .into(),
        )
    }

    #[test]
    fn encoded_and_decoded_batches_join_encoded_in_order() {
        let mut batch = BatchProcessor::new(BatchConfig {
            send_batch_size: 10,
            send_batch_max_size: 10,
            timeout: Duration::from_secs(1),
        });
        let now = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        // Decoded first, then encoded: what is held turns encoded.
        let first = traces(&[&[4]]);
        batch.process(Batch::Traces(first.clone().into()), now, &mut out);
        let mut second = traces(&[&[3, 2]]);
        second.resource_spans[0].scope_spans[0].spans[0].name = "second".into();
        batch.process(encoded(&second), now, &mut out);
        assert!(out.is_empty());
        // 9 held in two resources; 12 more in one. Cuts fall between
        // resources (9), then inside the one too large for a batch (10 + 2).
        let third = traces(&[&[12]]);
        batch.process(Batch::Traces(third.clone().into()), now, &mut out);
        assert!(out.iter().all(|b| matches!(b, Batch::Wire(_))));
        assert_eq!(spans(&out), vec![9, 10, 2]);
        let all: Vec<String> = out.iter().flat_map(names).collect();
        assert_eq!(all.len(), 21);
        assert_eq!(all[9..], names(&Batch::Traces(third.into()))[..]);
        assert_eq!(all[4], "second");
        assert_eq!(all[0], names(&Batch::Traces(first.into()))[0]);
    }

    #[test]
    fn sends_after_timeout_and_flushes_on_shutdown() {
        let mut batch = BatchProcessor::new(BatchConfig {
            send_batch_size: 100,
            send_batch_max_size: 0,
            timeout: Duration::from_secs(1),
        });
        let start = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        batch.process(Batch::Traces(traces(&[&[3]]).into()), start, &mut out);
        batch.tick(start + Duration::from_millis(999), &mut out);
        assert!(out.is_empty());
        batch.tick(start + Duration::from_secs(1), &mut out);
        assert_eq!(spans(&out), vec![3]);
        batch.process(Batch::Traces(traces(&[&[4]]).into()), start, &mut out);
        batch.flush(start, &mut out);
        assert_eq!(spans(&out), vec![3, 4]);
    }
}
