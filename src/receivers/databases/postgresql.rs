//! `postgresql` receiver: the statistics views (`pg_stat_database`,
//! `pg_stat_user_tables`, `pg_statio_user_tables`, `pg_stat_user_indexes`,
//! `pg_stat_bgwriter`, `pg_stat_replication`, `pg_stat_activity` and, when
//! the extension is installed, `pg_stat_statements`) as the Collector's
//! `postgresql.*` metrics with `db.namespace`, `db.collection.name` and
//! `postgresql.index.name` attributes, plus derived figures:
//! `postgresql.cache.hit_ratio`, `postgresql.connection.utilization`,
//! `postgresql.queries.long_running`, `postgresql.statements.slow` and, on
//! a standby, `postgresql.replication.lag`.
//!
//! One connection reads the cluster-wide views; table and index
//! statistics are per database in PostgreSQL, so each scraped database
//! gets its own connection, kept between scrapes.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Deserialize;
use tokio_postgres::Client;

use super::{MetricSpec, Points, Schedule, ScrapeError, Scraper, counter, gauge, level, ratio};
use crate::config::secret::Secret;
use crate::receivers::hostmetrics::{MetricsBuilder, int_attribute, string_attribute};
use crate::tls::client::ClientTlsConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresqlConfig {
    /// `host:port`; the port defaults to 5432.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Only `tcp` (the Collector also offers `unix`).
    #[serde(default = "default_transport")]
    pub transport: String,
    pub username: String,
    pub password: Option<Secret>,
    /// Databases to scrape; empty: every database that accepts
    /// connections, except the templates.
    #[serde(default)]
    pub databases: Vec<String>,
    #[serde(default)]
    pub exclude_databases: Vec<String>,
    /// The database the cluster-wide views are read from.
    #[serde(default = "default_connect_database")]
    pub connect_database: String,
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub collection_interval: Duration,
    #[serde(default, with = "crate::config::duration::option")]
    pub timeout: Option<Duration>,
    #[serde(default = "default_initial_delay", with = "crate::config::duration")]
    pub initial_delay: Duration,
    /// A statement whose mean execution time (pg_stat_statements) or an
    /// active query whose running time (pg_stat_activity) is above this
    /// counts as slow.
    #[serde(default = "default_slow", with = "crate::config::duration")]
    pub slow_query_threshold: Duration,
    /// Absent, or `insecure: true`: plaintext. Otherwise TLS, verified
    /// against `ca_file` or the system's roots.
    pub tls: Option<ClientTlsConfig>,
}

fn default_endpoint() -> String {
    "localhost:5432".into()
}
fn default_transport() -> String {
    "tcp".into()
}
fn default_connect_database() -> String {
    "postgres".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_slow() -> Duration {
    Duration::from_secs(1)
}

/// A compiled `postgresql` receiver.
#[derive(Clone)]
pub struct PostgresqlPlan {
    pub schedule: Schedule,
    endpoint: String,
    host: String,
    port: u16,
    username: String,
    password: Option<Secret>,
    databases: Vec<String>,
    exclude_databases: Vec<String>,
    connect_database: String,
    slow_query_threshold: Duration,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    server_name: Option<String>,
}

impl std::fmt::Debug for PostgresqlPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresqlPlan")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("databases", &self.databases)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresqlConfig {
    pub fn compile(&self) -> Result<PostgresqlPlan, Vec<(&'static str, String)>> {
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
        let endpoint = super::host_port(&self.endpoint, 5432)
            .map_err(|e| errors.push(("endpoint", e)))
            .ok();
        if self.username.is_empty() {
            errors.push(("username", "expected a user name".into()));
        }
        let tls = match &self.tls {
            Some(tls) if !tls.insecure => tls_config(tls)
                .map_err(|e| errors.extend(e))
                .ok()
                .map(|c| (c, tls.server_name.clone())),
            _ => None,
        };
        match (schedule, endpoint) {
            (Some(schedule), Some((host, port))) if errors.is_empty() => Ok(PostgresqlPlan {
                schedule,
                endpoint: self.endpoint.clone(),
                host,
                port,
                username: self.username.clone(),
                password: self.password.clone(),
                databases: self.databases.clone(),
                exclude_databases: self.exclude_databases.clone(),
                connect_database: self.connect_database.clone(),
                slow_query_threshold: self.slow_query_threshold,
                server_name: tls.as_ref().and_then(|(_, name)| name.clone()),
                tls: tls.map(|(config, _)| config),
            }),
            _ => Err(errors),
        }
    }
}

