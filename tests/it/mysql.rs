//! The `mysql` receiver against a real MariaDB the test starts on
//! 127.0.0.1 (mariadb-install-db into its own data directory, its own
//! port and socket, a monitoring user with a password): known numbers of
//! inserts, commits and queries read back, a slow query counted as slow;
//! the server killed makes `mysql.up` 0, restarted makes it 1 again.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::checks_support::{latest_value, points, start_checks, until_value};
use crate::harness::free_port;

const PASSWORD: &str = "s3cret-my";

pub struct Mariadb {
    pub port: u16,
    child: Option<Child>,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl Mariadb {
    /// Missing MariaDB: skip loudly, or fail under CI=true.
    pub fn start() -> Option<Mariadb> {
        crate::external::binary("mariadb-install-db", "mariadb-server")?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let output = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
            ])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db runs");
        assert!(
            output.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut server = Mariadb {
            port: free_port(),
            child: None,
            data,
            dir,
        };
        server.resume();
        Some(server)
    }

    pub fn resume(&mut self) {
        let child = Command::new("/usr/sbin/mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!("--port={}", self.port))
            .args([
                "--innodb-buffer-pool-size=16M",
                "--skip-log-bin",
                "--skip-name-resolve",
                "--long-query-time=0.3",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mariadbd did not listen on {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// root over TCP (mariadb-install-db leaves it without a password).
    pub async fn root(&self) -> mysql_async::Conn {
        let options = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .prefer_socket(false)
            .user(Some("root"));
        mysql_async::Conn::new(options)
            .await
            .expect("connects to the test's MariaDB")
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_commands_commits_queries_and_slow_queries_from_a_real_mariadb() {
    let Some(mut server) = Mariadb::start() else {
        return;
    };
    let mut root = server.root().await;
    root.query_drop(format!(
        "CREATE USER monitor@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';
         GRANT PROCESS, REPLICATION CLIENT ON *.* TO monitor@'127.0.0.1';
         CREATE DATABASE shop;
         CREATE TABLE shop.items (id INT PRIMARY KEY, body TEXT) ENGINE=InnoDB;"
    ))
    .await
    .unwrap();
    let run = start_checks(
        &format!(
            r#"
  mysql:
    endpoint: 127.0.0.1:{}
    username: monitor
    password: {PASSWORD}
    collection_interval: 300ms
    initial_delay: 0s
"#,
            server.port
        ),
        &["mysql"],
    )
    .await;
    let recorded = &run.backend.recorded;
    let up = until_value(recorded, "mysql.up", &[], |v| v == 1.0).await;
    assert_eq!(
        up,
        Some(1.0),
        "errors: {:?}",
        points(recorded, "mysql.scrape.errors")
            .iter()
            .map(|f| (f.text("error.type"), f.value()))
            .collect::<Vec<_>>()
    );
    let inserts = [("command", "insert")];
    let inserts_before = latest_value(recorded, "mysql.commands", &inserts).unwrap();
    let commits_before = latest_value(recorded, "mysql.handlers", &[("kind", "commit")]).unwrap();
    let questions_before = latest_value(recorded, "mysql.query.client.count", &[]).unwrap();
    let slow_before = latest_value(recorded, "mysql.query.slow.count", &[]).unwrap();
    for i in 0..25 {
        root.query_drop(format!(
            "START TRANSACTION; INSERT INTO shop.items VALUES ({i}, REPEAT('x', 100)); COMMIT;"
        ))
        .await
        .unwrap();
    }
    let inserts_after = until_value(recorded, "mysql.commands", &inserts, |v| {
        v >= inserts_before + 25.0
    })
    .await
    .unwrap();
    assert_eq!(inserts_after - inserts_before, 25.0, "Com_insert");
    let commits = until_value(recorded, "mysql.handlers", &[("kind", "commit")], |v| {
        v >= commits_before + 25.0
    })
    .await
    .unwrap();
    assert!(
        commits - commits_before >= 25.0,
        "{commits_before} -> {commits}"
    );
    let questions = until_value(recorded, "mysql.query.client.count", &[], |v| {
        v >= questions_before + 75.0
    })
    .await
    .unwrap();
    assert!(
        questions - questions_before >= 75.0,
        "{questions_before} -> {questions}"
    );

    // long_query_time is 0.3 s: a 0.6 s query is slow.
    root.query_drop("SELECT SLEEP(0.6)").await.unwrap();
    let slow = until_value(recorded, "mysql.query.slow.count", &[], |v| v > slow_before).await;
    assert_eq!(slow, Some(slow_before + 1.0), "Slow_queries");

    let max = latest_value(recorded, "mysql.connection.max", &[]).unwrap();
    assert_eq!(max, 151.0, "MariaDB's default max_connections");
    let utilization = latest_value(recorded, "mysql.connection.utilization", &[]).unwrap();
    assert!(utilization > 0.0 && utilization < 0.2, "{utilization}");
    assert_eq!(
        latest_value(recorded, "mysql.buffer_pool.limit", &[]),
        Some(16.0 * 1024.0 * 1024.0)
    );
    let hit = latest_value(recorded, "mysql.buffer_pool.hit_ratio", &[]).unwrap();
    assert!(hit > 0.5 && hit <= 1.0, "hit ratio {hit}");
    assert!(latest_value(recorded, "mysql.threads", &[("kind", "connected")]).unwrap() >= 2.0);
    drop(root);

    server.stop();
    assert_eq!(
        until_value(recorded, "mysql.up", &[], |v| v == 0.0).await,
        Some(0.0)
    );
    server.resume();
    assert_eq!(
        until_value(recorded, "mysql.up", &[], |v| v == 1.0).await,
        Some(1.0)
    );
    run.stop().await;
}
