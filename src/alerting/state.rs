//! The alert state file: every pending, firing and recently resolved
//! instance, written atomically (temporary file, fsync, rename) after each
//! evaluation that changed something, and read back at start-up, so a
//! restart neither re-notifies nor forgets a pending `for`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::engine::Instance;

pub type Snapshot = BTreeMap<String, BTreeMap<String, Instance>>;

pub fn save(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let text = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// A missing file is an empty state; a corrupt one is reported and
/// treated as empty, so a bad file never stops the collector.
pub fn load(path: &Path) -> Snapshot {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::error!(path = %path.display(), error = %e, "alert state file is corrupt; starting with no alert state");
            Snapshot::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::new(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the alert state file; starting with no alert state");
            Snapshot::new()
        }
    }
}
