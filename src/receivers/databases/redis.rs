//! `redis` receiver: `INFO` as the Collector's `redis.*` metrics (its
//! default set, plus `redis.maxmemory` and `redis.role`), with derived
//! `redis.keyspace.hit_ratio`, `redis.memory.utilization` (used over
//! `maxmemory`, when one is set) and, on a replica,
//! `redis.replication.lag`.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Deserialize;

use super::{MetricSpec, Points, Schedule, ScrapeError, Scraper, counter, gauge, level, ratio};
use crate::config::secret::Secret;
use crate::receivers::hostmetrics::{MetricsBuilder, int_attribute, string_attribute};
use crate::tls::client::ClientTlsConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `host:port`; the port defaults to 6379.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Only `tcp`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// An ACL user (Redis 6+); without it, `AUTH <password>`.
    pub username: Option<String>,
    pub password: Option<Secret>,
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub collection_interval: Duration,
    #[serde(default, with = "crate::config::duration::option")]
    pub timeout: Option<Duration>,
    #[serde(default = "default_initial_delay", with = "crate::config::duration")]
    pub initial_delay: Duration,
    /// Absent, or `insecure: true`: plaintext. Otherwise TLS.
    pub tls: Option<ClientTlsConfig>,
}

fn default_endpoint() -> String {
    "localhost:6379".into()
}
fn default_transport() -> String {
    "tcp".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}

#[derive(Clone)]
pub struct RedisPlan {
    pub schedule: Schedule,
    endpoint: String,
    host: String,
    port: u16,
    client: redis::Client,
}

impl std::fmt::Debug for RedisPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPlan")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    pub fn compile(&self) -> Result<RedisPlan, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let schedule =
            super::check_schedule(self.collection_interval, self.timeout, self.initial_delay)
                .map_err(|e| errors.extend(e))
                .ok();
        if self.transport != "tcp" {
            errors.push((
                "transport",
                format!(
                    "transport {:?} is not supported: expected \"tcp\"",
                    self.transport
                ),
            ));
        }
        let endpoint = super::host_port(&self.endpoint, 6379)
            .map_err(|e| errors.push(("endpoint", e)))
            .ok();
        let (Some(schedule), Some((host, port))) = (schedule, endpoint) else {
            return Err(errors);
        };
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        // An empty password (`${env:X:-}` with X unset) means none, not `AUTH ""`.
        if let Some(password) = self.password.as_ref().filter(|p| !p.expose().is_empty()) {
            settings = settings.set_password(password.expose());
        }
        let tls = self.tls.as_ref().filter(|t| !t.insecure);
        let client = match tls {
            None => redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
                host.clone(),
                port,
            ))
            .map(|info| info.set_redis_settings(settings))
            .and_then(redis::Client::open),
            Some(tls) => tls_client(tls, &host, port, settings).map_err(|e| {
                errors.push(("tls", e));
                redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "tls"))
            }),
        };
        match client {
            Ok(client) if errors.is_empty() => Ok(RedisPlan {
                schedule,
                endpoint: self.endpoint.clone(),
                host,
                port,
                client,
            }),
            Ok(_) => Err(errors),
            Err(error) => {
                if errors.is_empty() {
                    errors.push(("endpoint", error.to_string()));
                }
                Err(errors)
            }
        }
    }
}

fn tls_client(
    tls: &ClientTlsConfig,
    host: &str,
    port: u16,
    settings: redis::RedisConnectionInfo,
) -> Result<redis::Client, String> {
    tls.check().map_err(|(_, e)| e)?;
    let read = |path: &std::path::Path| crate::config::files::read_small_file(path);
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    let root_cert = tls.ca_file.as_deref().map(read).transpose()?;
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::TcpTls {
        host: tls.server_name.clone().unwrap_or_else(|| host.to_string()),
        port,
        insecure: tls.insecure_skip_verify,
        tls_params: None,
    })
    .map_err(|e| e.to_string())?
    .set_redis_settings(settings);
    redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| e.to_string())
}

impl crate::components::compiled::CompiledReceiver for RedisPlan {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(super::DatabaseReceiver::new(
            Box::new(self.scraper()),
            self.schedule,
        ))
    }
}

