//! The `redis` receiver against a real redis-server the test starts on
//! 127.0.0.1 (its own port and directory, a password, a maxmemory): known
//! keys, hits, misses and commands read back; the server killed makes
//! `redis.up` 0 and a restarted one makes it 1 again.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::checks_support::{latest_value, points, start_checks, until_value};
use crate::harness::free_port;

pub const PASSWORD: &str = "s3cret-redis";

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Missing redis-server: skip loudly, or fail under CI=true.
    pub fn start() -> Option<RedisServer> {
        crate::external::binary("redis-server", "redis-server")?;
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        server.resume();
        Some(server)
    }

    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--requirepass", PASSWORD, "--maxmemory", "10mb"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not listen on {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn connect(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{}/", self.port))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connects to the test's redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_keys_hits_misses_memory_and_uptime_from_a_real_redis_and_sees_it_go_down() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let mut client = server.connect().await;
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg("v")
            .query_async(&mut client)
            .await
            .unwrap();
    }
    for i in 0..30 {
        let _: Option<String> = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query_async(&mut client)
            .await
            .unwrap();
    }
    for i in 0..10 {
        let _: Option<String> = redis::cmd("GET")
            .arg(format!("missing:{i}"))
            .query_async(&mut client)
            .await
            .unwrap();
    }
    let run = start_checks(
        &format!(
            r#"
  redis:
    endpoint: 127.0.0.1:{}
    password: {PASSWORD}
    collection_interval: 300ms
    initial_delay: 0s
"#,
            server.port
        ),
        &["redis"],
    )
    .await;
    let recorded = &run.backend.recorded;
    assert_eq!(
        until_value(recorded, "redis.up", &[], |v| v == 1.0).await,
        Some(1.0)
    );
    let keys = points(recorded, "redis.db.keys")
        .into_iter()
        .rfind(|f| f.text("db").as_deref() == Some("0"))
        .map(|f| f.value());
    assert_eq!(keys, Some(100.0), "redis.db.keys for db 0");
    assert_eq!(
        latest_value(recorded, "redis.keyspace.hits", &[]),
        Some(30.0)
    );
    assert_eq!(
        latest_value(recorded, "redis.keyspace.misses", &[]),
        Some(10.0)
    );
    assert_eq!(
        latest_value(recorded, "redis.keyspace.hit_ratio", &[]),
        Some(0.75)
    );
    let commands = latest_value(recorded, "redis.commands.processed", &[]).unwrap();
    assert!(commands >= 140.0, "commands processed {commands}");
    assert_eq!(
        latest_value(recorded, "redis.maxmemory", &[]),
        Some(10.0 * 1024.0 * 1024.0)
    );
    let utilization = latest_value(recorded, "redis.memory.utilization", &[]).unwrap();
    assert!(utilization > 0.0 && utilization < 1.0, "{utilization}");
    assert!(latest_value(recorded, "redis.memory.used", &[]).unwrap() > 100_000.0);
    let version = points(recorded, "redis.up")
        .last()
        .and_then(|f| {
            f.resource
                .iter()
                .find(|kv| kv.key == "redis.version")
                .cloned()
        })
        .expect("redis.version on the resource");
    assert!(format!("{version:?}").contains('.'), "{version:?}");

    server.stop();
    assert_eq!(
        until_value(recorded, "redis.up", &[], |v| v == 0.0).await,
        Some(0.0)
    );
    let errors = points(recorded, "redis.scrape.errors");
    assert!(!errors.is_empty(), "redis.scrape.errors counted");
    server.resume();
    assert_eq!(
        until_value(recorded, "redis.up", &[], |v| v == 1.0).await,
        Some(1.0)
    );
    // A fresh server: its uptime starts again.
    let uptime = latest_value(recorded, "redis.uptime", &[]).unwrap();
    assert!(uptime < 10.0, "uptime {uptime}");
    run.stop().await;
}