/// A rustls client config from the `tls:` block; `insecure_skip_verify`
/// accepts any certificate.
pub fn tls_config(
    tls: &ClientTlsConfig,
) -> Result<std::sync::Arc<rustls::ClientConfig>, Vec<(&'static str, String)>> {
    let client = crate::receivers::checks::certificate::TlsClient::new(tls)?;
    Ok(client.config(!tls.insecure_skip_verify).0)
}

impl crate::components::compiled::CompiledReceiver for PostgresqlPlan {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(super::DatabaseReceiver::new(
            Box::new(self.scraper()),
            self.schedule,
        ))
    }
}

/// The registry's compile step for `postgresql`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    super::compile_with(value, path, decoder, PostgresqlConfig::compile)
}

impl PostgresqlPlan {
    pub fn scraper(&self) -> PostgresqlScraper {
        PostgresqlScraper {
            plan: self.clone(),
            main: None,
            per_database: HashMap::new(),
            has_statements: None,
        }
    }
}

pub struct PostgresqlScraper {
    plan: PostgresqlPlan,
    main: Option<Client>,
    per_database: HashMap<String, Client>,
    /// Whether pg_stat_statements is installed, asked once per connection.
    has_statements: Option<bool>,
}

pub const METRICS: &[MetricSpec] = &[
    level(
        "postgresql.backends",
        "1",
        "The number of backends connected to each database.",
    ),
    gauge(
        "postgresql.connection.max",
        "{connections}",
        "Configured maximum number of client connections allowed.",
    ),
    gauge(
        "postgresql.connection.utilization",
        "1",
        "Backends of every database over max_connections (derived).",
    ),
    level(
        "postgresql.database.count",
        "{databases}",
        "Number of user databases.",
    ),
    counter("postgresql.commits", "1", "The number of commits."),
    counter("postgresql.rollbacks", "1", "The number of rollbacks."),
    level("postgresql.db_size", "By", "The database disk usage."),
    counter(
        "postgresql.blks_hit",
        "{blks_hit}",
        "Number of times disk blocks were found already in the buffer cache.",
    ),
    counter(
        "postgresql.blks_read",
        "{blks_read}",
        "Number of disk blocks read in this database.",
    ),
    gauge(
        "postgresql.cache.hit_ratio",
        "1",
        "blks_hit / (blks_hit + blks_read) since the statistics were reset (derived).",
    ),
    counter(
        "postgresql.deadlocks",
        "{deadlock}",
        "The number of deadlocks.",
    ),
    counter(
        "postgresql.temp_files",
        "{temp_file}",
        "The number of temp files.",
    ),
    counter(
        "postgresql.temp.io",
        "By",
        "Total amount of data written to temporary files by queries.",
    ),
    counter(
        "postgresql.tup_returned",
        "{tup_returned}",
        "Number of rows returned by queries in the database.",
    ),
    counter(
        "postgresql.tup_fetched",
        "{tup_fetched}",
        "Number of rows fetched by queries in the database.",
    ),
    counter(
        "postgresql.tup_inserted",
        "{tup_inserted}",
        "Number of rows inserted by queries in the database.",
    ),
    counter(
        "postgresql.tup_updated",
        "{tup_updated}",
        "Number of rows updated by queries in the database.",
    ),
    counter(
        "postgresql.tup_deleted",
        "{tup_deleted}",
        "Number of rows deleted by queries in the database.",
    ),
    level(
        "postgresql.table.count",
        "{table}",
        "Number of user tables in a database.",
    ),
    level("postgresql.table.size", "By", "Disk space used by a table."),
    level(
        "postgresql.rows",
        "1",
        "The number of rows in the database.",
    ),
    counter(
        "postgresql.operations",
        "1",
        "The number of db row operations.",
    ),
    counter(
        "postgresql.sequential_scans",
        "{sequential_scan}",
        "The number of sequential scans.",
    ),
    counter(
        "postgresql.table.vacuum.count",
        "{vacuum}",
        "Number of times a table has manually been vacuumed.",
    ),
    counter("postgresql.blocks_read", "1", "The number of blocks read."),
    counter(
        "postgresql.index.scans",
        "{scans}",
        "The number of index scans on a table.",
    ),
    gauge(
        "postgresql.index.size",
        "By",
        "The size of the index on disk.",
    ),
    counter(
        "postgresql.bgwriter.buffers.allocated",
        "{buffers}",
        "Number of buffers allocated.",
    ),
    counter(
        "postgresql.bgwriter.buffers.writes",
        "{buffers}",
        "Number of buffers written.",
    ),
    counter(
        "postgresql.bgwriter.checkpoint.count",
        "{checkpoints}",
        "The number of checkpoints performed.",
    ),
    counter(
        "postgresql.bgwriter.maxwritten",
        "1",
        "Number of times the background writer stopped a cleaning scan because it had written too many buffers.",
    ),
    gauge(
        "postgresql.replication.data_delay",
        "By",
        "The amount of data delayed in replication.",
    ),
    gauge(
        "postgresql.wal.lag",
        "s",
        "Time between flushing recent WAL locally and receiving notification that the standby server has completed an operation with it.",
    ),
    gauge(
        "postgresql.replication.lag",
        "s",
        "On a standby: time since the last transaction replayed from the primary was committed there (derived).",
    ),
    gauge(
        "postgresql.queries.long_running",
        "{query}",
        "Active queries running longer than slow_query_threshold, from pg_stat_activity (derived).",
    ),
    gauge(
        "postgresql.queries.longest",
        "s",
        "Running time of the longest active query, from pg_stat_activity (derived).",
    ),
    counter(
        "postgresql.query.execution.time",
        "s",
        "The total execution time of SQL statements currently tracked by pg_stat_statements for the database.",
    ),
    counter(
        "postgresql.statements.calls",
        "{call}",
        "Executions of the statements pg_stat_statements tracks for the database (derived).",
    ),
    gauge(
        "postgresql.statements.slow",
        "{statement}",
        "Statements tracked by pg_stat_statements whose mean execution time is above slow_query_threshold (derived).",
    ),
];

