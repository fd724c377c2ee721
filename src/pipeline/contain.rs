//! Containing a component's panic to the request that caused it.
//!
//! Processors and connectors check their input against the data model
//! (`datamodel`) and should never panic; if one does anyway (a bug), the
//! request it was working on fails with an internal error, and the
//! pipeline goes on serving later requests and ticks: the panic is caught
//! where the component is called, and a lock it poisoned is recovered
//! (`into_inner`) instead of making every later caller panic too.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`; a lock poisoned by an earlier panic is recovered, and
/// the recovery logged once per poisoning (the poison is cleared).
pub fn lock<'a, T: ?Sized>(mutex: &'a Mutex<T>, owner: &str) -> MutexGuard<'a, T> {
    mutex.lock().unwrap_or_else(|poisoned| {
        tracing::error!(
            component = owner,
            "recovering a lock poisoned by an earlier panic; its state may be partly updated"
        );
        mutex.clear_poison();
        poisoned.into_inner()
    })
}

/// Runs `work`, turning a panic into an error that names `owner`. The
/// component's state may be partly updated afterwards: `AssertUnwindSafe`
/// accepts that, since the alternative is a pipeline that stops.
pub fn run<R>(owner: &str, work: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
        let message = panic_message(panic.as_ref());
        tracing::error!(component = owner, panic = %message, "a component panicked; the request fails, the pipeline goes on");
        format!("component `{owner}` failed on this data: {message}")
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_and_a_panic_becomes_an_error() {
        let mutex = Mutex::new(1);
        let poisoner = std::thread::spawn({
            let mutex = std::sync::Arc::new(Mutex::new(0));
            let inner = mutex.clone();
            move || {
                let _ = std::thread::spawn(move || {
                    let _guard = inner.lock().unwrap();
                    panic!("poison");
                })
                .join();
                assert!(mutex.is_poisoned());
                *lock(&mutex, "test") += 1;
                assert!(!mutex.is_poisoned(), "cleared after recovery");
                *lock(&mutex, "test")
            }
        });
        assert_eq!(poisoner.join().unwrap(), 1);
        let err = run("percentiles", || -> u32 { panic!("index out of bounds") }).unwrap_err();
        assert!(
            err.contains("percentiles") && err.contains("index out of bounds"),
            "{err}"
        );
        assert_eq!(run("p", || *lock(&mutex, "p") + 1), Ok(2));
    }
}
