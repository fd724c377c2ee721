//! Writes the state files components hand over (`Processor::take_state_write`)
//! outside the component's lock, on a blocking thread, in the order the
//! states were taken: a slow write can never put an older state over a
//! newer one, and two writes of one component never overlap. A write that
//! fails (a full disk) is tried again at the next call, unless a newer
//! state has come meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::processors::state_write::StateWrite;

/// A state file numbered in the order it was taken from its component.
#[derive(Clone)]
pub(crate) struct Numbered {
    number: u64,
    write: StateWrite,
}

#[derive(Default)]
pub(crate) struct StateWriter {
    next: AtomicU64,
    /// The number of the last state written, and the newest state whose
    /// write failed; held while writing, so writes never overlap.
    written: Arc<Mutex<Written>>,
}

#[derive(Default)]
struct Written {
    number: u64,
    failed: Option<Numbered>,
}

impl StateWriter {
    /// Numbers a state; call it under the component's lock, where the
    /// state was taken, so numbers follow the states' order.
    pub(crate) fn number(&self, write: StateWrite) -> Numbered {
        Numbered {
            number: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            write,
        }
    }

    /// Writes `writes` (atomically, each) and returns once they are on
    /// disk; a state older than one already written is skipped.
    pub(crate) async fn write(&self, writes: Vec<Numbered>, component: &str) {
        let written = self.written.clone();
        // Nothing new and nothing to retry. `try_lock`: never wait on the
        // async runtime for a write in progress on a blocking thread.
        let idle = written
            .try_lock()
            .map(|w| w.failed.is_none())
            .unwrap_or(false);
        if writes.is_empty() && idle {
            return;
        }
        let component = component.to_string();
        let task = tokio::task::spawn_blocking(move || {
            let mut written = written.lock().unwrap_or_else(|e| e.into_inner());
            // A newer state replaces a failed one; without one, retry it.
            let retry = written.failed.take().filter(|_| writes.is_empty());
            for numbered in retry.into_iter().chain(writes) {
                if numbered.number <= written.number {
                    continue;
                }
                match numbered.write.write() {
                    Ok(()) => written.number = numbered.number,
                    Err(e) => {
                        tracing::error!(component = %component, path = %numbered.write.path.display(), error = %e, "cannot save state; trying again at the next tick");
                        written.failed = Some(numbered);
                    }
                }
            }
        });
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the state writer task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_older_state_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let writer = StateWriter::default();
        let state = |text: &str| StateWrite {
            path: path.clone(),
            bytes: text.as_bytes().to_vec(),
        };
        let older = writer.number(state("older"));
        let newer = writer.number(state("newer"));
        writer.write(vec![newer], "test").await;
        writer.write(vec![older], "test").await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "newer");
    }

    #[tokio::test]
    async fn a_failed_write_is_tried_again_until_a_newer_state_comes() {
        let dir = tempfile::tempdir().unwrap();
        // The directory cannot be created while a file has its name.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, "").unwrap();
        let path = blocked.join("state.json");
        let writer = StateWriter::default();
        let state = |text: &str| StateWrite {
            path: path.clone(),
            bytes: text.as_bytes().to_vec(),
        };
        writer
            .write(vec![writer.number(state("first"))], "test")
            .await;
        assert!(!path.exists());
        std::fs::remove_file(&blocked).unwrap();
        writer.write(Vec::new(), "test").await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        std::fs::remove_dir_all(&blocked).unwrap();
        std::fs::write(&blocked, "").unwrap();
        writer
            .write(vec![writer.number(state("second"))], "test")
            .await;
        std::fs::remove_file(&blocked).unwrap();
        writer
            .write(vec![writer.number(state("third"))], "test")
            .await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third");
    }
}
