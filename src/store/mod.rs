//! The embedded time-series store behind the `store` exporter and the
//! query API.
//!
//! - `chunk`: the Gorilla-style compressed chunk (timestamps and floats);
//! - `tier`: retention tiers and the per-step rollup (min/max/sum/count/last);
//! - `engine`: series, postings index, tiers, caps (pure, no I/O);
//! - `ingest`: OTLP metrics as samples, with the Prometheus exporter's naming;
//! - `persist`: snapshot file and write-ahead records;
//! - `promql`: PromQL evaluation over the engine (parsing by `promql-parser`).
//!
//! [`Store`] ties the engine to its directory: every append goes to the
//! write-ahead log (durable per its fsync policy) before the engine, under
//! one lock, so a snapshot never acknowledges a record it does not hold.

pub mod chunk;
pub mod engine;
pub mod ingest;
pub mod persist;
pub mod promql;
pub mod tier;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::exporters::wal::{Fsync, Wal};
use engine::{Counts, Engine};
use tier::Tier;

/// Segment size of the store's write-ahead log.
const WAL_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

struct Inner {
    engine: Engine,
    /// Log records applied since the last snapshot.
    pending: Vec<u64>,
}

pub struct Store {
    dir: PathBuf,
    wal: Wal,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

/// What opening found on disk.
#[derive(Debug, Default)]
pub struct Opened {
    pub series: usize,
    pub replayed_records: usize,
    pub corrupt_bytes: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir`: loads the snapshot, replays
    /// the log.
    pub fn open(
        dir: &Path,
        tiers: Vec<Tier>,
        max_series: usize,
        max_bytes: u64,
        fsync: Fsync,
    ) -> Result<(Store, Opened), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut engine = Engine::new(tiers, max_series, max_bytes);
        let snapshot = dir.join(persist::SNAPSHOT);
        match std::fs::read(&snapshot) {
            Ok(bytes) => persist::decode(&mut engine, &bytes)
                .map_err(|e| format!("{}: {e}", snapshot.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", snapshot.display())),
        }
        let wal_dir = dir.join("wal");
        let (wal, recovery) = Wal::open(&wal_dir, fsync, WAL_SEGMENT_BYTES)
            .map_err(|e| format!("cannot open {}: {e}", wal_dir.display()))?;
        let mut pending = Vec::new();
        for location in &recovery.records {
            let payload = wal
                .read(*location)
                .map_err(|e| format!("cannot read {}: {e}", wal_dir.display()))?;
            if let Some(groups) = persist::decode_record(&payload) {
                for (labels, samples) in groups {
                    for s in samples {
                        engine.append(&labels, s.time, s.value, s.accumulate);
                    }
                }
            }
            pending.push(location.sequence);
        }
        let opened = Opened {
            series: engine.series_count(),
            replayed_records: recovery.records.len(),
            corrupt_bytes: recovery.corrupt_bytes,
        };
        Ok((
            Store {
                dir: dir.to_path_buf(),
                wal,
                inner: Mutex::new(Inner { engine, pending }),
            },
            opened,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs and applies `groups`; when this returns Ok the samples are as
    /// durable as the fsync policy makes them.
    pub fn append(&self, groups: &ingest::Groups) -> std::io::Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let owned: Vec<_> = groups.iter().map(|(l, s)| (l.clone(), s.clone())).collect();
        let payload = persist::encode_record(&owned);
        let mut inner = self.lock();
        let location = self.wal.append(&payload)?;
        for (labels, samples) in groups {
            for s in samples {
                inner.engine.append(labels, s.time, s.value, s.accumulate);
            }
        }
        inner.pending.push(location.sequence);
        Ok(())
    }

    /// Applies retention, writes the snapshot, then drops the log records
    /// it covers. Returns the snapshot's size in bytes.
    pub fn snapshot(&self) -> std::io::Result<usize> {
        let (bytes, covered) = {
            let mut inner = self.lock();
            inner.engine.enforce_retention();
            let bytes = persist::encode(&inner.engine);
            (bytes, std::mem::take(&mut inner.pending))
        };
        if let Err(e) = persist::write_snapshot(&self.dir, &bytes) {
            // Not covered after all: keep the records for the next try.
            let mut inner = self.lock();
            let mut back = covered;
            back.append(&mut inner.pending);
            inner.pending = back;
            return Err(e);
        }
        for sequence in covered {
            self.wal.ack(sequence)?;
        }
        Ok(bytes.len())
    }

    /// Runs `read` on the engine under the lock.
    pub fn read<R>(&self, read: impl FnOnce(&Engine) -> R) -> R {
        read(&self.lock().engine)
    }

    pub fn counts(&self) -> Counts {
        self.lock().engine.counts
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
