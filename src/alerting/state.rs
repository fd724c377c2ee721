//! The alert state file: every pending, firing and recently resolved
//! instance, written atomically (temporary file, fsync, rename) after each
//! evaluation that changed something, and read back at start-up, so a
//! restart neither re-notifies nor forgets a pending `for`. The connector's
//! runtime writes it, outside the connector's lock and before that
//! evaluation's events are delivered.

use std::collections::BTreeMap;
use std::path::Path;

use super::engine::Instance;

pub type Snapshot = BTreeMap<String, BTreeMap<String, Instance>>;

/// The file's bytes for `snapshot`; written with
/// `processors::state_write` (temporary file, fsync, rename).
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    // A map of strings to plain structs: serialising cannot fail.
    serde_json::to_vec(snapshot).unwrap_or_default()
}

pub fn save(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    crate::processors::state_write::write_atomically(path, &encode(snapshot))
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
