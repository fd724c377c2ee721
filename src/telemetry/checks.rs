//! The last result of every synthetic check, for `GET /checks` on the
//! telemetry endpoint: one entry per target, written by the checks
//! scheduler after each run and read as JSON by people and scripts.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub up: bool,
    /// The run's duration, every attempt included.
    pub duration: Duration,
    /// When the run was scheduled (wall time).
    pub time: SystemTime,
    pub attempts: u32,
    /// `(code, message)` of the last attempt's failure.
    pub error: Option<(String, String)>,
}

#[derive(Debug)]
pub struct CheckStatus {
    pub receiver: String,
    pub kind: &'static str,
    pub target: String,
    last: Mutex<Option<CheckResult>>,
}

impl CheckStatus {
    pub fn new(receiver: &str, kind: &'static str, target: &str) -> Self {
        CheckStatus {
            receiver: receiver.to_string(),
            kind,
            target: target.to_string(),
            last: Mutex::new(None),
        }
    }

    pub fn record(&self, result: CheckResult) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    }

    pub fn last(&self) -> Option<CheckResult> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// This check as a JSON object; `status` is `pending` before its first run.
    pub fn to_json(&self) -> serde_json::Value {
        let mut entry = serde_json::json!({
            "receiver": self.receiver,
            "kind": self.kind,
            "target": self.target,
        });
        let fields = match self.last() {
            None => serde_json::json!({ "status": "pending" }),
            Some(last) => serde_json::json!({
                "status": if last.up { "up" } else { "down" },
                "duration_seconds": last.duration.as_secs_f64(),
                "time": humantime::format_rfc3339_millis(last.time).to_string(),
                "attempts": last.attempts,
                "error": last.error.map(|(code, message)| serde_json::json!({ "code": code, "message": message })),
            }),
        };
        if let (Some(entry), serde_json::Value::Object(fields)) = (entry.as_object_mut(), fields) {
            entry.extend(fields);
        }
        entry
    }
}

/// The `/checks` body: counts by status, then every check, down ones first.
pub fn summary(checks: &[std::sync::Arc<CheckStatus>]) -> serde_json::Value {
    let mut entries: Vec<serde_json::Value> = checks.iter().map(|c| c.to_json()).collect();
    let rank = |e: &serde_json::Value| match e["status"].as_str() {
        Some("down") => 0,
        Some("pending") => 1,
        _ => 2,
    };
    entries.sort_by_key(rank);
    let count = |status: &str| entries.iter().filter(|e| e["status"] == status).count();
    serde_json::json!({
        "up": count("up"),
        "down": count("down"),
        "pending": count("pending"),
        "checks": entries,
    })
}