/// The registry's compile step for `redis`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    super::compile_with(value, path, decoder, RedisConfig::compile)
}

impl RedisPlan {
    pub fn scraper(&self) -> RedisScraper {
        RedisScraper {
            plan: self.clone(),
            connection: None,
            version: None,
        }
    }
}

pub struct RedisScraper {
    plan: RedisPlan,
    connection: Option<redis::aio::MultiplexedConnection>,
    version: Option<String>,
}

pub const METRICS: &[MetricSpec] = &[
    level(
        "redis.clients.blocked",
        "{client}",
        "Number of clients pending on a blocking call",
    ),
    level(
        "redis.clients.connected",
        "{client}",
        "Number of client connections (excluding connections from replicas)",
    ),
    gauge(
        "redis.clients.max_input_buffer",
        "By",
        "Biggest input buffer among current client connections",
    ),
    gauge(
        "redis.clients.max_output_buffer",
        "By",
        "Longest output list among current client connections",
    ),
    gauge(
        "redis.commands",
        "{ops}/s",
        "Number of commands processed per second",
    ),
    counter(
        "redis.commands.processed",
        "{command}",
        "Total number of commands processed by the server",
    ),
    counter(
        "redis.connections.received",
        "{connection}",
        "Total number of connections accepted by the server",
    ),
    counter(
        "redis.connections.rejected",
        "{connection}",
        "Number of connections rejected because of maxclients limit",
    ),
    counter(
        "redis.cpu.time",
        "s",
        "System CPU consumed by the Redis server in seconds since server start",
    ),
    gauge(
        "redis.db.avg_ttl",
        "s",
        "Average keyspace keys TTL in seconds",
    ),
    gauge(
        "redis.db.expires",
        "{key}",
        "Number of keyspace keys with an expiration",
    ),
    gauge("redis.db.keys", "{key}", "Number of keyspace keys"),
    counter(
        "redis.keys.evicted",
        "{key}",
        "Number of evicted keys due to maxmemory limit",
    ),
    counter(
        "redis.keys.expired",
        "{event}",
        "Total number of key expiration events",
    ),
    counter(
        "redis.keyspace.hits",
        "{hit}",
        "Number of successful lookup of keys in the main dictionary",
    ),
    counter(
        "redis.keyspace.misses",
        "{miss}",
        "Number of failed lookup of keys in the main dictionary",
    ),
    gauge(
        "redis.keyspace.hit_ratio",
        "1",
        "keyspace_hits / (keyspace_hits + keyspace_misses) since the server started (derived).",
    ),
    gauge(
        "redis.latest_fork",
        "s",
        "Duration of the latest fork operation in seconds",
    ),
    gauge(
        "redis.memory.fragmentation_ratio",
        "1",
        "Ratio between used_memory_rss and used_memory",
    ),
    gauge(
        "redis.memory.lua",
        "By",
        "Number of bytes used by the Lua engine",
    ),
    gauge(
        "redis.memory.peak",
        "By",
        "Peak memory consumed by Redis (in bytes)",
    ),
    gauge(
        "redis.memory.rss",
        "By",
        "Number of bytes that Redis allocated as seen by the operating system",
    ),
    gauge(
        "redis.memory.used",
        "By",
        "Total number of bytes allocated by Redis using its allocator",
    ),
    gauge(
        "redis.maxmemory",
        "By",
        "The value of the maxmemory configuration directive",
    ),
    gauge(
        "redis.memory.utilization",
        "1",
        "used_memory / maxmemory, when maxmemory is set (derived).",
    ),
    counter(
        "redis.net.input",
        "By",
        "The total number of bytes read from the network",
    ),
    counter(
        "redis.net.output",
        "By",
        "The total number of bytes written to the network",
    ),
    level(
        "redis.rdb.changes_since_last_save",
        "{change}",
        "Number of changes since the last dump",
    ),
    gauge(
        "redis.replication.backlog_first_byte_offset",
        "By",
        "The master offset of the replication backlog buffer",
    ),
    gauge(
        "redis.replication.offset",
        "By",
        "The server's current replication offset",
    ),
    gauge(
        "redis.replication.lag",
        "s",
        "On a replica: seconds since the last interaction with the primary (derived).",
    ),
    level(
        "redis.slaves.connected",
        "{replica}",
        "Number of connected replicas",
    ),
    level("redis.role", "{role}", "Redis node's role"),
    counter(
        "redis.uptime",
        "s",
        "Number of seconds since Redis server start",
    ),
];

