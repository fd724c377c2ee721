//! `filelog` receiver: tails files into log records, in the Collector's
//! config shape:
//!
//! ```yaml
//! receivers:
//!   filelog/nginx:
//!     include: [/var/log/nginx/access.log*]
//!     exclude: ["/var/log/nginx/*.gz"]
//!     start_at: end                 # or beginning
//!     storage: /var/lib/sidewatch   # checkpoints survive restarts
//!     multiline: { line_start_pattern: '^\d{4}-\d{2}-\d{2}' }
//!     operators:
//!       - { type: regex_parser, regex: '^(?P<client>\S+) .* (?P<status>\d{3}) ' }
//!       - { type: severity_parser, parse_from: attributes.status, mapping: { error: 5xx } }
//! ```
//!
//! Where things are: `discovery` (globs), `reader` (lines from an open
//! file, max line size), `checkpoint` (fingerprints and the checkpoint
//! file), `multiline`, `field` and `operators` (parsers), `entry` (entries
//! to OTLP), `tailer` (the file set: rotation, new and deleted files).
//! Here: the config, its validation, and the task that polls.

pub mod checkpoint;
pub mod discovery;
pub mod entry;
pub mod field;
pub mod multiline;
pub mod operators;
pub mod reader;
pub mod tailer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::{Receiver, ReceiverContext, StartedReceiver};
use crate::signal::{Batch, Signal};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Files found at start-up without a checkpoint are read from their
    /// end; files that appear later, from their start.
    #[default]
    End,
    Beginning,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this regex begins a new entry.
    pub line_start_pattern: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLogConfig {
    /// Globs of the files to read.
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub start_at: StartAt,
    #[serde(default = "default_poll_interval", with = "crate::config::duration")]
    pub poll_interval: Duration,
    /// Bytes at the start of a file that identify it.
    #[serde(default = "default_fingerprint_size")]
    pub fingerprint_size: usize,
    /// Bytes per entry; the rest of a longer line is dropped and counted.
    #[serde(default = "default_max_log_size")]
    pub max_log_size: usize,
    /// Entries per batch handed to the pipeline.
    #[serde(default = "default_max_batch_size")]
    pub max_batch_size: usize,
    /// A last line without newline (or a multiline entry) is emitted once
    /// the file has not grown for this long.
    #[serde(
        default = "default_force_flush_period",
        with = "crate::config::duration"
    )]
    pub force_flush_period: Duration,
    #[serde(default = "default_true")]
    pub include_file_name: bool,
    #[serde(default)]
    pub include_file_path: bool,
    /// Directory of the checkpoint file; without it, a restart reads per
    /// `start_at` again.
    pub storage: Option<PathBuf>,
    pub multiline: Option<MultilineConfig>,
    #[serde(default)]
    pub operators: Vec<operators::OperatorConfig>,
}

fn default_poll_interval() -> Duration {
    Duration::from_millis(200)
}
fn default_fingerprint_size() -> usize {
    1000
}
fn default_max_log_size() -> usize {
    1024 * 1024
}
fn default_max_batch_size() -> usize {
    1000
}
fn default_force_flush_period() -> Duration {
    Duration::from_millis(500)
}
fn default_true() -> bool {
    true
}

/// The validated config with its compiled parts.
#[derive(Debug, Clone)]
pub struct FileLogPlan {
    pub config: FileLogConfig,
    pub globs: discovery::Globs,
    pub multiline: Option<regex::bytes::Regex>,
    pub operators: Vec<operators::Operator>,
}

