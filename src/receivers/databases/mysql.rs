//! `mysql` receiver (MySQL and MariaDB): `SHOW GLOBAL STATUS`, the
//! variables `max_connections` and `innodb_buffer_pool_size`, and
//! `SHOW REPLICA STATUS` as the Collector's `mysql.*` metrics, plus
//! derived `mysql.buffer_pool.hit_ratio`, `mysql.connection.max` and
//! `mysql.connection.utilization`.

use std::collections::HashMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Deserialize;

use super::{MetricSpec, Points, Schedule, ScrapeError, Scraper, counter, gauge, level, ratio};
use crate::config::secret::Secret;
use crate::receivers::hostmetrics::{MetricsBuilder, int_attribute, string_attribute};
use crate::tls::client::ClientTlsConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `host:port`; the port defaults to 3306.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(default = "default_username")]
    pub username: String,
    pub password: Option<Secret>,
    /// The database to connect to (none needed for the server's status).
    pub database: Option<String>,
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
    "localhost:3306".into()
}
fn default_transport() -> String {
    "tcp".into()
}
fn default_username() -> String {
    "root".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}

#[derive(Clone)]
pub struct MysqlPlan {
    pub schedule: Schedule,
    endpoint: String,
    host: String,
    port: u16,
    options: mysql_async::Opts,
}

impl std::fmt::Debug for MysqlPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlPlan")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl MysqlConfig {
    pub fn compile(&self) -> Result<MysqlPlan, Vec<(&'static str, String)>> {
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
        let endpoint = super::host_port(&self.endpoint, 3306)
            .map_err(|e| errors.push(("endpoint", e)))
            .ok();
        let ssl = match self.tls.as_ref().filter(|t| !t.insecure) {
            None => None,
            Some(tls) => match tls.check() {
                Ok(()) => {
                    let mut ssl = mysql_async::SslOpts::default()
                        .with_danger_accept_invalid_certs(tls.insecure_skip_verify);
                    if let Some(ca) = &tls.ca_file {
                        ssl = ssl.with_root_certs(vec![ca.clone().into()]);
                    }
                    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                        ssl = ssl.with_client_identity(Some(mysql_async::ClientIdentity::new(
                            cert.clone().into(),
                            key.clone().into(),
                        )));
                    }
                    Some(ssl)
                }
                Err((field, message)) => {
                    errors.push(("tls", format!("{field}: {message}")));
                    None
                }
            },
        };
        let (Some(schedule), Some((host, port))) = (schedule, endpoint) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let options = mysql_async::OptsBuilder::default()
            .ip_or_hostname(host.clone())
            .tcp_port(port)
            .prefer_socket(false)
            .user(Some(self.username.clone()))
            .pass(
                self.password
                    .as_ref()
                    .filter(|p| !p.expose().is_empty())
                    .map(|p| p.expose().to_string()),
            )
            .db_name(self.database.clone())
            .ssl_opts(ssl);
        Ok(MysqlPlan {
            schedule,
            endpoint: self.endpoint.clone(),
            host,
            port,
            options: options.into(),
        })
    }
}

impl crate::components::compiled::CompiledReceiver for MysqlPlan {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(super::DatabaseReceiver::new(
            Box::new(self.scraper()),
            self.schedule,
        ))
    }
}

/// The registry's compile step for `mysql`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    super::compile_with(value, path, decoder, MysqlConfig::compile)
}

impl MysqlPlan {
    pub fn scraper(&self) -> MysqlScraper {
        MysqlScraper {
            plan: self.clone(),
            connection: None,
        }
    }
}

pub struct MysqlScraper {
    plan: MysqlPlan,
    connection: Option<mysql_async::Conn>,
}

