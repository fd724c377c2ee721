//! The store on disk: `snapshot.bin`, the whole engine (labels, chunks,
//! open rollup steps) rewritten every `snapshot_interval` to a temporary
//! file, fsynced and renamed over the old one; and a write-ahead log
//! (`exporters::wal`, the persistent queue's log) of the sample groups
//! added since. Opening loads the snapshot and replays the log; a sample
//! already in the snapshot is refused as out of order, so a crash between
//! the rename and the log's acknowledgement replays nothing twice.
//!
//! Snapshot layout (little endian): magic `SWS1`, series count (u32),
//! then per series its labels (count u16, then length-prefixed names and
//! values), last time (i64), last value (f64), and per tier its sealed
//! chunks and head (count u32 of chunks, each width u8, rows u32, byte
//! length u32, bytes) and its open step (flag u8, then 7 numbers); a CRC32
//! of all of it ends the file. A snapshot that fails its CRC is refused
//! with an error naming the file, never half-loaded.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::chunk::Chunk;
use super::engine::{Engine, Labels, Series, TierData};
use super::tier::OpenBucket;

const MAGIC: &[u8; 4] = b"SWS1";
pub const SNAPSHOT: &str = "snapshot.bin";

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.extend_from_slice(&(labels.len() as u16).to_le_bytes());
    for (k, v) in labels {
        put_str(out, k);
        put_str(out, v);
    }
}

fn put_chunk(out: &mut Vec<u8>, chunk: &Chunk) {
    let parts = chunk.to_parts();
    out.push(parts.width);
    out.extend_from_slice(&parts.count.to_le_bytes());
    out.extend_from_slice(&(parts.bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(parts.bytes);
}

/// A cursor that fails, instead of panicking, on a short input.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    pub fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    pub fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes)
    }
    pub fn f64(&mut self) -> Option<f64> {
        self.i64().map(|v| f64::from_bits(v as u64))
    }
    pub fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        self.take(n)
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
    }
    pub fn labels(&mut self) -> Option<Labels> {
        let n = self.u16()?;
        (0..n).map(|_| Some((self.str()?, self.str()?))).collect()
    }
    fn chunk(&mut self) -> Option<Chunk> {
        let width = self.u8()? as usize;
        let count = self.u32()?;
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        if width == 0 || width > 5 {
            return None;
        }
        Some(Chunk::from_bytes(width, count, bytes))
    }
}