impl FileLogConfig {
    /// Compiles the config, or lists every problem as (path of keys under
    /// the receiver, message).
    pub fn compile(self) -> Result<FileLogPlan, Vec<(Vec<KeyOrIndex>, String)>> {
        let mut errors: Vec<(Vec<KeyOrIndex>, String)> = Vec::new();
        if self.include.is_empty() {
            errors.push((
                vec![KeyOrIndex::Key("include".into())],
                "no file to read: expected at least one glob".into(),
            ));
        }
        for (field, value) in [
            ("fingerprint_size", self.fingerprint_size),
            ("max_log_size", self.max_log_size),
            ("max_batch_size", self.max_batch_size),
        ] {
            if value == 0 {
                errors.push((
                    vec![KeyOrIndex::Key(field.into())],
                    "must be at least 1".into(),
                ));
            }
        }
        if self.poll_interval.is_zero() {
            errors.push((
                vec![KeyOrIndex::Key("poll_interval".into())],
                "must be above 0".into(),
            ));
        }
        let globs = match discovery::Globs::new(&self.include, &self.exclude) {
            Ok(globs) => Some(globs),
            Err(bad) => {
                for (field, i, message) in bad {
                    errors.push((
                        vec![KeyOrIndex::Key(field.into()), KeyOrIndex::Index(i)],
                        message,
                    ));
                }
                None
            }
        };
        let multiline = match &self.multiline {
            None => None,
            Some(m) => match regex::bytes::Regex::new(&m.line_start_pattern) {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.push((
                        vec![
                            KeyOrIndex::Key("multiline".into()),
                            KeyOrIndex::Key("line_start_pattern".into()),
                        ],
                        crate::config::one_line(&e),
                    ));
                    None
                }
            },
        };
        let operators = match operators::compile(&self.operators) {
            Ok(ops) => ops,
            Err(bad) => {
                for (i, field, message) in bad {
                    let mut path = vec![KeyOrIndex::Key("operators".into()), KeyOrIndex::Index(i)];
                    path.extend(field.split('.').map(|k| KeyOrIndex::Key(k.into())));
                    errors.push((path, message));
                }
                Vec::new()
            }
        };
        match globs {
            Some(globs) if errors.is_empty() => Ok(FileLogPlan {
                config: self,
                globs,
                multiline,
                operators,
            }),
            _ => Err(errors),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrIndex {
    Key(String),
    Index(usize),
}

pub struct FileLogReceiver {
    plan: FileLogPlan,
}

impl FileLogReceiver {
    pub fn new(plan: FileLogPlan) -> Self {
        FileLogReceiver { plan }
    }
}

#[async_trait::async_trait]
impl Receiver for FileLogReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let Some(consumer) = context.consumers.logs.clone() else {
            return Ok(StartedReceiver {
                addresses: Vec::new(),
                tasks: Vec::new(),
            });
        };
        if let Some(dir) = &self.plan.config.storage {
            std::fs::create_dir_all(dir).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot create the storage directory {}: {e}", dir.display()),
                )
            })?;
        }
        let telemetry = context.telemetry.clone();
        let id = context.id.clone();
        let stats = telemetry.receiver(&id, "file", Signal::Logs);
        let counter = |family, kind, help| telemetry.component_counter(&id, family, kind, help);
        let counters = tailer::Counters {
            truncated: counter(
                "filelog_truncated_entries_total",
                "counter",
                "Entries longer than max_log_size, cut there.",
            ),
            parse_failed: counter(
                "filelog_parse_failures_total",
                "counter",
                "Entries an operator could not parse (sent on raw unless on_error: drop).",
            ),
            dropped: counter(
                "filelog_dropped_entries_total",
                "counter",
                "Entries dropped by on_error: drop.",
            ),
            rotations: counter(
                "filelog_truncations_total",
                "counter",
                "Files found truncated or replaced in place (copy-truncate rotation).",
            ),
            open_files: counter("filelog_open_files", "gauge", "Files being read now."),
        };
        let refused = counter(
            "filelog_refused_batches_total",
            "counter",
            "Batches the pipeline refused (full queues); read again at the next poll.",
        );
        let poll_interval = self.plan.config.poll_interval;
        let mut tailer = tailer::Tailer::new(self.plan, &id, counters);
        let shutdown = context.shutdown.clone();
        // File reads are local and bounded (one buffer per batch), so they
        // run on this task instead of a blocking pool.
        let task = tokio::spawn(async move {
            loop {
                tailer.discover(Instant::now());
                'files: for index in 0..tailer.file_count() {
                    loop {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        let Some(batch) =
                            tailer.next_batch(index, Instant::now(), SystemTime::now())
                        else {
                            break;
                        };
                        let items = batch.entries.len();
                        if items > 0 {
                            let request = entry::to_request(batch.entries);
                            if let Err(e) = consumer.consume(Batch::Logs(Arc::new(request))).await {
                                refused.add(1);
                                tracing::debug!(receiver = %id, error = %e, "pipeline refused a batch; reading it again next poll");
                                break 'files;
                            }
                            stats
                                .accepted_items
                                .fetch_add(items as u64, Ordering::Relaxed);
                        }
                        tailer.commit(index, batch.end);
                        if !batch.more {
                            break;
                        }
                    }
                }
                tailer.close_missing();
                tokio::select! {
                    _ = tokio::time::sleep(poll_interval) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
        Ok(StartedReceiver {
            addresses: Vec::new(),
            tasks: vec![task],
        })
    }
}

impl crate::components::compiled::CompiledReceiver for FileLogPlan {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(FileLogReceiver::new(self.clone()))
    }
}

/// The registry's compile step for `filelog`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    let config: FileLogConfig = decoder.decode(value, path)?;
    match config.compile() {
        Ok(plan) => Some(std::sync::Arc::new(plan)),
        Err(errors) => {
            for (keys, message) in errors {
                let at = keys.into_iter().fold(path.clone(), |at, k| match k {
                    KeyOrIndex::Key(k) => at.key(k),
                    KeyOrIndex::Index(i) => at.index(i),
                });
                decoder.error(at, message);
            }
            None
        }
    }
}