/// `INFO`'s `key:value` lines; `# Section` lines and blanks skipped.
pub fn parse_info(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .collect()
}

/// A keyspace line's value (`keys=1,expires=0,avg_ttl=0`) as fields.
fn keyspace_fields(value: &str) -> HashMap<&str, &str> {
    value.split(',').filter_map(|f| f.split_once('=')).collect()
}

fn classify(error: &redis::RedisError) -> ScrapeError {
    let kind = if error.kind() == redis::ErrorKind::AuthenticationFailed {
        "authentication"
    } else if error.is_connection_refusal() {
        "connection_refused"
    } else if error.is_timeout() {
        "timeout"
    } else if error.is_io_error() || error.is_unrecoverable_error() {
        "connection"
    } else if error.to_string().contains("NOAUTH") || error.to_string().contains("WRONGPASS") {
        "authentication"
    } else {
        "query"
    };
    ScrapeError::new(kind, error.to_string())
}

/// Reads `info` into `points`.
pub fn info_points(info: &HashMap<&str, &str>, points: &mut Points) {
    let int = |key: &str| info.get(key).and_then(|v| v.trim().parse::<i64>().ok());
    let float = |key: &str| info.get(key).and_then(|v| v.trim().parse::<f64>().ok());
    let ints = [
        ("redis.clients.blocked", "blocked_clients"),
        ("redis.clients.connected", "connected_clients"),
        (
            "redis.clients.max_input_buffer",
            "client_recent_max_input_buffer",
        ),
        (
            "redis.clients.max_output_buffer",
            "client_recent_max_output_buffer",
        ),
        ("redis.commands", "instantaneous_ops_per_sec"),
        ("redis.commands.processed", "total_commands_processed"),
        ("redis.connections.received", "total_connections_received"),
        ("redis.connections.rejected", "rejected_connections"),
        ("redis.keys.evicted", "evicted_keys"),
        ("redis.keys.expired", "expired_keys"),
        ("redis.keyspace.hits", "keyspace_hits"),
        ("redis.keyspace.misses", "keyspace_misses"),
        ("redis.memory.lua", "used_memory_lua"),
        ("redis.memory.peak", "used_memory_peak"),
        ("redis.memory.rss", "used_memory_rss"),
        ("redis.memory.used", "used_memory"),
        ("redis.maxmemory", "maxmemory"),
        ("redis.net.input", "total_net_input_bytes"),
        ("redis.net.output", "total_net_output_bytes"),
        (
            "redis.rdb.changes_since_last_save",
            "rdb_changes_since_last_save",
        ),
        (
            "redis.replication.backlog_first_byte_offset",
            "repl_backlog_first_byte_offset",
        ),
        ("redis.replication.offset", "master_repl_offset"),
        ("redis.slaves.connected", "connected_slaves"),
        ("redis.uptime", "uptime_in_seconds"),
    ];
    for (name, key) in ints {
        if let Some(value) = int(key) {
            points.int(name, value, vec![]);
        }
    }
    for (key, state) in [
        ("used_cpu_sys", "sys"),
        ("used_cpu_sys_children", "sys_children"),
        ("used_cpu_sys_main_thread", "sys_main_thread"),
        ("used_cpu_user", "user"),
        ("used_cpu_user_children", "user_children"),
        ("used_cpu_user_main_thread", "user_main_thread"),
    ] {
        if let Some(value) = float(key) {
            points.double(
                "redis.cpu.time",
                value,
                vec![string_attribute("state", state)],
            );
        }
    }
    if let Some(usec) = int("latest_fork_usec") {
        points.double("redis.latest_fork", usec as f64 / 1e6, vec![]);
    }
    if let Some(ratio) = float("mem_fragmentation_ratio") {
        points.double("redis.memory.fragmentation_ratio", ratio, vec![]);
    }
    if let (Some(hits), Some(misses)) = (int("keyspace_hits"), int("keyspace_misses"))
        && let Some(r) = ratio(hits as f64, (hits + misses) as f64)
    {
        points.double("redis.keyspace.hit_ratio", r, vec![]);
    }
    if let (Some(used), Some(max)) = (int("used_memory"), int("maxmemory"))
        && let Some(r) = ratio(used as f64, max as f64)
    {
        points.double("redis.memory.utilization", r, vec![]);
    }
    match info.get("role").map(|r| r.trim()) {
        Some("master") => points.int("redis.role", 1, vec![string_attribute("role", "primary")]),
        Some("slave") => {
            points.int("redis.role", 1, vec![string_attribute("role", "replica")]);
            if let Some(seconds) = int("master_last_io_seconds_ago").filter(|s| *s >= 0) {
                points.int("redis.replication.lag", seconds, vec![]);
            }
        }
        _ => {}
    }
    let mut databases: Vec<(&str, &str)> = info
        .iter()
        .filter(|(k, _)| k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()))
        .map(|(k, v)| (*k, *v))
        .collect();
    databases.sort();
    for (db, fields) in databases {
        let fields = keyspace_fields(fields);
        let number = db[2..].to_string();
        let at = || vec![string_attribute("db", number.clone())];
        let field = |key: &str| fields.get(key).and_then(|v| v.parse::<i64>().ok());
        if let Some(keys) = field("keys") {
            points.int("redis.db.keys", keys, at());
        }
        if let Some(expires) = field("expires") {
            points.int("redis.db.expires", expires, at());
        }
        if let Some(ttl) = field("avg_ttl") {
            points.double("redis.db.avg_ttl", ttl as f64 / 1000.0, at());
        }
    }
}