fn db(name: &str) -> KeyValue {
    string_attribute("db.namespace", name)
}

fn classify(error: &tokio_postgres::Error, connecting: bool) -> ScrapeError {
    use tokio_postgres::error::SqlState;
    let kind = match error.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD => "authentication",
        Some(c) if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => "authentication",
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => "unknown_database",
        Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => "too_many_connections",
        Some(c) if *c == SqlState::CANNOT_CONNECT_NOW => "starting_up",
        Some(c) if *c == SqlState::ADMIN_SHUTDOWN => "shutting_down",
        _ => {
            let io = std::error::Error::source(error)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(|e| e.kind());
            match io {
                Some(std::io::ErrorKind::ConnectionRefused) => "connection_refused",
                _ if connecting => "connection",
                _ if error.is_closed() => "connection_closed",
                _ => "query",
            }
        }
    };
    let message = match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error.to_string(),
    };
    ScrapeError::new(kind, message)
}

/// A column as i64 or f64, without panicking on a type PostgreSQL
/// changed (every query casts to bigint or float8 to make this hold).
fn int(row: &tokio_postgres::Row, index: usize) -> Result<i64, ScrapeError> {
    row.try_get::<_, Option<i64>>(index)
        .map(|v| v.unwrap_or(0))
        .map_err(|e| ScrapeError::new("query", e.to_string()))
}

