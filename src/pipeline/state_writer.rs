//! Writes the state files components hand over (`Processor::take_state_write`)
//! outside the component's lock, on a blocking thread, in the order the
//! states were taken: a slow write can never put an older state over a
//! newer one, and two writes of one component never overlap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::processors::state_write::StateWrite;

/// A state file numbered in the order it was taken from its component.
pub(crate) struct Numbered {
    number: u64,
    write: StateWrite,
}

#[derive(Default)]
pub(crate) struct StateWriter {
    next: AtomicU64,
    /// The number of the last state written; held while writing, so
    /// writes of one component never overlap.
    written: Arc<Mutex<u64>>,
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
        if writes.is_empty() {
            return;
        }
        let written = self.written.clone();
        let component = component.to_string();
        let task = tokio::task::spawn_blocking(move || {
            let mut written = written.lock().unwrap_or_else(|e| e.into_inner());
            for Numbered { number, write } in writes {
                if number <= *written {
                    continue;
                }
                match write.write() {
                    Ok(()) => *written = number,
                    Err(e) => {
                        tracing::error!(component = %component, path = %write.path.display(), error = %e, "cannot save state")
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
}
