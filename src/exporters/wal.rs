//! A write-ahead log on disk for an exporter's persistent queue.
//!
//! Records live in segment files `<first sequence>.wal`, each record
//! `magic | length | crc32 | sequence | payload` (little endian), the CRC
//! over sequence and payload. Acknowledgements go to `acks.log` as
//! `sequence | crc32` pairs; losing one (a crash before the OS wrote it)
//! means a duplicate delivery, never a loss. A segment whose records are all
//! acknowledged is deleted, and the ack log is compacted when it grows.
//!
//! Recovery reads every segment; a torn or bit-flipped record is skipped by
//! scanning for the next magic that starts a record whose CRC holds, so one
//! bad byte costs one record, not the rest of the log. What was skipped is
//! counted and reported to the caller, which logs it; opening never fails
//! because of what is in a record.
//!
//! Group commit: appenders write their record under the log's lock and
//! fsync after releasing it; whoever fsyncs first covers every record
//! written before it, so concurrent appenders share one fsync instead of
//! queueing for one each.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const MAGIC: [u8; 4] = *b"SWL1";
/// magic, length (u32), crc (u32), sequence (u64).
const HEADER: usize = 4 + 4 + 4 + 8;
/// Records larger than this are corruption, not data (receivers cap
/// requests far below it).
const MAX_RECORD: usize = 256 * 1024 * 1024;
const ACK_RECORD: usize = 8 + 4;
const ACKS: &str = "acks.log";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// fsync every record before the client gets its answer: survives
    /// power loss. The default.
    #[default]
    Always,
    /// Leave flushing to the OS: survives a crash of sidewatch (the data
    /// is in the page cache) but not of the machine.
    Never,
}

/// Where a record is: enough to read it back without an index. Queues
/// hold these, not the data, so a long outage costs disk, not memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub sequence: u64,
    /// The segment's first sequence (its file name).
    segment: u64,
    offset: u64,
    length: u32,
}

impl Location {
    /// The size of the record's payload.
    pub fn payload_bytes(&self) -> usize {
        self.length as usize
    }
}

#[derive(Debug, Default)]
pub struct Recovery {
    /// Unacknowledged records, oldest first.
    pub records: Vec<Location>,
    /// Bytes that did not form a valid record.
    pub corrupt_bytes: u64,
    /// Places where a record was unreadable (each lost one record or more).
    pub corrupt_regions: u64,
}

struct Segment {
    path: PathBuf,
    /// Records in it not yet acknowledged.
    live: u64,
}

struct Inner {
    /// Shared with appenders that fsync it after the lock is released.
    active: Arc<File>,
    active_first: u64,
    active_size: u64,
    next_sequence: u64,
    /// First sequence -> segment.
    segments: BTreeMap<u64, Segment>,
    acks: File,
    acks_size: u64,
    /// Acknowledged sequences of segments still on disk, for compaction.
    acked: BTreeSet<u64>,
}

pub struct Wal {
    dir: PathBuf,
    fsync: Fsync,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    /// The highest sequence known to be on the disk (fsync `always`);
    /// its lock is held while one appender fsyncs for the others.
    synced: Mutex<u64>,
}

fn crc(sequence: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sequence.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.wal"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The valid records of one segment as (sequence, offset, payload
/// length), and how much of it was not valid.
fn read_segment(bytes: &[u8]) -> (Vec<(u64, usize, usize)>, u64, u64) {
    let mut records = Vec::new();
    let (mut corrupt_bytes, mut regions) = (0u64, 0u64);
    let mut at = 0usize;
    let mut in_corruption = false;
    while at < bytes.len() {
        if let Some((sequence, payload, next)) = record_at(bytes, at) {
            records.push((sequence, at, payload.len()));
            at = next;
            in_corruption = false;
        } else {
            if !in_corruption {
                regions += 1;
                in_corruption = true;
            }
            corrupt_bytes += 1;
            at += 1;
        }
    }
    (records, corrupt_bytes, regions)
}

fn record_at(bytes: &[u8], at: usize) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(at..at + HEADER)?;
    if header[..4] != MAGIC {
        return None;
    }
    let length = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let expected = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let sequence = u64::from_le_bytes(header[12..20].try_into().ok()?);
    if length > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(at + HEADER..at + HEADER + length)?;
    (crc(sequence, payload) == expected).then_some((sequence, payload, at + HEADER + length))
}

