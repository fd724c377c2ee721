//! The set of files being read, poll by poll. Synchronous: the receiver's
//! task drives it and hands its batches to the pipeline.
//!
//! Each poll:
//! 1. files already open are checked by their open handle: one that shrank
//!    below its position, or whose first bytes changed, was truncated
//!    (copy-truncate rotation) or replaced: its old fingerprint and
//!    position are kept as a closed checkpoint and it is read from 0;
//! 2. the globs are matched; a path whose (device, inode) is open already
//!    is that file (renamed within the globs, say). Any other path is
//!    opened: if its fingerprint is a file open already (a copy being
//!    made), it waits; if a closed checkpoint matches (a rotated copy, a
//!    file from before a restart), reading resumes there; otherwise it is
//!    read from its start, or from its end on the first poll with
//!    `start_at: end`;
//! 3. every open file is read to its end, batch by batch;
//! 4. a file no glob matched for two polls in a row (renamed away,
//!    deleted) has been read to its end through its handle since; it is
//!    closed and its checkpoint kept.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::checkpoint::{Checkpoint, Fingerprint, Store};
use super::entry::Entry;
use super::field::string_value;
use super::operators::{self, Outcome};
use super::reader::{Position, Reader};
use super::{FileLogPlan, StartAt, multiline};
use crate::telemetry::counters::ComponentCounter;

/// Closed checkpoints kept for files that may come back (rotated copies,
/// files seen before a restart); the oldest go first.
const MAX_CLOSED: usize = 1024;

struct Tracked {
    path: PathBuf,
    file: File,
    identity: (u64, u64),
    fingerprint: Fingerprint,
    position: Position,
    /// Polls in a row in which no glob matched the file.
    missing_polls: u32,
    /// The file's length and since when it has had it.
    idle_since: (u64, Instant),
}

pub struct Counters {
    pub truncated: Arc<ComponentCounter>,
    pub parse_failed: Arc<ComponentCounter>,
    pub dropped: Arc<ComponentCounter>,
    pub rotations: Arc<ComponentCounter>,
    pub open_files: Arc<ComponentCounter>,
}

/// One batch read from one file, to commit once the pipeline has it.
pub struct FileBatch {
    pub entries: Vec<Entry>,
    pub end: Position,
    /// The file has more to read now.
    pub more: bool,
}

