//! `exec` receiver: runs a command every `collection_interval` and reads
//! its output as metrics — Prometheus text, InfluxDB line protocol or JSON —
//! with the run itself as metrics too (`exec.command.exit_code`,
//! `exec.command.duration`, `exec.command.timed_out`,
//! `exec.command.output_bytes`).
//!
//! The command is run directly (no shell) unless `shell: true`; a string
//! command is split into words as a POSIX shell would (quotes honoured, no
//! expansion). A run that outlives `timeout` is killed with its whole
//! process group; output beyond `max_output` is cut off and the command
//! killed, so neither a hang nor a flood holds memory or a slot.

mod influx;
mod json;
mod run;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use serde::Deserialize;

use super::prometheus::{ByteSize, SeriesTracker, Target, metrics, resource, scrape_gauge};
use super::{Receiver, ReceiverContext, StartedReceiver};
use crate::config::{Decoder, YamlPath};
use crate::receivers::hostmetrics::string_attribute;
use crate::signal::Batch;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Prometheus,
    Influx,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CommandText {
    Words(Vec<String>),
    Line(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExecConfig {
    pub command: CommandText,
    #[serde(default)]
    pub shell: bool,
    #[serde(default)]
    pub format: Format,
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub collection_interval: Duration,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(default = "default_max_output")]
    pub max_output: ByteSize,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub working_dir: Option<std::path::PathBuf>,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_output() -> ByteSize {
    ByteSize(1 << 20)
}

/// A validated exec receiver: the argv to run and its bounds.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub argv: Vec<String>,
    pub format: Format,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_output: usize,
    pub environment: Vec<(String, String)>,
    pub working_dir: Option<std::path::PathBuf>,
}

pub fn decode(
    value: &yaml_serde::Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<ExecConfig> {
    let raw: RawExecConfig = decoder.decode(value, path)?;
    let mut valid = true;
    let argv = match (&raw.command, raw.shell) {
        (CommandText::Line(line), true) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
        (CommandText::Words(words), true) => {
            let mut argv = vec!["/bin/sh".to_string(), "-c".to_string()];
            argv.push(shell_words::join(words));
            argv
        }
        (CommandText::Words(words), false) => words.clone(),
        (CommandText::Line(line), false) => match shell_words::split(line) {
            Ok(words) => words,
            Err(e) => {
                decoder.error(
                    path.key("command"),
                    format!("cannot split the command into words: {e}"),
                );
                valid = false;
                Vec::new()
            }
        },
    };
    if valid && argv.first().is_none_or(|a| a.is_empty()) {
        decoder.error(path.key("command"), "the command is empty");
        valid = false;
    }
    if raw.collection_interval.is_zero() {
        decoder.error(path.key("collection_interval"), "must be above 0");
        valid = false;
    }
    if raw.timeout.is_zero() || raw.timeout > raw.collection_interval {
        decoder.error(
            path.key("timeout"),
            "must be above 0 and at most collection_interval (runs never overlap)",
        );
        valid = false;
    }
    if raw.max_output.0 == 0 || raw.max_output.0 > 64 << 20 {
        decoder.error(path.key("max_output"), "must be between 1 byte and 64 MiB");
        valid = false;
    }
    valid.then(|| ExecConfig {
        argv,
        format: raw.format,
        interval: raw.collection_interval,
        timeout: raw.timeout,
        max_output: raw.max_output.0 as usize,
        environment: raw.environment.into_iter().collect(),
        working_dir: raw.working_dir,
    })
}

pub struct ExecReceiver {
    config: ExecConfig,
}

impl ExecReceiver {
    pub fn new(config: ExecConfig) -> Self {
        ExecReceiver { config }
    }
}

fn gauge(name: &str, unit: &str, value: f64, now_ns: u64) -> Metric {
    let mut metric = scrape_gauge(name, value, now_ns);
    metric.unit = unit.to_string();
    metric
}

/// A sample read from line protocol or JSON.
struct Sample {
    name: String,
    attributes: Vec<(String, String)>,
    value: f64,
    time_ns: Option<u64>,
}

/// Samples as gauges, one metric per name.
fn gauges(samples: Vec<Sample>, now_ns: u64) -> Vec<Metric> {
    let mut out: Vec<Metric> = Vec::new();
    for Sample {
        name,
        attributes,
        value,
        time_ns: time,
    } in samples
    {
        let mut metric = scrape_gauge(&name, value, time.unwrap_or(now_ns));
        if let Some(Data::Gauge(g)) = &mut metric.data {
            g.data_points[0].attributes = attributes
                .into_iter()
                .map(|(k, v)| string_attribute(&k, v))
                .collect();
        }
        match out.iter_mut().find(|m| m.name == name) {
            Some(existing) => {
                if let (Some(Data::Gauge(into)), Some(Data::Gauge(from))) =
                    (&mut existing.data, metric.data)
                {
                    into.data_points.extend(from.data_points);
                }
            }
            None => out.push(metric),
        }
    }
    out
}

struct Runner {
    id: String,
    config: ExecConfig,
    tracker: SeriesTracker,
    target: Target,
}

impl Runner {
    async fn once(&mut self) -> ExportMetricsServiceRequest {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let c = self.config.clone();
        let run = run::run(
            &c.argv,
            &c.environment,
            c.working_dir.as_deref(),
            c.timeout,
            c.max_output,
        )
        .await;
        let mut out = Vec::new();
        let mut resource_extra: Vec<KeyValue> = Vec::new();
        if let Some(error) = &run.spawn_error {
            tracing::warn!(receiver = %self.id, %error, "exec: command not run");
        } else if run.timed_out {
            tracing::warn!(receiver = %self.id, timeout = ?c.timeout, "exec: command killed at its timeout");
        } else if run.truncated {
            tracing::warn!(receiver = %self.id, limit = c.max_output, "exec: output beyond max_output; command killed, output not read");
        } else {
            if run.exit_code != Some(0) {
                tracing::warn!(receiver = %self.id, code = ?run.exit_code, stderr = %String::from_utf8_lossy(&run.stderr_tail), "exec: command failed");
            }
            match self.parse(&run.stdout, now_ns) {
                Ok((metrics, extra)) => {
                    out = metrics;
                    resource_extra = extra;
                }
                Err(error) => {
                    tracing::warn!(receiver = %self.id, %error, "exec: output not understood")
                }
            }
        }
        out.push(gauge(
            "exec.command.exit_code",
            "1",
            run.exit_code.map(f64::from).unwrap_or(-1.0),
            now_ns,
        ));
        out.push(gauge(
            "exec.command.duration",
            "s",
            run.duration.as_secs_f64(),
            now_ns,
        ));
        out.push(gauge(
            "exec.command.timed_out",
            "1",
            if run.timed_out { 1.0 } else { 0.0 },
            now_ns,
        ));
        out.push(gauge(
            "exec.command.output_bytes",
            "By",
            run.stdout.len() as f64,
            now_ns,
        ));
        let mut attributes = vec![
            string_attribute("sidewatch.receiver", self.id.clone()),
            string_attribute(
                "process.executable.name",
                std::path::Path::new(&c.argv[0])
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            string_attribute("process.command_line", shell_words::join(&c.argv)),
        ];
        attributes.extend(resource_extra);
        ExportMetricsServiceRequest {
            resource_metrics: vec![resource("exec", attributes, out)],
        }
    }

    fn parse(
        &mut self,
        stdout: &[u8],
        now_ns: u64,
    ) -> Result<(Vec<Metric>, Vec<KeyValue>), String> {
        let text = std::str::from_utf8(stdout).map_err(|e| format!("output is not UTF-8: {e}"))?;
        match self.config.format {
            Format::Prometheus => {
                let families =
                    super::prometheus::text::parse(text, false).map_err(|e| e.to_string())?;
                let (metrics, extra, _) =
                    metrics(Some(&families), &self.target, now_ns, &mut self.tracker);
                Ok((metrics, extra))
            }
            Format::Influx => {
                let parsed = influx::parse(text)?;
                let points = parsed
                    .points
                    .into_iter()
                    .map(|p| Sample {
                        name: p.name,
                        attributes: p.tags,
                        value: p.value,
                        time_ns: p.timestamp_ns,
                    })
                    .collect();
                Ok((gauges(points, now_ns), Vec::new()))
            }
            Format::Json => {
                let points = json::parse(text)?
                    .into_iter()
                    .map(|p| Sample {
                        name: p.name,
                        attributes: p.attributes,
                        value: p.value,
                        time_ns: None,
                    })
                    .collect();
                Ok((gauges(points, now_ns), Vec::new()))
            }
        }
    }
}

#[async_trait::async_trait]
impl Receiver for ExecReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let Some(consumer) = context.consumers.metrics.clone() else {
            return Ok(StartedReceiver {
                addresses: Vec::new(),
                tasks: Vec::new(),
            });
        };
        let stats = context
            .telemetry
            .receiver(&context.id, "exec", crate::signal::Signal::Metrics);
        let interval = self.config.interval;
        let mut runner = Runner {
            id: context.id.clone(),
            target: Target {
                job: context.id.clone(),
                instance: context.id.clone(),
                scheme: String::new(),
                url: String::new(),
                labels: Vec::new(),
                honor_labels: true,
                honor_timestamps: true,
            },
            config: self.config,
            tracker: SeriesTracker::default(),
        };
        let shutdown = context.shutdown.clone();
        let stats: Arc<_> = stats;
        let task = tokio::spawn(async move {
            let mut timer = tokio::time::interval(interval);
            // Runs never overlap (timeout <= interval); a late one skips
            // ticks instead of shifting the schedule.
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = timer.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                let request = tokio::select! {
                    request = runner.once() => request,
                    _ = shutdown.cancelled() => return,
                };
                super::deliver(
                    &consumer,
                    &stats,
                    Batch::Metrics(request.into()),
                    "exec output",
                )
                .await;
            }
        });
        Ok(StartedReceiver {
            addresses: Vec::new(),
            tasks: vec![task],
        })
    }
}