pub const METRICS: &[MetricSpec] = &[
    level(
        "mysql.buffer_pool.data_pages",
        "1",
        "The number of data pages in the InnoDB buffer pool.",
    ),
    level(
        "mysql.buffer_pool.limit",
        "By",
        "The configured size of the InnoDB buffer pool.",
    ),
    counter(
        "mysql.buffer_pool.operations",
        "1",
        "The number of operations on the InnoDB buffer pool.",
    ),
    counter(
        "mysql.buffer_pool.page_flushes",
        "1",
        "The number of requests to flush pages from the InnoDB buffer pool.",
    ),
    level(
        "mysql.buffer_pool.pages",
        "1",
        "The number of pages in the InnoDB buffer pool.",
    ),
    level(
        "mysql.buffer_pool.usage",
        "By",
        "The number of bytes in the InnoDB buffer pool.",
    ),
    gauge(
        "mysql.buffer_pool.hit_ratio",
        "1",
        "1 - reads from disk / read requests of the InnoDB buffer pool, since the server started (derived).",
    ),
    counter(
        "mysql.commands",
        "1",
        "The number of times each type of command has been executed.",
    ),
    counter(
        "mysql.connection.count",
        "1",
        "The number of connection attempts (successful or not) to the MySQL server.",
    ),
    gauge(
        "mysql.connection.max",
        "{connection}",
        "The max_connections setting (derived).",
    ),
    gauge(
        "mysql.connection.utilization",
        "1",
        "Threads_connected / max_connections (derived).",
    ),
    counter(
        "mysql.handlers",
        "1",
        "The number of requests to various MySQL handlers.",
    ),
    counter("mysql.locks", "1", "The number of MySQL locks."),
    counter(
        "mysql.opened_resources",
        "1",
        "The number of opened resources.",
    ),
    counter(
        "mysql.query.client.count",
        "1",
        "The number of statements executed by the server. This includes only statements sent to the server by clients.",
    ),
    counter(
        "mysql.query.count",
        "1",
        "The number of statements executed by the server.",
    ),
    counter("mysql.query.slow.count", "1", "The number of slow queries."),
    level(
        "mysql.replica.sql_delay",
        "s",
        "The number of seconds that the replica must lag the source.",
    ),
    level(
        "mysql.replica.time_behind_source",
        "s",
        "This field is an indication of how “late” the replica is.",
    ),
    counter(
        "mysql.row_operations",
        "1",
        "The number of InnoDB row operations.",
    ),
    counter("mysql.sorts", "1", "The number of MySQL sorts."),
    level("mysql.threads", "1", "The state of MySQL threads."),
    counter(
        "mysql.tmp_resources",
        "1",
        "The number of created temporary resources.",
    ),
    counter(
        "mysql.uptime",
        "s",
        "The number of seconds that the server has been up.",
    ),
];