pub struct Tailer {
    plan: FileLogPlan,
    files: Vec<Tracked>,
    closed: Vec<Checkpoint>,
    store: Option<Store>,
    first_poll: bool,
    reader: Reader,
    counters: Counters,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl Tailer {
    pub fn new(plan: FileLogPlan, receiver: &str, counters: Counters) -> Tailer {
        let mut store = plan
            .config
            .storage
            .as_ref()
            .map(|dir| Store::new(dir, receiver));
        let closed = store.as_mut().map(Store::load).unwrap_or_default();
        Tailer {
            reader: Reader::new(plan.config.max_log_size),
            plan,
            files: Vec::new(),
            closed,
            store,
            first_poll: true,
            counters,
        }
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Steps 1 and 2: checks open files and finds new ones.
    pub fn discover(&mut self, now: Instant) {
        let size = self.plan.config.fingerprint_size;
        for tracked in &mut self.files {
            tracked.missing_polls += 1;
            let Ok(meta) = tracked.file.metadata() else {
                continue;
            };
            let current = Fingerprint::read(&tracked.file, size).unwrap_or(Fingerprint(Vec::new()));
            let shrank = meta.len() < tracked.position.offset;
            let replaced =
                !tracked.fingerprint.is_empty() && !current.continues(&tracked.fingerprint);
            if shrank || replaced {
                tracing::debug!(path = %tracked.path.display(), "file truncated or replaced; reading it from its start");
                self.counters.rotations.add(1);
                if tracked.position.offset > 0 {
                    remember(
                        &mut self.closed,
                        Checkpoint {
                            fingerprint: tracked.fingerprint.0.clone(),
                            path: tracked.path.clone(),
                            position: tracked.position,
                        },
                    );
                }
                tracked.position = Position::default();
            }
            tracked.fingerprint = current;
        }
        for path in self.plan.globs.find() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let id = identity(&meta);
            if let Some(tracked) = self.files.iter_mut().find(|t| t.identity == id) {
                tracked.missing_polls = 0;
                tracked.path = path;
                continue;
            }
            let Ok(file) = File::open(&path) else {
                tracing::debug!(path = %path.display(), "cannot open a matched file; trying again next poll");
                continue;
            };
            let Ok(fingerprint) = Fingerprint::read(&file, size) else {
                continue;
            };
            if fingerprint.is_empty() {
                // Nothing to know it by yet: look again next poll.
                continue;
            }
            if self.files.iter().any(|t| {
                fingerprint.continues(&t.fingerprint) || t.fingerprint.continues(&fingerprint)
            }) {
                // A copy of a file being read (copy-truncate in progress).
                continue;
            }
            if self.closed.iter().any(|c| {
                c.fingerprint.len() > fingerprint.0.len()
                    && Fingerprint(c.fingerprint.clone()).continues(&fingerprint)
            }) {
                // The start of a known file still being copied: wait until
                // the copy holds the whole fingerprint.
                continue;
            }
            let position = match self
                .closed
                .iter()
                .rposition(|c| fingerprint.continues(&Fingerprint(c.fingerprint.clone())))
            {
                Some(at) => self.closed.remove(at).position,
                None if self.first_poll && self.plan.config.start_at == StartAt::End => Position {
                    offset: meta.len(),
                    skipping: false,
                },
                None => Position::default(),
            };
            tracing::debug!(path = %path.display(), offset = position.offset, "reading file");
            self.files.push(Tracked {
                path,
                file,
                identity: id,
                fingerprint,
                position,
                missing_polls: 0,
                idle_since: (meta.len(), now),
            });
        }
        self.first_poll = false;
        self.counters.open_files.set(self.files.len() as u64);
    }

    /// Step 3, one batch of file `index`; `None` when it has nothing new.
    pub fn next_batch(
        &mut self,
        index: usize,
        now: Instant,
        wall: SystemTime,
    ) -> Option<FileBatch> {
        let config = &self.plan.config;
        let tracked = self.files.get_mut(index)?;
        let length = tracked.file.metadata().ok()?.len();
        if length != tracked.idle_since.0 {
            tracked.idle_since = (length, now);
        }
        let idle = now.duration_since(tracked.idle_since.1) >= config.force_flush_period;
        if length <= tracked.position.offset {
            return None;
        }
        let from = tracked.position;
        let read = match self
            .reader
            .read(&tracked.file, from, config.max_batch_size, idle)
        {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(path = %tracked.path.display(), error = %e, "cannot read file");
                return None;
            }
        };
        let more = read.more;
        let pattern = self.plan.multiline.as_ref();
        let lines = read.lines;
        let (joined, end) = if more && pattern.is_some() {
            let (joined, end) =
                multiline::join(lines.clone(), from, pattern, config.max_log_size, false);
            if joined.is_empty() {
                // One entry longer than a whole batch: send what there is.
                multiline::join(lines, from, pattern, config.max_log_size, true)
            } else {
                (joined, end)
            }
        } else {
            multiline::join(lines, from, pattern, config.max_log_size, idle && !more)
        };
        if end == from {
            return None;
        }
        let observed = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let file_name = tracked
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let mut entries = Vec::with_capacity(joined.len());
        for line in joined {
            if line.truncated {
                self.counters.truncated.add(1);
            }
            let mut entry = Entry {
                body: Some(string_value(
                    String::from_utf8_lossy(&line.text).into_owned(),
                )),
                observed_time_unix_nano: observed,
                ..Default::default()
            };
            if config.include_file_name
                && let Some(name) = &file_name
            {
                super::field::insert(
                    &mut entry.attributes,
                    "log.file.name",
                    string_value(name.clone()),
                );
            }
            if config.include_file_path {
                super::field::insert(
                    &mut entry.attributes,
                    "log.file.path",
                    string_value(tracked.path.to_string_lossy().into_owned()),
                );
            }
            match operators::run(&self.plan.operators, &mut entry) {
                Outcome::Parsed => entries.push(entry),
                Outcome::Failed => {
                    self.counters.parse_failed.add(1);
                    entries.push(entry);
                }
                Outcome::Dropped => {
                    self.counters.parse_failed.add(1);
                    self.counters.dropped.add(1);
                }
            }
        }
        Some(FileBatch { entries, end, more })
    }

    /// Records that the pipeline has everything before `end` of file `index`.
    pub fn commit(&mut self, index: usize, end: Position) {
        if let Some(tracked) = self.files.get_mut(index) {
            tracked.position = end;
        }
        self.save();
    }

    /// Step 4: closes files no glob matched for two polls.
    pub fn close_missing(&mut self) {
        let mut i = 0;
        while i < self.files.len() {
            if self.files[i].missing_polls >= 2 {
                let gone = self.files.remove(i);
                tracing::debug!(path = %gone.path.display(), "file gone from the globs; closed");
                remember(
                    &mut self.closed,
                    Checkpoint {
                        fingerprint: gone.fingerprint.0,
                        path: gone.path,
                        position: gone.position,
                    },
                );
            } else {
                i += 1;
            }
        }
        self.counters.open_files.set(self.files.len() as u64);
        self.save();
    }

    fn save(&mut self) {
        let Some(store) = &mut self.store else {
            return;
        };
        let mut all = self.closed.clone();
        all.extend(
            self.files
                .iter()
                .filter(|t| !t.fingerprint.is_empty())
                .map(|t| Checkpoint {
                    fingerprint: t.fingerprint.0.clone(),
                    path: t.path.clone(),
                    position: t.position,
                }),
        );
        if let Err(e) = store.save(all) {
            tracing::error!(path = %store.path().display(), error = %e, "cannot save filelog checkpoints");
        }
    }
}

fn remember(closed: &mut Vec<Checkpoint>, checkpoint: Checkpoint) {
    closed.retain(|c| c.fingerprint != checkpoint.fingerprint);
    closed.push(checkpoint);
    if closed.len() > MAX_CLOSED {
        closed.remove(0);
    }
}
