//! State a component persists, written by its runtime instead of by the
//! component: the component hands over the bytes under its lock (cheap),
//! the runtime writes them after releasing it (the fsync is the slow part),
//! so requests on the pipeline never wait for the disk.
//!
//! The write is atomic: a temporary file next to the target, fsync, rename
//! over the target, fsync of the directory; a crash leaves the old state or
//! the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

/// One complete state file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl StateWrite {
    /// Writes the file atomically; blocks on the disk (call it off the
    /// async runtime's threads).
    pub fn write(&self) -> std::io::Result<()> {
        write_atomically(&self.path, &self.bytes)
    }
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.json");
        for text in ["first", "second, longer than the first"] {
            StateWrite {
                path: path.clone(),
                bytes: text.as_bytes().to_vec(),
            }
            .write()
            .unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        }
        assert!(!path.with_extension("tmp").exists());
    }
}
