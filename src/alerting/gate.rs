//! What may stop an alert's notifications without changing its state: the
//! engine asks a [`Gate`] before each fire, repeat and severity change
//! (never before the resolve of a fire the receivers were told of). The
//! acknowledgements and silences of the alerts API (`silences`) are one;
//! a replay and the engine's own tests use [`Open`], which mutes nothing.

use serde::{Deserialize, Serialize};

use super::engine::Labels;

/// One stretch of an alert in which nothing a receiver must hear about
/// changed: it starts when the alert becomes active (a re-fire after a
/// resolve is a new one) and again at each severity change. An
/// acknowledgement holds for the episode it was given in, so it ends by
/// itself when the alert resolves or changes severity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Episode {
    pub active_at: f64,
    pub severity_since: f64,
}

/// An alert about to notify.
pub struct Candidate<'a> {
    pub fingerprint: &'a str,
    /// The labels receivers see (`alertname`, `severity` and the rule's
    /// own labels included), which silences match.
    pub labels: &'a Labels,
    pub episode: Episode,
    /// Evaluation time, unix seconds.
    pub now: f64,
}

pub trait Gate {
    /// True when nothing can be muted: the engine then skips building
    /// candidates.
    fn is_open(&self) -> bool {
        false
    }

    fn mutes(&self, candidate: &Candidate<'_>) -> bool;
}

/// Mutes nothing.
pub struct Open;

impl Gate for Open {
    fn is_open(&self) -> bool {
        true
    }

    fn mutes(&self, _candidate: &Candidate<'_>) -> bool {
        false
    }
}