#[async_trait::async_trait]
impl Scraper for RedisScraper {
    fn system(&self) -> &'static str {
        "redis"
    }

    fn endpoint(&self) -> &str {
        &self.plan.endpoint
    }

    fn resource(&self) -> Vec<KeyValue> {
        let mut attributes = vec![
            string_attribute("db.system.name", "redis"),
            string_attribute("server.address", self.plan.host.clone()),
            int_attribute("server.port", self.plan.port.into()),
        ];
        if let Some(version) = &self.version {
            attributes.push(string_attribute("redis.version", version.clone()));
        }
        attributes
    }

    async fn scrape(&mut self, metrics: &mut MetricsBuilder) -> Result<(), ScrapeError> {
        if self.connection.is_none() {
            // The runner's deadline bounds the scrape; these only keep
            // the client's own (shorter) defaults out of the way.
            let timeout = Some(self.plan.schedule.timeout);
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout);
            let connection = self
                .plan
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| classify(&e))?;
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut().expect("just connected");
        let text: String = redis::cmd("INFO")
            .query_async(connection)
            .await
            .map_err(|e| classify(&e))?;
        let info = parse_info(&text);
        self.version = info.get("redis_version").map(|v| v.trim().to_string());
        let mut points = Points::default();
        info_points(&info, &mut points);
        points.emit(METRICS, metrics);
        Ok(())
    }

    fn failed(&mut self, error: &ScrapeError) {
        // A multiplexed connection survives a cancelled request.
        if error.kind != "timeout" {
            self.connection = None;
        }
    }

    fn disconnect(&mut self) {
        self.connection = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_becomes_the_collectors_metrics() {
        let text = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\r\n# Stats\r\nkeyspace_hits:9\r\nkeyspace_misses:1\r\nused_memory:500\r\nmaxmemory:1000\r\nrole:master\r\nused_cpu_sys:0.5\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=2500\r\n";
        let info = parse_info(text);
        assert_eq!(info["redis_version"], "7.0.15");
        let mut points = Points::default();
        info_points(&info, &mut points);
        let mut builder = MetricsBuilder::new(1, 0);
        points.emit(METRICS, &mut builder);
        let names: Vec<&str> = builder.metrics.iter().map(|m| m.name.as_str()).collect();
        for name in [
            "redis.uptime",
            "redis.keyspace.hit_ratio",
            "redis.memory.utilization",
            "redis.db.keys",
            "redis.db.avg_ttl",
            "redis.role",
            "redis.cpu.time",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }
}