/// (metric, attribute key, [(status variable, attribute value)]).
type Family = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const FAMILIES: &[Family] = &[
    (
        "mysql.buffer_pool.pages",
        "kind",
        &[
            ("Innodb_buffer_pool_pages_data", "data"),
            ("Innodb_buffer_pool_pages_free", "free"),
            ("Innodb_buffer_pool_pages_misc", "misc"),
        ],
    ),
    (
        "mysql.buffer_pool.operations",
        "operation",
        &[
            ("Innodb_buffer_pool_read_ahead_rnd", "read_ahead_rnd"),
            ("Innodb_buffer_pool_read_ahead", "read_ahead"),
            (
                "Innodb_buffer_pool_read_ahead_evicted",
                "read_ahead_evicted",
            ),
            ("Innodb_buffer_pool_read_requests", "read_requests"),
            ("Innodb_buffer_pool_reads", "reads"),
            ("Innodb_buffer_pool_wait_free", "wait_free"),
            ("Innodb_buffer_pool_write_requests", "write_requests"),
        ],
    ),
    (
        "mysql.commands",
        "command",
        &[
            ("Com_delete", "delete"),
            ("Com_insert", "insert"),
            ("Com_select", "select"),
            ("Com_update", "update"),
        ],
    ),
    (
        "mysql.handlers",
        "kind",
        &[
            ("Handler_commit", "commit"),
            ("Handler_delete", "delete"),
            ("Handler_discover", "discover"),
            ("Handler_external_lock", "external_lock"),
            ("Handler_mrr_init", "mrr_init"),
            ("Handler_prepare", "prepare"),
            ("Handler_read_first", "read_first"),
            ("Handler_read_key", "read_key"),
            ("Handler_read_last", "read_last"),
            ("Handler_read_next", "read_next"),
            ("Handler_read_prev", "read_prev"),
            ("Handler_read_rnd", "read_rnd"),
            ("Handler_read_rnd_next", "read_rnd_next"),
            ("Handler_rollback", "rollback"),
            ("Handler_savepoint", "savepoint"),
            ("Handler_savepoint_rollback", "savepoint_rollback"),
            ("Handler_update", "update"),
            ("Handler_write", "write"),
        ],
    ),
    (
        "mysql.locks",
        "kind",
        &[
            ("Table_locks_immediate", "immediate"),
            ("Table_locks_waited", "waited"),
        ],
    ),
    (
        "mysql.opened_resources",
        "kind",
        &[
            ("Opened_files", "file"),
            ("Opened_table_definitions", "table_definition"),
            ("Opened_tables", "table"),
        ],
    ),
    (
        "mysql.row_operations",
        "operation",
        &[
            ("Innodb_rows_deleted", "deleted"),
            ("Innodb_rows_inserted", "inserted"),
            ("Innodb_rows_read", "read"),
            ("Innodb_rows_updated", "updated"),
        ],
    ),
    (
        "mysql.sorts",
        "kind",
        &[
            ("Sort_merge_passes", "merge_passes"),
            ("Sort_range", "range"),
            ("Sort_rows", "rows"),
            ("Sort_scan", "scan"),
        ],
    ),
    (
        "mysql.threads",
        "kind",
        &[
            ("Threads_cached", "cached"),
            ("Threads_connected", "connected"),
            ("Threads_created", "created"),
            ("Threads_running", "running"),
        ],
    ),
    (
        "mysql.tmp_resources",
        "resource",
        &[
            ("Created_tmp_disk_tables", "disk_tables"),
            ("Created_tmp_files", "files"),
            ("Created_tmp_tables", "tables"),
        ],
    ),
];

/// The status variables (and the two settings) as points.
pub fn status_points(status: &HashMap<String, String>, points: &mut Points) {
    let int = |key: &str| status.get(key).and_then(|v| v.trim().parse::<i64>().ok());
    for (metric, key, variables) in FAMILIES {
        for (variable, value) in *variables {
            if let Some(v) = int(variable) {
                points.int(metric, v, vec![string_attribute(key, *value)]);
            }
        }
    }
    for (metric, variable) in [
        ("mysql.uptime", "Uptime"),
        ("mysql.connection.count", "Connections"),
        ("mysql.query.count", "Queries"),
        ("mysql.query.client.count", "Questions"),
        ("mysql.query.slow.count", "Slow_queries"),
        (
            "mysql.buffer_pool.page_flushes",
            "Innodb_buffer_pool_pages_flushed",
        ),
        ("mysql.buffer_pool.limit", "innodb_buffer_pool_size"),
        ("mysql.connection.max", "max_connections"),
    ] {
        if let Some(v) = int(variable) {
            points.int(metric, v, vec![]);
        }
    }
    let status_attribute = |s: &'static str| vec![string_attribute("status", s)];
    if let (Some(data), Some(dirty)) = (
        int("Innodb_buffer_pool_pages_data"),
        int("Innodb_buffer_pool_pages_dirty"),
    ) {
        points.int(
            "mysql.buffer_pool.data_pages",
            dirty,
            status_attribute("dirty"),
        );
        points.int(
            "mysql.buffer_pool.data_pages",
            (data - dirty).max(0),
            status_attribute("clean"),
        );
    }
    if let (Some(data), Some(dirty)) = (
        int("Innodb_buffer_pool_bytes_data"),
        int("Innodb_buffer_pool_bytes_dirty"),
    ) {
        points.int("mysql.buffer_pool.usage", dirty, status_attribute("dirty"));
        points.int(
            "mysql.buffer_pool.usage",
            (data - dirty).max(0),
            status_attribute("clean"),
        );
    }
    if let (Some(reads), Some(requests)) = (
        int("Innodb_buffer_pool_reads"),
        int("Innodb_buffer_pool_read_requests"),
    ) && let Some(r) = ratio(reads as f64, requests as f64)
    {
        points.double("mysql.buffer_pool.hit_ratio", 1.0 - r, vec![]);
    }
    if let (Some(connected), Some(max)) = (int("Threads_connected"), int("max_connections"))
        && let Some(r) = ratio(connected as f64, max as f64)
    {
        points.double("mysql.connection.utilization", r, vec![]);
    }
}

