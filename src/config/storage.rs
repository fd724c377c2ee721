//! Where components keep state across restarts (alert state, mined log
//! patterns). A [`StatePath`] from the config yields its path only against
//! a [`Storage`] grant, which the graph builder hands every connector: live
//! runs grant it, replay does not. A stateful component therefore cannot
//! forget replay's clean slate; it never sees a path replay did not grant.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StatePath(PathBuf);

impl StatePath {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StatePath(path.into())
    }

    /// The path, if `storage` grants access to the live state.
    pub fn resolve(&self, storage: Storage) -> Option<&Path> {
        storage.live.then_some(self.0.as_path())
    }
}

/// Whether a graph may read and write the live state files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage {
    live: bool,
}

impl Storage {
    /// A live run: state is restored from and saved to its files.
    pub const LIVE: Storage = Storage { live: true };
    /// A replay or a test: a clean slate, nothing read or written.
    pub const NONE: Storage = Storage { live: false };
}