fn read_acks(bytes: &[u8]) -> BTreeSet<u64> {
    bytes
        .chunks_exact(ACK_RECORD)
        .filter_map(|chunk| {
            let sequence = u64::from_le_bytes(chunk[..8].try_into().ok()?);
            let expected = u32::from_le_bytes(chunk[8..].try_into().ok()?);
            (crc(sequence, &[]) == expected).then_some(sequence)
        })
        .collect()
}

fn ack_record(sequence: u64) -> [u8; ACK_RECORD] {
    let mut out = [0u8; ACK_RECORD];
    out[..8].copy_from_slice(&sequence.to_le_bytes());
    out[8..].copy_from_slice(&crc(sequence, &[]).to_le_bytes());
    out
}

impl Wal {
    /// Opens (creating) the log in `dir` and returns what is still to be
    /// delivered. Fails only on I/O errors, never on corrupt content.
    pub fn open(dir: &Path, fsync: Fsync, segment_bytes: u64) -> io::Result<(Wal, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut firsts: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                name.to_str()?.strip_suffix(".wal")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let acked = match fs::read(dir.join(ACKS)) {
            Ok(bytes) => read_acks(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        let mut recovery = Recovery::default();
        let mut segments = BTreeMap::new();
        let mut next_sequence = 1u64;
        for first in firsts {
            let path = segment_path(dir, first);
            if !fs::metadata(&path)?.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a regular file", path.display()),
                ));
            }
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let (records, corrupt, regions) = read_segment(&bytes);
            recovery.corrupt_bytes += corrupt;
            recovery.corrupt_regions += regions;
            drop(bytes);
            let mut live = 0;
            for (sequence, offset, length) in records {
                next_sequence = next_sequence.max(sequence + 1);
                if !acked.contains(&sequence) {
                    live += 1;
                    recovery.records.push(Location {
                        sequence,
                        segment: first,
                        offset: offset as u64,
                        length: length as u32,
                    });
                }
            }
            if live == 0 {
                fs::remove_file(&path)?;
            } else {
                segments.insert(first, Segment { path, live });
            }
        }
        recovery.records.sort_by_key(|l| l.sequence);
        let oldest = segments.keys().next().copied().unwrap_or(next_sequence);
        let acked: BTreeSet<u64> = acked.range(oldest..).copied().collect();
        let (acks, acks_size) = rewrite_acks(dir, &acked)?;
        let active_first = next_sequence;
        let active_path = segment_path(dir, active_first);
        let active = Arc::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&active_path)?,
        );
        segments.insert(
            active_first,
            Segment {
                path: active_path,
                live: 0,
            },
        );
        if fsync == Fsync::Always {
            sync_dir(dir)?;
        }
        let wal = Wal {
            dir: dir.to_path_buf(),
            fsync,
            segment_bytes: segment_bytes.max(1),
            inner: Mutex::new(Inner {
                active,
                active_first,
                active_size: 0,
                next_sequence,
                segments,
                acks,
                acks_size,
                acked,
            }),
            synced: Mutex::new(next_sequence.saturating_sub(1)),
        };
        Ok((wal, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a record, durable per the fsync policy when this returns.
    /// An error (a full disk, say) means the record may not be stored:
    /// the caller must not acknowledge it.
    pub fn append(&self, payload: &[u8]) -> io::Result<Location> {
        let location = self.write(payload)?;
        if self.fsync == Fsync::Always {
            self.sync_through(location.sequence)?;
        }
        Ok(location)
    }

    /// Makes every record up to `sequence` durable, with one fsync for
    /// all the appenders waiting here.
    fn sync_through(&self, sequence: u64) -> io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= sequence {
            // Another appender's fsync covered this record.
            return Ok(());
        }
        // Records in older segments were synced when the log rolled, so
        // the active segment is the only one to sync.
        let (active, written) = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            (inner.active.clone(), inner.next_sequence - 1)
        };
        active.sync_data()?;
        *synced = written;
        Ok(())
    }

    /// Writes a record without fsync.
    fn write(&self, payload: &[u8]) -> io::Result<Location> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.active_size >= self.segment_bytes {
            self.roll(&mut inner)?;
        }
        let sequence = inner.next_sequence;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&MAGIC);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc(sequence, payload).to_le_bytes());
        record.extend_from_slice(&sequence.to_le_bytes());
        record.extend_from_slice(payload);
        if let Err(e) = (&*inner.active).write_all(&record) {
            // Cut off a partial record; if even that fails, recovery skips
            // it by its CRC.
            let size = inner.active_size;
            let _ = inner.active.set_len(size);
            return Err(e);
        }
        let location = Location {
            sequence,
            segment: inner.active_first,
            offset: inner.active_size,
            length: payload.len() as u32,
        };
        inner.active_size += record.len() as u64;
        inner.next_sequence += 1;
        let first = inner.active_first;
        if let Some(segment) = inner.segments.get_mut(&first) {
            segment.live += 1;
        }
        Ok(location)
    }

    /// Reads a record back, checking it is still the one written there
    /// (an error if the disk has damaged it since).
    pub fn read(&self, location: Location) -> io::Result<Vec<u8>> {
        let file = File::open(segment_path(&self.dir, location.segment))?;
        let mut record = vec![0u8; HEADER + location.length as usize];
        file.read_exact_at(&mut record, location.offset)?;
        match record_at(&record, 0) {
            Some((sequence, _, _)) if sequence == location.sequence => {
                record.drain(..HEADER);
                Ok(record)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record {} in the queue's log is damaged", location.sequence),
            )),
        }
    }

    fn roll(&self, inner: &mut Inner) -> io::Result<()> {
        let first = inner.next_sequence;
        let path = segment_path(&self.dir, first);
        let active = Arc::new(OpenOptions::new().create(true).append(true).open(&path)?);
        if self.fsync == Fsync::Always {
            // Appenders of the old segment may still wait for their fsync:
            // done here, before it stops being the active one.
            inner.active.sync_data()?;
            sync_dir(&self.dir)?;
        }
        let previous = inner.active_first;
        inner.active = active;
        inner.active_first = first;
        inner.active_size = 0;
        inner.segments.insert(first, Segment { path, live: 0 });
        if previous != first && inner.segments.get(&previous).is_some_and(|s| s.live == 0) {
            self.remove_segment(inner, previous)?;
        }
        Ok(())
    }

    /// Marks a record delivered (or deliberately dropped); deletes its
    /// segment once nothing in it is live.
    pub fn ack(&self, sequence: u64) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(first) = inner
            .segments
            .range(..=sequence)
            .next_back()
            .map(|(k, _)| *k)
        else {
            return Ok(());
        };
        if sequence >= inner.next_sequence || !inner.acked.insert(sequence) {
            return Ok(());
        }
        let active_first = inner.active_first;
        let segment = inner.segments.get_mut(&first).expect("found above");
        segment.live = segment.live.saturating_sub(1);
        let empty = segment.live == 0 && first != active_first;
        inner.acks.write_all(&ack_record(sequence))?;
        inner.acks_size += ACK_RECORD as u64;
        if empty {
            self.remove_segment(&mut inner, first)?;
        }
        // Keep the ack log near the size of what is still live.
        if inner.acks_size > 1024 * 1024
            && inner.acks_size > 4 * (inner.acked.len() * ACK_RECORD) as u64
        {
            let (acks, size) = rewrite_acks(&self.dir, &inner.acked)?;
            inner.acks = acks;
            inner.acks_size = size;
        }
        Ok(())
    }

    fn remove_segment(&self, inner: &mut Inner, first: u64) -> io::Result<()> {
        let Some(segment) = inner.segments.remove(&first) else {
            return Ok(());
        };
        fs::remove_file(&segment.path)?;
        let end = inner
            .segments
            .range(first..)
            .next()
            .map(|(k, _)| *k)
            .unwrap_or(u64::MAX);
        let stale: Vec<u64> = inner.acked.range(first..end).copied().collect();
        for sequence in stale {
            inner.acked.remove(&sequence);
        }
        Ok(())
    }

    /// Records appended and not yet acknowledged.
    pub fn live(&self) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.segments.values().map(|s| s.live).sum()
    }
}

