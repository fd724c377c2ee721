//! Files a config names (certificates, keys, CA bundles, token files): read
//! the same way when `validate` checks them and when `run` uses them, so a
//! file `validate` accepted cannot be refused at start. Each must exist, be
//! a regular file (not a directory or a device that never ends, such as
//! /dev/zero) and hold at most [`MAX_CONFIG_FILE_BYTES`].

use std::io::Read;
use std::path::Path;

/// No certificate bundle or token comes near this; a larger file is a
/// mistake (a log, a disk image) that would otherwise be read whole.
pub const MAX_CONFIG_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The file's bytes, or an error that names it and says what was expected.
pub fn read_small_file(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if metadata.len() > MAX_CONFIG_FILE_BYTES {
        return Err(format!(
            "{shown} is {} bytes: expected at most {MAX_CONFIG_FILE_BYTES} (4 MiB)",
            metadata.len()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // Bounded even if the file grows between the check and the read.
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(format!(
            "{shown} grew past {MAX_CONFIG_FILE_BYTES} bytes (4 MiB) while being read"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_directories_devices_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(
            read_small_file(&missing)
                .unwrap_err()
                .starts_with("cannot read ")
        );
        assert!(
            read_small_file(dir.path())
                .unwrap_err()
                .ends_with("is not a regular file")
        );
        assert!(
            read_small_file(Path::new("/dev/zero"))
                .unwrap_err()
                .ends_with("is not a regular file")
        );
        let large = dir.path().join("large.pem");
        std::fs::write(&large, vec![b'x'; MAX_CONFIG_FILE_BYTES as usize + 1]).unwrap();
        assert!(
            read_small_file(&large)
                .unwrap_err()
                .contains("expected at most 4194304 (4 MiB)")
        );
        let small = dir.path().join("small.pem");
        std::fs::write(&small, b"token").unwrap();
        assert_eq!(read_small_file(&small).unwrap(), b"token");
    }
}
