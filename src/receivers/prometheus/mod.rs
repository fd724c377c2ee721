//! `prometheus` receiver: scrapes Prometheus and OpenMetrics text
//! endpoints as Prometheus does, configured in the Collector's shape (a
//! Prometheus `scrape_configs` list under `config:`), and turns what it
//! reads into OTLP metrics (`convert.rs`).
//!
//! Supported per job: `scrape_interval`, `scrape_timeout`, `metrics_path`,
//! `scheme`, `params`, `honor_labels`, `honor_timestamps`,
//! `static_configs`, `relabel_configs`, `metric_relabel_configs`,
//! `sample_limit`, `body_size_limit`, `tls_config`, `basic_auth` and
//! `authorization`. Service discovery other than `static_configs` is
//! refused by name.

mod convert;
mod relabel;
mod scrape;
pub mod text;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::secret::Secret;
use crate::config::{Decoder, YamlPath};

pub use convert::{SeriesTracker, Target, metrics, resource, scrape_gauge};
pub use relabel::{RawRelabel, Relabel};
pub use scrape::PrometheusReceiver;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrometheusReceiverConfig {
    pub config: RawScrapeFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrapeFile {
    #[serde(default)]
    pub global: RawGlobal,
    #[serde(default)]
    pub scrape_configs: Vec<yaml_serde::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub scrape_interval: Duration,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub scrape_timeout: Duration,
    /// Accepted so a pasted prometheus.yml validates; sidewatch evaluates
    /// rules in its `alert` connector, on its own interval.
    #[serde(default, with = "crate::config::duration::option")]
    pub evaluation_interval: Option<Duration>,
}

impl Default for RawGlobal {
    fn default() -> Self {
        RawGlobal {
            scrape_interval: default_interval(),
            scrape_timeout: default_timeout(),
            evaluation_interval: None,
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrapeConfig {
    pub job_name: String,
    #[serde(default, with = "crate::config::duration::option")]
    pub scrape_interval: Option<Duration>,
    #[serde(default, with = "crate::config::duration::option")]
    pub scrape_timeout: Option<Duration>,
    #[serde(default = "default_path")]
    pub metrics_path: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    #[serde(default)]
    pub static_configs: Vec<RawStaticConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RawRelabel>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RawRelabel>,
    /// More samples than this fail the scrape, as in Prometheus (0: no limit).
    #[serde(default)]
    pub sample_limit: usize,
    /// A larger body fails the scrape. Prometheus's default is no limit; a
    /// sidecar's memory should not depend on a target, so it is 32 MiB.
    #[serde(default = "default_body_limit")]
    pub body_size_limit: ByteSize,
    #[serde(default)]
    pub tls_config: Option<RawTlsConfig>,
    #[serde(default)]
    pub basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    pub authorization: Option<RawAuthorization>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsConfig {
    pub ca_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorization {
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    pub credentials: Secret,
}

fn bearer() -> String {
    "Bearer".into()
}

/// A byte count written as Prometheus does: `0`, `1048576`, `512KB`,
/// `16MiB`, `1GB` (KB, MB, GB are powers of 1024 there too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

fn default_body_limit() -> ByteSize {
    ByteSize(32 << 20)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(u64),
            Text(String),
        }
        let text = match Form::deserialize(deserializer)? {
            Form::Number(n) => return Ok(ByteSize(n)),
            Form::Text(t) => t,
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "KiB" | "kB" => 1 << 10,
            "MB" | "MiB" => 1 << 20,
            "GB" | "GiB" => 1 << 30,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "size {text:?}: expected a number of bytes with an optional unit B, KB, MB or GB"
                )));
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .map(ByteSize)
            .ok_or_else(|| serde::de::Error::custom(format!("size {text:?} is not a byte count")))
    }
}

/// A validated job: durations settled, relabelling compiled, targets
/// relabelled into the ones to scrape.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub sample_limit: usize,
    pub body_size_limit: u64,
    pub metric_relabel: Vec<Relabel>,
    pub targets: Vec<Target>,
    pub tls: Option<crate::tls::client::ClientTlsConfig>,
    pub basic_auth: Option<RawBasicAuth>,
    pub authorization: Option<RawAuthorization>,
}

#[derive(Debug, Clone)]
pub struct PrometheusReceiverConfig {
    pub jobs: Vec<Job>,
}

/// Collector and Prometheus keys for discovery that sidewatch does not do.
const DISCOVERY: &[&str] = &[
    "kubernetes_sd_configs",
    "file_sd_configs",
    "consul_sd_configs",
    "dns_sd_configs",
    "ec2_sd_configs",
    "azure_sd_configs",
    "gce_sd_configs",
    "docker_sd_configs",
    "http_sd_configs",
    "openstack_sd_configs",
];

/// Decodes and validates the receiver's config, reporting each error at
/// its path; `None` when any was found.
pub fn decode(
    value: &yaml_serde::Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<PrometheusReceiverConfig> {
    let raw: RawPrometheusReceiverConfig = decoder.decode(value, path)?;
    let global = &raw.config.global;
    let mut jobs = Vec::new();
    let mut valid = true;
    let list_path = path.key("config").key("scrape_configs");
    for (i, value) in raw.config.scrape_configs.iter().enumerate() {
        let job_path = list_path.index(i);
        if let Some(map) = value.as_mapping() {
            for key in DISCOVERY {
                if map.contains_key(*key) {
                    decoder.error(
                        job_path.key(*key),
                        format!("{key} is not supported: sidewatch scrapes the targets listed in static_configs"),
                    );
                    valid = false;
                }
            }
            if !valid {
                continue;
            }
        }
        let Some(job) = decoder.decode::<RawScrapeConfig>(value, &job_path) else {
            valid = false;
            continue;
        };
        match compile_job(&job, global, &job_path) {
            Ok(compiled) => {
                if jobs.iter().any(|j: &Job| j.name == compiled.name) {
                    decoder.error(
                        job_path.key("job_name"),
                        format!("job_name {:?} is used twice", compiled.name),
                    );
                    valid = false;
                }
                jobs.push(compiled);
            }
            Err(errors) => {
                valid = false;
                for (field, message) in errors {
                    decoder.error(field, message);
                }
            }
        }
    }
    if raw.config.scrape_configs.is_empty() {
        decoder.error(list_path, "at least one scrape config is needed");
        valid = false;
    }
    valid.then_some(PrometheusReceiverConfig { jobs })
}

type FieldErrors = Vec<(YamlPath, String)>;

fn compile_job(
    job: &RawScrapeConfig,
    global: &RawGlobal,
    at: &YamlPath,
) -> Result<Job, FieldErrors> {
    let mut errors: FieldErrors = Vec::new();
    if job.job_name.is_empty() {
        errors.push((at.key("job_name"), "a job needs a name".into()));
    }
    let interval = job.scrape_interval.unwrap_or(global.scrape_interval);
    let timeout = job
        .scrape_timeout
        .unwrap_or(global.scrape_timeout.min(interval));
    if interval.is_zero() {
        errors.push((at.key("scrape_interval"), "must be above 0".into()));
    }
    if timeout.is_zero() || timeout > interval {
        errors.push((
            at.key("scrape_timeout"),
            format!(
                "must be above 0 and at most the scrape interval ({})",
                humantime::format_duration(interval)
            ),
        ));
    }
    if job.scheme != "http" && job.scheme != "https" {
        errors.push((at.key("scheme"), "expected `http` or `https`".into()));
    }
    if !job.metrics_path.starts_with('/') {
        errors.push((at.key("metrics_path"), "must start with /".into()));
    }
    let mut compile_all = |steps: &[RawRelabel], key: &str| -> Vec<Relabel> {
        let mut out = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            match step.compile() {
                Ok(step) => out.push(step),
                Err((field, message)) => errors.push((at.key(key).index(i).key(field), message)),
            }
        }
        out
    };
    let target_relabel = compile_all(&job.relabel_configs, "relabel_configs");
    let metric_relabel = compile_all(&job.metric_relabel_configs, "metric_relabel_configs");
    let tls = job
        .tls_config
        .as_ref()
        .map(|t| crate::tls::client::ClientTlsConfig {
            ca_file: t.ca_file.clone(),
            cert_file: t.cert_file.clone(),
            key_file: t.key_file.clone(),
            server_name: t.server_name.clone(),
            ..Default::default()
        });
    if let Some(Err(message)) = tls.as_ref().map(|t| t.validate()) {
        errors.push((at.key("tls_config"), message));
    }
    if job.basic_auth.is_some() && job.authorization.is_some() {
        errors.push((
            at.key("authorization"),
            "set basic_auth or authorization, not both".into(),
        ));
    }
    let mut targets = Vec::new();
    for (s, group) in job.static_configs.iter().enumerate() {
        for (t, address) in group.targets.iter().enumerate() {
            if let Err(message) = check_address(address) {
                errors.push((
                    at.key("static_configs").index(s).key("targets").index(t),
                    message,
                ));
                continue;
            }
            if let Some(target) =
                relabel_target(job, group, address, interval, timeout, &target_relabel)
            {
                targets.push(target);
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Job {
        name: job.job_name.clone(),
        interval,
        timeout,
        sample_limit: job.sample_limit,
        body_size_limit: job.body_size_limit.0,
        metric_relabel,
        targets,
        tls,
        basic_auth: job.basic_auth.clone(),
        authorization: job.authorization.clone(),
    })
}

/// `host:port` as Prometheus takes a target: no scheme, no path.
fn check_address(address: &str) -> Result<(), String> {
    let expected = "expected host:port (no scheme or path; the scheme is `scheme:`)";
    if address.contains("://") || address.contains('/') {
        return Err(format!("target {address:?}: {expected}"));
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(format!("target {address:?}: {expected}")),
    }
}

/// Prometheus's target labels, relabelled; `None` when a step drops it.
fn relabel_target(
    job: &RawScrapeConfig,
    group: &RawStaticConfig,
    address: &str,
    interval: Duration,
    timeout: Duration,
    steps: &[Relabel],
) -> Option<Target> {
    let mut labels: relabel::Labels = vec![
        ("__address__".into(), address.to_string()),
        ("__scheme__".into(), job.scheme.clone()),
        ("__metrics_path__".into(), job.metrics_path.clone()),
        (
            "__scrape_interval__".into(),
            humantime::format_duration(interval).to_string(),
        ),
        (
            "__scrape_timeout__".into(),
            humantime::format_duration(timeout).to_string(),
        ),
        ("job".into(), job.job_name.clone()),
    ];
    for (name, values) in &job.params {
        if let Some(first) = values.first() {
            labels.push((format!("__param_{name}"), first.clone()));
        }
    }
    for (k, v) in &group.labels {
        labels.retain(|(l, _)| l != k);
        labels.push((k.clone(), v.clone()));
    }
    if !relabel::apply_all(steps, &mut labels) {
        return None;
    }
    let get = |name: &str| {
        labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let address = get("__address__")?;
    let scheme = get("__scheme__").unwrap_or_else(|| job.scheme.clone());
    let path = get("__metrics_path__").unwrap_or_else(|| job.metrics_path.clone());
    let mut query: Vec<(String, String)> = Vec::new();
    for (name, values) in &job.params {
        let relabelled = get(&format!("__param_{name}"));
        for (i, value) in values.iter().enumerate() {
            let value = if i == 0 {
                relabelled.clone().unwrap_or_else(|| value.clone())
            } else {
                value.clone()
            };
            query.push((name.clone(), value));
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    if !query.is_empty() {
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
            .collect();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&encoded.join("&"));
    }
    Some(Target {
        job: get("job").unwrap_or_else(|| job.job_name.clone()),
        instance: get("instance").unwrap_or_else(|| address.clone()),
        scheme,
        url,
        labels: labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("__") && k != "job" && k != "instance")
            .collect(),
        honor_labels: job.honor_labels,
        honor_timestamps: job.honor_timestamps,
    })
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl crate::components::compiled::CompiledReceiver for PrometheusReceiverConfig {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(PrometheusReceiver::new(self.clone()))
    }
}

/// The registry's compile step for `prometheus`.
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

    fn decode_yaml(yaml: &str) -> Result<PrometheusReceiverConfig, Vec<String>> {
        let mut decoder = crate::config::test_decoder();
        let value: yaml_serde::Value = yaml_serde::from_str(yaml).unwrap();
        let config = decode(&value, &YamlPath::root().key("prometheus"), &mut decoder);
        config.ok_or_else(|| decoder.messages())
    }

    #[test]
    fn targets_are_relabelled_into_urls_and_labels() {
        let config = decode_yaml(
            r#"
config:
  global: { scrape_interval: 15s }
  scrape_configs:
    - job_name: node
      params: { module: [http_2xx] }
      static_configs:
        - targets: ['127.0.0.1:9100', '127.0.0.1:9200']
          labels: { env: prod }
      relabel_configs:
        - { source_labels: [__address__], regex: '.*:9200', action: drop }
        - { source_labels: [__address__], target_label: instance, regex: '(.*):\d+', replacement: '$1' }
"#,
        )
        .unwrap();
        let job = &config.jobs[0];
        assert_eq!(job.interval, Duration::from_secs(15));
        assert_eq!(job.timeout, Duration::from_secs(10));
        assert_eq!(job.targets.len(), 1);
        let target = &job.targets[0];
        assert_eq!(target.url, "http://127.0.0.1:9100/metrics?module=http_2xx");
        assert_eq!(target.instance, "127.0.0.1");
        assert_eq!(target.labels, [("env".to_string(), "prod".to_string())]);
    }

    #[test]
    fn errors_name_the_field() {
        let errors = decode_yaml(
            r#"
config:
  scrape_configs:
    - job_name: a
      scrape_interval: 5s
      scrape_timeout: 10s
      static_configs: [ { targets: ['http://127.0.0.1:9100/metrics', '127.0.0.1:99999'] } ]
      metric_relabel_configs: [ { regex: '(' , source_labels: [a], action: keep } ]
    - job_name: b
      kubernetes_sd_configs: [ { role: pod } ]
"#,
        )
        .unwrap_err()
        .join("\n");
        for wanted in [
            "scrape_configs[0].scrape_timeout",
            "scrape_configs[0].static_configs[0].targets[0]",
            "scrape_configs[0].static_configs[0].targets[1]",
            "scrape_configs[0].metric_relabel_configs[0].regex",
            "scrape_configs[1].kubernetes_sd_configs",
        ] {
            assert!(errors.contains(wanted), "{wanted} missing from:\n{errors}");
        }
    }

    #[test]
    fn byte_sizes_in_prometheus_units() {
        let size = |t: &str| yaml_serde::from_str::<ByteSize>(t).map(|b| b.0);
        assert_eq!(size("1048576").unwrap(), 1 << 20);
        assert_eq!(size("16MiB").unwrap(), 16 << 20);
        assert_eq!(size("512KB").unwrap(), 512 << 10);
        assert!(size("5 parsecs").is_err());
    }
}