fn classify(error: &mysql_async::Error) -> ScrapeError {
    let kind = match error {
        mysql_async::Error::Server(e) if e.code == 1045 => "authentication",
        mysql_async::Error::Server(e) if e.code == 1040 => "too_many_connections",
        mysql_async::Error::Server(_) => "query",
        mysql_async::Error::Io(mysql_async::IoError::Io(e))
            if e.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            "connection_refused"
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => "connection",
        _ => "query",
    };
    ScrapeError::new(kind, error.to_string())
}

impl MysqlScraper {
    async fn read(&mut self, points: &mut Points) -> Result<(), ScrapeError> {
        if self.connection.is_none() {
            let connection = mysql_async::Conn::new(self.plan.options.clone())
                .await
                .map_err(|e| classify(&e))?;
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut().expect("just connected");
        let mut status: HashMap<String, String> = connection
            .query::<(String, String), _>("SHOW GLOBAL STATUS")
            .await
            .map_err(|e| classify(&e))?
            .into_iter()
            .collect();
        let variables: Vec<(String, String)> = connection
            .query(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('max_connections', 'innodb_buffer_pool_size')",
            )
            .await
            .map_err(|e| classify(&e))?;
        status.extend(variables);
        status_points(&status, points);
        // MySQL before 8.0.22 and MariaDB before 10.5 know only SLAVE;
        // a user without REPLICATION CLIENT gets neither: left out.
        let replica = match connection
            .query::<mysql_async::Row, _>("SHOW REPLICA STATUS")
            .await
        {
            Ok(rows) => Ok(rows),
            Err(_) => {
                connection
                    .query::<mysql_async::Row, _>("SHOW SLAVE STATUS")
                    .await
            }
        };
        if let Ok(rows) = replica {
            for row in rows {
                let column = |names: &[&str]| {
                    names.iter().find_map(|name| {
                        row.get_opt::<Option<i64>, _>(*name)
                            .and_then(Result::ok)
                            .flatten()
                    })
                };
                if let Some(behind) = column(&["Seconds_Behind_Source", "Seconds_Behind_Master"]) {
                    points.int("mysql.replica.time_behind_source", behind, vec![]);
                }
                if let Some(delay) = column(&["SQL_Delay"]) {
                    points.int("mysql.replica.sql_delay", delay, vec![]);
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Scraper for MysqlScraper {
    fn system(&self) -> &'static str {
        "mysql"
    }

    fn endpoint(&self) -> &str {
        &self.plan.endpoint
    }

    fn resource(&self) -> Vec<KeyValue> {
        vec![
            string_attribute("db.system.name", "mysql"),
            string_attribute("mysql.instance.endpoint", self.plan.endpoint.clone()),
            string_attribute("server.address", self.plan.host.clone()),
            int_attribute("server.port", self.plan.port.into()),
        ]
    }

    async fn scrape(&mut self, metrics: &mut MetricsBuilder) -> Result<(), ScrapeError> {
        let mut points = Points::default();
        self.read(&mut points).await?;
        points.emit(METRICS, metrics);
        Ok(())
    }

    fn failed(&mut self, _error: &ScrapeError) {
        // A query cancelled half-way leaves its result unread on the
        // connection: start afresh.
        self.connection = None;
    }

    fn disconnect(&mut self) {
        self.connection = None;
    }
}