/// Writes `acked` to a fresh ack log (atomically, by rename) and returns it
/// open for appending.
fn rewrite_acks(dir: &Path, acked: &BTreeSet<u64>) -> io::Result<(File, u64)> {
    let tmp = dir.join("acks.log.tmp");
    let mut bytes = Vec::with_capacity(acked.len() * ACK_RECORD);
    for sequence in acked {
        bytes.extend_from_slice(&ack_record(*sequence));
    }
    {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
    }
    fs::rename(&tmp, dir.join(ACKS))?;
    let file = OpenOptions::new().append(true).open(dir.join(ACKS))?;
    Ok((file, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn payload(i: u64) -> Vec<u8> {
        format!("record {i} ")
            .repeat((i % 7 + 1) as usize)
            .into_bytes()
    }

    #[test]
    fn unacknowledged_records_survive_a_reopen_and_acked_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, recovery) = Wal::open(dir.path(), Fsync::Never, 200).unwrap();
        assert!(recovery.records.is_empty());
        let sequences: Vec<u64> = (0..20)
            .map(|i| wal.append(&payload(i)).unwrap().sequence)
            .collect();
        assert_eq!(sequences, (1..=20).collect::<Vec<_>>());
        for s in 1..=15 {
            wal.ack(s).unwrap();
        }
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert!(files < 8, "acked segments are deleted ({files} files)");
        drop(wal);
        let (wal, recovery) = Wal::open(dir.path(), Fsync::Never, 200).unwrap();
        let left: Vec<u64> = recovery.records.iter().map(|l| l.sequence).collect();
        assert_eq!(left, [16, 17, 18, 19, 20]);
        assert_eq!(wal.read(recovery.records[0]).unwrap(), payload(15));
        assert_eq!(recovery.corrupt_bytes, 0);
        // Numbering continues after what was recovered.
        assert_eq!(wal.append(b"next").unwrap().sequence, 21);
        for s in 16..=21 {
            wal.ack(s).unwrap();
        }
        assert_eq!(wal.live(), 0);
        drop(wal);
        let (_, recovery) = Wal::open(dir.path(), Fsync::Never, 200).unwrap();
        assert!(recovery.records.is_empty());
    }

    /// 100 trials of random truncation and bit flips: opening never fails,
    /// every record not touched by the damage is recovered intact.
    #[test]
    fn damaged_logs_recover_every_intact_record() {
        let mut rng = StdRng::seed_from_u64(7);
        for trial in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = Wal::open(dir.path(), Fsync::Never, 1 << 20).unwrap();
            let count = 50u64;
            for i in 0..count {
                wal.append(&payload(i)).unwrap();
            }
            drop(wal);
            let segment = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "wal"))
                .unwrap();
            let mut bytes = fs::read(&segment).unwrap();
            let original = bytes.clone();
            let mut damaged = Vec::new();
            if trial % 2 == 0 {
                let cut = rng.random_range(0..bytes.len());
                bytes.truncate(cut);
                damaged.push(cut..original.len());
            } else {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                    damaged.push(at..at + 1);
                }
            }
            fs::write(&segment, &bytes).unwrap();
            let (wal, recovery) = Wal::open(dir.path(), Fsync::Never, 1 << 20)
                .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
            // Which records did the damage leave untouched?
            let (all, _, _) = read_segment(&original);
            let mut offset = 0usize;
            let mut intact = Vec::new();
            for (sequence, _, length) in &all {
                let range = offset..offset + HEADER + length;
                if !damaged
                    .iter()
                    .any(|d| d.start < range.end && range.start < d.end)
                {
                    intact.push(*sequence);
                }
                offset = range.end;
            }
            let recovered: Vec<u64> = recovery.records.iter().map(|l| l.sequence).collect();
            for sequence in &intact {
                assert!(
                    recovered.contains(sequence),
                    "trial {trial}: intact record {sequence} lost"
                );
            }
            for location in &recovery.records {
                let read = wal.read(*location).unwrap();
                assert_eq!(read, payload(location.sequence - 1), "trial {trial}");
            }
            // A cut exactly between two records looks like a shorter log;
            // any other damage is reported.
            let mut boundaries = vec![0usize];
            for (_, _, length) in &all {
                boundaries.push(boundaries.last().unwrap() + HEADER + length);
            }
            let clean_cut = trial % 2 == 0 && boundaries.contains(&bytes.len());
            if recovered.len() < count as usize && !clean_cut {
                assert!(
                    recovery.corrupt_bytes > 0,
                    "trial {trial}: loss not reported"
                );
            }
            // And it keeps working.
            wal.append(b"after").unwrap();
        }
    }

    /// Eight threads appending with fsync `always` across segment rolls
    /// (group commit): every record is there after a reopen, in order.
    #[test]
    fn concurrent_appends_share_fsyncs_and_all_survive() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Fsync::Always, 4096).unwrap();
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                let wal = &wal;
                scope.spawn(move || {
                    for i in 0..50 {
                        wal.append(&payload(t * 1000 + i)).unwrap();
                    }
                });
            }
        });
        assert_eq!(*wal.synced.lock().unwrap(), 400, "every record synced");
        drop(wal);
        let (wal, recovery) = Wal::open(dir.path(), Fsync::Always, 4096).unwrap();
        assert_eq!(recovery.records.len(), 400);
        assert_eq!(recovery.corrupt_bytes, 0);
        let mut read: Vec<Vec<u8>> = recovery
            .records
            .iter()
            .map(|l| wal.read(*l).unwrap())
            .collect();
        let mut written: Vec<Vec<u8>> = (0..8u64)
            .flat_map(|t| (0..50).map(move |i| payload(t * 1000 + i)))
            .collect();
        read.sort();
        written.sort();
        assert_eq!(read, written);
    }

    #[test]
    fn a_full_disk_is_an_error_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Fsync::Always, 1 << 20).unwrap();
        // Point the active segment at /dev/full: every write fails ENOSPC.
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let real = std::mem::replace(&mut wal.inner.lock().unwrap().active, Arc::new(full));
        let error = wal.append(b"lost?").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(28), "ENOSPC: {error}");
        assert_eq!(wal.live(), 0, "nothing counted as stored");
        // With space again, appending works and numbering has no gap.
        wal.inner.lock().unwrap().active = real;
        assert_eq!(wal.append(b"stored").unwrap().sequence, 1);
        assert_eq!(wal.live(), 1);
        drop(wal);
        let (wal, recovery) = Wal::open(dir.path(), Fsync::Always, 1 << 20).unwrap();
        assert_eq!(recovery.records.len(), 1);
        assert_eq!(wal.read(recovery.records[0]).unwrap(), b"stored");
    }

    #[test]
    fn a_record_damaged_after_writing_reads_back_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Fsync::Never, 1 << 20).unwrap();
        let first = wal.append(b"first record").unwrap();
        let second = wal.append(b"second record").unwrap();
        let segment = segment_path(dir.path(), second.segment);
        let mut bytes = fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&segment, &bytes).unwrap();
        assert_eq!(wal.read(first).unwrap(), b"first record");
        let error = wal.read(second).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    }
}
