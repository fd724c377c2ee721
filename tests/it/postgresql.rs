//! The `postgresql` receiver against a real PostgreSQL 15 the test starts
//! on 127.0.0.1 (its own data directory and port, password auth over
//! TCP, pg_stat_statements preloaded): a table of known size, known
//! numbers of commits, rollbacks and queries read back, a slow query seen
//! as slow; a stopped server is down within the deadline and reconnects.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::checks_support::{latest_value, points, start_checks, until_value};
use crate::harness::free_port;

const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const PASSWORD: &str = "s3cret-pg";

/// A PostgreSQL server in a temporary directory, stopped when dropped.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    options: String,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// initdb + pg_ctl start as the `postgres` user (initdb refuses root).
    /// Missing PostgreSQL: skip loudly, or fail under CI=true.
    pub fn start() -> Option<Postgres> {
        Self::start_with(false)
    }

    /// As `start`, also serving TLS with a server certificate for
    /// 127.0.0.1 signed by `ca.pem` in `tls_dir()` (`foreign-ca.pem`
    /// there signed nothing of it).
    pub fn start_tls() -> Option<Postgres> {
        Self::start_with(true)
    }

    /// The directory of the TLS test certificates.
    pub fn tls_dir(&self) -> &Path {
        self._dir.path()
    }

    fn start_with(tls: bool) -> Option<Postgres> {
        if !Path::new(BIN).join("initdb").exists() {
            crate::external::binary("postgresql-15-initdb", "postgresql")?;
        }
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let output = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("runuser runs");
            assert!(
                output.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        chown_postgres(dir.path());
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        chown_postgres(&pwfile);
        run(&[
            &format!("{BIN}/initdb"),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--pwfile",
            pwfile.to_str().unwrap(),
            "-N",
            "--no-locale",
            "-E",
            "UTF8",
        ]);
        let port = free_port();
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=20 -c fsync=off -c shared_preload_libraries=pg_stat_statements",
            dir.path().display()
        );
        if tls {
            crate::certs::all(dir.path());
            for file in ["server.pem", "server.key"] {
                chown_postgres(&dir.path().join(file));
            }
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
                dir.path().display()
            ));
        }
        let server = Postgres {
            port,
            data,
            options,
            _dir: dir,
        };
        server.resume();
        Some(server)
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`) on its own
    /// port and data directory, started.
    pub fn standby_of(primary: &Postgres) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        chown_postgres(dir.path());
        let data = dir.path().join("data");
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--", "env"])
            .arg(format!("PGPASSWORD={PASSWORD}"))
            .arg(format!("{BIN}/pg_basebackup"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-R", "-X", "stream"])
            .args(["-p", &primary.port.to_string(), "-D"])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .expect("runuser runs");
        assert!(
            output.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=20 -c fsync=off -c hot_standby=on",
            dir.path().display()
        );
        let server = Postgres {
            port,
            data,
            options,
            _dir: dir,
        };
        server.resume();
        server
    }

    fn pg_ctl(&self, args: &[&str]) {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl"), "-D"])
            .arg(&self.data)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl {args:?} failed");
    }

    /// Starts the server (again) on the same port and data.
    pub fn resume(&self) {
        let log = self.data.parent().unwrap().join("log");
        self.pg_ctl(&[
            "-w",
            "-l",
            log.to_str().unwrap(),
            "-o",
            &self.options,
            "start",
        ]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
    }

    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .password(PASSWORD)
            .dbname(database)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connects to the test's PostgreSQL");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl"), "-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn chown_postgres(path: &Path) {
    let status = Command::new("chown")
        .arg("postgres")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_sizes_commits_queries_and_slow_queries_from_a_real_postgresql() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let admin = pg.connect("postgres").await;
    admin
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    admin.batch_execute("CREATE DATABASE shop").await.unwrap();
    let shop = pg.connect("shop").await;
    // 10 000 rows of ~200 bytes: about 2.5 MB of heap.
    shop.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, body text);
         INSERT INTO items SELECT i, repeat('x', 200) FROM generate_series(1, 10000) i;
         ANALYZE items;",
    )
    .await
    .unwrap();
    let run = start_checks(
        &format!(
            r#"
  postgresql:
    endpoint: 127.0.0.1:{}
    username: postgres
    password: {PASSWORD}
    collection_interval: 500ms
    initial_delay: 0s
    slow_query_threshold: 300ms
    tls: {{ insecure: true }}
"#,
            pg.port
        ),
        &["postgresql"],
    )
    .await;
    let recorded = &run.backend.recorded;
    let shop_db = [("db.namespace", "shop")];

    let up = until_value(recorded, "postgresql.up", &[], |v| v == 1.0).await;
    assert_eq!(
        up,
        Some(1.0),
        "postgresql.up; errors: {:?}",
        points(recorded, "postgresql.scrape.errors")
            .iter()
            .map(|f| (f.text("error.type"), f.value()))
            .collect::<Vec<_>>()
    );
    let table = [
        ("db.namespace", "shop"),
        ("db.collection.name", "public.items"),
    ];
    let expected_size: i64 = shop
        .query_one("SELECT pg_relation_size('items')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(expected_size > 10_000 * 200, "{expected_size}");
    let size = until_value(recorded, "postgresql.table.size", &table, |v| {
        v == expected_size as f64
    })
    .await;
    assert_eq!(size, Some(expected_size as f64), "postgresql.table.size");
    let live = until_value(
        recorded,
        "postgresql.rows",
        &[table[0], table[1], ("state", "live")],
        |v| v == 10_000.0,
    )
    .await;
    assert_eq!(live, Some(10_000.0), "live rows");
    let index = until_value(
        recorded,
        "postgresql.index.size",
        &[("postgresql.index.name", "items_pkey")],
        |v| v > 8192.0,
    )
    .await;
    assert!(index.is_some_and(|v| v > 8192.0), "index size {index:?}");
    let db_size = latest_value(recorded, "postgresql.db_size", &shop_db).unwrap();
    assert!(db_size > expected_size as f64, "db_size {db_size}");
    assert_eq!(
        latest_value(recorded, "postgresql.connection.max", &[]),
        Some(20.0)
    );
    let utilization = latest_value(recorded, "postgresql.connection.utilization", &[]).unwrap();
    assert!(utilization > 0.0 && utilization <= 1.0, "{utilization}");

    // Known numbers of commits, rollbacks and statements.
    let commits_before = latest_value(recorded, "postgresql.commits", &shop_db).unwrap();
    let rollbacks_before = latest_value(recorded, "postgresql.rollbacks", &shop_db).unwrap();
    let calls_before = until_value(recorded, "postgresql.statements.calls", &shop_db, |_| true)
        .await
        .expect("pg_stat_statements calls for shop");
    // A connection of its own, closed after: a backend's statistics reach
    // pg_stat_database when it exits (idle, only every few seconds).
    let work = pg.connect("shop").await;
    for i in 0..40 {
        work.batch_execute(&format!(
            "BEGIN; UPDATE items SET body = 'y' WHERE id = {}; COMMIT;",
            i + 1
        ))
        .await
        .unwrap();
    }
    for _ in 0..7 {
        work.batch_execute("BEGIN; DELETE FROM items; ROLLBACK;")
            .await
            .unwrap();
    }
    for i in 0..30 {
        work.query_one("SELECT count(*) FROM items WHERE id > $1", &[&i])
            .await
            .unwrap();
    }
    drop(work);
    let rollbacks = until_value(recorded, "postgresql.rollbacks", &shop_db, |v| {
        v >= rollbacks_before + 7.0
    })
    .await
    .unwrap();
    assert_eq!(rollbacks - rollbacks_before, 7.0, "rollbacks");
    // The test's own 30 queries commit too, and so does each scrape.
    let commits = until_value(recorded, "postgresql.commits", &shop_db, |v| {
        v >= commits_before + 40.0
    })
    .await
    .unwrap();
    assert!(
        commits - commits_before >= 40.0,
        "commits {commits_before} -> {commits}"
    );
    let calls = until_value(recorded, "postgresql.statements.calls", &shop_db, |v| {
        v >= calls_before + 30.0 + 40.0 * 3.0
    })
    .await
    .unwrap();
    assert!(
        calls - calls_before >= 150.0,
        "calls {calls_before} -> {calls}"
    );
    let ratio = latest_value(recorded, "postgresql.cache.hit_ratio", &shop_db).unwrap();
    assert!(ratio > 0.5 && ratio <= 1.0, "hit ratio {ratio}");

    // A slow query: long-running while it runs, slow in pg_stat_statements
    // after.
    assert_eq!(
        latest_value(recorded, "postgresql.statements.slow", &shop_db),
        Some(0.0)
    );
    let sleeper = pg.connect("shop").await;
    let sleeping = tokio::spawn(async move {
        sleeper.batch_execute("SELECT pg_sleep(1.5)").await.unwrap();
    });
    let long = until_value(recorded, "postgresql.queries.long_running", &shop_db, |v| {
        v >= 1.0
    })
    .await;
    assert_eq!(long, Some(1.0), "long-running queries while pg_sleep runs");
    let longest = latest_value(recorded, "postgresql.queries.longest", &shop_db).unwrap();
    assert!(longest > 0.3, "longest {longest}");
    sleeping.await.unwrap();
    let slow = until_value(recorded, "postgresql.statements.slow", &shop_db, |v| {
        v >= 1.0
    })
    .await;
    assert_eq!(slow, Some(1.0), "slow statements after pg_sleep");
    let long = until_value(recorded, "postgresql.queries.long_running", &shop_db, |v| {
        v == 0.0
    })
    .await;
    assert_eq!(long, Some(0.0), "no long-running query after it ended");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postgresql_is_down_within_the_deadline_and_reconnects() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let run = start_checks(
        &format!(
            r#"
  postgresql:
    endpoint: 127.0.0.1:{}
    username: postgres
    password: {PASSWORD}
    collection_interval: 500ms
    timeout: 500ms
    initial_delay: 0s
"#,
            pg.port
        ),
        &["postgresql"],
    )
    .await;
    let recorded = &run.backend.recorded;
    let up = until_value(recorded, "postgresql.up", &[], |v| v == 1.0).await;
    assert_eq!(
        up,
        Some(1.0),
        "errors: {:?}",
        points(recorded, "postgresql.scrape.errors")
            .iter()
            .map(|f| (f.text("error.type"), f.value()))
            .collect::<Vec<_>>()
    );
    let before = points(recorded, "postgresql.scrape.duration").len();
    pg.stop();
    assert_eq!(
        until_value(recorded, "postgresql.up", &[], |v| v == 0.0).await,
        Some(0.0)
    );
    let errors = until_value(
        recorded,
        "postgresql.scrape.errors",
        &[("error.type", "connection_refused")],
        |v| v >= 2.0,
    )
    .await;
    assert!(errors.is_some_and(|v| v >= 2.0), "errors {errors:?}");
    // No scrape outlived its deadline while the server was down.
    let durations: Vec<f64> = points(recorded, "postgresql.scrape.duration")[before..]
        .iter()
        .map(|f| f.value())
        .collect();
    assert!(durations.iter().all(|d| *d < 0.6), "{durations:?}");
    pg.resume();
    assert_eq!(
        until_value(recorded, "postgresql.up", &[], |v| v == 1.0).await,
        Some(1.0),
        "errors: {:?}",
        points(recorded, "postgresql.scrape.errors")
            .iter()
            .map(|f| (f.text("error.type"), f.value()))
            .collect::<Vec<_>>()
    );
    assert!(
        latest_value(
            recorded,
            "postgresql.commits",
            &[("db.namespace", "postgres")]
        )
        .is_some()
    );
    run.stop().await;
}