fn double(row: &tokio_postgres::Row, index: usize) -> Result<f64, ScrapeError> {
    row.try_get::<_, Option<f64>>(index)
        .map(|v| v.unwrap_or(0.0))
        .map_err(|e| ScrapeError::new("query", e.to_string()))
}

fn text(row: &tokio_postgres::Row, index: usize) -> Result<String, ScrapeError> {
    row.try_get::<_, Option<String>>(index)
        .map(|v| v.unwrap_or_default())
        .map_err(|e| ScrapeError::new("query", e.to_string()))
}

const DATABASES: &str = "SELECT d.datname, s.numbackends::bigint, s.xact_commit::bigint, s.xact_rollback::bigint,
        s.blks_read::bigint, s.blks_hit::bigint, s.deadlocks::bigint, s.temp_files::bigint, s.temp_bytes::bigint,
        s.tup_returned::bigint, s.tup_fetched::bigint, s.tup_inserted::bigint, s.tup_updated::bigint,
        s.tup_deleted::bigint, pg_database_size(d.oid)::bigint
    FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid
    WHERE d.datallowconn AND NOT d.datistemplate
    ORDER BY d.datname";

const TABLES: &str = "SELECT t.schemaname || '.' || t.relname, t.n_live_tup::bigint, t.n_dead_tup::bigint,
        t.n_tup_ins::bigint, t.n_tup_upd::bigint, t.n_tup_del::bigint, t.n_tup_hot_upd::bigint,
        t.seq_scan::bigint, t.vacuum_count::bigint, pg_relation_size(t.relid)::bigint,
        io.heap_blks_read::bigint, io.heap_blks_hit::bigint, io.idx_blks_read::bigint, io.idx_blks_hit::bigint,
        io.toast_blks_read::bigint, io.toast_blks_hit::bigint, io.tidx_blks_read::bigint, io.tidx_blks_hit::bigint
    FROM pg_stat_user_tables t JOIN pg_statio_user_tables io ON io.relid = t.relid";

const INDEXES: &str = "SELECT schemaname || '.' || relname, indexrelname, idx_scan::bigint,
        pg_relation_size(indexrelid)::bigint
    FROM pg_stat_user_indexes";

const BGWRITER: &str = "SELECT buffers_alloc::bigint, buffers_backend::bigint, buffers_backend_fsync::bigint,
        buffers_checkpoint::bigint, buffers_clean::bigint, checkpoints_req::bigint, checkpoints_timed::bigint,
        maxwritten_clean::bigint
    FROM pg_stat_bgwriter";

const REPLICATION: &str = "SELECT COALESCE(client_addr::text, 'unix'),
        COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint,
        COALESCE(EXTRACT(EPOCH FROM write_lag), 0)::float8,
        COALESCE(EXTRACT(EPOCH FROM flush_lag), 0)::float8,
        COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8
    FROM pg_stat_replication";

/// A standby's replay lag in seconds: 0 once it has replayed all the WAL
/// it received, otherwise the age of its last replayed transaction. The
/// age alone grows on every idle standby (nothing new to replay) and would
/// make a lag rule fire on a healthy one. A standby cut off from its
/// primary also shows 0 here; `postgresql.up` on the primary and the
/// primary's `postgresql.replication.data_delay` see that case.
const STANDBY_LAG: &str = "SELECT CASE
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
        ELSE EXTRACT(EPOCH FROM (clock_timestamp() - pg_last_xact_replay_timestamp()))
    END::float8";

/// Client backends now running a query, with how long it has run.
const ACTIVITY: &str =
    "SELECT datname, EXTRACT(EPOCH FROM (clock_timestamp() - query_start))::float8
    FROM pg_stat_activity
    WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
      AND datname IS NOT NULL AND query_start IS NOT NULL";

const STATEMENTS: &str =
    "SELECT d.datname, sum(s.calls)::bigint, (sum(s.total_exec_time) / 1000)::float8,
        (count(*) FILTER (WHERE s.mean_exec_time > $1))::bigint
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    GROUP BY d.datname";

