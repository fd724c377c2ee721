//! Fingerprints and the checkpoint file.
//!
//! A file is known by its fingerprint: its first `fingerprint_size` bytes
//! (fewer while it is shorter). A renamed file keeps its fingerprint, so
//! a rotated `app.log.1` is recognised and not read again; a truncated or
//! replaced file gets a new one and is read from its start. A file that
//! grew past a saved short fingerprint still matches it (the saved bytes
//! are a prefix of the new ones), as the Collector's fingerprints do.
//!
//! The checkpoint file (`<storage>/<receiver>.checkpoints.json`) holds
//! fingerprint, last path and position of every file being read and of
//! the most recently closed ones; it is written (temporary file, rename)
//! after every batch the pipeline accepted, so a killed process resumes
//! exactly after the last accepted line. It is not fsynced per batch: an
//! operating-system crash may lose the last writes and re-read a little.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reader::Position;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub Vec<u8>);

impl Fingerprint {
    pub fn read(file: &std::fs::File, size: usize) -> std::io::Result<Fingerprint> {
        let mut bytes = vec![0; size];
        let mut filled = 0;
        while filled < size {
            match file.read_at(&mut bytes[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bytes.truncate(filled);
        Ok(Fingerprint(bytes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This is the same file as `earlier`, possibly grown since.
    pub fn continues(&self, earlier: &Fingerprint) -> bool {
        !earlier.0.is_empty() && self.0.starts_with(&earlier.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(with = "hex_bytes")]
    pub fingerprint: Vec<u8>,
    pub path: PathBuf,
    #[serde(flatten)]
    pub position: Position,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    format: String,
    files: Vec<Checkpoint>,
}

const FORMAT: &str = "sidewatch.filelog.v1";

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

pub struct Store {
    path: PathBuf,
    last_written: Vec<Checkpoint>,
}

impl Store {
    pub fn new(directory: &Path, receiver: &str) -> Store {
        let name: String = receiver
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Store {
            path: directory.join(format!("{name}.checkpoints.json")),
            last_written: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoints; a missing file is none, a corrupt one is
    /// reported and treated as none (files are then read per `start_at`).
    pub fn load(&mut self) -> Vec<Checkpoint> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot read filelog checkpoints; files are read per start_at");
                return Vec::new();
            }
        };
        match serde_json::from_slice::<File>(&bytes) {
            Ok(file) if file.format == FORMAT => {
                self.last_written = file.files.clone();
                file.files
            }
            Ok(file) => {
                tracing::error!(path = %self.path.display(), format = %file.format, "filelog checkpoints have an unknown format; ignored");
                Vec::new()
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "filelog checkpoints are corrupt; ignored");
                Vec::new()
            }
        }
    }

    /// Writes `files` unless they equal what was last written.
    pub fn save(&mut self, files: Vec<Checkpoint>) -> std::io::Result<()> {
        if files == self.last_written {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&File {
            format: FORMAT.into(),
            files,
        })
        .map_err(std::io::Error::other)?;
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let temporary = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        drop(file);
        std::fs::rename(&temporary, &self.path)?;
        let saved: File = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        self.last_written = saved.files;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_a_grown_file_continues_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path(), "filelog/app");
        let saved = vec![Checkpoint {
            fingerprint: b"abc".to_vec(),
            path: "/var/log/a.log".into(),
            position: Position {
                offset: 42,
                skipping: true,
            },
        }];
        store.save(saved.clone()).unwrap();
        assert!(store.path().ends_with("filelog_app.checkpoints.json"));
        assert_eq!(Store::new(dir.path(), "filelog/app").load(), saved);
        assert!(Fingerprint(b"abcdef".to_vec()).continues(&Fingerprint(b"abc".to_vec())));
        assert!(!Fingerprint(b"abX".to_vec()).continues(&Fingerprint(b"abc".to_vec())));
        assert!(!Fingerprint(b"abc".to_vec()).continues(&Fingerprint(Vec::new())));
    }

    #[test]
    fn a_corrupt_checkpoint_file_is_no_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path(), "filelog");
        std::fs::write(store.path(), b"{ not json").unwrap();
        assert!(store.load().is_empty());
    }
}
