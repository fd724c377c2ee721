//! One alert connector's alerts as the alerts API sees them, shared by the
//! two: the pending and firing alerts of the connector's last evaluation
//! (the connector publishes them), and its book of acknowledgements and
//! silences (the API writes it; the connector reads it at each
//! evaluation). The book is saved next to the connector's state file
//! (`alerts.json` -> `alerts.silences.json`), atomically, by the API's
//! request on a blocking thread: never under the connector's lock, so
//! neither evaluations nor the data path wait for the disk. A connector
//! without a state file (and every replay) keeps its book in memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::engine::ActiveAlert;
use super::silences::Book;

#[derive(Debug)]
pub struct LiveAlerts {
    alerts: Mutex<Arc<Vec<ActiveAlert>>>,
    /// Set at the first publish: until then (right after a restart) no
    /// acknowledgement is pruned for want of its alert.
    published: AtomicBool,
    book: Mutex<Book>,
    file: Option<PathBuf>,
    /// Serialises writes; each writes the book as it is when it gets this
    /// lock, so the last one leaves the latest book on disk.
    writing: Mutex<()>,
}

/// Where the book of the connector with `state_file` is kept.
pub fn book_file(state_file: &Path) -> PathBuf {
    state_file.with_extension("silences.json")
}

impl LiveAlerts {
    /// Reads the book from `file` if there is one; a missing file is an
    /// empty book, a corrupt one is reported and treated as empty (a bad
    /// file never stops the collector).
    pub fn new(file: Option<PathBuf>) -> LiveAlerts {
        let book = match &file {
            None => Book::default(),
            Some(path) => load(path),
        };
        LiveAlerts {
            alerts: Mutex::default(),
            published: AtomicBool::new(false),
            book: Mutex::new(book),
            file,
            writing: Mutex::new(()),
        }
    }

    pub fn publish(&self, alerts: Vec<ActiveAlert>) {
        *self.alerts.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(alerts);
        self.published.store(true, Ordering::Release);
    }

    /// The alerts of the last evaluation.
    pub fn alerts(&self) -> Arc<Vec<ActiveAlert>> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prunes the book (expired silences, acknowledgements of alerts no
    /// longer in the episode they were given in) and writes it; blocks on
    /// the disk. Nothing to do without a file.
    pub fn save(&self, now: f64) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let alerts = self.alerts();
            let published = self.published.load(Ordering::Acquire);
            let mut book = self.book();
            book.prune_silences(now);
            if published {
                book.prune_acknowledgements(|fingerprint| {
                    alerts
                        .iter()
                        .find(|a| a.fingerprint == fingerprint)
                        .map(|a| a.episode)
                });
            }
            book.encode()
        };
        crate::processors::state_write::write_atomically(path, &bytes)
    }
}

fn load(path: &Path) -> Book {
    match std::fs::read(path) {
        Ok(bytes) => match Book::decode(&bytes) {
            Ok((book, problems)) => {
                for problem in problems {
                    tracing::error!(path = %path.display(), %problem, "a saved silence is left out");
                }
                book
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "the silences file is corrupt; starting with no silences or acknowledgements");
                Book::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::default(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the silences file; starting with no silences or acknowledgements");
            Book::default()
        }
    }
}