/// The engine as snapshot bytes.
pub fn encode(engine: &Engine) -> Vec<u8> {
    let mut out = Vec::with_capacity(engine.chunk_bytes() + 64 * engine.series_count());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(engine.series_count() as u32).to_le_bytes());
    for series in engine.series.iter().flatten() {
        put_labels(&mut out, &series.labels);
        out.extend_from_slice(&series.last_time.to_le_bytes());
        out.extend_from_slice(&series.last_value.to_bits().to_le_bytes());
        for data in &series.tiers {
            out.extend_from_slice(&(data.sealed.len() as u32 + 1).to_le_bytes());
            for chunk in data.sealed.iter().chain(std::iter::once(&data.head)) {
                put_chunk(&mut out, chunk);
            }
            match &data.open {
                None => out.push(0),
                Some(o) => {
                    out.push(1);
                    out.extend_from_slice(&o.bucket.to_le_bytes());
                    out.extend_from_slice(&o.last_time.to_le_bytes());
                    for v in [o.min, o.max, o.sum, o.count, o.last] {
                        out.extend_from_slice(&v.to_bits().to_le_bytes());
                    }
                }
            }
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Loads snapshot bytes into `engine` (which holds the configured tiers).
pub fn decode(engine: &mut Engine, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 12 || &bytes[..4] != MAGIC {
        return Err("not a sidewatch store snapshot (bad magic)".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != crc {
        return Err("snapshot checksum mismatch".into());
    }
    let mut c = Cursor::new(&body[4..]);
    let short = || "snapshot ends early".to_string();
    let count = c.u32().ok_or_else(short)?;
    let tiers = engine.tiers().to_vec();
    for _ in 0..count {
        let labels = c.labels().ok_or_else(short)?;
        let last_time = c.i64().ok_or_else(short)?;
        let last_value = c.f64().ok_or_else(short)?;
        let mut datas = Vec::new();
        for tier in &tiers {
            let chunks = c.u32().ok_or_else(short)?;
            let mut sealed = VecDeque::new();
            for _ in 0..chunks {
                sealed.push_back(c.chunk().ok_or_else(short)?);
            }
            let head = sealed
                .pop_back()
                .unwrap_or_else(|| Chunk::new(tier.width()));
            if head.width() != tier.width() {
                return Err("snapshot was written with other retention tiers".into());
            }
            let open = match c.u8().ok_or_else(short)? {
                0 => None,
                _ => Some(OpenBucket {
                    bucket: c.i64().ok_or_else(short)?,
                    last_time: c.i64().ok_or_else(short)?,
                    min: c.f64().ok_or_else(short)?,
                    max: c.f64().ok_or_else(short)?,
                    sum: c.f64().ok_or_else(short)?,
                    count: c.f64().ok_or_else(short)?,
                    last: c.f64().ok_or_else(short)?,
                }),
            };
            datas.push(TierData { sealed, head, open });
        }
        engine.restore_series(Series {
            labels: Arc::new(labels),
            tiers: datas,
            last_time,
            last_value,
        });
    }
    Ok(())
}

/// Writes `bytes` as the snapshot in `dir`: temporary file, fsync,
/// rename, fsync of the directory, so a crash leaves the old or the new.
pub fn write_snapshot(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = dir.join("snapshot.tmp");
    {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, dir.join(SNAPSHOT))?;
    fs::File::open(dir)?.sync_all()
}

/// One sample in a write-ahead record.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub time: i64,
    pub value: f64,
    /// Add to the series' last value (an OTLP delta).
    pub accumulate: bool,
}

/// A write-ahead record: samples grouped by series.
pub fn encode_record(groups: &[(Labels, Vec<Sample>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (labels, samples) in groups {
        put_labels(&mut out, labels);
        out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        for s in samples {
            out.extend_from_slice(&s.time.to_le_bytes());
            out.extend_from_slice(&s.value.to_bits().to_le_bytes());
            out.push(u8::from(s.accumulate));
        }
    }
    out
}

pub fn decode_record(bytes: &[u8]) -> Option<Vec<(Labels, Vec<Sample>)>> {
    let mut c = Cursor::new(bytes);
    let mut groups = Vec::new();
    while !c.done() {
        let labels = c.labels()?;
        let n = c.u32()?;
        let mut samples = Vec::new();
        for _ in 0..n {
            samples.push(Sample {
                time: c.i64()?,
                value: c.f64()?,
                accumulate: c.u8()? != 0,
            });
        }
        groups.push((labels, samples));
    }
    Some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tier::Tier;

    #[test]
    fn snapshot_roundtrips_and_appends_continue() {
        let mut e = Engine::new(Tier::defaults(), 100, u64::MAX);
        let l: Labels = vec![("__name__".into(), "m".into())];
        for i in 0..300 {
            e.append(&l, i * 10_000, (i % 17) as f64, false);
        }
        let bytes = encode(&e);
        let mut back = Engine::new(Tier::defaults(), 100, u64::MAX);
        decode(&mut back, &bytes).unwrap();
        back.append(&l, 300 * 10_000, 1.0, false);
        e.append(&l, 300 * 10_000, 1.0, false);
        for tier in 0..4 {
            assert_eq!(
                back.points(0, tier, 0, i64::MAX),
                e.points(0, tier, 0, i64::MAX)
            );
        }
    }

    #[test]
    fn corrupt_snapshot_is_refused() {
        let e = Engine::new(Tier::defaults(), 100, u64::MAX);
        let mut bytes = encode(&e);
        bytes[5] ^= 1;
        let mut back = Engine::new(Tier::defaults(), 100, u64::MAX);
        assert_eq!(
            decode(&mut back, &bytes).unwrap_err(),
            "snapshot checksum mismatch"
        );
    }

    #[test]
    fn record_roundtrips_and_short_input_is_none() {
        let groups = vec![(
            vec![("a".to_string(), "b".to_string())],
            vec![Sample {
                time: 5,
                value: 1.5,
                accumulate: true,
            }],
        )];
        let bytes = encode_record(&groups);
        assert_eq!(decode_record(&bytes).unwrap(), groups);
        assert!(decode_record(&bytes[..bytes.len() - 1]).is_none());
    }
}