impl PostgresqlScraper {
    async fn connect(&self, database: &str) -> Result<Client, ScrapeError> {
        let plan = &self.plan;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&plan.host)
            .port(plan.port)
            .user(&plan.username)
            .dbname(database)
            .application_name("sidewatch")
            .connect_timeout(plan.schedule.timeout);
        if let Some(password) = &plan.password {
            config.password(password.expose());
        }
        let client = match &plan.tls {
            Some(tls) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                if let Some(name) = &plan.server_name {
                    // The certificate is verified against `host`; with
                    // `hostaddr` the connection goes to the endpoint's
                    // address while `host` names the certificate.
                    config.host(name);
                    config.hostaddr(resolve_one(&plan.host, plan.port).await?);
                }
                let (client, connection) = config
                    .connect(connector)
                    .await
                    .map_err(|e| classify(&e, true))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            None => {
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| classify(&e, true))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(client)
    }

    /// The open connection to `database`, or a new one.
    async fn client(&mut self, database: Option<&str>) -> Result<&Client, ScrapeError> {
        match database {
            None => {
                if self.main.as_ref().is_none_or(Client::is_closed) {
                    let name = self.plan.connect_database.clone();
                    self.main = Some(self.connect(&name).await?);
                    self.has_statements = None;
                }
                Ok(self.main.as_ref().expect("just connected"))
            }
            Some(name) => {
                if self.per_database.get(name).is_none_or(Client::is_closed) {
                    let client = self.connect(name).await?;
                    self.per_database.insert(name.to_string(), client);
                }
                Ok(&self.per_database[name])
            }
        }
    }

    fn wanted(plan: &PostgresqlPlan, database: &str) -> bool {
        (plan.databases.is_empty() || plan.databases.iter().any(|d| d == database))
            && !plan.exclude_databases.iter().any(|d| d == database)
    }

    async fn cluster(&mut self, points: &mut Points) -> Result<Vec<String>, ScrapeError> {
        let slow_ms = self.plan.slow_query_threshold.as_secs_f64() * 1000.0;
        let slow_s = self.plan.slow_query_threshold.as_secs_f64();
        let plan = self.plan.clone();
        let client = self.client(None).await?;
        let rows = client
            .query(DATABASES, &[])
            .await
            .map_err(|e| classify(&e, false))?;
        let max: i64 = client
            .query_one(
                "SELECT setting::bigint FROM pg_settings WHERE name = 'max_connections'",
                &[],
            )
            .await
            .map_err(|e| classify(&e, false))
            .and_then(|row| int(&row, 0))?;
        let in_recovery: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| classify(&e, false))?
            .try_get(0)
            .map_err(|e| ScrapeError::new("query", e.to_string()))?;
        let mut all_backends = 0;
        let mut databases = Vec::new();
        for row in &rows {
            let name = text(row, 0)?;
            // Connections count against max_connections whatever the
            // database.
            all_backends += int(row, 1)?;
            if !Self::wanted(&plan, &name) {
                continue;
            }
            let at = || vec![db(&name)];
            points.int("postgresql.backends", int(row, 1)?, at());
            points.int("postgresql.commits", int(row, 2)?, at());
            points.int("postgresql.rollbacks", int(row, 3)?, at());
            let (read, hit) = (int(row, 4)?, int(row, 5)?);
            points.int("postgresql.blks_read", read, at());
            points.int("postgresql.blks_hit", hit, at());
            if let Some(r) = ratio(hit as f64, (hit + read) as f64) {
                points.double("postgresql.cache.hit_ratio", r, at());
            }
            points.int("postgresql.deadlocks", int(row, 6)?, at());
            points.int("postgresql.temp_files", int(row, 7)?, at());
            points.int("postgresql.temp.io", int(row, 8)?, at());
            points.int("postgresql.tup_returned", int(row, 9)?, at());
            points.int("postgresql.tup_fetched", int(row, 10)?, at());
            points.int("postgresql.tup_inserted", int(row, 11)?, at());
            points.int("postgresql.tup_updated", int(row, 12)?, at());
            points.int("postgresql.tup_deleted", int(row, 13)?, at());
            points.int("postgresql.db_size", int(row, 14)?, at());
            databases.push(name);
        }
        points.int("postgresql.database.count", databases.len() as i64, vec![]);
        points.int("postgresql.connection.max", max, vec![]);
        if let Some(r) = ratio(all_backends as f64, max as f64) {
            points.double("postgresql.connection.utilization", r, vec![]);
        }