impl crate::components::compiled::CompiledReceiver for ExecConfig {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(ExecReceiver::new(self.clone()))
    }
}

/// The registry's compile step for `exec`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    decode(value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_yaml(yaml: &str) -> Result<ExecConfig, Vec<String>> {
        let mut decoder = crate::config::test_decoder();
        let value: yaml_serde::Value = yaml_serde::from_str(yaml).unwrap();
        decode(&value, &YamlPath::root().key("exec"), &mut decoder)
            .ok_or_else(|| decoder.messages())
    }

    #[test]
    fn commands_split_as_a_shell_would_without_running_one() {
        let c = decode_yaml("command: \"printf '%s\\n' 'a b'\"").unwrap();
        assert_eq!(c.argv, ["printf", "%s\n", "a b"]);
        let c = decode_yaml("{ command: 'df -k | tail -1', shell: true }").unwrap();
        assert_eq!(c.argv, ["/bin/sh", "-c", "df -k | tail -1"]);
        let errors = decode_yaml("{ command: \"echo 'open\", timeout: 2m }")
            .unwrap_err()
            .join("\n");
        assert!(errors.contains("exec.command"), "{errors}");
        assert!(errors.contains("exec.timeout"), "{errors}");
    }

    #[tokio::test]
    async fn hangs_are_killed_with_their_group_and_floods_cut_off() {
        let argv = |s: &str| vec!["/bin/sh".to_string(), "-c".to_string(), s.to_string()];
        let started = std::time::Instant::now();
        let hung = run::run(
            &argv("sleep 30 & sleep 30"),
            &[],
            None,
            Duration::from_millis(300),
            1024,
        )
        .await;
        assert!(hung.timed_out && hung.exit_code.is_none());
        assert!(started.elapsed() < Duration::from_secs(10));
        let flood = run::run(&argv("yes"), &[], None, Duration::from_secs(10), 1 << 16).await;
        assert!(flood.truncated);
        assert_eq!(flood.stdout.len(), 1 << 16);
        let failed = run::run(
            &argv("echo oops >&2; exit 3"),
            &[],
            None,
            Duration::from_secs(10),
            1024,
        )
        .await;
        assert_eq!(failed.exit_code, Some(3));
        assert_eq!(failed.stderr_tail, b"oops\n");
    }
}
