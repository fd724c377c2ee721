//! sidewatch's own log output on stderr: `service.telemetry.logs.level`
//! (a tracing filter; `RUST_LOG` wins) and `encoding`, `console` for people
//! or `json` (one object a line) for log shippers.
//!
//! Console colour only when stderr is a terminal and `NO_COLOR` is unset or
//! empty (https://no-color.org): a log file or a pipe to a shipper gets
//! plain text, not escape codes.

use std::io::IsTerminal;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    #[default]
    Console,
    /// One JSON object a line: `timestamp`, `level`, `target`, `message`
    /// and the event's fields at the top level.
    Json,
}

/// Whether console output is coloured, given whether stderr is a terminal
/// and the value of `NO_COLOR`.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&str>) -> bool {
    stderr_is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the process-wide subscriber; `filter` is the config's level.
pub fn init(filter: Option<&str>, encoding: LogEncoding) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| filter.map(str::to_string))
        .unwrap_or_else(|| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match encoding {
        LogEncoding::Console => {
            let no_color = std::env::var("NO_COLOR").ok();
            builder
                .with_ansi(colour(std::io::stderr().is_terminal(), no_color.as_deref()))
                .init();
        }
        LogEncoding::Json => builder.json().flatten_event(true).with_ansi(false).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("")), "an empty NO_COLOR does not count");
        assert!(!colour(true, Some("1")));
        assert!(!colour(false, None));
    }
}