        // pg_stat_bgwriter lost its checkpoint columns in PostgreSQL 17:
        // where the query fails, these are left out.
        if let Ok(row) = client.query_one(BGWRITER, &[]).await {
            points.int(
                "postgresql.bgwriter.buffers.allocated",
                int(&row, 0)?,
                vec![],
            );
            for (index, source) in [
                (1, "backend"),
                (2, "backend_fsync"),
                (3, "checkpoints"),
                (4, "bgwriter"),
            ] {
                points.int(
                    "postgresql.bgwriter.buffers.writes",
                    int(&row, index)?,
                    vec![string_attribute("source", source)],
                );
            }
            for (index, kind) in [(5, "requested"), (6, "scheduled")] {
                points.int(
                    "postgresql.bgwriter.checkpoint.count",
                    int(&row, index)?,
                    vec![string_attribute("type", kind)],
                );
            }
            points.int("postgresql.bgwriter.maxwritten", int(&row, 7)?, vec![]);
        }

        if in_recovery {
            let row = client
                .query_one(STANDBY_LAG, &[])
                .await
                .map_err(|e| classify(&e, false))?;
            if let Ok(Some(lag)) = row.try_get::<_, Option<f64>>(0) {
                points.double("postgresql.replication.lag", lag.max(0.0), vec![]);
            }
        } else {
            for row in client
                .query(REPLICATION, &[])
                .await
                .map_err(|e| classify(&e, false))?
            {
                let client = text(&row, 0)?;
                let at = || vec![string_attribute("replication_client", client.clone())];
                points.int("postgresql.replication.data_delay", int(&row, 1)?, at());
                for (index, operation) in [(2, "write"), (3, "flush"), (4, "replay")] {
                    let mut attributes = at();
                    attributes.push(string_attribute("operation", operation));
                    points.double("postgresql.wal.lag", double(&row, index)?, attributes);
                }
            }
        }

        let mut long_running: HashMap<String, (i64, f64)> =
            databases.iter().map(|d| (d.clone(), (0, 0.0))).collect();
        for row in client
            .query(ACTIVITY, &[])
            .await
            .map_err(|e| classify(&e, false))?
        {
            let name = text(&row, 0)?;
            let seconds = double(&row, 1)?;
            if let Some((count, longest)) = long_running.get_mut(&name) {
                *count += (seconds > slow_s) as i64;
                *longest = longest.max(seconds);
            }
        }
        for (name, (count, longest)) in long_running {
            points.int("postgresql.queries.long_running", count, vec![db(&name)]);
            points.double("postgresql.queries.longest", longest, vec![db(&name)]);
        }

        if self.has_statements.is_none() {
            let client = self.client(None).await?;
            let installed = client
                .query_opt(
                    "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'",
                    &[],
                )
                .await
                .map_err(|e| classify(&e, false))?
                .is_some();
            self.has_statements = Some(installed);
        }
        if self.has_statements == Some(true) {
            let client = self.client(None).await?;
            // Installed but not preloaded, the view errors: left out.
            match client.query(STATEMENTS, &[&slow_ms]).await {
                Ok(rows) => {
                    for row in rows {
                        let name = text(&row, 0)?;
                        if !databases.contains(&name) {
                            continue;
                        }
                        points.int(
                            "postgresql.statements.calls",
                            int(&row, 1)?,
                            vec![db(&name)],
                        );
                        points.double(
                            "postgresql.query.execution.time",
                            double(&row, 2)?,
                            vec![db(&name)],
                        );
                        points.int("postgresql.statements.slow", int(&row, 3)?, vec![db(&name)]);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "pg_stat_statements is installed but not readable")
                }
            }
        }
        Ok(databases)
    }

    async fn database(&mut self, name: &str, points: &mut Points) -> Result<(), ScrapeError> {
        let client = self.client(Some(name)).await?;
        let tables = client
            .query(TABLES, &[])
            .await
            .map_err(|e| classify(&e, false))?;
        let indexes = client
            .query(INDEXES, &[])
            .await
            .map_err(|e| classify(&e, false))?;
        points.int(
            "postgresql.table.count",
            tables.len() as i64,
            vec![db(name)],
        );
        for row in &tables {
            let table = text(row, 0)?;
            let at = || {
                vec![
                    db(name),
                    string_attribute("db.collection.name", table.clone()),
                ]
            };
            let with = |key: &str, value: &str| {
                let mut attributes = at();
                attributes.push(string_attribute(key, value));
                attributes
            };
            points.int("postgresql.rows", int(row, 1)?, with("state", "live"));
            points.int("postgresql.rows", int(row, 2)?, with("state", "dead"));
            for (index, operation) in [(3, "ins"), (4, "upd"), (5, "del"), (6, "hot_upd")] {
                points.int(
                    "postgresql.operations",
                    int(row, index)?,
                    with("operation", operation),
                );
            }
            points.int("postgresql.sequential_scans", int(row, 7)?, at());
            points.int("postgresql.table.vacuum.count", int(row, 8)?, at());
            points.int("postgresql.table.size", int(row, 9)?, at());
            for (index, source) in [
                (10, "heap_read"),
                (11, "heap_hit"),
                (12, "idx_read"),
                (13, "idx_hit"),
                (14, "toast_read"),
                (15, "toast_hit"),
                (16, "tidx_read"),
                (17, "tidx_hit"),
            ] {
                points.int(
                    "postgresql.blocks_read",
                    int(row, index)?,
                    with("source", source),
                );
            }
        }
        for row in &indexes {
            let attributes = vec![
                db(name),
                string_attribute("db.collection.name", text(row, 0)?),
                string_attribute("postgresql.index.name", text(row, 1)?),
            ];
            points.int("postgresql.index.scans", int(row, 2)?, attributes.clone());
            points.int("postgresql.index.size", int(row, 3)?, attributes);
        }
        Ok(())
    }
}

async fn resolve_one(host: &str, port: u16) -> Result<std::net::IpAddr, ScrapeError> {
    tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .ok_or_else(|| ScrapeError::new("dns", format!("cannot resolve {host}")))
}

#[async_trait::async_trait]
impl Scraper for PostgresqlScraper {
    fn system(&self) -> &'static str {
        "postgresql"
    }

    fn endpoint(&self) -> &str {
        &self.plan.endpoint
    }

    fn resource(&self) -> Vec<KeyValue> {
        vec![
            string_attribute("db.system.name", "postgresql"),
            string_attribute("server.address", self.plan.host.clone()),
            int_attribute("server.port", self.plan.port.into()),
        ]
    }

    async fn scrape(&mut self, metrics: &mut MetricsBuilder) -> Result<(), ScrapeError> {
        let mut points = Points::default();
        let databases = self.cluster(&mut points).await?;
        // Connections to databases no longer scraped are closed.
        self.per_database.retain(|name, _| databases.contains(name));
        for name in &databases {
            // A database dropped between the two queries is skipped, not
            // a failed scrape.
            match self.database(name, &mut points).await {
                Err(error) if error.kind == "unknown_database" => {
                    self.per_database.remove(name);
                }
                other => other?,
            }
        }
        points.emit(METRICS, metrics);
        Ok(())
    }

    fn failed(&mut self, error: &ScrapeError) {
        // tokio-postgres drops the answer of a query whose future was
        // cancelled, so a connection survives a timeout; a closed one is
        // replaced at the next scrape (`is_closed`). Other errors may
        // come from a server that changed (restarted, password rotated):
        // start afresh.
        if error.kind != "timeout" {
            self.disconnect();
        }
    }

    fn disconnect(&mut self) {
        self.main = None;
        self.per_database.clear();
        self.has_statements = None;
    }
}
